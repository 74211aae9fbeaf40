// The `mosaic` output end to end with the real `vapipe run`, YOLO-FastestV2 and real clients: four channels
// composed 2x2 and served by the embedded RTSP server (ffprobe reads its size, ffmpeg copies it and the SEI
// reader finds boxes in every tile), the same picture written to a file whose every SEI equals the mosaic's
// JSON record, whose every box is its channel's own box moved by the tile's offset; a channel that never
// delivers a picture stays black while the others go on; sophon-pipeline's cameras_video_stitch.json as
// shipped (paths changed only) serving its stitched stream at /bitmain.
#include <algorithm>
#include <array>
#include <chrono>
#include <csignal>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "io/test_clips.hpp"
#include "pipeline/pipeline_fixture.hpp"
#include "server/server_fixture.hpp"
#include "support/media.hpp"
#include "support/process.hpp"
#include "support/rtsp_watch.hpp"

namespace vapipe::server::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using pipeline::test::model_cache;
using namespace vapipe::test;  // Child, copy_client, log_of, wait_until, read_back, probe

constexpr int kTileWidth = 320;
constexpr int kTileHeight = 240;

// vtest.avi at 320x240, 10 fps, a key frame every second: small tiles keep four channels and the mosaic's
// encoder light on a loaded machine.
fs::path small_clip() {
  return io::test::make_clip("mosaic-320x240.mp4",
                             "-an -vf scale=320:240 -c:v libx264 -preset veryfast -bf 0 -g 10", 100);
}

nlohmann::json camera(const std::string& address, int chan_num) {
  return {
      {"address", address}, {"chan_num", chan_num}, {"model_names", {"det"}}, {"loop", true}, {"pace", true}};
}

// Channels in results mode (no video of their own): the mosaic is the only picture. One frame in three
// detected, so a loaded machine keeps up with the 10 fps sources.
nlohmann::json mosaic_config(const nlohmann::json& cameras, const fs::path& dir, int port,
                             const nlohmann::json& mosaic) {
  nlohmann::json config = {
      {"cards", {{{"devid", 0}, {"cameras", cameras}}}},
      {"models",
       {light_detector({{"output_mode", "results"}, {"results_path", (dir / "channels.jsonl").string()}})}},
      {"mosaic", mosaic}};
  if (port > 0) config["rtsp_server"] = {{"port", port}};
  return config;
}

std::unique_ptr<Child> run_vapipe(const fs::path& config, const fs::path& dir) {
  return std::make_unique<Child>(
      std::vector<std::string>{VAPIPE_CLI, "run", "-c", config.string(), "--cache-dir",
                               model_cache().string(), "--stats", "none"},
      dir / "vapipe.log");
}

std::vector<nlohmann::json> read_records(const fs::path& file) {
  std::vector<nlohmann::json> records;
  std::ifstream in(file);
  // While vapipe runs, the last line may be half written: it is left for the next look.
  for (std::string line; std::getline(in, line);) {
    auto record = nlohmann::json::parse(line, nullptr, false);
    if (!record.is_discarded()) records.push_back(std::move(record));
  }
  return records;
}

// "WxH" of the first video stream ffprobe finds at `url` (an RTSP URL or a file).
std::string probed_size(const std::string& url) {
  return vapipe::test::run_capture(fmt::format(
      "timeout 60 ffprobe -v error -rtsp_transport tcp -select_streams v:0 -show_entries stream=width,height "
      "-of csv=s=x:p=0 '{}' 2>/dev/null",
      url));
}

