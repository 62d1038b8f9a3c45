// Safetensors loading: valid single-file and sharded checkpoints, and one broken file per
// validation rule; every failure must be an error naming the file and what was wrong. Every
// file is opened both mapped and copied, which must agree on the outcome and the message.
#include "models/checkpoint.h"

#include "tests/models/test_checkpoint_util.h"

namespace latentserve::models::test {
namespace {

using nlohmann::json;

// Both loads of the same input: the same success with the same tensor bytes, or the same error.
Result<Checkpoint> agree(Result<Checkpoint> mapped, Result<Checkpoint> copied) {
  REQUIRE(mapped.ok() == copied.ok());
  if (!mapped.ok()) {
    CHECK(mapped.error().message == copied.error().message);
    return mapped;
  }
  REQUIRE(mapped->tensors().size() == copied->tensors().size());
  for (const auto& [name, t] : mapped->tensors()) {
    const TensorInfo* c = copied->find(name);
    REQUIRE(c != nullptr);
    REQUIRE(c->nbytes == t.nbytes);
    CHECK(std::memcmp(c->data, t.data, t.nbytes) == 0);
  }
  return mapped;
}

Result<Checkpoint> open_file_both(const std::string& path) {
  return agree(Checkpoint::open_file(path, WeightLoad::kMmap), Checkpoint::open_file(path, WeightLoad::kCopy));
}

Result<Checkpoint> open_both(const std::string& dir) {
  return agree(Checkpoint::open(dir, WeightLoad::kMmap), Checkpoint::open(dir, WeightLoad::kCopy));
}

// Writes a file whose header is `header` (with `data_bytes` of data) and expects open_file to
// fail with a message containing the file name and every needle.
void expect_broken(const std::string& header, size_t data_bytes,
                   std::initializer_list<std::string> needles) {
  TempDir dir;
  const std::string path = dir.file("broken.safetensors");
  write_raw_safetensors(path, header, data_bytes);
  auto ckpt = open_file_both(path);
  INFO(header);
  REQUIRE_FALSE(ckpt.ok());
  INFO(ckpt.error().message);
  CHECK(ckpt.error().message.find("broken.safetensors") != std::string::npos);
  for (const std::string& n : needles) CHECK(ckpt.error().message.find(n) != std::string::npos);
}

std::string entry(const std::string& dtype, const json& shape, const json& offsets) {
  return json{{"dtype", dtype}, {"shape", shape}, {"data_offsets", offsets}}.dump();
}

TEST_CASE("checkpoint: a valid file round-trips every supported dtype") {
  auto rng = fresh_rng();
  TempDir dir;
  std::vector<TensorBytes> tensors;
  const std::vector<std::pair<DType, std::vector<int64_t>>> kinds = {
      {DType::F32, {3, 5}}, {DType::BF16, {7}}, {DType::F16, {2, 3, 4}},
      {DType::F8_E4M3, {9, 1}}, {DType::I32, {4}}, {DType::I64, {2}}, {DType::BF16, {0, 5}}};
  for (size_t i = 0; i < kinds.size(); ++i) {
    TensorBytes t;
    std::string name = "t";
    name += std::to_string(i);  // (not "t" + ...: GCC 12 warns falsely on that)
    t.spec = {name, kinds[i].first, kinds[i].second};
    t.bytes.resize(t.spec.nbytes());
    for (auto& b : t.bytes) b = uint8_t(rng());
    tensors.push_back(t);
  }
  REQUIRE(write_safetensors(dir.file("model.safetensors"), tensors).ok());
  auto ckpt = open_both(dir.path());
  REQUIRE(ckpt.ok());
  REQUIRE(ckpt->tensors().size() == tensors.size());
  for (const TensorBytes& t : tensors) {
    const TensorInfo* info = ckpt->find(t.spec.name);
    REQUIRE(info != nullptr);
    CHECK(info->dtype == t.spec.dtype);
    CHECK(info->shape == t.spec.shape);
    CHECK(info->file == "model.safetensors");
    REQUIRE(info->nbytes == t.bytes.size());
    CHECK(std::memcmp(info->data, t.bytes.data(), t.bytes.size()) == 0);
  }
  CHECK(ckpt->find("t2")->numel() == 24);
  CHECK(ckpt->find("t2")->shape_string() == "[2, 3, 4]");
  CHECK(ckpt->find("nope") == nullptr);
}

TEST_CASE("checkpoint: files too short for the length prefix") {
  TempDir dir;
  for (const char* content : {"", "\x01", "\x01\x02\x03\x04\x05\x06\x07"}) {
    write_bytes(dir.file("short.safetensors"), content);
    auto ckpt = open_file_both(dir.file("short.safetensors"));
    REQUIRE_FALSE(ckpt.ok());
    CHECK(ckpt.error().message.find("short.safetensors") != std::string::npos);
    CHECK(ckpt.error().message.find("too short") != std::string::npos);
  }
}

TEST_CASE("checkpoint: header length beyond the end of the file") {
  TempDir dir;
  write_bytes(dir.file("broken.safetensors"), le64(100) + "{}");
  auto ckpt = open_file_both(dir.file("broken.safetensors"));
  REQUIRE_FALSE(ckpt.ok());
  CHECK(ckpt.error().message.find("past the end") != std::string::npos);
}

TEST_CASE("checkpoint: huge header length is refused before allocating") {
  TempDir dir;
  for (uint64_t len : {uint64_t(200) << 20, ~uint64_t(0), uint64_t(1) << 63}) {
    write_bytes(dir.file("broken.safetensors"), le64(len) + "{}");
    auto ckpt = open_file_both(dir.file("broken.safetensors"));
    REQUIRE_FALSE(ckpt.ok());
    CHECK(ckpt.error().message.find("exceeds the limit") != std::string::npos);
  }
}

TEST_CASE("checkpoint: malformed header JSON") {
  expect_broken("{\"a\": {\"dtype\": \"F32\",", 0, {"malformed JSON"});
  expect_broken("not json at all", 0, {"malformed JSON"});
  expect_broken(std::string(5000, '[') + std::string(5000, ']'), 0, {"nested deeper"});
}

TEST_CASE("checkpoint: header that is not a JSON object") {
  expect_broken("[1, 2, 3]", 0, {"array", "expected an object"});
  expect_broken("\"text\"", 0, {"string"});
  expect_broken("{\"__metadata__\": [1]}", 0, {"__metadata__"});
  expect_broken("{\"__metadata__\": {\"format\": 1}}", 0, {"__metadata__", "format"});
  expect_broken("{\"w\": [1]}", 4, {"'w'", "expected an object"});
}

TEST_CASE("checkpoint: unsupported or unknown dtype") {
  expect_broken("{\"w\": " + entry("F64", {1}, {0, 8}) + "}", 8, {"'w'", "F64 not supported"});
  expect_broken("{\"w\": " + entry("BOOL", {1}, {0, 1}) + "}", 8, {"BOOL not supported"});
  expect_broken("{\"w\": " + entry("Q7", {1}, {0, 1}) + "}", 8, {"unknown dtype 'Q7'"});
  expect_broken("{\"w\": {\"dtype\": 4, \"shape\": [1], \"data_offsets\": [0, 4]}}", 8,
                {"'dtype' must be a string"});
}

TEST_CASE("checkpoint: negative, fractional or overflowing shapes") {
  expect_broken("{\"w\": " + entry("F32", {-1, 4}, {0, 16}) + "}", 16, {"'w'", "non-negative"});
  expect_broken("{\"w\": " + entry("F32", {1.5}, {0, 4}) + "}", 16, {"non-negative integers"});
  expect_broken("{\"w\": " + entry("F32", {uint64_t(1) << 40, uint64_t(1) << 40}, {0, 16}) + "}",
                16, {"too many elements"});
  expect_broken("{\"w\": " + entry("F32", {~uint64_t(0)}, {0, 16}) + "}", 16, {"too large"});
  expect_broken("{\"w\": " + entry("F32", json::array({1, 1, 1, 1, 1, 1, 1, 1, 1}), {0, 4}) + "}",
                16, {"dimensions"});
  expect_broken("{\"w\": {\"dtype\": \"F32\", \"shape\": 4, \"data_offsets\": [0, 16]}}", 16,
                {"'shape' must be an array"});
}

TEST_CASE("checkpoint: data offsets outside the data section or malformed") {
  expect_broken("{\"w\": " + entry("F32", {4}, {8, 24}) + "}", 16, {"'w'", "beyond the data"});
  expect_broken("{\"w\": " + entry("F32", {0}, {20, 20}) + "}", 16, {"beyond the data"});
  expect_broken("{\"w\": " + entry("F32", {1}, {8, 4}) + "}", 16, {"begin > end"});
  expect_broken("{\"w\": " + entry("F32", {1}, {0}) + "}", 16, {"data_offsets"});
  expect_broken("{\"w\": " + entry("F32", {1}, {-4, 0}) + "}", 16, {"data_offsets"});
  expect_broken("{\"w\": {\"dtype\": \"F32\", \"shape\": [1]}}", 16, {"data_offsets"});
  expect_broken("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4], "
                "\"extra\": 1}}", 16, {"unexpected key 'extra'"});
}

TEST_CASE("checkpoint: byte size not matching dtype x shape") {
  expect_broken("{\"w\": " + entry("BF16", {3, 3}, {0, 16}) + "}", 16, {"'w'", "needs 18"});
  expect_broken("{\"w\": " + entry("F32", {2}, {0, 4}) + "}", 16, {"needs 8"});
}

TEST_CASE("checkpoint: overlapping tensors") {
  expect_broken("{\"a\": " + entry("F32", {4}, {0, 16}) + ", \"b\": " + entry("F32", {2}, {8, 16}) +
                    "}",
                16, {"'a'", "'b'", "overlap"});
  // Touching ranges and empty tensors inside another one are fine.
  TempDir dir;
  write_raw_safetensors(dir.file("ok.safetensors"),
                        "{\"a\": " + entry("F32", {2}, {0, 8}) + ", \"b\": " +
                            entry("F32", {2}, {8, 16}) + ", \"c\": " + entry("F32", {0}, {4, 4}) +
                            "}",
                        16);
  CHECK(open_file_both(dir.file("ok.safetensors")).ok());
}

TEST_CASE("checkpoint: duplicate tensor names") {
  expect_broken("{\"a\": " + entry("F32", {2}, {0, 8}) + ", \"a\": " + entry("F32", {2}, {8, 16}) +
                    "}",
                16, {"'a'", "twice"});
}

TEST_CASE("checkpoint: random corruption never crashes") {
  auto rng = fresh_rng();
  TempDir dir;
  std::vector<TensorBytes> tensors;
  for (int i = 0; i < 4; ++i) {
    TensorBytes t;
    t.spec = {"layer." + std::to_string(i), i % 2 ? DType::BF16 : DType::F32, {3, int64_t(i + 1)}};
    t.bytes.assign(t.spec.nbytes(), uint8_t(i));
    tensors.push_back(t);
  }
  REQUIRE(write_safetensors(dir.file("good.safetensors"), tensors).ok());
  const std::string good = read_bytes(dir.file("good.safetensors"));
  int failures = 0;
  for (int trial = 0; trial < 300; ++trial) {
    std::string bad = good;
    if (trial % 3 == 0) {
      bad.resize(rng() % good.size());
    } else {
      for (int k = 0; k < 1 + int(rng() % 4); ++k) bad[rng() % bad.size()] = char(rng());
    }
    write_bytes(dir.file("bad.safetensors"), bad);
    auto ckpt = open_file_both(dir.file("bad.safetensors"));
    if (!ckpt.ok()) {
      ++failures;
      CHECK(ckpt.error().message.find("bad.safetensors") != std::string::npos);
    }
  }
  CHECK(failures > 100);
}

// Two shards and an index, as published checkpoints come.
struct ShardedFixture {
  TempDir dir;
  ShardedFixture() {
    auto rng = fresh_rng();
    auto make = [&](const std::string& name) {
      TensorBytes t;
      t.spec = {name, DType::BF16, {2, 3}};
      t.bytes = random_bf16(rng, 6);
      return t;
    };
    REQUIRE(write_safetensors(dir.file("model-00001-of-00002.safetensors"), {make("a"), make("b")}).ok());
    REQUIRE(write_safetensors(dir.file("model-00002-of-00002.safetensors"), {make("c")}).ok());
  }
  void write_index(const json& weight_map) {
    write_bytes(dir.file("model.safetensors.index.json"),
                json{{"metadata", {{"total_size", 36}}}, {"weight_map", weight_map}}.dump());
  }
  json good_map() const {
    return {{"a", "model-00001-of-00002.safetensors"}, {"b", "model-00001-of-00002.safetensors"},
            {"c", "model-00002-of-00002.safetensors"}};
  }
};

TEST_CASE("checkpoint: sharded checkpoint through the index") {
  ShardedFixture f;
  f.write_index(f.good_map());
  auto ckpt = open_both(f.dir.path());
  REQUIRE(ckpt.ok());
  CHECK(ckpt->tensors().size() == 3);
  CHECK(ckpt->find("c")->file == "model-00002-of-00002.safetensors");
  CHECK(ckpt->find("a")->file == "model-00001-of-00002.safetensors");
}

TEST_CASE("checkpoint: index naming a missing shard") {
  ShardedFixture f;
  json map = f.good_map();
  map["c"] = "model-00003-of-00002.safetensors";
  f.write_index(map);
  auto ckpt = open_both(f.dir.path());
  REQUIRE_FALSE(ckpt.ok());
  CHECK(ckpt.error().message.find("model-00003-of-00002.safetensors") != std::string::npos);
}

TEST_CASE("checkpoint: index listing a tensor its shard lacks") {
  ShardedFixture f;
  json map = f.good_map();
  map["d"] = "model-00002-of-00002.safetensors";
  f.write_index(map);
  auto ckpt = open_both(f.dir.path());
  REQUIRE_FALSE(ckpt.ok());
  CHECK(ckpt.error().message.find("'d'") != std::string::npos);
  CHECK(ckpt.error().message.find("does not contain it") != std::string::npos);
}

TEST_CASE("checkpoint: shard holding a tensor the index does not list there") {
  ShardedFixture f;
  json map = f.good_map();
  map.erase("b");
  f.write_index(map);
  auto unlisted = open_both(f.dir.path());
  REQUIRE_FALSE(unlisted.ok());
  CHECK(unlisted.error().message.find("'b' is not listed") != std::string::npos);

  map = f.good_map();
  map["c"] = "model-00001-of-00002.safetensors";  // c is in shard 2, and shard 2 is not named
  f.write_index(map);
  CHECK_FALSE(open_both(f.dir.path()).ok());
}

TEST_CASE("checkpoint: malformed or escaping index files") {
  ShardedFixture f;
  for (const std::string& text :
       {std::string("{\"weight_map\": "), std::string("[]"), std::string("{}"),
        std::string("{\"weight_map\": {}}"), std::string("{\"weight_map\": {\"a\": 3}}"),
        std::string("{\"weight_map\": {\"a\": \"../model-00001-of-00002.safetensors\"}}"),
        std::string("{\"weight_map\": {\"a\": \"/etc/passwd\"}}")}) {
    write_bytes(f.dir.file("model.safetensors.index.json"), text);
    auto ckpt = open_both(f.dir.path());
    INFO(text);
    REQUIRE_FALSE(ckpt.ok());
    CHECK(ckpt.error().message.find("model.safetensors.index.json") != std::string::npos);
  }
}

TEST_CASE("checkpoint: folders without an index") {
  TempDir dir;
  CHECK_FALSE(open_both(dir.path()).ok());
  CHECK_FALSE(open_both(dir.file("missing")).ok());
  TensorBytes t{{"w", DType::F32, {1}}, {0, 0, 128, 63}};
  REQUIRE(write_safetensors(dir.file("weights.safetensors"), {t}).ok());
  auto one = open_both(dir.path());
  REQUIRE(one.ok());
  CHECK(one->find("w") != nullptr);
  REQUIRE(write_safetensors(dir.file("other.safetensors"), {t}).ok());
  auto two = open_both(dir.path());
  REQUIRE_FALSE(two.ok());
  CHECK(two.error().message.find("index") != std::string::npos);
  CHECK_FALSE(open_file_both(dir.path()).ok());  // a folder is not a file
}

}  // namespace
}  // namespace latentserve::models::test
