#include "engine/text/chat_template.h"

#include <set>

namespace latentserve::engine::text {
namespace {

using json = nlohmann::ordered_json;

Result<json> normalize_content(const json& content, const std::string& where) {
  if (content.is_null() || content.is_string()) return content;
  if (!content.is_array()) return make_error(where + ".content must be a string, an array of text parts or null");
  std::string joined;
  for (size_t i = 0; i < content.size(); ++i) {
    const json& part = content[i];
    const std::string at = where + ".content[" + std::to_string(i) + "]";
    if (!part.is_object()) return make_error(at + " must be an object");
    auto type = part.find("type");
    if (type == part.end() || !type->is_string()) return make_error(at + ".type must be a string");
    if (*type != "text") return make_error(at + ": content parts of type '" + type->get<std::string>() + "' are not supported");
    auto text = part.find("text");
    if (text == part.end() || !text->is_string()) return make_error(at + ".text must be a string");
    if (i) joined += "\n";
    joined += text->get<std::string>();
  }
  return json(joined);
}

Result<json> normalize_tool_calls(const json& calls, const std::string& where) {
  if (!calls.is_array()) return make_error(where + ".tool_calls must be an array");
  json out = json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    const std::string at = where + ".tool_calls[" + std::to_string(i) + "]";
    json call = calls[i];
    if (!call.is_object()) return make_error(at + " must be an object");
    if (!call.contains("type")) call["type"] = "function";
    if (!call["type"].is_string()) return make_error(at + ".type must be a string");
    if (call.contains("id") && !call["id"].is_string()) return make_error(at + ".id must be a string");
    auto fn = call.find("function");
    if (fn == call.end() || !fn->is_object()) return make_error(at + ".function must be an object");
    auto name = fn->find("name");
    if (name == fn->end() || !name->is_string()) return make_error(at + ".function.name must be a string");
    auto args = fn->find("arguments");
    if (args == fn->end() || args->is_null()) {
      (*fn)["arguments"] = "{}";
    } else if (!args->is_string()) {
      if (!args->is_object()) return make_error(at + ".function.arguments must be a JSON string or an object");
      (*fn)["arguments"] = args->dump();
    }
    out.push_back(std::move(call));
  }
  return out;
}

}  // namespace

Result<json> normalize_messages(const json& messages) {
  static const std::set<std::string> kRoles = {"system", "developer", "user", "assistant", "tool"};
  if (!messages.is_array()) return make_error("messages must be an array");
  if (messages.empty()) return make_error("messages must not be empty");
  json out = json::array();
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string at = "messages[" + std::to_string(i) + "]";
    json m = messages[i];
    if (!m.is_object()) return make_error(at + " must be an object");
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) return make_error(at + ".role must be a string");
    if (!kRoles.count(role->get<std::string>())) {
      return make_error(at + ".role '" + role->get<std::string>() + "' is not one of system, developer, user, assistant, tool");
    }
    LS_ASSIGN_OR_RETURN(m["content"], normalize_content(m.contains("content") ? m["content"] : json(nullptr), at));
    if (m.contains("tool_calls")) {
      if (m["tool_calls"].is_null()) {
        m.erase("tool_calls");
      } else {
        if (*role != "assistant") return make_error(at + ": only assistant messages may have tool_calls");
        LS_ASSIGN_OR_RETURN(m["tool_calls"], normalize_tool_calls(m["tool_calls"], at));
      }
    }
    for (const char* key : {"tool_call_id", "name", "reasoning_content"}) {
      if (m.contains(key) && !m[key].is_string() && !m[key].is_null()) return make_error(at + "." + key + " must be a string");
    }
    if (m["content"].is_null() && *role != "assistant") return make_error(at + ".content must not be null for role '" + role->get<std::string>() + "'");
    out.push_back(std::move(m));
  }
  return out;
}

Result<ChatTemplate> ChatTemplate::parse(std::string source) {
  Result<jinja::Template> t = jinja::Template::parse(source);
  if (!t.ok()) return t.error().with_context("chat template");
  ChatTemplate ct;
  ct.source_ = std::move(source);
  ct.template_ = std::move(*t);
  return ct;
}

Result<RenderedPrompt> ChatTemplate::render(const ChatRequest& request) const {
  LS_ASSIGN_OR_RETURN(json messages, normalize_messages(request.messages));
  if (!request.tools.is_null() && !request.tools.is_array()) return make_error("tools must be an array or null");
  if (!request.extra.is_null() && !request.extra.is_object()) return make_error("extra template variables must be an object");

  std::vector<std::pair<std::string, jinja::Value>> vars;
  if (request.extra.is_object()) {
    for (auto it = request.extra.begin(); it != request.extra.end(); ++it) vars.emplace_back(it.key(), jinja::Value::from_json(it.value(), false));
  }
  vars.emplace_back("messages", jinja::Value::from_json(messages, true));
  vars.emplace_back("tools", jinja::Value::from_json(request.tools, true));
  vars.emplace_back("add_generation_prompt", jinja::Value::boolean(request.add_generation_prompt));
  vars.emplace_back("bos_token", jinja::Value::string(request.bos_token));
  vars.emplace_back("eos_token", jinja::Value::string(request.eos_token));
  vars.emplace_back("pad_token", jinja::Value::string(request.pad_token));

  Result<jinja::TaggedString> out = template_.render(vars, limits_);
  if (!out.ok()) return out.error().with_context("rendering chat template");
  RenderedPrompt prompt;
  prompt.text = out->text();
  size_t pos = 0;
  for (const auto& run : out->runs()) {
    prompt.segments.push_back({prompt.text.substr(pos, run.length), run.tagged});
    pos += run.length;
  }
  return prompt;
}

}  // namespace latentserve::engine::text
