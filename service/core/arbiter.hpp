// The arbiter: who holds which drive, with IMAPI2's exclusive-access
// semantics (DESIGN.md "Semantics"). No I/O and no OS headers; everything
// runs on one strand, so nothing here locks.
//
// A drive's lock states, and the steps (members, in arbiter.cpp's order)
// that move it between them:
//
//            start_acquire (count 0 -> 1): AcquireSteps, one call to the drive:
//   FREE ─────────────────────────────► ACQUIRING   TEST UNIT READY, OS lock, PREVENT
//    ▲ ▲                                   │        (if tray_lock; a failure rolls the
//    │ │                                   │        OS lock back); on_acquire_steps
//    │ │                                   ▼ finish_acquire
//    │ │             all ok: acquire_succeeded   a step failed, or the drive was
//    │ │                                   │     removed: acquire_failed, back to
//    │ │                                   ▼     FREE, then the next waiter
//    │ │        acquire/release by S    OWNED(n) ◄─┐
//    │ │        with n > 1 stay here ──────┴───────┘
//    │ │                                   │ start_release: release to 0, S's session
//    │ │                                   │ ends, or break_lock
//    │ │                                   ▼
//    │ └── finish_release ◄── on_release_steps ◄── RELEASING
//    │     (allow_medium_removal: ReleaseSteps, one call to the drive: PERSISTENT
//    │      ALLOW, ALLOW, OS unlock, on_allowed for each ALLOW's answer; and with a
//    │      waiter queued, its AcquireSteps in the same call: a hand-off)
//    └── the waiter at the queue's head: its acquire's answers if they came with
//        the release's (take_hand_off, then on_acquire_steps), else
//        grant_next_waiter: start_acquire for it
//
// What a transition carries from step to step is plain data: the drive's
// Acquisition (whose acquire, its handler), its ReleaseReply (who hears the
// release end) and release_cause, or a TrayAllowing passed by value. Each
// channel completion is a one-line trampoline into the next step.
//
// A wait's life: enqueue_waiter (FIFO per drive, with a deadline timer) →
// grant_next_waiter (it reaches the head when the drive frees: start_acquire
// runs for it as above) or expire_waiter (E_IMAPI_RECORDER_LOCKED) or
// dropped (close_session; remove_drive answers ERROR_DEV_NOT_EXIST).
//
// While a drive is ACQUIRING or RELEASING for S, S's own further requests on
// it wait (defer): each is plain data (Deferred: which request, its
// arguments, its handler). When the transition ends run_deferred resumes
// each one: it passes the same guard as a new request (the session may have
// ended, the drive gone, the lock been broken meanwhile), then the same
// internal step (try_acquire, try_release, try_break, admit_command).
//
// A client's command: execute (the guard) → admit_command (owner, policy,
// shape, bounds) → queue_command → WatchedChannel::send … →
// on_command_answered → its handler.
//
// Each drive's channel is a WatchedChannel (core/watched_channel.hpp): one
// call at a time, each under a watchdog, the drive's "error" state and its
// statistics; the arbiter hears of those through on_channel_notice. So a
// command's watchdog runs only while the drive works on it, and the commands
// of a session that ends (or whose lock is broken) are dropped before the
// release's ALLOW: nothing of a departed owner reaches the drive after its
// lock is freed.
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
#include "core/watched_channel.hpp"
#include "discarbiter/proto/messages.hpp"
#include "discarbiter/proto/result.hpp"

namespace discarbiter::core {

using SessionId = std::uint64_t;

/// The status document's "drives" and "clients" as the service's status
/// writer takes them (its text is written off the io thread): each client's
/// entry is immutable and shared, made again only when its session changes,
/// so that a snapshot copies a pointer per session.
struct StatusSnapshot {
  std::vector<proto::DriveStatus> drives;
  std::vector<std::shared_ptr<const proto::ClientStatus>> clients;
};

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
  /// an acquire in progress fails with ERROR_DEV_NOT_EXIST when its step in
  /// flight returns (and holds nothing), and later requests fail until it is
  /// added again.
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
  /// The same, its client entries shared: O(sessions) pointer copies, and an
  /// entry made only for a session that changed since the last snapshot.
  StatusSnapshot status_snapshot() const;

  /// Calls fn once no drive is held or changing hands: at once if so now,
  /// else when the last one frees (service stop waits on this).
  void when_all_free(std::function<void()> fn);

 private:
  struct Session;
  struct Drive;
  struct Waiter;
  struct Deferred;
  struct Acquisition;
  struct HandOff;
  struct ReleaseReply;
  struct TrayAllowing;
  struct Execution;
  struct CommandInFlight;

  Session* find_session(SessionId id);
  const Drive* find_drive(const std::string& id) const;
  Drive* find_drive(const std::string& id);
  Result<Drive*> usable_drive(const std::string& id);
  struct RequestTarget {
    Session* session;
    Drive* drive;
  };
  /// The guard every acquire, release and execute passes first (a deferred
  /// one again when it resumes): a greeted session, a drive that exists and
  /// is present, and no unread notice that this session's lock on it was
  /// broken (which is the answer if there is).
  Result<RequestTarget> request_target(SessionId id, const std::string& drive_id,
                                       std::string_view verb);
  /// break's guard: a greeted administrator's session and a present drive.
  Result<RequestTarget> break_target(SessionId id, const std::string& drive_id);
  /// The owner's one answer after `break`: the error for its next request
  /// on the drive, if its lock there was broken.
  std::optional<Error> take_broken_notice(Session& session, const std::string& drive);

