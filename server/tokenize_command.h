// `latentserve tokenize`: the text layer from the command line — text to ids, and chat messages
// through the checkpoint's own chat template to the rendered prompt and its ids.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "engine/text/text_processor.h"

namespace latentserve::server {

// One line: {"text", "add_special_tokens", "parse_special"} -> {"ids"}, or
// {"messages", "add_generation_prompt", "tools"} -> {"text", "ids"}.
Result<nlohmann::ordered_json> tokenize_line(const std::string& line,
                                             const engine::text::TextProcessor& text);

int tokenize_command(const std::vector<std::string>& args);

}  // namespace latentserve::server
