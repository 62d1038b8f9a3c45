#include "server/metrics.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>

namespace latentserve::server {

namespace {

// vLLM's bounds, so dashboards built for it read ours the same way. Inter-token latency also
// gets millisecond buckets at the low end: a small model on a fast machine lives there.
const std::vector<double> kTtftBuckets = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,
                                          0.25,  0.5,   0.75, 1.0,  2.5,  5.0,  7.5,  10.0,
                                          20.0,  40.0,  80.0, 160.0, 640.0, 2560.0};
const std::vector<double> kItlBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075,
                                         0.1,   0.15,   0.2,   0.3,  0.4,   0.5,  0.75,
                                         1.0,   2.5,    5.0,   7.5,  10.0,  20.0, 40.0, 80.0};
const std::vector<double> kE2eBuckets = {0.3,  0.5,  0.8,  1.0,   1.5,   2.0,    2.5,
                                         5.0,  10.0, 15.0, 20.0,  30.0,  40.0,   50.0,
                                         60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};

constexpr const char* kPrefix = "latentserve:";

// Prometheus sample values: the shortest text that reads back as the same double.
std::string format_number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), v);
  return ec == std::errc() ? std::string(buffer, end) : std::to_string(v);
}

std::string format_number(uint64_t v) { return std::to_string(v); }
std::string format_number(int64_t v) { return std::to_string(v); }

// HELP text escapes backslash and newline (text format 0.0.4).
std::string escape_help(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

void header(const std::string& name, const std::string& help, const char* type, std::string& out) {
  out += "# HELP " + name + " " + escape_help(help) + "\n";
  out += "# TYPE " + name + " " + type + "\n";
}

template <class T>
void single(const std::string& name, const char* type, const std::string& help, T value,
            std::string& out) {
  const std::string full = kPrefix + name;
  header(full, help, type, out);
  out += full + " " + format_number(value) + "\n";
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
  std::sort(bounds_.begin(), bounds_.end());
  bounds_.erase(std::unique(bounds_.begin(), bounds_.end()), bounds_.end());
  counts_.assign(bounds_.size() + 1, 0);
}

void Histogram::observe(double value) {
  if (std::isnan(value)) return;  // would poison the sum for the process's lifetime
  // Buckets are "less than or equal": the first bound not below the value.
  const size_t bucket = static_cast<size_t>(
      std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin());
  std::lock_guard<std::mutex> lock(mutex_);
  ++counts_[bucket];
  sum_ += value;
  ++count_;
}

void Histogram::render(const std::string& name, const std::string& help, std::string& out) const {
  std::vector<uint64_t> counts;
  double sum;
  uint64_t count;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    counts = counts_;
    sum = sum_;
    count = count_;
  }
  header(name, help, "histogram", out);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts[i];
    out += name + "_bucket{le=\"" + format_number(bounds_[i]) + "\"} " +
           format_number(cumulative) + "\n";
  }
  cumulative += counts.back();
  out += name + "_bucket{le=\"+Inf\"} " + format_number(cumulative) + "\n";
  out += name + "_sum " + format_number(sum) + "\n";
  out += name + "_count " + format_number(count) + "\n";
}

Metrics::Metrics() : ttft_(kTtftBuckets), itl_(kItlBuckets), e2e_(kE2eBuckets) {}

void Metrics::request_received() { requests_received_.fetch_add(1, std::memory_order_relaxed); }

void Metrics::request_rejected(int http_status) {
  if (http_status >= 500) requests_rejected_5xx_.fetch_add(1, std::memory_order_relaxed);
  else requests_rejected_4xx_.fetch_add(1, std::memory_order_relaxed);
}

void Metrics::request_finished(int64_t prompt_tokens, int64_t completion_tokens,
                               double e2e_seconds) {
  requests_finished_.fetch_add(1, std::memory_order_relaxed);
  prompt_tokens_.fetch_add(static_cast<uint64_t>(std::max<int64_t>(prompt_tokens, 0)),
                           std::memory_order_relaxed);
  completion_tokens_.fetch_add(static_cast<uint64_t>(std::max<int64_t>(completion_tokens, 0)),
                               std::memory_order_relaxed);
  e2e_.observe(e2e_seconds);
}

void Metrics::time_to_first_token(double seconds) { ttft_.observe(seconds); }

void Metrics::inter_token_latency(double seconds) { itl_.observe(seconds); }

void Metrics::engine_notifier_time(double seconds) {
  if (!(seconds > 0)) return;
  engine_notifier_ns_.fetch_add(static_cast<uint64_t>(seconds * 1e9), std::memory_order_relaxed);
}

