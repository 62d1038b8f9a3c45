// Metrics: what the server counts and times (requests, tokens, time to first token, inter-token
// latency) and its Prometheus text rendering, together with the engine's own statistics.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "engine/engine.h"

namespace latentserve::server {

// A Prometheus histogram with fixed bucket bounds (seconds). Thread-safe.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  // Appends HELP and TYPE lines, then cumulative "<name>_bucket{le=...}", "<name>_sum" and
  // "<name>_count" lines. NaN observations are dropped.
  void render(const std::string& name, const std::string& help, std::string& out) const;

 private:
  std::vector<double> bounds_;
  mutable std::mutex mutex_;
  std::vector<uint64_t> counts_;  // bounds_.size() + 1 (the last is +Inf)
  double sum_ = 0;
  uint64_t count_ = 0;
};

class Metrics {
 public:
  Metrics();

  void request_received();                   // a request passed validation
  void request_rejected(int http_status);    // 4xx/5xx answers
  void request_finished(int64_t prompt_tokens, int64_t completion_tokens, double e2e_seconds);
  void time_to_first_token(double seconds);
  void inter_token_latency(double seconds);
  // Time the engine thread spent in front ends' output notifiers (it delays the next step).
  void engine_notifier_time(double seconds);

  // The whole /metrics page: ours plus running/waiting requests, cache usage and prefix-cache
  // hit rate from the engine's stats.
  std::string render_prometheus(const engine::EngineStats& engine) const;

 private:
  // Gauges and counters taken from the engine's own statistics.
  static void render_speculative(const engine::EngineStats& engine, std::string& out);
  static void render_engine(const engine::EngineStats& engine, std::string& out);

  std::atomic<uint64_t> requests_received_{0};
  std::atomic<uint64_t> requests_finished_{0};
  std::atomic<uint64_t> requests_rejected_4xx_{0};
  std::atomic<uint64_t> requests_rejected_5xx_{0};
  std::atomic<uint64_t> prompt_tokens_{0};
  std::atomic<uint64_t> completion_tokens_{0};
  std::atomic<uint64_t> engine_notifier_ns_{0};
  Histogram ttft_;
  Histogram itl_;
  Histogram e2e_;
};

// Wraps an output notifier so that its time on the engine thread is counted (metrics may be
// null: nothing is counted).
std::function<void()> timed_notifier(Metrics* metrics, std::function<void()> notifier);

}  // namespace latentserve::server
