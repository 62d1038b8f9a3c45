// Engine behaviour that depends on sampling and text: seeded sampling independent of the batch,
// n parallel completions, stop strings spanning tokens, logprobs, min_tokens.
#include "engine_harness.h"

using namespace latentserve;
using namespace latentserve::testing;

namespace {

// A deterministic decoder for tests: token id t reads as the two letters of t in base 26
// ("ab", "zz", ...), so a stop string of three letters always spans two tokens.
class LetterDecoder : public engine::TokenDecoder {
 public:
  std::string push(int32_t id) override {
    return std::string(1, char('a' + (id / 26) % 26)) + char('a' + id % 26);
  }
  std::string flush() override { return ""; }
};

std::string letters(const std::vector<int32_t>& ids) {
  LetterDecoder d;
  std::string s;
  for (int32_t id : ids) s += d.push(id);
  return s;
}

engine::EngineConfig text_config() {
  engine::EngineConfig c = quiet_config();
  c.decoder_factory = [](bool) { return std::make_unique<LetterDecoder>(); };
  return c;
}

engine::Request sampled(const std::vector<int32_t>& prompt, int64_t seed, int max_tokens) {
  engine::Request r;
  r.prompt_token_ids = prompt;
  r.params.temperature = 1.0f;
  r.params.top_p = 0.9f;
  r.params.seed = seed;
  r.params.max_tokens = max_tokens;
  r.params.ignore_eos = true;
  return r;
}

}  // namespace

TEST_CASE("engine: seeded sampling does not depend on what else is batched", "[engine][sampling]") {
  const auto prompts = random_prompts(6, 3, 25, 21);
  std::vector<engine::Request> requests;
  for (size_t i = 0; i < prompts.size(); ++i) requests.push_back(sampled(prompts[i], 1000 + int64_t(i), 10));

  auto engine = engine::Engine::create(tiny_model(), quiet_config());
  REQUIRE(engine.ok());
  const auto together = run_all(**engine, requests);
  // Alone, in reverse order, and mixed with unseeded strangers.
  for (size_t i = 0; i < requests.size(); ++i) {
    std::vector<engine::Request> mix = {sampled(prompts[(i + 1) % prompts.size()], 7, 10)};
    mix[0].params.seed.reset();
    mix.push_back(requests[i]);
    const auto alone = run_all(**engine, mix);
    INFO("request " << i);
    CHECK(alone[1].completions.at(0).tokens == together[i].completions.at(0).tokens);
  }
  // A different seed gives a different continuation (with overwhelming probability).
  const auto other = run_all(**engine, {sampled(prompts[0], 999999, 10)});
  CHECK(other[0].completions.at(0).tokens != together[0].completions.at(0).tokens);
  check_all_blocks_free(**engine);
}

TEST_CASE("engine: n completions share the prompt and differ", "[engine][sampling]") {
  auto engine = engine::Engine::create(tiny_model(), quiet_config());
  REQUIRE(engine.ok());
  auto prompt = random_prompts(1, 40, 40, 22)[0];  // two full 16-token blocks + 8
  auto r = sampled(prompt, 5, 8);
  r.params.n = 4;
  const auto results = run_all(**engine, {r});
  REQUIRE(results[0].completions.size() == 4);
  std::set<std::vector<int32_t>> distinct;
  for (const auto& [index, c] : results[0].completions) {
    CHECK(c.tokens.size() == 8);
    CHECK(c.finish_reason == "length");
    distinct.insert(c.tokens);
  }
  CHECK(distinct.size() > 1);
  CHECK(results[0].usage.prompt_tokens == 40);
  CHECK(results[0].usage.completion_tokens == 32);
  // Completions 1..3 took the 32 tokens of full prompt blocks from the prefix cache.
  const auto stats = (*engine)->stats();
  CHECK(stats.prefix_hit_tokens == 3 * 32);
  CHECK(stats.prompt_tokens == 40 + 3 * 8);
  // Reproducible: the same request again gives the same four completions.
  const auto again = run_all(**engine, {r});
  for (int i = 0; i < 4; ++i) CHECK(again[0].completions.at(i).tokens == results[0].completions.at(i).tokens);
  check_all_blocks_free(**engine);
}

TEST_CASE("engine: a stop string spanning two tokens ends the completion, text withheld", "[engine][sampling]") {
  auto engine = engine::Engine::create(tiny_model(), text_config());
  REQUIRE(engine.ok());
  auto prompt = random_prompts(1, 12, 12, 23)[0];
  auto greedy = greedy_requests({prompt}, 12);
  const auto free_run = run_all(**engine, greedy);
  const auto& tokens = free_run[0].completions.at(0).tokens;
  const std::string text = letters(tokens);
  REQUIRE(free_run[0].completions.at(0).text == text);

  // Stop on the 3 letters that straddle tokens 4 and 5: the 2nd letter of token 4 and the first two of token 5.
  const std::string stop = text.substr(9, 3);
  const size_t first = text.find(stop);
  auto stopping = greedy;
  stopping[0].params.stop = {stop, "this never appears"};
  const auto stopped = run_all(**engine, stopping);
  const auto& c = stopped[0].completions.at(0);
  CHECK(c.finish_reason == "stop");
  CHECK(c.stop_reason == stop);
  CHECK(c.text == text.substr(0, first));
  CHECK(c.tokens.size() == (first + stop.size() + 1) / 2);

  stopping[0].params.include_stop_str_in_output = true;
  const auto included = run_all(**engine, stopping);
  CHECK(included[0].completions.at(0).text == text.substr(0, first + stop.size()));
  check_all_blocks_free(**engine);
}

TEST_CASE("engine: stop token ids, min_tokens and logprobs", "[engine][sampling]") {
  auto engine = engine::Engine::create(tiny_model(), quiet_config());
  REQUIRE(engine.ok());
  auto prompt = random_prompts(1, 9, 9, 24)[0];
  auto greedy = greedy_requests({prompt}, 10);
  greedy[0].params.logprobs = 3;
  const auto base = run_all(**engine, greedy);
  const auto& tokens = base[0].completions.at(0).tokens;
  REQUIRE(base[0].completions.at(0).logprobs.size() == 10);
  for (const auto& lp : base[0].completions.at(0).logprobs) {
    REQUIRE(lp.top.size() == 3);
    CHECK(lp.top[0].token == lp.token);  // greedy: the sampled token is the most likely
    CHECK(lp.logprob == Approx(lp.top[0].logprob));
    CHECK(lp.top[0].logprob >= lp.top[1].logprob);
  }

  auto stop_ids = greedy;
  stop_ids[0].params.stop_token_ids = {tokens[3]};
  const auto stopped = run_all(**engine, stop_ids);
  const auto first = std::find(tokens.begin(), tokens.end(), tokens[3]) - tokens.begin();
  CHECK(stopped[0].completions.at(0).tokens ==
        std::vector<int32_t>(tokens.begin(), tokens.begin() + first + 1));
  CHECK(stopped[0].completions.at(0).finish_reason == "stop");
  CHECK(stopped[0].completions.at(0).stop_reason == std::to_string(tokens[3]));

  // With min_tokens past it, the stop id is banned until then and generation continues.
  stop_ids[0].params.min_tokens = 8;
  const auto held = run_all(**engine, stop_ids);
  CHECK(held[0].completions.at(0).tokens.size() >= 8);
  for (size_t i = 0; i + 1 < 8 && i < held[0].completions.at(0).tokens.size(); ++i) {
    CHECK(held[0].completions.at(0).tokens[i] != tokens[3]);
  }
  check_all_blocks_free(**engine);
}