std::function<void()> timed_notifier(Metrics* metrics, std::function<void()> notifier) {
  if (!metrics) return notifier;
  return [metrics, notifier = std::move(notifier)] {
    const auto start = std::chrono::steady_clock::now();
    notifier();
    metrics->engine_notifier_time(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  };
}

std::string Metrics::render_prometheus(const engine::EngineStats& engine) const {
  std::string out;
  out.reserve(8192);
  const auto load = [](const std::atomic<uint64_t>& v) { return v.load(std::memory_order_relaxed); };

  single("num_requests_running", "gauge", "Requests in the running batch.", engine.num_running,
         out);
  single("num_requests_waiting", "gauge", "Requests waiting to be scheduled (queued or preempted).",
         engine.num_waiting, out);
  single("requests_received_total", "counter", "Requests that passed validation.",
         load(requests_received_), out);
  single("requests_finished_total", "counter", "Requests answered in full (any finish reason).",
         load(requests_finished_), out);

  const std::string rejected = std::string(kPrefix) + "requests_rejected_total";
  header(rejected, "Requests answered with an error, by HTTP status class.", "counter", out);
  out += rejected + "{status_class=\"4xx\"} " + format_number(load(requests_rejected_4xx_)) + "\n";
  out += rejected + "{status_class=\"5xx\"} " + format_number(load(requests_rejected_5xx_)) + "\n";

  single("prompt_tokens_total", "counter", "Prompt tokens of finished requests.",
         load(prompt_tokens_), out);
  single("generation_tokens_total", "counter", "Generated tokens of finished requests.",
         load(completion_tokens_), out);

  ttft_.render(std::string(kPrefix) + "time_to_first_token_seconds",
               "Time from receiving a request to its first output token.", out);
  itl_.render(std::string(kPrefix) + "inter_token_latency_seconds",
              "Time between consecutive output tokens of a request.", out);
  e2e_.render(std::string(kPrefix) + "e2e_request_latency_seconds",
              "Time from receiving a request to its last output.", out);

  single("engine_notifier_seconds_total", "counter",
         "Seconds the engine thread spent handing outputs to the front ends (output notifiers).",
         static_cast<double>(load(engine_notifier_ns_)) * 1e-9, out);

  render_engine(engine, out);
  return out;
}

void Metrics::render_engine(const engine::EngineStats& engine, std::string& out) {
  const double usage =
      engine.num_blocks > 0
          ? 1.0 - static_cast<double>(engine.num_free_blocks) / static_cast<double>(engine.num_blocks)
          : 0.0;
  single("kv_cache_usage_perc", "gauge",
         "Fraction of latent KV cache blocks in use (1 means full).", usage, out);
  single("kv_cache_blocks", "gauge", "Latent KV cache blocks in all.", engine.num_blocks, out);
  if (!engine.device.empty()) {
    // An info metric (always 1): the device the model runs on, as a label.
    std::string label;
    for (char c : engine.device) {
      if (c == '\\' || c == '"') label += '\\';
      label += c == '\n' ? ' ' : c;
    }
    const std::string name = std::string(kPrefix) + "device_info";
    header(name, "The device the model runs on (label device; the value is always 1).", "gauge", out);
    out += name + "{device=\"" + label + "\"} 1\n";
  }
  single("kv_cache_free_blocks", "gauge", "Latent KV cache blocks free.", engine.num_free_blocks,
         out);
  single("prefix_cache_queries_total", "counter", "Prompt tokens looked up in the prefix cache.",
         engine.prefix_queried_tokens, out);
  single("prefix_cache_hits_total", "counter", "Prompt tokens found in the prefix cache.",
         engine.prefix_hit_tokens, out);
  const double hit_rate =
      engine.prefix_queried_tokens > 0
          ? static_cast<double>(engine.prefix_hit_tokens) /
                static_cast<double>(engine.prefix_queried_tokens)
          : 0.0;
  single("prefix_cache_hit_rate", "gauge",
         "Prefix cache hits over queries, in tokens, since start.", hit_rate, out);
  single("num_preemptions_total", "counter", "Running requests preempted for cache space.",
         engine.num_preemptions, out);
  single("engine_prompt_tokens_computed_total", "counter",
         "Prompt tokens the model computed (prefix cache hits excluded).", engine.prompt_tokens,
         out);
  single("engine_generated_tokens_total", "counter", "Tokens the engine sampled.",
         engine.generated_tokens, out);
  single("engine_steps_total", "counter", "Engine steps run.", engine.num_steps, out);
  single("engine_forward_seconds_total", "counter", "Seconds spent in the model's forward pass.",
         engine.forward_seconds, out);
  single("engine_overhead_seconds_total", "counter",
         "Seconds spent in engine steps outside the forward pass (scheduling, sampling, outputs).",
         engine.overhead_seconds, out);
  render_speculative(engine, out);
}

void Metrics::render_speculative(const engine::EngineStats& engine, std::string& out) {
  if (engine.spec_num_speculative_tokens == 0) return;  // speculation off
  single("spec_decode_num_speculative_tokens", "gauge", "Draft tokens proposed per sequence and step (K).",
         engine.spec_num_speculative_tokens, out);
  single("spec_decode_num_draft_tokens_total", "counter", "Draft tokens verified by the main model.",
         engine.spec_drafted_tokens, out);
  single("spec_decode_num_accepted_tokens_total", "counter", "Draft tokens accepted.",
         engine.spec_accepted_tokens, out);
  single("spec_decode_mean_tokens_per_step", "gauge",
         "Tokens a sequence gains per verification step (1 + accepted drafts), since start.",
         engine.spec_mean_tokens_per_step(), out);
  const std::string name = std::string(kPrefix) + "spec_decode_acceptance_rate";
  header(name, "Acceptance rate of the draft at each position (0 = first draft), since start.", "gauge",
         out);
  for (size_t i = 0; i < engine.spec_drafted_per_position.size(); ++i) {
    out += name + "{position=\"" + std::to_string(i) + "\"} " + format_number(engine.spec_acceptance_rate(i)) +
           "\n";
  }
}

}  // namespace latentserve::server
