// The arbiter: who holds which drive, with IMAPI2's exclusive-access
// semantics (DESIGN.md "Semantics"). No I/O and no OS headers; everything
// runs on one strand, so nothing here locks.
//
// A drive's lock states:
//
//            acquire by S (count 0 -> 1)
//   FREE ─────────────────────────────► ACQUIRING ── TUR, OS lock, PREVENT
//    ▲ ▲                                   │ all ok            │ a step failed:
//    │ │                                   ▼                   ▼ roll back, reply
//    │ │        acquire/release by S    OWNED(n) ◄─┐          FREE, then next waiter
//    │ │        with n > 1 stay here ──────┴───────┘
//    │ │                                   │ release to 0, or S's session ends
//    │ └──────────── ALLOW, OS unlock ── RELEASING
//    └── a waiter at the queue's head is granted: ACQUIRING for it
//
// A wait's life: queued (FIFO per drive, with a deadline timer) → granted
// (reaches the head when the drive frees; its acquire runs as above) or
// expired (E_IMAPI_RECORDER_LOCKED) or dropped (its session ended).
//
// While a drive is ACQUIRING or RELEASING for S, S's own further requests on
// it wait ("deferred") and run again when the transition ends.
//
// A drive is handed one channel call at a time; the rest wait in the
// arbiter, in order (after a watchdog answer, while the backend is still
// stuck, one more at most). So a command's watchdog runs only while the drive works
// on it, and the commands of a session that ends (or whose lock is broken)
// are dropped before the release's ALLOW: nothing of a departed owner reaches
// the drive after its lock is freed.
//
// Everything a session can make the service hold is bounded by ArbiterConfig:
// its commands and payload bytes queued or in flight, its deferred requests,
// its waits. Beyond a bound the request fails with DA_E_LIMIT_REACHED naming
// the limit, and nothing else changes.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/audit.hpp"
#include "core/command_policy.hpp"
#include "core/drive_channel.hpp"
#include "core/identity.hpp"
#include "core/scheduler.hpp"
#include "core/timeout_policy.hpp"
#include "discarbiter/proto/messages.hpp"
#include "discarbiter/proto/result.hpp"

namespace discarbiter::core {

using SessionId = std::uint64_t;

struct ArbiterConfig {
  bool tray_lock = true;  // PREVENT MEDIUM REMOVAL while a drive is held
  TimeoutPolicy timeouts;
  std::uint32_t max_waits_per_session = 16;
  std::uint32_t max_waits_per_drive = 64;
  std::uint32_t max_transfer_bytes = 1024 * 1024;
  /// Commands a session may have queued or in flight, over all drives.
  std::uint32_t max_commands_per_session = 32;
  /// Commands queued or in flight on one drive.
  std::uint32_t max_commands_per_drive = 64;
  /// Data-out bytes queued plus data-in bytes reserved, per session; at least
  /// max_transfer_bytes (the configuration checks it).
  std::uint64_t max_payload_bytes_per_session = 8 * 1024 * 1024;
  /// Requests a session may have waiting for a drive's transition to end.
  std::uint32_t max_deferred_per_session = 64;
  /// How long past a command's timeout the arbiter waits for a backend that
  /// overruns before failing the caller itself (the drive goes to "error").
  std::chrono::seconds watchdog_grace{2};
  /// Which CDBs an owner may send (docs/command-policy.md).
  CommandPolicy commands;
};

struct AcquireOptions {
  bool force = false;  // IMAPI2: lock even with a mounted file system; never steals
  std::chrono::milliseconds wait{0};
};

class Arbiter {
 public:
  using CountHandler = std::function<void(Result<std::uint32_t>)>;
  using ExecuteHandler = std::function<void(Result<ScsiResult>)>;
  using EventSink = std::function<void(const proto::Event& event)>;
  using BreakHandler = std::function<void(Result<proto::OwnerInfo>)>;

  Arbiter(Scheduler& scheduler, AuditLog& audit, ArbiterConfig config);
  Arbiter(const Arbiter&) = delete;
  Arbiter& operator=(const Arbiter&) = delete;
  ~Arbiter();

