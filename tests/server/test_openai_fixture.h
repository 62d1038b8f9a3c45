// What the OpenAI API tests share: one tiny random-weight model (the `tiny` preset with the real
// DeepSeek-V3 tokenizer) made once per test run in a temp folder, an engine over it, and a
// ResponseWriter that records what a handler sends.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/http/http_server.h"
#include "server/serving_context.h"

namespace latentserve::testing {

// The shared context: model name "tiny-test", max_n 4, a 256-block cache of 16-token blocks.
server::ServingContext& openai_context();
// The folder holding that model (config.json, weights, tokenizer).
const std::string& openai_model_dir();

class RecordingWriter : public server::http::ResponseWriter {
 public:
  void send(int status, std::string body, std::string content_type) override;
  void start_stream() override;
  bool send_event(const std::string& payload) override;
  void end_stream() override;
  void on_disconnect(std::function<void()> callback) override;
  bool disconnected() const override;
  // At once on the caller's thread, or (hold_posts) kept until run_posted().
  void post(std::function<void()> fn) override;

  // Waits until a whole response or the end of a stream arrives; false on timeout.
  bool wait(std::chrono::seconds timeout = std::chrono::seconds(60));
  // Acts as if the client went away: runs the disconnect callback; later events are refused.
  void disconnect();
  // Runs what post() kept, on this thread; returns how many ran.
  size_t run_posted();
  size_t num_posted() const;

  // Set before the handler runs: post() keeps work instead of running it, so a test can see what
  // happens on the engine thread alone.
  bool hold_posts = false;
  // Blocks until `n` events have been sent.
  bool wait_events(size_t n, std::chrono::seconds timeout = std::chrono::seconds(60));

  int status = 0;
  std::string body;
  bool streaming = false;
  std::vector<std::string> events;
  nlohmann::ordered_json json() const { return nlohmann::ordered_json::parse(body); }

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  bool gone_ = false;
  std::function<void()> on_disconnect_;
  std::vector<std::function<void()>> posted_;
};

server::http::HttpRequest post(const std::string& path, const std::string& body);

}  // namespace latentserve::testing
