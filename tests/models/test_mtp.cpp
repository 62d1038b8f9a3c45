// The MTP module against the tiny-dsv3 goldens: prefill logits, draft top-5 at every position,
// incremental calls equal to one call over the whole sequence, and the shifted cache layout.
#include <cmath>

#include "model_harness.h"

using namespace latentserve;
using namespace latentserve::testing;
using models::deepseek_v3::MlaForm;

namespace {

constexpr double kTolerance = 1e-3;  // the fixture README: float32 noise ~1e-5

const nlohmann::json& golden() {
  static const nlohmann::json g = read_json(tiny_dir() + "/golden.json");
  return g;
}

// Block tables in a scrambled order, covering `tokens` (+ one for the shifted MTP layout).
std::vector<int32_t> scrambled_table(int64_t tokens, int64_t block_size, int64_t num_blocks) {
  std::vector<int32_t> table;
  for (int64_t b = 0; b * block_size < tokens + 1; ++b) table.push_back(int32_t((b * 5 + 3) % num_blocks));
  return table;
}

struct MtpRun {
  std::vector<std::vector<float>> logits;  // one row per MTP position
};

// Main model over the whole sequence in one call, then the MTP over positions [0, first_chunk)
// in one call and the rest one position per call (or all at once when first_chunk = S).
MtpRun run_mtp(const Model& model, const std::vector<int32_t>& sequence, int64_t first_chunk) {
  const auto& cfg = model.config();
  const int64_t S = int64_t(sequence.size()) - 1;  // MTP positions 0..S-1
  const int64_t block_size = 16, num_blocks = 16;
  auto cache = LatentCacheStorage::allocate(cfg, model.num_cache_layers_with_mtp(), num_blocks, block_size);
  REQUIRE(cache.ok());
  const auto table = scrambled_table(int64_t(sequence.size()), block_size, num_blocks);
  Batch main;
  models::append_sequence(main, sequence, 0, table, block_size, false);
  auto out = model.forward(main, *cache);
  REQUIRE(out.ok());
  const int64_t H = cfg.hidden_size;

  MtpRun run;
  int64_t done = 0;
  while (done < S) {
    const int64_t n = done == 0 ? first_chunk : 1;
    Batch b;
    std::vector<int32_t> next(sequence.begin() + done + 1, sequence.begin() + done + 1 + n);
    models::append_sequence(b, next, int32_t(done), table, block_size, false);
    for (int32_t r = 0; r < int32_t(n); ++r) b.logit_rows.push_back(r);
    std::vector<float> hidden(out->hidden.begin() + done * H, out->hidden.begin() + (done + n) * H);
    auto mtp = model.mtp_forward(b, hidden, *cache);
    if (!mtp.ok()) FAIL(mtp.error().message);
    for (int64_t r = 0; r < n; ++r) {
      run.logits.emplace_back(mtp->logits.begin() + r * cfg.vocab_size,
                              mtp->logits.begin() + (r + 1) * cfg.vocab_size);
    }
    done += n;
  }
  return run;
}

std::vector<int32_t> full_sequence(const nlohmann::json& case_) {
  const auto prompt = golden()["prompts"][case_["prompt"].get<size_t>()].get<std::vector<int32_t>>();
  std::vector<int32_t> seq = {prompt[0]};
  for (int32_t t : case_["input_tokens"].get<std::vector<int32_t>>()) seq.push_back(t);
  return seq;
}

}  // namespace

TEST_CASE("mtp: input tokens are the prompt followed by the main model's greedy tokens", "[mtp][golden]") {
  for (const auto& c : golden()["mtp"]["prompts"]) {
    const auto prompt = golden()["prompts"][c["prompt"].get<size_t>()].get<std::vector<int32_t>>();
    const auto greedy = golden()["greedy"][c["prompt"].get<size_t>()]["new_tokens"].get<std::vector<int32_t>>();
    std::vector<int32_t> expected = prompt;
    expected.insert(expected.end(), greedy.begin(), greedy.end());
    CHECK(full_sequence(c) == expected);
  }
}

