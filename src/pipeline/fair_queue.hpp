#pragma once
// The frame queue in front of a model's batcher: one bounded FIFO per channel, served round-robin, so a
// channel that bursts (an RTSP server flushing its buffer, a file read without pacing) cannot starve the
// others or make them drop frames (DeepStream's nvstreammux also takes frames source by source). Drop-oldest
// only ever drops from the pushing channel's own FIFO.
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <utility>

#include "core/error.hpp"

namespace vapipe::pipeline {

template <typename T>
class FairQueue {
 public:
  struct PushResult {
    bool pushed = false;       // false: closed, the item stays with the caller
    std::optional<T> dropped;  // drop-oldest: the channel's oldest item, made room for the new one
  };

  // Throws vapipe::Error when per_channel_capacity is 0.
  explicit FairQueue(std::size_t per_channel_capacity) : capacity_(per_channel_capacity) {
    if (capacity_ == 0) fail("FairQueue: capacity must be at least 1");
  }

  // Appends to `channel`'s FIFO. When it is full: drop_oldest removes and returns its oldest item, otherwise
  // the call waits for room (or close()).
  PushResult push(int channel, T&& item, bool drop_oldest) {
    PushResult result;
    std::unique_lock lock(mutex_);
    auto& fifo = fifos_[channel];
    if (!drop_oldest) not_full_.wait(lock, [&] { return closed_ || fifo.size() < capacity_; });
    if (closed_) return result;
    if (fifo.size() >= capacity_) {
      result.dropped.emplace(std::move(fifo.front()));
      fifo.pop_front();
      --count_;
    }
    fifo.push_back(std::move(item));
    ++count_;
    result.pushed = true;
    lock.unlock();
    not_empty_.notify_one();
    return result;
  }

  // The next item, taking channels in turn (the channel after the one served last that has an item).
  // Waits until `deadline`; std::nullopt on timeout, or when closed and empty.
  template <typename Clock, typename Duration>
  std::optional<T> pop_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    std::unique_lock lock(mutex_);
    not_empty_.wait_until(lock, deadline, [&] { return closed_ || count_ > 0; });
    return pop_locked(lock);
  }
  std::optional<T> pop() {
    std::unique_lock lock(mutex_);
    not_empty_.wait(lock, [&] { return closed_ || count_ > 0; });
    return pop_locked(lock);
  }

  void close() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    not_empty_.notify_all();
    not_full_.notify_all();
  }
  // A channel that left (removed at run time, never to push again): its FIFO, if empty, stops taking a
  // turn in the round robin. Returns false when it still holds items (they will be served first).
  bool forget_channel(int channel) {
    std::lock_guard lock(mutex_);
    const auto it = fifos_.find(channel);
    if (it == fifos_.end()) return true;
    if (!it->second.empty()) return false;
    fifos_.erase(it);
    return true;
  }
  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return count_;
  }
  std::size_t capacity_per_channel() const { return capacity_; }

 private:
  std::optional<T> pop_locked(std::unique_lock<std::mutex>& lock) {
    if (count_ == 0) return std::nullopt;
    // Round robin over channel ids: first FIFO with an item after last_channel_, wrapping around.
    auto it = fifos_.upper_bound(last_channel_);
    for (std::size_t visited = 0; visited <= fifos_.size(); ++visited, ++it) {
      if (it == fifos_.end()) it = fifos_.begin();
      if (!it->second.empty()) break;
    }
    std::optional<T> item(std::move(it->second.front()));
    it->second.pop_front();
    --count_;
    last_channel_ = it->first;
    lock.unlock();
    not_full_.notify_all();  // waiters are per channel: wake them all, each checks its own FIFO
    return item;
  }

  std::size_t capacity_;
  mutable std::mutex mutex_;
  std::condition_variable not_empty_;
  std::condition_variable not_full_;
  std::map<int, std::deque<T>> fifos_;
  std::size_t count_ = 0;
  int last_channel_ = -1;
  bool closed_ = false;
};

}  // namespace vapipe::pipeline
