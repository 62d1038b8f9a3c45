#include "server/http/wire_format.h"

#include <cstdio>
#include <ostream>  // Boost 1.74's status.hpp needs it complete

#include <boost/beast/http/status.hpp>

namespace latentserve::server::http {

namespace {

std::string status_line(int status) {
  const auto reason = boost::beast::http::obsolete_reason(static_cast<boost::beast::http::status>(status));
  std::string line = "HTTP/1.1 " + std::to_string(status) + " ";
  line.append(reason.data(), reason.size());
  line += "\r\n";
  return line;
}

}  // namespace

std::string whole_response(int status, const std::string& content_type, const std::string& body,
                           bool keep_alive, const HeaderList& extra) {
  std::string out = status_line(status);
  out += "Server: latentserve\r\nContent-Type: " + content_type + "\r\n";
  out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  for (const auto& [name, value] : extra) out += name + ": " + value + "\r\n";
  out += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
  out += body;
  return out;
}

std::string stream_head(bool chunked, bool keep_alive) {
  std::string out = status_line(200);
  out += "Server: latentserve\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n";
  // Proxies such as nginx would otherwise hold events back to fill their buffers.
  out += "X-Accel-Buffering: no\r\n";
  if (chunked) out += "Transfer-Encoding: chunked\r\n";
  out += keep_alive && chunked ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
  return out;
}

std::string event_bytes(const std::string& payload, bool chunked) {
  // A payload with line breaks becomes one "data:" line per line, as the SSE format requires.
  std::string event = "data: ";
  event.reserve(payload.size() + 8);
  if (payload.find_first_of("\r\n") == std::string::npos) {
    event += payload;
  } else {
    for (char c : payload) {
      if (c == '\n') {
        event += "\ndata: ";
      } else if (c != '\r') {
        event += c;
      }
    }
  }
  event += "\n\n";
  if (!chunked) return event;
  char hex[24];
  std::snprintf(hex, sizeof hex, "%zx\r\n", event.size());
  return hex + event + "\r\n";
}

}  // namespace latentserve::server::http
