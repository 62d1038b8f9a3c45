#include "test_openai_fixture.h"

#include <unistd.h>

#include <filesystem>
#include <memory>
#include <stdexcept>

#include "models/deepseek_v3/model.h"
#include "models/make_model.h"

namespace latentserve::testing {

namespace {

struct Shared {
  std::string dir;
  std::unique_ptr<models::deepseek_v3::Model> model;
  std::unique_ptr<engine::Engine> engine;
  server::ServingContext ctx;

  Shared() {
    dir = (std::filesystem::temp_directory_path() / ("latentserve-openai-" + std::to_string(::getpid()))).string();
    models::MakeModelOptions options;
    options.preset = "tiny";
    options.out_dir = dir;
    options.tokenizer_dir = std::string(LATENTSERVE_SOURCE_DIR) + "/assets/tokenizer/deepseek-v3";
    check(models::make_model(options));
    auto loaded = models::deepseek_v3::Model::load(dir);
    if (!loaded.ok()) throw std::runtime_error(loaded.error().message);
    model = std::move(loaded).value();
    auto text = engine::text::TextProcessor::load(dir);
    if (!text.ok()) throw std::runtime_error(text.error().message);
    engine::EngineConfig config;
    config.block_size = 16;
    config.num_kv_blocks = 256;
    config.limits.max_n = 4;
    config.decoder_factory = (*text)->decoder_factory();
    config.log_startup = false;
    config.check_integrity_every_step = true;
    auto created = engine::Engine::create(*model, config);
    if (!created.ok()) throw std::runtime_error(created.error().message);
    engine = std::move(created).value();
    ctx.engine = engine.get();
    ctx.text = std::move(text).value();
    ctx.model_name = "tiny-test";
    ctx.limits = config.limits;
    ctx.max_model_len = model->config().max_position_embeddings;
    ctx.vocab_size = model->config().vocab_size;
    ctx.created = 1700000000;
  }
  ~Shared() {
    engine.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  static void check(const Status& s) {
    if (!s.ok()) throw std::runtime_error(s.error().message);
  }
};

Shared& shared() {
  static Shared s;
  return s;
}

}  // namespace

server::ServingContext& openai_context() { return shared().ctx; }
const std::string& openai_model_dir() { return shared().dir; }

void RecordingWriter::send(int s, std::string b, std::string) {
  std::lock_guard<std::mutex> lock(mutex_);
  status = s;
  body = std::move(b);
  done_ = true;
  cv_.notify_all();
}

void RecordingWriter::start_stream() {
  std::lock_guard<std::mutex> lock(mutex_);
  status = 200;
  streaming = true;
}

bool RecordingWriter::send_event(const std::string& payload) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (gone_) return false;
  events.push_back(payload);
  cv_.notify_all();
  return true;
}

void RecordingWriter::end_stream() {
  std::lock_guard<std::mutex> lock(mutex_);
  done_ = true;
  cv_.notify_all();
}

void RecordingWriter::on_disconnect(std::function<void()> callback) {
  std::lock_guard<std::mutex> lock(mutex_);
  on_disconnect_ = std::move(callback);
}

bool RecordingWriter::disconnected() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return gone_;
}

void RecordingWriter::post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (hold_posts) {
      posted_.push_back(std::move(fn));
      return;
    }
  }
  fn();
}

size_t RecordingWriter::run_posted() {
  std::vector<std::function<void()>> work;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    work.swap(posted_);
  }
  for (auto& fn : work) fn();
  return work.size();
}

size_t RecordingWriter::num_posted() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return posted_.size();
}

bool RecordingWriter::wait(std::chrono::seconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  return cv_.wait_for(lock, timeout, [&] { return done_; });
}

bool RecordingWriter::wait_events(size_t n, std::chrono::seconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  return cv_.wait_for(lock, timeout, [&] { return events.size() >= n || done_; });
}

void RecordingWriter::disconnect() {
  std::function<void()> callback;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    gone_ = true;
    callback = on_disconnect_;
  }
  if (callback) callback();
}

server::http::HttpRequest post(const std::string& path, const std::string& body) {
  server::http::HttpRequest r;
  r.method = "POST";
  r.target = path;
  r.path = path;
  r.body = body;
  return r;
}

}  // namespace latentserve::testing
