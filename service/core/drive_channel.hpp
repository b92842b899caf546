// How the arbiter reaches one drive. A backend (simulated, sgio, spti) sits
// behind it; the arbiter never sees a handle or a thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/scsi.hpp"
#include "discarbiter/proto/result.hpp"

namespace discarbiter::core {

/// What keeps programs outside DiscArbiter away from a drive (status `os_lock`).
enum class OsLock {
  simulated,       // no OS device behind it
  exclusive_open,  // Linux: the service's O_EXCL open and flock, for as long as it runs
  class_driver,    // Windows: IOCTL_CDROM_EXCLUSIVE_ACCESS in the owner's name while owned
  unsupported,     // Windows: the driver below refuses that IOCTL; only the service's own lock
};

/// The name status shows (docs/protocol.md "The status document").
constexpr std::string_view os_lock_name(OsLock lock) {
  switch (lock) {
    case OsLock::simulated:
      return "simulated";
    case OsLock::exclusive_open:
      return "exclusive_open";
    case OsLock::class_driver:
      return "class_driver";
    case OsLock::unsupported:
      return "unsupported";
  }
  return "unknown";
}

struct DriveDescription {
  std::string id;       // "sim0", "cdrom0"
  std::string path;     // "/dev/sg0", "\\.\CdRom0", "simulated:0"
  std::string backend;  // "simulated" | "sgio" | "spti"
  std::string vendor;
  std::string product;
  std::string revision;
  std::uint32_t max_transfer_bytes = 64 * 1024;
  OsLock os_lock = OsLock::simulated;
};

/// Steps a backend runs back to back as one call, deciding nothing itself:
/// it asks next() for a step, runs it, hands its answer to record(), and
/// asks again until next() has none. The sequence's rules live here, so a
/// backend that runs them in one job (DriveWorker) and one that chains its
/// single calls (DriveChannel's default) take the same steps.
class DriveSteps {
 public:
  struct OsLockCall {
    const std::string* client_name;
    bool force;
  };
  struct OsUnlockCall {};
  /// The next step; a pointer into this object, valid while it lives unmoved.
  using Call = std::variant<const ScsiCommand*, OsLockCall, OsUnlockCall>;
  using Answer = std::variant<ScsiResult, Result<Done>>;
  using CommandVisitor = std::function<void(const ScsiCommand&, const ScsiResult&)>;

  virtual ~DriveSteps() = default;
  virtual std::optional<Call> next() const = 0;
  virtual void record(Answer answer) = 0;
  /// Each SCSI step that ran, in order, with its answer.
  virtual void each_command(const CommandVisitor& fn) const = 0;
  /// The sum of the steps' limits: the commands' timeouts, `os_call` for
  /// each OS step that may run.
  virtual std::chrono::seconds limit(std::chrono::seconds os_call) const = 0;
  /// Answers every step still to run with `why`, as its backend would fail
  /// it (a cancelled call, a vanished device, a watchdog's answer); each
  /// answer counts for what runs next, as a real one would.
  void fail_rest(const Error& why);
  /// Answers every step still to run with `why` as never sent: the backend
  /// took the call back before starting it (ScsiResult::sent).
  void take_back(const Error& why);

 protected:
  DriveSteps() = default;
  DriveSteps(const DriveSteps&) = default;
  DriveSteps(DriveSteps&&) = default;
  DriveSteps& operator=(const DriveSteps&) = default;
  DriveSteps& operator=(DriveSteps&&) = default;

 private:
  void answer_rest(const Error& why, ScsiResult (*command_answer)(errc, std::string));
};

/// Whether an acquire's steps may end holding the lock: one object shared by
/// the steps, each copy of them (the backend's, the watchdog's) and whoever
/// may give up on them. Exactly one of two things happens first: the steps
/// keep the lock (their last step ran and nobody had given up: their return
/// is then on its way and is the answer), or they are abandoned (nothing more
/// starts for them, and what they took is undone in the same call, before
/// the backend's next call, which may be the next owner's).
class AcquireFate {
 public:
  /// Gives up on the steps; false when they had kept the lock already.
  bool abandon() {
    auto expected = running;
    return state_.compare_exchange_strong(expected, abandoned_) || expected == abandoned_;
  }
  bool abandoned() const { return state_.load() == abandoned_; }
  /// The steps end holding the lock; false when they were abandoned first.
  bool keep() {
    auto expected = running;
    return state_.compare_exchange_strong(expected, kept) || expected == kept;
  }

