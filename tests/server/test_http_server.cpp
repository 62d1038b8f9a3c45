// HttpServer over loopback with a raw client: routing, error JSON (401, 404, 405, 413, 400),
// keep-alive and pipelining, timeouts, handler failures and draining.
#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "server/http/http_server.h"
#include "tests/server/test_http_client.h"

using namespace latentserve;
using server::http::HttpRequest;
using server::http::HttpServer;
using server::http::HttpServerOptions;
using server::http::ResponseWriter;
using testing::get_request;
using testing::post_request;
using testing::RawClient;

namespace {

HttpServerOptions loopback_options() {
  HttpServerOptions options;
  options.port = 0;
  options.io_threads = 2;
  return options;
}

// GET /hello, POST /echo (body and selected headers back as JSON), GET+POST /both, GET /throw.
void add_test_routes(HttpServer& server) {
  server.route("GET", "/hello", [](const HttpRequest&, std::shared_ptr<ResponseWriter> w) {
    w->send(200, "hello", "text/plain");
  });
  server.route("POST", "/echo", [](const HttpRequest& r, std::shared_ptr<ResponseWriter> w) {
    nlohmann::json j = {{"method", r.method}, {"target", r.target}, {"path", r.path}, {"body", r.body},
                        {"x-test", r.headers.count("x-test") ? r.headers.at("x-test") : ""}};
    w->send(200, j.dump());
  });
  for (const char* method : {"GET", "POST"}) {
    server.route(method, "/both", [](const HttpRequest& r, std::shared_ptr<ResponseWriter> w) {
      w->send(200, r.method, "text/plain");
    });
  }
  server.route("GET", "/throw", [](const HttpRequest&, std::shared_ptr<ResponseWriter>) {
    throw std::runtime_error("handler failed on purpose");
  });
}

nlohmann::json error_of(const testing::RawResponse& r) {
  auto j = nlohmann::json::parse(r.body);
  REQUIRE(j.contains("error"));
  const auto& e = j["error"];
  CHECK(e["message"].is_string());
  CHECK(e["type"].is_string());
  CHECK(e.contains("param"));
  CHECK(e.contains("code"));
  return e;
}

}  // namespace

TEST_CASE("http: routes, 404 and 405 on one keep-alive connection", "[http]") {
  HttpServer server(loopback_options());
  add_test_routes(server);
  REQUIRE(server.start().ok());
  REQUIRE(server.port() != 0);

  RawClient client(server.port());
  for (int round = 0; round < 3; ++round) {
    REQUIRE(client.send(get_request("/hello")));
    auto r = client.read_response();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "hello");
    CHECK(r->headers["content-type"] == "text/plain");
    CHECK(r->headers["connection"] == "keep-alive");

    const std::string body = "{\"round\": " + std::to_string(round) + ", \"text\": \"\xc3\xa9\"}";
    REQUIRE(client.send(post_request("/echo?x=1", body, "X-Test: value " + std::to_string(round) + "\r\n")));
    r = client.read_response();
    REQUIRE(r);
    CHECK(r->status == 200);
    auto echo = nlohmann::json::parse(r->body);
    CHECK(echo["body"] == body);
    CHECK(echo["target"] == "/echo?x=1");
    CHECK(echo["path"] == "/echo");
    CHECK(echo["x-test"] == "value " + std::to_string(round));

    REQUIRE(client.send(get_request("/v1/nowhere")));
    r = client.read_response();
    REQUIRE(r);
    CHECK(r->status == 404);
    auto e = error_of(*r);
    CHECK(e["code"] == 404);
    CHECK(e["param"].is_null());
    CHECK(e["message"].get<std::string>().find("/v1/nowhere") != std::string::npos);

    REQUIRE(client.send(post_request("/hello", "{}")));
    r = client.read_response();
    REQUIRE(r);
    CHECK(r->status == 405);
    CHECK(r->headers["allow"] == "GET");
    CHECK(error_of(*r)["code"] == 405);

    REQUIRE(client.send(post_request("/both", "x")));
    r = client.read_response();
    REQUIRE(r);
    CHECK(r->body == "POST");
  }
}

