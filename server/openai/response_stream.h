// Turning a request's engine Outputs into the server-sent events of a streamed response:
// chat.completion.chunk (role first, content / reasoning / tool-call deltas, an empty delta with
// the finish reason) or text_completion chunks, a usage chunk when asked, then [DONE].
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/output.h"
#include "engine/text/text_processor.h"
#include "server/openai/choice_parser.h"
#include "server/openai/request.h"
#include "server/openai/responses.h"

namespace latentserve::server::openai {

class ResponseStream {
 public:
  ResponseStream(const ParsedRequest& parsed, ResponseMeta meta,
                 std::shared_ptr<const engine::text::TextProcessor> text);

  // The event payloads (JSON text, or "[DONE]") one Output adds, in order.
  std::vector<std::string> on_output(const engine::Output& output);
  bool done() const { return done_; }

 private:
  struct Choice {
    std::unique_ptr<ChoiceParser> parser;
    int64_t text_offset = 0;  // completions' logprobs.text_offset
  };
  Choice& choice(int32_t index, std::vector<std::string>& events);
  nlohmann::ordered_json chunk(nlohmann::ordered_json choices) const;
  nlohmann::ordered_json chat_delta(const ChoiceDelta& d) const;
  void chat_output(const engine::Output& output, Choice& c, std::vector<std::string>& events);
  void completion_output(const engine::Output& output, Choice& c, std::vector<std::string>& events);

  ParsedRequest parsed_;  // its prompt ids are not kept
  ResponseMeta meta_;
  std::shared_ptr<const engine::text::TextProcessor> text_;
  std::map<int32_t, Choice> choices_;
  bool done_ = false;
};

}  // namespace latentserve::server::openai
