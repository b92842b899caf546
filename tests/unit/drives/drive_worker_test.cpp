#include "drives/drive_worker.hpp"

#include <atomic>
#include <condition_variable>
#include <future>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include <gtest/gtest.h>

#include "drives/simulated_drive.hpp"

namespace discarbiter::drives {
namespace {

using namespace std::chrono_literals;

// Completions arrive on whatever thread post() runs them on; here, at once.
DriveWorker::PostToArbiter run_inline() {
  return [](std::function<void()> fn) { fn(); };
}

ScsiResult run(DriveWorker& worker, ScsiCommand command) {
  std::promise<ScsiResult> done;
  auto answer = done.get_future();
  worker.async_execute(std::move(command), [&](ScsiResult r) { done.set_value(std::move(r)); });
  EXPECT_EQ(answer.wait_for(10s), std::future_status::ready);
  return answer.get();
}

TEST(DriveWorker, ARetiredWorkerFinishesQueuedWorkThenFailsWithDevNotExist) {
  auto device = std::make_shared<SimulatedDrive>(0);
  std::weak_ptr<SimulatedDrive> watch = device;
  DriveWorker worker(std::move(device), run_inline());
  const ScsiCommand tur{core::cdb_test_unit_ready(), core::Direction::none, {}, 0, 10s};
  EXPECT_TRUE(run(worker, tur).good());
  worker.retire();
  const auto after = run(worker, tur);
  EXPECT_EQ(after.transport, errc::dev_not_exist);
  EXPECT_NE(after.transport_message.find("simulated:0"), std::string::npos);
  std::promise<Result<Done>> unlocked;
  worker.async_os_unlock([&](Result<Done> r) { unlocked.set_value(std::move(r)); });
  EXPECT_EQ(unlocked.get_future().get().error().code, errc::dev_not_exist);
  worker.stop();
  EXPECT_TRUE(watch.expired()) << "the retired device was closed";
}

/// A device that records each call it gets ("TUR", "lock:Name", "PREVENT",
/// "ALLOW", "unlock") and answers as scripted; its first command may wait
/// behind a gate (a call stuck in the kernel: SG_IO, which nothing
/// interrupts).
class ScriptedDevice final : public ScsiDevice {
 public:
  DriveDescription describe() override {
    DriveDescription d;
    d.id = "scripted";
    d.path = "/dev/scripted";
    return d;
  }
  ScsiResult execute(const ScsiCommand& command) override {
    const bool gate = gated && calls_.size() == gate_at;
    calls_.push_back(name_of(command));
    if (gate) {
      started_.set_value();
      gate_.wait();
    }
    const auto it = answers.find(command.opcode());
    return it == answers.end() ? ScsiResult{} : it->second;
  }
  Result<Done> lock_exclusive(const std::string& client_name, bool) override {
    calls_.push_back("lock:" + client_name);
    return lock_answer;
  }
  Result<Done> unlock_exclusive() override {
    calls_.push_back("unlock");
    return Done{};
  }
  void cancel() override {}

  /// What the device was asked, in order (read once the worker has posted).
  const std::vector<std::string>& calls() const { return calls_; }
  std::future<void> started() { return started_.get_future(); }
  void open_gate() { open_.set_value(); }

  std::map<std::uint8_t, ScsiResult> answers;
  Result<Done> lock_answer = Done{};
  bool gated = false;  // the gate_at'th call (from 0) waits for open_gate
  std::size_t gate_at = 0;

