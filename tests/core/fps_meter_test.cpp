#include "core/fps_meter.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <random>
#include <string_view>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/error.hpp"

namespace vapipe {
namespace {

using namespace std::chrono_literals;

// A fake clock: a fixed origin plus whatever the test says.
FpsMeter::Clock::time_point at(std::chrono::milliseconds offset) {
  return FpsMeter::Clock::time_point{} + offset;
}

TEST(FpsMeter, ZeroUntilTwoSamples) {
  FpsMeter meter;
  EXPECT_EQ(meter.fps(), 0.0);
  meter.sample(0, at(0ms));
  EXPECT_EQ(meter.fps(), 0.0);
  meter.sample(25, at(1000ms));
  EXPECT_DOUBLE_EQ(meter.fps(), 25.0);
}

TEST(FpsMeter, SlidingWindowForgetsOldRates) {
  FpsMeter meter(5s);
  std::uint64_t total = 0;
  // 10 s at 10 fps, then 10 s at 30 fps, sampled once a second.
  for (int second = 0; second <= 10; ++second) {
    meter.sample(total, at(std::chrono::seconds(second)));
    total += 10;
  }
  EXPECT_DOUBLE_EQ(meter.fps(), 10.0);
  total -= 10;
  for (int second = 11; second <= 20; ++second) {
    total += 30;
    meter.sample(total, at(std::chrono::seconds(second)));
    if (second == 12) {
      EXPECT_NEAR(meter.fps(), (3 * 10 + 2 * 30) / 5.0, 1e-9);  // the window straddles the change
    }
  }
  EXPECT_DOUBLE_EQ(meter.fps(), 30.0);
}

TEST(FpsMeter, IrregularSamplesUseTheirRealSpan) {
  FpsMeter meter(5s);
  meter.sample(0, at(0ms));
  meter.sample(12, at(500ms));
  meter.sample(30, at(1500ms));
  EXPECT_DOUBLE_EQ(meter.fps(), 20.0);
}

TEST(FpsMeter, CounterResetRestartsTheMeasurement) {
  FpsMeter meter;
  meter.sample(100, at(0ms));
  meter.sample(200, at(1000ms));
  meter.sample(5, at(2000ms));
  EXPECT_EQ(meter.fps(), 0.0);
  meter.sample(15, at(3000ms));
  EXPECT_DOUBLE_EQ(meter.fps(), 10.0);
}

TEST(FpsMeter, RingSmallerThanWindowKeepsNewestSamples) {
  FpsMeter meter(60s, 3);
  for (int second = 0; second < 10; ++second) {
    meter.sample(static_cast<std::uint64_t>(second < 7 ? second : 7 + (second - 7) * 5),
                 at(std::chrono::seconds(second)));
  }
  EXPECT_DOUBLE_EQ(meter.fps(), 5.0);  // samples 7, 8, 9 only
}

TEST(FpsMeter, RejectsUselessParameters) {
  EXPECT_THROW((FpsMeter{5s, 1}), Error);
  EXPECT_THROW(FpsMeter{0s}, Error);
}

TEST(StatsLine, MatchesSophonPipelineFormat) {
  std::tm t{};
  t.tm_year = 2022 - 1900;
  t.tm_mon = 10;
  t.tm_mday = 6;
  t.tm_hour = 9;
  t.tm_min = 8;
  t.tm_sec = 7;
  EXPECT_EQ(format_stats_line(t, 24.0, 0, 24.0), "[2022-11-06:09:08:07] total fps =24.0,ch=0: speed=24.0");
  EXPECT_EQ(format_stats_line(t, 99.96, 0, 24.04), "[2022-11-06:09:08:07] total fps =100.0,ch=0: speed=24.0");
  EXPECT_EQ(format_stats_line(t, 0.0, 3, 0.0), "[2022-11-06:09:08:07] total fps =0.0,ch=3: speed=0.0");
}

TEST(StatsLine, TimeTOverloadUsesLocalTime) {
  const std::time_t now = 1700000000;
  std::tm local{};
  localtime_r(&now, &local);
  EXPECT_EQ(format_stats_line(now, 1.0, 0, 1.0), format_stats_line(local, 1.0, 0, 1.0));
}

TEST(StatsTable, OneAlignedRowPerChannel) {
  std::array<ChannelStats, 2> channels;
  channels[0] = ChannelStats{0, 24.0, 480, 0, 2, {3.1, 12.4}, 41.0, 40.0, 52.04};
  channels[1] = ChannelStats{1, 12.5, 250, 17, 16, {3.0}, 120.26, 110.0, 480.5};
  constexpr std::array<std::string_view, 2> stages{"decode", "infer"};
  const std::string table = format_stats_table(channels, stages);
  EXPECT_EQ(table,
            "  ch      fps   frames  dropped  queue decode_ms infer_ms latency_ms    p50_ms    p99_ms\n"
            "   0     24.0      480        0      2      3.10    12.40       41.0      40.0      52.0\n"
            "   1     12.5      250       17     16      3.00        -      120.3     110.0     480.5\n");
}

TEST(RecentPercentiles, NearestRankOverTheLastObservations) {
  RecentPercentiles recent;
  EXPECT_EQ(recent.percentile(50), 0.0) << "nothing recorded yet";
  // 1..100 in a shuffled order: the nearest-rank p50 is 50, p99 is 99, p100 is 100.
  std::vector<int> values(100);
  for (int i = 0; i < 100; ++i) values[static_cast<std::size_t>(i)] = i + 1;
  std::mt19937 rng(7);
  std::shuffle(values.begin(), values.end(), rng);
  for (int v : values) recent.record(v);
  const auto [p50, p99, p100] = recent.percentiles(std::array<double, 3>{50, 99, 100});
  EXPECT_EQ(p50, 50.0);
  EXPECT_EQ(p99, 99.0);
  EXPECT_EQ(p100, 100.0);
  EXPECT_EQ(recent.percentile(1), 1.0);
  // A full window of newer, larger values replaces the old ones entirely.
  for (std::size_t i = 0; i < RecentPercentiles::kCapacity; ++i)
    recent.record(1000.0 + static_cast<double>(i));
  EXPECT_EQ(recent.percentile(1), 1000.0 + std::ceil(0.01 * RecentPercentiles::kCapacity) - 1);
  EXPECT_EQ(recent.percentile(100), 1000.0 + RecentPercentiles::kCapacity - 1);
}

TEST(RecentPercentiles, AWriterAndReadersAtOnceSeeOnlyRecordedValues) {
  RecentPercentiles recent;
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int i = 0; i < 20000; ++i) recent.record(i % 2 == 0 ? 10.0 : 20.0);
    done = true;
  });
  while (!done) {
    const double p = recent.percentile(50);
    ASSERT_TRUE(p == 0.0 || p == 10.0 || p == 20.0) << p;
  }
  writer.join();
  EXPECT_EQ(recent.percentile(50), 10.0);  // 256 of each among the last 512
  EXPECT_EQ(recent.percentile(51), 20.0);
}

}  // namespace
}  // namespace vapipe
