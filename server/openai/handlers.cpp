#include "server/openai/handlers.h"

#include <atomic>
#include <chrono>
#include <mutex>

#include "engine/collected.h"
#include "server/metrics.h"
#include "server/openai/ids.h"
#include "server/openai/response_stream.h"
#include "server/openai/responses.h"
#include "server/request_parsing.h"

namespace latentserve::server::openai {

using json = nlohmann::ordered_json;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// One submitted request from submit to its last event. Kept alive by the output notifier
// until the request ends; the handle it owns aborts the request if it is dropped early.
//
// The engine thread only pushes Outputs into the request's channel and calls notify(), which
// hands the rest to a writer thread: the response text (JSON, SSE events) is built there, never
// in the engine's step.
class Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  Exchange(ServingContext& ctx, ParsedRequest parsed, std::shared_ptr<http::ResponseWriter> writer, Clock::time_point start)
      : ctx_(ctx), parsed_(std::move(parsed)), meta_(new_response_meta(parsed_.endpoint, ctx.model_name)),
        writer_(std::move(writer)), start_(start) {
    if (parsed_.stream) stream_ = std::make_unique<ResponseStream>(parsed_, meta_, ctx_.text);
  }

  void start(engine::RequestHandle handle) { handle_ = std::move(handle); }
  // True once the engine has pushed the request's last Output: from then on it no longer knows
  // the request (and may be gone, at shutdown), so nothing may be sent to it.
  bool engine_done() { return handle_.outputs().finished(); }
  engine::OutputChannel& outputs() { return handle_.outputs(); }

  // The output notifier (engine thread): at most one drain is waiting at a time, so a burst of
  // Outputs costs one hand-over.
  void notify() {
    if (!drain_posted_.exchange(true)) writer_->post([self = shared_from_this()] { self->drain(); });
  }

  // On a writer thread: every Output waiting, in order, becomes response text.
  void drain() {
    // Cleared before popping: an Output pushed from here on posts another drain, so none waits.
    drain_posted_.store(false);
    std::lock_guard<std::mutex> lock(mutex_);
    while (!finished_) {
      auto out = handle_.outputs().try_pop();
      if (!out) return;
      time_tokens(*out);
      if (stream_) {
        stream_output(*out);
      } else {
        whole_output(std::move(*out));
      }
    }
  }

 private:
  void stream_output(const engine::Output& out) {
    if (writer_->disconnected()) {
      // Nobody reads the events: skip building them and only wait for the request's end.
      if (out.request_finished || out.finish_reason == engine::FinishReason::kError) {
        writer_->end_stream();
        finish(out.usage);
      }
      return;
    }
    for (const auto& event : stream_->on_output(out)) writer_->send_event(event);
    if (stream_->done()) {
      writer_->end_stream();
      finish(out.usage);
    }
  }

  void whole_output(engine::Output out) {
    const engine::Usage usage = out.usage;
    if (!engine::collect_output(collected_, std::move(out))) return;
    auto body = build_response(parsed_, meta_, collected_, ctx_.text.get());
    if (body.ok()) {
      writer_->send(200, dump(*body));
    } else {
      send_error(ctx_, *writer_, body.error());
    }
    finish(usage);
  }

  void time_tokens(const engine::Output& out) {
    if (!ctx_.metrics || out.token_ids.empty()) return;
    const auto now = Clock::now();
    if (!saw_token_) {
      ctx_.metrics->time_to_first_token(seconds_between(start_, now));
      saw_token_ = true;
    } else {
      ctx_.metrics->inter_token_latency(seconds_between(last_token_, now) / double(out.token_ids.size()));
    }
    last_token_ = now;
  }

  void finish(const engine::Usage& usage) {
    finished_ = true;
    if (ctx_.metrics) {
      ctx_.metrics->request_finished(usage.prompt_tokens, usage.completion_tokens, seconds_between(start_, Clock::now()));
    }
    // Breaks the notifier -> Exchange -> handle -> channel cycle; safe while the engine thread
    // runs the notifier, because the channel calls a copy of it.
    handle_.outputs().set_notifier(nullptr);
  }

  ServingContext& ctx_;
  ParsedRequest parsed_;
  ResponseMeta meta_;
  std::shared_ptr<http::ResponseWriter> writer_;
  Clock::time_point start_;
  Clock::time_point last_token_;
  bool saw_token_ = false;
  std::unique_ptr<ResponseStream> stream_;
  engine::CollectedRequest collected_;
  engine::RequestHandle handle_;
  std::mutex mutex_;
  bool finished_ = false;
  std::atomic<bool> drain_posted_{false};  // a drain is posted and has not started yet
};

json parse_body(const std::string& body, ApiError& error) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    error = bad_request("the request body must be a JSON object (valid JSON, valid UTF-8)");
    return nullptr;
  }
  return j;
}

}  // namespace

void send_error(ServingContext& ctx, http::ResponseWriter& writer, const ApiError& error) {
  if (ctx.metrics) ctx.metrics->request_rejected(error.status);
  writer.send(error.status, dump(error_json(error)));
}

