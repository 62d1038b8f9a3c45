// `latentserve make-model`: writes a random-weight checkpoint of the DeepSeek-V3 architecture in
// the Hugging Face layout, from a named preset, deterministic for a seed.
#pragma once

#include <string>
#include <vector>

namespace latentserve::server {

int make_model_command(const std::vector<std::string>& args);

}  // namespace latentserve::server
