// Shared by the text tests: the DeepSeek-V3 tokenizer and its golden cases, loaded once per
// test binary because tokenizer.json is 7.8 MB.
#pragma once

#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "engine/text/tokenizer.h"

namespace latentserve::engine::text::testing {

inline std::string fixture_dir() { return std::string(LATENTSERVE_SHARED_FIXTURES) + "/deepseek-v3-tokenizer"; }

inline const Tokenizer& deepseek_tokenizer() {
  static const Tokenizer tokenizer = [] {
    auto loaded = Tokenizer::load(fixture_dir());
    if (!loaded.ok()) FAIL("loading the fixture tokenizer: " << loaded.error().message);
    return std::move(loaded).value();
  }();
  return tokenizer;
}

inline std::vector<nlohmann::json> read_jsonl(const std::string& name) {
  std::ifstream in(fixture_dir() + "/" + name);
  REQUIRE(in.good());
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  }
  return rows;
}

inline std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace latentserve::engine::text::testing
