// A drive's channel as the arbiter uses it: one call at a time, each under a
// watchdog, with the drive's "error" state and its command statistics. It
// sits between the arbiter and DriveChannel and knows nothing of locks or
// sessions but which session a call belongs to (so a departing owner's
// queued calls can be dropped).
//
// A call's life:
//
//   send / os_lock / os_unlock /
//   acquire_steps / release_steps ──► queued (FIFO) ──► hand_next_call ──► in the backend
//        dropped unsent ◄── drop_queued                                 │ watchdog armed
//        (its handler gets the error, `returned` runs)                  ▼
//             backend returns first: on_backend_returned ── answer ──► handler
//             timeout + grace first: on_watchdog ── answer ──► handler; the drive enters
//                 "error"; the late return is counted (on_backend_returned) and frees the slot
//
// While a watchdog-answered call still holds the backend, at most one more
// call is handed to it (the arbiter's own calls are exempt, see
// hand_next_call); the rest wait here, counted and droppable.
//
// The drive enters "error" when a command's watchdog answers and leaves it
// when a TEST UNIT READY is answered (any answer: an empty drive's NOT READY
// is a working drive). The owner hears of both, of each timeout and of a
// backend that reports the device gone through one callback, NoticeHandler.
//
// Handlers never run after the WatchedChannel is destroyed.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include "core/drive_channel.hpp"
#include "core/scheduler.hpp"
#include "core/scsi.hpp"
#include "discarbiter/proto/result.hpp"

namespace discarbiter::core {

/// What a WatchedChannel tells its owner about the drive.
struct ChannelNotice {
  enum class Kind {
    command_timed_out,  // a command's watchdog answered; detail: "opcode 0xNN: why"
    error_entered,      // the drive entered "error"; detail: the reason
    error_left,         // a TEST UNIT READY was answered; detail: the reason it was in error
    device_gone,        // the backend reports the device gone; detail: its message
  };
  Kind kind;
  std::string detail;
};

/// Commands the channel has answered (the watchdog's answers included).
struct ChannelStats {
  std::uint64_t commands = 0;  // every SCSI command answered
  std::uint64_t timeouts = 0;  // of those, answered by the watchdog
  std::uint64_t errors = 0;    // of those, failed without a SCSI answer otherwise
};

class WatchedChannel {
 public:
  using ScsiHandler = std::function<void(ScsiResult)>;
  using LockHandler = std::function<void(Result<Done>)>;
  using AcquireHandler = DriveChannel::AcquireHandler;
  using ReleaseHandler = DriveChannel::ReleaseHandler;
  using NoticeHandler = std::function<void(const ChannelNotice&)>;
  /// Whose call it is: a session's id, or 0 for the arbiter's own (never
  /// dropped, never held behind an overrunning backend).
  using CallOwner = std::uint64_t;

  struct Timing {
    /// How long past a call's timeout the watchdog waits for the backend.
    std::chrono::seconds grace{2};
    /// The timeout of the OS exclusive lock and unlock.
    std::chrono::seconds os_call{10};
  };

  WatchedChannel(Scheduler& scheduler, Timing timing, std::shared_ptr<DriveChannel> channel,
                 NoticeHandler notices);
  WatchedChannel(const WatchedChannel&) = delete;
  WatchedChannel& operator=(const WatchedChannel&) = delete;
  ~WatchedChannel();

  /// The same drive came back on a new channel (hot-plug): a fresh start,
  /// out of "error". N.B. a call stuck on the old channel still answers its
  /// handler when the old backend returns it, but no longer counts here.
  void attach(std::shared_ptr<DriveChannel> channel);
  const DriveDescription& description() const { return channel_->description(); }

  /// A SCSI command, with command.timeout as its watchdog's limit. `returned`
  /// (if any) runs once when the backend returns the call, or when it is
  /// dropped unsent, whether or not the watchdog answered first.
  void send(ScsiCommand command, ScsiHandler handler, CallOwner owner = 0,
            std::function<void()> returned = {});
  void os_lock(std::string client_name, bool force, LockHandler handler);
  void os_unlock(LockHandler handler);
  /// The arbiter's lock steps as one call (DriveChannel::async_acquire_steps):
  /// one watchdog, with the sum of the steps' limits. Each SCSI step counts
  /// as a command (statistics, "error", notices), as if sent alone. When the
  /// watchdog answers, each step still to run is answered with the timeout
  /// (DriveSteps::fail_rest); an acquire among the steps is abandoned first
  /// (AcquireFate), and if it had kept the lock the watchdog leaves the
  /// answer to the return, already on its way.
  void acquire_steps(AcquireSteps steps, AcquireHandler handler);
  void release_steps(ReleaseSteps steps, ReleaseHandler handler);