TEST_CASE("http: pipelined requests are answered in order", "[http]") {
  HttpServer server(loopback_options());
  add_test_routes(server);
  REQUIRE(server.start().ok());
  RawClient client(server.port());
  std::string burst;
  for (int i = 0; i < 20; ++i) burst += post_request("/echo", "request " + std::to_string(i));
  REQUIRE(client.send(burst));
  for (int i = 0; i < 20; ++i) {
    auto r = client.read_response();
    REQUIRE(r);
    CHECK(nlohmann::json::parse(r->body)["body"] == "request " + std::to_string(i));
  }
}

TEST_CASE("http: API key required except on open paths", "[http]") {
  auto options = loopback_options();
  options.api_key = "s3cret-key";
  HttpServer server(options);
  add_test_routes(server);
  server.allow_without_key("/hello");
  REQUIRE(server.start().ok());
  RawClient client(server.port());

  REQUIRE(client.send(get_request("/hello")));
  auto r = client.read_response();
  REQUIRE(r);
  CHECK(r->status == 200);

  for (const char* header : {"", "Authorization: Bearer wrong\r\n", "Authorization: Bearer s3cret-ke\r\n",
                             "Authorization: s3cret-key\r\n", "Authorization: Bearer s3cret-key2\r\n"}) {
    REQUIRE(client.send(post_request("/echo", "{}", header)));
    r = client.read_response();
    REQUIRE(r);
    CHECK(r->status == 401);
    CHECK(error_of(*r)["code"] == 401);
  }
  // An unknown path without the key says nothing about which paths exist.
  REQUIRE(client.send(get_request("/secret/path")));
  r = client.read_response();
  REQUIRE(r);
  CHECK(r->status == 401);

  for (const char* header : {"Authorization: Bearer s3cret-key\r\n", "authorization: bearer s3cret-key\r\n"}) {
    REQUIRE(client.send(post_request("/echo", "ok", header)));
    r = client.read_response();
    REQUIRE(r);
    CHECK(r->status == 200);
  }
}

