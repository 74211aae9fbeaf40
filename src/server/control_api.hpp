#pragma once
// The REST control API of `vapipe run` (docs/api.md): channels listed, added and removed at run time,
// the statistics now and over the last minutes, and /metrics in the Prometheus text format. Handlers run
// on the HTTP server's thread and never wait on the pipeline: adding starts a channel whose source opens
// on its own thread; removing asks the pipeline to drain it and returns.
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "pipeline/pipeline.hpp"
#include "server/http_server.hpp"
#include "server/stats_history.hpp"

namespace vapipe::server {

class ControlApi {
 public:
  // Registers /api/channels, /api/channels/{id}, /api/stats, /api/stats/history, /api/gallery and /metrics
  // on `server`.
  ControlApi(pipeline::Pipeline& pipeline, HttpServer& server);
  ControlApi(const ControlApi&) = delete;
  ControlApi& operator=(const ControlApi&) = delete;

  const StatsHistory& stats() const { return stats_; }

 private:
  HttpResponse list_channels(const HttpRequest& request) const;
  HttpResponse get_channel(const HttpRequest& request) const;
  HttpResponse add_channel(const HttpRequest& request);
  HttpResponse remove_channel(const HttpRequest& request);
  HttpResponse get_stats(const HttpRequest& request) const;
  HttpResponse get_history(const HttpRequest& request) const;
  HttpResponse get_metrics(const HttpRequest& request) const;
  // GET /api/gallery, POST /api/gallery/reload (?model=NAME): a face recognition model's gallery.
  HttpResponse gallery(const HttpRequest& request, bool reload);
  nlohmann::json channel_json(std::size_t id) const;

  pipeline::Pipeline& pipeline_;
  StatsHistory stats_;
};

// A JSON answer, and the API's error answer {"error": message}.
HttpResponse json_response(int status, const nlohmann::json& body);
HttpResponse error_response(int status, std::string_view message);

// The body of POST /api/channels ({"address", "model", "loop", "pace", "rtsp_transport"}, and "name" when
// `allow_name`: a cluster channel's key) as a request; nullopt with `error` naming the field otherwise.
std::optional<pipeline::ChannelRequest> parse_channel_request(std::string_view body, bool allow_name,
                                                              std::string& error);

// The Prometheus text exposition (format 0.0.4) of every channel not removed, and process-wide figures.
std::string format_metrics(const pipeline::Pipeline& pipeline, const StatsHistory& stats);

}  // namespace vapipe::server
