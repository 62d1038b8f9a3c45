// MLA attention: the absorbed form over a paged latent cache (shuffled physical blocks, chunked
// and full prefills, decodes) and plain varlen attention, each against its reference, and the
// absorbed form against the naive one with random up-projections.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/cpu_features.h"

namespace cpu = latentserve::kernels::cpu;

namespace {

struct SeqShape {
  int32_t context_len;
  int32_t query_len;
};

// Sequences of lengths 1, 5, 64, 65, 130 with full prefills (query == context), chunked or
// prefix-cached ones (query < context) and decodes (query 1).
const std::vector<SeqShape> kShapes = {{1, 1}, {5, 5}, {64, 64}, {65, 65}, {130, 130},
                                       {5, 2}, {64, 1}, {65, 7}, {130, 61}, {130, 1}};

std::vector<float> random_values(size_t n, std::mt19937& rng, float stddev = 1.0f) {
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

// A batch of sequences over a paged latent cache whose physical blocks are handed out in a
// random order. Context tokens' latents are kept in order too (`latents`), for the naive form.
struct PagedBatch {
  int64_t block_size, token_dim;
  std::vector<float> storage;                     // [num_blocks, block_size, token_dim]
  std::vector<std::vector<int32_t>> tables;       // per sequence
  std::vector<std::vector<float>> latents;        // per sequence: [context_len, token_dim]
  std::vector<cpu::AttentionSequence> sequences;
  int32_t num_tokens = 0;
  cpu::LatentCache cache;

  PagedBatch(const std::vector<SeqShape>& shapes, int64_t bs, int64_t rank, int64_t rope,
             std::mt19937& rng)
      : block_size(bs), token_dim(rank + rope) {
    int64_t blocks = 3;  // a few spare blocks nobody owns
    for (const SeqShape& s : shapes) blocks += (s.context_len + bs - 1) / bs;
    std::vector<int32_t> ids(static_cast<size_t>(blocks));
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t(i);
    std::shuffle(ids.begin(), ids.end(), rng);
    // Unused slots hold NaN: reading past a sequence's context would poison its output.
    storage.assign(size_t(blocks * bs * token_dim), std::nanf(""));
    cache = {storage.data(), blocks, bs, rank, rope};
    size_t next = 0;
    for (const SeqShape& s : shapes) {
      std::vector<int32_t> table;
      for (int64_t b = 0; b * bs < s.context_len; ++b) table.push_back(ids[next++]);
      tables.push_back(table);
      latents.push_back(random_values(size_t(s.context_len * token_dim), rng));
      std::vector<int64_t> slots;
      for (int64_t t = 0; t < s.context_len; ++t) slots.push_back(table[size_t(t / bs)] * bs + t % bs);
      cpu::write_latent_cache(latents.back().data(), slots.data(), s.context_len, cache);
    }
    for (size_t i = 0; i < shapes.size(); ++i) {
      sequences.push_back({num_tokens, shapes[i].query_len, shapes[i].context_len, tables[i].data()});
      num_tokens += shapes[i].query_len;
    }
  }
};

void require_close(const std::vector<float>& got, const std::vector<float>& want, double tol) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    CAPTURE(i);
    REQUIRE(std::isfinite(got[i]));
    REQUIRE(got[i] == Approx(want[i]).margin(tol).epsilon(tol));
  }
}

}  // namespace

