#include "core/watched_channel.hpp"

#include <gtest/gtest.h>

#include "fakes.hpp"

namespace discarbiter::core {
namespace {

using namespace std::chrono_literals;
using testing::FakeDrive;
using testing::FakeScheduler;

constexpr std::uint8_t kRead10 = 0x28;

ScsiCommand command(std::uint8_t op, std::chrono::seconds timeout = 5s) {
  return ScsiCommand{{op, 0, 0, 0, 0, 0, 0, 0, 0, 0}, Direction::none, {}, 0, timeout};
}

class WatchedChannelTest : public ::testing::Test {
 protected:
  /// Sends a command; its answer lands in answers[label].
  void send(const std::string& label, std::uint8_t op, WatchedChannel::CallOwner owner = 0,
            std::chrono::seconds timeout = 5s) {
    channel->send(
        command(op, timeout), [this, label](ScsiResult r) { answers.emplace_back(label, r); },
        owner, [this, label] { returned.push_back(label); });
  }
  std::vector<std::string> answered_labels() const {
    std::vector<std::string> out;
    for (const auto& [label, r] : answers)
      out.push_back(label);
    return out;
  }
  std::vector<ChannelNotice::Kind> notice_kinds() const {
    std::vector<ChannelNotice::Kind> out;
    for (const auto& n : notices)
      out.push_back(n.kind);
    return out;
  }

