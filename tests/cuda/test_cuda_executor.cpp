// The CUDA ModelExecutor against the CPU Model on tiny-dsv3 (and an FP8 copy of it): prefill
// logits, teacher-forced decoding against the golden greedy tokens, a mixed batch (a decode, a
// prefill continuing a shared prefix block, a fresh prompt), MTP over its shifted cache, and an
// invalid batch. The GPU keeps activations in BF16 between GEMMs (the residual stream in FP32), so
// logits are compared by relative L2 error per row and by top-1 where the CPU's top-2 margin is
// comfortable; the router may flip near ties, which the row tolerance leaves room for.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

#include "../models/model_harness.h"
#include "executor_test_util.h"
#include "models/fp8_quantize.h"
#include "models/safetensors_writer.h"

namespace {

using namespace latentserve;
using namespace latentserve::testing;
using namespace latentserve::test_executor;
namespace fs = std::filesystem;

constexpr int64_t kBlockSize = 16;  // small blocks: every prompt spans several, paging is exercised
constexpr int64_t kNumBlocks = 64;

std::unique_ptr<dsv3::ModelExecutor> gpu_executor(const Model& model, int64_t cache_layers) {
  auto e = cuda_executor(model, {cache_layers, kBlockSize, kNumBlocks});
  REQUIRE(e->num_blocks() == kNumBlocks);
  REQUIRE(e->cache_bytes() == kNumBlocks * cache_layers * kBlockSize *
                                  (model.config().kv_lora_rank + model.config().qk_rope_head_dim) * 2);
  return e;
}

// The CPU model and the GPU executor over caches of the test's geometry with `cache_layers` layers.
struct Pair : CpuGpuPair {
  Pair(const Model& m, int64_t cache_layers)
      : CpuGpuPair(m, gpu_executor(m, cache_layers), {cache_layers, kBlockSize, kNumBlocks}) {}
};

std::vector<int32_t> scrambled_table(int64_t tokens, int64_t first_block) {
  std::vector<int32_t> t;
  for (int64_t b = 0; b * kBlockSize < tokens; ++b) t.push_back(int32_t((first_block + b * 7) % kNumBlocks));
  return t;
}

const nlohmann::json& golden() {
  static const nlohmann::json g = read_json(tiny_dir() + "/golden.json");
  return g;
}

std::vector<int32_t> prompt(size_t k) { return golden()["prompts"][k].get<std::vector<int32_t>>(); }

constexpr double kLogitTol = 0.05;   // BF16 activations, FP32 accumulation
constexpr double kMargin = 0.5;      // top-1 must agree above this CPU top-2 margin
constexpr Tolerance kLogits = {kLogitTol, kMargin};
constexpr Tolerance kHidden = {kLogitTol, 1e30};  // no top-1 on hidden rows

}  // namespace

TEST_CASE("CUDA executor: prefill logits and hidden rows match the CPU model", "[cuda][executor][model]") {
  const Model& model = cached_model(tiny_dir());
  const int64_t V = model.config().vocab_size, H = model.config().hidden_size;
  for (size_t k = 0; k < 4; ++k) {
    Pair pair(model, model.num_cache_layers());
    const std::vector<int32_t> p = prompt(k);
    Batch b;
    models::append_sequence(b, p, 0, scrambled_table(int64_t(p.size()), 3 + int64_t(k)), kBlockSize, false);
    for (int32_t r = 0; r < int32_t(p.size()); r += 3) b.logit_rows.push_back(r);
    b.logit_rows.push_back(int32_t(p.size()) - 1);
    auto [cpu, gpu] = pair.forward(b);
    compare_rows(gpu.logits, cpu.logits, V, kLogits, "prompt " + std::to_string(k) + " logits");
    compare_rows(gpu.hidden, cpu.hidden, H, kHidden, "prompt " + std::to_string(k) + " hidden");
  }
}

TEST_CASE("CUDA executor: teacher-forced decoding picks the golden greedy tokens", "[cuda][executor][model]") {
  const Model& model = cached_model(tiny_dir());
  const int64_t V = model.config().vocab_size;
  for (size_t k = 0; k < 4; ++k) {
    const nlohmann::json& g = golden()["greedy"][k];
    const std::vector<int32_t> fresh = g["new_tokens"].get<std::vector<int32_t>>();
    Pair pair(model, model.num_cache_layers());
    std::vector<int32_t> tokens = prompt(k);
    const std::vector<int32_t> table = scrambled_table(int64_t(tokens.size() + fresh.size()), 11 + int64_t(k));
    int32_t cached = 0;
    for (size_t j = 0; j < fresh.size(); ++j) {
      std::vector<int32_t> piece(tokens.begin() + cached, tokens.end());
      Batch b;
      models::append_sequence(b, piece, cached, table, kBlockSize, true);
      auto [cpu, gpu] = pair.forward(b);
      INFO("prompt " << k << " step " << j);
      CHECK(relative_l2(gpu.logits.data(), cpu.logits.data(), V) <= kLogitTol);
      if (g["steps"][j]["margin"].get<double>() >= 0.25) CHECK(argmax(gpu.logits.data(), V) == fresh[j]);
      cached = int32_t(tokens.size());
      tokens.push_back(fresh[j]);  // the golden token, whatever was picked
    }
  }
}

