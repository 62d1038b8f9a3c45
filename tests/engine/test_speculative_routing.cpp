// The routing log the speculative-decoding benchmark prices its roofline with: one record per
// forward call, and distinct experts that agree with the expert ids a trace records.
#include <algorithm>
#include <random>
#include <set>
#include <string>

#include <catch2/catch.hpp>

#include "models/batch.h"
#include "models/deepseek_v3/model.h"
#include "models/latent_cache.h"

namespace ds = latentserve::models::deepseek_v3;
using latentserve::models::append_sequence;
using latentserve::models::Batch;
using latentserve::models::LatentCacheStorage;

namespace {

int64_t distinct_in(const ds::ForwardTrace& trace, const std::string& key) {
  const auto& ids = trace.indices.at(key);
  return int64_t(std::set<int32_t>(ids.begin(), ids.end()).size());
}

}  // namespace

TEST_CASE("the routing log counts each call's distinct experts as the trace shows them", "[speculative]") {
  auto loaded = ds::Model::load(std::string(LATENTSERVE_SHARED_FIXTURES) + "/tiny-dsv3");
  REQUIRE(loaded.ok());
  ds::Model& model = **loaded;
  const auto& c = model.config();
  REQUIRE(model.num_mtp_layers() > 0);
  const int64_t bs = 4;
  auto cache = LatentCacheStorage::allocate(c, model.num_cache_layers_with_mtp(), 16, bs);
  REQUIRE(cache.ok());

  std::mt19937 rng(std::random_device{}());
  const int len = std::uniform_int_distribution<int>(3, 11)(rng);
  std::vector<int32_t> tokens(static_cast<size_t>(len));
  for (auto& t : tokens) t = std::uniform_int_distribution<int32_t>(2, int32_t(c.vocab_size) - 1)(rng);
  const std::vector<int32_t> table = {0, 1, 2, 3, 4, 5, 6, 7};

  Batch main;
  append_sequence(main, tokens, 0, table, bs, true);
  ds::RoutingLog log;
  model.set_routing_log(&log);
  ds::ForwardTrace trace;
  auto out = model.forward(main, *cache, &trace);
  REQUIRE(out.ok());
  Batch mtp;
  append_sequence(mtp, std::vector<int32_t>(tokens.begin() + 1, tokens.end()), 0, table, bs, true);
  std::vector<float> hidden(out->hidden.begin(), out->hidden.end() - c.hidden_size);
  ds::ForwardTrace mtp_trace;
  REQUIRE(model.mtp_forward(mtp, hidden, *cache, 0, &mtp_trace).ok());
  REQUIRE(model.mtp_forward(mtp, hidden, *cache).ok());  // no trace of the caller's: counted all the same
  model.set_routing_log(nullptr);
  REQUIRE(model.forward(main, *cache).ok());  // detached: not recorded

  REQUIRE(log.size() == 3);
  int64_t moe_layers = 0, distinct = 0;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    if (!c.is_moe_layer(l)) continue;
    ++moe_layers;
    distinct += distinct_in(trace, "layer." + std::to_string(l) + ".expert_ids");
  }
  CHECK_FALSE(log[0].mtp);
  CHECK(log[0].tokens == len);
  CHECK(log[0].logit_rows == 1);
  CHECK(log[0].max_query_len == len);
  CHECK(log[0].moe_layers == moe_layers);
  CHECK(log[0].distinct_experts == distinct);
  CHECK(distinct >= moe_layers * std::min<int64_t>(c.num_experts_per_tok, c.n_routed_experts));
  for (size_t i : {size_t(1), size_t(2)}) {
    CHECK(log[i].mtp);
    CHECK(log[i].tokens == len - 1);
    CHECK(log[i].logit_rows == 1);
    CHECK(log[i].moe_layers == 1);
    CHECK(log[i].distinct_experts == distinct_in(mtp_trace, "mtp.expert_ids"));
  }
}
