// Weights copied into (huge-page) anonymous memory instead of mapped: the same tensor bytes and
// bit-identical logits as the mapping, on tiny-dsv3 and on a sharded FP8 checkpoint, and an
// allocation that cannot succeed is an error naming the file.
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <random>

#include "models/make_model.h"
#include "tests/models/model_harness.h"
#include "tests/models/test_checkpoint_util.h"

namespace latentserve::models::test {
namespace {

using latentserve::testing::prefill;
using latentserve::testing::run_greedy;
using latentserve::testing::tiny_dir;
using deepseek_v3::Model;

std::unique_ptr<Model> load(const std::string& dir, WeightLoad mode) {
  deepseek_v3::ModelOptions options;
  options.weight_load = mode;
  auto model = Model::load(dir, options);
  if (!model.ok()) FAIL(weight_load_name(mode) << ": " << model.error().message);
  return std::move(model).value();
}

std::vector<int32_t> random_prompt(std::mt19937_64& rng, int64_t vocab, int length) {
  std::vector<int32_t> p(static_cast<size_t>(length));
  for (auto& t : p) t = int32_t(rng() % uint64_t(vocab));
  return p;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Every tensor of the two checkpoints has the same bytes, at a different address.
void check_same_tensors(const std::string& dir) {
  auto mapped = Checkpoint::open(dir, WeightLoad::kMmap);
  auto copied = Checkpoint::open(dir, WeightLoad::kCopy);
  REQUIRE(mapped.ok());
  REQUIRE(copied.ok());
  REQUIRE(mapped->tensors().size() == copied->tensors().size());
  for (const auto& [name, t] : mapped->tensors()) {
    const TensorInfo* c = copied->find(name);
    REQUIRE(c != nullptr);
    INFO(name);
    CHECK(c->file == t.file);
    REQUIRE(c->nbytes == t.nbytes);
    if (t.nbytes > 0) CHECK(c->data != t.data);
    CHECK(std::memcmp(c->data, t.data, t.nbytes) == 0);
  }
}

// A prefill with logits for every row, then greedy decoding: both loads give the same bits.
void check_same_logits(const std::string& dir, int prompt_len, int steps) {
  auto rng = fresh_rng();
  auto mapped = load(dir, WeightLoad::kMmap);
  auto copied = load(dir, WeightLoad::kCopy);
  const auto prompt = random_prompt(rng, mapped->config().vocab_size, prompt_len);
  CHECK(same_bits(prefill(*mapped, prompt, /*all_rows=*/true, 4), prefill(*copied, prompt, true, 4)));
  const auto a = run_greedy(*mapped, prompt, steps, 4);
  const auto b = run_greedy(*copied, prompt, steps, 4);
  CHECK(a.new_tokens == b.new_tokens);
  REQUIRE(a.step_logits.size() == b.step_logits.size());
  for (size_t i = 0; i < a.step_logits.size(); ++i) CHECK(same_bits(a.step_logits[i], b.step_logits[i]));
}

TEST_CASE("weight load copy: tiny-dsv3 gives the mapping's tensors and bit-identical logits") {
  check_same_tensors(tiny_dir());
  check_same_logits(tiny_dir(), 11, 5);
}

TEST_CASE("weight load copy: a sharded FP8 checkpoint gives bit-identical logits") {
  TempDir dir;
  MakeModelOptions options;
  options.preset = "tiny";
  options.out_dir = dir.path();
  options.fp8 = true;
  options.seed = fresh_rng()();
  REQUIRE(make_model(options).ok());
  REQUIRE(std::filesystem::exists(dir.file("model.safetensors.index.json")));
  check_same_tensors(dir.path());
  auto copied = load(dir.path(), WeightLoad::kCopy);
  CHECK(copied->weights().layers.back().attn.q_b_proj.dtype == DType::F8_E4M3);
  check_same_logits(dir.path(), 7, 4);
}

// Far more than any machine's memory, as a sparse file: mapping it is free, copying it must
// fail up front. Only where the kernel refuses such an allocation (overcommit mode 0 or 2);
// with mode 1 it would be granted and the read would exhaust memory.
TEST_CASE("weight load copy: an allocation that cannot succeed is an error naming the file") {
  std::ifstream overcommit("/proc/sys/vm/overcommit_memory");
  int mode = -1;
  overcommit >> mode;
  if (mode != 0 && mode != 2) {
    WARN("skipped: vm.overcommit_memory is " << mode << ", which grants any allocation");
    return;
  }
  TempDir dir;
  const std::string path = dir.file("huge.safetensors");
  const int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
  REQUIRE(fd >= 0);
  const bool sized = ::ftruncate(fd, off_t(uint64_t(8) << 40)) == 0;  // 8 TiB
  ::close(fd);
  if (!sized) {
    WARN("skipped: this file system cannot hold an 8 TiB sparse file");
    return;
  }
  auto ckpt = Checkpoint::open_file(path, WeightLoad::kCopy);
  REQUIRE_FALSE(ckpt.ok());
  INFO(ckpt.error().message);
  CHECK(ckpt.error().message.find("huge.safetensors") != std::string::npos);
  CHECK(ckpt.error().message.find("cannot allocate") != std::string::npos);
}

}  // namespace
}  // namespace latentserve::models::test
