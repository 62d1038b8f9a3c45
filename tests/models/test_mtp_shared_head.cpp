// load_weights shares the MTP layer's embedding and shared_head.head with the main embedding and
// lm_head when their bytes are identical (DeepSeek-V3's releases, the tiny-dsv3 fixture), and
// keeps them separate when anything differs (one element, an FP8 block scale).
#include "models/deepseek_v3/weights.h"

#include "models/checkpoint.h"
#include "tests/models/test_checkpoint_util.h"

namespace latentserve::models::test {
namespace {

using deepseek_v3::DeepseekV3Weights;
using deepseek_v3::load_weights;

constexpr const char* kHead = "model.layers.2.shared_head.head.weight";
constexpr const char* kEmbed = "model.layers.2.embed_tokens.weight";

Result<DeepseekV3Weights> load(const std::vector<TensorBytes>& tensors, const ModelConfig& config,
                               TempDir& dir, Checkpoint& keep) {
  REQUIRE(write_safetensors(dir.file("model.safetensors"), tensors).ok());
  auto ckpt = Checkpoint::open(dir.path());
  REQUIRE(ckpt.ok());
  keep = std::move(ckpt).value();
  return load_weights(keep, config);
}

void copy_bytes(std::vector<TensorBytes>& tensors, const std::string& from, const std::string& to) {
  const std::vector<uint8_t> bytes = find_tensor(tensors, from)->bytes;
  find_tensor(tensors, to)->bytes = bytes;
}

// Both tensors as F8_E4M3 with block scales, `to` a copy of `from`.
void make_fp8_pair(std::vector<TensorBytes>& tensors, const ModelConfig& config,
                   const std::string& from, const std::string& to) {
  auto src = find_tensor(tensors, from);
  const int64_t rows = src->spec.shape[0], cols = src->spec.shape[1];
  auto q = quantize_fp8_blocks(DType::BF16, src->bytes.data(), rows, cols,
                               config.quantization->weight_block_rows,
                               config.quantization->weight_block_cols);
  REQUIRE(q.ok());
  for (const std::string& name : {from, to}) {
    auto t = find_tensor(tensors, name);
    t->spec.dtype = DType::F8_E4M3;
    t->bytes = q->data;
    TensorBytes s;
    s.spec = {name + "_scale_inv", DType::F32,
              {(rows + q->block_rows - 1) / q->block_rows, (cols + q->block_cols - 1) / q->block_cols}};
    s.bytes.resize(q->scale_inv.size() * 4);
    std::memcpy(s.bytes.data(), q->scale_inv.data(), s.bytes.size());
    tensors.push_back(std::move(s));
  }
}

TEST_CASE("mtp shared head: the tiny-dsv3 fixture's copies point at the main tensors") {
  auto config = load_model_config(shared_fixture("tiny-dsv3"));
  REQUIRE(config.ok());
  auto ckpt = Checkpoint::open(shared_fixture("tiny-dsv3"));
  REQUIRE(ckpt.ok());
  const TensorInfo* head = ckpt->find("model.layers.3.shared_head.head.weight");
  const TensorInfo* embed = ckpt->find("model.layers.3.embed_tokens.weight");
  REQUIRE(head != nullptr);
  REQUIRE(embed != nullptr);
  auto w = load_weights(*ckpt, *config);
  REQUIRE(w.ok());
  REQUIRE(w->mtp.size() == 1);
  CHECK(w->mtp[0].shared_head_head.data == w->lm_head.data);
  CHECK(w->mtp[0].embed_tokens.data == w->embed_tokens.data);
  CHECK(w->mtp[0].shared_head_head.rows == 1024);
  CHECK(w->mtp[0].shared_head_head.cols == 256);
  CHECK(w->lm_head.data != w->embed_tokens.data);
  // The copies' pages were handed back after the comparison; reading them again still gives the
  // file's bytes (the mapping is private and was never written).
  CHECK(head->data != w->lm_head.data);
  CHECK(std::memcmp(head->data, w->lm_head.data, head->nbytes) == 0);
  CHECK(std::memcmp(embed->data, w->embed_tokens.data, embed->nbytes) == 0);
}

TEST_CASE("mtp shared head: exact copies are shared, different tensors are not") {
  auto rng = fresh_rng();
  const ModelConfig config = small_config();
  auto tensors = synthetic_tensors(config, false, rng);
  SECTION("independent random tensors stay separate") {
    TempDir dir;
    Checkpoint ckpt;
    auto w = load(tensors, config, dir, ckpt);
    REQUIRE(w.ok());
    CHECK(w->mtp[0].shared_head_head.data != w->lm_head.data);
    CHECK(w->mtp[0].embed_tokens.data != w->embed_tokens.data);
    CHECK(std::memcmp(w->mtp[0].shared_head_head.data, find_tensor(tensors, kHead)->bytes.data(),
                      40 * 32 * 2) == 0);
    CHECK(std::memcmp(w->mtp[0].embed_tokens.data, find_tensor(tensors, kEmbed)->bytes.data(),
                      40 * 32 * 2) == 0);
  }
  SECTION("copies are shared; a single different element keeps that one separate") {
    copy_bytes(tensors, "lm_head.weight", kHead);
    copy_bytes(tensors, "model.embed_tokens.weight", kEmbed);
    {
      TempDir dir;
      Checkpoint ckpt;
      auto w = load(tensors, config, dir, ckpt);
      REQUIRE(w.ok());
      CHECK(w->mtp[0].shared_head_head.data == w->lm_head.data);
      CHECK(w->mtp[0].embed_tokens.data == w->embed_tokens.data);
    }
    const bool change_head = rng() % 2 == 0;
    auto changed = find_tensor(tensors, change_head ? kHead : kEmbed);
    const size_t element = size_t(rng() % (40 * 32));
    changed->bytes[2 * element] ^= uint8_t(1 + rng() % 255);  // low mantissa byte of a BF16
    TempDir dir;
    Checkpoint ckpt;
    auto w = load(tensors, config, dir, ckpt);
    REQUIRE(w.ok());
    CHECK((w->mtp[0].shared_head_head.data == w->lm_head.data) == !change_head);
    CHECK((w->mtp[0].embed_tokens.data == w->embed_tokens.data) == change_head);
    const WeightMatrix& own = change_head ? w->mtp[0].shared_head_head : w->mtp[0].embed_tokens;
    CHECK(std::memcmp(own.data, changed->bytes.data(), changed->bytes.size()) == 0);
  }
}

TEST_CASE("mtp shared head: FP8 heads are shared only when the block scales match too") {
  auto rng = fresh_rng();
  const ModelConfig config = small_config();
  auto tensors = synthetic_tensors(config, false, rng);
  make_fp8_pair(tensors, config, "lm_head.weight", kHead);
  {
    TempDir dir;
    Checkpoint ckpt;
    auto w = load(tensors, config, dir, ckpt);
    REQUIRE(w.ok());
    REQUIRE(w->lm_head.dtype == DType::F8_E4M3);
    CHECK(w->mtp[0].shared_head_head.data == w->lm_head.data);
    CHECK(w->mtp[0].shared_head_head.scale_inv == w->lm_head.scale_inv);
  }
  // Same FP8 bytes, one block scale different: a different matrix.
  auto scale = find_tensor(tensors, std::string(kHead) + "_scale_inv");
  const size_t block = size_t(rng() % (scale->bytes.size() / 4));
  float v;
  std::memcpy(&v, scale->bytes.data() + 4 * block, 4);
  v *= 1.5f;
  std::memcpy(scale->bytes.data() + 4 * block, &v, 4);
  TempDir dir;
  Checkpoint ckpt;
  auto w = load(tensors, config, dir, ckpt);
  REQUIRE(w.ok());
  CHECK(w->mtp[0].shared_head_head.data != w->lm_head.data);
  CHECK(w->mtp[0].shared_head_head.scale_inv[block] == v);
}

}  // namespace
}  // namespace latentserve::models::test
