// The per-channel, round-robin frame queue in front of a model's batcher.
#include "pipeline/fair_queue.hpp"

#include <atomic>
#include <chrono>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace vapipe::pipeline {
namespace {

using Item = std::pair<int, int>;  // channel, sequence

std::vector<Item> drain(FairQueue<Item>& queue) {
  std::vector<Item> items;
  while (auto item = queue.pop_until(std::chrono::steady_clock::now())) items.push_back(*item);
  return items;
}

TEST(FairQueue, ChannelsAreServedInTurnWhateverTheirBacklog) {
  FairQueue<Item> queue(8);
  for (int i = 0; i < 4; ++i) queue.push(0, {0, i}, false);  // a bursting channel
  queue.push(1, {1, 0}, false);
  queue.push(2, {2, 0}, false);
  queue.push(2, {2, 1}, false);
  const std::vector<Item> expected = {{0, 0}, {1, 0}, {2, 0}, {0, 1}, {2, 1}, {0, 2}, {0, 3}};
  EXPECT_EQ(drain(queue), expected);
}

TEST(FairQueue, AForgottenChannelLeavesTheRoundRobinOnlyOnceEmpty) {
  FairQueue<Item> queue(8);
  queue.push(0, {0, 0}, false);
  queue.push(1, {1, 0}, false);
  EXPECT_FALSE(queue.forget_channel(1)) << "its queued frame must still be served";
  EXPECT_TRUE(queue.forget_channel(9)) << "a channel that never pushed";
  const std::vector<Item> both = {{0, 0}, {1, 0}};
  EXPECT_EQ(drain(queue), both);
  EXPECT_TRUE(queue.forget_channel(1));
  queue.push(0, {0, 1}, false);
  queue.push(2, {2, 0}, false);
  const std::vector<Item> rest = {{2, 0}, {0, 1}};  // turn after channel 1 (gone) is channel 2
  EXPECT_EQ(drain(queue), rest);
}

TEST(FairQueue, DropOldestOnlyDropsFromThePushingChannel) {
  FairQueue<Item> queue(2);
  queue.push(5, {5, 0}, false);
  queue.push(7, {7, 0}, true);
  queue.push(7, {7, 1}, true);
  auto result = queue.push(7, {7, 2}, true);  // channel 7 is full: its own oldest goes
  EXPECT_TRUE(result.pushed);
  ASSERT_TRUE(result.dropped.has_value());
  EXPECT_EQ(*result.dropped, Item(7, 0));
  EXPECT_EQ(queue.size(), 3u);
  const std::vector<Item> expected = {{5, 0}, {7, 1}, {7, 2}};
  EXPECT_EQ(drain(queue), expected);
}

TEST(FairQueue, BlockingPushWaitsForRoomInItsOwnChannel) {
  FairQueue<Item> queue(1);
  queue.push(0, {0, 0}, false);
  queue.push(1, {1, 0}, false);  // another channel's room is separate
  std::atomic<bool> pushed{false};
  std::thread producer([&] {
    queue.push(0, {0, 1}, false);
    pushed = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(pushed.load()) << "push into a full channel did not wait";
  EXPECT_EQ(queue.pop(), Item(0, 0));
  producer.join();
  EXPECT_TRUE(pushed.load());
  const std::vector<Item> expected = {{1, 0}, {0, 1}};
  EXPECT_EQ(drain(queue), expected);
}

TEST(FairQueue, CloseWakesWaitersAndDrainsWhatIsLeft) {
  FairQueue<Item> queue(1);
  queue.push(0, {0, 0}, false);
  std::thread producer([&] {
    auto result = queue.push(0, {0, 1}, false);  // waits, then sees the close
    EXPECT_FALSE(result.pushed);
  });
  std::thread consumer_waiting_on_empty([&] {
    FairQueue<Item> empty(1);
    std::thread closer([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      empty.close();
    });
    EXPECT_EQ(empty.pop(), std::nullopt);
    closer.join();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  queue.close();
  producer.join();
  consumer_waiting_on_empty.join();
  EXPECT_EQ(queue.pop(), Item(0, 0));
  EXPECT_EQ(queue.pop(), std::nullopt);
  EXPECT_FALSE(queue.push(3, {3, 0}, true).pushed);
}

}  // namespace
}  // namespace vapipe::pipeline
