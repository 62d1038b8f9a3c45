// Metrics: histogram buckets, sums and counts against a plain recount; the Prometheus text
// rendering parsed back line by line; concurrent observations that must add up exactly.
#include <cmath>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>

#include "server/metrics.h"

using namespace latentserve;
using server::Histogram;
using server::Metrics;

namespace {

struct Sample {
  std::string name;    // without labels
  std::string labels;  // the text between braces, "" when none
  double value = 0;
};

struct Family {
  std::string help;
  std::string type;
  std::vector<Sample> samples;
};

double parse_value(const std::string& text) {
  if (text == "+Inf") return INFINITY;
  if (text == "-Inf") return -INFINITY;
  size_t used = 0;
  const double v = std::stod(text, &used);
  REQUIRE(used == text.size());
  return v;
}

bool valid_name(const std::string& name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != ':') return false;
  }
  return true;
}

// A strict reader of text format 0.0.4 as we write it: every family opens with HELP then TYPE,
// each sample belongs to the family announced last (histograms through their suffixes).
std::map<std::string, Family> parse(const std::string& text) {
  std::map<std::string, Family> families;
  std::string current;
  std::istringstream in(text);
  std::string line;
  REQUIRE(!text.empty());
  REQUIRE(text.back() == '\n');
  while (std::getline(in, line)) {
    INFO(line);
    REQUIRE(!line.empty());
    if (line.rfind("# HELP ", 0) == 0) {
      const std::string rest = line.substr(7);
      const size_t space = rest.find(' ');
      REQUIRE(space != std::string::npos);
      current = rest.substr(0, space);
      REQUIRE(valid_name(current));
      REQUIRE(families.count(current) == 0);
      families[current].help = rest.substr(space + 1);
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream words(line.substr(7));
      std::string name, type, extra;
      words >> name >> type;
      REQUIRE(name == current);
      REQUIRE(!(words >> extra));
      REQUIRE((type == "counter" || type == "gauge" || type == "histogram"));
      REQUIRE(families[current].type.empty());
      families[current].type = type;
      continue;
    }
    REQUIRE(line[0] != '#');
    REQUIRE(!current.empty());
    Sample s;
    const size_t brace = line.find('{');
    const size_t space = line.rfind(' ');
    REQUIRE(space != std::string::npos);
    if (brace != std::string::npos && brace < space) {
      const size_t close = line.find('}', brace);
      REQUIRE(close == space - 1);
      s.name = line.substr(0, brace);
      s.labels = line.substr(brace + 1, close - brace - 1);
    } else {
      s.name = line.substr(0, space);
    }
    s.value = parse_value(line.substr(space + 1));
    const Family& family = families[current];
    if (family.type == "histogram") {
      REQUIRE((s.name == current + "_bucket" || s.name == current + "_sum" ||
               s.name == current + "_count"));
    } else {
      REQUIRE(s.name == current);
    }
    if (family.type == "counter") REQUIRE(s.value >= 0);
    families[current].samples.push_back(s);
  }
  return families;
}

double sample(const Family& f, const std::string& name, const std::string& labels = "") {
  for (const auto& s : f.samples) {
    if (s.name == name && s.labels == labels) return s.value;
  }
  FAIL("no sample " << name << "{" << labels << "}");
  return 0;
}