TEST_CASE("CUDA executor: a mixed batch with a shared prefix block matches the CPU model", "[cuda][executor][model]") {
  const Model& model = cached_model(tiny_dir());
  const int64_t V = model.config().vocab_size;
  Pair pair(model, model.num_cache_layers());
  const std::vector<int32_t> a = prompt(3);  // 70 tokens
  std::vector<int32_t> a_table = scrambled_table(80, 1);
  Batch first;
  models::append_sequence(first, a, 0, a_table, kBlockSize, true);
  auto [cpu0, gpu0] = pair.forward(first);
  compare_rows(gpu0.logits, cpu0.logits, V, kLogits, "prefix prefill");

  // B reuses A's first 4 blocks (64 tokens) and continues with its own tokens; C is fresh.
  std::vector<int32_t> b_table(a_table.begin(), a_table.begin() + 4);
  for (int32_t blk : {40, 41}) b_table.push_back(blk);
  const std::vector<int32_t> b_new = {5, 900, 17, 33, 512, 8, 77, 1000, 3, 64, 65};
  const std::vector<int32_t> c = prompt(1);
  const std::vector<int32_t> c_table = {50, 47, 45};
  Batch mixed;
  models::append_sequence(mixed, {int32_t(argmax(cpu0.logits.data(), V))}, 70, a_table, kBlockSize, true);
  models::append_sequence(mixed, b_new, 64, b_table, kBlockSize, true);
  models::append_sequence(mixed, c, 0, c_table, kBlockSize, true);
  mixed.logit_rows.push_back(3);  // a middle row of B as well
  auto [cpu1, gpu1] = pair.forward(mixed);
  compare_rows(gpu1.logits, cpu1.logits, V, kLogits, "mixed batch");

  Batch decode;
  models::append_sequence(decode, {7}, 71, a_table, kBlockSize, true);
  models::append_sequence(decode, {8}, 64 + int32_t(b_new.size()), b_table, kBlockSize, true);
  models::append_sequence(decode, {9}, int32_t(c.size()), c_table, kBlockSize, true);
  auto [cpu2, gpu2] = pair.forward(decode);
  compare_rows(gpu2.logits, cpu2.logits, V, kLogits, "decode of three sequences");
}

TEST_CASE("CUDA executor: MTP over its shifted cache matches the CPU model", "[cuda][executor][model][mtp]") {
  const Model& model = cached_model(tiny_dir());
  REQUIRE(model.num_mtp_layers() == 1);
  const int64_t V = model.config().vocab_size, H = model.config().hidden_size;
  const int64_t layers = model.num_cache_layers_with_mtp();
  Pair pair(model, layers);
  const nlohmann::json& m = golden()["mtp"]["prompts"][2];
  const std::vector<int32_t> input = m["input_tokens"].get<std::vector<int32_t>>();  // t_1 ...
  const std::vector<int32_t> p = prompt(2);
  const std::vector<int32_t> table = scrambled_table(int64_t(p.size()) + 8, 5);

  Batch main;
  models::append_sequence(main, p, 0, table, kBlockSize, true);
  auto [cpu_main, gpu_main] = pair.forward(main);
  // Both sides get the CPU's hidden rows, so the comparison isolates the MTP layer.
  const int64_t n = int64_t(p.size());
  auto run = [&](int32_t first, int32_t count, const std::string& what) {
    Batch b;
    std::vector<int32_t> toks(input.begin() + first, input.begin() + first + count);
    models::append_sequence(b, toks, first, table, kBlockSize, false);
    for (int32_t r = 0; r < count; ++r) b.logit_rows.push_back(r);
    std::vector<float> hidden(cpu_main.hidden.begin() + first * H, cpu_main.hidden.begin() + (first + count) * H);
    auto cpu = model.mtp_forward(b, hidden, pair.cpu_cache, 0);
    if (!cpu.ok()) FAIL("CPU: " << cpu.error().message);
    auto gpu = pair.gpu->mtp_forward(b, hidden, 0);
    if (!gpu.ok()) FAIL("GPU: " << gpu.error().message);
    compare_rows(gpu->logits, cpu->logits, V, kLogits, what + " logits");
    compare_rows(gpu->hidden, cpu->hidden, H, kHidden, what + " hidden");
  };
  run(0, int32_t(n) - 3, "MTP prefill");
  run(int32_t(n) - 3, 2, "MTP continuation");
  run(int32_t(n) - 1, 1, "MTP single step");

  Batch bad;
  models::append_sequence(bad, {1}, int32_t(n), table, kBlockSize, true);
  auto wrong = pair.gpu->mtp_forward(bad, std::vector<float>(size_t(H) + 1, 0.0f), 0);
  REQUIRE_FALSE(wrong.ok());
  auto missing = pair.gpu->mtp_forward(bad, std::vector<float>(size_t(H), 0.0f), 1);
  REQUIRE_FALSE(missing.ok());
}

