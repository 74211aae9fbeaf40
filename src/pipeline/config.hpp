#pragma once
// The `vapipe run --config cameras.json` file: sophon-pipeline's cameras_*.json schema as is, plus a few
// optional vapipe keys. Every key, type, range and default is in docs/config.md. Parsing is strict: the first
// problem throws one vapipe::Error "<file>: <key path>: <what is wrong>", e.g.
//   cameras.json: models[1].obj_threshold: expected a number in [0, 1], got "high"
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "models/detection.hpp"

namespace vapipe::pipeline {

// Larger files are refused before being read: a camera config is a few KiB.
inline constexpr std::size_t kMaxConfigBytes = 1u << 20;

enum class OutputMode : std::uint8_t {
  kPassthrough,  // source packets re-sent unchanged, detections in SEI (default)
  kAnnotated,    // boxes drawn, re-encoded with x264
  kResults,      // no video: JSON Lines only
};
enum class RtspTransport : std::uint8_t { kTcp, kUdp };

// One `cameras[]` entry of a card. It opens chan_num channels, for each of its models (expand_channels).
struct CameraConfig {
  std::string address;
  int chan_num = 1;
  std::vector<std::string> model_names;
  // vapipe keys.
  bool loop = true;  // files: start again at the end
  bool pace = true;  // files: read at the file's own frame rate (false: as fast as possible)
  // Decode without the H.264/H.265 deblocking filter (FFmpeg's skip_loop_filter): cheaper decoding, blockier
  // pictures; measured against detection agreement in docs/performance.md.
  bool skip_loop_filter = false;
  RtspTransport rtsp_transport = RtspTransport::kTcp;
};

struct CardConfig {
  int devid = 0;  // kept for compatibility; vapipe runs every channel on the CPU
  std::vector<CameraConfig> cameras;
};

// `pipeline.preprocess|inference|postprocess`.
struct StageConfig {
  int thread_num = 1;
  int queue_size = 16;
  bool blocking = false;  // sophon-pipeline's flag: a full queue waits instead of dropping the oldest frame
};

// "secondary" (vapipe): what runs on this model's objects. `model` names a network of the model's own package
// (`vapipe info` lists them) or another entry of models[]; `classes` the detector's classes it runs on
// (absent: the network's own metadata says, e.g. "person" for a pose network); at most `max_objects` objects
// of a frame, the largest first.
struct SecondaryConfig {
  std::string model;
  std::vector<std::string> classes;
  int max_objects = 8;
};

struct ModelConfig {
  std::string name;
  std::string path;                       // .vpk or .onnx, as written (relative to the working directory)
  std::optional<std::string> model_type;  // lower-cased; absent: taken from the model's metadata
  int skip_frame_num = 0;
  std::optional<std::string> output_path;
  // vapipe keys: the FFmpeg muxer of the video output (absent: from output_path's scheme or extension),
  // and an output_path taken as sophon-pipeline's "no output" placeholder (no scheme, no extension).
  std::optional<std::string> output_format;
  std::optional<std::string> ignored_output_path;
  // sophon-pipeline's demos each read their own: yolov5 all three, face_detect/retinaface/face_recognition
  // obj_threshold and nms_threshold, openpose nms_threshold. A key a model's kind does not need may be left
  // out (check_thresholds_for); one given is always range-checked.
  std::optional<float> obj_threshold;
  float nms_threshold = 0.0f;
  std::optional<float> class_threshold;
  std::optional<int> class_num;  // checked against the model's metadata at load when given
  // vapipe keys.
  std::vector<float> class_thresholds;  // by class id ("class_thresholds": [..])
  std::vector<std::pair<std::string, float>> class_thresholds_by_name;  // {"person": 0.4}
  int batch_timeout_ms = 5;
  // A frame of a live source (one that may lose frames: network cameras unless preprocess.blocking) older
  // than this when its batch is formed is dropped as stale and counted: an overloaded model keeps its
  // latency bounded instead of queueing (0: no limit).
  int max_latency_ms = 500;
  OutputMode output_mode = OutputMode::kPassthrough;
  bool output_mode_given = false;           // written in the config (not the default)
  std::optional<std::string> results_path;  // JSON Lines; "-" is stdout
  // Face recognition (a package chaining a face detector and a face embedding network): the gallery folder
  // (models/face_gallery.hpp) and the cosine similarity a match needs (absent: the embedder's metadata
  // default, 0.5 for MobileFaceNet). recognition_threshold without gallery is refused.
  std::optional<std::string> gallery;
  std::optional<SecondaryConfig> secondary;  // one network for now (the key is a list, as chains grow)
  std::optional<float> recognition_threshold;

