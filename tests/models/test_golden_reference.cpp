// The forward pass against our own reference fixtures (tests/fixtures/ref-*, made from Hugging
// Face transformers in float32): YaRN without q_lora, an FP8 block-scaled sharded checkpoint,
// and the deepseek_v2 model type (softmax routing).
#include <algorithm>

#include "model_harness.h"

using namespace latentserve;
using namespace latentserve::testing;
using models::deepseek_v3::ForwardTrace;
using models::deepseek_v3::MlaForm;

namespace {

constexpr double kTolerance = 1e-3;

std::string fixture(const std::string& name) { return std::string(LATENTSERVE_TEST_FIXTURES) + "/" + name; }

std::vector<float> prefill_rows(const Model& model, const std::vector<int32_t>& p, bool all_rows,
                                ForwardTrace* trace = nullptr) {
  return prefill(model, p, all_rows, /*block_size=*/4, trace);
}

void check_fixture(const std::string& name) {
  const auto golden = read_json(fixture(name) + "/golden.json");
  auto loaded = Model::load(fixture(name));
  if (!loaded.ok()) FAIL(loaded.error().message);
  Model& model = **loaded;
  const int64_t V = model.config().vocab_size;
  auto prompt = [&](const nlohmann::json& k) {
    return golden["prompts"][k.get<size_t>()].get<std::vector<int32_t>>();
  };
  CHECK(std::abs(model.config().softmax_scale() - golden["derived"]["softmax_scale"].get<double>()) < 1e-6);

  for (MlaForm form : {MlaForm::kAbsorbed, MlaForm::kNaive}) {
    model.set_mla_form(form);
    for (const auto& c : golden["prefill"]) {
      INFO(name << " prefill prompt " << c["prompt"] << " form " << int(form));
      CHECK(max_abs_diff(prefill_rows(model, prompt(c["prompt"]), false), c["last_logits"]) < kTolerance);
    }
  }
  model.set_mla_form(MlaForm::kAbsorbed);

  const auto& ap = golden["all_positions"];
  const auto all = prefill_rows(model, prompt(ap["prompt"]), true);
  for (size_t pos = 0; pos < ap["logits"].size(); ++pos) {
    INFO(name << " position " << pos);
    std::vector<float> row(all.begin() + int64_t(pos) * V, all.begin() + int64_t(pos + 1) * V);
    CHECK(max_abs_diff(row, ap["logits"][pos]) < kTolerance);
  }

  for (const auto& g : golden["greedy"]) {
    const auto expected = g["new_tokens"].get<std::vector<int32_t>>();
    const GreedyRun run = run_greedy(model, prompt(g["prompt"]), int(expected.size()), 4);
    INFO(name << " greedy prompt " << g["prompt"]);
    CHECK(run.new_tokens == expected);
    for (size_t j = 0; j < run.step_logits.size(); ++j) {
      for (size_t i = 0; i < g["steps"][j]["ids"].size(); ++i) {
        const int id = g["steps"][j]["ids"][i].get<int>();
        CHECK(std::abs(run.step_logits[j][size_t(id)] - g["steps"][j]["values"][i].get<double>()) < kTolerance);
      }
    }
  }

  const auto& d = golden["decode_full_logits"];
  const GreedyRun run = run_greedy(model, prompt(d["prompt"]), int(d["logits"].size()), 4);
  for (size_t j = 0; j < run.step_logits.size(); ++j) {
    INFO(name << " decode step " << j);
    CHECK(max_abs_diff(run.step_logits[j], d["logits"][j]) < kTolerance);
  }

  // Routing: expert sets (ascending ids) and their final weights.
  const auto& routing = golden["routing"];
  ForwardTrace trace;
  prefill_rows(model, prompt(routing["prompt"]), false, &trace);
  for (const auto& [layer, r] : routing["layers"].items()) {
    const auto& ids = trace.indices.at("layer." + layer + ".expert_ids");
    const auto& weights = trace.tensors.at("layer." + layer + ".expert_weights").values;
    const size_t k = r["expert_ids"][0].size();
    for (size_t t = 0; t < r["expert_ids"].size(); ++t) {
      std::vector<std::pair<int32_t, float>> got;
      for (size_t j = 0; j < k; ++j) got.emplace_back(ids[t * k + j], weights[t * k + j]);
      std::sort(got.begin(), got.end());
      for (size_t j = 0; j < k; ++j) {
        INFO(name << " layer " << layer << " token " << t);
        CHECK(got[j].first == r["expert_ids"][t][j].get<int>());
        CHECK(std::abs(got[j].second - r["weights"][t][j].get<double>()) < 1e-5);
      }
    }
  }
}

}  // namespace

TEST_CASE("reference fixture: YaRN rope scaling without q_lora_rank", "[golden][reference]") {
  check_fixture("ref-yarn-noqlora");
}

TEST_CASE("reference fixture: FP8 block-scaled sharded checkpoint", "[golden][reference]") {
  check_fixture("ref-fp8");
}

TEST_CASE("reference fixture: deepseek_v2 softmax routing", "[golden][reference]") {
  check_fixture("ref-v2");
}
