// make_model: the generated checkpoints load through the real loader, follow the Hugging Face
// layout, have the documented weight statistics, and are byte-for-byte reproducible per seed.
#include "models/make_model.h"

#include <cmath>

#include "models/checkpoint.h"
#include "models/deepseek_v3/weights.h"
#include "tests/models/test_checkpoint_util.h"

namespace latentserve::models::test {
namespace {

namespace fs = std::filesystem;
using deepseek_v3::DeepseekV3Weights;
using deepseek_v3::load_weights;
using nlohmann::json;

struct Stats {
  double mean = 0, stddev = 0;
};
Stats stats(const WeightMatrix& w, int64_t max_values = 200000) {
  const int64_t n = std::min(w.rows * w.cols, max_values);
  double s = 0, s2 = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double v = element_at(w.dtype, w.data, i);
    s += v;
    s2 += v * v;
  }
  return {s / double(n), std::sqrt(s2 / double(n) - (s / double(n)) * (s / double(n)))};
}

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// One tiny BF16 model for the whole file: writing it costs about a second.
const TempDir& tiny_bf16() {
  static TempDir dir;
  static bool made = [] {
    MakeModelOptions o;
    o.preset = "tiny";
    o.out_dir = dir.path();
    o.seed = 7;
    o.tokenizer_dir = shared_fixture("deepseek-v3-tokenizer");
    auto s = make_model(o);
    INFO((s.ok() ? std::string() : s.error().message));
    REQUIRE(s.ok());
    return true;
  }();
  (void)made;
  return dir;
}

TEST_CASE("make_model: tiny loads through config, checkpoint and weight loaders") {
  const TempDir& dir = tiny_bf16();
  auto config = load_model_config(dir.path());
  REQUIRE(config.ok());
  CHECK(config->vocab_size == 129280);
  CHECK(config->hidden_size == 128);
  CHECK(config->num_hidden_layers == 3);
  CHECK(config->routed_scaling_factor == 2.5);
  CHECK_FALSE(config->quantization.has_value());
  json raw = json::parse(read_bytes(dir.file("config.json")));
  CHECK(raw["architectures"] == json{"DeepseekV3ForCausalLM"});
  CHECK(raw.contains("torch_dtype"));
  CHECK(raw.contains("auto_map"));

  json index = json::parse(read_bytes(dir.file("model.safetensors.index.json")));
  std::set<std::string> shards;
  for (const auto& [name, shard] : index["weight_map"].items()) shards.insert(shard.get<std::string>());
  CHECK(shards.size() >= 2);
  for (const std::string& s : shards) CHECK(fs::exists(dir.file(s)));
  CHECK(fs::exists(dir.file("tokenizer.json")));
  CHECK(fs::exists(dir.file("tokenizer_config.json")));

  auto ckpt = Checkpoint::open(dir.path());
  REQUIRE(ckpt.ok());
  uint64_t total = 0;
  for (const auto& [name, t] : ckpt->tensors()) total += t.nbytes;
  CHECK(index["metadata"]["total_size"].get<uint64_t>() == total);
  auto w = load_weights(*ckpt, *config);
  REQUIRE(w.ok());
  REQUIRE(w->mtp.size() == 1);
  CHECK(w->layers[0].mlp.has_value());
  CHECK(w->layers[2].moe->experts.size() == 16);

  // The MTP layer's embedding and head are copies, as in DeepSeek-V3.
  const size_t embed_bytes = size_t(129280) * 128 * 2;
  CHECK(std::memcmp(w->mtp[0].embed_tokens.data, w->embed_tokens.data, embed_bytes) == 0);
  CHECK(std::memcmp(w->mtp[0].shared_head_head.data, w->lm_head.data, embed_bytes) == 0);
  CHECK(std::memcmp(w->lm_head.data, w->embed_tokens.data, embed_bytes) != 0);

  // Documented initialisation.
  const Stats embed = stats(w->embed_tokens);
  CHECK(std::fabs(embed.mean) < 0.01);
  CHECK(std::fabs(embed.stddev - 1.0) < 0.01);
  const Stats q_a = stats(w->layers[1].attn.q_a_proj);  // [64, 128]: N(0, 1/128)
  CHECK(std::fabs(q_a.stddev * std::sqrt(128.0) - 1.0) < 0.05);
  const Stats down = stats(w->layers[0].mlp->down_proj);  // [128, 256]: N(0, 1/256)
  CHECK(std::fabs(down.stddev * std::sqrt(256.0) - 1.0) < 0.05);
  const Stats head = stats(w->lm_head);
  CHECK(std::fabs(head.stddev * std::sqrt(128.0) - 2.0) < 0.05);
  const Stats gate = stats(w->layers[1].moe->gate);
  CHECK(std::fabs(gate.stddev * std::sqrt(128.0) - 2.0) < 0.2);
  double norm_sum = 0, norm_sq = 0;
  for (float v : w->layers[1].input_layernorm) {
    norm_sum += v;
    norm_sq += (v - 1.0) * (v - 1.0);
  }
  CHECK(std::fabs(norm_sum / 128.0 - 1.0) < 0.05);
  CHECK(std::fabs(std::sqrt(norm_sq / 128.0) - 0.1) < 0.03);
  const auto& bias = w->layers[1].moe->e_score_correction_bias;
  REQUIRE(bias.size() == 16);
  CHECK(std::any_of(bias.begin(), bias.end(), [](float b) { return b != 0.0f; }));
  CHECK(std::all_of(bias.begin(), bias.end(), [](float b) { return std::fabs(b) < 0.5f; }));
}

TEST_CASE("make_model: same seed gives identical bytes, another seed different weights") {
  const TempDir& first = tiny_bf16();
  TempDir again, other;
  MakeModelOptions o;
  o.preset = "tiny";
  o.seed = 7;
  o.out_dir = again.path();
  REQUIRE(make_model(o).ok());
  o.seed = 8;
  o.out_dir = other.path();
  REQUIRE(make_model(o).ok());
  for (const std::string& name : files_in(again.path())) {
    INFO(name);
    CHECK(read_bytes(first.file(name)) == read_bytes(again.file(name)));
    if (name.find(".safetensors") != std::string::npos && name.find("index") == std::string::npos) {
      CHECK(read_bytes(first.file(name)) != read_bytes(other.file(name)));
    }
  }
  CHECK(read_bytes(first.file("config.json")) == read_bytes(other.file("config.json")));
}

TEST_CASE("make_model: tiny --fp8 quantizes attention and expert matrices with block scales") {
  const TempDir& bf16 = tiny_bf16();
  TempDir dir;
  MakeModelOptions o;
  o.preset = "tiny";
  o.seed = 7;
  o.fp8 = true;
  o.out_dir = dir.path();
  REQUIRE(make_model(o).ok());
  auto config = load_model_config(dir.path());
  REQUIRE(config.ok());
  REQUIRE(config->quantization.has_value());
  CHECK(config->quantization->weight_block_rows == 128);
  auto ckpt = Checkpoint::open(dir.path());
  REQUIRE(ckpt.ok());
  auto w = load_weights(*ckpt, *config);
  REQUIRE(w.ok());
  const auto& layer = w->layers[1];
  for (const WeightMatrix* m : std::vector<const WeightMatrix*>{&layer.attn.q_a_proj, &layer.attn.q_b_proj, &layer.attn.kv_a_proj_with_mqa,
                                &layer.attn.kv_b_proj, &layer.attn.o_proj, &layer.moe->experts[5].down_proj,
                                &layer.moe->shared_experts->up_proj, &w->mtp[0].block.moe->experts[0].gate_proj}) {
    CHECK(m->dtype == DType::F8_E4M3);
    CHECK(m->scale_inv != nullptr);
  }
  CHECK(w->embed_tokens.dtype == DType::BF16);
  CHECK(w->lm_head.dtype == DType::BF16);
  CHECK(layer.moe->gate.dtype == DType::BF16);
  CHECK(w->mtp[0].eh_proj.dtype == DType::BF16);

  // Same seed, same underlying values: FP8 dequantized is the BF16 model within FP8 rounding.
  auto bf_ckpt = Checkpoint::open(bf16.path());
  REQUIRE(bf_ckpt.ok());
  const TensorInfo* ref = bf_ckpt->find("model.layers.1.self_attn.kv_b_proj.weight");
  REQUIRE(ref != nullptr);
  const WeightMatrix& q = layer.attn.kv_b_proj;  // [256, 64]: 2 x 1 blocks
  const int64_t bcs = (q.cols + 127) / 128;
  for (int64_t r = 0; r < q.rows; ++r) {
    for (int64_t c = 0; c < q.cols; ++c) {
      const float scale = q.scale_inv[(r / 128) * bcs + c / 128];
      const float deq = fp8_e4m3_to_float(static_cast<const uint8_t*>(q.data)[r * q.cols + c]) * scale;
      const float want = element_at(DType::BF16, ref->data, r * q.cols + c);
      REQUIRE(std::fabs(deq - want) <= std::fabs(want) * (1.0f / 16 + 1.0f / 128) + scale / 1024);
    }
  }
}

TEST_CASE("make_model: num_layers overrides the preset's layer count, the MTP layer follows") {
  TempDir dir;
  MakeModelOptions o;
  o.preset = "tiny";
  o.seed = 3;
  o.num_layers = 5;
  o.out_dir = dir.path();
  REQUIRE(make_model(o).ok());
  auto config = load_model_config(dir.path());
  REQUIRE(config.ok());
  CHECK(config->num_hidden_layers == 5);
  CHECK(config->first_k_dense_replace == 1);
  auto ckpt = Checkpoint::open(dir.path());
  REQUIRE(ckpt.ok());
  CHECK(ckpt->find("model.layers.4.mlp.experts.15.down_proj.weight") != nullptr);
  CHECK(ckpt->find("model.layers.5.eh_proj.weight") != nullptr);
  CHECK(ckpt->find("model.layers.6.input_layernorm.weight") == nullptr);
  auto w = load_weights(*ckpt, *config);
  REQUIRE(w.ok());
  CHECK(w->layers.size() == 5);
  CHECK(w->layers[4].moe.has_value());
  REQUIRE(w->mtp.size() == 1);
  CHECK(w->mtp[0].shared_head_head.data == w->lm_head.data);

  auto lite = make_model_config_json("lite", true, 20);
  REQUIRE(lite.ok());
  auto parsed = parse_model_config(*lite, "lite");
  REQUIRE(parsed.ok());
  CHECK(parsed->num_hidden_layers == 20);
  CHECK(parsed->hidden_size == 2048);
  auto preset = parse_model_config(*make_model_config_json("lite", false, 0), "lite");
  REQUIRE(preset.ok());
  CHECK(preset->num_hidden_layers == 4);

  CHECK_FALSE(make_model_config_json("tiny", false, -1).ok());
  o.num_layers = -2;
  CHECK_FALSE(make_model(o).ok());
}

TEST_CASE("make_model: presets and bad options") {
  CHECK(make_model_presets() == std::vector<std::string>{"tiny", "lite"});
  auto lite_text = make_model_config_json("lite", true);
  REQUIRE(lite_text.ok());
  auto lite = parse_model_config(*lite_text, "lite");
  REQUIRE(lite.ok());
  CHECK(lite->hidden_size == 2048);
  CHECK_FALSE(lite->q_lora_rank.has_value());
  CHECK(lite->n_routed_experts == 64);
  CHECK(lite->num_experts_per_tok == 6);
  CHECK(lite->n_group == 8);
  CHECK(lite->topk_group == 4);
  CHECK(lite->n_shared_experts == 2);
  REQUIRE(lite->rope_scaling.has_value());
  CHECK(lite->rope_scaling->mscale_all_dim == 0.707);
  CHECK(lite->is_moe_layer(1));
  CHECK_FALSE(lite->is_moe_layer(0));
  CHECK(lite->quantization.has_value());
  deepseek_v3::DeepseekV3Weights layout;
  const auto table = deepseek_v3::build_weight_table(*lite, layout);
  CHECK(std::any_of(table.begin(), table.end(), [](const auto& b) {
    return b.name == "model.layers.0.self_attn.q_proj.weight" && b.shape == std::vector<int64_t>{16 * 192, 2048};
  }));

  CHECK_FALSE(make_model_config_json("huge", false).ok());
  TempDir dir;
  MakeModelOptions o;
  o.out_dir = dir.path();
  o.preset = "huge";
  CHECK_FALSE(make_model(o).ok());
  o.preset = "tiny";
  o.out_dir = "";
  CHECK_FALSE(make_model(o).ok());
  o.out_dir = dir.path();
  o.tokenizer_dir = dir.file("no-such-tokenizer");
  auto s = make_model(o);
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().message.find("tokenizer.json") != std::string::npos);
}

}  // namespace
}  // namespace latentserve::models::test
