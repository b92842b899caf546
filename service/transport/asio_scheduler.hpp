// core::Scheduler on one Asio steady timer, for the service's single strand.
//
// N.B. why one timer, armed lazily: every drive job has a watchdog, almost
// always cancelled a few microseconds later, and each one's deadline is a
// little later than the last. An Asio timer per watchdog cost a heap
// allocation and, being the earliest timer each time, a timerfd_settime
// system call per job. Here the timer is armed at the earliest deadline only
// when a new deadline comes before the one it is armed for; a cancelled
// deadline just leaves the map, and when the timer expires it runs what is
// due and re-arms for the earliest deadline left (if any). The cost of
// laziness: at most one wake-up, at a cancelled deadline, that finds
// nothing to run.
#pragma once

#include <utility>  // N.B. before Asio: Boost 1.74's awaitable.hpp needs std::exchange

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <map>
#include <optional>
#include <unordered_map>

#include "core/scheduler.hpp"

namespace discarbiter::transport {

class AsioScheduler final : public core::Scheduler {
 public:
  explicit AsioScheduler(boost::asio::io_context& io) : timer_(io) {}

  Clock::time_point now() const override { return Clock::now(); }
  std::chrono::system_clock::time_point wall_now() const override {
    return std::chrono::system_clock::now();
  }
  TimerId schedule_at(Clock::time_point deadline, std::function<void()> fn) override;
  void cancel(TimerId id) override;

  /// How many times the Asio timer has been armed (for tests).
  std::uint64_t timer_arms() const { return arms_; }

 private:
  using Key = std::pair<Clock::time_point, TimerId>;  // in deadline order, then in order made

  void arm(Clock::time_point deadline);
  void on_expiry();

  boost::asio::steady_timer timer_;
  std::optional<Clock::time_point> armed_for_;  // the timer's deadline while it waits
  std::uint64_t generation_ = 0;                // of the wait in progress
  std::uint64_t arms_ = 0;
  TimerId next_ = 1;
  std::map<Key, std::function<void()>> due_;
  std::unordered_map<TimerId, Clock::time_point> deadlines_;  // of the timers in due_
};

}  // namespace discarbiter::transport
