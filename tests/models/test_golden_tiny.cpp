// The CPU forward pass against the official DeepSeek-V3 reference outputs of the tiny-dsv3
// fixture: logits, greedy continuations, routing and per-layer hidden statistics.
#include <cmath>

#include "model_harness.h"
#include "tests/models/test_checkpoint_util.h"

using namespace latentserve;
using namespace latentserve::testing;
using models::deepseek_v3::ForwardTrace;
using models::deepseek_v3::MlaForm;

namespace {

// README of the fixture: float32 noise is ~1e-5; 1e-3 is still 200x below the smallest mistake.
constexpr double kTolerance = 1e-3;

const nlohmann::json& golden() {
  static const nlohmann::json g = read_json(tiny_dir() + "/golden.json");
  return g;
}

std::vector<int32_t> prompt(int k) { return golden()["prompts"][size_t(k)].get<std::vector<int32_t>>(); }

// Prefills the whole prompt in one step; logits for every row.
std::vector<float> prefill_all_rows(const Model& model, const std::vector<int32_t>& p,
                                    ForwardTrace* trace = nullptr) {
  return prefill(model, p, /*all_rows=*/true, /*block_size=*/16, trace);
}

}  // namespace

TEST_CASE("tiny-dsv3: prefill last logits match the reference, both MLA forms", "[golden]") {
  auto loaded = Model::load(tiny_dir());
  REQUIRE(loaded.ok());
  Model& model = **loaded;
  for (MlaForm form : {MlaForm::kAbsorbed, MlaForm::kNaive}) {
    model.set_mla_form(form);
    for (const auto& case_ : golden()["prefill"]) {
      const auto p = prompt(case_["prompt"].get<int>());
      const auto logits = prefill_all_rows(model, p);
      const int64_t V = model.config().vocab_size;
      std::vector<float> last(logits.end() - V, logits.end());
      INFO("prompt " << case_["prompt"] << " form " << int(form));
      CHECK(max_abs_diff(last, case_["last_logits"]) < kTolerance);
    }
  }
}

TEST_CASE("tiny-dsv3: logits at every position of prompt 2", "[golden]") {
  const Model& model = cached_model(tiny_dir());
  const auto& ap = golden()["all_positions"];
  const auto p = prompt(ap["prompt"].get<int>());
  const auto logits = prefill_all_rows(model, p);
  const int64_t V = model.config().vocab_size;
  for (size_t pos = 0; pos < p.size(); ++pos) {
    std::vector<float> row(logits.begin() + int64_t(pos) * V, logits.begin() + int64_t(pos + 1) * V);
    INFO("position " << pos);
    CHECK(max_abs_diff(row, ap["logits"][pos]) < kTolerance);
  }
}

TEST_CASE("tiny-dsv3: greedy continuations and their top-5 logits", "[golden]") {
  const Model& model = cached_model(tiny_dir());
  for (const auto& g : golden()["greedy"]) {
    const auto p = prompt(g["prompt"].get<int>());
    const auto expected = g["new_tokens"].get<std::vector<int32_t>>();
    const GreedyRun run = run_greedy(model, p, int(expected.size()));
    INFO("prompt " << g["prompt"]);
    CHECK(run.new_tokens == expected);
    for (size_t j = 0; j < run.step_logits.size(); ++j) {
      const auto& step = g["steps"][j];
      for (size_t i = 0; i < step["ids"].size(); ++i) {
        const int id = step["ids"][i].get<int>();
        CHECK(std::abs(run.step_logits[j][size_t(id)] - step["values"][i].get<double>()) < kTolerance);
      }
    }
  }
}

