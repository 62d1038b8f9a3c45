// load_weights: the fixture checkpoint against golden.json's weight probes, and synthetic
// checkpoints with one thing wrong each (missing, misshapen, mistyped, unknown tensors, FP8 scales).
#include "models/deepseek_v3/weights.h"

#include "tests/models/test_checkpoint_util.h"

namespace latentserve::models::test {
namespace {

using deepseek_v3::DeepseekV3Weights;
using deepseek_v3::load_weights;
using nlohmann::json;

float matrix_at(const WeightMatrix& w, int64_t r, int64_t c) {
  return element_at(w.dtype, w.data, r * w.cols + c);
}

TEST_CASE("weights: the tiny-dsv3 fixture loads and matches golden weight probes") {
  auto config = load_model_config(shared_fixture("tiny-dsv3"));
  REQUIRE(config.ok());
  auto ckpt = Checkpoint::open(shared_fixture("tiny-dsv3"));
  REQUIRE(ckpt.ok());
  auto loaded = load_weights(*ckpt, *config);
  REQUIRE(loaded.ok());
  const DeepseekV3Weights& w = *loaded;
  REQUIRE(w.layers.size() == 3);
  CHECK(w.layers[0].mlp.has_value());
  CHECK_FALSE(w.layers[0].moe.has_value());
  for (int l : {1, 2}) {
    REQUIRE(w.layers[size_t(l)].moe.has_value());
    CHECK(w.layers[size_t(l)].moe->experts.size() == 16);
    CHECK(w.layers[size_t(l)].moe->e_score_correction_bias.size() == 16);
    REQUIRE(w.layers[size_t(l)].moe->shared_experts.has_value());
    CHECK(w.layers[size_t(l)].moe->shared_experts->gate_proj.rows == 64);
  }
  CHECK(w.embed_tokens.rows == 1024);
  CHECK(w.embed_tokens.cols == 256);
  CHECK(w.lm_head.data != w.embed_tokens.data);
  CHECK(w.norm.size() == 256);
  REQUIRE(w.mtp.size() == 1);
  CHECK(w.mtp[0].eh_proj.cols == 512);
  CHECK(w.mtp[0].block.moe.has_value());
  CHECK(w.mtp[0].embed_tokens.dtype == DType::BF16);
  CHECK(w.layers[0].attn.q_a_proj.rows == 96);
  CHECK(w.layers[0].attn.q_proj.empty());
  CHECK(w.layers[0].attn.kv_b_proj.rows == 4 * 64);

  json golden = json::parse(read_bytes(shared_fixture("tiny-dsv3/golden.json")));
  const auto& l0 = w.layers[0];
  const auto& moe1 = *w.layers[1].moe;
  int checked = 0;
  for (const json& probe : golden["weight_probes"]) {
    const std::string name = probe["name"];
    const auto idx = probe["index"].get<std::vector<int64_t>>();
    const float want = probe["value"].get<float>();
    const WeightMatrix* m = nullptr;
    if (name == "model.layers.0.self_attn.q_a_proj.weight") m = &l0.attn.q_a_proj;
    if (name == "model.layers.0.self_attn.kv_b_proj.weight") m = &l0.attn.kv_b_proj;
    if (name == "model.layers.0.mlp.down_proj.weight") m = &l0.mlp->down_proj;
    if (name == "model.layers.1.mlp.experts.3.up_proj.weight") m = &moe1.experts[3].up_proj;
    if (name == "model.layers.1.mlp.shared_experts.down_proj.weight") m = &moe1.shared_experts->down_proj;
    if (name == "model.layers.1.mlp.gate.weight") m = &moe1.gate;
    INFO(name);
    if (name == "model.layers.1.mlp.gate.e_score_correction_bias") {
      CHECK(moe1.e_score_correction_bias[size_t(idx[0])] == want);
    } else {
      REQUIRE(m != nullptr);
      CHECK(matrix_at(*m, idx[0], idx[1]) == want);
    }
    ++checked;
  }
  CHECK(checked == int(golden["weight_probes"].size()));
  CHECK(checked >= 30);
}

// Writes `tensors` as one file and loads it with `config`.
Result<DeepseekV3Weights> load_synthetic(const std::vector<TensorBytes>& tensors,
                                         const ModelConfig& config, TempDir& dir,
                                         Checkpoint& keep) {
  REQUIRE(write_safetensors(dir.file("model.safetensors"), tensors).ok());
  auto ckpt = Checkpoint::open(dir.path());
  REQUIRE(ckpt.ok());
  keep = std::move(ckpt).value();
  return load_weights(keep, config);
}

std::string load_error(const std::vector<TensorBytes>& tensors, const ModelConfig& config) {
  TempDir dir;
  Checkpoint ckpt;
  auto w = load_synthetic(tensors, config, dir, ckpt);
  REQUIRE_FALSE(w.ok());
  return w.error().message;
}

TEST_CASE("weights: a complete synthetic checkpoint loads with the right views") {
  auto rng = fresh_rng();
  const ModelConfig config = small_config();
  auto tensors = synthetic_tensors(config, false, rng);
  TempDir dir;
  Checkpoint ckpt;
  auto w = load_synthetic(tensors, config, dir, ckpt);
  REQUIRE(w.ok());
  const auto& kv_a = w->layers[1].attn.kv_a_proj_with_mqa;
  CHECK(kv_a.rows == 20);
  CHECK(kv_a.cols == 32);
  CHECK(std::memcmp(kv_a.data, find_tensor(tensors, "model.layers.1.self_attn.kv_a_proj_with_mqa.weight")->bytes.data(), 20 * 32 * 2) == 0);
  const auto& norm = w->mtp.at(0).shared_head_norm;
  const auto& bytes = find_tensor(tensors, "model.layers.2.shared_head.norm.weight")->bytes;
  for (size_t i = 0; i < norm.size(); ++i) CHECK(norm[i] == element_at(DType::BF16, bytes.data(), int64_t(i)));
  CHECK(w->mtp[0].block.moe->experts.size() == 4);
  CHECK(w->owned_copies.empty());
}

TEST_CASE("weights: missing tensor") {
  auto rng = fresh_rng();
  const ModelConfig config = small_config();
  auto tensors = synthetic_tensors(config, false, rng);
  tensors.erase(find_tensor(tensors, "model.layers.1.mlp.experts.2.down_proj.weight"));
  const std::string msg = load_error(tensors, config);
  CHECK(msg.find("model.layers.1.mlp.experts.2.down_proj.weight") != std::string::npos);
  CHECK(msg.find("missing") != std::string::npos);
  CHECK(msg.find("[32, 16]") != std::string::npos);
}

TEST_CASE("weights: wrong shape") {
  auto rng = fresh_rng();
  const ModelConfig config = small_config();
  auto tensors = synthetic_tensors(config, false, rng);
  find_tensor(tensors, "model.layers.0.self_attn.o_proj.weight")->spec.shape = {16, 32};
  const std::string msg = load_error(tensors, config);
  CHECK(msg.find("model.layers.0.self_attn.o_proj.weight") != std::string::npos);
  CHECK(msg.find("model.safetensors") != std::string::npos);
  CHECK(msg.find("expected shape [32, 16], found [16, 32]") != std::string::npos);

  tensors = synthetic_tensors(config, false, rng);
  auto norm = find_tensor(tensors, "model.norm.weight");
  norm->spec.shape = {31};
  norm->bytes.resize(62);
  CHECK(load_error(tensors, config).find("model.norm.weight") != std::string::npos);
}

TEST_CASE("weights: wrong dtype") {
  auto rng = fresh_rng();
  const ModelConfig config = small_config();
  auto tensors = synthetic_tensors(config, false, rng);
  auto q = find_tensor(tensors, "model.layers.0.self_attn.q_b_proj.weight");
  q->spec.dtype = DType::I32;
  q->bytes.resize(q->spec.nbytes());
  std::string msg = load_error(tensors, config);
  CHECK(msg.find("q_b_proj.weight") != std::string::npos);
  CHECK(msg.find("found I32") != std::string::npos);

  tensors = synthetic_tensors(config, false, rng);
  auto norm = find_tensor(tensors, "model.layers.0.input_layernorm.weight");
  norm->spec.dtype = DType::F8_E4M3;
  norm->bytes.resize(norm->spec.nbytes());
  msg = load_error(tensors, config);
  CHECK(msg.find("input_layernorm.weight") != std::string::npos);
  CHECK(msg.find("found F8_E4M3") != std::string::npos);
}

TEST_CASE("weights: FP8 matrices with block scales load; missing or misshapen scales do not") {
  auto rng = fresh_rng();
  const ModelConfig config = small_config();
  {
    auto tensors = synthetic_tensors(config, true, rng);
    TempDir dir;
    Checkpoint ckpt;
    auto w = load_synthetic(tensors, config, dir, ckpt);
    REQUIRE(w.ok());
    const WeightMatrix& m = w->layers[0].attn.q_a_proj;  // [24, 32] in 16x16 blocks
    CHECK(m.dtype == DType::F8_E4M3);
    CHECK(m.block_rows == 16);
    CHECK(m.block_cols == 16);
    REQUIRE(m.scale_inv != nullptr);
    const auto& scale = find_tensor(tensors, "model.layers.0.self_attn.q_a_proj.weight_scale_inv")->bytes;
    CHECK(std::memcmp(m.scale_inv, scale.data(), 2 * 2 * 4) == 0);
    CHECK(w->layers[1].moe->experts[0].gate_proj.dtype == DType::BF16);
  }
  {
    auto tensors = synthetic_tensors(config, true, rng);
    tensors.erase(find_tensor(tensors, "model.layers.1.self_attn.kv_b_proj.weight_scale_inv"));
    const std::string msg = load_error(tensors, config);
    CHECK(msg.find("kv_b_proj.weight_scale_inv") != std::string::npos);
    CHECK(msg.find("without its block scales") != std::string::npos);
  }
  {
    auto tensors = synthetic_tensors(config, true, rng);
    auto s = find_tensor(tensors, "model.layers.1.self_attn.kv_b_proj.weight_scale_inv");
    s->spec.shape = {1, s->spec.shape[0] * s->spec.shape[1]};
    const std::string msg = load_error(tensors, config);
    CHECK(msg.find("kv_b_proj.weight_scale_inv") != std::string::npos);
    CHECK(msg.find("expected shape [2, 1]") != std::string::npos);
  }
  {
    auto tensors = synthetic_tensors(config, true, rng);
    auto s = find_tensor(tensors, "model.layers.1.self_attn.o_proj.weight_scale_inv");
    s->spec.dtype = DType::BF16;
    s->bytes.resize(s->spec.nbytes());
    CHECK(load_error(tensors, config).find("o_proj.weight_scale_inv") != std::string::npos);
  }
  {
    auto tensors = synthetic_tensors(config, true, rng);
    json j = small_config_json();
    j.erase("quantization_config");
    auto unquantized = parse_model_config(j.dump(), "config.json");
    REQUIRE(unquantized.ok());
    CHECK(load_error(tensors, *unquantized).find("quantization_config") != std::string::npos);
  }
}

TEST_CASE("weights: tensors the table does not know are errors") {
  auto rng = fresh_rng();
  const ModelConfig config = small_config();
  auto tensors = synthetic_tensors(config, false, rng);
  tensors.push_back({{"model.layers.0.self_attn.o_proj.bias", DType::BF16, {32}}, random_bf16(rng, 32)});
  std::string msg = load_error(tensors, config);
  CHECK(msg.find("model.layers.0.self_attn.o_proj.bias") != std::string::npos);
  CHECK(msg.find("does not use") != std::string::npos);

  // A block scale next to a BF16 weight is just as unexpected.
  tensors = synthetic_tensors(config, false, rng);
  tensors.push_back({{"model.layers.0.mlp.up_proj.weight_scale_inv", DType::F32, {3, 2}},
                     std::vector<uint8_t>(24, 0)});
  CHECK(load_error(tensors, config).find("up_proj.weight_scale_inv") != std::string::npos);
}

TEST_CASE("weights: MTP layers absent load without MTP, partly present is an error") {
  auto rng = fresh_rng();
  const ModelConfig config = small_config();
  auto tensors = synthetic_tensors(config, false, rng);
  std::erase_if(tensors, [](const TensorBytes& t) { return t.spec.name.rfind("model.layers.2.", 0) == 0; });
  {
    TempDir dir;
    Checkpoint ckpt;
    auto w = load_synthetic(tensors, config, dir, ckpt);
    REQUIRE(w.ok());
    CHECK(w->mtp.empty());
    CHECK(w->layers.size() == 2);
  }
  tensors = synthetic_tensors(config, false, rng);
  tensors.erase(find_tensor(tensors, "model.layers.2.hnorm.weight"));
  const std::string msg = load_error(tensors, config);
  CHECK(msg.find("MTP") != std::string::npos);
  CHECK(msg.find("model.layers.2.hnorm.weight") != std::string::npos);
}

TEST_CASE("weights: router bias required for noaux_tc only; tied embeddings; no q compression") {
  auto rng = fresh_rng();
  json j = small_config_json();
  auto tensors = synthetic_tensors(small_config(), false, rng);
  tensors.erase(find_tensor(tensors, "model.layers.1.mlp.gate.e_score_correction_bias"));
  CHECK(load_error(tensors, small_config()).find("e_score_correction_bias") != std::string::npos);
  j["topk_method"] = "group_limited_greedy";
  j["scoring_func"] = "softmax";
  auto greedy = parse_model_config(j.dump(), "config.json");
  REQUIRE(greedy.ok());
  {
    TempDir dir;
    Checkpoint ckpt;
    tensors.erase(find_tensor(tensors, "model.layers.2.mlp.gate.e_score_correction_bias"));
    auto w = load_synthetic(tensors, *greedy, dir, ckpt);
    REQUIRE(w.ok());
    CHECK(w->layers[1].moe->e_score_correction_bias.empty());
  }

  j = small_config_json();
  j["tie_word_embeddings"] = true;
  j["q_lora_rank"] = nullptr;
  auto tied = parse_model_config(j.dump(), "config.json");
  REQUIRE(tied.ok());
  tensors = synthetic_tensors(*tied, false, rng);
  {
    TempDir dir;
    Checkpoint ckpt;
    auto w = load_synthetic(tensors, *tied, dir, ckpt);
    REQUIRE(w.ok());
    CHECK(w->lm_head.data == w->embed_tokens.data);
    CHECK(w->layers[0].attn.q_proj.rows == 2 * 12);
    CHECK(w->layers[0].attn.q_a_proj.empty());
  }
  tensors.push_back({{"lm_head.weight", DType::BF16, {40, 32}}, random_bf16(rng, 40 * 32)});
  CHECK(load_error(tensors, *tied).find("tie_word_embeddings") != std::string::npos);
}

TEST_CASE("weights: tensors misaligned in the file are copied, not read unaligned") {
  auto rng = fresh_rng();
  json j = small_config_json();
  j["hidden_size"] = 31;
  j["kv_lora_rank"] = 15;  // kv_a_proj_with_mqa [19, 31]: an odd number of FP8 bytes
  auto config = parse_model_config(j.dump(), "config.json");
  REQUIRE(config.ok());
  auto tensors = synthetic_tensors(*config, true, rng);
  auto odd = find_tensor(tensors, "model.layers.0.self_attn.kv_a_proj_with_mqa.weight");
  std::rotate(tensors.begin(), odd, odd + 1);  // first in the file: everything after shifts by 1
  TempDir dir;
  Checkpoint ckpt;
  auto w = load_synthetic(tensors, *config, dir, ckpt);
  REQUIRE(w.ok());
  CHECK_FALSE(w->owned_copies.empty());
  const WeightMatrix& o = w->layers[1].attn.o_proj;
  CHECK(reinterpret_cast<uintptr_t>(o.scale_inv) % 4 == 0);
  const auto& scale = find_tensor(tensors, "model.layers.1.self_attn.o_proj.weight_scale_inv")->bytes;
  CHECK(std::memcmp(o.scale_inv, scale.data(), scale.size()) == 0);
  const WeightMatrix& up = w->layers[1].moe->experts[3].up_proj;
  CHECK(reinterpret_cast<uintptr_t>(up.data) % 2 == 0);
  const auto& bytes = find_tensor(tensors, "model.layers.1.mlp.experts.3.up_proj.weight")->bytes;
  CHECK(std::memcmp(up.data, bytes.data(), bytes.size()) == 0);
}

}  // namespace
}  // namespace latentserve::models::test
