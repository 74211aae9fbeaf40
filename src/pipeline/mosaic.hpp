#pragma once
// The `mosaic` output: several channels' annotated frames composed into one picture (a grid of tiles),
// encoded with x264 and written/pushed (mosaic.output_path) and handed to live outputs (the embedded RTSP
// server's mount, through the same ChannelTap interface a channel feeds), every tile's boxes in the SEI and
// the JSON Lines record with the tile's offset and scale applied.
//
// Channels never wait for it: each channel's tap (its output thread) only swaps in a reference to its
// latest decoded picture and a copy of its detections under the tile's own lock. The composer thread wakes
// at a fixed rate (mosaic.fps, else the fastest tile channel's frame rate), takes each tile's latest
// picture (a tile without one yet is black; a channel that stopped keeps its last picture), scales it into
// its tile (letterboxed), draws the boxes, encodes and sends. A tick that comes while the previous one is
// still being encoded is skipped (counted), so a slow machine lowers the mosaic's rate, not the channels'.
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "pipeline/channel_tap.hpp"
#include "pipeline/config.hpp"

namespace vapipe::models {
class PostProcessor;
}

namespace vapipe::pipeline {

struct MosaicStats {
  std::uint64_t composed = 0;         // pictures encoded
  std::uint64_t ticks_skipped = 0;    // ticks missed while the composer was busy
  std::uint64_t packets_written = 0;  // to output_path (0 without one)
  std::uint64_t packets_dropped = 0;
};

class Mosaic {
 public:
  // `channels`: the tile channel ids in tile order; `key` names the config section in errors ("mosaic").
  // Throws vapipe::Error naming mosaic.results_path when its file cannot be created.
  Mosaic(const MosaicConfig& config, std::vector<int> channels, std::string key = "mosaic");
  ~Mosaic();  // finish()
  Mosaic(const Mosaic&) = delete;
  Mosaic& operator=(const Mosaic&) = delete;

  // Before start(): the tap for tile `tile` (its channel's; `labels` name its detector's classes and must
  // outlive the mosaic).
  std::shared_ptr<ChannelTap> tile_tap(std::size_t tile, const models::PostProcessor& labels);
  // Before start(): a live output of the composed stream (the RTSP server's mount): it gets video_started,
  // every packet, video_stopped and closed, from the composer thread.
  void add_output_tap(std::shared_ptr<ChannelTap> tap);
  // What a tap factory (the RTSP server) is told about the composed stream: name = mosaic.name.
  ChannelInfo info() const;
  const std::vector<int>& channels() const { return channels_; }

  void start();
  // Stops the ticks, flushes the encoder, closes output_path (MP4 index, RTSP TEARDOWN) and the output
  // taps (EOS to RTSP clients). Idempotent.
  void finish();
  MosaicStats stats() const;

 private:
  struct Tile;
  struct Composer;
  void run();
  bool try_open();
  void compose();
  void send_packet(const AVPacket& packet);
  // Every output tap, in order; one that throws is detached (as a channel does with its taps).
  void for_each_output(const std::function<void(ChannelTap&)>& call);

  MosaicConfig config_;
  std::vector<int> channels_;
  std::string key_;
  std::vector<std::shared_ptr<Tile>> tiles_;
  std::vector<std::shared_ptr<ChannelTap>> output_taps_;
  std::unique_ptr<Composer> composer_;

  mutable std::mutex mutex_;  // stop_, stats_
  std::condition_variable wake_;
  bool stop_ = false;
  std::uint64_t news_ = 0;  // a tile's first or second picture came (size, rate): the composer looks again
  MosaicStats stats_;
  std::thread thread_;
};

}  // namespace vapipe::pipeline