TEST_CASE("tiny-dsv3 under Kimi-K2's model_type loads and decodes as DeepSeek-V3", "[golden]") {
  // The same tensors with config.json's model_type "kimi_k2" (DeepseekV3ForCausalLM kept): a
  // checkpoint of this architecture under Moonshot's name must give the reference's tokens.
  models::test::TempDir dir;
  nlohmann::json config = read_json(tiny_dir() + "/config.json");
  config["model_type"] = "kimi_k2";
  models::test::write_bytes(dir.file("config.json"), config.dump(2));
  for (const auto& entry : std::filesystem::directory_iterator(tiny_dir())) {
    const std::string name = entry.path().filename().string();
    if (name.find("safetensors") != std::string::npos) std::filesystem::create_symlink(entry.path(), dir.file(name));
  }
  auto model = Model::load(dir.path());
  REQUIRE(model.ok());
  CHECK((*model)->config().declared_model_type == "kimi_k2");
  const auto& g = golden()["greedy"][0];
  const auto expected = g["new_tokens"].get<std::vector<int32_t>>();
  CHECK(run_greedy(**model, prompt(g["prompt"].get<int>()), int(expected.size())).new_tokens == expected);
}

TEST_CASE("tiny-dsv3: full logits of 16 incremental decode steps", "[golden]") {
  const Model& model = cached_model(tiny_dir());
  const auto& d = golden()["decode_full_logits"];
  const auto p = prompt(d["prompt"].get<int>());
  const GreedyRun run = run_greedy(model, p, int(d["logits"].size()));
  for (size_t j = 0; j < run.step_logits.size(); ++j) {
    INFO("step " << j);
    CHECK(max_abs_diff(run.step_logits[j], d["logits"][j]) < kTolerance);
  }
}

TEST_CASE("tiny-dsv3: chunked prefill over block boundaries equals the reference", "[golden]") {
  const Model& model = cached_model(tiny_dir());
  const auto& g = golden()["greedy"][3];  // the 70-token prompt spans two 64-token blocks
  const auto p = prompt(g["prompt"].get<int>());
  for (int64_t chunk : {1, 5, 64}) {
    for (int64_t block_size : {1, 16, 64}) {
      const GreedyRun run = run_greedy(model, p, 4, block_size, chunk);
      INFO("chunk " << chunk << " block " << block_size);
      const auto expected = g["new_tokens"].get<std::vector<int32_t>>();
      CHECK(run.new_tokens == std::vector<int32_t>(expected.begin(), expected.begin() + 4));
      CHECK(std::abs(run.step_logits[0][size_t(run.new_tokens[0])] -
                     g["steps"][0]["values"][0].get<double>()) < kTolerance);
    }
  }
}

TEST_CASE("tiny-dsv3: routing of prompt 1 in the reference's order", "[golden]") {
  const Model& model = cached_model(tiny_dir());
  const auto& routing = golden()["routing"];
  const auto p = prompt(routing["prompt"].get<int>());
  ForwardTrace trace;
  prefill_all_rows(model, p, &trace);
  for (const auto& layer : routing["layers"]) {
    const std::string name = "layer." + std::to_string(layer["layer"].get<int>());
    const auto& ids = trace.indices.at(name + ".expert_ids");
    const auto& weights = trace.tensors.at(name + ".expert_weights").values;
    const size_t k = layer["expert_ids"][0].size();
    for (size_t t = 0; t < layer["expert_ids"].size(); ++t) {
      for (size_t j = 0; j < k; ++j) {
        INFO(name << " token " << t << " choice " << j);
        CHECK(ids[t * k + j] == layer["expert_ids"][t][j].get<int>());
        CHECK(std::abs(weights[t * k + j] - layer["weights"][t][j].get<double>()) < 1e-5);
      }
    }
  }
}