// Which tiles of a 2x2 picture of `tile_w` x `tile_h` tiles the SEI boxes of `file` fall in; a box across a
// tile border fails the test (a tile's boxes are clipped to it).
std::array<std::size_t, 4> boxes_per_tile(const fs::path& file, int tile_w, int tile_h) {
  std::array<std::size_t, 4> counts{};
  for (const auto& boxes : vapipe::test::read_back(file)) {
    if (!boxes) continue;
    for (const auto& b : *boxes) {
      const int column = b.x1 >= static_cast<float>(tile_w) ? 1 : 0;
      const int row = b.y1 >= static_cast<float>(tile_h) ? 1 : 0;
      EXPECT_EQ(b.x2 > static_cast<float>(tile_w) ? 1 : 0, column)
          << "box across tiles: " << b.x1 << " " << b.x2;
      EXPECT_EQ(b.y2 > static_cast<float>(tile_h) ? 1 : 0, row)
          << "box across tiles: " << b.y1 << " " << b.y2;
      ++counts[static_cast<std::size_t>(row * 2 + column)];
    }
  }
  return counts;
}

// The channels open one after another; on a loaded machine the first pictures served may come before the last
// channels' first detections. Reads `frames` pictures at a time (served_0.h264, served_1.h264, ...) until every
// tile has shown a box or three minutes have passed; the boxes counted over all reads.
std::array<std::size_t, 4> boxes_served_per_tile(const std::string& url, const fs::path& dir, int tile_w,
                                                 int tile_h, int frames) {
  std::array<std::size_t, 4> boxes{};
  const auto every_tile_has_a_box = [&] {
    return std::all_of(boxes.begin(), boxes.end(), [](std::size_t n) { return n > 0; });
  };
  const auto deadline = std::chrono::steady_clock::now() + 180s;
  for (int read = 0; !every_tile_has_a_box() && std::chrono::steady_clock::now() < deadline; ++read) {
    const fs::path copy = dir / fmt::format("served_{}.h264", read);
    auto client = copy_client(url, copy, "h264", 0, frames);
    if (!client->wait_for(90s)) {
      ADD_FAILURE() << "no " << frames << " pictures from " << url << ": " << log_of(copy);
      break;
    }
    const auto counts = boxes_per_tile(copy, tile_w, tile_h);
    for (std::size_t tile = 0; tile < 4; ++tile) boxes[tile] += counts[tile];
  }
  return boxes;
}

// The mean luma of each tile of a 2x2 picture: the `index`-th frame of `file` decoded by ffmpeg to gray.
std::array<double, 4> tile_luma(const fs::path& file, int index, int width, int height) {
  const fs::path raw = file.string() + ".gray";
  vapipe::test::run_capture(
      fmt::format("timeout 60 ffmpeg -nostdin -v error -i '{}' -vf 'select=eq(n\\,{})' -frames:v 1 -f "
                  "rawvideo -pix_fmt gray "
                  "-y '{}'",
                  file.string(), index, raw.string()));
  std::ifstream in(raw, std::ios::binary);
  const std::string pixels((std::istreambuf_iterator<char>(in)), {});
  std::array<double, 4> sums{};
  if (pixels.size() != static_cast<std::size_t>(width) * static_cast<std::size_t>(height)) {
    ADD_FAILURE() << "frame " << index << " of " << file << ": " << pixels.size() << " bytes";
    return sums;
  }
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      sums[static_cast<std::size_t>((y >= height / 2 ? 2 : 0) + (x >= width / 2 ? 1 : 0))] +=
          static_cast<unsigned char>(pixels[static_cast<std::size_t>(y) * static_cast<std::size_t>(width) +
                                            static_cast<std::size_t>(x)]);
  for (double& sum : sums) sum /= static_cast<double>(width / 2) * static_cast<double>(height / 2);
  return sums;
}

// Every test: the model, the clip and a scratch folder.
class MosaicRun : public ::testing::Test {
 protected:
  void SetUp() override {
    VAPIPE_REQUIRE_MODEL("yolofastestv2.onnx");
    clip = small_clip();
    VAPIPE_REQUIRE_CLIP(clip, "320x240 H.264");
    dir = vapipe::test::scratch_dir();
  }
  fs::path clip;
  fs::path dir;
};
using Mosaic = MosaicRun;
using ShippedConfigs = MosaicRun;