  /// Gives up on the acquire among the calls, queued or in the backend
  /// (AcquireSteps, or the one a release's steps hand off to): nothing more
  /// of it starts, and what it took is undone in the same call. False when
  /// its steps had kept the lock already: their answer is on its way.
  bool abandon_acquire();

  /// Answers the queued, not yet started calls of `owner` (every session's
  /// when nullopt) with `why`; they never reach the drive.
  void drop_queued(std::optional<CallOwner> owner, const Error& why);
  /// The backend's own unstarted calls (those handed on after an overrun)
  /// complete with `why` (DriveChannel::cancel_queued).
  void cancel_in_backend(const Error& why) { channel_->cancel_queued(why); }

  /// A watchdog has answered for a call the backend still works on.
  bool overrunning() const { return in_backend_ > (call_in_flight_ != 0 ? 1U : 0U); }
  /// Why the drive is in "error", if it is.
  const std::optional<std::string>& error() const { return error_; }
  const ChannelStats& stats() const { return stats_; }

 private:
  struct OsLock {
    std::string client_name;
    bool force = false;
  };
  struct OsUnlock {};
  using Handler = std::variant<ScsiHandler, LockHandler, AcquireHandler, ReleaseHandler>;
  using Answer = std::variant<ScsiResult, Result<Done>, AcquireSteps, ReleaseSteps>;
  /// One call, queued or in the backend: plain data.
  struct Call {
    CallOwner owner = 0;
    // N.B. a call's steps stay here when handed (a copy goes to the backend):
    // the watchdog's answer is built from them.
    std::variant<ScsiCommand, OsLock, OsUnlock, AcquireSteps, ReleaseSteps> request;
    std::uint8_t opcode = 0;  // of a SCSI command
    std::chrono::seconds limit{0};
    Handler handler;  // as the request
    std::function<void()> returned;
    // Once handed to the backend:
    std::uint64_t ticket = 0;
    std::uint64_t attachment = 0;
    Scheduler::TimerId watchdog = 0;
    bool answered = false;  // the watchdog answered the handler already
  };

  template <typename Request, typename OnAnswer>
  void enqueue_own(Request request, std::chrono::seconds limit, OnAnswer handler);
  void enqueue(Call call);
  void hand_next_call();
  void issue(DriveChannel& channel, Call& call);
  void on_backend_returned(std::uint64_t ticket, Answer answer);
  /// When the watchdog fires: an acquire's steps (alone or handed off to)
  /// that kept the lock are left to their return, which is on its way;
  /// anything else is answered with the timeout, an acquire abandoned first.
  void on_watchdog(std::uint64_t ticket);
  static AcquireFate* fate_of(const Call& call);
  /// Answers a call's handler (once), first freeing its slot and counting
  /// a SCSI command's result.
  void answer(std::uint64_t ticket, std::uint8_t opcode, Handler handler, Answer result);
  Answer overrun_answer(const Call& call) const;
  static void deliver(Handler& handler, Answer result);
  /// The call's answer when it fails unrun, or unreturned, with `why`.
  static Answer failure(const Call& call, const Error& why);
  void note_command_result(std::uint8_t opcode, const ScsiResult& result);
  void tell(ChannelNotice::Kind kind, std::string detail);

  Scheduler& scheduler_;
  Timing timing_;
  std::shared_ptr<DriveChannel> channel_;
  NoticeHandler notices_;
  // N.B. the channel gets one call at a time: the watchdog of a call starts
  // when the drive does, and what waits here can still be dropped.
  std::deque<Call> queued_;
  std::map<std::uint64_t, Call> in_backend_calls_;  // handed, not returned; by ticket
  std::uint64_t call_in_flight_ = 0;  // the ticket of the call the backend works on; 0: idle
  std::uint64_t next_ticket_ = 1;
  // Calls handed to the channel whose backend has not returned, watchdog
  // answer or not; counted per attachment (a re-attached drive starts anew).
  std::uint32_t in_backend_ = 0;
  std::uint64_t attachment_ = 0;
  std::optional<std::string> error_;
  ChannelStats stats_;
  // N.B. backends and timers may complete after this is gone; they check.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace discarbiter::core
