#include "server/make_model_command.h"

#include <iostream>

#include "models/make_model.h"
#include "server/command_line.h"

namespace latentserve::server {

namespace {
const std::vector<OptionSpec> kOptions = {
    {"preset", true, "tiny (tests, the default model) or lite (DeepSeek-V2-Lite layer shapes, 4 layers unless --num-layers)"},
    {"out", true, "output folder"},
    {"seed", true, "random seed (default 0)"},
    {"num-layers", true, "num_hidden_layers instead of the preset's (dense layers included; the MTP layer is extra)"},
    {"fp8", false, "store linear weights as FP8 E4M3 with 128x128 block scales"},
    {"no-tokenizer", false, "do not copy the DeepSeek-V3 tokenizer files into the folder"},
    {"help", false, "show this help"},
};
}  // namespace

int make_model_command(const std::vector<std::string>& args) {
  auto parsed = parse_options(args, kOptions);
  if (!parsed.ok()) {
    std::cerr << "latentserve make-model: " << parsed.error().message << "\n";
    return 2;
  }
  if (parsed->has("help") || !parsed->has("out")) {
    std::cerr << "usage: latentserve make-model --preset tiny --out DIR [--seed S] [--fp8] [--num-layers N]\n"
              << describe_options(kOptions);
    return parsed->has("help") ? 0 : 2;
  }
  auto seed = parsed->get_int("seed", 0);
  if (!seed.ok() || *seed < 0) {
    std::cerr << "latentserve make-model: --seed must be a non-negative integer\n";
    return 2;
  }
  auto num_layers = parsed->get_int("num-layers", 0);
  if (!num_layers.ok() || *num_layers < 0 || (parsed->has("num-layers") && *num_layers == 0)) {
    std::cerr << "latentserve make-model: --num-layers must be a positive integer\n";
    return 2;
  }
  models::MakeModelOptions options;
  options.num_layers = *num_layers;
  options.preset = parsed->get_or("preset", "tiny");
  options.out_dir = *parsed->get("out");
  options.seed = uint64_t(*seed);
  options.fp8 = parsed->has("fp8");
  if (!parsed->has("no-tokenizer")) {
    options.tokenizer_dir = std::string(LATENTSERVE_ASSETS_DIR) + "/tokenizer/deepseek-v3";
  }
  if (Status s = models::make_model(options); !s.ok()) {
    std::cerr << "latentserve make-model: " << s.error().message << "\n";
    return 1;
  }
  std::cerr << "latentserve make-model: wrote the " << options.preset << " preset to " << options.out_dir
            << "\n";
  return 0;
}

}  // namespace latentserve::server