// Checks a rendered histogram against a recount of the observed values.
void check_histogram(const Family& f, const std::string& name, const std::vector<double>& bounds,
                     const std::vector<double>& values) {
  REQUIRE(f.type == "histogram");
  REQUIRE(f.samples.size() == bounds.size() + 3);
  double previous = 0;
  for (size_t i = 0; i <= bounds.size(); ++i) {
    const Sample& s = f.samples[i];
    REQUIRE(s.name == name + "_bucket");
    const double le = i < bounds.size() ? bounds[i] : INFINITY;
    REQUIRE(s.labels.rfind("le=\"", 0) == 0);
    REQUIRE(s.labels.back() == '"');
    CHECK(parse_value(s.labels.substr(4, s.labels.size() - 5)) == le);
    double expected = 0;
    for (double v : values) expected += v <= le ? 1 : 0;
    CHECK(s.value == expected);
    CHECK(s.value >= previous);
    previous = s.value;
  }
  double sum = 0;
  for (double v : values) sum += v;
  CHECK(f.samples[bounds.size() + 1].name == name + "_sum");
  CHECK(f.samples[bounds.size() + 1].value == Approx(sum).epsilon(1e-12));
  CHECK(f.samples[bounds.size() + 2].name == name + "_count");
  CHECK(f.samples[bounds.size() + 2].value == static_cast<double>(values.size()));
}

}  // namespace

TEST_CASE("metrics: histogram buckets, sum and count match a recount", "[metrics]") {
  std::mt19937_64 rng(std::random_device{}());
  const std::vector<double> bounds = {0.001, 0.0025, 0.01, 0.1, 0.3, 1.0, 7.5};
  Histogram h({7.5, 0.1, 0.001, 0.3, 0.0025, 1.0, 0.01, 0.1});  // unsorted, one duplicate
  std::vector<double> values;
  std::uniform_real_distribution<double> log_uniform(-4.0, 1.3);
  const int n = 1000 + static_cast<int>(rng() % 500);
  for (int i = 0; i < n; ++i) {
    double v = std::pow(10.0, log_uniform(rng));
    if (i % 97 == 0) v = bounds[rng() % bounds.size()];  // exactly on a bound: belongs to it
    values.push_back(v);
    h.observe(v);
  }
  h.observe(NAN);  // dropped
  std::string text;
  h.render("x_seconds", "a test histogram", text);
  const auto families = parse(text);
  REQUIRE(families.size() == 1);
  CHECK(families.at("x_seconds").help == "a test histogram");
  check_histogram(families.at("x_seconds"), "x_seconds", bounds, values);
}

TEST_CASE("metrics: an empty histogram renders zeros", "[metrics]") {
  Histogram h({0.5, 2.0});
  std::string text;
  h.render("empty", "nothing yet", text);
  check_histogram(parse(text).at("empty"), "empty", {0.5, 2.0}, {});
}

