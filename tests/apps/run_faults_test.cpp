// `vapipe run` against a hostile machine, through the real binary and real processes (issue 17): a closed
// terminal (SIGHUP), a results pipe whose reader exits early (`| head`), a camera address that is a FIFO
// nobody writes, two runs compiling one .onnx into an empty cache together, a planted cache entry, and
// failed channels giving their threads back. The light Yolo-FastestV2 model keeps each test to seconds.
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "io/test_clips.hpp"
#include "support/damage.hpp"
#include "support/process.hpp"
#include "support/test_data.hpp"

namespace vapipe {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr const char* kModel = "yolofastestv2.onnx";

// Shared by the tests of this binary; content-keyed and written atomically, so sharing is safe.
fs::path model_cache() { return fs::temp_directory_path() / "vapipe-tests" / "model-cache"; }

json camera(const std::string& address, int chan_num, const json& extra = json::object()) {
  json entry = {{"address", address}, {"chan_num", chan_num}, {"model_names", {"det"}}};
  entry.update(extra);
  return entry;
}

json config_of(const std::vector<json>& cameras, const json& model_extra) {
  json model = {{"name", "det"},
                {"path", (test::models_dir() / kModel).string()},
                {"obj_threshold", 0.25},
                {"nms_threshold", 0.45},
                {"class_threshold", 0.25}};
  model.update(model_extra);
  return {{"cards", {{{"devid", 0}, {"cameras", cameras}}}}, {"models", {model}}};
}

fs::path write_config(const fs::path& dir, const json& config, const std::string& name = "cameras.json") {
  const fs::path path = dir / name;
  std::ofstream(path) << config.dump(2);
  return path;
}

std::vector<std::string> read_lines(const fs::path& file) {
  std::vector<std::string> lines;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string read_text(const fs::path& file) {
  std::ifstream in(file);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Polls `done` (reading files another process writes) until it holds or `limit` passes.
template <typename Condition>
bool wait_until(Condition done, std::chrono::seconds limit) {
  const auto deadline = Clock::now() + limit;
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // polling another process's files
  }
  return true;
}

std::vector<std::string> run_command(const std::string& config) {
  return {VAPIPE_CLI, "run", "-c", config, "--cache-dir", model_cache().string(), "--stats", "none"};
}

// Every result line of a drained MP4 output is one of its frames, and ffprobe reads its index (moov).
void expect_drained_mp4(const fs::path& video, std::size_t result_lines) {
  const auto probe = test::probe(video);
  EXPECT_EQ(probe.codec, "h264") << video << ": no readable video (no moov atom?)";
  EXPECT_GT(probe.frames, 0) << video;
  EXPECT_EQ(static_cast<std::size_t>(probe.frames), result_lines) << video;
}

// Issue 17: SIGHUP (a closed terminal or SSH session) killed the run at once (rc 129) and the MP4 had no
// moov atom. It drains like SIGINT/SIGTERM.
TEST(RunFaults, SighupDrainsAndClosesTheRecording) {
  VAPIPE_REQUIRE_MODEL(kModel);
  const auto clip = io::test::mp4_clip();
  VAPIPE_REQUIRE_CLIP(clip, "MP4");
  const fs::path dir = test::scratch_dir();
  const fs::path results = dir / "det.jsonl";
  const auto config = write_config(
      dir, config_of({camera(clip.string(), 1, {{"loop", true}, {"pace", true}})},
                     {{"output_path", (dir / "det.mp4").string()}, {"results_path", results.string()}}));
  test::Child run(run_command(config.string()), dir / "run.log");
  ASSERT_TRUE(wait_until([&] { return read_lines(results).size() >= 20; }, std::chrono::seconds(120)))
      << read_text(dir / "run.log");
  run.signal(SIGHUP);
  ASSERT_TRUE(run.wait_for(std::chrono::seconds(60))) << "no exit within 60 s of SIGHUP";
  EXPECT_EQ(run.exit_code(), 0) << read_text(dir / "run.log");
  EXPECT_NE(read_text(dir / "run.log").find("SIGHUP: draining"), std::string::npos);
  expect_drained_mp4(dir / "det_0.mp4", read_lines(results).size());
}

// Issue 17: results_path "-" piped into `head` killed the run with SIGPIPE (rc 141) 0.3 s later, without a
// log line, and the MP4 output of the same run had no moov atom. Now that output stops (one line, its
// lost lines counted) and the run goes on to its end.
TEST(RunFaults, AResultsPipeClosedEarlyStopsOnlyThatOutput) {
  VAPIPE_REQUIRE_MODEL(kModel);
  const auto clip = io::test::mp4_clip();
  VAPIPE_REQUIRE_CLIP(clip, "MP4");
  const fs::path dir = test::scratch_dir();
  const auto config =
      write_config(dir, config_of({camera(clip.string(), 1, {{"loop", false}, {"pace", true}})},
                                  {{"output_path", (dir / "det.mp4").string()}, {"results_path", "-"}}));
  // `head -n 1` exits after the first line; the run's stdout is then a pipe without a reader.
  const auto result = test::run_shell(fmt::format(
      "bash -c 'timeout 120 {} run -c {} --cache-dir {} --stats none 2>{} | head -n 1 >/dev/null; "
      "echo ${{PIPESTATUS[0]}}'",
      VAPIPE_CLI, config.string(), model_cache().string(), (dir / "run.log").string()));
  const std::string log = read_text(dir / "run.log");
  EXPECT_EQ(result.out, "0\n") << log;
  EXPECT_NE(log.find("the reader closed the pipe (EPIPE)"), std::string::npos) << log;
  const auto probe = test::probe(dir / "det_0.mp4");
  EXPECT_EQ(probe.codec, "h264") << "no readable video (no moov atom?)";
  EXPECT_EQ(probe.frames, io::test::ffprobe_frame_count(clip)) << "the video output lost frames";
}

// Two channels: a FIFO nobody writes (channel 0) and a paced, looping clip (channel 1), results in det.jsonl.
struct FifoAndClip {
  fs::path dir = test::scratch_dir();
  fs::path fifo = dir / "camera.fifo";
  fs::path results = dir / "det.jsonl";
  fs::path config;
};

FifoAndClip fifo_and_clip(const fs::path& clip) {
  FifoAndClip run;
  if (::mkfifo(run.fifo.c_str(), 0600) != 0)
    throw std::runtime_error("mkfifo " + run.fifo.string() + " failed");
  run.config = write_config(run.dir, config_of({camera(run.fifo.string(), 1),
                                                camera(clip.string(), 1, {{"loop", true}, {"pace", true}})},
                                               {{"results_path", run.results.string()}}));
  return run;
}

// Issue 17: a camera address that is a FIFO nobody writes blocked its channel in open() forever:
// --duration started a drain that never ended. The FIFO's open times out (one line saying so), the other
// channel runs, and the run ends at its duration.
TEST(RunFaults, AFifoNobodyWritesTimesOutAndTheRunEndsAtItsDuration) {
  VAPIPE_REQUIRE_MODEL(kModel);
  const auto clip = io::test::mp4_clip();
  VAPIPE_REQUIRE_CLIP(clip, "MP4");
  const FifoAndClip setup = fifo_and_clip(clip);
  // The channel's open timeout is 5 s: a run of 8 s sees it fire, then drains.
  auto arguments = run_command(setup.config.string());
  arguments.insert(arguments.end(), {"--duration", "8"});
  const auto started = Clock::now();
  test::Child run(arguments, setup.dir / "run.log");
  const bool exited = run.wait_for(std::chrono::seconds(90));
  if (!exited) {
    const int fd = ::open(setup.fifo.c_str(), O_WRONLY | O_NONBLOCK);  // unblock the bug's open, then fail
    if (fd >= 0) ::close(fd);
  }
  ASSERT_TRUE(exited) << "the run did not end within 90 s of an 8 s --duration";
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  const std::string log = read_text(setup.dir / "run.log");
  EXPECT_EQ(run.exit_code(), 0) << log;
  EXPECT_NE(log.find("camera.fifo: open timed out: no data within 5000 ms"), std::string::npos) << log;
  EXPECT_LT(seconds, 60.0);
  int lines_of_the_clip = 0;
  for (const auto& line : read_lines(setup.results))
    lines_of_the_clip += json::parse(line).at("channel") == 1;
  EXPECT_GT(lines_of_the_clip, 10) << "the other channel did not run";
}

// A drain requested while a FIFO's open is still waiting ends it at once, not after its timeout.
TEST(RunFaults, SigintWhileAFifoOpenWaitsDrainsAtOnce) {
  VAPIPE_REQUIRE_MODEL(kModel);
  const auto clip = io::test::mp4_clip();
  VAPIPE_REQUIRE_CLIP(clip, "MP4");
  const FifoAndClip setup = fifo_and_clip(clip);
  test::Child run(run_command(setup.config.string()), setup.dir / "run.log");
  ASSERT_TRUE(wait_until([&] { return !read_lines(setup.results).empty(); }, std::chrono::seconds(120)))
      << read_text(setup.dir / "run.log");
  // The FIFO's channel waits for a writer until its 5 s timeout; the signal comes well before that
  // unless the machine is very slow, and either way the run must end promptly after it.
  run.signal(SIGINT);
  const auto signalled = Clock::now();
  const bool exited = run.wait_for(std::chrono::seconds(60));
  if (!exited) {
    const int fd = ::open(setup.fifo.c_str(), O_WRONLY | O_NONBLOCK);
    if (fd >= 0) ::close(fd);
  }
  ASSERT_TRUE(exited) << "no exit within 60 s of SIGINT";
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - signalled).count(), 20.0);
  EXPECT_EQ(run.exit_code(), 0) << read_text(setup.dir / "run.log");
}

