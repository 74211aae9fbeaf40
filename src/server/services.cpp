#include "server/services.hpp"

namespace vapipe::server {

Services::Services(pipeline::Pipeline& pipeline) : pipeline_(pipeline) {
  // MQTT: each frame's results record to <topic>/<model>_<ch>.
  if (pipeline_.config().mqtt) {
    mqtt_ = std::make_unique<MqttPublisher>(*pipeline_.config().mqtt);
    pipeline_.add_tap_factory(mqtt_->tap_factory());
  }
}

Services::~Services() = default;

}  // namespace vapipe::server
