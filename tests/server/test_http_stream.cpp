// HttpServer streaming: server-sent events written from another thread (chunked and HTTP/1.0
// close-delimited), disconnect detection, dropping a reader that never reads, draining, and 500
// concurrent streaming clients.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "server/http/http_server.h"
#include "tests/server/test_http_client.h"

using namespace latentserve;
using server::http::HttpRequest;
using server::http::HttpServer;
using server::http::HttpServerOptions;
using server::http::ResponseWriter;
using testing::get_request;
using testing::RawClient;
using namespace std::chrono_literals;

namespace {

HttpServerOptions loopback_options() {
  HttpServerOptions options;
  options.port = 0;
  options.io_threads = 2;
  return options;
}

std::string expected_events(int count) {
  std::string body;
  for (int i = 0; i < count; ++i) body += "data: {\"i\": " + std::to_string(i) + "}\n\n";
  return body;
}

// Streams `count` events from a thread of its own, as the engine's notifier would.
void stream_from_thread(std::shared_ptr<ResponseWriter> writer, int count, std::chrono::milliseconds gap) {
  std::thread([writer, count, gap] {
    writer->start_stream();
    for (int i = 0; i < count; ++i) {
      if (!writer->send_event("{\"i\": " + std::to_string(i) + "}")) return;
      if (gap.count() > 0) std::this_thread::sleep_for(gap);
    }
    writer->end_stream();
  }).detach();
}

}  // namespace

TEST_CASE("http stream: events from another thread, then the connection is reused", "[http][stream]") {
  HttpServer server(loopback_options());
  server.route("GET", "/stream", [](const HttpRequest&, std::shared_ptr<ResponseWriter> w) {
    stream_from_thread(std::move(w), 7, 1ms);
  });
  server.route("GET", "/multiline", [](const HttpRequest&, std::shared_ptr<ResponseWriter> w) {
    w->send_event("a\nb");  // starts the stream by itself
    w->send_event("[DONE]");
    w->end_stream();
  });
  server.route("GET", "/empty", [](const HttpRequest&, std::shared_ptr<ResponseWriter> w) { w->end_stream(); });
  REQUIRE(server.start().ok());

  RawClient client(server.port());
  for (int round = 0; round < 2; ++round) {
    REQUIRE(client.send(get_request("/stream")));
    auto r = client.read_response();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->headers["content-type"] == "text/event-stream");
    CHECK(r->headers["cache-control"] == "no-cache");
    CHECK(r->headers["transfer-encoding"] == "chunked");
    CHECK(r->body == expected_events(7));
  }
  REQUIRE(client.send(get_request("/multiline")));
  auto r = client.read_response();
  REQUIRE(r);
  CHECK(r->body == "data: a\ndata: b\n\ndata: [DONE]\n\n");
  REQUIRE(client.send(get_request("/empty")));
  r = client.read_response();
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body.empty());

  // HTTP/1.0 has no chunked encoding: the stream ends when the server closes.
  RawClient old(server.port());
  REQUIRE(old.send("GET /stream HTTP/1.0\r\n\r\n"));
  r = old.read_response();
  REQUIRE(r);
  CHECK(r->headers.count("transfer-encoding") == 0);
  CHECK(r->headers["connection"] == "close");
  CHECK(r->body == expected_events(7));
}

TEST_CASE("http stream: post() runs work on an I/O thread, and inline once stopped", "[http][stream]") {
  HttpServer server(loopback_options());
  std::promise<std::shared_ptr<ResponseWriter>> held;
  server.route("GET", "/posted", [&held](const HttpRequest&, std::shared_ptr<ResponseWriter> w) { held.set_value(w); });
  REQUIRE(server.start().ok());
  RawClient client(server.port());
  REQUIRE(client.send(get_request("/posted")));
  std::shared_ptr<ResponseWriter> writer = held.get_future().get();

  // From a thread of its own, as the engine's notifier: each posted piece sends one event.
  const int count = 37;
  std::thread::id poster_thread;
  auto posted_on = std::make_shared<std::vector<std::thread::id>>();
  auto posted_mutex = std::make_shared<std::mutex>();
  std::thread poster([&] {
    poster_thread = std::this_thread::get_id();
    writer->start_stream();
    for (int i = 0; i < count; ++i) {
      writer->post([writer, i, count, posted_on, posted_mutex] {
        std::lock_guard<std::mutex> lock(*posted_mutex);
        posted_on->push_back(std::this_thread::get_id());
        writer->send_event("{\"i\": " + std::to_string(i) + "}");
        if (posted_on->size() == size_t(count)) writer->end_stream();  // the last to run ends it
      });
    }
  });
  poster.join();
  auto r = client.read_response();
  REQUIRE(r);
  CHECK(r->status == 200);
  {
    std::lock_guard<std::mutex> lock(*posted_mutex);
    REQUIRE(posted_on->size() == size_t(count));
    for (const auto& id : *posted_on) CHECK(id != poster_thread);
  }
  // Pieces may run on either I/O thread, in any order: each event must arrive, once.
  for (int i = 0; i < count; ++i) {
    const std::string event = "data: {\"i\": " + std::to_string(i) + "}\n\n";
    const size_t at = r->body.find(event);
    CHECK(at != std::string::npos);
    CHECK(r->body.find(event, at + 1) == std::string::npos);
  }

  server.stop();
  bool ran = false;
  const auto here = std::this_thread::get_id();
  writer->post([&] { ran = std::this_thread::get_id() == here; });
  CHECK(ran);
}

