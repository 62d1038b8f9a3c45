// An FP8 copy of tiny-dsv3's weights, quantized here (128x128 block scales, partial edge blocks),
// loads and gives the same logits as a checkpoint holding the dequantized values in F32.
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "model_harness.h"
#include "models/fp8_quantize.h"
#include "models/safetensors_writer.h"

using namespace latentserve;
using namespace latentserve::testing;
namespace fs = std::filesystem;

namespace {

// DeepSeek's FP8 checkpoints quantize the linear layers of attention and the MLPs/experts; the
// router, embeddings, heads and norms stay in higher precision.
bool quantized_in_fp8_checkpoints(const std::string& name) {
  const bool linear = name.find("_proj.weight") != std::string::npos;
  return linear && name.find("eh_proj") == std::string::npos;
}

struct WrittenPair {
  std::string fp8_dir;
  std::string dequantized_dir;
};

WrittenPair write_pair(const std::string& root) {
  auto ckpt = models::Checkpoint::open(tiny_dir());
  REQUIRE(ckpt.ok());
  std::vector<models::TensorBytes> fp8, dequantized;
  int quantized = 0;
  for (const auto& [name, info] : ckpt->tensors()) {
    const auto* bytes = static_cast<const uint8_t*>(info.data);
    models::TensorBytes original{{name, info.dtype, info.shape}, std::vector<uint8_t>(bytes, bytes + info.nbytes)};
    if (!quantized_in_fp8_checkpoints(name)) {
      fp8.push_back(original);
      dequantized.push_back(original);
      continue;
    }
    auto q = models::quantize_fp8_blocks(info.dtype, info.data, info.shape[0], info.shape[1]);
    REQUIRE(q.ok());
    ++quantized;
    fp8.push_back({{name, DType::F8_E4M3, info.shape}, q->data});
    const auto& s = q->scale_inv;
    fp8.push_back({{name + "_scale_inv", DType::F32, {(info.shape[0] + 127) / 128, (info.shape[1] + 127) / 128}},
                   std::vector<uint8_t>(reinterpret_cast<const uint8_t*>(s.data()),
                                        reinterpret_cast<const uint8_t*>(s.data() + s.size()))});
    const std::vector<float> real = models::dequantize_fp8_blocks(*q);
    dequantized.push_back({{name, DType::F32, info.shape},
                           std::vector<uint8_t>(reinterpret_cast<const uint8_t*>(real.data()),
                                                reinterpret_cast<const uint8_t*>(real.data() + real.size()))});
  }
  CHECK(quantized > 40);
  WrittenPair out{root + "/fp8", root + "/dequantized"};
  nlohmann::json config = read_json(tiny_dir() + "/config.json");
  for (const auto& [dir, tensors] : {std::pair{out.fp8_dir, &fp8}, std::pair{out.dequantized_dir, &dequantized}}) {
    fs::create_directories(dir);
    REQUIRE(models::write_safetensors(dir + "/model.safetensors", *tensors).ok());
    nlohmann::json c = config;
    if (dir == out.fp8_dir) {
      c["quantization_config"] = {{"activation_scheme", "dynamic"}, {"fmt", "e4m3"},
                                  {"quant_method", "fp8"}, {"weight_block_size", {128, 128}}};
    }
    std::ofstream(dir + "/config.json") << c.dump(2);
  }
  return out;
}

}  // namespace

TEST_CASE("an FP8 block-scaled copy matches the same weights dequantized", "[golden][fp8]") {
  const std::string root = (fs::temp_directory_path() / ("latentserve-fp8-" + std::to_string(::getpid()))).string();
  const WrittenPair dirs = write_pair(root);
  auto fp8 = Model::load(dirs.fp8_dir);
  if (!fp8.ok()) FAIL(fp8.error().message);
  auto dequantized = Model::load(dirs.dequantized_dir);
  if (!dequantized.ok()) FAIL(dequantized.error().message);
  CHECK((*fp8)->weights().layers[0].attn.q_b_proj.dtype == DType::F8_E4M3);
  CHECK((*dequantized)->weights().layers[0].attn.q_b_proj.dtype == DType::F32);

  const auto golden = read_json(tiny_dir() + "/golden.json");
  double worst_vs_bf16 = 0;
  for (size_t k = 0; k < golden["prompts"].size(); ++k) {
    const auto prompt = golden["prompts"][k].get<std::vector<int32_t>>();
    const GreedyRun a = run_greedy(**fp8, prompt, 6);
    const GreedyRun b = run_greedy(**dequantized, prompt, 6);
    INFO("prompt " << k);
    CHECK(a.new_tokens == b.new_tokens);
    for (size_t j = 0; j < a.step_logits.size(); ++j) {
      double d = 0;
      for (size_t i = 0; i < a.step_logits[j].size(); ++i) {
        d = std::max(d, double(std::abs(a.step_logits[j][i] - b.step_logits[j][i])));
      }
      CHECK(d < 1e-3);
    }
    worst_vs_bf16 = std::max(worst_vs_bf16, max_abs_diff(a.step_logits[0], golden["prefill"][k]["last_logits"]));
  }
  // Quantization itself moves the logits away from the BF16 model's (by several units on this
  // random model, where it flips expert choices), so the comparison above is not vacuous.
  CHECK(worst_vs_bf16 > 1e-3);
  fs::remove_all(root);
}
