#include "server/request_parsing.h"

#include <charconv>
#include <limits>

namespace latentserve::server {

namespace {

using json = nlohmann::ordered_json;

// Built with += rather than operator+ chains: GCC 12 reports a false -Wrestrict on those.
Error field_error(const std::string& field, const char* what) {
  std::string message = "\"";
  message += field;
  message += "\" ";
  message += what;
  return make_error(std::move(message));
}

Error type_error(const std::string& field, const char* expected) {
  return field_error(field, (std::string("must be ") + expected).c_str());
}

bool present(const json& j, const char* field) { return j.contains(field) && !j[field].is_null(); }

Status read_float(const json& j, const char* field, float& out) {
  if (!present(j, field)) return ok_status();
  if (!j[field].is_number()) return type_error(field, "a number");
  out = j[field].get<float>();
  return ok_status();
}

Status read_int(const json& j, const char* field, int64_t& out) {
  if (!present(j, field)) return ok_status();
  if (!j[field].is_number_integer()) return type_error(field, "an integer");
  out = j[field].get<int64_t>();
  return ok_status();
}

Status read_int32(const json& j, const char* field, int32_t& out) {
  int64_t v = out;
  LS_RETURN_IF_ERROR(read_int(j, field, v));
  if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max()) {
    return field_error(field, "is out of range");
  }
  out = int32_t(v);
  return ok_status();
}

Status read_bool(const json& j, const char* field, bool& out) {
  if (!present(j, field)) return ok_status();
  if (!j[field].is_boolean()) return type_error(field, "true or false");
  out = j[field].get<bool>();
  return ok_status();
}

Result<std::vector<int32_t>> read_ids(const json& v, const std::string& field) {
  if (!v.is_array()) return type_error(field, "an array of token ids");
  std::vector<int32_t> ids;
  for (size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_number_integer() || v[i].get<int64_t>() < 0 ||
        v[i].get<int64_t>() > std::numeric_limits<int32_t>::max()) {
      return make_error("\"" + field + "\"[" + std::to_string(i) + "] must be a non-negative integer");
    }
    ids.push_back(v[i].get<int32_t>());
  }
  return ids;
}

Status read_stop(const json& j, engine::SamplingParams& p) {
  if (!present(j, "stop")) return ok_status();
  const json& stop = j["stop"];
  if (stop.is_string()) {
    p.stop = {stop.get<std::string>()};
    return ok_status();
  }
  if (!stop.is_array()) return type_error("stop", "a string or an array of strings");
  for (const auto& s : stop) {
    if (!s.is_string()) return type_error("stop", "a string or an array of strings");
    p.stop.push_back(s.get<std::string>());
  }
  return ok_status();
}

Status read_logit_bias(const json& j, engine::SamplingParams& p) {
  if (!present(j, "logit_bias")) return ok_status();
  const json& bias = j["logit_bias"];
  if (!bias.is_object()) return type_error("logit_bias", "an object mapping token ids to numbers");
  for (const auto& [key, value] : bias.items()) {
    int64_t id = -1;
    auto [ptr, ec] = std::from_chars(key.data(), key.data() + key.size(), id);
    if (ec != std::errc() || ptr != key.data() + key.size() || id < 0 ||
        id > std::numeric_limits<int32_t>::max()) {
      return make_error("\"logit_bias\" key \"" + key + "\" is not a token id");
    }
    if (!value.is_number()) return make_error("\"logit_bias\"[\"" + key + "\"] must be a number");
    p.logit_bias[int32_t(id)] = value.get<float>();
  }
  return ok_status();
}

}  // namespace

