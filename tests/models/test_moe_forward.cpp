// moe_forward over many tokens (their experts run in several groups of products) against each
// token alone: the same bits, because every product and the combine keep their order.
#include <cstring>
#include <random>

#include "model_harness.h"
#include "models/deepseek_v3/ffn.h"

using namespace latentserve;
using namespace latentserve::testing;
namespace dsv3 = latentserve::models::deepseek_v3;

TEST_CASE("moe_forward: a long batch of tokens equals each token alone, bit for bit", "[model]") {
  const Model& model = cached_model(tiny_dir());
  const auto& config = model.config();
  const auto& layer = model.weights().layers[size_t(config.first_k_dense_replace)];
  REQUIRE(layer.moe.has_value());
  const int64_t hidden = config.hidden_size;
  // 300 tokens × 4 experts each: 1,200 expert rows, several groups of products.
  const int64_t tokens = 300;
  std::mt19937 rng(std::random_device{}());
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(size_t(tokens * hidden));
  for (float& v : x) v = normal(rng);
  const auto router = dsv3::router_params(config);
  std::vector<float> batched(size_t(tokens * hidden));
  dsv3::moe_forward(*layer.moe, router, x.data(), tokens, batched.data(), nullptr, "");
  int differing = 0;
  std::vector<float> alone(static_cast<size_t>(hidden));
  for (int64_t t = 0; t < tokens; ++t) {
    dsv3::moe_forward(*layer.moe, router, x.data() + t * hidden, 1, alone.data(), nullptr, "");
    differing += std::memcmp(alone.data(), batched.data() + t * hidden, size_t(hidden) * sizeof(float)) != 0;
  }
  CHECK(differing == 0);
}