  /// Adds a drive and sends it ALLOW MEDIUM REMOVAL, so a tray lock left by
  /// a crash is cleared before anyone can acquire it. A removed drive whose
  /// id comes back (hot-plug) is attached again on the new channel; an id
  /// that is attached already is refused.
  Result<Done> add_drive(std::shared_ptr<DriveChannel> channel);
  /// The drive is gone (hot-plug removal): its waits fail with
  /// ERROR_DEV_NOT_EXIST, its lock ends (the owner hears "drive_removed"),
  /// and later requests fail until it is added again.
  void remove_drive(const std::string& id, const std::string& reason);

  /// A new connection. events receives the frames for subscribe. An event
  /// sink or a reply handler may end any session (close_session), its own
  /// included, before it returns; the arbiter stays consistent if it does.
  SessionId open_session(PeerIdentity peer, EventSink events);
  /// The hello: records the client name (validated) and the pid the client
  /// reports, used where the OS gave none.
  Result<Done> hello(SessionId session, std::string client_name, std::uint32_t pid);
  /// The connection ended for any reason: every lock of the session dies
  /// exactly as by its final release; its waits are dropped.
  void close_session(SessionId session);
  void subscribe(SessionId session);
  /// Whether the session owns or is acquiring a drive, waits for one, or
  /// has subscribed to events (the idle limit spares such sessions).
  bool holds_anything(SessionId session) const;

  // Each handler runs exactly once, on the strand; perhaps before the call
  // returns (an immediate answer), perhaps much later (a wait).
  void acquire_exclusive_access(SessionId session, const std::string& drive, AcquireOptions options,
                                CountHandler handler);
  void release_exclusive_access(SessionId session, const std::string& drive, CountHandler handler);
  Result<std::optional<proto::OwnerInfo>> exclusive_access_owner(const std::string& drive) const;
  /// Administrators only (E_ACCESSDENIED otherwise): ends the owner's lock
  /// exactly as its final release would, whatever its count, and answers
  /// with the former owner once the drive is free. The owner hears
  /// "lock_broken", and its next acquire, release or execute on the drive
  /// fails with E_IMAPI_RECORDER_LOCKED naming who broke the lock.
  void break_exclusive_access(SessionId session, const std::string& drive, BreakHandler handler);
  void execute(SessionId session, const std::string& drive, ScsiCommand command,
               std::optional<std::uint32_t> requested_timeout_s, ExecuteHandler handler);

  std::vector<proto::DriveSummary> drives() const;
  /// The "drives" and "clients" parts of the status document.
  proto::ArbitrationStatus status() const;

  /// Calls fn once no drive is held or changing hands: at once if so now,
  /// else when the last one frees (service stop waits on this).
  void when_all_free(std::function<void()> fn);

 private:
  struct Session;
  struct Drive;
  struct Waiter;
  struct ChannelCall;
  struct Deferred;

  Session* find_session(SessionId id);
  const Drive* find_drive(const std::string& id) const;
  Drive* find_drive(const std::string& id);
  Result<Drive*> usable_drive(const std::string& id);
  struct RequestTarget {
    Session* session;
    Drive* drive;
  };
  /// The guard every acquire, release and execute passes first: a greeted
  /// session, a drive that exists and is present, and no unread notice that
  /// this session's lock on it was broken (which is the answer if there is).
  Result<RequestTarget> request_target(SessionId id, const std::string& drive_id,
                                       std::string_view verb);

