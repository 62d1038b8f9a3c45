#include "server/tokenize_command.h"

#include <fstream>
#include <iostream>

#include "server/command_line.h"

namespace latentserve::server {

namespace {

using json = nlohmann::ordered_json;

const std::vector<OptionSpec> kOptions = {
    {"tokenizer", true, "folder with tokenizer.json and tokenizer_config.json (a model folder works)"},
    {"input", true, "one JSON object per line"},
    {"output", true, "one JSON object per line, in input order"},
    {"help", false, "show this help"},
};

Result<bool> bool_field(const json& j, const char* name, bool fallback) {
  if (!j.contains(name) || j[name].is_null()) return fallback;
  if (!j[name].is_boolean()) return make_error(std::string("\"") + name + "\" must be true or false");
  return j[name].get<bool>();
}

}  // namespace

Result<json> tokenize_line(const std::string& line, const engine::text::TextProcessor& text) {
  json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return make_error("not valid JSON");
  if (!j.is_object()) return make_error("expected a JSON object");
  const bool has_text = j.contains("text");
  const bool has_messages = j.contains("messages");
  if (has_text == has_messages) return make_error("give exactly one of \"text\" and \"messages\"");
  json out;
  if (has_text) {
    if (!j["text"].is_string()) return make_error("\"text\" must be a string");
    LS_ASSIGN_OR_RETURN(bool add_special, bool_field(j, "add_special_tokens", true));
    LS_ASSIGN_OR_RETURN(bool parse_special, bool_field(j, "parse_special", true));
    LS_ASSIGN_OR_RETURN(auto ids, text.tokenizer().encode(j["text"].get<std::string>(), add_special, parse_special));
    out["ids"] = ids;
    return out;
  }
  if (!j["messages"].is_array()) return make_error("\"messages\" must be an array");
  LS_ASSIGN_OR_RETURN(bool add_generation_prompt, bool_field(j, "add_generation_prompt", true));
  const json tools = j.contains("tools") ? j["tools"] : json(nullptr);
  LS_ASSIGN_OR_RETURN(auto chat, text.encode_chat(j["messages"], tools, add_generation_prompt));
  out["text"] = chat.text;
  out["ids"] = chat.ids;
  return out;
}

int tokenize_command(const std::vector<std::string>& args) {
  auto fail = [](const std::string& message, int code = 1) {
    std::cerr << "latentserve tokenize: " << message << "\n";
    return code;
  };
  auto parsed = parse_options(args, kOptions);
  if (!parsed.ok()) return fail(parsed.error().message, 2);
  if (parsed->has("help") || !parsed->has("tokenizer") || !parsed->has("input") || !parsed->has("output")) {
    std::cerr << "usage: latentserve tokenize --tokenizer DIR --input in.jsonl --output out.jsonl\n"
              << describe_options(kOptions);
    return parsed->has("help") ? 0 : 2;
  }
  auto text = engine::text::TextProcessor::load(*parsed->get("tokenizer"));
  if (!text.ok()) return fail(text.error().message);
  const std::string input_path = *parsed->get("input");
  std::ifstream input(input_path);
  if (!input) return fail("cannot open " + input_path);
  std::vector<std::string> results;
  std::string line;
  for (int line_no = 1; std::getline(input, line); ++line_no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto result = tokenize_line(line, **text);
    if (!result.ok()) return fail(input_path + ":" + std::to_string(line_no) + ": " + result.error().message);
    results.push_back(result->dump());
  }
  std::ofstream output(*parsed->get("output"));
  if (!output) return fail("cannot write " + *parsed->get("output"));
  for (const auto& r : results) output << r << "\n";
  return 0;
}

}  // namespace latentserve::server
