#include "pipeline/mosaic.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <span>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>
#include <spdlog/spdlog.h>

extern "C" {
#include <libavutil/rational.h>
}

#include "core/error.hpp"
#include "io/ffmpeg_handles.hpp"
#include "io/sei_codec.hpp"
#include "io/stream_writer.hpp"
#include "io/url_redaction.hpp"
#include "io/video_encoder.hpp"
#include "models/detection_json.hpp"
#include "models/detection_label.hpp"
#include "models/instance_mask.hpp"
#include "models/post_processor.hpp"
#include "vision/osd.hpp"

namespace vapipe::pipeline {

namespace {

using Clock = std::chrono::steady_clock;

// Without mosaic.tile_width the tile size comes from the first tile's channel; when that channel has no
// picture this long after another one had, the first tile channel that has one decides.
constexpr auto kFirstChannelWait = std::chrono::seconds(2);
constexpr double kDefaultFps = 25.0;
constexpr double kMaxFps = 60.0;

}  // namespace

// One tile: what its channel's tap leaves for the composer (the tap's output thread writes, the composer
// thread reads; `mutex` is held for a reference swap and a copy of the detections only).
struct Mosaic::Tile {
  int channel = 0;
  const models::PostProcessor* labels = nullptr;
  Mosaic* owner = nullptr;
  std::mutex mutex;
  io::FramePtr latest = io::make_frame();
  bool has_picture = false;
  std::vector<models::Detection> detections;
  std::int64_t frame = -1;    // the channel's frame index of `latest`
  std::uint64_t version = 0;  // bumped per picture
  double last_pts = -1.0;     // seconds; for the frame rate
  double min_interval = 0.0;  // the shortest positive pts step seen: 1 / the channel's frame rate
};

namespace {

class TileTap final : public ChannelTap {
 public:
  TileTap(std::shared_ptr<void> keep, std::function<void(const FrameRecord&, const AVFrame&)> take)
      : keep_(std::move(keep)), take_(std::move(take)) {}
  bool wants_pixels() const override { return true; }
  void frame_done(const FrameRecord& record, std::string_view /*json_line*/,
                  const AVFrame* picture) override {
    if (picture != nullptr) take_(record, *picture);
  }

 private:
  std::shared_ptr<void> keep_;
  std::function<void(const FrameRecord&, const AVFrame&)> take_;
};

}  // namespace

// The composer thread's state.
struct Mosaic::Composer {
  struct TileState {
    io::FramePtr frame = io::make_frame();
    bool has_picture = false;
    std::vector<models::Detection> detections;
    std::int64_t frame_index = -1;
    std::uint64_t version = 0;
    io::SwsContextPtr sws;
    // Where the picture lands in the canvas (letterboxed inside its tile) and its scale from source pixels.
    int x = 0, y = 0, width = 0, height = 0;
    float scale_x = 1.0f, scale_y = 1.0f;
  };
  int tile_width = 0, tile_height = 0, columns = 1, rows = 1, width = 0, height = 0;
  AVRational fps{25, 1};
  std::vector<TileState> tiles;
  std::vector<std::uint8_t> clean;   // the tiles' pictures, no drawing
  std::vector<std::uint8_t> canvas;  // clean + boxes, what is encoded
  std::unique_ptr<io::VideoEncoder> encoder;
  std::unique_ptr<io::StreamWriter> writer;
  std::unique_ptr<io::SeiInserter> inserter = std::make_unique<io::SeiInserter>(
      io::VideoCodec::kH264, io::NalFraming::annexb());  // libx264 emits Annex-B whatever the container
  std::unique_ptr<ResultsFile> results;
  io::PacketPtr scratch = io::make_packet();
  io::PacketPtr sei_packet = io::make_packet();
  std::vector<vision::OsdBox> osd;
  std::vector<io::MetadataBox> boxes;
  std::vector<std::string> labels;
  bool open = false;
  bool failed = false;
  std::optional<Clock::time_point> first_seen;
  std::int64_t pictures = 0;
};

Mosaic::Mosaic(const MosaicConfig& config, std::vector<int> channels, std::string key)
    : config_(config),
      channels_(std::move(channels)),
      key_(std::move(key)),
      composer_(std::make_unique<Composer>()) {
  if (channels_.empty()) fail("{}: no channel to compose", key_);
  for (const int channel : channels_) {
    auto tile = std::make_shared<Tile>();
    tile->channel = channel;
    tile->owner = this;
    tiles_.push_back(std::move(tile));
  }
  composer_->tiles.resize(tiles_.size());
  if (config_.results_path) {
    composer_->results = std::make_unique<ResultsFile>(*config_.results_path, key_ + ".results_path");
  }
}

Mosaic::~Mosaic() { finish(); }

std::shared_ptr<ChannelTap> Mosaic::tile_tap(std::size_t index, const models::PostProcessor& labels) {
  std::shared_ptr<Tile> tile = tiles_.at(index);
  tile->labels = &labels;
  Tile* raw = tile.get();
  return std::make_shared<TileTap>(tile, [raw](const FrameRecord& record, const AVFrame& picture) {
    bool wake = false;
    {
      std::lock_guard lock(raw->mutex);
      av_frame_unref(raw->latest.get());
      if (av_frame_ref(raw->latest.get(), &picture) < 0) {
        raw->has_picture = false;
        return;
      }
      // The composer waits for the first pictures (tile size) and the second ones (frame rate) only.
      wake = raw->version < 2;
      raw->has_picture = true;
      raw->detections.assign(record.detections.begin(), record.detections.end());
      raw->frame = record.frame;
      ++raw->version;
      if (record.pts_seconds >= 0.0) {
        const double step = record.pts_seconds - raw->last_pts;
        if (raw->last_pts >= 0.0 && step > 1.0 / kMaxFps / 2 &&
            (raw->min_interval == 0.0 || step < raw->min_interval))
          raw->min_interval = step;
        raw->last_pts = record.pts_seconds;
      }
    }
    if (wake) {
      {
        std::lock_guard lock(raw->owner->mutex_);
        ++raw->owner->news_;
      }
      raw->owner->wake_.notify_all();
    }
  });
}

void Mosaic::add_output_tap(std::shared_ptr<ChannelTap> tap) {
  if (tap) output_taps_.push_back(std::move(tap));
}

ChannelInfo Mosaic::info() const {
  ChannelInfo info;
  info.channel = -1;
  info.name = config_.name;
  info.model = config_.name;
  info.address = fmt::format("mosaic of channels {}", fmt::join(channels_, ", "));
  info.output_mode = OutputMode::kAnnotated;
  return info;
}

void Mosaic::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { run(); });
}

