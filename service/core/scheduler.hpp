// Time and deferred work for the arbiter, passed in so tests can drive it
// with a fake clock. The service's implementation sits on Asio timers.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

namespace discarbiter::core {

class Scheduler {
 public:
  using TimerId = std::uint64_t;
  using Clock = std::chrono::steady_clock;

  virtual ~Scheduler() = default;

  virtual Clock::time_point now() const = 0;
  /// Wall-clock time, for the RFC 3339 times in status.
  virtual std::chrono::system_clock::time_point wall_now() const = 0;
  /// Runs fn on the arbiter's strand at or after deadline, unless cancelled.
  virtual TimerId schedule_at(Clock::time_point deadline, std::function<void()> fn) = 0;
  /// Cancels a timer; a timer that already ran or was cancelled is ignored.
  virtual void cancel(TimerId id) = 0;
};

}  // namespace discarbiter::core