TEST_F(Mosaic, FourChannelsServedAtTwiceTheTileSizeWithEachTilesBoxesAtItsOffset) {
  const int port = vapipe::test::free_port();
  std::ofstream(dir / "cameras.json")
      << mosaic_config(nlohmann::json::array({camera(clip.string(), 4)}), dir, port,
                       {{"fps", 10},
                        {"output_path", (dir / "mosaic.mp4").string()},
                        {"results_path", (dir / "mosaic.jsonl").string()}})
             .dump(2);
  auto vapipe = run_vapipe(dir / "cameras.json", dir);
  ASSERT_TRUE(wait_until(
      [&] { return log_of(dir / "vapipe").find("mosaic 'mosaic': composing") != std::string::npos; }, 180s))
      << log_of(dir / "vapipe");
  const std::string url = fmt::format("rtsp://127.0.0.1:{}/mosaic", port);
  EXPECT_EQ(probed_size(url), fmt::format("{}x{}\n", 2 * kTileWidth, 2 * kTileHeight)) << url;

  const auto served = boxes_served_per_tile(url, dir, kTileWidth, kTileHeight, 30);
  const auto probe = vapipe::test::probe(dir / "served_0.h264");
  EXPECT_EQ(probe.codec, "h264");
  EXPECT_GE(probe.frames, 25);
  for (std::size_t tile = 0; tile < 4; ++tile)
    EXPECT_GT(served[tile], 0u) << "no box in tile " << tile << " of the served stream";

  // Ctrl-C: the mosaic's file is closed whole (every picture decodes) like the other outputs.
  vapipe->signal(SIGINT);
  ASSERT_TRUE(vapipe->wait_for(60s)) << "vapipe did not exit after SIGINT";
  EXPECT_EQ(vapipe->exit_code(), 0) << log_of(dir / "vapipe");

  const auto records = read_records(dir / "mosaic.jsonl");
  const auto sei = vapipe::test::read_back(dir / "mosaic.mp4");
  ASSERT_GE(records.size(), 25u);
  ASSERT_EQ(sei.size(), records.size()) << "one packet per composed picture";
  EXPECT_EQ(vapipe::test::probe(dir / "mosaic.mp4").frames, static_cast<int>(records.size()));
  // Each channel's own results, by (channel, frame).
  std::map<std::pair<int, std::int64_t>, nlohmann::json> channel_records;
  for (auto& record : read_records(dir / "channels.jsonl"))
    channel_records[{record.at("channel").get<int>(), record.at("frame").get<std::int64_t>()}] = record;

  std::size_t boxes_checked = 0;
  for (std::size_t i = 0; i < records.size(); ++i) {
    const auto& record = records[i];
    ASSERT_EQ(record.at("width"), 2 * kTileWidth);
    ASSERT_EQ(record.at("height"), 2 * kTileHeight);
    ASSERT_TRUE(sei[i].has_value()) << "picture " << i << " without SEI";
    const auto& detections = record.at("detections");
    ASSERT_EQ(sei[i]->size(), detections.size()) << "picture " << i;
    for (std::size_t k = 0; k < detections.size(); ++k) {
      const auto& box = detections[k].at("box");
      EXPECT_NEAR((*sei[i])[k].x1, box[0].get<float>(), 1e-3f);
      EXPECT_NEAR((*sei[i])[k].y1, box[1].get<float>(), 1e-3f);
      EXPECT_NEAR((*sei[i])[k].x2, box[2].get<float>(), 1e-3f);
      EXPECT_NEAR((*sei[i])[k].y2, box[3].get<float>(), 1e-3f);
    }
    // Every box is one of its channel's boxes of the tile's frame, moved by the tile's offset (scale 1),
    // clipped to the tile.
    std::map<int, nlohmann::json> tiles;
    for (const auto& tile : record.at("tiles")) tiles[tile.at("channel").get<int>()] = tile;
    for (const auto& d : detections) {
      const auto& tile = tiles.at(d.at("channel").get<int>());
      const float ox = tile.at("offset")[0].get<float>(), oy = tile.at("offset")[1].get<float>();
      EXPECT_EQ(tile.at("scale")[0].get<float>(), 1.0f);
      const auto source =
          channel_records.find({d.at("channel").get<int>(), tile.at("frame").get<std::int64_t>()});
      ASSERT_NE(source, channel_records.end()) << d.dump();
      bool found = false;
      for (const auto& s : source->second.at("detections")) {
        const auto& b = s.at("box");
        const auto& m = d.at("box");
        auto near = [](float a, float z) { return std::abs(a - z) < 1e-3f; };
        found = found || (near(std::clamp(b[0].get<float>(), 0.0f, 320.0f) + ox, m[0].get<float>()) &&
                          near(std::clamp(b[1].get<float>(), 0.0f, 240.0f) + oy, m[1].get<float>()) &&
                          near(std::clamp(b[2].get<float>(), 0.0f, 320.0f) + ox, m[2].get<float>()) &&
                          near(std::clamp(b[3].get<float>(), 0.0f, 240.0f) + oy, m[3].get<float>()) &&
                          s.at("class_id") == d.at("class_id"));
      }
      EXPECT_TRUE(found) << "mosaic box " << d.dump() << " is not a box of " << source->second.dump();
      ++boxes_checked;
    }
  }
  EXPECT_GT(boxes_checked, 0u);
}

