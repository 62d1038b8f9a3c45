// A raw HTTP/1.1 client over loopback TCP for the server tests: sends exact bytes (malformed ones
// too) and parses responses (Content-Length, chunked or close-delimited bodies) with timeouts.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace latentserve::testing {

struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;                            // chunked bodies de-chunked
};

class RawClient {
 public:
  explicit RawClient(uint16_t port);  // connects to 127.0.0.1:port (throws on failure)
  ~RawClient();
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool send(const std::string& bytes);
  // One response; nullopt on timeout, a closed connection or garbage.
  std::optional<RawResponse> read_response(int timeout_ms = 10000);
  // Reads until `needle` has arrived (kept in the buffer); false on timeout or close.
  bool read_until(const std::string& needle, int timeout_ms = 10000);
  // True when the server closes the connection (EOF or reset) within the timeout; data that
  // arrives first is read and discarded.
  bool wait_closed(int timeout_ms);
  void close();
  const std::string& buffered() const { return buffer_; }

 private:
  // Appends what arrives within the timeout: >0 bytes, 0 on EOF, -1 on timeout or error.
  int read_more(int timeout_ms);
  bool read_line(std::string& line, int timeout_ms);
  bool read_exact(size_t n, std::string& out, int timeout_ms);

  int fd_ = -1;
  std::string buffer_;
};

// "GET /path HTTP/1.1" with Host and the given extra header lines ("Name: value\r\n"...).
std::string get_request(const std::string& path, const std::string& extra_headers = "");
std::string post_request(const std::string& path, const std::string& body, const std::string& extra_headers = "");

// Raises the soft limit on open files to the hard limit (many-connection tests).
void raise_open_file_limit();

}  // namespace latentserve::testing