  // obj_threshold / class_threshold / class_thresholds as the decoders take them. Names in
  // class_thresholds_by_name are looked up in `class_names` (the model's metadata); an unknown name throws
  // vapipe::Error naming the model and the class.
  // For a task model (models/task.hpp: face detectors, ...) the score threshold is obj_threshold, else
  // class_threshold, else the task's default in `defaults` (the package's metadata).
  models::ScoreThresholds score_thresholds(std::span<const std::string> class_names, bool task_model = false,
                                           const models::ScoreThresholds& defaults = {}) const;
  // Throws vapipe::Error "<key_path>.class_threshold: required key is missing (...)" when a key that a model
  // of `network_type` (the package's metadata) reads is absent.
  void check_thresholds_for(std::string_view network_type, std::string_view key_path) const;
};

struct StatsConfig {
  int interval_ms = 1000;
  bool table = false;  // also print the per-channel table (like --stats all)
};

// `http`: the web viewer, REST control API and /metrics (src/server). Off unless the section is present.
struct HttpConfig {
  std::string bind = "127.0.0.1";          // loopback unless configured; other addresses need a token
  int port = 8080;                         // 0: any free port (tests)
  std::optional<std::string> token;        // required by /api and WebSockets when set
  std::optional<std::string> web_root;     // the viewer's static files; absent: the installed/build-tree web/
  std::vector<std::string> allowed_hosts;  // Host names accepted besides loopback, localhost and bind
  int max_connections = 1024;              // HTTP and WebSocket connections at once
  int max_connections_per_peer = 320;      // ... from one client address
};

// `rtsp_server`: every video channel served at rtsp://HOST:PORT/<model>_<ch> (gst-rtsp-server).
struct RtspServerConfig {
  std::string bind = "127.0.0.1";
  int port = 8554;
  // Not a key: ports tried in order when `port` cannot be bound (sophon's video_stitch demo, whose live555
  // server tries 554, then 1554, 1564, ...). Empty: `port` or an error.
  std::vector<int> other_ports{};
};

// `mosaic` (vapipe): several channels' annotated frames composed into one picture (a grid), encoded with x264
// and served at rtsp://HOST:PORT/<name> (with an rtsp_server section) and/or written to output_path, the
// boxes of each tile in its SEI and results with the tile's offset and scale applied. sophon-pipeline's
// video_stitch demo (a config file named cameras_video_stitch.json) implies one (video_stitch_mosaic).
struct MosaicConfig {
  std::string name = "mosaic";  // the RTSP mount (/mosaic) and the log's label
  std::vector<int> channels;    // channel ids in tile order; empty: every configured channel
  int columns = 0;              // 0: ceil(sqrt(tiles)), so 4 tiles are 2x2
  // Tile size in pixels; absent: the first tile's channel's picture size times tile_scale.
  std::optional<int> tile_width;
  std::optional<int> tile_height;
  double tile_scale = 1.0;
  std::optional<double> fps;  // absent: the fastest tile channel's frame rate (25 until one is known)
  std::optional<std::string> output_path;  // a file or a push URL, as models[].output_path (no _<ch> suffix)
  std::optional<std::string> output_format;
  std::optional<std::string> results_path;  // JSON Lines, one record per composed picture
  bool from_demo = false;                   // implied by sophon's cameras_video_stitch.json
};

// `mqtt`: each frame's results record published as JSON (libmosquitto); never blocks the pipeline.
struct MqttConfig {
  std::string host;
  int port = 1883;
  std::string topic = "vapipe/detections";  // published to "<topic>/<model>_<ch>"
  int qos = 0;
  std::optional<std::string> client_id;
  std::optional<std::string> username;
  std::optional<std::string> password;
  int keepalive_s = 30;
  // Not a key: `vapipe run --cluster`'s node name, added to every record as "node" (with the channel's
  // cluster-wide "name") so a consumer of the shared broker sees which node ran it. Empty: records as is.
  std::string node{};
};

// True for 127.0.0.0/8, ::1 and "localhost": listeners there are not reachable from other hosts.
bool is_loopback_address(std::string_view address);

struct PipelineConfig {
  std::vector<CardConfig> cards;
  StageConfig preprocess;
  StageConfig inference;
  StageConfig postprocess;
  std::vector<ModelConfig> models;
  StatsConfig stats;
  std::optional<HttpConfig> http;
  std::optional<RtspServerConfig> rtsp_server;
  std::optional<MqttConfig> mqtt;
  std::optional<MosaicConfig> mosaic;

