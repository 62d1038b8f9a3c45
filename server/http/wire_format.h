// The bytes of HTTP/1.1 responses as the server writes them: status line and headers for whole
// and streamed responses, and chunked-transfer framing for server-sent events.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace latentserve::server::http {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// A complete response with Content-Length.
std::string whole_response(int status, const std::string& content_type, const std::string& body,
                           bool keep_alive, const HeaderList& extra = {});

// The head of a `text/event-stream` response: chunked when `chunked`, else delimited by closing
// the connection (HTTP/1.0 clients).
std::string stream_head(bool chunked, bool keep_alive);

// One server-sent event ("data: <payload>\n\n"), framed as a chunk when `chunked`.
std::string event_bytes(const std::string& payload, bool chunked);

// The terminating zero-length chunk.
inline const char kLastChunk[] = "0\r\n\r\n";

}  // namespace latentserve::server::http