TEST_CASE("http stream: a client that leaves mid-stream is noticed at once", "[http][stream]") {
  struct Seen {
    std::mutex mutex;
    std::condition_variable changed;
    int disconnects = 0;
    bool producer_stopped = false;
    int events_after_disconnect = 0;
    bool disconnected_flag = false;
  };
  auto seen = std::make_shared<Seen>();
  HttpServer server(loopback_options());
  server.route("GET", "/stream", [seen](const HttpRequest&, std::shared_ptr<ResponseWriter> w) {
    w->on_disconnect([seen] {
      std::lock_guard<std::mutex> lock(seen->mutex);
      ++seen->disconnects;
      seen->changed.notify_all();
    });
    w->start_stream();
    // An engine-like producer: an event every 2 ms, until the writer says the client is gone.
    std::thread([seen, w] {
      for (int i = 0; i < 20000; ++i) {
        if (!w->send_event("{\"token\": " + std::to_string(i) + "}")) break;
        std::this_thread::sleep_for(2ms);
      }
      std::lock_guard<std::mutex> lock(seen->mutex);
      seen->producer_stopped = true;
      seen->disconnected_flag = w->disconnected();
      seen->events_after_disconnect = w->send_event("late") ? 1 : 0;
      seen->changed.notify_all();
    }).detach();
  });
  REQUIRE(server.start().ok());

  {
    RawClient client(server.port());
    REQUIRE(client.send(get_request("/stream")));
    REQUIRE(client.read_until("{\"token\": 3}"));
  }  // the client closes here, mid-stream
  const auto closed_at = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lock(seen->mutex);
  REQUIRE(seen->changed.wait_for(lock, 5s, [&] { return seen->disconnects == 1 && seen->producer_stopped; }));
  CHECK(std::chrono::steady_clock::now() - closed_at < 2s);
  CHECK(seen->disconnected_flag);
  CHECK(seen->events_after_disconnect == 0);
  // A callback registered after the fact runs at once; none fires twice.
  lock.unlock();
  std::this_thread::sleep_for(50ms);
  lock.lock();
  CHECK(seen->disconnects == 1);
}

TEST_CASE("http stream: a client that leaves before a whole response is noticed too", "[http][stream]") {
  auto fired = std::make_shared<std::promise<void>>();
  auto held = std::make_shared<std::shared_ptr<ResponseWriter>>();
  HttpServer server(loopback_options());
  server.route("POST", "/slow", [fired, held](const HttpRequest&, std::shared_ptr<ResponseWriter> w) {
    w->on_disconnect([fired] { fired->set_value(); });
    *held = w;  // answered later, as a non-streamed completion would be
  });
  REQUIRE(server.start().ok());
  {
    RawClient client(server.port());
    REQUIRE(client.send(testing::post_request("/slow", "{}")));
    std::this_thread::sleep_for(50ms);
  }
  CHECK(fired->get_future().wait_for(2s) == std::future_status::ready);
  REQUIRE(*held);
  CHECK((*held)->disconnected());
  (*held)->send(200, "{}");  // too late: dropped quietly
}

TEST_CASE("http stream: a finished response never reports a disconnect", "[http][stream]") {
  auto fired = std::make_shared<std::atomic<int>>(0);
  HttpServer server(loopback_options());
  server.route("GET", "/once", [fired](const HttpRequest&, std::shared_ptr<ResponseWriter> w) {
    w->on_disconnect([fired] { ++*fired; });
    w->send(200, "{}");
    w->on_disconnect([fired] { ++*fired; });  // after the end: dropped
  });
  REQUIRE(server.start().ok());
  {
    RawClient client(server.port());
    REQUIRE(client.send(get_request("/once")));
    REQUIRE(client.read_response());
  }
  std::this_thread::sleep_for(100ms);
  CHECK(fired->load() == 0);
}

