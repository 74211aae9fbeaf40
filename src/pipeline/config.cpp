#include "pipeline/config.hpp"

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <system_error>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "io/ffmpeg_handles.hpp"
#include "models/task.hpp"

namespace vapipe::pipeline {
namespace {

using nlohmann::json;

std::string child(std::string_view path, std::string_view key) {
  return path.empty() ? std::string(key) : fmt::format("{}.{}", path, key);
}
std::string element(std::string_view path, std::size_t index) { return fmt::format("{}[{}]", path, index); }

// How a wrong value is shown after "got": JSON text for scalars (strings quoted), kind for containers.
std::string describe(const json& value) {
  if (value.is_object()) return "an object";
  if (value.is_array()) return "an array";
  std::string text = value.dump();
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

std::string join_keys(std::span<const std::string_view> keys) {
  std::string out;
  for (const auto key : keys) {
    if (!out.empty()) out += ", ";
    out += key;
  }
  return out;
}

// Validating reads; every error names the source and the key path.
class Reader {
 public:
  explicit Reader(std::string_view source) : source_(source) {}

  template <typename... Args>
  [[noreturn]] void error(std::string_view path, fmt::format_string<Args...> format, Args&&... args) const {
    const std::string what = fmt::format(format, std::forward<Args>(args)...);
    if (path.empty()) fail("{}: {}", source_, what);
    fail("{}: {}: {}", source_, path, what);
  }

  const json& object(const json& value, std::string_view path,
                     std::span<const std::string_view> allowed) const {
    if (!value.is_object()) error(path, "expected an object, got {}", describe(value));
    for (const auto& [key, unused] : value.items()) {
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        error(child(path, key), "unknown key (allowed here: {})", join_keys(allowed));
      }
    }
    return value;
  }

  const json& array(const json& value, std::string_view path, bool non_empty) const {
    if (!value.is_array()) error(path, "expected an array, got {}", describe(value));
    if (non_empty && value.empty()) error(path, "expected a non-empty array");
    return value;
  }

  const json& required(const json& object, std::string_view path, std::string_view key) const {
    const auto it = object.find(key);
    if (it == object.end()) error(child(path, key), "required key is missing");
    return *it;
  }
  static const json* optional(const json& object, std::string_view key) {
    const auto it = object.find(key);
    return it == object.end() ? nullptr : &*it;
  }

  int integer(const json& value, std::string_view path, std::int64_t min, std::int64_t max) const {
    bool ok = false;
    std::int64_t v = 0;
    if (value.is_number_unsigned()) {
      const auto u = value.get<std::uint64_t>();
      ok = u <= static_cast<std::uint64_t>(max);
      v = ok ? static_cast<std::int64_t>(u) : 0;
    } else if (value.is_number_integer()) {
      v = value.get<std::int64_t>();
      ok = true;
    }
    if (!ok || v < min || v > max)
      error(path, "expected an integer in [{}, {}], got {}", min, max, describe(value));
    return static_cast<int>(v);
  }

  float number(const json& value, std::string_view path, double min, double max) const {
    if (!value.is_number() || value.get<double>() < min || value.get<double>() > max) {
      error(path, "expected a number in [{}, {}], got {}", min, max, describe(value));
    }
    return value.get<float>();
  }

  std::string string(const json& value, std::string_view path) const {
    if (!value.is_string()) error(path, "expected a string, got {}", describe(value));
    auto text = value.get<std::string>();
    if (text.empty()) error(path, "expected a non-empty string");
    return text;
  }

  bool boolean(const json& value, std::string_view path) const {
    if (!value.is_boolean()) error(path, "expected true or false, got {}", describe(value));
    return value.get<bool>();
  }

  template <typename Enum, std::size_t N>
  Enum choice(const json& value, std::string_view path,
              const std::array<std::pair<std::string_view, Enum>, N>& choices) const {
    if (value.is_string()) {
      const auto text = value.get<std::string>();
      for (const auto& [name, e] : choices) {
        if (text == name) return e;
      }
    }
    std::string names;
    for (const auto& [name, e] : choices) names += fmt::format("{}\"{}\"", names.empty() ? "" : " | ", name);
    error(path, "expected one of {}, got {}", names, describe(value));
  }

 private:
  std::string_view source_;
};

constexpr std::array<std::pair<std::string_view, OutputMode>, 3> kOutputModes{{
    {"passthrough", OutputMode::kPassthrough},
    {"annotated", OutputMode::kAnnotated},
    {"results", OutputMode::kResults},
}};
constexpr std::array<std::pair<std::string_view, RtspTransport>, 2> kTransports{{
    {"tcp", RtspTransport::kTcp},
    {"udp", RtspTransport::kUdp},
}};

// sophon-pipeline's model_type names (examples/yolov5/yolov5s.cpp matches by prefix: yolov5*, yolov6*, yolov7*
// decode as YOLOv5, yolov8* as YOLOv8) plus our Yolo-FastestV2.
constexpr std::array<std::pair<std::string_view, std::string_view>, 8> kModelTypePrefixes{{
    {"yolov5", "yolov5"},
    {"yolov6", "yolov5"},
    {"yolov7", "yolov5"},
    {"yolov8", "yolov8"},
    {"yolofastestv2", "yolofastestv2"},
    {"yolo-fastestv2", "yolofastestv2"},
    // PP-YOLOE's head is a GFL head (docs/postprocessing.md, "GFL": which exports decode).
    {"ppyoloe", "gfl"},
    {"nanodet", "gfl"},
}};

// sophon-pipeline's model_type names of the jobs a task of models/tasks/ does with another network, by prefix:
// its YOLACT demo (yolact_base, yolact_im700, ...) segments instances, which YOLOv8-seg does.
constexpr std::array<std::pair<std::string_view, std::string_view>, 1> kTaskModelTypePrefixes{{
    {"yolact", "yolov8-seg"},
}};

StageConfig parse_stage(const Reader& r, const json& value, const std::string& path) {
  static constexpr std::array<std::string_view, 3> kKeys{"thread_num", "queue_size", "blocking"};
  r.object(value, path, kKeys);
  StageConfig stage;
  stage.thread_num = r.integer(r.required(value, path, "thread_num"), child(path, "thread_num"), 1, 64);
  stage.queue_size = r.integer(r.required(value, path, "queue_size"), child(path, "queue_size"), 1, 4096);
  if (const auto* v = Reader::optional(value, "blocking"))
    stage.blocking = r.boolean(*v, child(path, "blocking"));
  return stage;
}

// sophon-pipeline's configs ship "output_path": "output_path", and its worker treats anything that does not
// start with rtsp://, udp:// or tcp:// as "no output". vapipe also writes files, chosen by their extension:
// a value with neither a scheme nor an extension (nor an output_format) cannot name one, so it is taken as
// that placeholder rather than refused.
bool is_output_placeholder(const std::string& value) {
  return value.find("://") == std::string::npos && !std::filesystem::path(value).has_extension();
}

ModelConfig parse_model(const Reader& r, const json& value, const std::string& path) {
  static constexpr std::array<std::string_view, 18> kKeys{"name",
                                                          "path",
                                                          "model_type",
                                                          "skip_frame_num",
                                                          "output_path",
                                                          "output_format",
                                                          "obj_threshold",
                                                          "nms_threshold",
                                                          "class_threshold",
                                                          "class_num",
                                                          "class_thresholds",
                                                          "batch_timeout_ms",
                                                          "max_latency_ms",
                                                          "output_mode",
                                                          "results_path",
                                                          "gallery",
                                                          "recognition_threshold",
                                                          "secondary"};
  r.object(value, path, kKeys);
  ModelConfig model;
  model.name = r.string(r.required(value, path, "name"), child(path, "name"));
  model.path = r.string(r.required(value, path, "path"), child(path, "path"));
  if (const auto* v = Reader::optional(value, "model_type")) {
    std::string type = r.string(*v, child(path, "model_type"));
    std::transform(type.begin(), type.end(), type.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (model_family(type).empty()) {
      std::string tasks;
      for (const models::TaskKind* kind : models::task_kinds())
        tasks += fmt::format(", {}", kind->model_type);
      r.error(child(path, "model_type"),
              "unsupported model type {} (supported: yolov5*, yolov6*, yolov7* (YOLOv5 head), yolov8*, "
              "yolofastestv2, yolact* (yolov8-seg){})",
              describe(*v), tasks);
    }
    model.model_type = type;
  }
  if (const auto* v = Reader::optional(value, "skip_frame_num")) {
    model.skip_frame_num = r.integer(*v, child(path, "skip_frame_num"), 0, 1000);
  }
  if (const auto* v = Reader::optional(value, "output_path"))
    model.output_path = r.string(*v, child(path, "output_path"));
  if (const auto* v = Reader::optional(value, "output_format")) {
    model.output_format = r.string(*v, child(path, "output_format"));
    if (av_guess_format(model.output_format->c_str(), nullptr, nullptr) == nullptr) {
      r.error(child(path, "output_format"),
              "\"{}\" is not an FFmpeg muxer (e.g. \"mpegts\", \"h264\", \"mp4\")", *model.output_format);
    }
  }
  if (model.output_path && !model.output_format && is_output_placeholder(*model.output_path)) {
    model.ignored_output_path = std::move(model.output_path);
    model.output_path.reset();
  }
  // Which of obj/class_threshold a model reads depends on its kind: required here when model_type names a
  // YOLO head, else checked when the package is loaded (ModelConfig::check_thresholds_for).
  const bool yolo_type = model.model_type && !models::find_task(model_family(*model.model_type));
  auto optional_threshold = [&](std::string_view key) -> std::optional<float> {
    const json* v = yolo_type ? &r.required(value, path, key) : Reader::optional(value, key);
    if (v == nullptr) return std::nullopt;
    return static_cast<float>(r.number(*v, child(path, key), 0.0, 1.0));
  };
  model.obj_threshold = optional_threshold("obj_threshold");
  model.nms_threshold =
      r.number(r.required(value, path, "nms_threshold"), child(path, "nms_threshold"), 0.0, 1.0);
  model.class_threshold = optional_threshold("class_threshold");
  if (const auto* v = Reader::optional(value, "class_num"))
    model.class_num = r.integer(*v, child(path, "class_num"), 1, 100000);
  if (const auto* v = Reader::optional(value, "class_thresholds")) {
    const std::string key = child(path, "class_thresholds");
    if (v->is_array()) {
      for (std::size_t i = 0; i < v->size(); ++i)
        model.class_thresholds.push_back(r.number((*v)[i], element(key, i), 0.0, 1.0));
      if (model.class_num && model.class_thresholds.size() > static_cast<std::size_t>(*model.class_num)) {
        r.error(key, "has {} entries but class_num is {}", model.class_thresholds.size(), *model.class_num);
      }
    } else if (v->is_object()) {
      for (const auto& [name, threshold] : v->items()) {
        if (name.empty()) r.error(key, "class names must not be empty");
        model.class_thresholds_by_name.emplace_back(name, r.number(threshold, child(key, name), 0.0, 1.0));
      }
    } else {
      r.error(key,
              "expected an array of numbers (by class id) or an object {{\"class name\": number}}, got {}",
              describe(*v));
    }
  }
  if (const auto* v = Reader::optional(value, "batch_timeout_ms")) {
    model.batch_timeout_ms = r.integer(*v, child(path, "batch_timeout_ms"), 0, 10000);
  }
  if (const auto* v = Reader::optional(value, "max_latency_ms")) {
    model.max_latency_ms = r.integer(*v, child(path, "max_latency_ms"), 0, 600000);
  }
  const json* mode = Reader::optional(value, "output_mode");
  if (mode != nullptr) model.output_mode = r.choice(*mode, child(path, "output_mode"), kOutputModes);
  model.output_mode_given = mode != nullptr;
  if (const auto* v = Reader::optional(value, "results_path"))
    model.results_path = r.string(*v, child(path, "results_path"));
  if (const auto* v = Reader::optional(value, "gallery"))
    model.gallery = r.string(*v, child(path, "gallery"));
  if (const auto* v = Reader::optional(value, "recognition_threshold")) {
    model.recognition_threshold =
        static_cast<float>(r.number(*v, child(path, "recognition_threshold"), -1.0, 1.0));
    if (!model.gallery)
      r.error(child(path, "recognition_threshold"),
              "is used only with \"gallery\" (a folder of known faces)");
  }
  if (const auto* v = Reader::optional(value, "secondary")) {
    const std::string key = child(path, "secondary");
    const json& list = r.array(*v, key, true);
    if (list.size() > 1)
      r.error(key, "has {} entries; one network runs on a model's objects for now", list.size());
    const std::string entry = element(key, 0);
    static constexpr std::array<std::string_view, 3> kSecondaryKeys{"model", "classes", "max_objects"};
    r.object(list[0], entry, kSecondaryKeys);
    SecondaryConfig secondary;
    secondary.model = r.string(r.required(list[0], entry, "model"), child(entry, "model"));
    if (const auto* classes = Reader::optional(list[0], "classes")) {
      const std::string classes_key = child(entry, "classes");
      const json& names = r.array(*classes, classes_key, true);
      for (std::size_t i = 0; i < names.size(); ++i)
        secondary.classes.push_back(r.string(names[i], element(classes_key, i)));
    }
    if (const auto* max = Reader::optional(list[0], "max_objects"))
      secondary.max_objects = r.integer(*max, child(entry, "max_objects"), 1, 256);
    model.secondary = std::move(secondary);
  }
  if (model.output_mode == OutputMode::kResults && !model.results_path) {
    r.error(child(path, "output_mode"), "\"results\" needs results_path");
  }
  if (model.output_mode == OutputMode::kResults && model.output_path) {
    r.error(child(path, "output_path"),
            "not used with output_mode \"results\" (remove it or pick another mode)");
  }
  return model;
}

CameraConfig parse_camera(const Reader& r, const json& value, const std::string& path,
                          const std::vector<ModelConfig>& models) {
  static constexpr std::array<std::string_view, 7> kKeys{
      "address", "chan_num", "model_names", "loop", "pace", "rtsp_transport", "skip_loop_filter"};
  r.object(value, path, kKeys);
  CameraConfig camera;
  camera.address = r.string(r.required(value, path, "address"), child(path, "address"));
  if (const auto problem = address_problem(camera.address)) r.error(child(path, "address"), "{}", *problem);
  camera.chan_num = r.integer(r.required(value, path, "chan_num"), child(path, "chan_num"), 1, 256);
  const std::string names_path = child(path, "model_names");
  const json& names = r.array(r.required(value, path, "model_names"), names_path, true);
  for (std::size_t i = 0; i < names.size(); ++i) {
    const std::string name_path = element(names_path, i);
    std::string name = r.string(names[i], name_path);
    if (std::find(camera.model_names.begin(), camera.model_names.end(), name) != camera.model_names.end()) {
      r.error(name_path, "model \"{}\" is listed twice", name);
    }
    if (std::none_of(models.begin(), models.end(), [&](const ModelConfig& m) { return m.name == name; })) {
      std::string known;
      for (const auto& m : models) known += fmt::format("{}\"{}\"", known.empty() ? "" : ", ", m.name);
      r.error(name_path, "unknown model \"{}\" (models[] has {})", name, known);
    }
    camera.model_names.push_back(std::move(name));
  }
  if (const auto* v = Reader::optional(value, "loop")) camera.loop = r.boolean(*v, child(path, "loop"));
  if (const auto* v = Reader::optional(value, "pace")) camera.pace = r.boolean(*v, child(path, "pace"));
  if (const auto* v = Reader::optional(value, "skip_loop_filter"))
    camera.skip_loop_filter = r.boolean(*v, child(path, "skip_loop_filter"));
  if (const auto* v = Reader::optional(value, "rtsp_transport")) {
    camera.rtsp_transport = r.choice(*v, child(path, "rtsp_transport"), kTransports);
  }
  return camera;
}

MosaicConfig parse_mosaic(const Reader& r, const json& value) {
  static constexpr std::array<std::string_view, 10> kKeys{
      "name", "channels",   "columns",     "tile_width",    "tile_height",
      "fps",  "tile_scale", "output_path", "output_format", "results_path"};
  r.object(value, "mosaic", kKeys);
  MosaicConfig mosaic;
  if (const auto* v = Reader::optional(value, "name")) {
    mosaic.name = r.string(*v, "mosaic.name");
    // The RTSP mount path: one URL path segment.
    if (mosaic.name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") !=
        std::string::npos)
      r.error("mosaic.name", "\"{}\": only letters, digits, '_', '-' and '.' (it is the RTSP path)",
              mosaic.name);
  }
  if (const auto* v = Reader::optional(value, "channels")) {
    const json& list = r.array(*v, "mosaic.channels", true);
    for (std::size_t i = 0; i < list.size(); ++i) {
      const int id = r.integer(list[i], element("mosaic.channels", i), 0, 65535);
      if (std::find(mosaic.channels.begin(), mosaic.channels.end(), id) != mosaic.channels.end())
        r.error(element("mosaic.channels", i), "channel {} is listed twice", id);
      mosaic.channels.push_back(id);
    }
  }
  if (const auto* v = Reader::optional(value, "columns"))
    mosaic.columns = r.integer(*v, "mosaic.columns", 1, 16);
  if (const auto* v = Reader::optional(value, "tile_width"))
    mosaic.tile_width = r.integer(*v, "mosaic.tile_width", 16, 4096);
  if (const auto* v = Reader::optional(value, "tile_height"))
    mosaic.tile_height = r.integer(*v, "mosaic.tile_height", 16, 4096);
  if (mosaic.tile_width.has_value() != mosaic.tile_height.has_value())
    r.error(mosaic.tile_width ? "mosaic.tile_height" : "mosaic.tile_width",
            "required with {} (a tile size is both or neither)",
            mosaic.tile_width ? "mosaic.tile_width" : "mosaic.tile_height");
  if (const auto* v = Reader::optional(value, "tile_scale")) {
    mosaic.tile_scale = r.number(*v, "mosaic.tile_scale", 0.05, 4.0);
    if (mosaic.tile_width) r.error("mosaic.tile_scale", "is not used with tile_width/tile_height");
  }
  if (const auto* v = Reader::optional(value, "fps")) mosaic.fps = r.number(*v, "mosaic.fps", 0.5, 120.0);
  if (const auto* v = Reader::optional(value, "output_path"))
    mosaic.output_path = r.string(*v, "mosaic.output_path");
  if (const auto* v = Reader::optional(value, "output_format")) {
    mosaic.output_format = r.string(*v, "mosaic.output_format");
    if (av_guess_format(mosaic.output_format->c_str(), nullptr, nullptr) == nullptr)
      r.error("mosaic.output_format", "\"{}\" is not an FFmpeg muxer (e.g. \"mpegts\", \"h264\", \"mp4\")",
              *mosaic.output_format);
  }
  if (const auto* v = Reader::optional(value, "results_path"))
    mosaic.results_path = r.string(*v, "mosaic.results_path");
  return mosaic;
}

// sophon-pipeline's video_stitch demo, as examples/video_stitch/main.cpp runs it whatever its config says:
// total_num = 4 channels spread over the cards (4 / cards each, the first 4 % cards one more), card c's
// channel i reading that card's i % n-th address (addresses expanded by chan_num and model_names, as
// configuration.h lists them), the first (by name) model's skip_frame_num setting the encoder's
// 25 / (skip + 1) fps, one 1920x1080 picture for its 1080p camera (here: the first camera's size, tiles at
// half of it) served by live555 at rtsp://<host>:<554, else 1554 + 10 k>/bitmain.
void apply_video_stitch_demo(PipelineConfig& config) {
  constexpr int kTotal = 4;
  const int cards = static_cast<int>(config.cards.size());
  for (int c = 0; c < cards; ++c) {
    CardConfig& card = config.cards[static_cast<std::size_t>(c)];
    const int share = kTotal / cards + (c < kTotal % cards ? 1 : 0);
    std::vector<std::pair<std::size_t, std::string>> urls;  // (camera, model) per configured channel
    for (std::size_t k = 0; k < card.cameras.size(); ++k)
      for (const auto& model : card.cameras[k].model_names)
        for (int j = 0; j < card.cameras[k].chan_num; ++j) urls.emplace_back(k, model);
    std::vector<CameraConfig> cameras;
    for (int i = 0; i < share && !urls.empty(); ++i) {
      const auto& [camera, model] = urls[static_cast<std::size_t>(i) % urls.size()];
      CameraConfig one = card.cameras[camera];
      one.chan_num = 1;
      one.model_names = {model};
      cameras.push_back(std::move(one));
    }
    card.cameras = std::move(cameras);
  }
  std::string first_model;
  for (const auto& camera : config.cards.front().cameras)
    for (const auto& model : camera.model_names)
      if (first_model.empty() || model < first_model) first_model = model;
  const ModelConfig* model = config.find_model(first_model);
  MosaicConfig mosaic;
  mosaic.name = "bitmain";
  mosaic.tile_scale = 0.5;
  mosaic.fps = 25.0 / (model != nullptr ? model->skip_frame_num + 1 : 1);
  mosaic.from_demo = true;
  config.mosaic = std::move(mosaic);
  if (!config.rtsp_server) {
    RtspServerConfig server;
    server.port = 554;
    for (int i = 0; i < 100; ++i) server.other_ports.push_back(1554 + 10 * i);
    config.rtsp_server = std::move(server);
  }
}

// nlohmann::json keeps the last of duplicate keys silently; a config with two "obj_threshold" is a mistake,
// so the parser callback tracks the key path and rejects duplicates.
class DuplicateKeyCheck {
 public:
  explicit DuplicateKeyCheck(const Reader& reader) : reader_(reader) {}
  bool operator()(int /*depth*/, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (!frames_.empty() && frames_.back().is_array) ++frames_.back().index;
        frames_.push_back(Frame{event == json::parse_event_t::array_start, -1, {}, {}});
        break;
      case json::parse_event_t::key: {
        Frame& frame = frames_.back();
        frame.key = parsed.get<std::string>();
        if (!frame.keys.insert(frame.key).second) reader_.error(path(), "duplicate key");
        break;
      }
      case json::parse_event_t::value:
        if (!frames_.empty() && frames_.back().is_array) ++frames_.back().index;
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        frames_.pop_back();
        break;
    }
    return true;
  }

 private:
  struct Frame {
    bool is_array = false;
    long index = -1;
    std::string key;
    std::set<std::string> keys;
  };
  std::string path() const {
    std::string out;
    for (const Frame& frame : frames_) {
      out = frame.is_array ? element(out, static_cast<std::size_t>(frame.index)) : child(out, frame.key);
    }
    return out;
  }
  const Reader& reader_;
  std::vector<Frame> frames_;
};

}  // namespace

json parse_json_strict(std::string_view text, std::string_view source_name) {
  const Reader r(source_name);
  try {
    DuplicateKeyCheck check(r);
    return json::parse(text, std::ref(check));
  } catch (const json::exception& e) {
    // e.what() reads "[json.exception.parse_error.101] parse error at line L, column C: ...", or
    // "[json.exception.out_of_range.406] number overflow parsing '1e400'" (found by fuzz/config_fuzzer).
    std::string what = e.what();
    if (const auto pos = what.find("] "); pos != std::string::npos) what = what.substr(pos + 2);
    r.error("", "not valid JSON: {}", what);
  }
}

std::optional<std::string> address_problem(std::string_view address) {
  for (std::size_t i = 0; i < address.size(); ++i) {
    const auto c = static_cast<unsigned char>(address[i]);
    // C0 and DEL, and C1 (U+0080..U+009F, UTF-8 0xc2 0x80..0x9f) which some terminals obey like ESC '['.
    const bool c1 = c == 0xc2 && i + 1 < address.size() &&
                    static_cast<unsigned char>(address[i + 1]) <= 0x9f &&
                    static_cast<unsigned char>(address[i + 1]) >= 0x80;
    if (c < 0x20 || c == 0x7f || c1) {
      return fmt::format("control character {} at byte {} (not part of any camera address or file name)",
                         c1 ? fmt::format("U+{:04X}", static_cast<unsigned char>(address[i + 1]))
                            : fmt::format("U+{:04X}", c),
                         i);
    }
  }
  std::string scheme(address.substr(0, std::min<std::size_t>(address.size(), 5)));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (scheme == "file:")
    return "a file: URL is not supported: give the file as a path (\"/videos/a.mp4\", not "
           "\"file:///videos/a.mp4\")";
  return std::nullopt;
}

models::ScoreThresholds ModelConfig::score_thresholds(std::span<const std::string> class_names,
                                                      bool task_model,
                                                      const models::ScoreThresholds& defaults) const {
  models::ScoreThresholds thresholds;
  if (task_model) {
    thresholds.conf_threshold = obj_threshold.value_or(class_threshold.value_or(defaults.conf_threshold));
    thresholds.obj_threshold = 0.0f;
  } else {
    thresholds.conf_threshold = class_threshold.value_or(defaults.conf_threshold);
    thresholds.obj_threshold = obj_threshold.value_or(defaults.obj_threshold);
  }
  thresholds.per_class = class_thresholds;
  if (!class_thresholds_by_name.empty()) {
    thresholds.per_class.assign(class_names.size(), thresholds.conf_threshold);
    for (const auto& [class_name, threshold] : class_thresholds_by_name) {
      const auto it = std::find(class_names.begin(), class_names.end(), class_name);
      if (it == class_names.end()) {
        fail("model \"{}\": class_thresholds: the model has no class \"{}\"", name, class_name);
      }
      thresholds.per_class[static_cast<std::size_t>(it - class_names.begin())] = threshold;
    }
  }
  return thresholds;
}

void ModelConfig::check_thresholds_for(std::string_view network_type, std::string_view key_path) const {
  if (models::find_task(network_type) != nullptr) return;  // tasks fall back to their defaults
  for (const auto& [key, given] : {std::pair{"obj_threshold", obj_threshold.has_value()},
                                   std::pair{"class_threshold", class_threshold.has_value()}}) {
    if (!given)
      fail("{}.{}: required key is missing (the model '{}' is a {} network, which reads it)", key_path, key,
           path, network_type);
  }
}

const ModelConfig* PipelineConfig::find_model(std::string_view name) const {
  const auto it =
      std::find_if(models.begin(), models.end(), [&](const ModelConfig& m) { return m.name == name; });
  return it == models.end() ? nullptr : &*it;
}

PipelineConfig parse_config(std::string_view json_text, std::string_view source_name) {
  const Reader r(source_name);
  if (json_text.size() > kMaxConfigBytes) {
    r.error("", "{} bytes is more than a config may have ({} bytes)", json_text.size(), kMaxConfigBytes);
  }
  const json root = parse_json_strict(json_text, source_name);

  static constexpr std::array<std::string_view, 8> kRootKeys{"cards", "pipeline",    "models", "stats",
                                                             "http",  "rtsp_server", "mqtt",   "mosaic"};
  r.object(root, "", kRootKeys);
  PipelineConfig config;

  // Models first: cameras refer to them.
  const json& models = r.array(r.required(root, "", "models"), "models", true);
  for (std::size_t i = 0; i < models.size(); ++i) {
    const std::string path = element("models", i);
    ModelConfig model = parse_model(r, models[i], path);
    for (std::size_t j = 0; j < config.models.size(); ++j) {
      if (config.models[j].name == model.name) {
        r.error(child(path, "name"), "duplicate model name \"{}\" (also models[{}].name)", model.name, j);
      }
    }
    config.models.push_back(std::move(model));
  }

  const json& cards = r.array(r.required(root, "", "cards"), "cards", true);
  for (std::size_t i = 0; i < cards.size(); ++i) {
    static constexpr std::array<std::string_view, 2> kCardKeys{"devid", "cameras"};
    const std::string path = element("cards", i);
    r.object(cards[i], path, kCardKeys);
    CardConfig card;
    card.devid = r.integer(r.required(cards[i], path, "devid"), child(path, "devid"), 0, 255);
    const std::string cameras_path = child(path, "cameras");
    const json& cameras = r.array(r.required(cards[i], path, "cameras"), cameras_path, true);
    for (std::size_t j = 0; j < cameras.size(); ++j) {
      card.cameras.push_back(parse_camera(r, cameras[j], element(cameras_path, j), config.models));
    }
    config.cards.push_back(std::move(card));
  }

  if (const auto* pipeline = Reader::optional(root, "pipeline")) {
    static constexpr std::array<std::string_view, 3> kStageKeys{"preprocess", "inference", "postprocess"};
    r.object(*pipeline, "pipeline", kStageKeys);
    if (const auto* v = Reader::optional(*pipeline, "preprocess"))
      config.preprocess = parse_stage(r, *v, "pipeline.preprocess");
    if (const auto* v = Reader::optional(*pipeline, "inference"))
      config.inference = parse_stage(r, *v, "pipeline.inference");
    if (const auto* v = Reader::optional(*pipeline, "postprocess")) {
      config.postprocess = parse_stage(r, *v, "pipeline.postprocess");
    }
  }

  if (const auto* stats = Reader::optional(root, "stats")) {
    static constexpr std::array<std::string_view, 2> kStatsKeys{"interval_ms", "table"};
    r.object(*stats, "stats", kStatsKeys);
    if (const auto* v = Reader::optional(*stats, "interval_ms")) {
      config.stats.interval_ms = r.integer(*v, "stats.interval_ms", 100, 3600000);
    }
    if (const auto* v = Reader::optional(*stats, "table")) config.stats.table = r.boolean(*v, "stats.table");
  }

  if (const auto* http = Reader::optional(root, "http")) {
    static constexpr std::array<std::string_view, 7> kHttpKeys{
        "bind", "port", "token", "web_root", "allowed_hosts", "max_connections", "max_connections_per_peer"};
    r.object(*http, "http", kHttpKeys);
    HttpConfig section;
    if (const auto* v = Reader::optional(*http, "bind")) section.bind = r.string(*v, "http.bind");
    if (const auto* v = Reader::optional(*http, "port")) section.port = r.integer(*v, "http.port", 0, 65535);
    if (const auto* v = Reader::optional(*http, "token")) section.token = r.string(*v, "http.token");
    if (const auto* v = Reader::optional(*http, "web_root")) section.web_root = r.string(*v, "http.web_root");
    if (const auto* v = Reader::optional(*http, "allowed_hosts")) {
      const json& names = r.array(*v, "http.allowed_hosts", false);
      for (std::size_t i = 0; i < names.size(); ++i)
        section.allowed_hosts.push_back(r.string(names[i], element("http.allowed_hosts", i)));
    }
    if (const auto* v = Reader::optional(*http, "max_connections"))
      section.max_connections = r.integer(*v, "http.max_connections", 1, 100000);
    if (const auto* v = Reader::optional(*http, "max_connections_per_peer"))
      section.max_connections_per_peer = r.integer(*v, "http.max_connections_per_peer", 1, 100000);
    if (!is_loopback_address(section.bind) && !section.token) {
      r.error("http.token",
              "required when http.bind ({}) is not a loopback address: the control API can add "
              "and remove cameras",
              section.bind);
    }
    config.http = std::move(section);
  }

  if (const auto* rtsp = Reader::optional(root, "rtsp_server")) {
    static constexpr std::array<std::string_view, 2> kRtspKeys{"bind", "port"};
    r.object(*rtsp, "rtsp_server", kRtspKeys);
    RtspServerConfig section;
    if (const auto* v = Reader::optional(*rtsp, "bind")) section.bind = r.string(*v, "rtsp_server.bind");
    if (const auto* v = Reader::optional(*rtsp, "port"))
      section.port = r.integer(*v, "rtsp_server.port", 0, 65535);
    config.rtsp_server = std::move(section);
  }

  if (const auto* mqtt = Reader::optional(root, "mqtt")) {
    static constexpr std::array<std::string_view, 8> kMqttKeys{
        "host", "port", "topic", "qos", "client_id", "username", "password", "keepalive_s"};
    r.object(*mqtt, "mqtt", kMqttKeys);
    MqttConfig section;
    section.host = r.string(r.required(*mqtt, "mqtt", "host"), "mqtt.host");
    if (const auto* v = Reader::optional(*mqtt, "port")) section.port = r.integer(*v, "mqtt.port", 1, 65535);
    if (const auto* v = Reader::optional(*mqtt, "topic")) {
      section.topic = r.string(*v, "mqtt.topic");
      if (section.topic.find_first_of("+#") != std::string::npos)
        r.error("mqtt.topic", "wildcards (+, #) cannot be published to, got \"{}\"", section.topic);
    }
    if (const auto* v = Reader::optional(*mqtt, "qos")) section.qos = r.integer(*v, "mqtt.qos", 0, 2);
    if (const auto* v = Reader::optional(*mqtt, "client_id"))
      section.client_id = r.string(*v, "mqtt.client_id");
    if (const auto* v = Reader::optional(*mqtt, "username")) section.username = r.string(*v, "mqtt.username");
    if (const auto* v = Reader::optional(*mqtt, "password")) section.password = r.string(*v, "mqtt.password");
    if (section.password && !section.username) {
      r.error("mqtt.password", "needs mqtt.username (MQTT sends a password only with a user name)");
    }
    if (const auto* v = Reader::optional(*mqtt, "keepalive_s"))
      section.keepalive_s = r.integer(*v, "mqtt.keepalive_s", 5, 3600);
    config.mqtt = std::move(section);
  }

  if (const auto* mosaic = Reader::optional(root, "mosaic")) {
    config.mosaic = parse_mosaic(r, *mosaic);
    std::size_t channels = 0;
    for (const auto& card : config.cards)
      for (const auto& camera : card.cameras)
        channels += camera.model_names.size() * static_cast<std::size_t>(camera.chan_num);
    for (std::size_t i = 0; i < config.mosaic->channels.size(); ++i) {
      if (static_cast<std::size_t>(config.mosaic->channels[i]) >= channels)
        r.error(element("mosaic.channels", i), "no channel {} (the config opens channels 0-{})",
                config.mosaic->channels[i], channels - 1);
    }
    if (!config.mosaic->output_path && !config.rtsp_server)
      r.error("mosaic", "needs output_path or an rtsp_server section (it serves the picture at /{})",
              config.mosaic->name);
  } else if (std::filesystem::path(source_name).filename() == kVideoStitchConfigName) {
    apply_video_stitch_demo(config);
  }

  // A video mode needs somewhere to show the video: a file/server, or the embedded RTSP server or viewer.
  if (!config.rtsp_server && !config.http) {
    for (std::size_t i = 0; i < config.models.size(); ++i) {
      const ModelConfig& model = config.models[i];
      if (model.output_mode_given && model.output_mode != OutputMode::kResults && !model.output_path) {
        r.error(child(element("models", i), "output_mode"),
                "\"{}\" needs output_path (or an rtsp_server or http section to serve it live)",
                to_string(model.output_mode));
      }
    }
  }
  return config;
}

bool is_loopback_address(std::string_view address) {
  return address == "localhost" || address == "::1" || address.starts_with("127.");
}

PipelineConfig load_config(const std::filesystem::path& file) {
  const std::string name = file.string();
  std::error_code ec;
  const auto size = std::filesystem::file_size(file, ec);
  if (ec) fail("{}: cannot read the config: {}", name, ec.message());
  if (size > kMaxConfigBytes)
    fail("{}: {} bytes is more than a config may have ({} bytes)", name, size, kMaxConfigBytes);
  std::ifstream in(file, std::ios::binary);
  if (!in) fail("{}: cannot open the config", name);
  std::string text(static_cast<std::size_t>(size), '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.gcount() != static_cast<std::streamsize>(text.size()))
    fail("{}: could not read the whole file", name);
  return parse_config(text, name);
}

std::vector<ChannelConfig> expand_channels(const PipelineConfig& config) {
  std::vector<ChannelConfig> channels;
  int next = 0;
  for (std::size_t c = 0; c < config.cards.size(); ++c) {
    const CardConfig& card = config.cards[c];
    for (std::size_t k = 0; k < card.cameras.size(); ++k) {
      const CameraConfig& camera = card.cameras[k];
      for (const auto& model_name : camera.model_names) {
        for (int i = 0; i < camera.chan_num; ++i) {
          channels.push_back(ChannelConfig{next++, card.devid, c, k, &camera, config.find_model(model_name)});
        }
      }
    }
  }
  return channels;
}

std::string_view model_family(std::string_view model_type) {
  // A task's own name first: "yolov8-seg" is not the YOLOv8 box head its prefix names.
  if (const models::TaskKind* kind = models::find_task(model_type)) return kind->model_type;
  for (const auto& [prefix, family] : kTaskModelTypePrefixes) {
    if (model_type.starts_with(prefix)) return family;
  }
  for (const auto& [prefix, family] : kModelTypePrefixes) {
    if (model_type.starts_with(prefix)) return family;
  }
  return {};
}

std::string_view to_string(OutputMode mode) {
  for (const auto& [name, m] : kOutputModes) {
    if (m == mode) return name;
  }
  return "?";
}

std::string_view to_string(RtspTransport transport) {
  for (const auto& [name, t] : kTransports) {
    if (t == transport) return name;
  }
  return "?";
}

}  // namespace vapipe::pipeline
