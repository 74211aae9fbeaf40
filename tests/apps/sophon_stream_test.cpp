// sophon-pipeline's viewing path end to end, through the real binary: an .h264/.h265 elementary-stream file
// (with access unit delimiters, as camera recordings have) pushed to tcp:// and udp://, received by ffmpeg
// as the raw stream (`ffmpeg -i tcp://...?listen -c copy -f h264 out.h264`) and read with pipeline_client's
// two rules (support/pipeline_client.hpp): the first key frame is recognised, every access unit begins with
// our SEI after a 4-byte start code, and the boxes its fromByteBuffer reads (track ids only from a payload
// that is exactly the box list) are those of the JSON Lines of the same frame.
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "io/test_clips.hpp"
#include "support/media.hpp"
#include "support/pipeline_client.hpp"
#include "support/process.hpp"
#include "support/test_data.hpp"
#include "support/udp_capture.hpp"

namespace vapipe {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

fs::path model_cache() { return fs::temp_directory_path() / "vapipe-tests" / "model-cache"; }

std::vector<std::string> read_lines(const fs::path& file) {
  std::vector<std::string> lines;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

template <typename Condition>
bool wait_until(Condition condition, std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  while (!condition()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);  // polling another process's state: nothing to wait on
  }
  return true;
}

// NAL unit types of an Annex-B packet, in order.
std::vector<int> nal_types(const std::vector<std::uint8_t>& data, bool h265) {
  std::vector<int> types;
  for (std::size_t i = 0; i + 3 < data.size(); ++i) {
    if (data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1) {
      types.push_back(h265 ? (data[i + 3] >> 1) & 0x3f : data[i + 3] & 0x1f);
      i += 2;
    }
  }
  return types;
}

struct Case {
  std::string scheme;  // "tcp" | "udp"
  bool h265 = false;
};

void PrintTo(const Case& c, std::ostream* out) { *out << c.scheme << (c.h265 ? " H.265" : " H.264"); }

class SophonStream : public ::testing::TestWithParam<Case> {};

TEST_P(SophonStream, PipelineClientFindsTheKeyFrameAndOurSeiFirstInEveryAccessUnit) {
  VAPIPE_REQUIRE_MODEL("yolofastestv2.onnx");
  const Case c = GetParam();
  const std::string format = c.h265 ? "hevc" : "h264";
  constexpr int kFrames = 40;
  // Delimiters in the source (aud=1): the output must drop them, they would stand before our SEI.
  const fs::path clip =
      c.h265 ? io::test::make_clip("aud.h265",
                                   "-an -c:v libx265 -preset ultrafast -x265-params "
                                   "log-level=error:aud=1:bframes=0:keyint=15 -f hevc",
                                   kFrames)
             : io::test::make_clip(
                   "aud.h264", "-an -c:v libx264 -preset ultrafast -bf 0 -g 15 -x264-params aud=1 -f h264",
                   kFrames);
  if (clip.empty()) GTEST_SKIP() << "ffmpeg cannot make the " << format << " clip";
  const fs::path dir = test::scratch_dir();
  const int port = test::free_port();
  const bool udp = c.scheme == "udp";
  const fs::path received = dir / ("received." + format);
  // TCP: ffmpeg listens and the writer's close ends its input. UDP: our capture, bound before vapipe starts
  // and stopped once it has exited (support/udp_capture.hpp says why not ffmpeg).
  std::optional<test::Child> receiver;
  std::optional<test::UdpCapture> capture;
  if (udp) {
    capture.emplace(port, received);
  } else {
    receiver.emplace(
        std::vector<std::string>{"ffmpeg", "-nostdin", "-v", "error", "-y", "-i",
                                 fmt::format("tcp://127.0.0.1:{}?listen=1&listen_timeout=60000", port), "-c",
                                 "copy", "-f", format, received.string()},
        dir / "ffmpeg.log");
    ASSERT_TRUE(wait_until([&] { return test::port_bound(port, false); }, 30s))
        << "ffmpeg never listened on " << port;
  }

  const fs::path results = dir / "det.jsonl";
  const nlohmann::json config = {
      {"cards",
       {{{"devid", 0},
         {"cameras",
          {{{"address", clip.string()},
            {"chan_num", 1},
            {"model_names", {"det"}},
            {"loop", false},
            {"pace", udp}}}}}}},
      {"models",
       {{{"name", "det"},
         {"path", (test::models_dir() / "yolofastestv2.onnx").string()},
         {"obj_threshold", 0.25},
         {"nms_threshold", 0.45},
         {"class_threshold", 0.25},
         {"output_path", fmt::format("{}://127.0.0.1:{}", c.scheme, port)},  // channel 0: port + 0
         {"results_path", results.string()}}}}};
  std::ofstream(dir / "cameras.json") << config.dump(2);
  const int status = std::system(
      fmt::format("timeout 300 '{}' run -c '{}' --cache-dir '{}' --stats none >'{}' 2>&1", VAPIPE_CLI,
                  (dir / "cameras.json").string(), model_cache().string(), (dir / "vapipe.log").string())
          .c_str());
  ASSERT_EQ(status, 0) << "see " << dir / "vapipe.log";
  if (receiver) {
    ASSERT_TRUE(receiver->wait_for(30s)) << "ffmpeg did not finish";
  }
  if (capture) capture->stop();

  const auto lines = read_lines(results);
  ASSERT_EQ(lines.size(), static_cast<std::size_t>(kFrames));
  const test::ClientView view = test::pipeline_client_view(received);
  EXPECT_EQ(view.packets, static_cast<std::size_t>(kFrames)) << received;
  ASSERT_TRUE(view.first_key.has_value()) << "pipeline_client never recognises a key frame";
  EXPECT_EQ(*view.first_key, 0u) << "packets dropped before the first key frame was recognised";
  EXPECT_EQ(view.sei_first_4_byte, view.boxes.size()) << "access units without our SEI first";
  std::size_t with_boxes = 0;
  for (std::size_t i = 0; i < view.boxes.size() && i < lines.size(); ++i) {
    SCOPED_TRACE(fmt::format("frame {}", i));
    ASSERT_TRUE(view.boxes[i].has_value()) << "pipeline_client reads no SEI here";
    const auto record = nlohmann::json::parse(lines[i]);
    const auto& detections = record.at("detections");
    ASSERT_EQ(view.boxes[i]->size(), detections.size());
    with_boxes += detections.empty() ? 0 : 1;
    for (std::size_t d = 0; d < detections.size(); ++d) {
      const auto& box = (*view.boxes[i])[d];
      EXPECT_EQ(box.x1, detections[d]["box"][0].get<float>());
      EXPECT_EQ(box.y1, detections[d]["box"][1].get<float>());
      EXPECT_EQ(box.x2, detections[d]["box"][2].get<float>());
      EXPECT_EQ(box.y2, detections[d]["box"][3].get<float>());
      EXPECT_EQ(box.class_id, detections[d]["class_id"].get<int>());
      EXPECT_EQ(box.track_id, detections[d]["track_id"].get<int>());
    }
    // Parameter sets right after the SEI of every key frame; no delimiter anywhere.
    const auto types = nal_types(view.data[i], c.h265);
    const int delimiter = c.h265 ? 35 : 9;
    EXPECT_EQ(std::count(types.begin(), types.end(), delimiter), 0) << "an access unit delimiter";
    if (view.demuxer_key[i]) {
      const std::vector<int> headers = c.h265 ? std::vector<int>{39, 32, 33, 34} : std::vector<int>{6, 7, 8};
      ASSERT_GE(types.size(), headers.size());
      EXPECT_EQ(std::vector<int>(types.begin(), types.begin() + static_cast<std::ptrdiff_t>(headers.size())),
                headers);
    }
  }
  EXPECT_GT(with_boxes, 0u) << "no frame with detections: the comparison proved little";
}

INSTANTIATE_TEST_SUITE_P(TcpUdp, SophonStream,
                         ::testing::Values(Case{"tcp", false}, Case{"tcp", true}, Case{"udp", false},
                                           Case{"udp", true}),
                         [](const auto& test) {
                           return test.param.scheme + (test.param.h265 ? "H265" : "H264");
                         });

}  // namespace
}  // namespace vapipe