TEST_CASE("http stream: a reader that never reads is dropped before memory grows", "[http][stream]") {
  auto options = loopback_options();
  options.max_pending_write_bytes = 256 << 10;
  struct Result {
    std::mutex mutex;
    std::condition_variable done;
    bool finished = false;
    int64_t bytes_accepted = 0;
    bool disconnect_fired = false;
  };
  auto result = std::make_shared<Result>();
  HttpServer server(options);
  server.route("GET", "/flood", [result](const HttpRequest&, std::shared_ptr<ResponseWriter> w) {
    w->on_disconnect([result] {
      std::lock_guard<std::mutex> lock(result->mutex);
      result->disconnect_fired = true;
    });
    std::thread([result, w] {
      const std::string payload(4096, 'x');
      int64_t accepted = 0;
      while (accepted < (int64_t{1} << 30) && w->send_event(payload)) accepted += static_cast<int64_t>(payload.size());
      std::this_thread::sleep_for(100ms);  // let the drop reach the I/O thread
      std::lock_guard<std::mutex> lock(result->mutex);
      result->bytes_accepted = accepted;
      result->finished = true;
      result->done.notify_all();
    }).detach();
  });
  REQUIRE(server.start().ok());
  RawClient client(server.port());
  REQUIRE(client.send(get_request("/flood")));  // and read nothing
  std::unique_lock<std::mutex> lock(result->mutex);
  REQUIRE(result->done.wait_for(lock, 20s, [&] { return result->finished; }));
  INFO("bytes accepted before the drop: " << result->bytes_accepted);
  // What the kernel's socket buffers absorb plus the limit; far below the 1 GiB offered.
  CHECK(result->bytes_accepted < (int64_t{64} << 20));
  CHECK(result->disconnect_fired);
}

TEST_CASE("http stream: draining lets a running stream finish and refuses new clients", "[http][stream]") {
  HttpServer server(loopback_options());
  server.route("GET", "/stream", [](const HttpRequest&, std::shared_ptr<ResponseWriter> w) {
    stream_from_thread(std::move(w), 30, 10ms);
  });
  server.route("GET", "/hello", [](const HttpRequest&, std::shared_ptr<ResponseWriter> w) { w->send(200, "{}"); });
  REQUIRE(server.start().ok());
  const uint16_t port = server.port();

  RawClient idle(port);
  REQUIRE(idle.send(get_request("/hello")));
  REQUIRE(idle.read_response());
  RawClient streaming(port);
  REQUIRE(streaming.send(get_request("/stream")));
  REQUIRE(streaming.read_until("data: {\"i\": 1}"));

  server.stop_accepting();
  CHECK(idle.wait_closed(2000));
  CHECK_THROWS(RawClient(port));
  auto r = streaming.read_response();
  REQUIRE(r);
  CHECK(r->body == expected_events(30));
  CHECK(streaming.wait_closed(2000));  // no keep-alive while draining
  server.stop();
}

TEST_CASE("http stream: 500 concurrent streaming clients all complete", "[http][stream]") {
  testing::raise_open_file_limit();
  constexpr int kClients = 500;
  constexpr int kEvents = 12;
  // Every stream stays open until all of them have started, so all 500 are live at once.
  struct Hub {
    std::mutex mutex;
    std::condition_variable all_started;
    std::vector<std::shared_ptr<ResponseWriter>> writers;
  };
  auto hub = std::make_shared<Hub>();
  auto options = loopback_options();
  HttpServer server(options);
  server.route("GET", "/stream", [hub](const HttpRequest&, std::shared_ptr<ResponseWriter> w) {
    w->start_stream();
    std::lock_guard<std::mutex> lock(hub->mutex);
    hub->writers.push_back(std::move(w));
    if (hub->writers.size() == kClients) hub->all_started.notify_all();
  });
  REQUIRE(server.start().ok());

  std::atomic<bool> producer_ok{false};
  std::thread producer([&] {
    std::unique_lock<std::mutex> lock(hub->mutex);
    if (!hub->all_started.wait_for(lock, 30s, [&] { return hub->writers.size() == kClients; })) return;
    auto writers = hub->writers;
    lock.unlock();
    for (int i = 0; i < kEvents; ++i) {
      for (auto& w : writers) w->send_event("{\"i\": " + std::to_string(i) + "}");
    }
    for (auto& w : writers) w->end_stream();
    producer_ok = true;
  });

  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<RawClient>(server.port()));
    REQUIRE(clients.back()->send(get_request("/stream")));
  }
  int complete = 0;
  for (auto& client : clients) {
    auto r = client->read_response(30000);
    if (r && r->status == 200 && r->body == expected_events(kEvents)) ++complete;
  }
  producer.join();
  CHECK(producer_ok);
  CHECK(complete == kClients);
}
