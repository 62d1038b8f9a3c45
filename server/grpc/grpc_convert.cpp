#ifdef LATENTSERVE_WITH_GRPC

#include "server/grpc/grpc_convert.h"

#include "server/request_parsing.h"

namespace latentserve::server::grpc_api {

namespace v1 = latentserve::v1;
using json = nlohmann::ordered_json;

engine::SamplingParams sampling_params_from_proto(const v1::SamplingParameters& p) {
  engine::SamplingParams s;
  if (p.has_max_tokens()) s.max_tokens = p.max_tokens();
  if (p.has_min_tokens()) s.min_tokens = p.min_tokens();
  if (p.has_temperature()) s.temperature = p.temperature();
  if (p.has_top_k()) s.top_k = p.top_k();
  if (p.has_top_p()) s.top_p = p.top_p();
  if (p.has_min_p()) s.min_p = p.min_p();
  if (p.has_presence_penalty()) s.presence_penalty = p.presence_penalty();
  if (p.has_frequency_penalty()) s.frequency_penalty = p.frequency_penalty();
  if (p.has_repetition_penalty()) s.repetition_penalty = p.repetition_penalty();
  for (const auto& [token, bias] : p.logit_bias()) s.logit_bias[token] = bias;
  if (p.has_seed()) s.seed = p.seed();
  if (p.has_n()) s.n = p.n();
  if (p.has_logprobs()) s.logprobs = p.logprobs();
  s.stop.assign(p.stop().begin(), p.stop().end());
  s.stop_token_ids.assign(p.stop_token_ids().begin(), p.stop_token_ids().end());
  if (p.has_ignore_eos()) s.ignore_eos = p.ignore_eos();
  if (p.has_skip_special_tokens()) s.skip_special_tokens = p.skip_special_tokens();
  if (p.has_include_stop_str_in_output()) s.include_stop_str_in_output = p.include_stop_str_in_output();
  if (p.has_priority()) s.priority = p.priority();
  return s;
}

namespace {

json message_json(const v1::ChatMessage& m) {
  json out = {{"role", m.role()}};
  out["content"] = m.has_content() ? json(m.content()) : json(nullptr);
  if (m.tool_calls_size() > 0) {
    json calls = json::array();
    for (const auto& c : m.tool_calls()) {
      calls.push_back({{"id", c.id()},
                       {"type", c.type().empty() ? std::string("function") : c.type()},
                       {"function", {{"name", c.name()}, {"arguments", c.arguments()}}}});
    }
    out["tool_calls"] = std::move(calls);
  }
  if (!m.tool_call_id().empty()) out["tool_call_id"] = m.tool_call_id();
  if (!m.name().empty()) out["name"] = m.name();
  return out;
}

}  // namespace

Result<json> chat_request_json(const v1::ChatPrompt& chat) {
  json messages = json::array();
  for (const auto& m : chat.messages()) messages.push_back(message_json(m));
  json out = {{"messages", std::move(messages)}};
  if (!chat.tools_json().empty()) {
    json tools = json::parse(chat.tools_json(), nullptr, /*allow_exceptions=*/false);
    if (tools.is_discarded()) return make_error("chat.tools_json is not valid JSON");
    if (!tools.is_array()) return make_error("chat.tools_json must be a JSON array of tools");
    out["tools"] = std::move(tools);
  }
  if (chat.has_add_generation_prompt()) out["add_generation_prompt"] = chat.add_generation_prompt();
  return out;
}

Result<std::vector<int32_t>> prompt_from_proto(const v1::GenerateRequest& request,
                                               const engine::text::TextProcessor* text) {
  switch (request.prompt_case()) {
    case v1::GenerateRequest::kTokenIds:
      return std::vector<int32_t>(request.token_ids().ids().begin(), request.token_ids().ids().end());
    case v1::GenerateRequest::kText:
      return parse_prompt(json{{"prompt", request.text()}}, text);
    case v1::GenerateRequest::kChat: {
      LS_ASSIGN_OR_RETURN(json j, chat_request_json(request.chat()));
      return parse_prompt(j, text);
    }
    case v1::GenerateRequest::PROMPT_NOT_SET:
      break;
  }
  return make_error("one of token_ids, text or chat is required");
}

Result<engine::Request> request_from_proto(const v1::GenerateRequest& request,
                                           const engine::text::TextProcessor* text) {
  engine::Request out;
  LS_ASSIGN_OR_RETURN(out.prompt_token_ids, prompt_from_proto(request, text));
  out.params = sampling_params_from_proto(request.sampling());
  return out;
}

namespace {

v1::FinishReason finish_reason_proto(engine::FinishReason r) {
  switch (r) {
    case engine::FinishReason::kStop: return v1::FINISH_REASON_STOP;
    case engine::FinishReason::kLength: return v1::FINISH_REASON_LENGTH;
    case engine::FinishReason::kAbort: return v1::FINISH_REASON_ABORT;
    case engine::FinishReason::kError: break;  // ends the call with INTERNAL instead
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

}  // namespace

void response_from_output(const engine::Output& output, const std::string& request_id,
                          v1::GenerateResponse& into) {
  into.Clear();
  into.set_index(output.index);
  into.mutable_token_ids()->Add(output.token_ids.begin(), output.token_ids.end());
  into.set_text(output.text);
  for (const auto& lp : output.logprobs) {
    v1::TokenLogprob* row = into.add_logprobs();
    row->set_token(lp.token);
    row->set_logprob(lp.logprob);
    for (const auto& top : lp.top) {
      v1::TopLogprob* t = row->add_top();
      t->set_token(top.token);
      t->set_logprob(top.logprob);
    }
  }
  if (output.finish_reason) into.set_finish_reason(finish_reason_proto(*output.finish_reason));
  into.set_stop_reason(output.stop_reason);
  if (output.request_finished) {
    v1::Usage* usage = into.mutable_usage();
    usage->set_prompt_tokens(output.usage.prompt_tokens);
    usage->set_completion_tokens(output.usage.completion_tokens);
    usage->set_cached_tokens(output.usage.cached_tokens);
  }
  into.set_request_id(request_id);
}

}  // namespace latentserve::server::grpc_api

#endif  // LATENTSERVE_WITH_GRPC
