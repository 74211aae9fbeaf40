#include "core/bounded_queue.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace vapipe {
namespace {

using namespace std::chrono_literals;

TEST(BoundedQueue, RejectsZeroCapacity) { EXPECT_THROW(BoundedQueue<int>(0), Error); }

TEST(BoundedQueue, FifoOrderAndTryPushWhenFull) {
  BoundedQueue<int> queue(2);
  EXPECT_TRUE(queue.try_push(1));
  EXPECT_TRUE(queue.try_push(2));
  int third = 3;
  EXPECT_FALSE(queue.try_push(std::move(third)));
  EXPECT_EQ(third, 3);
  EXPECT_EQ(queue.size(), 2u);
  EXPECT_EQ(queue.pop(), 1);
  EXPECT_EQ(queue.pop(), 2);
  EXPECT_EQ(queue.try_pop(), std::nullopt);
}

TEST(BoundedQueue, MoveOnlyItemsStayWithCallerWhenRejected) {
  BoundedQueue<std::unique_ptr<int>> queue(1);
  EXPECT_TRUE(queue.push(std::make_unique<int>(1)));
  auto second = std::make_unique<int>(2);
  EXPECT_FALSE(queue.try_push(std::move(second)));
  ASSERT_NE(second, nullptr);
  queue.close();
  EXPECT_FALSE(queue.push(std::move(second)));
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(*second, 2);
}

TEST(BoundedQueue, DropOldestHandsBackTheOldestItem) {
  BoundedQueue<int> queue(2);
  EXPECT_FALSE(queue.push_drop_oldest(1).dropped.has_value());
  EXPECT_FALSE(queue.push_drop_oldest(2).dropped.has_value());
  auto result = queue.push_drop_oldest(3);
  EXPECT_TRUE(result.pushed);
  EXPECT_EQ(result.dropped, 1);
  EXPECT_EQ(queue.size(), 2u);
  EXPECT_EQ(queue.pop(), 2);
  EXPECT_EQ(queue.pop(), 3);
  queue.close();
  EXPECT_FALSE(queue.push_drop_oldest(4).pushed);
}

TEST(BoundedQueue, PushBlocksUntilThereIsRoom) {
  BoundedQueue<int> queue(1);
  ASSERT_TRUE(queue.push(1));
  std::atomic<bool> pushed{false};
  std::thread producer([&] {
    queue.push(2);
    pushed = true;
  });
  // Not a synchronization sleep: it only gives a wrong implementation the chance to push too early.
  std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(pushed.load());
  EXPECT_EQ(queue.pop(), 1);
  producer.join();
  EXPECT_TRUE(pushed.load());
  EXPECT_EQ(queue.pop(), 2);
}

TEST(BoundedQueue, PopForTimesOutOnEmptyQueue) {
  BoundedQueue<int> queue(4);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(queue.pop_for(30ms), std::nullopt);
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_GE(waited, 30ms);
  EXPECT_LT(waited, 5s);
  queue.push(7);
  EXPECT_EQ(queue.pop_for(1s), 7);
}

TEST(BoundedQueue, PopForReturnsAsSoonAsAnItemArrives) {
  BoundedQueue<int> queue(4);
  std::thread producer([&] { queue.push(5); });
  EXPECT_EQ(queue.pop_for(60s), 5);
  producer.join();
}

TEST(BoundedQueue, CloseDrainsRemainingItemsThenEnds) {
  BoundedQueue<int> queue(4);
  queue.push(1);
  queue.push(2);
  queue.close();
  queue.close();  // idempotent
  EXPECT_TRUE(queue.closed());
  EXPECT_FALSE(queue.push(3));
  EXPECT_FALSE(queue.try_push(3));
  EXPECT_EQ(queue.pop(), 1);
  EXPECT_EQ(queue.pop_for(1s), 2);
  EXPECT_EQ(queue.pop(), std::nullopt);
  EXPECT_EQ(queue.pop_for(10s), std::nullopt);  // returns at once: closed and empty
}

TEST(BoundedQueue, CloseWakesBlockedPoppersAndPushers) {
  BoundedQueue<int> empty_queue(1);
  BoundedQueue<int> full_queue(1);
  full_queue.push(0);
  std::vector<std::thread> threads;
  std::atomic<int> woken{0};
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&] {
      if (!empty_queue.pop().has_value()) ++woken;
    });
    threads.emplace_back([&] {
      if (!full_queue.push(1)) ++woken;
    });
  }
  empty_queue.close();
  full_queue.close();
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(woken.load(), 6);
  EXPECT_EQ(full_queue.pop(), 0);  // what was in stays poppable
}

// Every item delivered exactly once, in each producer's order, with producers and consumers racing on a small
// queue; ends by close() once all producers are done.
TEST(BoundedQueue, ManyProducersManyConsumersDeliverEachItemOnceInProducerOrder) {
  constexpr int kProducers = 4;
  constexpr int kConsumers = 3;
  constexpr int kItemsPerProducer = 20000;
  struct Item {
    int producer;
    int sequence;
  };
  BoundedQueue<Item> queue(8);
  std::vector<std::vector<Item>> received(kConsumers);
  std::vector<std::thread> consumers;
  for (int c = 0; c < kConsumers; ++c) {
    consumers.emplace_back([&, c] {
      while (auto item = queue.pop()) received[static_cast<std::size_t>(c)].push_back(*item);
    });
  }
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kItemsPerProducer; ++i) {
        // Mix the blocking and the non-blocking push.
        if (i % 3 == 0) {
          Item item{p, i};
          while (!queue.try_push(std::move(item))) std::this_thread::yield();
        } else {
          ASSERT_TRUE(queue.push(Item{p, i}));
        }
      }
    });
  }
  for (auto& producer : producers) producer.join();
  queue.close();
  for (auto& consumer : consumers) consumer.join();

  std::vector<std::vector<int>> seen(kProducers, std::vector<int>(kItemsPerProducer, 0));
  for (const auto& items : received) {
    // One consumer pops in queue order, so per producer its sequence numbers must increase.
    std::vector<int> last(kProducers, -1);
    for (const auto& item : items) {
      ASSERT_GT(item.sequence, last[static_cast<std::size_t>(item.producer)]);
      last[static_cast<std::size_t>(item.producer)] = item.sequence;
      ++seen[static_cast<std::size_t>(item.producer)][static_cast<std::size_t>(item.sequence)];
    }
  }
  for (int p = 0; p < kProducers; ++p) {
    for (int i = 0; i < kItemsPerProducer; ++i) {
      ASSERT_EQ(seen[static_cast<std::size_t>(p)][static_cast<std::size_t>(i)], 1)
          << "producer " << p << " item " << i;
    }
  }
}

}  // namespace
}  // namespace vapipe
