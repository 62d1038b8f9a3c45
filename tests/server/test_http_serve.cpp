// `latentserve serve` end to end as a subprocess on a freshly made tiny model: readiness line,
// /health, /metrics, a streamed completion, and graceful shutdown on SIGTERM (a running stream
// finishes inside the timeout, or ends as aborted past it; the process exits 0 either way).
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/server/test_http_client.h"

extern char** environ;

using namespace latentserve;
using testing::get_request;
using testing::post_request;
using testing::RawClient;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// A temporary folder for this test run, removed at exit.
struct TestDir {
  TestDir() : path(fs::temp_directory_path() / ("latentserve-test-serve-" + std::to_string(::getpid()))) {
    fs::create_directories(path);
  }
  ~TestDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  fs::path path;
};

fs::path test_dir() {
  static const TestDir dir;
  return dir.path;
}

// The tiny preset, made once per test run.
std::string tiny_model() {
  static const std::string dir = [] {
    const fs::path out = test_dir() / "tiny";
    const std::string cmd = std::string(LATENTSERVE_BINARY) + " make-model --preset tiny --out " + out.string() +
                            " > " + (test_dir() / "make-model.log").string() + " 2>&1";
    REQUIRE(std::system(cmd.c_str()) == 0);
    return out.string();
  }();
  return dir;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class ServeProcess {
 public:
  explicit ServeProcess(std::vector<std::string> extra_args, const std::string& name) {
    out_ = test_dir() / (name + ".out");
    err_ = test_dir() / (name + ".err");
    std::vector<std::string> args = {LATENTSERVE_BINARY, "serve", "--model", tiny_model(), "--port", "0",
                                     "--num-kv-blocks", "128", "--served-model-name", "latentserve-tiny"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    REQUIRE(posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&actions);
  }
  ~ServeProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  // The port from "latentserve: serving NAME on http://HOST:PORT", or 0 if it never comes.
  uint16_t wait_ready(std::chrono::seconds limit = 60s) {
    const std::regex ready(R"(latentserve: serving (\S+) on http://127\.0\.0\.1:(\d+))");
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      std::smatch m;
      const std::string text = read_text(out_);
      if (std::regex_search(text, m, ready)) return static_cast<uint16_t>(std::stoi(m[2].str()));
      if (exited()) break;
      std::this_thread::sleep_for(20ms);
    }
    return 0;
  }
  void signal(int sig) { ::kill(pid_, sig); }
  // The exit status once the process ends within `limit`; -1 if it does not or was killed.
  int wait_exit(std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (exited()) return WIFEXITED(status_) ? WEXITSTATUS(status_) : -1;
      std::this_thread::sleep_for(20ms);
    }
    return -1;
  }
  std::string stderr_text() const { return read_text(err_); }

 private:
  bool exited() {
    if (pid_ <= 0) return true;
    if (::waitpid(pid_, &status_, WNOHANG) == pid_) {
      pid_ = -1;
      return true;
    }
    return false;
  }

  pid_t pid_ = -1;
  int status_ = 0;
  fs::path out_, err_;
};

std::string completion_request(int max_tokens) {
  return post_request("/v1/completions", R"({"model": "latentserve-tiny", "prompt": "Hello there", "max_tokens": )" +
                                             std::to_string(max_tokens) + R"(, "ignore_eos": true, "stream": true})");
}

}  // namespace

