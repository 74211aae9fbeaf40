#include "server/control_api.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "models/face_gallery.hpp"

namespace vapipe::server {
namespace {

using nlohmann::json;
using pipeline::ChannelState;

constexpr std::array<std::string_view, 5> kStageKeys{"decode", "preprocess", "infer", "postprocess",
                                                     "output"};

// "/api/channels/12" -> 12; nullopt for anything else ("/api/channels/x", "/api/channels/1/2").
std::optional<std::size_t> channel_id(const std::string& path, std::string_view prefix) {
  const std::string_view id = std::string_view(path).substr(prefix.size());
  std::size_t value = 0;
  const auto [end, error] = std::from_chars(id.data(), id.data() + id.size(), value);
  if (error != std::errc() || end != id.data() + id.size() || id.empty()) return std::nullopt;
  return value;
}

constexpr std::string_view kChannelPrefix = "/api/channels/";

std::string state_name(const pipeline::Pipeline& pipeline, std::size_t id) {
  const ChannelState state = pipeline.channel_state(id);
  if (state != ChannelState::kRemoved && pipeline.channel_removing(id)) return "removing";
  return pipeline::to_string(state);
}

json stage_json(const ChannelRates& rates) {
  json stages = json::object();
  for (std::size_t i = 0; i < kStageKeys.size(); ++i) stages[std::string(kStageKeys[i])] = rates.stage_ms[i];
  return stages;
}

json rates_json(const ChannelRates& rates) {
  return json{{"id", rates.channel},
              {"fps", rates.fps},
              {"frames", rates.frames},
              {"dropped", rates.dropped},
              {"queue_depth", rates.queue_depth},
              {"stage_ms", stage_json(rates)},
              {"latency_ms", rates.latency_ms},
              {"latency_p50_ms", rates.latency_p50_ms},
              {"latency_p99_ms", rates.latency_p99_ms}};
}

json sample_json(const StatsSample& sample) {
  json channels = json::array();
  for (const auto& rates : sample.channels) channels.push_back(rates_json(rates));
  return json{
      {"time_ms", sample.unix_ms}, {"total_fps", sample.total_fps}, {"channels", std::move(channels)}};
}

// --- /metrics ----------------------------------------------------------------------------------------------

// Label values escape backslash, double quote and newline (exposition format, "Text format details").
std::string escape_label(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

void family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

// Resident memory and CPU time of the process, the standard process_* names of the Prometheus clients.
void process_metrics(std::string& out) {
  long pages = 0, resident = 0;
  if (std::FILE* statm = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(statm, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(statm);
  }
  family(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
  out += fmt::format("process_resident_memory_bytes {}\n", resident * sysconf(_SC_PAGESIZE));
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const double cpu = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                     static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  family(out, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
  out += fmt::format("process_cpu_seconds_total {}\n", cpu);
}

}  // namespace

std::string format_metrics(const pipeline::Pipeline& pipeline, const StatsHistory& stats) {
  struct Row {
    std::size_t id;
    std::string labels;  // channel="0",name="det_0",model="det"
  };
  std::vector<Row> rows;
  for (std::size_t id = 0; id < pipeline.channel_count(); ++id) {
    if (pipeline.channel_state(id) == ChannelState::kRemoved) continue;
    const auto info = pipeline.channel_info(id);
    rows.push_back({id, fmt::format("channel=\"{}\",name=\"{}\",model=\"{}\"", id, escape_label(info.name),
                                    escape_label(info.model))});
  }
  std::string out;
  out.reserve(4096 + rows.size() * 6000);

  family(out, "vapipe_channels", "gauge", "Channels in the run (not removed).");
  out += fmt::format("vapipe_channels {}\n", rows.size());
  const StatsSample latest = stats.latest();
  family(out, "vapipe_fps", "gauge", "Frames output per second by all channels (last 5 s).");
  out += fmt::format("vapipe_fps {}\n", latest.total_fps);
  process_metrics(out);

  family(out, "vapipe_channel_fps", "gauge", "Frames output per second (last 5 s).");
  for (const auto& row : rows)
    out +=
        fmt::format("vapipe_channel_fps{{{}}} {}\n", row.labels, stats.rates(static_cast<int>(row.id)).fps);
  family(out, "vapipe_channel_up", "gauge", "1 while the channel's source is streaming.");
  for (const auto& row : rows)
    out += fmt::format("vapipe_channel_up{{{}}} {}\n", row.labels,
                       pipeline.channel_state(row.id) == ChannelState::kStreaming ? 1 : 0);
  family(out, "vapipe_channel_queue_depth", "gauge", "Events waiting in the channel's output queue.");
  for (const auto& row : rows)
    out += fmt::format("vapipe_channel_queue_depth{{{}}} {}\n", row.labels, pipeline.queue_depth(row.id));

  struct Counter {
    std::string_view name, help;
    const std::atomic<std::uint64_t> pipeline::ChannelCounters::*field;
  };
  static constexpr Counter kCounters[] = {
      {"vapipe_frames_decoded_total", "Frames decoded.", &pipeline::ChannelCounters::decoded},
      {"vapipe_frames_output_total", "Frames through every output of the channel.",
       &pipeline::ChannelCounters::output},
      {"vapipe_frames_inferred_total", "Frames run through the model.", &pipeline::ChannelCounters::inferred},
      {"vapipe_frames_skipped_total", "Frames skipped by skip_frame_num.",
       &pipeline::ChannelCounters::skipped},
      {"vapipe_frames_dropped_total", "Frames dropped (full queue, unreadable pixels, stale).",
       &pipeline::ChannelCounters::dropped},
      {"vapipe_frames_dropped_queue_full_total", "Frames dropped: a live source's full queue.",
       &pipeline::ChannelCounters::dropped_queue_full},
      {"vapipe_frames_dropped_failed_total", "Frames dropped: preprocessing or inference failed.",
       &pipeline::ChannelCounters::dropped_failed},
      {"vapipe_frames_dropped_stale_total",
       "Frames dropped: a live source's frame older than max_latency_ms.",
       &pipeline::ChannelCounters::dropped_stale},
      {"vapipe_decode_errors_total", "Packets the decoder rejected.",
       &pipeline::ChannelCounters::decode_errors},
      {"vapipe_corrupt_frames_total", "Frames decoded with concealed errors (damaged stream).",
       &pipeline::ChannelCounters::corrupt_frames},
      {"vapipe_reconnects_total", "Reconnections of a live source.", &pipeline::ChannelCounters::reconnects},
      {"vapipe_packets_written_total", "Video packets written to the output.",
       &pipeline::ChannelCounters::packets_written},
      {"vapipe_packets_dropped_total", "Video packets the output could not take.",
       &pipeline::ChannelCounters::packets_dropped},
      {"vapipe_results_dropped_total", "Result lines the results file could not take (disk full).",
       &pipeline::ChannelCounters::results_dropped},
  };
  for (const auto& counter : kCounters) {
    family(out, counter.name, "counter", counter.help);
    for (const auto& row : rows) {
      const auto& counters = pipeline.counters(row.id);
      out += fmt::format("{}{{{}}} {}\n", counter.name, row.labels,
                         (counters.*counter.field).load(std::memory_order_relaxed));
    }
  }

  // Stage times as histograms in seconds (the Prometheus base unit); decode..postprocess count inferred
  // frames, output and end_to_end every frame.
  static constexpr std::array<std::string_view, pipeline::kStageCount> kStages{
      "decode", "preprocess", "infer", "postprocess", "output", "end_to_end"};
  static constexpr std::array<const std::atomic<std::uint64_t> pipeline::ChannelCounters::*,
                              pipeline::kStageCount>
      kSums{&pipeline::ChannelCounters::decode_us, &pipeline::ChannelCounters::preprocess_us,
            &pipeline::ChannelCounters::infer_us,  &pipeline::ChannelCounters::postprocess_us,
            &pipeline::ChannelCounters::output_us, &pipeline::ChannelCounters::latency_us};
  family(out, "vapipe_stage_latency_seconds", "histogram",
         "Per-frame time of a stage (end_to_end: decoded to every output done).");
  for (const auto& row : rows) {
    const auto& counters = pipeline.counters(row.id);
    for (std::size_t stage = 0; stage < pipeline::kStageCount; ++stage) {
      const auto& histogram = counters.histograms[stage];
      const std::string labels = fmt::format("{},stage=\"{}\"", row.labels, kStages[stage]);
      std::uint64_t cumulative = 0;
      for (std::size_t b = 0; b < pipeline::kLatencyBucketsMs.size(); ++b) {
        cumulative += histogram.counts[b].load(std::memory_order_relaxed);
        out += fmt::format("vapipe_stage_latency_seconds_bucket{{{},le=\"{}\"}} {}\n", labels,
                           pipeline::kLatencyBucketsMs[b] / 1000.0, cumulative);
      }
      cumulative += histogram.counts.back().load(std::memory_order_relaxed);
      out += fmt::format("vapipe_stage_latency_seconds_bucket{{{},le=\"+Inf\"}} {}\n", labels, cumulative);
      out += fmt::format("vapipe_stage_latency_seconds_sum{{{}}} {}\n", labels,
                         static_cast<double>((counters.*kSums[stage]).load(std::memory_order_relaxed)) / 1e6);
      out += fmt::format("vapipe_stage_latency_seconds_count{{{}}} {}\n", labels, cumulative);
    }
  }
  // The histograms' buckets are too coarse for a latency bound; the exact percentiles of the last frames too.
  family(out, "vapipe_recent_latency_seconds", "gauge",
         "Decoded to every output done: percentile (quantile label) of the channel's last 512 frames.");
  for (const auto& row : rows) {
    const auto [p50, p99] =
        pipeline.counters(row.id).recent_latency.percentiles(std::array<double, 2>{50, 99});
    out += fmt::format("vapipe_recent_latency_seconds{{{},quantile=\"0.5\"}} {}\n", row.labels, p50 / 1000.0);
    out +=
        fmt::format("vapipe_recent_latency_seconds{{{},quantile=\"0.99\"}} {}\n", row.labels, p99 / 1000.0);
  }
  return out;
}

ControlApi::ControlApi(pipeline::Pipeline& pipeline, HttpServer& server)
    : pipeline_(pipeline), stats_(pipeline) {
  server.route("GET", "/api/channels", [this](const HttpRequest& r) { return list_channels(r); });
  server.route("POST", "/api/channels", [this](const HttpRequest& r) { return add_channel(r); });
  server.route("GET", std::string(kChannelPrefix), [this](const HttpRequest& r) { return get_channel(r); });
  server.route("DELETE", std::string(kChannelPrefix),
               [this](const HttpRequest& r) { return remove_channel(r); });
  server.route("GET", "/api/stats", [this](const HttpRequest& r) { return get_stats(r); });
  server.route("GET", "/api/stats/history", [this](const HttpRequest& r) { return get_history(r); });
  server.route("GET", "/metrics", [this](const HttpRequest& r) { return get_metrics(r); });
  server.route("GET", "/api/gallery", [this](const HttpRequest& r) { return gallery(r, false); });
  server.route("POST", "/api/gallery/reload", [this](const HttpRequest& r) { return gallery(r, true); });
}

HttpResponse ControlApi::gallery(const HttpRequest& request, bool reload) {
  // ?model=NAME; without it, the one model with a gallery.
  std::string model;
  if (const auto it = request.query.find("model"); it != request.query.end()) {
    model = it->second;
  } else {
    for (const auto& config : pipeline_.config().models) {
      if (!config.gallery || !pipeline_.gallery(config.name)) continue;
      if (!model.empty())
        return error_response(400, "model: several models have a gallery; say which (?model=NAME)");
      model = config.name;
    }
    if (model.empty()) return error_response(404, "no model of this run has a gallery (models[].gallery)");
  }
  const auto holder = pipeline_.gallery(model);
  if (!holder) return error_response(404, fmt::format("model '{}' has no gallery", model));
  std::shared_ptr<const models::FaceGallery> current;
  try {
    // A reload runs the detector and the embedder on every photo here, on the server's thread (about 20 ms a
    // photo on one core): the caller gets what was loaded and what was skipped in the reply.
    current = reload ? holder->reload() : holder->current();
  } catch (const Error& error) {
    return error_response(409, fmt::format("gallery of model '{}' not reloaded (the previous one stays): {}",
                                           model, error.what()));
  }
  json skipped = json::array();
  for (const auto& s : current->skipped()) skipped.push_back({{"file", s.source}, {"reason", s.reason}});
  return json_response(200, json{{"model", model},
                                 {"folder", current->folder().string()},
                                 {"threshold", holder->threshold()},
                                 {"identities", current->names()},
                                 {"photos", current->entries().size()},
                                 {"skipped", std::move(skipped)}});
}

json ControlApi::channel_json(std::size_t id) const {
  const auto info = pipeline_.channel_info(id);
  const auto& c = pipeline_.counters(id);
  const ChannelRates rates = stats_.rates(static_cast<int>(id));
  json channel{{"id", info.channel},
               {"name", info.name},
               {"model", info.model},
               {"address", info.address},  // credentials redacted by the pipeline
               {"output_mode", pipeline::to_string(info.output_mode)},
               {"state", state_name(pipeline_, id)},
               {"fps", rates.fps},
               {"queue_depth", pipeline_.queue_depth(id)},
               {"counters",
                {{"decoded", c.decoded.load()},
                 {"output", c.output.load()},
                 {"inferred", c.inferred.load()},
                 {"skipped", c.skipped.load()},
                 {"dropped", c.dropped.load()},
                 {"dropped_queue_full", c.dropped_queue_full.load()},
                 {"dropped_failed", c.dropped_failed.load()},
                 {"dropped_stale", c.dropped_stale.load()},
                 {"decode_errors", c.decode_errors.load()},
                 {"corrupt_frames", c.corrupt_frames.load()},
                 {"reconnects", c.reconnects.load()},
                 {"packets_written", c.packets_written.load()},
                 {"packets_dropped", c.packets_dropped.load()},
                 {"results_dropped", c.results_dropped.load()}}},
               // How the keypoints of the records' detections are joined when drawn (the viewer).
               {"skeleton", info.skeleton}};
  if (!info.secondary_classes.empty())
    channel["secondary"] = {{"classes", info.secondary_classes}, {"skeleton", info.secondary_skeleton}};
  return channel;
}

HttpResponse ControlApi::list_channels(const HttpRequest& request) const {
  const bool all = request.query.contains("all") && request.query.at("all") != "0";
  json channels = json::array();
  for (std::size_t id = 0; id < pipeline_.channel_count(); ++id) {
    if (!all && pipeline_.channel_state(id) == ChannelState::kRemoved) continue;
    channels.push_back(channel_json(id));
  }
  return json_response(200, json{{"channels", std::move(channels)}});
}

HttpResponse ControlApi::get_channel(const HttpRequest& request) const {
  const auto id = channel_id(request.path, kChannelPrefix);
  if (!id || *id >= pipeline_.channel_count())
    return error_response(404, fmt::format("no channel '{}'", request.path.substr(kChannelPrefix.size())));
  return json_response(200, channel_json(*id));
}

HttpResponse json_response(int status, const nlohmann::json& body) {
  HttpResponse response;
  response.status = status;
  response.body = body.dump();
  return response;
}

HttpResponse error_response(int status, std::string_view message) {
  return json_response(status, json{{"error", message}});
}

std::optional<pipeline::ChannelRequest> parse_channel_request(std::string_view text, bool allow_name,
                                                              std::string& error) {
  // The config file's parser: a duplicate key is refused here too, never silently "last one wins".
  json body;
  try {
    body = pipeline::parse_json_strict(text, "body");
  } catch (const Error& parse_error) {
    error = parse_error.what();
    return std::nullopt;
  }
  if (!body.is_object()) {
    error = "body: must be a JSON object";
    return std::nullopt;
  }
  pipeline::ChannelRequest channel;
  for (const auto& [key, value] : body.items()) {
    if (key == "address" || key == "model" || (allow_name && key == "name")) {
      if (!value.is_string()) {
        error = fmt::format("{}: must be a string", key);
        return std::nullopt;
      }
      (key == "address" ? channel.address
       : key == "model" ? channel.model
                        : channel.name) = value.get<std::string>();
    } else if (key == "loop" || key == "pace") {
      if (!value.is_boolean()) {
        error = fmt::format("{}: must be true or false", key);
        return std::nullopt;
      }
      (key == "loop" ? channel.loop : channel.pace) = value.get<bool>();
    } else if (key == "rtsp_transport") {
      const std::string transport = value.is_string() ? value.get<std::string>() : std::string();
      if (transport != "tcp" && transport != "udp") {
        error = "rtsp_transport: must be \"tcp\" or \"udp\"";
        return std::nullopt;
      }
      channel.rtsp_transport =
          transport == "udp" ? pipeline::RtspTransport::kUdp : pipeline::RtspTransport::kTcp;
    } else {
      error = fmt::format("{}: unknown key (known: address, model, loop, pace, rtsp_transport{})", key,
                          allow_name ? ", name" : "");
      return std::nullopt;
    }
  }
  if (!body.contains("address")) {
    error = "address: required";
    return std::nullopt;
  }
  if (!body.contains("model")) {
    error = "model: required";
    return std::nullopt;
  }
  return channel;
}

HttpResponse ControlApi::add_channel(const HttpRequest& request) {
  std::string problem;
  const auto parsed = parse_channel_request(request.body, false, problem);
  if (!parsed) return error_response(400, problem);
  const pipeline::ChannelRequest& channel = *parsed;
  int id = 0;
  try {
    id = pipeline_.add_channel(channel);
  } catch (const Error& error) {
    const std::string_view message = error.what();
    return error_response(message.starts_with("pipeline: ") ? 409 : 400, message);
  }
  HttpResponse response = json_response(201, channel_json(static_cast<std::size_t>(id)));
  response.headers["location"] = fmt::format("{}{}", kChannelPrefix, id);
  return response;
}

HttpResponse ControlApi::remove_channel(const HttpRequest& request) {
  const auto id = channel_id(request.path, kChannelPrefix);
  if (!id || *id >= pipeline_.channel_count())
    return error_response(404, fmt::format("no channel '{}'", request.path.substr(kChannelPrefix.size())));
  try {
    if (!pipeline_.remove_channel(static_cast<int>(*id)))
      return error_response(409, fmt::format("channel {} is already removed", *id));
  } catch (const Error& error) {
    return error_response(409, error.what());
  }
  // 202: the channel drains (its last frames go through the model and the outputs) after this returns.
  return json_response(202, channel_json(*id));
}

HttpResponse ControlApi::get_stats(const HttpRequest&) const {
  return json_response(200, sample_json(stats_.latest()));
}

HttpResponse ControlApi::get_history(const HttpRequest& request) const {
  std::size_t seconds = kHistorySamples;
  if (const auto it = request.query.find("seconds"); it != request.query.end()) {
    const auto [end, error] =
        std::from_chars(it->second.data(), it->second.data() + it->second.size(), seconds);
    if (error != std::errc() || end != it->second.data() + it->second.size() || seconds == 0)
      return error_response(400, fmt::format("seconds: '{}' is not a positive integer", it->second));
  }
  json samples = json::array();
  for (const auto& sample : stats_.history(seconds)) samples.push_back(sample_json(sample));
  return json_response(200, json{{"interval_ms", kSampleInterval.count()}, {"samples", std::move(samples)}});
}

HttpResponse ControlApi::get_metrics(const HttpRequest&) const {
  HttpResponse response;
  response.content_type = "text/plain; version=0.0.4; charset=utf-8";
  response.body = format_metrics(pipeline_, stats_);
  return response;
}

}  // namespace vapipe::server