// Issue 17: two runs starting together on one .onnx with an empty cache both failed (both wrote
// <name>.vpk.tmp; one could even map the file the other was truncating: SIGBUS). Each writes its own
// temporary file and renames it: all run. YOLOv5n, whose compile takes long enough for three processes to
// overlap (before the fix: failures in about half the trials of two processes on the 2-core machine).
TEST(RunFaults, ThreeRunsCompilingOneModelIntoAnEmptyCacheAllSucceed) {
  VAPIPE_REQUIRE_MODEL("yolov5n.onnx");
  const auto clip = io::test::mp4_clip();
  VAPIPE_REQUIRE_CLIP(clip, "MP4");
  const fs::path dir = test::scratch_dir();
  const fs::path cache = dir / "empty-cache";
  auto config = config_of({camera(clip.string(), 1, {{"loop", true}})}, json::object());
  config["models"][0]["path"] = (test::models_dir() / "yolov5n.onnx").string();
  const auto config_file = write_config(dir, config);
  constexpr int kRuns = 3;
  std::vector<std::unique_ptr<test::Child>> runs;
  for (int i = 0; i < kRuns; ++i) {
    runs.push_back(std::make_unique<test::Child>(
        std::vector<std::string>{VAPIPE_CLI, "run", "-c", config_file.string(), "--cache-dir", cache.string(),
                                 "--stats", "none", "--duration", "1"},
        dir / fmt::format("run{}.log", i)));
  }
  for (int i = 0; i < kRuns; ++i) {
    ASSERT_TRUE(runs[static_cast<std::size_t>(i)]->wait_for(std::chrono::seconds(300))) << "run " << i;
    EXPECT_EQ(runs[static_cast<std::size_t>(i)]->exit_code(), 0)
        << read_text(dir / fmt::format("run{}.log", i));
  }
  int entries = 0;
  for (const auto& entry : fs::directory_iterator(cache)) {
    EXPECT_EQ(entry.path().extension(), ".vpk") << "a temporary file was left: " << entry.path();
    ++entries;
  }
  EXPECT_EQ(entries, 1);
}

