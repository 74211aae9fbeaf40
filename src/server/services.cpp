#include "server/services.hpp"

#include <filesystem>

#include <spdlog/spdlog.h>

#include "server/control_api.hpp"
#include "server/http_server.hpp"
#include "server/rtsp_server.hpp"
#include "server/viewer.hpp"

namespace vapipe::server {

Services::Services(pipeline::Pipeline& pipeline, const std::function<void(HttpServer&)>& routes)
    : pipeline_(pipeline) {
  // --- rtsp_server: one mount per video channel, each fed by the channel's tap ---
  if (const auto& rtsp = pipeline_.config().rtsp_server) {
    rtsp_server_ = std::make_unique<RtspServer>(
        RtspServerOptions{.bind = rtsp->bind, .port = rtsp->port, .other_ports = rtsp->other_ports});
    pipeline_.add_tap_factory([server = rtsp_server_.get()](const pipeline::ChannelInfo& channel) {
      return server->make_tap(channel);
    });
    // The composed stream of the `mosaic` output, at /<mosaic.name>.
    if (pipeline::Mosaic* mosaic = pipeline_.mosaic())
      mosaic->add_output_tap(rtsp_server_->make_tap(mosaic->info()));
  }
  // --- mqtt: each frame's results record to <topic>/<model>_<ch> ---
  if (pipeline_.config().mqtt) {
    mqtt_ = std::make_unique<MqttPublisher>(*pipeline_.config().mqtt);
    pipeline_.add_tap_factory(mqtt_->tap_factory());
  }
  // --- http: the server, the control API and /metrics ---
  if (const auto& http = pipeline_.config().http) {
    HttpServerOptions options;
    options.bind = http->bind;
    options.port = http->port;
    options.token = http->token;
    options.allowed_hosts = http->allowed_hosts;
    options.max_connections = static_cast<std::size_t>(http->max_connections);
    options.max_connections_per_peer = static_cast<std::size_t>(http->max_connections_per_peer);
    options.web_root = http->web_root ? std::filesystem::path(*http->web_root) : default_web_root();
    http_ = std::make_unique<HttpServer>(options);
    if (routes) routes(*http_);
    control_api_ = std::make_unique<ControlApi>(pipeline_, *http_);
    http_->start();
    spdlog::info("http: control API at http://{}:{}/api/channels, metrics at /metrics{}", options.bind,
                 http_->port(), options.token ? " (token required)" : "");
  }
  // --- viewer: every channel's live video and boxes for the page in web/ (docs/viewer.md) ---
  if (http_) {
    viewer_ = std::make_unique<Viewer>(*http_);
    pipeline_.add_tap_factory(viewer_->tap_factory());
    spdlog::info("http: web viewer at http://{}:{}/", pipeline_.config().http->bind, http_->port());
  }
}

Services::~Services() {
  // Channels have closed (run() returned): their EOS reaches the RTSP clients before connections close.
  if (rtsp_server_) rtsp_server_->stop();
  // The HTTP server goes first: no handler may run once the API's state is gone.
  if (http_) http_->stop();
  viewer_.reset();
  control_api_.reset();
  http_.reset();
}

}  // namespace vapipe::server
