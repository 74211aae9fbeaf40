#pragma once

#include "server/http_server.hpp"

namespace vapipe::test {

// A test server's options: loopback, any free port (HttpServer::port() says which).
inline server::HttpServerOptions loopback_any_port() {
  server::HttpServerOptions options;
  options.port = 0;
  return options;
}

}  // namespace vapipe::test