TEST_CASE("CUDA executor: an invalid batch is an error and leaves the executor usable", "[cuda][executor][model]") {
  const Model& model = cached_model(tiny_dir());
  Pair pair(model, model.num_cache_layers());
  Batch bad;
  models::append_sequence(bad, {3, int32_t(model.config().vocab_size)}, 0, {2}, kBlockSize, true);
  auto out = pair.gpu->forward(bad);
  REQUIRE_FALSE(out.ok());
  INFO(out.error().message);
  Batch good;
  models::append_sequence(good, prompt(1), 0, {2}, kBlockSize, true);
  auto [cpu, gpu] = pair.forward(good);
  compare_rows(gpu.logits, cpu.logits, model.config().vocab_size, kLogits, "after an error");
}

namespace {

// DeepSeek's FP8 checkpoints quantize the linear layers of attention and the MLPs/experts; the
// router, embeddings, heads, norms and eh_proj stay in higher precision.
bool quantized_in_fp8_checkpoints(const std::string& name) {
  return name.find("_proj.weight") != std::string::npos && name.find("eh_proj") == std::string::npos;
}

// tiny-dsv3 with those matrices in FP8 E4M3 with 128×128 block scales, in `dir`.
void write_fp8_copy(const std::string& dir) {
  auto ckpt = models::Checkpoint::open(tiny_dir());
  REQUIRE(ckpt.ok());
  std::vector<models::TensorBytes> tensors;
  for (const auto& [name, info] : ckpt->tensors()) {
    const auto* bytes = static_cast<const uint8_t*>(info.data);
    if (!quantized_in_fp8_checkpoints(name)) {
      tensors.push_back({{name, info.dtype, info.shape}, std::vector<uint8_t>(bytes, bytes + info.nbytes)});
      continue;
    }
    auto q = models::quantize_fp8_blocks(info.dtype, info.data, info.shape[0], info.shape[1]);
    REQUIRE(q.ok());
    tensors.push_back({{name, DType::F8_E4M3, info.shape}, q->data});
    const auto* s = reinterpret_cast<const uint8_t*>(q->scale_inv.data());
    tensors.push_back({{name + "_scale_inv", DType::F32, {(info.shape[0] + 127) / 128, (info.shape[1] + 127) / 128}},
                       std::vector<uint8_t>(s, s + q->scale_inv.size() * sizeof(float))});
  }
  fs::create_directories(dir);
  REQUIRE(models::write_safetensors(dir + "/model.safetensors", tensors).ok());
  nlohmann::json c = read_json(tiny_dir() + "/config.json");
  c["quantization_config"] = {{"activation_scheme", "dynamic"}, {"fmt", "e4m3"},
                              {"quant_method", "fp8"}, {"weight_block_size", {128, 128}}};
  std::ofstream(dir + "/config.json") << c.dump(2);
}

}  // namespace

TEST_CASE("CUDA executor: an FP8 copy of tiny-dsv3 matches the CPU model on the same FP8 weights", "[cuda][executor][model][fp8]") {
  const std::string dir = (fs::temp_directory_path() / ("latentserve-cuda-fp8-" + std::to_string(::getpid()))).string();
  write_fp8_copy(dir);
  auto loaded = Model::load(dir);
  if (!loaded.ok()) FAIL(loaded.error().message);
  const Model& model = **loaded;
  const int64_t V = model.config().vocab_size;
  {
    Pair pair(model, model.num_cache_layers());
    INFO(pair.gpu->description());
    const std::vector<int32_t> p = prompt(2);
    Batch b;
    models::append_sequence(b, p, 0, scrambled_table(int64_t(p.size()), 9), kBlockSize, false);
    for (int32_t r = 0; r < int32_t(p.size()); r += 4) b.logit_rows.push_back(r);
    auto [cpu, gpu] = pair.forward(b);
    // The block-scaled path also quantizes activations per token to FP8: a wider tolerance.
    compare_rows(gpu.logits, cpu.logits, V, {0.15, 1.0}, "FP8 prefill");
    Batch d;
    models::append_sequence(d, {int32_t(argmax(cpu.logits.data() + (int64_t(b.logit_rows.size()) - 1) * V, V))},
                            int32_t(p.size()), scrambled_table(int64_t(p.size()) + 1, 9), kBlockSize, true);
    auto [cpu_d, gpu_d] = pair.forward(d);
    compare_rows(gpu_d.logits, cpu_d.logits, V, {0.15, 1.0}, "FP8 decode");
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
}