TEST_CASE("mtp: prefill then incremental drafts match the reference, both MLA forms", "[mtp][golden]") {
  auto loaded = Model::load(tiny_dir());
  REQUIRE(loaded.ok());
  Model& model = **loaded;
  REQUIRE(model.num_mtp_layers() == 1);
  for (MlaForm form : {MlaForm::kAbsorbed, MlaForm::kNaive}) {
    model.set_mla_form(form);
    for (const auto& c : golden()["mtp"]["prompts"]) {
      const auto seq = full_sequence(c);
      const int64_t n = int64_t(golden()["prompts"][c["prompt"].get<size_t>()].size());
      const MtpRun run = run_mtp(model, seq, n);
      INFO("prompt " << c["prompt"] << " form " << int(form));
      REQUIRE(run.logits.size() == c["draft_top5"].size());
      CHECK(max_abs_diff(run.logits[size_t(n - 1)], c["prefill_last_logits"]) < kTolerance);
      const auto drafts = c["draft_tokens"].get<std::vector<int32_t>>();
      for (size_t i = 0; i < run.logits.size(); ++i) {
        const auto& top = c["draft_top5"][i];
        INFO("position " << i);
        CHECK(argmax(run.logits[i].data(), int64_t(run.logits[i].size())) == drafts[i]);
        const auto ids = top["ids"].get<std::vector<int32_t>>();
        for (size_t j = 0; j < ids.size(); ++j) {
          CHECK(std::abs(run.logits[i][size_t(ids[j])] - top["values"][j].get<double>()) < kTolerance);
        }
      }
      if (c.contains("prefill_logits")) {
        for (size_t i = 0; i < c["prefill_logits"].size(); ++i) {
          CHECK(max_abs_diff(run.logits[i], c["prefill_logits"][i]) < kTolerance);
        }
      }
    }
  }
}

TEST_CASE("mtp: one call over the whole sequence equals prefill plus single steps", "[mtp]") {
  const Model& model = cached_model(tiny_dir());
  const auto& c = golden()["mtp"]["prompts"][3];  // 70 prompt tokens: spans several blocks
  const auto seq = full_sequence(c);
  const int64_t S = int64_t(seq.size()) - 1;
  const MtpRun whole = run_mtp(model, seq, S);
  const MtpRun steps = run_mtp(model, seq, 9);
  REQUIRE(whole.logits.size() == steps.logits.size());
  double worst = 0;
  for (size_t i = 0; i < whole.logits.size(); ++i) {
    for (size_t v = 0; v < whole.logits[i].size(); ++v) {
      worst = std::max(worst, double(std::abs(whole.logits[i][v] - steps.logits[i][v])));
    }
  }
  CHECK(worst < kTolerance);
}

TEST_CASE("mtp: bad inputs are rejected with a message", "[mtp]") {
  const Model& model = cached_model(tiny_dir());
  const auto& cfg = model.config();
  auto main_only = LatentCacheStorage::allocate(cfg, model.num_cache_layers(), 4, 16);
  REQUIRE(main_only.ok());
  Batch b;
  models::append_sequence(b, {5, 6}, 0, {0, 1}, 16, true);
  std::vector<float> hidden(size_t(2 * cfg.hidden_size), 0.5f);
  auto no_layer = model.mtp_forward(b, hidden, *main_only);
  REQUIRE_FALSE(no_layer.ok());
  CHECK_THAT(no_layer.error().message, Catch::Contains("cache layer"));

  auto cache = LatentCacheStorage::allocate(cfg, model.num_cache_layers_with_mtp(), 4, 16);
  REQUIRE(cache.ok());
  hidden.pop_back();
  auto short_hidden = model.mtp_forward(b, hidden, *cache);
  REQUIRE_FALSE(short_hidden.ok());
  CHECK_THAT(short_hidden.error().message, Catch::Contains("hidden"));

  hidden.push_back(0.5f);
  Batch edge;  // 16 positions in one block: the shifted layout needs a second block
  models::append_sequence(edge, std::vector<int32_t>(16, 7), 0, {2}, 16, true);
  std::vector<float> h16(size_t(16 * cfg.hidden_size), 0.25f);
  auto short_table = model.mtp_forward(edge, h16, *cache);
  REQUIRE_FALSE(short_table.ok());
  CHECK_THAT(short_table.error().message, Catch::Contains("shifted"));
  CHECK_FALSE(model.mtp_forward(b, hidden, *cache, 1).ok());
}
