#include "tests/server/test_http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <stdexcept>

namespace latentserve::testing {

namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

RawClient::RawClient(uint16_t port) {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd_ < 0) throw std::runtime_error("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd_);
    fd_ = -1;
    throw std::runtime_error("connect() to port " + std::to_string(port) + " failed: errno " + std::to_string(errno));
  }
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

RawClient::~RawClient() { close(); }

void RawClient::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool RawClient::send(const std::string& bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

int RawClient::read_more(int timeout_ms) {
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) <= 0) return -1;
  char chunk[16384];
  const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
  if (n < 0) return errno == ECONNRESET ? 0 : -1;
  buffer_.append(chunk, static_cast<size_t>(n));
  return static_cast<int>(n);
}

bool RawClient::read_line(std::string& line, int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    const auto end = buffer_.find("\r\n");
    if (end != std::string::npos) {
      line = buffer_.substr(0, end);
      buffer_.erase(0, end + 2);
      return true;
    }
    if (read_more(remaining_ms(deadline)) <= 0) return false;
  }
}

bool RawClient::read_exact(size_t n, std::string& out, int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (buffer_.size() < n) {
    if (read_more(remaining_ms(deadline)) <= 0) return false;
  }
  out.append(buffer_, 0, n);
  buffer_.erase(0, n);
  return true;
}

std::optional<RawResponse> RawClient::read_response(int timeout_ms) {
  RawResponse r;
  std::string line;
  do {  // skip interim 100 Continue responses
    if (!read_line(line, timeout_ms) || line.rfind("HTTP/1.", 0) != 0 || line.size() < 12) return std::nullopt;
    r.status = std::stoi(line.substr(9, 3));
    r.headers.clear();
    while (true) {
      if (!read_line(line, timeout_ms)) return std::nullopt;
      if (line.empty()) break;
      const auto colon = line.find(':');
      if (colon == std::string::npos) return std::nullopt;
      const auto value_start = line.find_first_not_of(' ', colon + 1);
      r.headers[lower(line.substr(0, colon))] = value_start == std::string::npos ? "" : line.substr(value_start);
    }
  } while (r.status == 100);

  if (r.headers.count("content-length")) {
    if (!read_exact(std::stoul(r.headers["content-length"]), r.body, timeout_ms)) return std::nullopt;
  } else if (r.headers.count("transfer-encoding") && lower(r.headers["transfer-encoding"]) == "chunked") {
    while (true) {
      if (!read_line(line, timeout_ms)) return std::nullopt;
      const size_t size = std::stoul(line, nullptr, 16);
      if (size == 0) {
        if (!read_line(line, timeout_ms)) return std::nullopt;  // the empty trailer line
        break;
      }
      if (!read_exact(size, r.body, timeout_ms) || !read_line(line, timeout_ms) || !line.empty()) return std::nullopt;
    }
  } else {
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (true) {
      const int n = read_more(remaining_ms(deadline));
      if (n == 0) break;
      if (n < 0) return std::nullopt;
    }
    r.body = std::move(buffer_);
    buffer_.clear();
  }
  return r;
}

bool RawClient::read_until(const std::string& needle, int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (buffer_.find(needle) == std::string::npos) {
    if (read_more(remaining_ms(deadline)) <= 0) return false;
  }
  return true;
}

bool RawClient::wait_closed(int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, remaining_ms(deadline)) <= 0) return false;
    char chunk[16384];
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
    if (n < 0) return false;
  }
}

std::string get_request(const std::string& path, const std::string& extra_headers) {
  return "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra_headers + "\r\n";
}

std::string post_request(const std::string& path, const std::string& body, const std::string& extra_headers) {
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n" + extra_headers + "\r\n" + body;
}

void raise_open_file_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
}

}  // namespace latentserve::testing
