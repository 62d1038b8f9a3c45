#include "server/generate_command.h"

#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "server/command_line.h"
#include "server/default_model.h"

namespace latentserve::server {

namespace {

const std::vector<OptionSpec> kOptions = {
    {"model", true, "model folder (config.json + safetensors); default: the built-in tiny model"},
    {"input", true, "requests, one JSON object per line"},
    {"output", true, "results, one JSON object per line, in input order"},
    {"block-size", true, "latent cache block size in tokens (default 64)"},
    {"help", false, "show this help"},
};

Result<int32_t> int_field(const nlohmann::json& j, const char* name, int32_t fallback, int32_t lo,
                          int32_t hi) {
  if (!j.contains(name) || j[name].is_null()) return fallback;
  if (!j[name].is_number_integer()) return make_error(std::string("\"") + name + "\" must be an integer");
  const int64_t v = j[name].get<int64_t>();
  if (v < lo || v > hi) {
    return make_error(std::string("\"") + name + "\" must be between " + std::to_string(lo) + " and " +
                      std::to_string(hi) + ", got " + std::to_string(v));
  }
  return int32_t(v);
}

}  // namespace

Result<engine::GreedyRequest> parse_generate_request(const std::string& line) {
  nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return make_error("not valid JSON");
  if (!j.is_object()) return make_error("expected a JSON object");
  engine::GreedyRequest r;
  if (!j.contains("prompt_token_ids")) return make_error("\"prompt_token_ids\" is required");
  const auto& ids = j["prompt_token_ids"];
  if (!ids.is_array() || ids.empty()) return make_error("\"prompt_token_ids\" must be a non-empty array");
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!ids[i].is_number_integer() || ids[i].get<int64_t>() < 0 || ids[i].get<int64_t>() > INT32_MAX) {
      return make_error("\"prompt_token_ids\"[" + std::to_string(i) + "] must be a non-negative integer");
    }
    r.prompt_token_ids.push_back(ids[i].get<int32_t>());
  }
  LS_ASSIGN_OR_RETURN(r.max_tokens, int_field(j, "max_tokens", 16, 1, 1 << 24));
  LS_ASSIGN_OR_RETURN(r.logprobs, int_field(j, "logprobs", 0, 0, 20));
  if (j.contains("ignore_eos") && !j["ignore_eos"].is_null()) {
    if (!j["ignore_eos"].is_boolean()) return make_error("\"ignore_eos\" must be true or false");
    r.ignore_eos = j["ignore_eos"].get<bool>();
  }
  return r;
}

std::string format_generate_result(const engine::GreedyResult& result, int32_t logprobs) {
  nlohmann::json out;
  out["token_ids"] = result.token_ids;
  if (logprobs > 0) {
    nlohmann::json per_token = nlohmann::json::array();
    for (const auto& entries : result.logprobs) {
      nlohmann::json row = nlohmann::json::array();
      for (const auto& e : entries) row.push_back({{"id", e.id}, {"logprob", e.logprob}});
      per_token.push_back(std::move(row));
    }
    out["logprobs"] = std::move(per_token);
  } else {
    out["logprobs"] = nullptr;
  }
  out["finish_reason"] = result.finish_reason;
  return out.dump();
}

int generate_command(const std::vector<std::string>& args) {
  auto parsed = parse_options(args, kOptions);
  if (!parsed.ok()) {
    std::cerr << "latentserve generate: " << parsed.error().message << "\n";
    return 2;
  }
  if (parsed->has("help") || !parsed->has("input") || !parsed->has("output")) {
    std::cerr << "usage: latentserve generate [--model DIR] --input requests.jsonl --output results.jsonl\n"
              << describe_options(kOptions);
    return parsed->has("help") ? 0 : 2;
  }
  auto block_size = parsed->get_int("block-size", 64);
  if (!block_size.ok() || *block_size < 1 || *block_size > 4096) {
    std::cerr << "latentserve generate: --block-size must be an integer in [1, 4096]\n";
    return 2;
  }
  const std::string input_path = *parsed->get("input");
  std::ifstream input(input_path);
  if (!input) {
    std::cerr << "latentserve generate: cannot open " << input_path << "\n";
    return 1;
  }
  auto model_dir = resolve_model_dir(parsed->get("model"));
  if (!model_dir.ok()) {
    std::cerr << "latentserve generate: " << model_dir.error().message << "\n";
    return 1;
  }
  auto model = models::deepseek_v3::Model::load(*model_dir);
  if (!model.ok()) {
    std::cerr << "latentserve generate: " << model.error().message << "\n";
    return 1;
  }
  engine::GreedyGenerator generator(**model, *block_size);

  // Read and check every line before generating anything, so a bad line costs no work.
  std::vector<engine::GreedyRequest> requests;
  std::string line;
  for (int line_no = 1; std::getline(input, line); ++line_no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto request = parse_generate_request(line);
    Status valid = request.ok() ? generator.validate(*request) : Status(request.error());
    if (!valid.ok()) {
      std::cerr << "latentserve generate: " << input_path << ":" << line_no << ": "
                << valid.error().message << "\n";
      return 1;
    }
    requests.push_back(std::move(request).value());
  }

  const std::string output_path = *parsed->get("output");
  std::ofstream output(output_path);
  if (!output) {
    std::cerr << "latentserve generate: cannot write " << output_path << "\n";
    return 1;
  }
  for (const auto& request : requests) {
    auto result = generator.generate(request);
    if (!result.ok()) {
      std::cerr << "latentserve generate: " << result.error().message << "\n";
      return 1;
    }
    output << format_generate_result(*result, request.logprobs) << "\n";
  }
  std::cerr << "latentserve generate: wrote " << requests.size() << " results to " << output_path << "\n";
  return 0;
}

}  // namespace latentserve::server