  void start_acquire(Drive& drive, SessionId session, AcquireOptions options, CountHandler handler);
  void finish_acquire(Drive& drive, SessionId session, Result<Done> outcome, CountHandler handler);
  /// Why a lock ends; subscribers read it in the `released` event.
  enum class ReleaseCause { released, session_ended, broken };
  static std::string_view name_of(ReleaseCause cause);
  void start_release(Drive& drive, ReleaseCause cause, CountHandler handler);
  /// ALLOW MEDIUM REMOVAL when `prevent`, then PERSISTENT ALLOW when
  /// `persistent`; a failure is audited (`when` prefixes it) and the next
  /// step runs regardless, then `done`.
  void allow_medium_removal(Drive& drive, bool prevent, bool persistent, std::string_view when,
                            std::function<void()> done);
  /// The owner's one answer after `break`: the error for its next request
  /// on the drive, if its lock there was broken.
  std::optional<Error> take_broken_notice(Session& session, const std::string& drive);
  void finish_release(Drive& drive, CountHandler handler);
  void enqueue_waiter(Drive& drive, Session& session, AcquireOptions options, CountHandler handler);
  void expire_waiter(const std::string& drive, std::uint64_t ticket);
  void grant_next_waiter(Drive& drive);
  /// A request that waits for the drive's transition to end, within the
  /// session's max_deferred_per_session (the error if not).
  std::optional<Error> deferral_limit(const Session& session) const;
  void defer(Drive& drive, Session& session, std::function<void()> request);
  void run_deferred(Drive& drive);
  /// Every channel call goes through these: it waits its turn in the drive's
  /// queue (session: whose command it is; 0 for the arbiter's own TUR,
  /// PREVENT, ALLOW and OS calls), its watchdog starts when the drive gets it
  /// and answers for a backend that overruns its timeout, and results are
  /// counted before the handler runs. Handlers never run after the arbiter is
  /// gone.
  /// `returned` (if any) runs once when the backend returns the call, or
  /// when it is dropped unsent: a client's command counts until then.
  void send(Drive& drive, ScsiCommand command, std::function<void(ScsiResult)> handler,
            SessionId session = 0, std::function<void()> returned = {});
  void os_lock(Drive& drive, std::string client_name, bool force,
               std::function<void(Result<Done>)> handler);
  void os_unlock(Drive& drive, std::function<void(Result<Done>)> handler);
  template <typename R>
  std::function<void(R)> watch(std::chrono::seconds limit, std::function<R()> overrun,
                               std::function<void(R)> handler);
  /// Wraps a channel completion: counts the call in Drive::in_backend until
  /// the backend returns it (whether or not its watchdog answered first),
  /// runs `returned`, then `watched`.
  template <typename R>
  std::function<void(R)> track(Drive& drive, std::function<void()> returned,
                               std::function<void(R)> watched);
  static Result<Done> os_call_overrun(std::string_view what, std::chrono::seconds limit);
  void enqueue_call(Drive& drive, ChannelCall call);
  void hand_next_call(Drive& drive);
  /// The drive has answered (or its watchdog has) the call with this ticket.
  void call_finished(Drive& drive, std::uint64_t ticket);
  /// Answers the not-yet-started commands of `session` (every client's when
  /// nullopt) with `why`; they never reach the drive.
  void drop_commands(Drive& drive, std::optional<SessionId> session, const Error& why);
  /// The bounds on commands and payload bytes a session may have queued or
  /// in flight (the error naming the first one `bytes` more would pass).
  std::optional<Error> command_limit(const Session& session, const Drive& drive,
                                     std::uint64_t bytes) const;
  void hold_command(Session& session, Drive& drive, std::uint64_t bytes);
  void let_go_command(SessionId session, Drive& drive, std::uint64_t bytes);
  void note_command_result(Drive& drive, std::uint8_t opcode, const ScsiResult& result);
  void mark_removed(Drive& drive, const std::string& reason);
  void check_all_free();

  void audit(AuditKind kind, const Drive& drive, SessionId session, std::string detail = {});
  void notify(const proto::Event& event);
  Error locked_error(const Drive& drive) const;
  std::optional<proto::OwnerInfo> owner_info(const Drive& drive) const;

  Scheduler& scheduler_;
  AuditLog& audit_;
  ArbiterConfig config_;
  SessionId next_session_ = 1;
  std::uint64_t next_ticket_ = 1;
  std::map<SessionId, std::unique_ptr<Session>> sessions_;
  std::vector<std::unique_ptr<Drive>> drives_;
  std::function<void()> on_all_free_;
  // N.B. handlers of drive completions may outlive the arbiter's drives only
  // if a channel completes after the arbiter is gone; this flag lets them
  // see that.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace discarbiter::core