Result<engine::SamplingParams> parse_sampling_params(const json& j, const ParseDefaults& defaults) {
  engine::SamplingParams p;
  p.temperature = defaults.temperature;
  p.max_tokens = defaults.max_tokens;
  LS_RETURN_IF_ERROR(read_int(j, "max_tokens", p.max_tokens));
  LS_RETURN_IF_ERROR(read_int(j, "max_completion_tokens", p.max_tokens));
  LS_RETURN_IF_ERROR(read_int(j, "min_tokens", p.min_tokens));
  LS_RETURN_IF_ERROR(read_float(j, "temperature", p.temperature));
  LS_RETURN_IF_ERROR(read_int32(j, "top_k", p.top_k));
  LS_RETURN_IF_ERROR(read_float(j, "top_p", p.top_p));
  LS_RETURN_IF_ERROR(read_float(j, "min_p", p.min_p));
  LS_RETURN_IF_ERROR(read_float(j, "presence_penalty", p.presence_penalty));
  LS_RETURN_IF_ERROR(read_float(j, "frequency_penalty", p.frequency_penalty));
  LS_RETURN_IF_ERROR(read_float(j, "repetition_penalty", p.repetition_penalty));
  LS_RETURN_IF_ERROR(read_logit_bias(j, p));
  if (present(j, "seed")) {
    int64_t seed = 0;
    LS_RETURN_IF_ERROR(read_int(j, "seed", seed));
    p.seed = seed;
  }
  LS_RETURN_IF_ERROR(read_int32(j, "n", p.n));
  if (defaults.chat_logprobs) {
    bool wanted = false;
    int32_t k = 0;
    LS_RETURN_IF_ERROR(read_bool(j, "logprobs", wanted));
    LS_RETURN_IF_ERROR(read_int32(j, "top_logprobs", k));
    if (k != 0 && !wanted) return field_error("top_logprobs", "needs \"logprobs\": true");
    if (wanted) p.logprobs = k;
  } else if (present(j, "logprobs")) {
    int32_t k = 0;
    LS_RETURN_IF_ERROR(read_int32(j, "logprobs", k));
    p.logprobs = k;
  }
  if (present(j, "stop_token_ids")) {
    LS_ASSIGN_OR_RETURN(p.stop_token_ids, read_ids(j["stop_token_ids"], "stop_token_ids"));
  }
  LS_RETURN_IF_ERROR(read_stop(j, p));
  LS_RETURN_IF_ERROR(read_bool(j, "ignore_eos", p.ignore_eos));
  LS_RETURN_IF_ERROR(read_bool(j, "include_stop_str_in_output", p.include_stop_str_in_output));
  LS_RETURN_IF_ERROR(read_bool(j, "skip_special_tokens", p.skip_special_tokens));
  LS_RETURN_IF_ERROR(read_int32(j, "priority", p.priority));
  return p;
}

Result<std::vector<int32_t>> parse_prompt(const json& j, const engine::text::TextProcessor* text) {
  const int kinds = int(present(j, "prompt_token_ids")) + int(present(j, "prompt")) +
                    int(present(j, "messages"));
  if (kinds == 0) return make_error("one of \"prompt_token_ids\", \"prompt\" or \"messages\" is required");
  if (kinds > 1) return make_error("give only one of \"prompt_token_ids\", \"prompt\" and \"messages\"");
  if (present(j, "prompt_token_ids")) return read_ids(j["prompt_token_ids"], "prompt_token_ids");
  if (present(j, "prompt") && j["prompt"].is_array()) return read_ids(j["prompt"], "prompt");
  if (!text) return make_error("this model has no tokenizer: give \"prompt_token_ids\"");
  if (present(j, "prompt")) {
    if (!j["prompt"].is_string()) return type_error("prompt", "a string or an array of token ids");
    return text->encode_prompt(j["prompt"].get<std::string>());
  }
  if (!j["messages"].is_array()) return type_error("messages", "an array of messages");
  bool add_generation_prompt = true;
  LS_RETURN_IF_ERROR(read_bool(j, "add_generation_prompt", add_generation_prompt));
  const json tools = present(j, "tools") ? j["tools"] : json(nullptr);
  LS_ASSIGN_OR_RETURN(auto chat, text->encode_chat(j["messages"], tools, add_generation_prompt));
  return chat.ids;
}

}  // namespace latentserve::server
