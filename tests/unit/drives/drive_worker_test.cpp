#include "drive_worker.hpp"

#include <condition_variable>
#include <future>

#include <gtest/gtest.h>

#include "simulated_drive.hpp"

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

}  // namespace
}  // namespace discarbiter::drives
