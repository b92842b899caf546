#include "transport/asio_scheduler.hpp"

#include <chrono>
#include <vector>

#include <gtest/gtest.h>

#include "transport/run_until.hpp"

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
  // N.B. poll, not run: the Asio timer stays armed for the cancelled
  // deadline (asio_scheduler.hpp), so run() would wait for it.
  io.poll();
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

// A drive job's watchdog, as the arbiter uses it: armed when the job starts,
// cancelled when it returns a few microseconds later, each deadline a little
// later than the last. The Asio timer is armed once for all of them, not once
// per job (a timerfd_settime each).
TEST(AsioScheduler, WatchdogsCancelledInTurnArmTheAsioTimerOnce) {
  boost::asio::io_context io;
  AsioScheduler scheduler(io);
  const auto start = Clock::now() + 1h;
  bool ran = false;
  for (int i = 0; i < 100; ++i) {
    const auto id = scheduler.schedule_at(start + i * 1ms, [&] { ran = true; });
    scheduler.cancel(id);
  }
  EXPECT_EQ(scheduler.timer_arms(), 1U);
  io.poll();
  EXPECT_FALSE(ran);
}

// The same, but the last job sticks: its watchdog still fires, after the
// timer has expired at a cancelled deadline and re-armed for it.
TEST(AsioScheduler, AStuckJobsWatchdogStillFiresAfterCancelledOnes) {
  boost::asio::io_context io;
  AsioScheduler scheduler(io);
  const auto start = Clock::now() + 20ms;
  int cancelled_ran = 0;
  bool stuck_fired = false;
  for (int i = 0; i < 10; ++i) {
    const auto id = scheduler.schedule_at(start + i * 1ms, [&] { ++cancelled_ran; });
    scheduler.cancel(id);
  }
  scheduler.schedule_at(start + 10ms, [&] { stuck_fired = true; });
  EXPECT_EQ(scheduler.timer_arms(), 1U);
  ASSERT_TRUE(test::run_until(io, [&] { return stuck_fired; }))
      << "the stuck job's watchdog never fired";
  EXPECT_EQ(cancelled_ran, 0);
  EXPECT_EQ(scheduler.timer_arms(), 2U) << "expired at the first, re-armed for the stuck one";
}

TEST(AsioScheduler, AnEarlierDeadlineReArmsAndDueTimersRunInDeadlineOrder) {
  boost::asio::io_context io;
  AsioScheduler scheduler(io);
  std::vector<int> order;
  bool late_ran = false;
  const auto past = Clock::now() - 1s;
  scheduler.schedule_at(Clock::now() + 1h, [&] { late_ran = true; });
  scheduler.schedule_at(past, [&] { order.push_back(2); });
  scheduler.schedule_at(past - 1s, [&] { order.push_back(1); });
  scheduler.schedule_at(past, [&] { order.push_back(3); });  // same deadline: in order made
  ASSERT_TRUE(test::run_until(io, [&] { return order.size() == 3; }));
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
  EXPECT_FALSE(late_ran);
}

// A timer's fn that schedules another timer later than one still waiting
// must not leave the waiting one late.
TEST(AsioScheduler, ATimerMadeByAFnDoesNotDelayOneAlreadyWaiting) {
  boost::asio::io_context io;
  AsioScheduler scheduler(io);
  bool waiting_ran = false;
  scheduler.schedule_at(Clock::now() - 1s,
                        [&] { scheduler.schedule_at(Clock::now() + 1h, [] {}); });
  scheduler.schedule_at(Clock::now() + 10ms, [&] { waiting_ran = true; });
  ASSERT_TRUE(test::run_until(io, [&] { return waiting_ran; }));
}

TEST(AsioScheduler, DestroyedWithTimersPendingRunsNothing) {
  boost::asio::io_context io;
  bool ran = false;
  {
    AsioScheduler scheduler(io);
    scheduler.schedule_at(Clock::now() + 1h, [&] { ran = true; });
  }
  io.run();
  EXPECT_FALSE(ran);
}

}  // namespace
}  // namespace discarbiter::transport