// Issue 17: a cache entry was trusted by its file name; a planted one was used silently. An entry whose
// recorded source hash is not the model's is compiled again (one warning saying so).
TEST(RunFaults, APlantedCacheEntryIsNotUsed) {
  VAPIPE_REQUIRE_MODEL(kModel);
  VAPIPE_REQUIRE_MODEL("ultraface_rfb320.onnx");
  const auto clip = io::test::mp4_clip();
  VAPIPE_REQUIRE_CLIP(clip, "MP4");
  const fs::path dir = test::scratch_dir();
  const fs::path cache = dir / "cache";
  const fs::path results = dir / "det.jsonl";
  const auto config = write_config(
      dir, config_of({camera(clip.string(), 1, {{"loop", false}})}, {{"results_path", results.string()}}));
  const std::string run = fmt::format("timeout 300 {} run -c {} --cache-dir {} --stats none", VAPIPE_CLI,
                                      config.string(), cache.string());
  ASSERT_EQ(test::run_shell(run + " >/dev/null 2>" + (dir / "first.log").string()).exit_code, 0)
      << read_text(dir / "first.log");
  std::vector<fs::path> entries;
  for (const auto& entry : fs::directory_iterator(cache)) entries.push_back(entry.path());
  ASSERT_EQ(entries.size(), 1U);
  // Another valid package under the entry's name: a face detector, not the model of the config.
  ASSERT_EQ(test::run_shell(fmt::format("timeout 300 {} compile {} -o {} 2>&1", VAPIPE_CLI,
                                        (test::models_dir() / "ultraface_rfb320.onnx").string(),
                                        entries[0].string()))
                .exit_code,
            0);
  ASSERT_EQ(test::run_shell(run + " >/dev/null 2>" + (dir / "second.log").string()).exit_code, 0)
      << read_text(dir / "second.log");
  const std::string log = read_text(dir / "second.log");
  EXPECT_NE(log.find("is not this model's"), std::string::npos) << log;
  EXPECT_EQ(static_cast<long>(read_lines(results).size()), io::test::ffprobe_frame_count(clip));
}