void handle_generate(Endpoint endpoint, ServingContext& ctx, const http::HttpRequest& request,
                     std::shared_ptr<http::ResponseWriter> writer) {
  const auto start = Clock::now();
  auto parsed = parse_request(endpoint, request.body, ctx);
  if (!parsed.ok()) return send_error(ctx, *writer, parsed.error());
  if (auto admitted = check_admission(*parsed, ctx); !admitted.ok()) return send_error(ctx, *writer, admitted.error());

  const bool stream = parsed->stream;
  engine::Request engine_request = std::move(parsed->request);
  auto exchange = std::make_shared<Exchange>(ctx, std::move(parsed).value(), writer, start);
  auto handle = ctx.engine->submit(std::move(engine_request));
  if (!handle.ok()) return send_error(ctx, *writer, ApiError{503, handle.error().message, "", ""});
  if (ctx.metrics) ctx.metrics->request_received();
  const uint64_t id = handle->id();
  engine::Engine* engine = ctx.engine;
  exchange->start(std::move(handle).value());
  if (stream) writer->start_stream();
  // Aborting takes no lock on the exchange (Engine::abort only posts to the engine's inbox), so
  // a writer may report the disconnect from any thread. Once the engine is done with the request
  // it is no longer touched: it may be gone by then (shutdown), with the last events unsent.
  std::weak_ptr<Exchange> weak = exchange;
  auto abort = [weak, engine, id] {
    if (auto ex = weak.lock(); ex && !ex->engine_done()) engine->abort(id);
  };
  writer->on_disconnect(abort);
  if (writer->disconnected()) abort();
  exchange->outputs().set_notifier(timed_notifier(ctx.metrics, [exchange] { exchange->notify(); }));
}

void handle_models(ServingContext& ctx, const http::HttpRequest&, std::shared_ptr<http::ResponseWriter> writer) {
  json model = {{"id", ctx.model_name},
                {"object", "model"},
                {"created", ctx.created},
                {"owned_by", "latentserve"},
                {"root", ctx.model_name},
                {"parent", nullptr},
                {"max_model_len", ctx.max_model_len}};
  writer->send(200, dump(json{{"object", "list"}, {"data", json::array({std::move(model)})}}));
}

void handle_tokenize(ServingContext& ctx, const http::HttpRequest& request, std::shared_ptr<http::ResponseWriter> writer) {
  ApiError error;
  json body = parse_body(request.body, error);
  if (body.is_null()) return send_error(ctx, *writer, error);
  if (body.contains("model") && !body["model"].is_null() && body["model"] != ctx.model_name) {
    return send_error(ctx, *writer, ApiError{404, "The model `" + dump(body["model"]) + "` does not exist.", "model", "model_not_found"});
  }
  if (!ctx.text) return send_error(ctx, *writer, bad_request("this model has no tokenizer"));
  const bool chat = body.contains("messages");
  bool add_special = !chat;
  if (body.contains("add_special_tokens")) {
    if (!body["add_special_tokens"].is_boolean()) {
      return send_error(ctx, *writer, bad_request("\"add_special_tokens\" must be true or false", "add_special_tokens"));
    }
    add_special = body["add_special_tokens"].get<bool>();
  }
  Result<std::vector<int32_t>> ids = make_error("");
  if (chat) {
    ids = parse_prompt(body, ctx.text.get());
  } else if (body.contains("prompt") && body["prompt"].is_string()) {
    ids = ctx.text->encode_prompt(body["prompt"].get<std::string>(), add_special);
  } else {
    return send_error(ctx, *writer, bad_request("\"prompt\" (a string) or \"messages\" is required", "prompt"));
  }
  if (!ids.ok()) {
    const std::string param = param_of(ids.error().message);
    return send_error(ctx, *writer, bad_request(ids.error().message, param.empty() ? (chat ? "messages" : "prompt") : param));
  }
  writer->send(200, dump(json{{"count", ids->size()}, {"max_model_len", ctx.max_model_len}, {"tokens", *ids}}));
}

void handle_detokenize(ServingContext& ctx, const http::HttpRequest& request,
                       std::shared_ptr<http::ResponseWriter> writer) {
  ApiError error;
  json body = parse_body(request.body, error);
  if (body.is_null()) return send_error(ctx, *writer, error);
  if (!ctx.text) return send_error(ctx, *writer, bad_request("this model has no tokenizer"));
  if (!body.contains("tokens")) return send_error(ctx, *writer, bad_request("\"tokens\" is required", "tokens"));
  const json& tokens = body["tokens"];
  if (!tokens.is_array()) return send_error(ctx, *writer, bad_request("\"tokens\" must be an array of token ids", "tokens"));
  std::vector<int32_t> ids;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (!tokens[i].is_number_integer() || tokens[i].get<int64_t>() < 0 ||
        tokens[i].get<int64_t>() >= ctx.text->tokenizer().vocab_size() ||
        !ctx.text->tokenizer().has_id(tokens[i].get<int32_t>())) {
      return send_error(ctx, *writer, bad_request("\"tokens\"[" + std::to_string(i) + "] is not a token id of this model's vocabulary", "tokens"));
    }
    ids.push_back(tokens[i].get<int32_t>());
  }
  auto text = ctx.text->tokenizer().decode(ids, /*skip_special_tokens=*/false);
  if (!text.ok()) return send_error(ctx, *writer, bad_request(text.error().message, "tokens"));
  writer->send(200, dump(json{{"prompt", *text}}));
}

}  // namespace latentserve::server::openai
