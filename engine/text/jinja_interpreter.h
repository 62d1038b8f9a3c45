// Runs a parsed chat template: Jinja2 semantics for scoping (for-loops get their own scope,
// namespace() objects are shared), undefined values, loop variables and the globals Hugging Face
// provides (range, namespace, dict, raise_exception). Rendering is bounded in output size, work
// and call depth so a hostile template cannot hang or exhaust memory.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"
#include "engine/text/jinja_ast.h"
#include "engine/text/jinja_value.h"

namespace latentserve::engine::text::jinja {

struct RenderLimits {
  size_t max_output_bytes = size_t{16} << 20;  // also the largest string or list a template may build
  size_t max_list_items = size_t{1} << 20;     // largest list (range() included) a template may build
  uint64_t max_steps = 20'000'000;             // loop iterations, calls and outputs together
  int max_call_depth = 64;                     // nested macro calls
};

class Template {
 public:
  // Tokenizes and parses; unknown tags, filters and tests are errors naming line and column.
  static Result<Template> parse(const std::string& source);

  // `variables` are the template's global names (messages, bos_token, ...). An error from
  // raise_exception() carries the template's message unchanged; other errors name the line
  // and column of the expression or statement that failed.
  Result<TaggedString> render(const std::vector<std::pair<std::string, Value>>& variables,
                              const RenderLimits& limits = {}) const;

 private:
  std::shared_ptr<const Body> body_;
};

}  // namespace latentserve::engine::text::jinja
