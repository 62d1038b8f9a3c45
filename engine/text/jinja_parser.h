// Parses chat-template tokens into a syntax tree with Jinja2's grammar and precedence. Everything
// the interpreter cannot run (unknown tags, filters or tests) is rejected here, with a line and
// column, so a bad template fails when it is loaded rather than on some later request.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"
#include "engine/text/jinja_ast.h"
#include "engine/text/jinja_lexer.h"

namespace latentserve::engine::text::jinja {

Result<Body> parse(const std::vector<Token>& tokens);

}  // namespace latentserve::engine::text::jinja
