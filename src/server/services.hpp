#pragma once
// The live services a config asks for (`rtsp_server`, `http`, `mqtt`), started around one Pipeline:
// constructed after the Pipeline and before Pipeline::run(), destroyed after run() returned. Each service
// attaches to the channels through Pipeline::add_tap_factory and runs on threads of its own, so none of
// them can slow the pipeline down.
#include <functional>
#include <memory>

#include "pipeline/pipeline.hpp"
#include "server/mqtt_publisher.hpp"

namespace vapipe::server {

class RtspServer;
class HttpServer;
class ControlApi;
class Viewer;

class Services {
 public:
  // Throws vapipe::Error naming the config key (e.g. "rtsp_server.port: 8554 is in use") when a service
  // cannot start; nothing is left running then.
  // `routes`, when given and the config has an `http` section, registers routes on the HTTP server before
  // the control API does: a route of the same method and path registered there wins (a cluster node's
  // POST /api/channels goes through etcd instead of this process's pipeline).
  explicit Services(pipeline::Pipeline& pipeline, const std::function<void(HttpServer&)>& routes = {});
  ~Services();
  Services(const Services&) = delete;
  Services& operator=(const Services&) = delete;

  // The `mqtt` section's publisher (null without one): its counters, for /metrics.
  const MqttPublisher* mqtt() const { return mqtt_.get(); }
  // The embedded RTSP server of the `rtsp_server` section (null without one): its counters for /metrics.
  RtspServer* rtsp_server() const { return rtsp_server_.get(); }
  // The HTTP server of the `http` section (null without one), already serving the control API and
  // /metrics: other services (the viewer) register their routes and WebSockets on it.
  HttpServer* http() const { return http_.get(); }

 private:
  pipeline::Pipeline& pipeline_;
  // --- rtsp_server (every video channel at rtsp://BIND:PORT/<model>_<ch>) ---
  std::unique_ptr<RtspServer> rtsp_server_;
  // --- mqtt ---
  std::unique_ptr<MqttPublisher> mqtt_;
  // --- http (control API, metrics) ---
  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<ControlApi> control_api_;
  // --- viewer (web/ page's video and boxes) ---
  std::unique_ptr<Viewer> viewer_;
};

}  // namespace vapipe::server