 private:
  static constexpr std::uint8_t running = 0;
  static constexpr std::uint8_t abandoned_ = 1;
  static constexpr std::uint8_t kept = 2;
  std::atomic<std::uint8_t> state_{running};
};

/// A first acquire's steps: TEST UNIT READY (any SCSI answer will do; none
/// ends the steps), the OS exclusive lock, then PREVENT MEDIUM REMOVAL if
/// asked (tray_lock). An OS lock taken is rolled back (OS unlock) when the
/// PREVENT is not good; when the steps are abandoned (AcquireFate) a good
/// PREVENT is undone first (ALLOW MEDIUM REMOVAL), then the OS lock.
struct AcquireSteps final : DriveSteps {
  ScsiCommand test_unit_ready;
  std::string client_name;  // the OS lock's
  bool force = false;
  std::optional<ScsiCommand> prevent;
  ScsiCommand allow;  // undoes the PREVENT of abandoned steps (with `prevent`)
  /// Set by the caller when it no longer wants the lock (the drive was
  /// removed, the waiter left, or the watchdog answered for the steps):
  /// read between steps and before they end holding the lock.
  std::shared_ptr<AcquireFate> fate = std::make_shared<AcquireFate>();

  // The answers; a step that did not run has none.
  std::optional<ScsiResult> tur_answer;
  std::optional<Result<Done>> os_locked;
  std::optional<ScsiResult> prevented;
  std::optional<ScsiResult> allowed_back;  // the undoing ALLOW
  std::optional<Result<Done>> rolled_back;

  /// Whether the steps ended holding the OS lock.
  bool holds_lock() const { return os_locked && *os_locked && !rolled_back; }

  std::optional<Call> next() const override;
  void record(Answer answer) override;
  void each_command(const CommandVisitor& fn) const override;
  std::chrono::seconds limit(std::chrono::seconds os_call) const override;
};

/// A release's steps: each ALLOW MEDIUM REMOVAL in order, whatever the one
/// before answered, then the OS unlock if asked (add_drive's start-up ALLOWs
/// have none), then, in a hand-off, the next owner's acquire (`then`) in the
/// same call, whatever the release's steps answered; it is skipped when
/// abandoned before its first step.
struct ReleaseSteps final : DriveSteps {
  std::vector<ScsiCommand> allows;
  bool os_unlock = true;
  std::optional<AcquireSteps> then;

  std::vector<ScsiResult> allowed;  // one per ALLOW that ran
  std::optional<Result<Done>> unlocked;

  /// The acquire's fate among the steps, if there is an acquire.
  AcquireFate* acquire_fate() const { return then ? then->fate.get() : nullptr; }

  std::optional<Call> next() const override;
  void record(Answer answer) override;
  void each_command(const CommandVisitor& fn) const override;
  std::chrono::seconds limit(std::chrono::seconds os_call) const override;

 private:
  /// Whether the release's own steps are still to run.
  bool releasing() const { return allowed.size() < allows.size() || (os_unlock && !unlocked); }
};

class DriveChannel {
 public:
  using ExecuteHandler = std::function<void(ScsiResult)>;
  using LockHandler = std::function<void(Result<Done>)>;
  using AcquireHandler = std::function<void(AcquireSteps)>;
  using ReleaseHandler = std::function<void(ReleaseSteps)>;

  virtual ~DriveChannel() = default;

  virtual const DriveDescription& description() const = 0;

  // Each call completes exactly once, on the arbiter's strand, never inside
  // the call itself; calls on one channel complete in the order made.
  virtual void async_execute(ScsiCommand command, ExecuteHandler handler) = 0;
  /// The OS-level exclusive lock (Windows IOCTL_CDROM_EXCLUSIVE_ACCESS with
  /// the client name; a no-op where the service's open already excludes).
  virtual void async_os_lock(std::string client_name, bool force, LockHandler handler) = 0;
  virtual void async_os_unlock(LockHandler handler) = 0;
  /// The steps as one call: it completes once, with each step's answer. The
  /// default chains the calls above, one step at a time (for channels whose
  /// calls cost nothing, as the tests' fakes); a backend with a thread runs
  /// them all in one job. The channel must outlive the call.
  virtual void async_acquire_steps(AcquireSteps steps, AcquireHandler handler);
  virtual void async_release_steps(ReleaseSteps steps, ReleaseHandler handler);
  /// Calls made but not yet started complete with `why` instead (as every
  /// call does: on the strand, in order); the one the drive works on is left
  /// alone. The arbiter hands one call at a time, so normally nothing waits
  /// here; after a watchdog answered for a backend that overran, the calls
  /// it handed on may, and a departing owner's must not reach the drive.
  virtual void cancel_queued(const Error& /*why*/) {}

 private:
  /// Runs steps->next() through the calls above until it has none, then done.
  void chain_steps(std::shared_ptr<DriveSteps> steps, std::function<void()> done);
};

}  // namespace discarbiter::core
