#include "server/openai/request.h"

#include <algorithm>

#include "server/request_parsing.h"

namespace latentserve::server::openai {

namespace {

using json = nlohmann::ordered_json;

bool present(const json& j, const char* field) { return j.contains(field) && !j[field].is_null(); }

ApiError type_error(const std::string& field, const std::string& expected) {
  return bad_request("\"" + field + "\" must be " + expected, field);
}

// Checks that `field`, when present, has the JSON type `is` accepts.
template <class Pred>
bool has_wrong_type(const json& body, const char* field, Pred is) {
  return present(body, field) && !is(body[field]);
}

ApiResult<bool> check_model(const json& body, const ServingContext& ctx) {
  if (!present(body, "model")) return true;  // vLLM's leniency: the one served model
  if (!body["model"].is_string()) return type_error("model", "a string");
  const std::string model = body["model"].get<std::string>();
  if (model != ctx.model_name) {
    return ApiError{404, "The model `" + model + "` does not exist.", "model", "model_not_found"};
  }
  return true;
}

ApiResult<bool> read_stream_fields(const json& body, ParsedRequest& out) {
  if (has_wrong_type(body, "stream", [](const json& v) { return v.is_boolean(); })) {
    return type_error("stream", "true or false");
  }
  out.stream = present(body, "stream") && body["stream"].get<bool>();
  if (present(body, "stream_options")) {
    const json& so = body["stream_options"];
    if (!so.is_object()) return type_error("stream_options", "an object");
    if (!out.stream) return bad_request("\"stream_options\" is only allowed when \"stream\" is true", "stream_options");
    if (has_wrong_type(so, "include_usage", [](const json& v) { return v.is_boolean(); })) {
      return type_error("stream_options.include_usage", "true or false");
    }
    out.include_usage = present(so, "include_usage") && so["include_usage"].get<bool>();
  }
  if (has_wrong_type(body, "user", [](const json& v) { return v.is_string(); })) {
    return type_error("user", "a string");
  }
  return true;
}

// tools: [{"type": "function", "function": {"name", ...}}]; tool_choice: "none" | "auto" |
// "required" | {"type": "function", "function": {"name"}} naming one of them.
ApiResult<bool> check_tools(const json& body, ParsedRequest& out) {
  const bool has_tools = present(body, "tools");
  if (has_tools) {
    const json& tools = body["tools"];
    if (!tools.is_array()) return type_error("tools", "an array of tools");
    for (size_t i = 0; i < tools.size(); ++i) {
      const json& t = tools[i];
      const std::string at = "tools[" + std::to_string(i) + "]";
      if (!t.is_object() || t.value("type", json()) != "function" || !t.contains("function") ||
          !t["function"].is_object() || !t["function"].contains("name") || !t["function"]["name"].is_string()) {
        return bad_request("\"" + at + "\" must be {\"type\": \"function\", \"function\": {\"name\": ...}}", "tools");
      }
    }
  }
  std::string choice = has_tools ? "auto" : "none";
  if (present(body, "tool_choice")) {
    const json& tc = body["tool_choice"];
    if (tc.is_string()) {
      choice = tc.get<std::string>();
      if (choice != "none" && choice != "auto" && choice != "required") {
        return bad_request("\"tool_choice\" must be \"none\", \"auto\", \"required\" or a named function", "tool_choice");
      }
    } else if (tc.is_object() && tc.value("type", json()) == "function" && tc.contains("function") &&
               tc["function"].is_object() && tc["function"].contains("name") && tc["function"]["name"].is_string()) {
      const std::string name = tc["function"]["name"].get<std::string>();
      bool found = false;
      if (has_tools) {
        for (const auto& t : body["tools"]) found = found || t["function"]["name"] == name;
      }
      if (!found) return bad_request("\"tool_choice\" names \"" + name + "\", which is not in \"tools\"", "tool_choice");
      choice = "named";
    } else {
      return type_error("tool_choice", "\"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}");
    }
    if (choice != "none" && !has_tools) {
      return bad_request("\"tool_choice\" needs \"tools\"", "tool_choice");
    }
  }
  out.parse_tool_calls = has_tools && choice != "none";
  return true;
}

bool ends_inside_think(const std::string& prompt) {
  size_t end = prompt.find_last_not_of(" \n\r\t");
  if (end == std::string::npos) return false;
  const std::string open = "<think>";
  return end + 1 >= open.size() && prompt.compare(end + 1 - open.size(), open.size(), open) == 0;
}

ApiResult<std::vector<int32_t>> chat_prompt(const json& body, const ServingContext& ctx, ParsedRequest& out) {
  if (!present(body, "messages")) return bad_request("\"messages\" is required", "messages");
  if (!body["messages"].is_array()) return type_error("messages", "an array of messages");
  if (body["messages"].empty()) return bad_request("\"messages\" must not be empty", "messages");
  if (auto r = check_tools(body, out); !r.ok()) return r.error();
  if (present(body, "response_format")) {
    const json& rf = body["response_format"];
    if (!rf.is_object() || rf.value("type", json()) != "text") {
      return bad_request("\"response_format\" other than {\"type\": \"text\"} is not supported", "response_format");
    }
  }
  bool add_generation_prompt = true;
  if (present(body, "add_generation_prompt")) {
    if (!body["add_generation_prompt"].is_boolean()) return type_error("add_generation_prompt", "true or false");
    add_generation_prompt = body["add_generation_prompt"].get<bool>();
  }
  json extra = nullptr;
  if (present(body, "chat_template_kwargs")) {
    if (!body["chat_template_kwargs"].is_object()) return type_error("chat_template_kwargs", "an object");
    extra = body["chat_template_kwargs"];
  }
  if (!ctx.text) return bad_request("this model has no tokenizer: chat messages cannot be encoded", "messages");
  const json tools = present(body, "tools") ? body["tools"] : json(nullptr);
  auto chat = ctx.text->encode_chat(body["messages"], tools, add_generation_prompt, extra);
  if (!chat.ok()) return bad_request(chat.error().message, "messages");
  out.parse_reasoning = ctx.reasoning == ReasoningMode::kAuto;
  out.starts_in_reasoning = out.parse_reasoning && ends_inside_think(chat->text);
  return std::move(chat->ids);
}

// A string, token ids, or a batch of exactly one of either.
ApiResult<std::vector<int32_t>> completion_prompt(const json& body, const ServingContext& ctx) {
  if (!present(body, "prompt")) return bad_request("\"prompt\" is required", "prompt");
  json prompt = body["prompt"];
  if (prompt.is_array() && !prompt.empty() && (prompt[0].is_string() || prompt[0].is_array())) {
    if (prompt.size() > 1) {
      return bad_request("\"prompt\" holds " + std::to_string(prompt.size()) +
                             " prompts; batched prompts are not supported, send one request per prompt",
                         "prompt");
    }
    prompt = json(prompt[0]);
  }
  if (present(body, "echo") && (!body["echo"].is_boolean() || body["echo"].get<bool>())) {
    return bad_request("\"echo\" is not supported", "echo");
  }
  if (present(body, "suffix")) return bad_request("\"suffix\" is not supported", "suffix");
  bool add_special_tokens = true;
  if (present(body, "add_special_tokens")) {
    if (!body["add_special_tokens"].is_boolean()) return type_error("add_special_tokens", "true or false");
    add_special_tokens = body["add_special_tokens"].get<bool>();
  }
  if (prompt.is_array()) {
    auto ids = parse_prompt(json{{"prompt", prompt}}, nullptr);
    if (!ids.ok()) return bad_request(ids.error().message, "prompt");
    if (ids->empty()) return bad_request("\"prompt\" must not be empty", "prompt");
    return std::move(ids).value();
  }
  if (!prompt.is_string()) return type_error("prompt", "a string or an array of token ids");
  if (!ctx.text) return bad_request("this model has no tokenizer: give \"prompt\" as token ids", "prompt");
  auto ids = ctx.text->encode_prompt(prompt.get<std::string>(), add_special_tokens);
  if (!ids.ok()) return bad_request(ids.error().message, "prompt");
  return std::move(ids).value();
}

// vLLM's default when the request names no limit: whatever the context (and here, the whole
// latent cache) leaves after the prompt.
ApiResult<bool> default_max_tokens(const json& body, const ServingContext& ctx, ParsedRequest& out) {
  if (present(body, "max_tokens") || present(body, "max_completion_tokens")) return true;
  const int64_t prompt = int64_t(out.request.prompt_token_ids.size());
  int64_t room = ctx.max_model_len;
  if (ctx.engine) {
    const auto stats = ctx.engine->stats();
    if (stats.num_blocks > 0) room = std::min(room, stats.num_blocks * stats.block_size);
  }
  if (prompt >= room) {
    return bad_request("the prompt (" + std::to_string(prompt) + " tokens) leaves no room to generate: the " +
                           "model's context length is " + std::to_string(ctx.max_model_len) + " tokens" +
                           (room < ctx.max_model_len ? " and the cache holds " + std::to_string(room) : std::string()),
                       out.prompt_param);
  }
  out.request.params.max_tokens = room - prompt;
  return true;
}

}  // namespace

std::string param_of(const std::string& message) {
  if (message.size() < 2 || message[0] != '"') return "";
  const size_t end = message.find('"', 1);
  return end == std::string::npos ? "" : message.substr(1, end - 1);
}

ApiResult<ParsedRequest> parse_request(Endpoint endpoint, const json& body, const ServingContext& ctx) {
  if (!body.is_object()) return bad_request("the request body must be a JSON object");
  if (auto r = check_model(body, ctx); !r.ok()) return r.error();
  ParsedRequest out;
  out.endpoint = endpoint;
  out.prompt_param = endpoint == Endpoint::kChat ? "messages" : "prompt";
  if (auto r = read_stream_fields(body, out); !r.ok()) return r.error();
  ParseDefaults defaults;
  defaults.temperature = 1.0f;
  defaults.chat_logprobs = endpoint == Endpoint::kChat;
  auto params = parse_sampling_params(body, defaults);
  if (!params.ok()) return bad_request(params.error().message, param_of(params.error().message));
  out.request.params = std::move(params).value();
  auto& p = out.request.params;
  out.logprobs = p.logprobs.has_value();
  // Bounds whose field name differs from the engine's, checked here to name the right one.
  const char* logprobs_field = endpoint == Endpoint::kChat ? "top_logprobs" : "logprobs";
  if (p.logprobs && (*p.logprobs < 0 || *p.logprobs > ctx.limits.max_logprobs)) {
    return bad_request("\"" + std::string(logprobs_field) + "\" must be in [0, " +
                           std::to_string(ctx.limits.max_logprobs) + "], got " + std::to_string(*p.logprobs),
                       logprobs_field);
  }
  if (p.n < 1 || p.n > ctx.limits.max_n) {
    return bad_request("\"n\" must be in [1, " + std::to_string(ctx.limits.max_n) + "], got " + std::to_string(p.n), "n");
  }
  auto ids = endpoint == Endpoint::kChat ? chat_prompt(body, ctx, out) : completion_prompt(body, ctx);
  if (!ids.ok()) return ids.error();
  out.request.prompt_token_ids = std::move(ids).value();
  if (auto r = default_max_tokens(body, ctx, out); !r.ok()) return r.error();
  return out;
}

ApiResult<ParsedRequest> parse_request(Endpoint endpoint, const std::string& body, const ServingContext& ctx) {
  // nlohmann's lexer rejects invalid UTF-8 inside strings, so that is a parse error too.
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return bad_request("the request body is not valid JSON (or not valid UTF-8)");
  return parse_request(endpoint, j, ctx);
}

ApiResult<bool> check_admission(const ParsedRequest& parsed, const ServingContext& ctx) {
  if (!ctx.engine) return ApiError{503, "the engine is not running", "", ""};
  const Status valid = ctx.engine->validate(parsed.request);
  if (!valid.ok()) return engine_validation_error(valid.error().message, parsed.prompt_param);
  if (ctx.engine->stats().num_queued_requests >= ctx.max_queued_requests) {
    return ApiError{429, "the server is busy: " + std::to_string(ctx.max_queued_requests) +
                             " requests are already waiting; retry later", "", ""};
  }
  return true;
}

}  // namespace latentserve::server::openai