  FakeScheduler scheduler;
  std::shared_ptr<FakeDrive> drive = std::make_shared<FakeDrive>(scheduler, "sim0");
  std::vector<ChannelNotice> notices;
  std::unique_ptr<WatchedChannel> channel =
      std::make_unique<WatchedChannel>(scheduler, WatchedChannel::Timing{2s, 10s}, drive,
                                       [this](const ChannelNotice& n) { notices.push_back(n); });
  std::vector<std::pair<std::string, ScsiResult>> answers;
  std::vector<std::string> returned;
};

TEST_F(WatchedChannelTest,
       AnOverrunIsAnsweredByTheWatchdogAtTimeoutPlusGraceAndTheDriveEntersError) {
  drive->stuck.insert(kRead10);
  send("read", kRead10, 7, 5s);
  scheduler.advance(6999ms);
  EXPECT_TRUE(answers.empty()) << "not before timeout + grace";
  EXPECT_FALSE(channel->error());
  scheduler.advance(1ms);
  ASSERT_EQ(answers.size(), 1U);
  EXPECT_EQ(answers[0].second.transport, errc::recorder_command_timeout);
  ASSERT_TRUE(channel->error());
  EXPECT_NE(channel->error()->find("opcode 0x28 timed out"), std::string::npos);
  EXPECT_EQ(notice_kinds(), (std::vector{ChannelNotice::Kind::command_timed_out,
                                         ChannelNotice::Kind::error_entered}));
  EXPECT_TRUE(channel->overrunning());
  EXPECT_TRUE(returned.empty()) << "the backend still holds it";
}

TEST_F(WatchedChannelTest, TheLateReturnIsCountedButAnsweredOnceAndAnAnsweredTurLeavesError) {
  drive->stuck.insert(kRead10);
  send("read", kRead10, 7, 5s);
  scheduler.advance(7s);
  ASSERT_EQ(answers.size(), 1U);
  ASSERT_EQ(drive->stuck_handlers.size(), 1U);

  drive->stuck_handlers[0](ScsiResult{});  // the backend returns at last
  EXPECT_EQ(returned, (std::vector<std::string>{"read"})) << "counted as returned";
  EXPECT_EQ(answers.size(), 1U) << "its caller was answered already";
  EXPECT_FALSE(channel->overrunning());
  EXPECT_EQ(channel->stats().commands, 1U);
  EXPECT_TRUE(channel->error()) << "only an answered TEST UNIT READY leaves error";

  send("tur", opcode::test_unit_ready);
  scheduler.run();
  EXPECT_FALSE(channel->error());
  ASSERT_EQ(notices.back().kind, ChannelNotice::Kind::error_left);
  EXPECT_NE(notices.back().detail.find("opcode 0x28 timed out"), std::string::npos);
}

TEST_F(WatchedChannelTest, CallsReachTheDriveOneAtATimeInOrder) {
  drive->stuck.insert(kRead10);
  send("first", kRead10, 7);
  send("second", opcode::test_unit_ready, 8);
  bool locked = false;
  channel->os_lock("A", false, [&](Result<Done> r) { locked = r.ok(); });
  send("third", opcode::test_unit_ready, 7);
  scheduler.run();
  EXPECT_EQ(drive->opcodes(), (std::vector<std::uint8_t>{kRead10})) << "the rest wait";

  drive->stuck_handlers[0](ScsiResult{});
  scheduler.run();
  EXPECT_EQ(answered_labels(), (std::vector<std::string>{"first", "second", "third"}));
  EXPECT_TRUE(locked);
  EXPECT_EQ(drive->os_owner, "A");
  EXPECT_EQ(drive->opcodes(),
            (std::vector<std::uint8_t>{kRead10, opcode::test_unit_ready, opcode::test_unit_ready}));
}

TEST_F(WatchedChannelTest, QueuedCallsAreDroppedUnsentWithTheirReturnedRun) {
  drive->stuck.insert(kRead10);
  send("running", kRead10, 7);
  send("mine", opcode::test_unit_ready, 7);
  send("own", opcode::test_unit_ready, 0);  // the arbiter's: never dropped
  send("other", opcode::test_unit_ready, 8);
  send("mine too", opcode::test_unit_ready, 7);

  channel->drop_queued(7, Error{errc::fail, "session ended"});
  EXPECT_EQ(answered_labels(), (std::vector<std::string>{"mine", "mine too"}));
  EXPECT_EQ(answers[0].second.transport, errc::fail);
  EXPECT_EQ(answers[0].second.transport_message, "session ended");
  EXPECT_EQ(returned, (std::vector<std::string>{"mine", "mine too"}));

  drive->stuck_handlers[0](ScsiResult{});
  scheduler.run();
  EXPECT_EQ(answered_labels(),
            (std::vector<std::string>{"mine", "mine too", "running", "own", "other"}));
  EXPECT_EQ(drive->commands.size(), 3U) << "the dropped ones never reached the drive";

  send("later", opcode::test_unit_ready, 8);
  channel->drop_queued(std::nullopt, Error{errc::fail, "removed"});
  scheduler.run();
  EXPECT_EQ(answers.back().first, "later");
  EXPECT_TRUE(answers.back().second.answered()) << "a call already handed on is not dropped";
}

TEST_F(WatchedChannelTest, BehindAnOverrunningBackendOneMoreClientCallGoesAndTheArbitersAlways) {
  drive->stuck.insert(kRead10);
  send("stuck", kRead10, 7);
  scheduler.advance(7s);
  ASSERT_TRUE(channel->overrunning());
  send("one more", kRead10, 7);
  send("held", opcode::test_unit_ready, 7);
  send("own", opcode::test_unit_ready, 0);
  scheduler.run();
  EXPECT_EQ(drive->commands.size(), 2U) << "the stuck one and one more";

  scheduler.advance(7s);  // "one more" overruns too; "held" still waits
  EXPECT_EQ(answered_labels(), (std::vector<std::string>{"stuck", "one more"}));
  EXPECT_EQ(drive->commands.size(), 2U);
  drive->stuck.clear();
  drive->stuck_handlers[0](ScsiResult{});  // one return: still one overrun left
  scheduler.run();
  EXPECT_EQ(answered_labels(), (std::vector<std::string>{"stuck", "one more", "held", "own"}));
}

TEST_F(WatchedChannelTest, TheArbitersOwnCallsReachAStuckBackend) {
  drive->stuck.insert(kRead10);
  send("stuck", kRead10, 7);
  send("stuck too", kRead10, 7);
  scheduler.advance(7s);
  scheduler.advance(7s);
  ASSERT_EQ(drive->stuck_handlers.size(), 2U);
  send("own", opcode::test_unit_ready, 0);  // a release's ALLOW, say
  send("held", opcode::test_unit_ready, 7);
  scheduler.run();
  EXPECT_EQ(answered_labels(), (std::vector<std::string>{"stuck", "stuck too", "own"}));
}

TEST_F(WatchedChannelTest, HandlersNeverRunAfterTheChannelIsDestroyed) {
  send("answered later", opcode::test_unit_ready);  // the fake posts its answer
  channel->os_unlock([&](Result<Done>) { answers.emplace_back("unlock", ScsiResult{}); });
  channel.reset();
  scheduler.run();
  scheduler.advance(60s);
  EXPECT_TRUE(answers.empty());
  EXPECT_TRUE(returned.empty());
  EXPECT_EQ(scheduler.pending_timers(), 0U) << "its watchdogs are cancelled";
}

TEST_F(WatchedChannelTest, AStuckCallsWatchdogDoesNotRunAfterTheChannelIsDestroyed) {
  drive->stuck.insert(kRead10);
  send("stuck", kRead10);
  scheduler.run();
  channel.reset();
  scheduler.advance(60s);
  drive->stuck_handlers[0](ScsiResult{});
  EXPECT_TRUE(answers.empty());
  EXPECT_TRUE(returned.empty());
}

TEST_F(WatchedChannelTest, StatisticsCountCommandsTimeoutsAndErrors) {
  drive->script(kRead10,
                ScsiResult{errc::ok, {}, kStatusCheckCondition, make_sense(5, 0x24, 0), {}});
  drive->script(kRead10, ScsiResult::failed(errc::fail, "the backend failed"));
  drive->script(kRead10, ScsiResult::failed(errc::recorder_command_timeout, "no answer"));
  for (const char* label : {"good", "check condition", "failed", "timed out"}) {
    send(label, label == std::string("good") ? opcode::test_unit_ready : kRead10);
  }
  bool locked = false;
  channel->os_lock("A", false, [&](Result<Done> r) { locked = r.ok(); });
  scheduler.run();
  ASSERT_TRUE(locked);
  EXPECT_EQ(channel->stats().commands, 4U) << "SCSI commands only";
  EXPECT_EQ(channel->stats().timeouts, 1U);
  EXPECT_EQ(channel->stats().errors, 1U) << "a CHECK CONDITION is an answer";
}

TEST_F(WatchedChannelTest, ACommandItsBackendTookBackUnstartedCountsInNoStatistic) {
  // What a departing owner's command gets when the backend had not started it
  // (DriveWorker::cancel_queued): the drive never saw it, as with one dropped
  // from the channel's own queue.
  drive->script(kRead10, ScsiResult::not_sent(errc::fail, "the session ended"));
  send("taken back", kRead10);
  send("good", opcode::test_unit_ready);
  scheduler.run();
  ASSERT_EQ(answers.size(), 2U);
  EXPECT_EQ(channel->stats().commands, 1U) << "the TUR only";
  EXPECT_EQ(channel->stats().errors, 0U);
  EXPECT_TRUE(notices.empty());
}

TEST_F(WatchedChannelTest, ABackendThatReportsTheDeviceGoneIsReported) {
  drive->script(kRead10, ScsiResult::failed(errc::dev_not_exist, "no such device"));
  send("read", kRead10);
  scheduler.run();
  ASSERT_EQ(notices.size(), 1U);
  EXPECT_EQ(notices[0].kind, ChannelNotice::Kind::device_gone);
  EXPECT_EQ(notices[0].detail, "no such device");
}

TEST_F(WatchedChannelTest, AReattachedDriveStartsAfreshAndAnOldCallStillAnswers) {
  drive->stuck.insert(kRead10);
  send("stuck", kRead10);
  scheduler.advance(7s);
  ASSERT_TRUE(channel->error());
  auto fresh = std::make_shared<FakeDrive>(scheduler, "sim0");
  channel->attach(fresh);
  EXPECT_FALSE(channel->error());
  EXPECT_FALSE(channel->overrunning());
  send("new", opcode::test_unit_ready);
  scheduler.run();
  EXPECT_EQ(fresh->commands.size(), 1U);
  drive->stuck_handlers[0](ScsiResult{});
  EXPECT_EQ(returned, (std::vector<std::string>{"new", "stuck"}));
}

// ---- the lock steps as one call (issue 15) -----------------------------------

AcquireSteps acquire_steps() {
  AcquireSteps steps;
  steps.test_unit_ready = command(opcode::test_unit_ready, 3s);
  steps.client_name = "A";
  steps.prevent = ScsiCommand{cdb_prevent_allow_medium_removal(true), Direction::none, {}, 0, 4s};
  steps.allow = ScsiCommand{cdb_prevent_allow_medium_removal(false), Direction::none, {}, 0, 4s};
  return steps;
}

TEST_F(WatchedChannelTest, AnAcquiresStepsCountEachCommandAndATurAnswerLeavesError) {
  drive->stuck.insert(kRead10);
  send("stuck", kRead10);
  scheduler.advance(7s);
  ASSERT_TRUE(channel->error());
  drive->stuck_handlers[0](ScsiResult{});
  scheduler.run();
  const auto before = channel->stats().commands;
  std::optional<AcquireSteps> done;
  channel->acquire_steps(acquire_steps(), [&](AcquireSteps s) { done = std::move(s); });
  scheduler.run();
  ASSERT_TRUE(done && done->prevented);
  EXPECT_EQ(drive->os_owner, "A");
  EXPECT_EQ(channel->stats().commands, before + 2) << "TUR and PREVENT, each a command";
  EXPECT_FALSE(channel->error()) << "the steps' TEST UNIT READY was answered";
  EXPECT_EQ(notices.back().kind, ChannelNotice::Kind::error_left);
}

TEST_F(WatchedChannelTest, TheStepsWatchdogIsTheSumOfTheirLimitsAndAnswersEveryStepLeft) {
  // TUR 3 s + OS lock 10 s + PREVENT 4 s + the ALLOW that may undo it 4 s
  // + the rollback's OS unlock 10 s = 31 s.
  drive->stuck.insert(opcode::test_unit_ready);
  std::optional<AcquireSteps> done;
  channel->acquire_steps(acquire_steps(), [&](AcquireSteps s) { done = std::move(s); });
  scheduler.advance(32999ms);
  EXPECT_FALSE(done) << "not before the sum of the limits + grace";
  scheduler.advance(1ms);
  ASSERT_TRUE(done && done->tur_answer);
  EXPECT_EQ(done->tur_answer->transport, errc::recorder_command_timeout);
  EXPECT_FALSE(done->os_locked) << "a TUR without an answer ends the steps";
  EXPECT_EQ(channel->stats().timeouts, 1U);
  EXPECT_TRUE(channel->error());
  EXPECT_TRUE(channel->overrunning());

  // A release's: each ALLOW and the OS unlock answered with the timeout.
  ReleaseSteps release;
  for (bool persistent : {true, false}) {
    release.allows.push_back(ScsiCommand{
        cdb_prevent_allow_medium_removal(false, persistent), Direction::none, {}, 0, 5s});
  }
  drive->stuck.insert(opcode::prevent_allow_medium_removal);  // it sits on the ALLOW too
  std::optional<ReleaseSteps> released;
  channel->release_steps(release, [&](ReleaseSteps s) { released = std::move(s); });
  scheduler.run();
  EXPECT_FALSE(released) << "handed to the stuck backend, behind its TUR";
  scheduler.advance(22s);  // 5 + 5 + 10, + 2 s grace
  ASSERT_TRUE(released);
  ASSERT_EQ(released->allowed.size(), 2U);
  for (const auto& r : released->allowed)
    EXPECT_EQ(r.transport, errc::recorder_command_timeout);
  ASSERT_TRUE(released->unlocked);
  EXPECT_EQ(released->unlocked->error().code, errc::recorder_command_timeout);
  EXPECT_EQ(channel->stats().timeouts, 3U) << "each ALLOW counts, as if sent alone";
}

TEST_F(WatchedChannelTest,
       AnAcquireAnsweredByItsWatchdogIsAbandonedBeforeTheAnswerSoItsLockIsUndone) {
  // PREVENT sits in the drive after TUR and the OS lock: the watchdog answers.
  drive->stuck.insert(opcode::prevent_allow_medium_removal);
  std::optional<AcquireSteps> done;
  bool abandoned_when_answered = false;
  channel->acquire_steps(acquire_steps(), [&](AcquireSteps s) {
    abandoned_when_answered = s.fate->abandoned();
    done = std::move(s);
  });
  scheduler.advance(33s);  // 3 + 10 + 4 + 4 + 10, + 2 s grace
  ASSERT_TRUE(done);
  EXPECT_TRUE(abandoned_when_answered)
      << "the backend must see the steps abandoned before anybody hears the answer";
  EXPECT_EQ(drive->os_owner, "A") << "the OS lock taken before PREVENT stuck";
  // The PREVENT comes back late and good: nobody owns the lock, so the
  // backend's next step is its undoing, not a lock left held.
  ASSERT_EQ(drive->stuck_handlers.size(), 1U);
  auto late = std::move(drive->stuck_handlers.front());
  drive->stuck_handlers.clear();
  drive->stuck.clear();  // the undoing ALLOW is answered
  late(ScsiResult{});
  scheduler.run();
  EXPECT_EQ(drive->os_owner, "") << "the late acquire's OS lock was rolled back";
  EXPECT_FALSE(drive->tray_locked) << "and its PREVENT undone first";
}

TEST_F(WatchedChannelTest, TheWatchdogLeavesStepsThatKeptTheLockToTheirReturnOnItsWay) {
  // Every step ran in time; the return is posted, heard after the deadline.
  drive->steps_at_once = true;
  drive->hold_returns = true;
  std::optional<AcquireSteps> done;
  channel->acquire_steps(acquire_steps(), [&](AcquireSteps s) { done = std::move(s); });
  EXPECT_FALSE(channel->abandon_acquire()) << "kept: too late to give up on it";
  scheduler.advance(1h);
  EXPECT_FALSE(done) << "no timeout answer: it would drop the return and leave the lock held";
  EXPECT_FALSE(channel->error());
  drive->return_held();
  scheduler.run();
  ASSERT_TRUE(done);
  EXPECT_TRUE(done->holds_lock());
  EXPECT_EQ(channel->stats().timeouts, 0U);
  EXPECT_EQ(drive->os_owner, "A");
}

TEST_F(WatchedChannelTest, AHandOffsAcquireIsAbandonedByTheWatchdogOfItsCall) {
  // The release's ALLOW sits in the drive: the watchdog answers the call,
  // and the acquire handed off to never begins.
  drive->stuck.insert(opcode::prevent_allow_medium_removal);
  ReleaseSteps steps;
  steps.allows.push_back(
      ScsiCommand{cdb_prevent_allow_medium_removal(false), Direction::none, {}, 0, 5s});
  steps.then = acquire_steps();
  const auto fate = steps.then->fate;
  std::optional<ReleaseSteps> done;
  channel->release_steps(std::move(steps), [&](ReleaseSteps s) { done = std::move(s); });
  scheduler.advance(47s);  // ALLOW 5 + unlock 10 + the acquire's 31, + 2 s grace - 1 s
  EXPECT_FALSE(done) << "one watchdog: the sum of both parts' limits";
  scheduler.advance(1s);
  ASSERT_TRUE(done);
  EXPECT_TRUE(fate->abandoned());
  EXPECT_FALSE(done->then->tur_answer) << "the acquire never began";
  drive->stuck.clear();
  drive->stuck_handlers.at(0)(ScsiResult{});
  scheduler.run();
  EXPECT_EQ(drive->os_owner, "") << "the late release's steps did not go on to the acquire";
}

}  // namespace
}  // namespace discarbiter::core