  const ModelConfig* find_model(std::string_view name) const;
};

// Why a camera address (cameras[].address, POST /api/channels) is refused, nullopt when it is not: a control
// character (invisible in every listing; a NUL cut the path short, a newline forged log lines) or a file:
// URL (the file check and the decoder read it differently: a file is given as a path).
std::optional<std::string> address_problem(std::string_view address);

// JSON text parsed the way the config file is: a duplicate key is an error naming its key path, never the
// silent last-one-wins of nlohmann::json. Throws vapipe::Error "<source_name>: <path>: duplicate key" or
// "<source_name>: not valid JSON: <where, what>". Used for the config and the control API's bodies.
nlohmann::json parse_json_strict(std::string_view text, std::string_view source_name);

// Reads and validates a config file (at most kMaxConfigBytes). Errors name the file as given.
PipelineConfig load_config(const std::filesystem::path& file);
// Validates JSON text; `source_name` stands for the file in error messages.
PipelineConfig parse_config(std::string_view json_text, std::string_view source_name);

// One channel of the run, in sophon-pipeline's order: cards in order; within a card, cameras in order; within a
// camera, for each of its model_names, chan_num channels. Channel ids count from 0 over the whole config.
struct ChannelConfig {
  int channel = 0;
  int devid = 0;
  std::size_t card_index = 0;
  std::size_t camera_index = 0;
  const CameraConfig* camera = nullptr;  // points into the PipelineConfig
  const ModelConfig* model = nullptr;    // points into the PipelineConfig
};
std::vector<ChannelConfig> expand_channels(const PipelineConfig& config);

// The file name of sophon-pipeline's video_stitch demo config: a config of that name without a "mosaic" key
// runs as that demo does (examples/video_stitch/main.cpp): four channels, each card's addresses repeated in
// turn to fill its share, detected and composed 2x2 into a picture of the first camera's size, encoded at
// 25 / (skip_frame_num + 1) fps and served at rtsp://127.0.0.1:<554, else 1554, 1564, ...>/bitmain.
inline constexpr std::string_view kVideoStitchConfigName = "cameras_video_stitch.json";

// The decoder family of a sophon model_type name: "yolov5" (yolov5*, yolov6*, yolov7*), "yolov8",
// "yolofastestv2", a task's model_type (its own name; yolact* is "yolov8-seg"); empty for an unknown name.
std::string_view model_family(std::string_view model_type);

std::string_view to_string(OutputMode mode);
std::string_view to_string(RtspTransport transport);

}  // namespace vapipe::pipeline