TEST_CASE("write_latent_cache stores rows at their slots and skips negative slots", "[kernels][attention]") {
  std::vector<float> storage(3 * 2 * 3, -1.0f);
  cpu::LatentCache cache{storage.data(), 3, 2, 2, 1};
  const float latent[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  const int64_t slots[3] = {5, -1, 0};
  cpu::write_latent_cache(latent, slots, 3, cache);
  CHECK(std::vector<float>(storage.begin() + 15, storage.end()) == std::vector<float>{1, 2, 3});
  CHECK(std::vector<float>(storage.begin(), storage.begin() + 3) == std::vector<float>{7, 8, 9});
  CHECK(std::count(storage.begin(), storage.end(), -1.0f) == 12);
}

TEST_CASE("mla_attention_absorbed matches its reference over shuffled paged blocks", "[kernels][attention]") {
  std::mt19937 rng(Catch::rngSeed() + 6);
  for (int64_t bs : {16, 5}) {
    for (int64_t heads : {1, 3, 5}) {
      CAPTURE(bs, heads);
      const int64_t rank = 33, rope = 7;
      PagedBatch batch(kShapes, bs, rank, rope, rng);
      const auto q_latent = random_values(size_t(batch.num_tokens * heads * rank), rng, 0.3f);
      const auto q_rope = random_values(size_t(batch.num_tokens * heads * rope), rng, 0.3f);
      std::vector<float> fast(q_latent.size()), ref(q_latent.size());
      cpu::MlaAbsorbedParams p;
      p.q_latent = q_latent.data();
      p.q_rope = q_rope.data();
      p.cache = batch.cache;
      p.sequences = batch.sequences.data();
      p.num_sequences = int32_t(batch.sequences.size());
      p.heads = heads;
      p.softmax_scale = 0.61f;
      p.out_latent = ref.data();
      cpu::mla_attention_absorbed_reference(p);
      // Every instruction-set path this CPU has (the fast kernel picks one at run time).
      for (cpu::CpuIsa isa : {cpu::CpuIsa::Scalar, cpu::CpuIsa::Avx2}) {
        if (!cpu::isa_supported(isa)) continue;
        CAPTURE(cpu::isa_name(isa));
        ::setenv("LATENTSERVE_CPU_ISA", std::string(cpu::isa_name(isa)).c_str(), 1);
        std::fill(fast.begin(), fast.end(), 0.0f);
        p.out_latent = fast.data();
        cpu::mla_attention_absorbed(p);
        ::unsetenv("LATENTSERVE_CPU_ISA");
        require_close(fast, ref, 2e-5);
      }
    }
  }
}

TEST_CASE("attention_varlen matches its reference", "[kernels][attention]") {
  std::mt19937 rng(Catch::rngSeed() + 7);
  const int64_t dqk = 19, dv = 11;
  for (int64_t heads : {1, 2, 5}) {
    CAPTURE(heads);
    std::vector<cpu::VarlenSequence> seqs;
    int32_t q_rows = 0, kv_rows = 0;
    for (const SeqShape& s : kShapes) {
      seqs.push_back({q_rows, s.query_len, kv_rows, s.context_len});
      q_rows += s.query_len;
      kv_rows += s.context_len;
    }
    const auto q = random_values(size_t(q_rows * heads * dqk), rng, 0.5f);
    const auto k = random_values(size_t(kv_rows * heads * dqk), rng);
    const auto v = random_values(size_t(kv_rows * heads * dv), rng);
    std::vector<float> fast(size_t(q_rows * heads * dv)), ref(fast.size());
    cpu::AttentionParams p;
    p.q = q.data();
    p.k = k.data();
    p.v = v.data();
    p.sequences = seqs.data();
    p.num_sequences = int32_t(seqs.size());
    p.heads = heads;
    p.head_dim_qk = dqk;
    p.head_dim_v = dv;
    p.softmax_scale = 1.0f / std::sqrt(float(dqk));
    p.out = fast.data();
    cpu::attention_varlen(p);
    p.out = ref.data();
    cpu::attention_varlen_reference(p);
    require_close(fast, ref, 2e-5);
  }
}

TEST_CASE("varlen causal attention by hand", "[kernels][attention]") {
  // One head, two keys; query 0 sees key 0 only, query 1 sees both with scores 0 and ln 3.
  const float q[2] = {1.0f, 1.0f}, k[2] = {0.0f, std::log(3.0f)}, v[2] = {10.0f, 2.0f};
  float out[2];
  const cpu::VarlenSequence seq{0, 2, 0, 2};
  cpu::AttentionParams p{q, k, v, &seq, 1, 1, 1, 1, 1.0f, out};
  cpu::attention_varlen(p);
  CHECK(out[0] == Approx(10.0f));
  CHECK(out[1] == Approx(0.25 * 10.0 + 0.75 * 2.0).epsilon(1e-6));
}

// The absorbed form (q_latent = q_nope·W_UK, attention over c, output through W_UV) equals plain
// attention with per-head k_nope = W_UK·c, v = W_UV·c and the shared k_pe.
TEST_CASE("absorbed MLA equals the naive form", "[kernels][attention]") {
  std::mt19937 rng(Catch::rngSeed() + 8);
  const int64_t heads = 3, rank = 24, rope = 6, nope = 10, dv = 9, bs = 16;
  const std::vector<SeqShape> shapes = {{65, 65}, {130, 3}, {5, 1}, {64, 20}};
  PagedBatch batch(shapes, bs, rank, rope, rng);
  const auto w_uk = random_values(size_t(heads * nope * rank), rng, 1.0f / std::sqrt(float(rank)));
  const auto w_uv = random_values(size_t(heads * dv * rank), rng, 1.0f / std::sqrt(float(rank)));
  const int64_t T = batch.num_tokens, dqk = nope + rope;
  const auto q = random_values(size_t(T * heads * dqk), rng, 0.5f);  // per head [q_nope | q_pe]
  const float scale = 1.0f / std::sqrt(float(dqk));

  // Naive: expand every context token into per-head K and V.
  std::vector<cpu::VarlenSequence> seqs;
  std::vector<float> k, v;
  int32_t kv_rows = 0;
  for (size_t s = 0; s < shapes.size(); ++s) {
    seqs.push_back({batch.sequences[s].query_start, shapes[s].query_len, kv_rows, shapes[s].context_len});
    kv_rows += shapes[s].context_len;
    for (int64_t t = 0; t < shapes[s].context_len; ++t) {
      const float* c = batch.latents[s].data() + t * (rank + rope);
      for (int64_t h = 0; h < heads; ++h) {
        for (int64_t i = 0; i < nope; ++i) {
          double acc = 0.0;
          for (int64_t j = 0; j < rank; ++j) acc += double(w_uk[size_t((h * nope + i) * rank + j)]) * c[j];
          k.push_back(float(acc));
        }
        for (int64_t i = 0; i < rope; ++i) k.push_back(c[rank + i]);
        for (int64_t i = 0; i < dv; ++i) {
          double acc = 0.0;
          for (int64_t j = 0; j < rank; ++j) acc += double(w_uv[size_t((h * dv + i) * rank + j)]) * c[j];
          v.push_back(float(acc));
        }
      }
    }
  }
  std::vector<float> naive(size_t(T * heads * dv));
  cpu::AttentionParams np{q.data(), k.data(), v.data(), seqs.data(), int32_t(seqs.size()), heads, dqk, dv, scale, naive.data()};
  cpu::attention_varlen(np);

  // Absorbed: fold W_UK into the query, attend over the cache, apply W_UV afterwards.
  std::vector<float> q_latent(size_t(T * heads * rank)), q_rope(size_t(T * heads * rope));
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t h = 0; h < heads; ++h) {
      const float* qh = q.data() + (t * heads + h) * dqk;
      for (int64_t j = 0; j < rank; ++j) {
        double acc = 0.0;
        for (int64_t i = 0; i < nope; ++i) acc += double(qh[i]) * w_uk[size_t((h * nope + i) * rank + j)];
        q_latent[size_t((t * heads + h) * rank + j)] = float(acc);
      }
      for (int64_t i = 0; i < rope; ++i) q_rope[size_t((t * heads + h) * rope + i)] = qh[nope + i];
    }
  }
  for (bool reference : {false, true}) {
    CAPTURE(reference);
    std::vector<float> out_latent(q_latent.size());
    cpu::MlaAbsorbedParams ap;
    ap.q_latent = q_latent.data();
    ap.q_rope = q_rope.data();
    ap.cache = batch.cache;
    ap.sequences = batch.sequences.data();
    ap.num_sequences = int32_t(batch.sequences.size());
    ap.heads = heads;
    ap.softmax_scale = scale;
    ap.out_latent = out_latent.data();
    reference ? cpu::mla_attention_absorbed_reference(ap) : cpu::mla_attention_absorbed(ap);
    std::vector<float> absorbed(naive.size());
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t h = 0; h < heads; ++h) {
        for (int64_t i = 0; i < dv; ++i) {
          double acc = 0.0;
          for (int64_t j = 0; j < rank; ++j) {
            acc += double(w_uv[size_t((h * dv + i) * rank + j)]) * out_latent[size_t((t * heads + h) * rank + j)];
          }
          absorbed[size_t((t * heads + h) * dv + i)] = float(acc);
        }
      }
    }
    require_close(absorbed, naive, 5e-5);
  }
}
