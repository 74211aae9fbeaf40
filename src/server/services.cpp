#include "server/services.hpp"

#include <spdlog/spdlog.h>

#include "server/control_api.hpp"
#include "server/http_server.hpp"

namespace vapipe::server {

Services::Services(pipeline::Pipeline& pipeline) : pipeline_(pipeline) {
  // --- http: the server, the control API and /metrics ---
  if (const auto& http = pipeline_.config().http) {
    HttpServerOptions options;
    options.bind = http->bind;
    options.port = http->port;
    options.token = http->token;
    if (http->web_root) options.web_root = *http->web_root;
    http_ = std::make_unique<HttpServer>(options);
    control_api_ = std::make_unique<ControlApi>(pipeline_, *http_);
    http_->start();
    spdlog::info("http: control API at http://{}:{}/api/channels, metrics at /metrics{}", options.bind,
                 http_->port(), options.token ? " (token required)" : "");
  }
}

Services::~Services() {
  // The server goes first: no handler may run once the API's state is gone.
  if (http_) http_->stop();
  control_api_.reset();
  http_.reset();
}

}  // namespace vapipe::server
