#include "transport/asio_scheduler.hpp"

#include <chrono>

#include <gtest/gtest.h>

namespace discarbiter::transport {
namespace {

using namespace std::chrono_literals;
using Clock = core::Scheduler::Clock;

TEST(AsioScheduler, RunsATimerAtItsDeadline) {
  boost::asio::io_context io;
  AsioScheduler scheduler(io);
  bool ran = false;
  scheduler.schedule_at(Clock::now() - 1s, [&] { ran = true; });
  io.run();
  EXPECT_TRUE(ran);
}

TEST(AsioScheduler, ACancelledTimerNeverRuns) {
  boost::asio::io_context io;
  AsioScheduler scheduler(io);
  bool ran = false;
  const auto id = scheduler.schedule_at(Clock::now() + 1h, [&] { ran = true; });
  scheduler.cancel(id);
  io.run();
  EXPECT_FALSE(ran);
}

// N.B. both deadlines have passed before the io_context runs, so one pass of
// its reactor finds both timers expired and queues both completions, the
// earlier deadline first: the first timer's fn cancels the second while the
// second's completion is already queued (with success, not operation_aborted).
// The arbiter does this: a reply's handler cancels its watchdog.
TEST(AsioScheduler, ATimerCancelledAfterItsCompletionWasQueuedDoesNotRun) {
  boost::asio::io_context io;
  AsioScheduler scheduler(io);
  const auto past = Clock::now() - 1s;
  bool second_ran = false;
  core::Scheduler::TimerId second = 0;
  bool first_ran = false;
  scheduler.schedule_at(past - 1s, [&] {
    first_ran = true;
    scheduler.cancel(second);
  });
  second = scheduler.schedule_at(past, [&] { second_ran = true; });
  io.run();
  EXPECT_TRUE(first_ran);
  EXPECT_FALSE(second_ran) << "a cancelled timer's fn ran";
}

TEST(AsioScheduler, CancellingATimerThatRanIsIgnored) {
  boost::asio::io_context io;
  AsioScheduler scheduler(io);
  int runs = 0;
  const auto id = scheduler.schedule_at(Clock::now() - 1s, [&] { ++runs; });
  io.run();
  scheduler.cancel(id);
  scheduler.cancel(id);
  io.restart();
  io.run();
  EXPECT_EQ(runs, 1);
}

}  // namespace
}  // namespace discarbiter::transport