void Mosaic::finish() {
  {
    std::lock_guard lock(mutex_);
    if (stop_ && !thread_.joinable()) return;
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  } else {
    for (auto& tap : output_taps_) tap->closed();
  }
  output_taps_.clear();
}

MosaicStats Mosaic::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void Mosaic::for_each_output(const std::function<void(ChannelTap&)>& call) {
  for (auto it = output_taps_.begin(); it != output_taps_.end();) {
    try {
      call(**it);
      ++it;
    } catch (const std::exception& error) {
      spdlog::error("{} '{}': a live output failed and is detached: {}", key_, config_.name, error.what());
      it = output_taps_.erase(it);
    }
  }
}

// Composer thread: true once the picture size and rate are known and the encoder is open (or failed).
bool Mosaic::try_open() {
  Composer& c = *composer_;
  int source_width = 0, source_height = 0;
  double fastest = 0.0;
  bool any = false;
  const auto now = Clock::now();
  for (std::size_t i = 0; i < tiles_.size(); ++i) {
    std::lock_guard lock(tiles_[i]->mutex);
    if (!tiles_[i]->has_picture) continue;
    if (!any && !c.first_seen) c.first_seen = now;
    any = true;
    if (source_width == 0 && (i == 0 || now >= *c.first_seen + kFirstChannelWait)) {
      source_width = tiles_[i]->latest->width;
      source_height = tiles_[i]->latest->height;
    }
    if (tiles_[i]->min_interval > 0.0) fastest = std::max(fastest, 1.0 / tiles_[i]->min_interval);
  }
  const bool waited = c.first_seen && now >= *c.first_seen + kFirstChannelWait;
  if (!config_.tile_width && source_width == 0) return false;
  if (!config_.fps && fastest == 0.0 && !waited) return false;
  auto scaled = [&](int size) {
    return std::max(16, static_cast<int>(std::lround(size * config_.tile_scale))) & ~1;
  };
  c.tile_width = config_.tile_width ? *config_.tile_width & ~1 : scaled(source_width);
  c.tile_height = config_.tile_height ? *config_.tile_height & ~1 : scaled(source_height);
  const int n = static_cast<int>(tiles_.size());
  c.columns = config_.columns > 0 ? std::min(config_.columns, n)
                                  : static_cast<int>(std::ceil(std::sqrt(static_cast<double>(n))));
  c.rows = (n + c.columns - 1) / c.columns;
  c.width = c.columns * c.tile_width;
  c.height = c.rows * c.tile_height;
  const double fps = std::min(kMaxFps, config_.fps.value_or(fastest > 0.0 ? fastest : kDefaultFps));
  c.fps = av_d2q(fps, 1001000);
  c.clean.assign(static_cast<std::size_t>(c.width) * static_cast<std::size_t>(c.height) * 3, 0);
  c.canvas = c.clean;
  try {
    io::EncoderOptions encoder;
    encoder.width = c.width;
    encoder.height = c.height;
    encoder.fps_num = c.fps.num;
    encoder.fps_den = c.fps.den;
    encoder.gop_size = std::max(1, static_cast<int>(std::lround(2 * fps)));
    io::StreamWriterOptions writer_options;
    writer_options.format = config_.output_format.value_or("");
    // Live outputs get both: extradata for containers and SPS/PPS before every key frame for late joiners.
    const bool live = !output_taps_.empty();
    encoder.global_header = live || (config_.output_path && io::StreamWriter::needs_global_header(
                                                                *config_.output_path, writer_options.format));
    encoder.repeat_headers = live;
    c.encoder = std::make_unique<io::VideoEncoder>(encoder, key_);
    io::CodecParametersPtr parameters(avcodec_parameters_alloc());
    if (!parameters || avcodec_parameters_from_context(parameters.get(), &c.encoder->context()) < 0)
      fail("out of memory");
    if (config_.output_path)
      c.writer = std::make_unique<io::StreamWriter>(*config_.output_path, *parameters, c.encoder->time_base(),
                                                    c.fps, writer_options);
    for_each_output([&](ChannelTap& tap) { tap.video_started(*parameters, c.encoder->time_base(), c.fps); });
  } catch (const Error& error) {
    spdlog::error("{} '{}': no video: {}", key_, config_.name, error.what());
    c.failed = true;
    return true;
  }
  c.open = true;
  spdlog::info("{} '{}': composing channels {} ({}x{} tiles of {}x{}) into {}x{} at {:.4g} fps{}", key_,
               config_.name, fmt::join(channels_, ", "), c.columns, c.rows, c.tile_width, c.tile_height,
               c.width, c.height, av_q2d(c.fps),
               config_.output_path ? " to " + io::redact_credentials(*config_.output_path) : std::string());
  return true;
}