 private:
  static std::string name_of(const ScsiCommand& c) {
    if (c.opcode() == core::opcode::test_unit_ready)
      return "TUR";
    return (c.cdb[4] & 1) != 0 ? "PREVENT" : "ALLOW";
  }
  std::vector<std::string> calls_;
  std::promise<void> started_;
  std::promise<void> open_;
  std::shared_future<void> gate_ = open_.get_future().share();
};

TEST(DriveWorker, ARetiredWorkersThreadEndsOnceItsQueueDrainsAndSaysSo) {
  auto simulated = std::make_shared<SimulatedDrive>(0);
  const std::weak_ptr<SimulatedDrive> closed = simulated;
  DriveWorker worker(std::move(simulated), run_inline());
  EXPECT_FALSE(worker.finished());
  std::atomic<int> good_answers = 0;
  for (int i = 0; i < 3; ++i) {
    worker.async_execute(
        ScsiCommand{core::cdb_test_unit_ready(), core::Direction::none, {}, 0, 10s},
        [&](ScsiResult r) { good_answers += r.good() ? 1 : 0; });
  }
  std::promise<void> finished;
  worker.retire([&] { finished.set_value(); });
  ASSERT_EQ(finished.get_future().wait_for(10s), std::future_status::ready)
      << "the retired worker's thread did not end";
  EXPECT_EQ(good_answers, 3) << "what was queued before retire() ran first";
  EXPECT_TRUE(worker.finished());
  EXPECT_TRUE(closed.expired()) << "the retired device was closed without stop()";
}

TEST(DriveWorker, RetiringAWorkerWithAStuckCallReturnsAtOnceAndItEndsWhenTheCallDoes) {
  auto device = std::make_shared<ScriptedDevice>();
  device->gated = true;
  auto started = device->started();
  DriveWorker worker(device, run_inline());
  std::promise<ScsiResult> answered;
  worker.async_execute(ScsiCommand{core::cdb_test_unit_ready(), core::Direction::none, {}, 0, 10s},
                       [&](ScsiResult r) { answered.set_value(std::move(r)); });
  ASSERT_EQ(started.wait_for(10s), std::future_status::ready);

  std::promise<void> finished;
  auto heard = finished.get_future();
  worker.retire([&] { finished.set_value(); });  // N.B. returns while the call is stuck
  EXPECT_FALSE(worker.finished());
  EXPECT_EQ(heard.wait_for(0s), std::future_status::timeout);

  device->open_gate();
  ASSERT_EQ(heard.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(worker.finished());
  EXPECT_TRUE(answered.get_future().get().good()) << "the stuck call was answered first";
}

TEST(DriveWorker, CancelQueuedAnswersWhatHasNotStartedAndLeavesTheRunningCallAlone) {
  auto device = std::make_shared<SimulatedDrive>(
      0, SimulatedFaults{.delay = {}, .hang = {core::opcode::read10}, .removed = false});
  std::promise<void> read_started;
  device->set_command_observer([&](const SimulatedCommand& c) {
    if (c.cdb[0] == core::opcode::read10)
      read_started.set_value();
  });
  DriveWorker worker(device, run_inline());
  // The READ hangs for its 1 s timeout; three WRITEs and an OS lock queue behind it.
  std::promise<ScsiResult> read_done;
  worker.async_execute(
      ScsiCommand{
          {core::opcode::read10, 0, 0, 0, 0, 0, 0, 0, 1, 0}, core::Direction::in, {}, 2048, 1s},
      [&](ScsiResult r) { read_done.set_value(std::move(r)); });
  ASSERT_EQ(read_started.get_future().wait_for(10s), std::future_status::ready);
  std::vector<std::promise<ScsiResult>> writes(3);
  for (auto& w : writes) {
    worker.async_execute(
        ScsiCommand{
            {0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0}, core::Direction::out, proto::Bytes(2048, 0), 0, 10s},
        [&w](ScsiResult r) { w.set_value(std::move(r)); });
  }
  std::promise<Result<Done>> locked;
  worker.async_os_lock("Late", false, [&](Result<Done> r) { locked.set_value(std::move(r)); });

  worker.cancel_queued(Error{errc::fail, "the session ended"});
  for (auto& w : writes) {
    auto answer = w.get_future();
    ASSERT_EQ(answer.wait_for(10s), std::future_status::ready);
    const auto r = answer.get();
    EXPECT_EQ(r.transport, errc::fail);
    EXPECT_EQ(r.transport_message, "the session ended");
    EXPECT_FALSE(r.sent) << "taken back unstarted: counted in no statistic";
  }
  EXPECT_EQ(locked.get_future().get().error().code, errc::fail);
  // The running READ was left alone: it ends at its own timeout.
  const auto read = read_done.get_future().get();
  EXPECT_EQ(read.transport, errc::recorder_command_timeout);
  EXPECT_TRUE(read.sent);
  EXPECT_EQ(run(worker, ScsiCommand{core::cdb_test_unit_ready(), core::Direction::none, {}, 0, 10s})
                .transport,
            errc::ok);
  const auto log = device->command_log();
  ASSERT_EQ(log.size(), 2U);  // the READ and the TUR; nothing cancelled reached the device
  EXPECT_EQ(log[0].cdb[0], core::opcode::read10);
  EXPECT_EQ(log[1].cdb[0], core::opcode::test_unit_ready);
  EXPECT_EQ(device->exclusive_owner(), std::nullopt);
}

// ---- the lock steps: one job, one post (issue 15) --------------------------------

/// Counts the completions the worker posts to the arbiter (one per job).
struct CountingPost {
  std::shared_ptr<std::atomic<int>> posts = std::make_shared<std::atomic<int>>(0);
  DriveWorker::PostToArbiter post() {
    return [posts = posts](std::function<void()> fn) {
      ++*posts;
      fn();
    };
  }
};

core::AcquireSteps acquire_steps(bool tray_lock = true, std::string client = "Burner") {
  core::AcquireSteps steps;
  steps.test_unit_ready =
      ScsiCommand{core::cdb_test_unit_ready(), core::Direction::none, {}, 0, 10s};
  steps.client_name = std::move(client);
  if (tray_lock) {
    steps.prevent = ScsiCommand{
        core::cdb_prevent_allow_medium_removal(true), core::Direction::none, {}, 0, 10s};
    steps.allow = ScsiCommand{
        core::cdb_prevent_allow_medium_removal(false), core::Direction::none, {}, 0, 10s};
  }
  return steps;
}

/// Runs the steps on the worker (async_acquire_steps or
/// async_release_steps) and returns them answered.
template <typename Steps>
std::future<Steps> start_steps(DriveWorker& worker, Steps steps) {
  auto done = std::make_shared<std::promise<Steps>>();
  auto answer = done->get_future();
  auto handler = [done](Steps s) { done->set_value(std::move(s)); };
  if constexpr (std::is_same_v<Steps, core::AcquireSteps>)
    worker.async_acquire_steps(std::move(steps), handler);
  else
    worker.async_release_steps(std::move(steps), handler);
  return answer;
}

template <typename Steps>
Steps run_steps(DriveWorker& worker, Steps steps) {
  auto answer = start_steps(worker, std::move(steps));
  EXPECT_EQ(answer.wait_for(10s), std::future_status::ready);
  return answer.get();
}

/// Runs the steps on a gated device, giving up on the acquire (`fate`)
/// while the gated step runs; returns them answered.
template <typename Steps>
Steps run_abandoned_at_gate(DriveWorker& worker, ScriptedDevice& device, Steps steps,
                            const std::shared_ptr<core::AcquireFate>& fate) {
  auto started = device.started();
  auto answer = start_steps(worker, std::move(steps));
  EXPECT_EQ(started.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(fate->abandon());
  device.open_gate();
  EXPECT_EQ(answer.wait_for(10s), std::future_status::ready);
  return answer.get();
}

ScsiResult check_condition(std::uint8_t key, std::uint8_t asc) {
  ScsiResult r;
  r.status = 0x02;
  r.sense = core::make_sense(key, asc, 0);
  return r;
}
const ScsiResult kNotReady = check_condition(0x02, 0x3A);        // MEDIUM NOT PRESENT
const ScsiResult kIllegalRequest = check_condition(0x05, 0x24);  // INVALID FIELD IN CDB

TEST(DriveWorkerLockSteps, AnAcquireIsOneJobTurThenOsLockThenPrevent) {
  auto device = std::make_shared<ScriptedDevice>();
  device->answers[core::opcode::test_unit_ready] = kNotReady;  // an empty drive: fine
  CountingPost counter;
  DriveWorker worker(device, counter.post());
  const auto steps = run_steps(worker, acquire_steps());
  EXPECT_EQ(*counter.posts, 1) << "one job, one completion for the three steps";
  EXPECT_EQ(device->calls(), (std::vector<std::string>{"TUR", "lock:Burner", "PREVENT"}));
  ASSERT_TRUE(steps.tur_answer && steps.os_locked && steps.prevented);
  EXPECT_EQ(steps.tur_answer->status, 0x02);
  EXPECT_TRUE(steps.os_locked->ok());
  EXPECT_TRUE(steps.prevented->good());
  EXPECT_FALSE(steps.rolled_back);
}

TEST(DriveWorkerLockSteps, WithoutTrayLockTheOsLockEndsTheAcquire) {
  auto device = std::make_shared<ScriptedDevice>();
  CountingPost counter;
  DriveWorker worker(device, counter.post());
  const auto steps = run_steps(worker, acquire_steps(false));
  EXPECT_EQ(*counter.posts, 1);
  EXPECT_EQ(device->calls(), (std::vector<std::string>{"TUR", "lock:Burner"}));
  EXPECT_FALSE(steps.prevented);
}

TEST(DriveWorkerLockSteps, APreventThatFailsRollsTheOsLockBackInTheSameJob) {
  auto device = std::make_shared<ScriptedDevice>();
  device->answers[core::opcode::prevent_allow_medium_removal] = kIllegalRequest;
  CountingPost counter;
  DriveWorker worker(device, counter.post());
  const auto steps = run_steps(worker, acquire_steps());
  EXPECT_EQ(*counter.posts, 1);
  EXPECT_EQ(device->calls(), (std::vector<std::string>{"TUR", "lock:Burner", "PREVENT", "unlock"}));
  ASSERT_TRUE(steps.prevented && steps.rolled_back);
  EXPECT_FALSE(steps.prevented->good());
}

TEST(DriveWorkerLockSteps, ATurWithoutAnAnswerSendsNothingElse) {
  auto device = std::make_shared<ScriptedDevice>();
  device->answers[core::opcode::test_unit_ready] =
      ScsiResult::failed(errc::recorder_command_timeout, "no answer");
  CountingPost counter;
  DriveWorker worker(device, counter.post());
  const auto steps = run_steps(worker, acquire_steps());
  EXPECT_EQ(*counter.posts, 1);
  EXPECT_EQ(device->calls(), std::vector<std::string>{"TUR"});
  EXPECT_FALSE(steps.os_locked);
}

TEST(DriveWorkerLockSteps, AnOsLockRefusedEndsTheAcquireWithNoPrevent) {
  auto device = std::make_shared<ScriptedDevice>();
  device->lock_answer = Error{errc::access_denied, "in use"};
  DriveWorker worker(device, run_inline());
  const auto steps = run_steps(worker, acquire_steps());
  EXPECT_EQ(device->calls(), (std::vector<std::string>{"TUR", "lock:Burner"}));
  ASSERT_TRUE(steps.os_locked);
  EXPECT_EQ(steps.os_locked->error().code, errc::access_denied);
  EXPECT_FALSE(steps.rolled_back);
}

TEST(DriveWorkerLockSteps, StepsAbandonedWhileTheTurRunsStartNothingMore) {
  // The arbiter gives up on the acquire (the drive was removed, or the
  // watchdog answered) while the drive sits on its TEST UNIT READY.
  auto device = std::make_shared<ScriptedDevice>();
  device->gated = true;
  DriveWorker worker(device, run_inline());
  auto steps = acquire_steps();
  const auto fate = steps.fate;
  EXPECT_FALSE(run_abandoned_at_gate(worker, *device, std::move(steps), fate).os_locked);
  EXPECT_EQ(device->calls(), std::vector<std::string>{"TUR"});
}

TEST(DriveWorkerLockSteps, AReleaseIsOneJobEachAllowWhateverTheOneBeforeThenTheOsUnlock) {
  auto device = std::make_shared<ScriptedDevice>();
  device->answers[core::opcode::prevent_allow_medium_removal] = kIllegalRequest;
  CountingPost counter;
  DriveWorker worker(device, counter.post());
  core::ReleaseSteps steps;
  for (bool persistent : {true, false}) {
    steps.allows.push_back(ScsiCommand{core::cdb_prevent_allow_medium_removal(false, persistent),
                                       core::Direction::none,
                                       {},
                                       0,
                                       10s});
  }
  const auto done = run_steps(worker, std::move(steps));
  EXPECT_EQ(*counter.posts, 1) << "one job, one completion for the three steps";
  EXPECT_EQ(device->calls(), (std::vector<std::string>{"ALLOW", "ALLOW", "unlock"}));
  ASSERT_EQ(done.allowed.size(), 2U);
  EXPECT_FALSE(done.allowed[0].good());
  ASSERT_TRUE(done.unlocked);
  EXPECT_TRUE(done.unlocked->ok());
}

TEST(DriveWorkerLockSteps, StepsAbandonedWhileThePreventRunsUndoItThenTheOsLockInTheSameJob) {
  // The watchdog answers while the drive sits on PREVENT, which then
  // succeeds: nobody will hold the lock, so neither the tray lock nor the
  // OS lock may stay.
  auto device = std::make_shared<ScriptedDevice>();
  device->gated = true;
  device->gate_at = 2;  // TUR, lock, PREVENT
  CountingPost counter;
  DriveWorker worker(device, counter.post());
  auto steps = acquire_steps();
  const auto fate = steps.fate;
  const auto undone = run_abandoned_at_gate(worker, *device, std::move(steps), fate);
  EXPECT_EQ(*counter.posts, 1) << "undone in the same job";
  EXPECT_EQ(device->calls(),
            (std::vector<std::string>{"TUR", "lock:Burner", "PREVENT", "ALLOW", "unlock"}));
  EXPECT_TRUE(undone.allowed_back && undone.allowed_back->good());
  EXPECT_FALSE(undone.holds_lock());
}

TEST(DriveWorkerLockSteps, TheNextOwnersAcquireQueuedBehindAnAbandonedOneRunsAfterItsUndoing) {
  // The watchdog answered for A's acquire (stuck on PREVENT) and the
  // arbiter handed the drive on: B's acquire is queued behind on the same
  // worker. A's undoing runs before it, so it cannot undo B's lock.
  auto device = std::make_shared<ScriptedDevice>();
  device->gated = true;
  device->gate_at = 2;
  auto started = device->started();
  DriveWorker worker(device, run_inline());
  auto a = acquire_steps(true, "A");
  const auto fate = a.fate;
  auto a_done = start_steps(worker, std::move(a));
  ASSERT_EQ(started.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(fate->abandon());
  auto b = start_steps(worker, acquire_steps(true, "B"));
  device->open_gate();
  ASSERT_EQ(b.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(b.get().holds_lock());
  EXPECT_EQ(device->calls(), (std::vector<std::string>{"TUR", "lock:A", "PREVENT", "ALLOW",
                                                       "unlock", "TUR", "lock:B", "PREVENT"}));
}

TEST(DriveWorkerLockSteps, StepsThatRanToTheirEndKeptTheLockAndCanNoLongerBeAbandoned) {
  auto device = std::make_shared<ScriptedDevice>();
  DriveWorker worker(device, run_inline());
  const auto steps = run_steps(worker, acquire_steps());
  EXPECT_TRUE(steps.holds_lock());
  EXPECT_FALSE(steps.fate->abandon()) << "kept: the answer on its way decides";
}

core::ReleaseSteps release_steps() {
  core::ReleaseSteps steps;
  steps.allows.push_back(ScsiCommand{
      core::cdb_prevent_allow_medium_removal(false), core::Direction::none, {}, 0, 10s});
  return steps;
}

TEST(DriveWorkerLockSteps, AHandOffIsOneJobTheReleaseThenTheNextOwnersAcquire) {
  auto device = std::make_shared<ScriptedDevice>();
  device->answers[core::opcode::test_unit_ready] = kNotReady;
  CountingPost counter;
  DriveWorker worker(device, counter.post());
  auto steps = release_steps();
  steps.then = acquire_steps(true, "Next");
  const auto done = run_steps(worker, std::move(steps));
  EXPECT_EQ(*counter.posts, 1) << "one job, one completion for the release and the acquire";
  EXPECT_EQ(device->calls(),
            (std::vector<std::string>{"ALLOW", "unlock", "TUR", "lock:Next", "PREVENT"}));
  ASSERT_EQ(done.allowed.size(), 1U);
  ASSERT_TRUE(done.unlocked && done.unlocked->ok());
  ASSERT_TRUE(done.then);
  EXPECT_EQ(done.then->tur_answer->status, 0x02);
  EXPECT_TRUE(done.then->holds_lock());
  EXPECT_TRUE(done.then->prevented->good());
}

TEST(DriveWorkerLockSteps, AHandOffsAcquireAbandonedBeforeItBeganIsSkipped) {
  auto device = std::make_shared<ScriptedDevice>();
  device->gated = true;  // on the release's ALLOW; meanwhile the waiter leaves
  DriveWorker worker(device, run_inline());
  auto steps = release_steps();
  steps.then = acquire_steps(true, "Next");
  const auto fate = steps.then->fate;
  const auto released = run_abandoned_at_gate(worker, *device, std::move(steps), fate);
  EXPECT_EQ(device->calls(), (std::vector<std::string>{"ALLOW", "unlock"}));
  EXPECT_TRUE(released.unlocked && released.unlocked->ok());
  EXPECT_FALSE(released.then->tur_answer);
}

TEST(DriveWorkerLockSteps, AHandOffsAcquireFollowsAFailedReleaseAsItWouldAlone) {
  auto device = std::make_shared<ScriptedDevice>();
  device->answers[core::opcode::prevent_allow_medium_removal] = kIllegalRequest;
  DriveWorker worker(device, run_inline());
  auto steps = release_steps();
  steps.then = acquire_steps(true, "Next");
  const auto done = run_steps(worker, std::move(steps));
  // The ALLOW failed: the unlock runs regardless, then the acquire, whose
  // PREVENT fails too and rolls its OS lock back.
  EXPECT_EQ(device->calls(),
            (std::vector<std::string>{"ALLOW", "unlock", "TUR", "lock:Next", "PREVENT", "unlock"}));
  EXPECT_FALSE(done.allowed[0].good());
  EXPECT_FALSE(done.then->holds_lock());
}

TEST(DriveWorkerLockSteps, ARetiredWorkerFailsEveryStepWithDevNotExistAndRunsNone) {
  auto device = std::make_shared<ScriptedDevice>();
  CountingPost counter;
  DriveWorker worker(device, counter.post());
  worker.retire();
  const auto acquire = run_steps(worker, acquire_steps());
  ASSERT_TRUE(acquire.tur_answer);
  EXPECT_EQ(acquire.tur_answer->transport, errc::dev_not_exist);
  EXPECT_FALSE(acquire.os_locked) << "no answer to TUR: nothing follows";
  core::ReleaseSteps steps;
  steps.allows.push_back(ScsiCommand{
      core::cdb_prevent_allow_medium_removal(false), core::Direction::none, {}, 0, 10s});
  const auto release = run_steps(worker, std::move(steps));
  ASSERT_EQ(release.allowed.size(), 1U);
  EXPECT_EQ(release.allowed[0].transport, errc::dev_not_exist);
  ASSERT_TRUE(release.unlocked);
  EXPECT_EQ(release.unlocked->error().code, errc::dev_not_exist);
  worker.stop();
  EXPECT_TRUE(device->calls().empty());
}

}  // namespace
}  // namespace discarbiter::drives
