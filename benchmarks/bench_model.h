// The model the engine benchmarks run: the folder given with --model, or the `lite` preset
// (DeepSeek-V2-Lite layer shapes) made once in the temp folder, named after its layers and dtype.
#pragma once

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "models/deepseek_v3/model.h"
#include "models/make_model.h"

namespace latentserve::bench {

// Loads `dir`, or (when empty) the lite preset with `num_layers` (0: the preset's) and optional
// FP8 weights, making it first if absent; `dir` is set to the folder used. Prints what went wrong
// and returns null on failure.
inline std::unique_ptr<models::deepseek_v3::Model> load_bench_model(std::string& dir, int num_layers = 0,
                                                                   bool fp8 = false) {
  if (dir.empty()) {
    std::string name = "latentserve-bench-lite";
    if (num_layers > 0) name += "-" + std::to_string(num_layers) + "l";
    if (fp8) name += "-fp8";
    dir = (std::filesystem::temp_directory_path() / name).string();
    if (!std::filesystem::exists(dir + "/config.json")) {
      std::fprintf(stderr, "making the lite preset in %s ...\n", dir.c_str());
      models::MakeModelOptions m;
      m.preset = "lite";
      m.out_dir = dir;
      m.num_layers = num_layers;
      m.fp8 = fp8;
      if (Status s = models::make_model(m); !s.ok()) {
        std::fprintf(stderr, "%s\n", s.error().message.c_str());
        return nullptr;
      }
    }
  }
  auto model = models::deepseek_v3::Model::load(dir);
  if (!model.ok()) {
    std::fprintf(stderr, "%s: %s\n", dir.c_str(), model.error().message.c_str());
    return nullptr;
  }
  return std::move(model).value();
}

}  // namespace latentserve::bench
