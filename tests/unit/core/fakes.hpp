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
#include <type_traits>
#include <utility>
#include <variant>
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
    if (stuck.contains(command.opcode())) {
      commands.push_back(command.cdb);
      timeouts.push_back(command.timeout);
      // A backend that overruns: the answer comes only when the test says.
      stuck_handlers.push_back(std::move(handler));
      return;
    }
    scheduler_.post([handler = std::move(handler), result = run(command)] { handler(result); });
  }

  void async_os_lock(std::string client_name, bool force, LockHandler handler) override {
    scheduler_.post([handler = std::move(handler), r = lock(client_name, force)] { handler(r); });
  }

  void async_os_unlock(LockHandler handler) override {
    scheduler_.post([handler = std::move(handler), r = unlock()] { handler(r); });
  }

  /// The lock's steps: one call each (a job on a backend with a thread);
  /// step by step through the calls above, or, with steps_at_once, all at
  /// once as DriveWorker runs them, their return posted (or held).
  void async_acquire_steps(core::AcquireSteps steps, AcquireHandler handler) override {
    steps_call(std::move(steps), std::move(handler));
  }
  void async_release_steps(core::ReleaseSteps steps, ReleaseHandler handler) override {
    steps_call(std::move(steps), std::move(handler));
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

  /// Runs the held returns of steps run at once, in order.
  void return_held() {
    for (auto& fn : std::exchange(held_returns, {}))
      scheduler_.post(std::move(fn));
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
  int step_calls = 0;          // async_acquire_steps and async_release_steps calls
  bool steps_at_once = false;  // run the steps in the call, as DriveWorker's job does
  bool hold_returns = false;   // ... and hold their return until return_held()
  std::vector<std::function<void()>> held_returns;

 private:
  core::ScsiResult run(const core::ScsiCommand& command) {
    commands.push_back(command.cdb);
    timeouts.push_back(command.timeout);
    core::ScsiResult result;
    if (auto it = scripted.find(command.opcode()); it != scripted.end() && !it->second.empty()) {
      result = it->second.front();
      it->second.pop_front();
    }
    if (command.opcode() == core::opcode::prevent_allow_medium_removal && result.good()) {
      tray_locked = command.cdb[4] & 1;
    }
    return result;
  }
  Result<Done> lock(const std::string& client_name, bool force) {
    if (os_lock_fails)
      return Error{errc::access_denied, "scripted OS lock failure"};
    os_owner = client_name;
    os_force = force;
    return Done{};
  }
  Result<Done> unlock() {
    os_owner.clear();
    ++unlocks;
    return Done{};
  }
  template <typename Steps, typename Handler>
  void steps_call(Steps steps, Handler handler) {
    ++step_calls;
    if (!steps_at_once) {
      if constexpr (std::is_same_v<Steps, core::AcquireSteps>)
        DriveChannel::async_acquire_steps(std::move(steps), std::move(handler));
      else
        DriveChannel::async_release_steps(std::move(steps), std::move(handler));
      return;
    }
    run_at_once(steps);
    give_back([handler = std::move(handler), steps = std::move(steps)]() mutable {
      handler(std::move(steps));
    });
  }
  void run_at_once(core::DriveSteps& steps) {
    while (const auto call = steps.next()) {
      if (const auto* command = std::get_if<const core::ScsiCommand*>(&*call))
        steps.record(run(**command));
      else if (const auto* l = std::get_if<core::DriveSteps::OsLockCall>(&*call))
        steps.record(lock(*l->client_name, l->force));
      else
        steps.record(unlock());
    }
  }
  void give_back(std::function<void()> fn) {
    if (hold_returns)
      held_returns.push_back(std::move(fn));
    else
      scheduler_.post(std::move(fn));
  }

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