TEST_CASE("metrics: the whole page parses and carries server and engine numbers", "[metrics]") {
  std::mt19937_64 rng(std::random_device{}());
  Metrics m;
  const int received = 5 + static_cast<int>(rng() % 20);
  for (int i = 0; i < received; ++i) m.request_received();
  m.request_rejected(400);
  m.request_rejected(413);
  m.request_rejected(429);
  m.request_rejected(503);
  int64_t prompt = 0, completion = 0;
  std::vector<double> e2e, ttft, itl;
  for (int i = 0; i < received; ++i) {
    const int64_t p = 1 + static_cast<int64_t>(rng() % 300), c = static_cast<int64_t>(rng() % 50);
    const double seconds = 0.01 * static_cast<double>(1 + rng() % 1000);
    prompt += p;
    completion += c;
    e2e.push_back(seconds);
    m.request_finished(p, c, seconds);
    ttft.push_back(seconds / 7);
    m.time_to_first_token(seconds / 7);
    for (int64_t t = 1; t < c; ++t) {
      itl.push_back(seconds / static_cast<double>(c + 3));
      m.inter_token_latency(itl.back());
    }
  }
  engine::EngineStats stats;
  stats.num_running = 3;
  stats.num_waiting = 11;
  stats.num_blocks = 1000;
  stats.num_free_blocks = 250 + static_cast<int64_t>(rng() % 500);
  stats.num_steps = 123456;
  stats.num_preemptions = 7;
  stats.prompt_tokens = 4321;
  stats.generated_tokens = 999;
  stats.prefix_queried_tokens = 8000;
  stats.prefix_hit_tokens = 3000;
  stats.forward_seconds = 12.5;
  stats.overhead_seconds = 0.75;

  const auto f = parse(m.render_prometheus(stats));
  const std::string p = "latentserve:";
  for (const auto& [name, family] : f) {
    CHECK(name.rfind(p, 0) == 0);
    CHECK(!family.help.empty());
    CHECK(!family.type.empty());
  }
  CHECK(f.at(p + "num_requests_running").type == "gauge");
  CHECK(sample(f.at(p + "num_requests_running"), p + "num_requests_running") == 3);
  CHECK(sample(f.at(p + "num_requests_waiting"), p + "num_requests_waiting") == 11);
  CHECK(sample(f.at(p + "requests_received_total"), p + "requests_received_total") == received);
  CHECK(sample(f.at(p + "requests_finished_total"), p + "requests_finished_total") == received);
  const auto& rejected = f.at(p + "requests_rejected_total");
  CHECK(rejected.type == "counter");
  CHECK(sample(rejected, p + "requests_rejected_total", "status_class=\"4xx\"") == 3);
  CHECK(sample(rejected, p + "requests_rejected_total", "status_class=\"5xx\"") == 1);
  CHECK(sample(f.at(p + "prompt_tokens_total"), p + "prompt_tokens_total") == prompt);
  CHECK(sample(f.at(p + "generation_tokens_total"), p + "generation_tokens_total") == completion);

  const auto& usage = f.at(p + "kv_cache_usage_perc");
  CHECK(usage.type == "gauge");
  CHECK(sample(usage, p + "kv_cache_usage_perc") ==
        Approx(1.0 - static_cast<double>(stats.num_free_blocks) / 1000.0));
  CHECK(sample(f.at(p + "prefix_cache_queries_total"), p + "prefix_cache_queries_total") == 8000);
  CHECK(sample(f.at(p + "prefix_cache_hits_total"), p + "prefix_cache_hits_total") == 3000);
  CHECK(sample(f.at(p + "prefix_cache_hit_rate"), p + "prefix_cache_hit_rate") == Approx(0.375));
  CHECK(sample(f.at(p + "num_preemptions_total"), p + "num_preemptions_total") == 7);
  CHECK(sample(f.at(p + "engine_steps_total"), p + "engine_steps_total") == 123456);
  CHECK(sample(f.at(p + "engine_forward_seconds_total"), p + "engine_forward_seconds_total") ==
        12.5);
  CHECK(sample(f.at(p + "engine_overhead_seconds_total"), p + "engine_overhead_seconds_total") ==
        0.75);
  CHECK(sample(f.at(p + "engine_generated_tokens_total"), p + "engine_generated_tokens_total") ==
        999);

  // The histograms recounted with the page's own bucket bounds.
  for (const auto& [name, values] :
       std::vector<std::pair<std::string, std::vector<double>>>{
           {"time_to_first_token_seconds", ttft},
           {"inter_token_latency_seconds", itl},
           {"e2e_request_latency_seconds", e2e}}) {
    INFO(name);
    const Family& h = f.at(p + name);
    std::vector<double> bounds;
    for (const auto& s : h.samples) {
      if (s.name == p + name + "_bucket" && s.labels != "le=\"+Inf\"") {
        bounds.push_back(parse_value(s.labels.substr(4, s.labels.size() - 5)));
      }
    }
    REQUIRE(bounds.size() >= 10);
    CHECK(std::is_sorted(bounds.begin(), bounds.end()));
    check_histogram(h, p + name, bounds, values);
  }
}

TEST_CASE("metrics: an empty cache reports zero usage and hit rate", "[metrics]") {
  Metrics m;
  const auto f = parse(m.render_prometheus(engine::EngineStats{}));
  CHECK(sample(f.at("latentserve:kv_cache_usage_perc"), "latentserve:kv_cache_usage_perc") == 0);
  CHECK(sample(f.at("latentserve:prefix_cache_hit_rate"), "latentserve:prefix_cache_hit_rate") ==
        0);
}

