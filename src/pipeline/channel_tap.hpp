#pragma once
// Live consumers of a channel's outputs beside its configured file/server: the embedded RTSP server, the
// web viewer and the MQTT publisher (src/server) attach one tap per channel through
// Pipeline::add_tap_factory. The pipeline knows only this interface, never the server module.
//
// Every call comes from the channel's output thread, in output order, and must not block: a tap copies or
// references what it keeps and hands it to its own thread, or drops it (a slow viewer must never slow a
// camera). A tap that throws is detached and logged; the channel goes on.
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "io/ffmpeg_handles.hpp"
#include "pipeline/config.hpp"
#include "pipeline/outputs.hpp"

namespace vapipe::pipeline {

// What a tap factory is told about the channel it serves.
struct ChannelInfo {
  int channel = 0;
  std::string name;     // "<model>_<channel>", the sophon-pipeline output name (RTSP mount, topic suffix)
  std::string model;    // the model's config name
  std::string address;  // the source address with credentials redacted: safe to log and show
  OutputMode output_mode = OutputMode::kPassthrough;
  // How the keypoints of this channel's detections are joined when drawn (the web viewer draws from the
  // JSON records, which carry no skeleton): pairs of keypoint indices of the detector's task, and of the
  // second stage's for the detector's classes it runs on. Empty: dots only.
  std::vector<std::pair<int, int>> skeleton{};
  std::vector<int> secondary_classes{};
  std::vector<std::pair<int, int>> secondary_skeleton{};
};

class ChannelTap {
 public:
  virtual ~ChannelTap() = default;

  // Asked once, before the channel starts. A tap that wants video makes the channel produce its video
  // output (passthrough + SEI, or annotated x264, per the model's output_mode) even without output_path;
  // a model in "results" mode produces no video whatever the taps want.
  virtual bool wants_video() const { return false; }
  // The decoded picture is kept until frame_done (costs a decoder surface per frame in flight).
  virtual bool wants_pixels() const { return false; }

  // The video stream (re)starts: the packets that follow have these parameters. `codec` carries the
  // extradata (SPS/PPS) when the stream has any; x264-encoded streams also repeat SPS/PPS in-band before
  // every key frame, so a client can join at any key frame. Called again after a reconnect that changed
  // the stream, preceded by video_stopped().
  virtual void video_started(const AVCodecParameters& /*codec*/, AVRational /*time_base*/,
                             AVRational /*frame_rate*/) {}
  // One packet as sent to the output: SEI inserted, decode order, timestamps in the time_base above.
  virtual void video_packet(const AVPacket& /*packet*/) {}
  virtual void video_stopped() {}

  // One frame done, in frame order: its results record, the record as a JSON Lines line (no newline), and
  // the decoded picture when wants_pixels() (else null; also null for a picture released earlier).
  virtual void frame_done(const FrameRecord& /*record*/, std::string_view /*json_line*/,
                          const AVFrame* /*picture*/) {}

  // The channel closed its outputs (end of source, removal, shutdown): no more calls follow.
  virtual void closed() {}
};

using TapFactory = std::function<std::shared_ptr<ChannelTap>(const ChannelInfo&)>;

}  // namespace vapipe::pipeline
