// An arbiter over simulated drives on the fake scheduler, and the service
// context a transport::Dispatcher needs: what the dispatcher's and the
// session's unit tests and the dispatch fuzzer (tests/fuzz/fuzz_dispatch.cpp)
// put behind the requests they send.
#pragma once

#include <cstdlib>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/arbiter.hpp"
#include "core/fakes.hpp"
#include "drives/simulated_drive.hpp"
#include "transport/dispatcher.hpp"

namespace discarbiter::testing {

/// A simulated drive behind the arbiter's seam, answering on the fake
/// scheduler's queue (never inside the call). Its drive is named "sim<index>".
class SimulatedChannel final : public core::DriveChannel {
 public:
  SimulatedChannel(FakeScheduler& scheduler, unsigned index)
      : scheduler_(scheduler), drive_(index), description_(drive_.describe()) {}
  const core::DriveDescription& description() const override { return description_; }
  void async_execute(core::ScsiCommand command, ExecuteHandler handler) override {
    last_data_out = command.data_out.data();
    auto result = drive_.execute(command);
    last_data_in = result.data_in.data();
    scheduler_.post([h = std::move(handler), r = std::move(result)]() mutable { h(std::move(r)); });
  }
  void async_os_lock(std::string client_name, bool force, LockHandler handler) override {
    auto r = drive_.lock_exclusive(client_name, force);
    scheduler_.post([h = std::move(handler), r = std::move(r)]() mutable { h(std::move(r)); });
  }
  void async_os_unlock(LockHandler handler) override {
    auto r = drive_.unlock_exclusive();
    scheduler_.post([h = std::move(handler), r = std::move(r)]() mutable { h(std::move(r)); });
  }

  drives::SimulatedDrive& drive() { return drive_; }

  /// Where the last command's data-out was when it reached the drive, and
  /// where the drive put its data-in: to check that they were never copied.
  const std::uint8_t* last_data_out = nullptr;
  const std::uint8_t* last_data_in = nullptr;

 private:
  FakeScheduler& scheduler_;
  drives::SimulatedDrive drive_;
  core::DriveDescription description_;
};

/// `drives` simulated drives (sim0, sim1, …) added to an arbiter, their
/// identification run, and a ServiceContext over it. Run `scheduler` to let
/// the drives answer.
struct DispatchFixture {
  explicit DispatchFixture(core::ArbiterConfig config = {}, unsigned drives = 2)
      : arbiter(scheduler, audit, std::move(config)) {
    for (unsigned i = 0; i < drives; ++i) {
      channels.push_back(std::make_shared<SimulatedChannel>(scheduler, i));
      if (!arbiter.add_drive(channels.back()).ok())
        std::abort();
    }
    scheduler.run();
  }

  FakeScheduler scheduler;
  RecordingAudit audit;
  core::Arbiter arbiter;
  std::vector<std::shared_ptr<SimulatedChannel>> channels;
  /// Status documents are written at once, unless a test holds them here
  /// (as the service's status thread may be late) and runs them itself.
  bool hold_status_writes = false;
  std::deque<transport::StatusWriter::Job> held_status_writes;
  transport::StatusWriter status_writer{
      [this] {
        return transport::StatusSnapshot{arbiter.status_snapshot(), {}};
      },
      [this](transport::StatusWriter::Job job) {
        hold_status_writes ? held_status_writes.push_back(std::move(job)) : job();
      },
      [](transport::StatusWriter::Job job) { job(); }};
  transport::ServiceContext context{arbiter, "test", status_writer};
};

}  // namespace discarbiter::testing