TEST_CASE("metrics: concurrent observations add up exactly", "[metrics]") {
  Metrics m;
  Histogram h({1.0, 4.0, 16.0});
  const int threads = 8, per_thread = 20000;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        // Small integers keep the double sum exact whatever order the additions land in.
        const double v = static_cast<double>((i + t) % 32);
        h.observe(v);
        m.request_received();
        m.request_finished(2, 3, v);
        m.inter_token_latency(v / 1024);
        if (i % 10 == 0) m.request_rejected(400 + 100 * (i % 20 == 0));
      }
    });
  }
  // A reader rendering while writers run must never see a torn page.
  std::string during;
  for (int i = 0; i < 20; ++i) during = m.render_prometheus(engine::EngineStats{});
  for (auto& th : pool) th.join();
  parse(during);

  std::vector<double> values;
  for (int t = 0; t < threads; ++t) {
    for (int i = 0; i < per_thread; ++i) values.push_back(static_cast<double>((i + t) % 32));
  }
  std::string text;
  h.render("h", "concurrent", text);
  const auto hist = parse(text);
  check_histogram(hist.at("h"), "h", {1.0, 4.0, 16.0}, values);
  double exact_sum = 0;
  for (double v : values) exact_sum += v;
  CHECK(sample(hist.at("h"), "h_sum") == exact_sum);

  const auto f = parse(m.render_prometheus(engine::EngineStats{}));
  const std::string p = "latentserve:";
  const double n = threads * per_thread;
  CHECK(sample(f.at(p + "requests_received_total"), p + "requests_received_total") == n);
  CHECK(sample(f.at(p + "requests_finished_total"), p + "requests_finished_total") == n);
  CHECK(sample(f.at(p + "prompt_tokens_total"), p + "prompt_tokens_total") == 2 * n);
  CHECK(sample(f.at(p + "generation_tokens_total"), p + "generation_tokens_total") == 3 * n);
  CHECK(sample(f.at(p + "e2e_request_latency_seconds"), p + "e2e_request_latency_seconds_sum") ==
        exact_sum);
  CHECK(sample(f.at(p + "e2e_request_latency_seconds"), p + "e2e_request_latency_seconds_count") ==
        n);
  CHECK(sample(f.at(p + "inter_token_latency_seconds"), p + "inter_token_latency_seconds_sum") ==
        exact_sum / 1024);
  const auto& rejected = f.at(p + "requests_rejected_total");
  CHECK(sample(rejected, p + "requests_rejected_total", "status_class=\"4xx\"") ==
        threads * per_thread / 20);
  CHECK(sample(rejected, p + "requests_rejected_total", "status_class=\"5xx\"") ==
        threads * per_thread / 20);
}

TEST_CASE("metrics: speculative decoding counters appear only when speculation is on", "[metrics]") {
  server::Metrics metrics;
  engine::EngineStats stats;
  CHECK(metrics.render_prometheus(stats).find("spec_decode") == std::string::npos);
  stats.spec_num_speculative_tokens = 2;
  stats.spec_drafted_tokens = 40;
  stats.spec_accepted_tokens = 30;
  stats.spec_verify_steps = 20;
  stats.spec_emitted_tokens = 50;
  stats.spec_drafted_per_position = {20, 20};
  stats.spec_accepted_per_position = {18, 12};
  const std::string page = metrics.render_prometheus(stats);
  CHECK_THAT(page, Catch::Contains("latentserve:spec_decode_num_draft_tokens_total 40\n"));
  CHECK_THAT(page, Catch::Contains("latentserve:spec_decode_num_accepted_tokens_total 30\n"));
  CHECK_THAT(page, Catch::Contains("latentserve:spec_decode_mean_tokens_per_step 2.5\n"));
  CHECK_THAT(page, Catch::Contains("latentserve:spec_decode_acceptance_rate{position=\"0\"} 0.9\n"));
  CHECK_THAT(page, Catch::Contains("latentserve:spec_decode_acceptance_rate{position=\"1\"} 0.6\n"));
}
