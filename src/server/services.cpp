#include "server/services.hpp"

#include "server/rtsp_server.hpp"

namespace vapipe::server {

Services::Services(pipeline::Pipeline& pipeline) : pipeline_(pipeline) {
  // --- rtsp_server: one mount per video channel, each fed by the channel's tap ---
  if (const auto& rtsp = pipeline_.config().rtsp_server) {
    rtsp_server_ = std::make_unique<RtspServer>(RtspServerOptions{.bind = rtsp->bind, .port = rtsp->port});
    pipeline_.add_tap_factory([server = rtsp_server_.get()](const pipeline::ChannelInfo& channel) {
      return server->make_tap(channel);
    });
  }
  // --- mqtt: each frame's results record to <topic>/<model>_<ch> ---
  if (pipeline_.config().mqtt) {
    mqtt_ = std::make_unique<MqttPublisher>(*pipeline_.config().mqtt);
    pipeline_.add_tap_factory(mqtt_->tap_factory());
  }
}

Services::~Services() {
  // Channels have closed (run() returned): their EOS reaches the RTSP clients before connections close.
  if (rtsp_server_) rtsp_server_->stop();
}

}  // namespace vapipe::server