TEST_CASE("serve: ready line, health, metrics, streams, SIGTERM lets a running stream finish", "[http][serve]") {
  ServeProcess serve({"--shutdown-timeout", "60"}, "basic");
  const uint16_t port = serve.wait_ready();
  INFO(serve.stderr_text());
  REQUIRE(port != 0);

  RawClient client(port);
  REQUIRE(client.send(get_request("/health")));
  auto r = client.read_response();
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == "{}");

  REQUIRE(client.send(get_request("/metrics")));
  r = client.read_response();
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->headers["content-type"].rfind("text/plain; version=0.0.4", 0) == 0);
  CHECK(r->body.find("latentserve:num_requests_running") != std::string::npos);

  REQUIRE(client.send(completion_request(4)));
  r = client.read_response(30000);
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->headers["content-type"] == "text/event-stream");
  CHECK(r->body.find("\"finish_reason\":\"length\"") != std::string::npos);
  CHECK(r->body.size() >= 14);
  CHECK(r->body.substr(r->body.size() - 14) == "data: [DONE]\n\n");

  // A stream running at SIGTERM finishes (the timeout is long); nothing new is accepted.
  RawClient streaming(port);
  REQUIRE(streaming.send(completion_request(150)));
  REQUIRE(streaming.read_until("data: {"));
  serve.signal(SIGTERM);
  r = streaming.read_response(30000);
  REQUIRE(r);
  CHECK(r->body.find("\"finish_reason\":\"length\"") != std::string::npos);
  CHECK(r->body.find("\"finish_reason\":\"abort\"") == std::string::npos);
  CHECK(client.wait_closed(2000));  // the idle keep-alive connection
  CHECK(serve.wait_exit(10s) == 0);
  CHECK_THROWS(RawClient(port));
}

// The value of an unlabelled metric on a /metrics page (-1 when absent).
double metric(const std::string& page, const std::string& name) {
  std::smatch m;
  if (!std::regex_search(page, m, std::regex("\n" + name + " ([0-9.e+-]+)"))) return -1;
  return std::stod(m[1].str());
}

TEST_CASE("serve: a client that drops mid-stream is aborted; past the shutdown timeout streams end as aborted",
          "[http][serve]") {
  ServeProcess serve({"--shutdown-timeout", "0.3"}, "abort");
  const uint16_t port = serve.wait_ready();
  INFO(serve.stderr_text());
  REQUIRE(port != 0);

  {
    RawClient leaving(port);
    REQUIRE(leaving.send(completion_request(4000)));
    REQUIRE(leaving.read_until("data: {"));
  }  // gone mid-stream
  RawClient watcher(port);
  std::string page;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  bool released = false;
  while (!released && std::chrono::steady_clock::now() < deadline) {
    REQUIRE(watcher.send(get_request("/metrics")));
    auto m = watcher.read_response();
    REQUIRE(m);
    page = m->body;
    released = metric(page, "latentserve:num_requests_running") == 0 &&
               metric(page, "latentserve:kv_cache_free_blocks") == metric(page, "latentserve:kv_cache_blocks");
    if (!released) std::this_thread::sleep_for(20ms);
  }
  INFO(page);
  CHECK(released);
  CHECK(metric(page, "latentserve:kv_cache_blocks") == 128);
  // "cpu" here; a GPU machine running this test under --device auto would name its GPU.
  CHECK(page.find("latentserve:device_info{device=\"") != std::string::npos);
  RawClient streaming(port);
  // Longer than the tiny model can produce in the timeout.
  REQUIRE(streaming.send(completion_request(4000)));
  REQUIRE(streaming.read_until("data: {"));
  const auto signalled = std::chrono::steady_clock::now();
  serve.signal(SIGTERM);
  auto r = streaming.read_response(30000);
  REQUIRE(r);
  CHECK(r->body.find("\"finish_reason\":\"abort\"") != std::string::npos);
  CHECK(serve.wait_exit(10s) == 0);
  CHECK(std::chrono::steady_clock::now() - signalled < 8s);
}

TEST_CASE("serve: bad options exit 2 with a message", "[http][serve]") {
  for (const char* args : {"--port 70000", "--max-n 0", "--shutdown-timeout soon", "--no-such-option 1"}) {
    const std::string cmd = std::string(LATENTSERVE_BINARY) + " serve " + args + " > /dev/null 2> " +
                            (test_dir() / "bad.err").string();
    const int status = std::system(cmd.c_str());
    INFO(args);
    CHECK(WEXITSTATUS(status) == 2);
    CHECK(read_text(test_dir() / "bad.err").find("latentserve serve:") != std::string::npos);
  }
}