int thread_count(pid_t pid) {
  int threads = 0;
  std::error_code error;
  for (auto it = fs::directory_iterator(fmt::format("/proc/{}/task", pid), error);
       !error && it != fs::directory_iterator(); it.increment(error))
    ++threads;
  return threads;
}

// Issue 17: ended and failed channels kept their output thread until deleted (254 failed channels: 268
// threads). 24 channels of a file that is no video fail at once; the run's threads come back to those of
// a run with one such channel.
TEST(RunFaults, FailedChannelsGiveTheirThreadsBack) {
  VAPIPE_REQUIRE_MODEL(kModel);
  const auto clip = io::test::mp4_clip();
  VAPIPE_REQUIRE_CLIP(clip, "MP4");
  const fs::path dir = test::scratch_dir();
  const fs::path garbage = dir / "not-a-video.mp4";
  std::ofstream(garbage) << "this is not a video";
  // Runs one looping channel and `failed` channels of the garbage file; once every failure is logged and
  // results flow, `settled(threads)` is polled until it holds (or 30 s pass); returns the last count.
  auto threads_once_failed = [&](int failed, const std::function<bool(int)>& settled) {
    const auto results = dir / fmt::format("det{}.jsonl", failed);
    const auto config = write_config(dir,
                                     config_of({camera(clip.string(), 1, {{"loop", true}, {"pace", true}}),
                                                camera(garbage.string(), failed)},
                                               {{"results_path", results.string()}}),
                                     fmt::format("cameras{}.json", failed));
    const auto log = dir / fmt::format("run{}.log", failed);
    test::Child run(run_command(config.string()), log);
    auto failures = [&] {
      const std::string text = read_text(log);
      int count = 0;
      for (std::size_t at = text.find("the channel stops"); at != std::string::npos;
           at = text.find("the channel stops", at + 1))
        ++count;
      return count;
    };
    EXPECT_TRUE(wait_until([&] { return failures() == failed && read_lines(results).size() >= 5; },
                           std::chrono::seconds(120)))
        << read_text(log);
    int threads = thread_count(run.pid());
    wait_until([&] { return settled(threads = thread_count(run.pid())); }, std::chrono::seconds(30));
    run.signal(SIGINT);
    EXPECT_TRUE(run.wait_for(std::chrono::seconds(60)));
    EXPECT_EQ(run.exit_code(), 0) << read_text(log);
    return threads;
  };
  // One failed channel: its threads end a moment after its failure line; the fewest over a second of
  // samples is the reference (no state to wait for: the count only has to stop falling).
  int one = 1 << 20;
  int samples = 0;
  threads_once_failed(1, [&](int threads) {
    one = std::min(one, threads);
    return ++samples >= 10;
  });
  const int many = threads_once_failed(24, [&](int threads) { return threads <= one + 2; });
  EXPECT_GT(one, 0);
  EXPECT_LE(many, one + 2) << "24 failed channels hold " << many - one << " more threads than one";
}

