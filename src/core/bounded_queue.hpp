#pragma once
// The only way pipeline stages talk to each other (docs/house-style.md, "Threads"): a fixed-capacity FIFO with
// blocking push/pop on condition variables, a drop-oldest push for live sources, and close() for shutdown.
// Storage is a ring allocated once at construction, so steady-state push/pop never allocate.
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "core/error.hpp"

namespace vapipe {

template <typename T>
class BoundedQueue {
 public:
  // What push_drop_oldest did: `pushed` is false only when the queue was closed (the item is then left with the
  // caller); `dropped` holds the oldest item when room had to be made for the new one.
  struct DropOldestResult {
    bool pushed = false;
    std::optional<T> dropped;
  };

  // Throws vapipe::Error when capacity is 0.
  explicit BoundedQueue(std::size_t capacity) : slots_(capacity) {
    if (capacity == 0) fail("BoundedQueue: capacity must be at least 1");
  }
  BoundedQueue(const BoundedQueue&) = delete;
  BoundedQueue& operator=(const BoundedQueue&) = delete;

  // Waits for room, then appends. Returns false (and leaves `item` untouched) when the queue is or gets closed.
  bool push(T&& item) {
    std::unique_lock lock(mutex_);
    not_full_.wait(lock, [&] { return closed_ || count_ < slots_.size(); });
    if (closed_) return false;
    emplace_locked(std::move(item));
    lock.unlock();
    not_empty_.notify_one();
    return true;
  }
  bool push(const T& item) {
    T copy(item);
    return push(std::move(copy));
  }

  // Appends if there is room right now. Returns false (and leaves `item` untouched) when full or closed.
  bool try_push(T&& item) {
    std::unique_lock lock(mutex_);
    if (closed_ || count_ == slots_.size()) return false;
    emplace_locked(std::move(item));
    lock.unlock();
    not_empty_.notify_one();
    return true;
  }

  // Never waits: when full, the oldest item is removed and handed back so the caller can count (and release) it.
  // This is the live-source policy: delay stays bounded, frames are lost instead.
  DropOldestResult push_drop_oldest(T&& item) {
    DropOldestResult result;
    std::unique_lock lock(mutex_);
    if (closed_) return result;
    if (count_ == slots_.size()) result.dropped = take_locked();
    emplace_locked(std::move(item));
    result.pushed = true;
    lock.unlock();
    not_empty_.notify_one();
    return result;
  }

  // Waits for an item. After close(), returns the remaining items in order, then std::nullopt.
  std::optional<T> pop() {
    std::unique_lock lock(mutex_);
    not_empty_.wait(lock, [&] { return closed_ || count_ > 0; });
    return pop_locked(lock);
  }

  // Like pop(), but gives up at `deadline` (std::nullopt). The batcher uses it for its batch timeout.
  template <typename Clock, typename Duration>
  std::optional<T> pop_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    std::unique_lock lock(mutex_);
    not_empty_.wait_until(lock, deadline, [&] { return closed_ || count_ > 0; });
    return pop_locked(lock);
  }

  template <typename Rep, typename Period>
  std::optional<T> pop_for(const std::chrono::duration<Rep, Period>& timeout) {
    return pop_until(std::chrono::steady_clock::now() + timeout);
  }

  // Returns an item if one is there right now.
  std::optional<T> try_pop() {
    std::unique_lock lock(mutex_);
    return pop_locked(lock);
  }

  // Wakes every waiter. Pushes fail from now on; pops drain what is left, then return std::nullopt. Idempotent.
  void close() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    not_empty_.notify_all();
    not_full_.notify_all();
  }

  bool closed() const {
    std::lock_guard lock(mutex_);
    return closed_;
  }
  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return count_;
  }
  bool empty() const { return size() == 0; }
  std::size_t capacity() const { return slots_.size(); }

 private:
  void emplace_locked(T&& item) {
    slots_[(head_ + count_) % slots_.size()].emplace(std::move(item));
    ++count_;
  }
  T take_locked() {
    auto& slot = slots_[head_];
    T item(std::move(*slot));
    slot.reset();
    head_ = (head_ + 1) % slots_.size();
    --count_;
    return item;
  }
  std::optional<T> pop_locked(std::unique_lock<std::mutex>& lock) {
    if (count_ == 0) return std::nullopt;
    std::optional<T> item(take_locked());
    lock.unlock();
    not_full_.notify_one();
    return item;
  }

  mutable std::mutex mutex_;
  std::condition_variable not_empty_;
  std::condition_variable not_full_;
  std::vector<std::optional<T>> slots_;
  std::size_t head_ = 0;
  std::size_t count_ = 0;
  bool closed_ = false;
};

}  // namespace vapipe
