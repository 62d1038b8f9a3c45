// The built-in default model: the `tiny` preset (random weights, DeepSeek-V3 architecture, the
// real DeepSeek-V3 tokenizer) made once on first use in the user's cache folder.
#pragma once

#include <optional>
#include <string>

#include "common/result.h"

namespace latentserve::server {

// The folder the default model lives in: $LATENTSERVE_HOME/models/tiny, else
// $XDG_CACHE_HOME/latentserve/models/tiny, else ~/.cache/latentserve/models/tiny.
std::string default_model_dir();

// `model` when given; otherwise the default model, created (with a message on stderr) if absent.
Result<std::string> resolve_model_dir(const std::optional<std::string>& model);

}  // namespace latentserve::server