  // The requests past their guard (a deferred one resumes here).
  void try_acquire(RequestTarget target, AcquireOptions options, CountHandler handler);
  void try_release(RequestTarget target, CountHandler handler);
  void try_break(RequestTarget target, BreakHandler handler);
  void break_lock(RequestTarget target, BreakHandler handler);
  void admit_command(RequestTarget target, Execution execution);
  /// Why the command may not be sent (the command policy, its CDB's length,
  /// its transfer's size), if it may not.
  std::optional<Error> command_refusal(const Session& session, const Drive& drive,
                                       const ScsiCommand& command) const;
  void queue_command(Drive& drive, Session& session, Execution execution, std::uint64_t bytes);
  void on_command_answered(Drive& drive, const CommandInFlight& command, ScsiResult result);
  /// The bounds on commands and payload bytes a session may have queued or
  /// in flight (the error naming the first one `bytes` more would pass).
  std::optional<Error> command_limit(const Session& session, const Drive& drive,
                                     std::uint64_t bytes) const;
  void hold_command(Session& session, Drive& drive, std::uint64_t bytes);
  void let_go_command(SessionId session, Drive& drive, std::uint64_t bytes);

  // Acquire: TUR, OS lock, PREVENT as one call (see the diagram).
  void start_acquire(Drive& drive, SessionId session, AcquireOptions options, CountHandler handler);
  /// The drive is ACQUIRING for the session (its steps run or ran already).
  void begin_acquire(Drive& drive, SessionId session, AcquireOptions options, CountHandler handler);
  AcquireSteps acquire_steps(std::string client_name, AcquireOptions options) const;
  /// Who acquires, as status and the records show an owner.
  proto::OwnerInfo owner_snapshot(const Session& session, AcquireOptions options) const;
  void on_acquire_steps(Drive& drive, AcquireSteps steps);
  void finish_acquire(Drive& drive, Result<Done> outcome);
  void acquire_succeeded(Drive& drive, SessionId session, CountHandler handler);
  void acquire_failed(Drive& drive, SessionId session, const Error& why, CountHandler handler);

  // Release: ALLOWs, OS unlock.
  /// Why a lock ends; subscribers read it in the `released` event.
  enum class ReleaseCause { released, session_ended, broken };
  static std::string_view name_of(ReleaseCause cause);
  void start_release(Drive& drive, ReleaseCause cause, ReleaseReply reply);
  /// Before a lock ends other than by its owner's release (or behind a
  /// stuck backend), the owner's unstarted commands are dropped.
  void drop_departing_commands(Drive& drive, ReleaseCause cause);
  /// Sends the ALLOWs `allowing` names (PERSISTENT ALLOW first) and, for a
  /// release, the OS unlock after them, as one call; with a waiter queued,
  /// the same call then runs its acquire's steps (a hand-off).
  void allow_medium_removal(Drive& drive, TrayAllowing allowing);
  /// A failed ALLOW or OS unlock is audited (the next step ran regardless).
  void on_release_steps(Drive& drive, bool start_up, ReleaseSteps steps);
  void on_allowed(Drive& drive, std::uint8_t field, bool start_up, const ScsiResult& result);
  void finish_release(Drive& drive, std::optional<AcquireSteps> handed);
  /// The hand-off's acquire steps that ran, with the drive ACQUIRING for
  /// their waiter (its turn from the queue, or, if its session ended after
  /// they kept the lock, for the lock to end at once); nullopt when the
  /// grant is grant_next_waiter's.
  std::optional<AcquireSteps> take_hand_off(Drive& drive, std::optional<AcquireSteps> handed);

  /// Why the session may not wait for the drive (it waits already, or a
  /// bound on waits is reached), if it may not.
  std::optional<Error> wait_refusal(const Drive& drive, const Session& session) const;
  void enqueue_waiter(Drive& drive, Session& session, AcquireOptions options, CountHandler handler);
  void expire_waiter(const std::string& drive, std::uint64_t ticket);
  void grant_next_waiter(Drive& drive);
  /// A request that waits for the drive's transition to end, within the
  /// session's max_deferred_per_session (the error if not).
  std::optional<Error> deferral_limit(const Session& session) const;
  void defer(Drive& drive, Session& session, Deferred request);
  void run_deferred(Drive& drive);
  void resume(Drive& drive, Deferred request);

  /// What the drive's WatchedChannel reports: timeouts, "error" entered and
  /// left (drive_error / drive_recovered), a device the backend finds gone.
  void on_channel_notice(Drive& drive, const ChannelNotice& notice);
  /// The arbiter's own command (TUR, PREVENT, ALLOW) with its default timeout.
  ScsiCommand own_command(Bytes cdb) const;
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
  // N.B. a wait's timer may fire after the arbiter is gone; this flag lets
  // it see that. (Channel completions are guarded by each WatchedChannel.)
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace discarbiter::core
