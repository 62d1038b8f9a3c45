#include "server/openai/batch.h"

#include "server/openai/ids.h"
#include "server/openai/responses.h"

namespace latentserve::server::openai {

using json = nlohmann::ordered_json;

bool is_batch_line(const json& line) {
  return line.is_object() && (line.contains("custom_id") || line.contains("url") || line.contains("body"));
}

BatchItem parse_batch_line(const json& line, const ServingContext& ctx) {
  BatchItem item;
  item.custom_id = line.value("custom_id", json(nullptr));
  auto fail = [&](ApiError e) {
    item.error = std::move(e);
    return item;
  };
  if (!item.custom_id.is_string()) return fail(bad_request("\"custom_id\" must be a string", "custom_id"));
  if (line.value("method", json("POST")) != "POST") return fail(bad_request("\"method\" must be \"POST\"", "method"));
  const json url = line.value("url", json(nullptr));
  Endpoint endpoint;
  if (url == "/v1/chat/completions") {
    endpoint = Endpoint::kChat;
  } else if (url == "/v1/completions") {
    endpoint = Endpoint::kCompletion;
  } else {
    return fail(ApiError{404, "\"url\" must be \"/v1/chat/completions\" or \"/v1/completions\"", "url", ""});
  }
  if (!line.contains("body") || !line["body"].is_object()) return fail(bad_request("\"body\" must be an object", "body"));
  auto parsed = parse_request(endpoint, line["body"], ctx);
  if (!parsed.ok()) return fail(parsed.error());
  if (parsed->stream) return fail(bad_request("\"stream\" is not allowed in a batch", "stream"));
  const Status valid = ctx.engine->validate(parsed->request);
  if (!valid.ok()) return fail(engine_validation_error(valid.error().message, parsed->prompt_param));
  item.parsed = std::move(parsed).value();
  return item;
}

json batch_output_line(const BatchItem& item, const engine::CollectedRequest* result, const ServingContext& ctx) {
  json out = {{"id", "batch_req_" + random_id(24)}, {"custom_id", item.custom_id}};
  ApiError error = item.error;
  if (item.parsed && result) {
    const ResponseMeta meta = new_response_meta(item.parsed->endpoint, ctx.model_name);
    auto body = build_response(*item.parsed, meta, *result, ctx.text.get());
    if (body.ok()) {
      out["response"] = {{"status_code", 200}, {"request_id", meta.id}, {"body", std::move(body).value()}};
      out["error"] = nullptr;
      return out;
    }
    error = body.error();
  }
  out["response"] = {{"status_code", error.status}, {"request_id", "batch_req_" + random_id(24)}, {"body", error_json(error)}};
  out["error"] = {{"code", error.code.empty() ? error.type() : error.code}, {"message", error.message}};
  return out;
}

}  // namespace latentserve::server::openai