namespace {
void check_stats(const models::deepseek_v3::TracedTensor& t, const nlohmann::json& g,
                 const std::string& what) {
  double sum = 0, abs_max = 0;
  for (float v : t.values) {
    sum += v;
    abs_max = std::max(abs_max, double(std::abs(v)));
  }
  const double mean = sum / double(t.values.size());
  double var = 0;
  for (float v : t.values) var += (v - mean) * (v - mean);
  const double stdev = std::sqrt(var / double(t.values.size()));
  double l2 = 0;
  const float* last = &t.values[size_t((t.rows - 1) * t.cols)];
  for (int64_t c = 0; c < t.cols; ++c) l2 += double(last[c]) * last[c];
  INFO(what);
  CHECK(std::abs(mean - g["mean"].get<double>()) < 1e-4);
  CHECK(std::abs(stdev - g["std"].get<double>()) < 1e-4);
  CHECK(std::abs(abs_max - g["abs_max"].get<double>()) < 1e-3);
  CHECK(std::abs(std::sqrt(l2) - g["last_pos_l2"].get<double>()) < 1e-3);
  for (int c = 0; c < 8; ++c) CHECK(std::abs(last[c] - g["last_pos_first8"][size_t(c)].get<double>()) < 1e-4);
}
}  // namespace

TEST_CASE("tiny-dsv3: per-layer hidden statistics of prompt 1", "[golden]") {
  const Model& model = cached_model(tiny_dir());
  const auto& hc = golden()["hidden_checksums"];
  ForwardTrace trace;
  prefill_all_rows(model, prompt(hc["prompt"].get<int>()), &trace);
  check_stats(trace.tensors.at("embed"), hc["embed"], "embed");
  for (const auto& layer : hc["layers"]) {
    const std::string name = "layer." + std::to_string(layer["layer"].get<int>());
    check_stats(trace.tensors.at(name + ".attn_out"), layer["attn_out"], name + ".attn_out");
    check_stats(trace.tensors.at(name + ".ffn_out"), layer["ffn_out"], name + ".ffn_out");
    check_stats(trace.tensors.at(name + ".output"), layer["out"], name + ".output");
  }
  check_stats(trace.tensors.at("norm"), hc["final_norm"], "final norm");
}

TEST_CASE("tiny-dsv3: a batch of all prompts equals each prompt alone", "[golden]") {
  const Model& model = cached_model(tiny_dir());
  const int64_t block_size = 8;
  const int64_t num_blocks = 64;
  auto cache = LatentCacheStorage::allocate(model.config(), model.num_cache_layers(), num_blocks, block_size);
  REQUIRE(cache.ok());
  BlockHandout blocks(num_blocks);
  Batch batch;
  std::vector<TestSequence> seqs(4);
  for (int k = 0; k < 4; ++k) {
    seqs[size_t(k)].tokens = prompt(k);
    blocks.ensure(seqs[size_t(k)], int64_t(seqs[size_t(k)].tokens.size()), block_size);
    models::append_sequence(batch, seqs[size_t(k)].tokens, 0, seqs[size_t(k)].block_table, block_size, true);
  }
  auto out = model.forward(batch, *cache);
  REQUIRE(out.ok());
  const int64_t V = model.config().vocab_size;
  for (int k = 0; k < 4; ++k) {
    std::vector<float> row(out->logits.begin() + k * V, out->logits.begin() + (k + 1) * V);
    INFO("prompt " << k);
    CHECK(max_abs_diff(row, golden()["prefill"][size_t(k)]["last_logits"]) < kTolerance);
  }
}

TEST_CASE("forward rejects an invalid batch and leaves the cache untouched", "[model]") {
  const Model& model = cached_model(tiny_dir());
  auto cache = LatentCacheStorage::allocate(model.config(), model.num_cache_layers(), 4, 16);
  REQUIRE(cache.ok());
  Batch batch;
  models::append_sequence(batch, {5, 6, 7}, 0, {2}, 16, true);
  batch.token_ids[1] = int32_t(model.config().vocab_size);  // out of the vocabulary
  auto out = model.forward(batch, *cache);
  REQUIRE_FALSE(out.ok());
  CHECK_THAT(out.error().message, Catch::Contains("vocabulary"));

  Batch short_table;
  models::append_sequence(short_table, std::vector<int32_t>(20, 3), 0, {1}, 16, true);
  auto out2 = model.forward(short_table, *cache);
  REQUIRE_FALSE(out2.ok());
  CHECK_THAT(out2.error().message, Catch::Contains("block table"));
}