void Mosaic::run() {
  Composer& c = *composer_;
  // --- until the picture size and the rate are known: woken by the tiles' first pictures ---
  {
    std::unique_lock lock(mutex_);
    while (!stop_) {
      const std::uint64_t seen = news_;
      lock.unlock();
      const bool opened = try_open();
      lock.lock();
      if (opened || stop_) break;
      // Woken by a tile's first pictures, or when the first tile channel had its time to show up.
      const auto news = [&] { return stop_ || news_ != seen; };
      if (c.first_seen) {
        wake_.wait_until(lock, *c.first_seen + kFirstChannelWait + std::chrono::milliseconds(10), news);
      } else {
        wake_.wait(lock, news);
      }
    }
  }

  // --- fixed-rate ticks; ticks missed while composing are skipped, never queued ---
  if (c.open) {
    const auto period =
        std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(av_q2d(av_inv_q(c.fps))));
    auto next = Clock::now();
    for (;;) {
      {
        std::unique_lock lock(mutex_);
        wake_.wait_until(lock, next, [&] { return stop_; });
        if (stop_) break;
      }
      compose();
      next += period;
      const auto now = Clock::now();
      if (next <= now) {
        const auto missed = (now - next) / period + 1;
        next += missed * period;
        std::lock_guard lock(mutex_);
        stats_.ticks_skipped += static_cast<std::uint64_t>(missed);
      }
    }
  }

  // --- drain: the encoder's last packets, then the outputs close ---
  if (c.open) {
    try {
      c.encoder->send(nullptr);
      while (c.encoder->receive(*c.scratch) == io::EncodeStatus::kOk) send_packet(*c.scratch);
    } catch (const Error& error) {
      spdlog::error("{} '{}': flushing the encoder: {}", key_, config_.name, error.what());
    }
    for_each_output([](ChannelTap& tap) { tap.video_stopped(); });
  }
  if (c.writer) c.writer->close();
  for_each_output([](ChannelTap& tap) { tap.closed(); });
  const MosaicStats totals = stats();
  spdlog::info(
      "{} '{}': {} pictures composed, {} ticks skipped (composer busy), {} packets written, {} dropped", key_,
      config_.name, totals.composed, totals.ticks_skipped, totals.packets_written, totals.packets_dropped);
}

void Mosaic::send_packet(const AVPacket& packet) {
  Composer& c = *composer_;
  if (c.writer) c.writer->write(packet);
  for_each_output([&](ChannelTap& tap) { tap.video_packet(packet); });
}