// Channel 3 is a camera that never answers: its tile stays black, the other three fill, the mosaic's pictures
// are 1/10 s apart, and the other channels are never held back.
TEST_F(Mosaic, AChannelWithoutPicturesStaysBlackWhileTheOthersGoOn) {
  const std::string dead = fmt::format("rtsp://127.0.0.1:{}/nobody", vapipe::test::free_port());
  std::ofstream(dir / "cameras.json")
      << mosaic_config(nlohmann::json::array({camera(clip.string(), 3), camera(dead, 1)}), dir, 0,
                       {{"fps", 10},
                        {"tile_width", kTileWidth},
                        {"tile_height", kTileHeight},
                        {"output_path", (dir / "mosaic.mp4").string()},
                        {"results_path", (dir / "mosaic.jsonl").string()}})
             .dump(2);
  auto vapipe = run_vapipe(dir / "cameras.json", dir);
  // Until the mosaic shows frame 20 or later of each of the three channels with pictures (however slowly a
  // loaded machine gets there).
  ASSERT_TRUE(wait_until(
      [&] {
        const auto records = read_records(dir / "mosaic.jsonl");
        if (records.size() < 10) return false;
        const auto& tiles = records.back().at("tiles");
        return tiles[0].at("frame") >= 20 && tiles[1].at("frame") >= 20 && tiles[2].at("frame") >= 20;
      },
      180s))
      << log_of(dir / "vapipe");
  vapipe->signal(SIGINT);
  ASSERT_TRUE(vapipe->wait_for(60s)) << "vapipe did not exit after SIGINT";
  EXPECT_EQ(vapipe->exit_code(), 0) << log_of(dir / "vapipe");

  const auto records = read_records(dir / "mosaic.jsonl");
  ASSERT_GE(records.size(), 10u);
  const auto& last = records.back();
  EXPECT_EQ(last.at("tiles")[3].at("frame"), -1) << last.dump();
  for (int tile = 0; tile < 3; ++tile)
    EXPECT_GE(last.at("tiles")[tile].at("frame").get<int>(), 20) << last.dump();
  EXPECT_NEAR(last.at("pts_time").get<double>(), static_cast<double>(records.size() - 1) / 10.0, 1e-6);
  const auto luma =
      tile_luma(dir / "mosaic.mp4", static_cast<int>(records.size()) - 1, 2 * kTileWidth, 2 * kTileHeight);
  for (int tile = 0; tile < 3; ++tile)
    EXPECT_GT(luma[static_cast<std::size_t>(tile)], 40.0) << "tile " << tile;
  EXPECT_LT(luma[3], 10.0) << "the tile of the channel without pictures is not black";
  // The channels with pictures were never held back by the one without.
  std::array<int, 4> frames{};
  for (const auto& record : read_records(dir / "channels.jsonl"))
    ++frames[record.at("channel").get<std::size_t>()];
  for (int channel = 0; channel < 3; ++channel)
    EXPECT_GE(frames[static_cast<std::size_t>(channel)], 20) << "channel " << channel;
  EXPECT_EQ(frames[3], 0);
}