// The summary row of `channel` in a run's final table: column name -> value.
std::map<std::string, std::string> summary_row(const std::string& log, int channel) {
  std::istringstream lines(log);
  std::vector<std::string> header;
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::vector<std::string> fields{std::istream_iterator<std::string>(words), {}};
    if (!fields.empty() && fields[0] == "ch" && line.find("pkt_drop") != std::string::npos) header = fields;
    if (!header.empty() && fields.size() >= header.size() && fields[0] == std::to_string(channel)) {
      std::map<std::string, std::string> row;
      for (std::size_t i = 0; i < header.size(); ++i) row[header[i]] = fields[i];
      return row;
    }
  }
  return {};
}

// Issue 17: a corrupt H.264 file logged 43 of FFmpeg's decoder lines in 10 s (each names another
// macroblock, so the per-text limit let all of them through) while the docs promise 3 per connection.
// Now 3 lines naming the channel, then one line with the count of the others.
TEST(RunFaults, ACorruptH264FileLogsAFewDecoderLinesAndCountsTheRest) {
  VAPIPE_REQUIRE_MODEL(kModel);
  const auto clip = io::test::h264_clip();
  VAPIPE_REQUIRE_CLIP(clip, "Annex-B");
  const fs::path dir = test::scratch_dir();
  const fs::path corrupt = dir / "corrupt.h264";
  test::write_bytes(corrupt, test::damaged(test::read_bytes(clip), 6));
  const auto config = write_config(dir, config_of({camera(corrupt.string(), 1, {{"loop", false}})},
                                                  {{"results_path", (dir / "det.jsonl").string()}}));
  test::Child run(run_command(config.string()), dir / "run.log");
  ASSERT_TRUE(run.wait_for(std::chrono::seconds(120))) << "the 60-frame file did not end in 120 s";
  const std::string log = read_text(dir / "run.log");
  EXPECT_EQ(run.exit_code(), 0) << log;
  int ffmpeg_lines = 0;
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    if (line.find("ffmpeg:") == std::string::npos) continue;
    ++ffmpeg_lines;
    EXPECT_NE(line.find("channel 0 (" + corrupt.string() + "): ffmpeg: "), std::string::npos) << line;
  }
  EXPECT_GE(ffmpeg_lines, 1) << log;
  EXPECT_LE(ffmpeg_lines, 3) << log;
  const std::regex summary(
      R"(channel 0 \(.*\): (\d+) more FFmpeg message\(s\) not logged on this connection)");
  std::smatch match;
  ASSERT_TRUE(std::regex_search(log, match, summary)) << log;
  EXPECT_GT(std::stoi(match[1].str()), 0);
  EXPECT_FALSE(summary_row(log, 0).empty()) << log;
}

// Issue 17: the video lost on a full disk was not all counted: packets went into FFmpeg's 32 KiB write
// buffer, were counted as written, and were lost when the buffer's write failed. The channel's file is a
// link to /dev/full (every write fails with ENOSPC, as on a full disk; output_path "/dev/full" itself
// would name /dev/full_0, a new file in /dev): every packet is counted in pkt_drop, detection goes on.
TEST(RunFaults, AVideoOutputOnAFullDiskCountsEveryLostPacketAndTheChannelGoesOn) {
  VAPIPE_REQUIRE_MODEL(kModel);
  const auto clip = io::test::h264_clip();
  VAPIPE_REQUIRE_CLIP(clip, "Annex-B");
  const fs::path dir = test::scratch_dir();
  fs::create_symlink("/dev/full", dir / "det_0.ts");
  const fs::path results = dir / "det.jsonl";
  const auto config = write_config(
      dir, config_of({camera(clip.string(), 1, {{"loop", false}})},
                     {{"output_path", (dir / "det.ts").string()}, {"results_path", results.string()}}));
  test::Child run(run_command(config.string()), dir / "run.log");
  ASSERT_TRUE(run.wait_for(std::chrono::seconds(120))) << "the 60-frame file did not end in 120 s";
  const std::string log = read_text(dir / "run.log");
  EXPECT_EQ(run.exit_code(), 0) << log;
  EXPECT_NE(log.find("det_0.ts: write failed: No space left on device"), std::string::npos) << log;
  EXPECT_EQ(read_lines(results).size(), 60U) << "detection stopped with the video output";
  const auto row = summary_row(log, 0);
  ASSERT_FALSE(row.empty()) << log;
  EXPECT_EQ(row.at("decoded"), "60") << log;
  EXPECT_EQ(row.at("pkt_drop"), "60") << "a packet lost on the full disk was not counted\n" << log;
}

}  // namespace
}  // namespace vapipe