// One tick: each tile's latest picture scaled into its place (only when it changed), boxes drawn with the
// tile's offset and scale, encoded with those boxes in its SEI, the record written.
void Mosaic::compose() {
  Composer& c = *composer_;
  const auto stride = static_cast<std::size_t>(c.width) * 3;
  for (std::size_t i = 0; i < tiles_.size(); ++i) {
    Tile& tile = *tiles_[i];
    Composer::TileState& t = c.tiles[i];
    {
      std::lock_guard lock(tile.mutex);
      if (!tile.has_picture || tile.version == t.version) continue;
      av_frame_unref(t.frame.get());
      if (av_frame_ref(t.frame.get(), tile.latest.get()) < 0) continue;
      t.detections = tile.detections;
      t.version = tile.version;
      t.frame_index = tile.frame;
    }
    const AVFrame& f = *t.frame;
    if (f.width <= 0 || f.height <= 0) continue;
    // Letterboxed: the whole picture, its aspect kept, centred in the tile.
    const double fit =
        std::min(static_cast<double>(c.tile_width) / f.width, static_cast<double>(c.tile_height) / f.height);
    const int width = std::clamp(static_cast<int>(std::lround(f.width * fit)), 1, c.tile_width);
    const int height = std::clamp(static_cast<int>(std::lround(f.height * fit)), 1, c.tile_height);
    const int tile_x = static_cast<int>(i) % c.columns * c.tile_width;
    const int tile_y = static_cast<int>(i) / c.columns * c.tile_height;
    const int x = tile_x + (c.tile_width - width) / 2;
    const int y = tile_y + (c.tile_height - height) / 2;
    if (!t.has_picture || x != t.x || y != t.y || width != t.width || height != t.height) {
      // A picture of another shape: the old one's margins go black.
      for (int row = tile_y; row < tile_y + c.tile_height; ++row)
        std::memset(
            c.clean.data() + static_cast<std::size_t>(row) * stride + static_cast<std::size_t>(tile_x) * 3, 0,
            static_cast<std::size_t>(c.tile_width) * 3);
    }
    t.sws.reset(sws_getCachedContext(t.sws.release(), f.width, f.height, static_cast<AVPixelFormat>(f.format),
                                     width, height, AV_PIX_FMT_BGR24, SWS_BILINEAR, nullptr, nullptr,
                                     nullptr));
    if (!t.sws) {
      spdlog::warn("{} '{}': channel {}: cannot scale its pixel format {}", key_, config_.name, tile.channel,
                   f.format);
      continue;
    }
    std::uint8_t* destination[4] = {
        c.clean.data() + static_cast<std::size_t>(y) * stride + static_cast<std::size_t>(x) * 3, nullptr,
        nullptr, nullptr};
    const int destination_stride[4] = {static_cast<int>(stride), 0, 0, 0};
    sws_scale(t.sws.get(), f.data, f.linesize, 0, f.height, destination, destination_stride);
    t.has_picture = true;
    t.x = x;
    t.y = y;
    t.width = width;
    t.height = height;
    t.scale_x = static_cast<float>(width) / static_cast<float>(f.width);
    t.scale_y = static_cast<float>(height) / static_cast<float>(f.height);
  }
  std::memcpy(c.canvas.data(), c.clean.data(), c.clean.size());

  // Boxes in canvas pixels: each tile's mapped by its offset and scale, clipped to its picture.
  c.osd.clear();
  c.boxes.clear();
  nlohmann::ordered_json detections = nlohmann::ordered_json::array();
  nlohmann::ordered_json tiles = nlohmann::ordered_json::array();
  for (std::size_t i = 0; i < tiles_.size(); ++i) {
    const Composer::TileState& t = c.tiles[i];
    const Tile& tile = *tiles_[i];
    tiles.push_back({{"channel", tile.channel},
                     {"frame", t.has_picture ? t.frame_index : -1},
                     {"offset", {t.x, t.y}},
                     {"scale", {t.scale_x, t.scale_y}},
                     {"size", {t.width, t.height}}});
    if (!t.has_picture) continue;
    const auto map_x = [&](float v) {
      return std::clamp(t.x + v * t.scale_x, static_cast<float>(t.x), static_cast<float>(t.x + t.width));
    };
    const auto map_y = [&](float v) {
      return std::clamp(t.y + v * t.scale_y, static_cast<float>(t.y), static_cast<float>(t.y + t.height));
    };
    for (const models::Detection& source : t.detections) {
      models::Detection d = source;
      d.x1 = map_x(d.x1);
      d.y1 = map_y(d.y1);
      d.x2 = map_x(d.x2);
      d.y2 = map_y(d.y2);
      for (auto& p : d.keypoints) {
        p.x = map_x(p.x);
        p.y = map_y(p.y);
      }
      // A mask's extent is mapped unclipped: its cells keep their size relative to the extent; rasterizing
      // over the (clipped) box keeps it inside the tile.
      if (!d.mask.empty()) {
        d.mask.x1 = t.x + d.mask.x1 * t.scale_x;
        d.mask.y1 = t.y + d.mask.y1 * t.scale_y;
        d.mask.x2 = t.x + d.mask.x2 * t.scale_x;
        d.mask.y2 = t.y + d.mask.y2 * t.scale_y;
      }
      const std::string label =
          tile.labels != nullptr ? tile.labels->label(d.class_id) : std::to_string(d.class_id);
      vision::OsdBox& box =
          c.osd.emplace_back(vision::OsdBox{d.x1, d.y1, d.x2, d.y2, d.track_id >= 0 ? d.track_id : d.class_id,
                                            models::display_label(d, label)});
      if (tile.labels != nullptr) box.edges = tile.labels->skeleton();
      if (!d.mask.empty()) {
        models::PixelMask mask = models::rasterize(d);
        box.mask = {mask.x, mask.y, mask.width, mask.height, std::move(mask.pixels)};
      }
      io::MetadataBox& meta =
          c.boxes.emplace_back(io::MetadataBox{d.x1, d.y1, d.x2, d.y2, d.score, d.class_id, d.track_id});
      for (const auto& p : d.keypoints) {
        box.points.push_back({p.x, p.y, p.score});
        meta.keypoints.push_back({p.x, p.y, p.score});
      }
      if (d.identity) meta.identity = io::MetadataIdentity{d.identity->name, d.identity->similarity};
      if (c.results) {
        nlohmann::ordered_json json = models::detection_to_json(d, label);
        json["channel"] = tile.channel;
        detections.push_back(std::move(json));
      }
    }
  }
  cv::Mat image(c.height, c.width, CV_8UC3, c.canvas.data(), stride);
  vision::draw_boxes(image, c.osd);
  for (std::size_t i = 0; i < tiles_.size(); ++i) {
    const int tile_x = static_cast<int>(i) % c.columns * c.tile_width;
    const int tile_y = static_cast<int>(i) / c.columns * c.tile_height;
    cv::putText(image, fmt::format("ch {}", tiles_[i]->channel), cv::Point(tile_x + 6, tile_y + 18),
                cv::FONT_HERSHEY_SIMPLEX, 0.5, cv::Scalar(0, 255, 255), 1, cv::LINE_AA);
  }

  io::EncoderFrame frame =
      io::EncoderFrame::bgr24(c.canvas.data(), c.width, c.height, static_cast<int>(stride));
  frame.pts = c.pictures;
  try {
    c.encoder->send(&frame);
    // zerolatency: no look-ahead, no B-frames, so the packets coming out now are this picture's.
    while (c.encoder->receive(*c.scratch) == io::EncodeStatus::kOk) {
      const auto bytes =
          c.inserter->insert(std::span(c.scratch->data, static_cast<std::size_t>(c.scratch->size)), c.boxes);
      av_packet_unref(c.sei_packet.get());
      if (av_new_packet(c.sei_packet.get(), static_cast<int>(bytes.size())) < 0) fail("out of memory");
      std::memcpy(c.sei_packet->data, bytes.data(), bytes.size());
      av_packet_copy_props(c.sei_packet.get(), c.scratch.get());
      send_packet(*c.sei_packet);
    }
  } catch (const Error& error) {
    spdlog::error("{} '{}': encoding failed: {}", key_, config_.name, error.what());
  }
  if (c.results) {
    const nlohmann::ordered_json record = {{"mosaic", config_.name},
                                           {"frame", c.pictures},
                                           {"pts_time", static_cast<double>(c.pictures) / av_q2d(c.fps)},
                                           {"width", c.width},
                                           {"height", c.height},
                                           {"tiles", std::move(tiles)},
                                           {"detections", std::move(detections)}};
    c.results->write_line(record.dump());
  }
  ++c.pictures;
  std::lock_guard lock(mutex_);
  stats_.composed = static_cast<std::uint64_t>(c.pictures);
  if (c.writer) {
    stats_.packets_written = static_cast<std::uint64_t>(c.writer->stats().packets_written);
    stats_.packets_dropped = static_cast<std::uint64_t>(c.writer->stats().packets_dropped);
  }
}

}  // namespace vapipe::pipeline