// Instance masks go into the mosaic like boxes: each mask's pixels (RLE in the mosaic's JSON Lines) lie inside
// its channel's tile, scaled with it, and a mask seen in a channel's own record is found at the tile's offset.
TEST_F(Mosaic, InstanceMasksAreMappedIntoTheirTiles) {
  VAPIPE_REQUIRE_MODEL("yolov8n-seg-int8.onnx");
  nlohmann::json config = mosaic_config(nlohmann::json::array({camera(clip.string(), 2)}), dir, 0,
                                        {{"fps", 10},
                                         {"columns", 2},
                                         {"tile_width", kTileWidth / 2},
                                         {"tile_height", kTileHeight / 2},
                                         {"output_path", (dir / "mosaic.mp4").string()},
                                         {"results_path", (dir / "mosaic.jsonl").string()}});
  config["models"][0]["path"] = (vapipe::test::models_dir() / "yolov8n-seg-int8.onnx").string();
  std::ofstream(dir / "cameras.json") << config.dump(2);
  auto vapipe = run_vapipe(dir / "cameras.json", dir);
  std::size_t masks = 0;
  ASSERT_TRUE(wait_until(
      [&] {
        masks = 0;
        if (vapipe->exited()) return true;  // reported below
        for (const auto& record : read_records(dir / "mosaic.jsonl"))
          for (const auto& d : record.at("detections")) masks += d.contains("mask") ? 1 : 0;
        return masks >= 20;
      },
      180s))
      << masks << " masks; " << log_of(dir / "vapipe");
  ASSERT_FALSE(vapipe->exited()) << log_of(dir / "vapipe");
  vapipe->signal(SIGINT);
  ASSERT_TRUE(vapipe->wait_for(60s)) << "vapipe did not exit after SIGINT";
  EXPECT_EQ(vapipe->exit_code(), 0) << log_of(dir / "vapipe");
  for (const auto& record : read_records(dir / "mosaic.jsonl")) {
    for (const auto& d : record.at("detections")) {
      if (!d.contains("mask")) continue;
      const int channel = d.at("channel").get<int>();
      const auto& tile = record.at("tiles")[static_cast<std::size_t>(channel)];
      const int tile_x = tile.at("offset")[0], tile_y = tile.at("offset")[1];
      const int tile_w = tile.at("size")[0], tile_h = tile.at("size")[1];
      const int x = d.at("mask").at("origin")[0], y = d.at("mask").at("origin")[1];
      const int h = d.at("mask").at("size")[0], w = d.at("mask").at("size")[1];
      EXPECT_GE(x, tile_x) << d.dump();
      EXPECT_GE(y, tile_y) << d.dump();
      EXPECT_LE(x + w, tile_x + tile_w) << d.dump();
      EXPECT_LE(y + h, tile_y + tile_h) << d.dump();
      // The mask covers part of its box (the box is mapped the same way).
      const auto& box = d.at("box");
      EXPECT_NEAR(x, box[0].get<double>(), 2.0) << d.dump();
      EXPECT_NEAR(y, box[1].get<double>(), 2.0) << d.dump();
      std::size_t ones = 0;
      const auto& counts = d.at("mask").at("counts");
      for (std::size_t i = 1; i < counts.size(); i += 2) ones += counts[i].get<std::size_t>();
      EXPECT_GT(ones, 0u) << d.dump();
    }
  }
}

