#include "drives/drive_worker.hpp"

#include <atomic>
#include <condition_variable>
#include <future>

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

/// A device whose commands block until the test opens the gate: a call stuck
/// in the kernel (SG_IO, which nothing interrupts).
class GatedDevice final : public ScsiDevice {
 public:
  DriveDescription describe() override {
    DriveDescription d;
    d.id = "gated";
    d.path = "/dev/gated";
    return d;
  }
  ScsiResult execute(const ScsiCommand&) override {
    started_.set_value();
    gate_.wait();
    return {};
  }
  Result<Done> lock_exclusive(const std::string&, bool) override { return Done{}; }
  Result<Done> unlock_exclusive() override { return Done{}; }
  void cancel() override {}

  std::future<void> started() { return started_.get_future(); }
  void open_gate() { open_.set_value(); }

 private:
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
  auto device = std::make_shared<GatedDevice>();
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
  }
  EXPECT_EQ(locked.get_future().get().error().code, errc::fail);
  // The running READ was left alone: it ends at its own timeout.
  EXPECT_EQ(read_done.get_future().get().transport, errc::recorder_command_timeout);
  EXPECT_EQ(run(worker, ScsiCommand{core::cdb_test_unit_ready(), core::Direction::none, {}, 0, 10s})
                .transport,
            errc::ok);
  const auto log = device->command_log();
  ASSERT_EQ(log.size(), 2U);  // the READ and the TUR; nothing cancelled reached the device
  EXPECT_EQ(log[0].cdb[0], core::opcode::read10);
  EXPECT_EQ(log[1].cdb[0], core::opcode::test_unit_ready);
  EXPECT_EQ(device->exclusive_owner(), std::nullopt);
}

}  // namespace
}  // namespace discarbiter::drives
