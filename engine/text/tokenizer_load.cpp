// Tokenizer::load: reads tokenizer.json and tokenizer_config.json, checking every component
// against what this implementation supports so nothing is mis-tokenized silently.
#include <algorithm>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "engine/text/byte_level.h"
#include "engine/text/tokenizer_impl.h"

namespace latentserve::engine::text {
namespace {

using nlohmann::json;

std::string type_of(const json& spec) {
  return spec.is_object() && spec.contains("type") && spec["type"].is_string() ? spec["type"].get<std::string>()
                                                                                 : spec.dump();
}

// Only normalizers that leave the text unchanged are supported.
Status check_normalizer(const json& spec, const std::string& where) {
  if (spec.is_null()) return ok_status();
  const std::string type = type_of(spec);
  if (type != "Sequence") return make_error(where + ": unsupported normalizer '" + type + "'");
  if (!spec.contains("normalizers") || !spec["normalizers"].is_array()) {
    return make_error(where + " (Sequence): 'normalizers' must be an array");
  }
  for (size_t i = 0; i < spec["normalizers"].size(); ++i) {
    LS_RETURN_IF_ERROR(check_normalizer(spec["normalizers"][i], where + ".normalizers[" + std::to_string(i) + "]"));
  }
  return ok_status();
}

Status check_decoder(const json& spec) {
  // ByteLevel's options only change offsets, never the decoded text.
  if (type_of(spec) != "ByteLevel") return make_error("decoder: unsupported decoder '" + type_of(spec) + "'");
  return ok_status();
}

// TemplateProcessing's "single" template: special tokens around the one sequence "A".
Status read_template(const json& spec, std::vector<int32_t>& prefix, std::vector<int32_t>& suffix) {
  const std::string where = "post_processor (TemplateProcessing)";
  if (!spec.contains("single") || !spec["single"].is_array()) return make_error(where + ": 'single' must be an array");
  bool seen_sequence = false;
  for (const json& piece : spec["single"]) {
    if (piece.contains("Sequence")) {
      if (seen_sequence || piece["Sequence"].value("id", "") != "A") {
        return make_error(where + ": 'single' must hold exactly one Sequence \"A\"");
      }
      seen_sequence = true;
    } else if (piece.contains("SpecialToken") && piece["SpecialToken"].contains("id")) {
      const std::string name = piece["SpecialToken"]["id"].get<std::string>();
      const json& tokens = spec.value("special_tokens", json::object());
      if (!tokens.contains(name) || !tokens[name].contains("ids") || !tokens[name]["ids"].is_array()) {
        return make_error(where + ": special token '" + name + "' has no ids in 'special_tokens'");
      }
      for (const json& id : tokens[name]["ids"]) (seen_sequence ? suffix : prefix).push_back(id.get<int32_t>());
    } else {
      return make_error(where + ": unsupported template piece " + piece.dump());
    }
  }
  if (!seen_sequence) return make_error(where + ": 'single' has no Sequence");
  return ok_status();
}

Status read_post_processor(const json& spec, std::vector<int32_t>& prefix, std::vector<int32_t>& suffix) {
  if (spec.is_null()) return ok_status();
  const std::string type = type_of(spec);
  if (type == "ByteLevel") return ok_status();  // adds no tokens
  if (type == "TemplateProcessing") return read_template(spec, prefix, suffix);
  if (type == "Sequence" && spec.contains("processors") && spec["processors"].is_array()) {
    for (const json& p : spec["processors"]) LS_RETURN_IF_ERROR(read_post_processor(p, prefix, suffix));
    return ok_status();
  }
  return make_error("post_processor: unsupported post-processor '" + type + "'");
}

// bos_token/eos_token: a string or an {"content": ...} object.
Result<std::string> config_token(const json& config, const char* key) {
  if (!config.contains(key) || config[key].is_null()) return std::string();
  const json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return make_error(std::string("tokenizer_config.json: '") + key + "' must be a string or {\"content\": string}");
}

Result<std::string> read_chat_template(const json& config) {
  if (!config.contains("chat_template") || config["chat_template"].is_null()) return std::string();
  const json& v = config["chat_template"];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {  // named templates: the one called "default"
    for (const json& t : v) {
      if (t.value("name", "") == "default" && t.contains("template") && t["template"].is_string()) {
        return t["template"].get<std::string>();
      }
    }
    return make_error("tokenizer_config.json: 'chat_template' list has no template named \"default\"");
  }
  return make_error("tokenizer_config.json: 'chat_template' must be a string or a list of named templates");
}

Status check_top_level(const json& root) {
  static constexpr std::string_view kKnown[] = {"version", "truncation", "padding", "added_tokens", "normalizer",
                                                "pre_tokenizer", "post_processor", "decoder", "model"};
  for (auto it = root.begin(); it != root.end(); ++it) {
    if (std::find(std::begin(kKnown), std::end(kKnown), it.key()) == std::end(kKnown)) {
      return make_error("tokenizer.json: unsupported top-level key '" + it.key() + "'");
    }
  }
  for (const char* key : {"truncation", "padding"}) {
    if (root.contains(key) && !root[key].is_null()) {
      return make_error(std::string("tokenizer.json: '") + key + "' is set; encode never truncates or pads");
    }
  }
  if (!root.contains("model")) return make_error("tokenizer.json: missing 'model'");
  return ok_status();
}

void build_id_tables(Tokenizer::Impl& impl) {
  int32_t size = static_cast<int32_t>(impl.model.tokens().size());
  for (const AddedToken& t : impl.added.tokens()) size = std::max(size, t.id + 1);
  impl.id_bytes.assign(static_cast<size_t>(size), std::string());
  impl.id_kind.assign(static_cast<size_t>(size), 0);
  const auto& tokens = impl.model.tokens();
  for (size_t id = 0; id < tokens.size(); ++id) {
    if (tokens[id].empty()) continue;
    impl.id_bytes[id] = byte_level_decode_token(tokens[id]);
    impl.id_kind[id] = 1;
  }
  for (const AddedToken& t : impl.added.tokens()) {
    impl.id_bytes[t.id] = byte_level_decode_token(t.content);
    impl.id_kind[t.id] = t.special ? 3 : 2;
  }
}

Result<std::optional<int32_t>> resolve(const Tokenizer::Impl& impl, const std::string& token, const char* key) {
  if (token.empty()) return std::optional<int32_t>();
  if (const AddedToken* t = impl.added.by_content(token)) return std::optional<int32_t>(t->id);
  auto it = impl.model.vocab().find(token);
  if (it != impl.model.vocab().end()) return std::optional<int32_t>(it->second);
  return make_error(std::string("tokenizer_config.json: ") + key + " '" + token + "' is not a token");
}

Status read_config(const json& config, const json& post_processor, Tokenizer::Impl& impl) {
  LS_ASSIGN_OR_RETURN(impl.bos_token, config_token(config, "bos_token"));
  LS_ASSIGN_OR_RETURN(impl.eos_token, config_token(config, "eos_token"));
  LS_ASSIGN_OR_RETURN(impl.bos_id, resolve(impl, impl.bos_token, "bos_token"));
  LS_ASSIGN_OR_RETURN(impl.eos_id, resolve(impl, impl.eos_token, "eos_token"));
  LS_ASSIGN_OR_RETURN(impl.chat_template, read_chat_template(config));
  // Hugging Face transformers rebuilds the post-processor of Llama tokenizers from these flags;
  // for other classes tokenizer.json's post_processor decides.
  const std::string cls = config.value("tokenizer_class", "");
  if (cls == "LlamaTokenizerFast" || cls == "LlamaTokenizer") {
    auto want = [&](const char* flag, const std::optional<int32_t>& id, std::vector<int32_t>& out) -> Status {
      if (!config.contains(flag) || !config[flag].is_boolean()) {
        if (config.contains(flag)) return make_error(std::string("tokenizer_config.json: '") + flag + "' must be a boolean");
        if (std::string(flag) == "add_bos_token" && id) out.push_back(*id);  // transformers' default: true
        return ok_status();
      }
      if (!config[flag].get<bool>()) return ok_status();
      if (!id) return make_error(std::string("tokenizer_config.json: '") + flag + "' is true but the token is not set");
      out.push_back(*id);
      return ok_status();
    };
    LS_RETURN_IF_ERROR(want("add_bos_token", impl.bos_id, impl.prefix_ids));
    LS_RETURN_IF_ERROR(want("add_eos_token", impl.eos_id, impl.suffix_ids));
    return ok_status();
  }
  return read_post_processor(post_processor, impl.prefix_ids, impl.suffix_ids);
}

Result<std::shared_ptr<Tokenizer::Impl>> build(std::string_view tokenizer_json, std::string_view config_json) {
  json root = json::parse(tokenizer_json);
  if (!root.is_object()) return make_error("tokenizer.json: expected a JSON object");
  json config = config_json.empty() ? json::object() : json::parse(config_json);
  if (!config.is_object()) return make_error("tokenizer_config.json: expected a JSON object");
  LS_RETURN_IF_ERROR(check_top_level(root));
  auto impl = std::make_shared<Tokenizer::Impl>();
  LS_RETURN_IF_ERROR(check_normalizer(root.value("normalizer", json()), "normalizer"));
  LS_RETURN_IF_ERROR(check_decoder(root.value("decoder", json())));
  LS_ASSIGN_OR_RETURN(impl->pre_tokenizer, PreTokenizer::from_json(root.value("pre_tokenizer", json())));
  if (!impl->pre_tokenizer.byte_level()) {
    return make_error("pre_tokenizer: must end with ByteLevel; only byte-level BPE is supported");
  }
  LS_ASSIGN_OR_RETURN(impl->model, BpeModel::from_json(root["model"]));
  LS_ASSIGN_OR_RETURN(impl->added, AddedTokens::from_json(root.value("added_tokens", json())));
  build_id_tables(*impl);
  LS_RETURN_IF_ERROR(read_config(config, root.value("post_processor", json()), *impl));
  for (int32_t id : impl->prefix_ids) {
    if (id < 0 || id >= static_cast<int32_t>(impl->id_kind.size()) || impl->id_kind[id] == 0) {
      return make_error("post-processing adds id " + std::to_string(id) + ", which has no token");
    }
  }
  for (int32_t id : impl->suffix_ids) {
    if (id < 0 || id >= static_cast<int32_t>(impl->id_kind.size()) || impl->id_kind[id] == 0) {
      return make_error("post-processing adds id " + std::to_string(id) + ", which has no token");
    }
  }
  return impl;
}

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error("cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

Result<Tokenizer> Tokenizer::from_json(std::string_view tokenizer_json, std::string_view config_json) {
  try {
    LS_ASSIGN_OR_RETURN(auto impl, build(tokenizer_json, config_json));
    return Tokenizer(std::move(impl));
  } catch (const json::exception& e) {
    // Parse errors and values of the wrong JSON type deeper in the files.
    return make_error(std::string("tokenizer files: ") + e.what());
  }
}

Result<Tokenizer> Tokenizer::load(const std::string& dir) {
  LS_ASSIGN_OR_RETURN(std::string tokenizer_json, read_file(dir + "/tokenizer.json"));
  std::string config_json;
  if (std::ifstream(dir + "/tokenizer_config.json").good()) {
    LS_ASSIGN_OR_RETURN(config_json, read_file(dir + "/tokenizer_config.json"));
  }
  auto tokenizer = from_json(tokenizer_json, config_json);
  if (!tokenizer.ok()) return tokenizer.error().with_context("loading tokenizer from " + dir);
  return tokenizer;
}

}  // namespace latentserve::engine::text