// Pushed like any output: to tcp:// as the raw H.264 elementary stream sophon's pipeline_client reads (our SEI
// first in every access unit), received by an ffmpeg listening there.
TEST_F(Mosaic, PushedToATcpListenerWithTheTilesBoxes) {
  const int port = vapipe::test::free_port();
  const std::string target = fmt::format("tcp://127.0.0.1:{}", port);
  Child listener({"ffmpeg", "-nostdin", "-v", "error", "-f", "h264", "-i", target + "?listen=1", "-frames:v",
                  "30", "-c", "copy", "-f", "h264", "-y", (dir / "pushed.h264").string()},
                 dir / "pushed.h264.log");
  std::ofstream(dir / "cameras.json") << mosaic_config(nlohmann::json::array({camera(clip.string(), 4)}), dir,
                                                       0, {{"fps", 10}, {"output_path", target}})
                                             .dump(2);
  auto vapipe = run_vapipe(dir / "cameras.json", dir);
  ASSERT_TRUE(listener.wait_for(120s)) << log_of(dir / "pushed.h264") << log_of(dir / "vapipe");
  vapipe->signal(SIGINT);
  ASSERT_TRUE(vapipe->wait_for(60s)) << "vapipe did not exit after SIGINT";
  EXPECT_EQ(vapipe->exit_code(), 0) << log_of(dir / "vapipe");
  EXPECT_EQ(probed_size((dir / "pushed.h264").string()),
            fmt::format("{}x{}\n", 2 * kTileWidth, 2 * kTileHeight));
  const auto pushed = boxes_per_tile(dir / "pushed.h264", kTileWidth, kTileHeight);
  for (std::size_t tile = 0; tile < 4; ++tile)
    EXPECT_GT(pushed[tile], 0u) << "no box in tile " << tile << " of the pushed stream";
}

// sophon-pipeline's video_stitch demo config, paths changed only: four channels (its one camera repeated, as
// the demo does) composed 2x2 into a picture of the camera's size, served at /bitmain on the demo's port
// (554, else 1554, 1564, ...: whichever vapipe could bind is in its log).
TEST_F(ShippedConfigs, VideoStitchServesTheFourChannelsStitched) {
  std::ifstream in(fs::path(VAPIPE_SOURCE_DIR) / "configs" / "cameras_video_stitch.json");
  nlohmann::ordered_json config = nlohmann::ordered_json::parse(in);
  config["cards"][0]["cameras"][0]["address"] = clip.string();
  config["models"][0]["path"] = (vapipe::test::models_dir() / "yolofastestv2.onnx").string();
  std::ofstream(dir / "cameras_video_stitch.json") << config.dump(2);
  auto vapipe = run_vapipe(dir / "cameras_video_stitch.json", dir);
  const std::regex served(R"(bitmain: served at (rtsp://\S+))");
  std::smatch match;
  std::string log;
  ASSERT_TRUE(wait_until(
      [&] {
        log = log_of(dir / "vapipe");
        return log.find("mosaic 'bitmain': composing") != std::string::npos;
      },
      180s))
      << log;
  ASSERT_TRUE(std::regex_search(log, match, served)) << log;
  const std::string url = match[1];
  // Tiles of half the camera's size: the picture is 2x the tile size, the camera's own.
  EXPECT_EQ(probed_size(url), fmt::format("{}x{}\n", kTileWidth, kTileHeight)) << url;
  const auto boxes = boxes_served_per_tile(url, dir, kTileWidth / 2, kTileHeight / 2, 15);
  for (std::size_t tile = 0; tile < 4; ++tile) EXPECT_GT(boxes[tile], 0u) << "no box in tile " << tile;
  vapipe->signal(SIGINT);
  ASSERT_TRUE(vapipe->wait_for(60s)) << "vapipe did not exit after SIGINT";
  EXPECT_EQ(vapipe->exit_code(), 0);
  const std::string summary = log_of(dir / "vapipe");
  EXPECT_NE(summary.find("4 channel(s)"), std::string::npos) << summary;
}

}  // namespace
}  // namespace vapipe::server::test