TEST_CASE("http: bodies over the limit get 413 before they are sent whole", "[http]") {
  auto options = loopback_options();
  options.max_request_bytes = 1000;
  HttpServer server(options);
  add_test_routes(server);
  REQUIRE(server.start().ok());

  SECTION("exactly at the limit is accepted") {
    RawClient client(server.port());
    REQUIRE(client.send(post_request("/echo", std::string(1000, 'a'))));
    auto r = client.read_response();
    REQUIRE(r);
    CHECK(r->status == 200);
  }
  SECTION("a declared length over the limit is refused from the header alone") {
    RawClient client(server.port());
    // 10 GB announced, a few bytes sent: the answer must come without the rest.
    REQUIRE(client.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\nabc"));
    auto r = client.read_response(5000);
    REQUIRE(r);
    CHECK(r->status == 413);
    CHECK(r->headers["connection"] == "close");
    auto e = error_of(*r);
    CHECK(e["code"] == 413);
    CHECK(e["message"].get<std::string>().find("1000") != std::string::npos);
    CHECK(client.wait_closed(5000));
  }
  SECTION("Expect: 100-continue over the limit is refused without the body") {
    RawClient client(server.port());
    REQUIRE(client.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n"));
    auto r = client.read_response(5000);
    REQUIRE(r);
    CHECK(r->status == 413);
  }
  SECTION("Expect: 100-continue within the limit is invited") {
    RawClient client(server.port());
    REQUIRE(client.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"));
    REQUIRE(client.read_until("100 Continue", 5000));
    REQUIRE(client.send("xyz"));
    auto r = client.read_response(5000);
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(nlohmann::json::parse(r->body)["body"] == "xyz");
  }
  SECTION("a chunked body that grows past the limit") {
    RawClient client(server.port());
    std::string chunks = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 3; ++i) chunks += "190\r\n" + std::string(400, 'b') + "\r\n";
    REQUIRE(client.send(chunks));
    auto r = client.read_response(5000);
    REQUIRE(r);
    CHECK(r->status == 413);
  }
  SECTION("a chunked body within the limit") {
    RawClient client(server.port());
    REQUIRE(client.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"));
    auto r = client.read_response(5000);
    REQUIRE(r);
    CHECK(nlohmann::json::parse(r->body)["body"] == "abcde");
  }
}

TEST_CASE("http: malformed requests get 400 and the connection closes", "[http]") {
  HttpServer server(loopback_options());
  add_test_routes(server);
  REQUIRE(server.start().ok());
  const char* bad[] = {
      "GARBAGE\r\n\r\n",
      "GET /hello HTTP/9.9\r\nHost: x\r\n\r\n",
      "GET /hello HTTP/1.1\r\nHost x\r\n\r\n",
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
      "GET /he\x01llo HTTP/1.1\r\nHost: x\r\n\r\n",
  };
  for (const char* request : bad) {
    INFO(request);
    RawClient client(server.port());
    REQUIRE(client.send(request));
    auto r = client.read_response(5000);
    REQUIRE(r);
    CHECK(r->status == 400);
    CHECK(error_of(*r)["code"] == 400);
    CHECK(client.wait_closed(5000));
  }
  // A header too large to be reasonable.
  RawClient client(server.port());
  REQUIRE(client.send("GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(100000, 'h') + "\r\n\r\n"));
  auto r = client.read_response(5000);
  REQUIRE(r);
  CHECK(r->status == 431);
  CHECK(client.wait_closed(5000));
  // The server is unharmed.
  RawClient after(server.port());
  REQUIRE(after.send(get_request("/hello")));
  auto ok = after.read_response();
  REQUIRE(ok);
  CHECK(ok->status == 200);
}

TEST_CASE("http: idle and header timeouts close the connection", "[http]") {
  auto options = loopback_options();
  options.idle_timeout_ms = 300;
  options.header_timeout_ms = 300;
  HttpServer server(options);
  add_test_routes(server);
  REQUIRE(server.start().ok());

  RawClient idle(server.port());
  REQUIRE(idle.send(get_request("/hello")));
  REQUIRE(idle.read_response());
  const auto start = std::chrono::steady_clock::now();
  CHECK(idle.wait_closed(5000));
  CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(250));

  RawClient slow(server.port());
  REQUIRE(slow.send("GET /hello HTTP/1.1\r\nHo"));  // and never the rest
  CHECK(slow.wait_closed(5000));
}

TEST_CASE("http: a throwing handler answers 500 and the server keeps serving", "[http]") {
  HttpServer server(loopback_options());
  add_test_routes(server);
  REQUIRE(server.start().ok());
  RawClient client(server.port());
  REQUIRE(client.send(get_request("/throw")));
  auto r = client.read_response();
  REQUIRE(r);
  CHECK(r->status == 500);
  CHECK(error_of(*r)["message"].get<std::string>().find("on purpose") != std::string::npos);
  REQUIRE(client.send(get_request("/hello")));
  r = client.read_response();
  REQUIRE(r);
  CHECK(r->status == 200);
}

TEST_CASE("http: the server refuses a port in use and stops cleanly", "[http]") {
  HttpServer first(loopback_options());
  add_test_routes(first);
  REQUIRE(first.start().ok());
  auto options = loopback_options();
  options.port = first.port();
  HttpServer second(options);
  auto status = second.start();
  REQUIRE_FALSE(status.ok());
  CHECK(status.error().message.find(std::to_string(first.port())) != std::string::npos);

  RawClient idle(first.port());
  REQUIRE(idle.send(get_request("/hello")));
  REQUIRE(idle.read_response());
  first.stop();
  CHECK(idle.wait_closed(2000));
  CHECK_THROWS(RawClient(first.port()));
}

TEST_CASE("error_body has OpenAI's shape", "[http]") {
  auto j = nlohmann::json::parse(server::http::error_body("bad \"n\"", "invalid_request_error", "n", 400));
  CHECK(j["error"]["message"] == "bad \"n\"");
  CHECK(j["error"]["type"] == "invalid_request_error");
  CHECK(j["error"]["param"] == "n");
  CHECK(j["error"]["code"] == 400);
  auto invalid_utf8 = nlohmann::json::parse(server::http::error_body("bad \xff byte", "x"));
  CHECK(invalid_utf8["error"]["param"].is_null());
  CHECK(invalid_utf8["error"]["code"].is_null());
}
