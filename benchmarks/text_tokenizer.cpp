// Single-threaded tokenizer throughput: encodes a file N times and prints MB/s.
// Usage: bench_text_tokenizer TOKENIZER_DIR FILE [N] [--lines] [--ids OUT]
//   --lines   encode each line (without its newline) as its own text, as a batch of documents
//   --ids OUT write the ids (one line of space-separated ids per text) for comparison
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/text/tokenizer.h"

using latentserve::engine::text::Tokenizer;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s TOKENIZER_DIR FILE [N] [--lines] [--ids OUT]\n", argv[0]);
    return 2;
  }
  int repeats = 5;
  bool lines = false;
  std::string ids_path;
  for (int i = 3; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--lines") lines = true;
    else if (a == "--ids" && i + 1 < argc) ids_path = argv[++i];
    else repeats = std::max(1, std::atoi(argv[i]));
  }
  auto t0 = std::chrono::steady_clock::now();
  auto tok = Tokenizer::load(argv[1]);
  if (!tok.ok()) {
    std::fprintf(stderr, "%s\n", tok.error().message.c_str());
    return 1;
  }
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::ifstream in(argv[2], std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot open %s\n", argv[2]);
    return 1;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  std::vector<std::string_view> docs;
  if (lines) {
    size_t at = 0;
    while (at < text.size()) {
      size_t nl = text.find('\n', at);
      if (nl == std::string::npos) nl = text.size();
      docs.push_back(std::string_view(text).substr(at, nl - at));
      at = nl + 1;
    }
  } else {
    docs.push_back(text);
  }
  size_t bytes = 0;
  for (auto d : docs) bytes += d.size();

  std::vector<std::vector<int32_t>> ids(docs.size());
  double best = 1e30;
  size_t tokens = 0;
  for (int r = 0; r < repeats; ++r) {
    auto start = std::chrono::steady_clock::now();
    tokens = 0;
    for (size_t i = 0; i < docs.size(); ++i) {
      auto out = tok->encode(docs[i], false);
      if (!out.ok()) {
        std::fprintf(stderr, "%s\n", out.error().message.c_str());
        return 1;
      }
      tokens += out->size();
      ids[i] = std::move(out).value();
    }
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::printf("load %.3f s | %zu texts, %.3f MB, %zu tokens | best of %d: %.4f s, %.2f MB/s, %.0f tokens/s\n",
              load_s, docs.size(), bytes / 1e6, tokens, repeats, best, bytes / 1e6 / best, tokens / best);
  if (!ids_path.empty()) {
    std::ofstream out(ids_path);
    for (const auto& v : ids) {
      for (size_t i = 0; i < v.size(); ++i) out << (i ? " " : "") << v[i];
      out << '\n';
    }
  }
  return 0;
}
