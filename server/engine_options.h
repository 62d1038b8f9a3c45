// The engine's command-line options (cache size, batching limits, prefix cache, speculative
// decoding), shared by every command that runs the engine.
#pragma once

#include <vector>

#include "common/result.h"
#include "engine/engine.h"
#include "server/command_line.h"

namespace latentserve::server {

std::vector<OptionSpec> engine_option_specs();
Result<engine::EngineConfig> engine_config_from(const ParsedOptions& options);

}  // namespace latentserve::server
