// The fast BPE merge loop (heap of candidates, per-thread word cache) against a plain
// reference: repeatedly merge the lowest-ranked adjacent pair, leftmost first.
#include <map>
#include <random>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "engine/text/bpe.h"
#include "engine/text/byte_level.h"
#include "tests/text/tokenizer_fixture.h"

namespace latentserve::engine::text {
namespace {

struct Reference {
  std::map<std::pair<std::string, std::string>, int> ranks;
  std::unordered_map<std::string, int32_t> vocab;

  std::vector<int32_t> encode(std::string_view bytes) const {
    std::vector<std::string> symbols;
    for (char b : bytes) symbols.push_back(bytes_to_byte_level(std::string(1, b)));
    while (symbols.size() > 1) {
      int best_rank = INT32_MAX;
      size_t best = 0;
      for (size_t i = 0; i + 1 < symbols.size(); ++i) {
        auto it = ranks.find({symbols[i], symbols[i + 1]});
        if (it != ranks.end() && it->second < best_rank) {
          best_rank = it->second;
          best = i;
        }
      }
      if (best_rank == INT32_MAX) break;
      symbols[best] += symbols[best + 1];
      symbols.erase(symbols.begin() + static_cast<std::ptrdiff_t>(best) + 1);
    }
    std::vector<int32_t> ids;
    for (const auto& s : symbols) ids.push_back(vocab.at(s));
    return ids;
  }
};

TEST_CASE("bpe: fast merge and cache agree with the plain reference", "[bpe]") {
  const auto root = nlohmann::json::parse(testing::read_text_file(testing::fixture_dir() + "/tokenizer.json"));
  auto model = BpeModel::from_json(root["model"]);
  REQUIRE(model.ok());
  CHECK(model->merge_count() == 127741);
  Reference ref;
  ref.vocab = model->vocab();
  int rank = 0;
  for (const auto& m : root["model"]["merges"]) {
    const std::string s = m;
    const size_t space = s.find(' ');
    ref.ranks.emplace(std::make_pair(s.substr(0, space), s.substr(space + 1)), rank++);
  }
  // Pieces cut from real text (so long merges happen) and random bytes.
  std::string corpus;
  for (const auto& c : testing::read_jsonl("encode_cases.jsonl")) corpus += c["text"].get<std::string>();
  std::mt19937 rng(31);
  for (int t = 0; t < 3000; ++t) {
    std::string piece;
    if (t % 3 != 0) {
      const size_t len = 1 + rng() % 24;
      piece = corpus.substr(rng() % (corpus.size() - len), len);
    } else {
      for (size_t n = 1 + rng() % 12; n > 0; --n) piece.push_back(static_cast<char>(rng() % 256));
    }
    if (t % 50 == 0) piece = std::string(300 + rng() % 50, "ab  \n"[rng() % 5]);  // beyond the cache's length
    INFO("piece of " << piece.size() << " bytes");
    const auto expected = ref.encode(piece);
    std::vector<int32_t> fast, cached_first, cached_again;
    model->encode_piece_uncached(piece, fast);
    model->encode_piece(piece, cached_first);
    model->encode_piece(piece, cached_again);
    CHECK(fast == expected);
    CHECK(cached_first == expected);
    CHECK(cached_again == expected);
  }
}

}  // namespace
}  // namespace latentserve::engine::text
