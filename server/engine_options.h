// The engine's command-line options (cache size, batching limits, prefix cache, speculative
// decoding, how the weights are loaded), shared by every command that runs the engine.
#pragma once

#include <vector>

#include "common/result.h"
#include "engine/engine.h"
#include "models/deepseek_v3/model.h"
#include "server/command_line.h"

namespace latentserve::server {

std::vector<OptionSpec> engine_option_specs();
Result<engine::EngineConfig> engine_config_from(const ParsedOptions& options);
// What Model::load takes from the same options: --no-mmap or --mmap, else a copy of the weights
// when the model runs on the CPU and the mapped files when it runs on a GPU.
Result<models::deepseek_v3::ModelOptions> model_options_from(const ParsedOptions& options);

}  // namespace latentserve::server
