// Helpers shared by the CUDA executor tests: a 2-layer lite-preset model made once per process,
// the CPU model and a GPU executor driven in lockstep over caches of one geometry, and rows of
// logits compared by relative L2 error and, where the reference's top-2 margin allows, by top-1.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include "../models/model_harness.h"
#include "models/cuda/cuda_executor.h"
#include "models/make_model.h"

namespace latentserve::test_executor {

namespace dsv3 = latentserve::models::deepseek_v3;
using testing::Batch;
using testing::LatentCacheStorage;
using testing::Model;

// The lite preset cut to 2 layers (one dense, one MoE; latent 512 + rope 64, so attention takes
// the tensor-core MLA kernel), made once per process with a fresh seed; the files are removed once
// mapped.
inline const Model& lite_model(bool fp8) {
  namespace fs = std::filesystem;
  static std::map<bool, std::unique_ptr<Model>> models;
  auto it = models.find(fp8);
  if (it != models.end()) return *it->second;
  const std::string dir = (fs::temp_directory_path() / ("latentserve-cuda-lite-" + std::string(fp8 ? "fp8-" : "bf16-") +
                                                        std::to_string(::getpid()))).string();
  models::MakeModelOptions m;
  m.preset = "lite";
  m.out_dir = dir;
  m.seed = std::random_device{}();
  m.fp8 = fp8;
  m.num_layers = 2;
  INFO("seed " << m.seed);
  const Status made = models::make_model(m);
  if (!made.ok()) FAIL(made.error().message);
  auto loaded = Model::load(dir);
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (!loaded.ok()) FAIL(loaded.error().message);
  REQUIRE((*loaded)->config().kv_lora_rank == 512);
  REQUIRE((*loaded)->config().qk_rope_head_dim == 64);
  REQUIRE((*loaded)->weights().layers.size() == 2);
  REQUIRE((*loaded)->weights().layers[0].mlp.has_value());
  REQUIRE((*loaded)->weights().layers[1].moe.has_value());
  return *models.emplace(fp8, std::move(loaded).value()).first->second;
}

// The latent cache both sides of a comparison use.
struct CacheGeometry {
  int64_t layers;
  int64_t block_size;
  int64_t num_blocks;
};

inline dsv3::ExecutorConfig cuda_executor_config(const CacheGeometry& g) {
  dsv3::ExecutorConfig config;
  config.device = dsv3::Device::kCuda;
  config.num_cache_layers = g.layers;
  config.block_size = g.block_size;
  config.num_blocks = g.num_blocks;
  return config;
}

// CUDA graph options from the environment, as the engine makes them.
inline std::unique_ptr<dsv3::ModelExecutor> cuda_executor(const Model& model, const CacheGeometry& g) {
  auto e = models::cuda::make_cuda_executor(model, cuda_executor_config(g));
  if (!e.ok()) FAIL(e.error().message);
  return std::move(e).value();
}

inline std::unique_ptr<dsv3::ModelExecutor> cuda_executor(const Model& model, const CacheGeometry& g,
                                                          const models::cuda::DecodeGraphOptions& graphs) {
  auto e = models::cuda::make_cuda_executor(model, cuda_executor_config(g), graphs);
  if (!e.ok()) FAIL(e.error().message);
  return std::move(e).value();
}

// The CPU model and the GPU executor driven in lockstep over caches with the same geometry.
struct CpuGpuPair {
  const Model& model;
  std::unique_ptr<dsv3::ModelExecutor> gpu;
  LatentCacheStorage cpu_cache;

  CpuGpuPair(const Model& m, std::unique_ptr<dsv3::ModelExecutor> executor, const CacheGeometry& g)
      : model(m), gpu(std::move(executor)), cpu_cache(allocate(m, g)) {}
  CpuGpuPair(const Model& m, const CacheGeometry& g) : CpuGpuPair(m, cuda_executor(m, g), g) {}

  static LatentCacheStorage allocate(const Model& m, const CacheGeometry& g) {
    auto c = LatentCacheStorage::allocate(m.config(), g.layers, g.num_blocks, g.block_size);
    REQUIRE(c.ok());
    return std::move(c).value();
  }
  std::pair<dsv3::ForwardOutput, dsv3::ForwardOutput> forward(const Batch& b) {
    auto cpu = model.forward(b, cpu_cache);
    if (!cpu.ok()) FAIL("CPU: " << cpu.error().message);
    auto gpu_out = gpu->forward(b);
    if (!gpu_out.ok()) FAIL("GPU: " << gpu_out.error().message);
    return {std::move(cpu).value(), std::move(gpu_out).value()};
  }
};

inline double relative_l2(const float* got, const float* want, int64_t n) {
  double diff = 0.0, norm = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    diff += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    norm += double(want[i]) * want[i];
  }
  return std::sqrt(diff / std::max(norm, 1e-30));
}

inline double top2_margin(const float* v, int64_t n) {
  std::vector<float> s(v, v + n);
  std::partial_sort(s.begin(), s.begin() + 2, s.end(), std::greater<float>());
  return double(s[0] - s[1]);
}

struct Tolerance {
  double row;     // relative L2 error per row
  double margin;  // top-1 must agree where the reference's top-2 margin is at least this
};

// Each row of `got` against `want` ([rows, n]) within `tol`.
inline void compare_rows(const std::vector<float>& got, const std::vector<float>& want, int64_t n,
                         const Tolerance& tol, const std::string& what) {
  REQUIRE(got.size() == want.size());
  REQUIRE(!want.empty());
  const int64_t rows = int64_t(want.size()) / n;
  double worst = 0.0;
  int64_t compared_top1 = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = got.data() + r * n;
    const float* w = want.data() + r * n;
    const double err = relative_l2(g, w, n);
    worst = std::max(worst, err);
    INFO(what << " row " << r << " relative L2 error " << err);
    CHECK(err <= tol.row);
    if (top2_margin(w, n) >= tol.margin) {
      ++compared_top1;
      CHECK(testing::argmax(g, n) == testing::argmax(w, n));
    }
  }
  WARN(what << ": worst relative L2 error " << worst << " over " << rows << " rows, top-1 compared on "
            << compared_top1);
}

}  // namespace latentserve::test_executor
