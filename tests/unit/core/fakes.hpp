// Fakes of exactly the arbiter's seams: Scheduler (a clock the test moves),
// DriveChannel (scripted answers, completed only when the test runs the
// scheduler) and AuditLog (records what was logged).
#pragma once

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/arbiter.hpp"

namespace discarbiter::testing {

class FakeScheduler final : public core::Scheduler {
 public:
  Clock::time_point now() const override { return now_; }
  std::chrono::system_clock::time_point wall_now() const override {
    return std::chrono::system_clock::time_point{} + std::chrono::hours(24 * 365 * 56) +
           (now_ - Clock::time_point{});
  }
  TimerId schedule_at(Clock::time_point deadline, std::function<void()> fn) override {
    timers_.emplace(next_, Timer{deadline, std::move(fn)});
    return next_++;
  }
  void cancel(TimerId id) override { timers_.erase(id); }

  void post(std::function<void()> fn) { ready_.push_back(std::move(fn)); }

  /// Runs posted work (drive completions) until none is left.
  void run() {
    while (!ready_.empty()) {
      auto fn = std::move(ready_.front());
      ready_.pop_front();
      fn();
    }
  }

  /// Moves the clock, firing due timers in deadline order, running posted
  /// work after each.
  void advance(std::chrono::milliseconds by) {
    const auto until = now_ + by;
    run();
    for (;;) {
      auto due = timers_.end();
      for (auto it = timers_.begin(); it != timers_.end(); ++it) {
        if (it->second.deadline <= until &&
            (due == timers_.end() || it->second.deadline < due->second.deadline)) {
          due = it;
        }
      }
      if (due == timers_.end())
        break;
      now_ = std::max(now_, due->second.deadline);
      auto fn = std::move(due->second.fn);
      timers_.erase(due);
      fn();
      run();
    }
    now_ = until;
  }

  std::size_t pending_timers() const { return timers_.size(); }

 private:
  struct Timer {
    Clock::time_point deadline;
    std::function<void()> fn;
  };
  Clock::time_point now_{};
  TimerId next_ = 1;
  std::map<TimerId, Timer> timers_;
  std::deque<std::function<void()>> ready_;
};

class FakeDrive final : public core::DriveChannel {
 public:
  FakeDrive(FakeScheduler& scheduler, std::string id,
            core::OsLock os_lock = core::OsLock::simulated)
      : scheduler_(scheduler) {
    description_.id = std::move(id);
    description_.path = "fake:" + description_.id;
    description_.backend = "simulated";
    description_.max_transfer_bytes = 65536;
    description_.os_lock = os_lock;
  }

  const core::DriveDescription& description() const override { return description_; }

  void async_execute(core::ScsiCommand command, ExecuteHandler handler) override {
    commands.push_back(command.cdb);
    timeouts.push_back(command.timeout);
    if (stuck.contains(command.opcode())) {
      // A backend that overruns: the answer comes only when the test says.
      stuck_handlers.push_back(std::move(handler));
      return;
    }
    core::ScsiResult result;
    if (auto it = scripted.find(command.opcode()); it != scripted.end() && !it->second.empty()) {
      result = it->second.front();
      it->second.pop_front();
    }
    if (command.opcode() == core::opcode::prevent_allow_medium_removal && result.good()) {
      tray_locked = command.cdb[4] & 1;
    }
    scheduler_.post([handler = std::move(handler), result] { handler(result); });
  }

  void async_os_lock(std::string client_name, bool force, LockHandler handler) override {
    Result<Done> r = Done{};
    if (os_lock_fails) {
      r = Error{errc::access_denied, "scripted OS lock failure"};
    } else {
      os_owner = client_name;
      os_force = force;
    }
    scheduler_.post([handler = std::move(handler), r] { handler(r); });
  }

  void async_os_unlock(LockHandler handler) override {
    os_owner.clear();
    ++unlocks;
    scheduler_.post([handler = std::move(handler)] { handler(Done{}); });
  }

  /// The next command with this opcode gets this result.
  void script(std::uint8_t opcode, core::ScsiResult result) { scripted[opcode].push_back(result); }

  /// Opcodes sent, in order.
  std::vector<std::uint8_t> opcodes() const {
    std::vector<std::uint8_t> out;
    for (const auto& c : commands)
      out.push_back(c.empty() ? 0xFF : c[0]);
    return out;
  }

  std::vector<proto::Bytes> commands;
  std::vector<std::chrono::seconds> timeouts;
  std::map<std::uint8_t, std::deque<core::ScsiResult>> scripted;
  std::set<std::uint8_t> stuck;  // opcodes whose answers are held back
  std::vector<ExecuteHandler> stuck_handlers;
  bool os_lock_fails = false;
  std::string os_owner;
  bool os_force = false;
  int unlocks = 0;
  bool tray_locked = false;

 private:
  FakeScheduler& scheduler_;
  core::DriveDescription description_;
};

class RecordingAudit final : public core::AuditLog {
 public:
  void record(const core::AuditRecord& r) override { records.push_back(r); }
  std::size_t count(core::AuditKind kind) const {
    return static_cast<std::size_t>(std::ranges::count(records, kind, &core::AuditRecord::kind));
  }
  std::vector<core::AuditRecord> records;
};

}  // namespace discarbiter::testing
