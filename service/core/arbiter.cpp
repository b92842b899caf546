#include "core/arbiter.hpp"

#include <algorithm>
#include <atomic>
#include <utility>
#include <variant>

#include <fmt/format.h>

#include "core/client_name.hpp"
#include "core/overloaded.hpp"

namespace discarbiter::core {

using proto::format_rfc3339;
using WallClock = std::chrono::system_clock;

namespace {

// The PREVENT field's bits (MMC-6 PREVENT ALLOW MEDIUM REMOVAL, byte 4).
constexpr std::uint8_t kPreventBit = 0x01;
constexpr std::uint8_t kPersistentBit = 0x02;

/// The PREVENT field (byte 4 bits 1:0) if the command is a PREVENT ALLOW
/// MEDIUM REMOVAL.
std::optional<std::uint8_t> prevent_field(const ScsiCommand& command) {
  if (command.opcode() != opcode::prevent_allow_medium_removal || command.cdb.size() < 5)
    return std::nullopt;
  return static_cast<std::uint8_t>(command.cdb[4] & (kPersistentBit | kPreventBit));
}

/// The largest transfer one execute on the drive may carry (admission checks
/// it; list_drives and status show it).
std::uint32_t max_transfer_of(const ArbiterConfig& config, const DriveDescription& drive) {
  return std::min(config.max_transfer_bytes, drive.max_transfer_bytes);
}

}  // namespace

struct Arbiter::Session {
  SessionId id = 0;
  PeerIdentity peer;
  EventSink events;
  std::string client_name;  // empty until hello
  std::uint32_t reported_pid = 0;
  WallClock::time_point connected_since;
  std::string connected_since_text;  // RFC 3339, formatted once: status lists every session
  bool subscribed = false;
  std::uint32_t waits = 0;
  std::uint32_t commands = 0;                 // queued or in flight, over all drives
  std::uint64_t payload_bytes = 0;            // data-out queued plus data-in reserved by those
  std::uint32_t deferred = 0;                 // requests waiting for a transition to end
  std::map<std::string, std::string> broken;  // drive -> who broke this session's lock there
  // Its entry in the last status snapshot, shared with the documents being
  // written; made again when hello or its locks change it.
  mutable std::shared_ptr<const proto::ClientStatus> status_entry;

  bool greeted() const { return !client_name.empty(); }
  // N.B. the OS's word wins; the pid from hello is only a fallback (Wine's
  // GetNamedPipeClientProcessId reports 0).
  std::uint32_t pid() const { return peer.pid != 0 ? peer.pid : reported_pid; }
};

struct Arbiter::Waiter {
  std::uint64_t ticket = 0;
  SessionId session = 0;
  AcquireOptions options;
  CountHandler handler;
  Scheduler::TimerId timer = 0;
  WallClock::time_point since;
  WallClock::time_point deadline;
};

/// An acquire under way (ACQUIRING): whose, and who hears how it ends.
struct Arbiter::Acquisition {
  SessionId session = 0;
  AcquireOptions options;
  CountHandler handler;
  // The drive was removed meanwhile (why): the acquire fails whatever its
  // steps answer, even if the drive is back by then. N.B. nothing more of
  // its steps starts then: WatchedChannel::abandon_acquire.
  std::optional<std::string> removed;
};

/// The waiter whose acquire runs in the release's call (a hand-off), until
/// the release's answer is heard; its Waiter stays in the queue meanwhile.
struct Arbiter::HandOff {
  std::uint64_t ticket = 0;  // its Waiter's
  SessionId session = 0;
  AcquireOptions options;
  // Who it is, for the records if its session ends before the answer.
  proto::OwnerInfo owner;
  bool administrator = false;
};

/// Who hears a release end: the owner that released (its count, 0), or the
/// administrator who broke the lock (the former owner); nobody when the
/// owner's session ended.
struct Arbiter::ReleaseReply {
  CountHandler released;
  BreakHandler broken;
  proto::OwnerInfo former;
};

/// The ALLOW MEDIUM REMOVALs to send, in this order (N.B. PERSISTENT
/// ALLOW first and the plain ALLOW last: a drive that reads bit 1 as SPC-2's
/// medium changer bit takes 10b for a PREVENT, and the last word must leave
/// the tray unlocked under either reading).
struct Arbiter::TrayAllowing {
  bool persistent = false;
  bool plain = false;
  bool start_up = false;  // add_drive's: nothing follows; a release's: the OS unlock
};

/// A client's SCSI command on its way in.
struct Arbiter::Execution {
  ScsiCommand command;
  std::optional<std::uint32_t> requested_timeout_s;
  ExecuteHandler handler;
};

/// A client's SCSI command handed to the channel: what its answer needs.
struct Arbiter::CommandInFlight {
  std::uint8_t opcode = 0;
  std::chrono::seconds timeout{0};
  std::optional<std::uint8_t> prevent;  // its PREVENT field, if a PREVENT ALLOW MEDIUM REMOVAL
  ExecuteHandler handler;
};

/// A request that waits for the drive's transition to end: which, its
/// arguments, its handler. run_deferred resumes it past the public guard.
struct Arbiter::Deferred {
  struct Acquire {
    AcquireOptions options;
    CountHandler handler;
  };
  struct Release {
    CountHandler handler;
  };
  struct Break {
    BreakHandler handler;
  };
  struct Execute {
    Execution execution;
    std::uint64_t bytes = 0;  // held while it waits: its payload is here
  };
  SessionId session = 0;
  std::variant<Acquire, Release, Break, Execute> request;
};

struct Arbiter::Drive {
  enum class LockState { free, acquiring, owned, releasing };

  Drive(Arbiter& arbiter, std::shared_ptr<DriveChannel> backend)
      : channel(arbiter.scheduler_,
                {arbiter.config_.watchdog_grace, arbiter.config_.timeouts.default_timeout},
                std::move(backend),
                [&arbiter, this](const ChannelNotice& n) { arbiter.on_channel_notice(*this, n); }) {
  }

  WatchedChannel channel;
  LockState state = LockState::free;
  SessionId owner = 0;               // 0: nobody (FREE)
  proto::OwnerInfo owner_info;       // identity snapshot at first acquire; outlives the session
  bool owner_administrator = false;  // of that snapshot: how the log treats its records
  std::uint32_t lock_count = 0;
  bool granted_from_queue = false;
  std::optional<Acquisition> acquisition;               // ACQUIRING
  std::optional<HandOff> hand_off;                      // RELEASING to a waiter
  ReleaseCause release_cause = ReleaseCause::released;  // of the release in flight
  ReleaseReply release_reply;                           // of the release in flight
  // MMC's two tray preventions (PREVENT ALLOW MEDIUM REMOVAL byte 4: bit 1
  // Persistent, bit 0 Prevent), as the drive last accepted them, and the
  // owner's PREVENTs still in flight: the release clears what may be set.
  bool tray_locked = false;
  bool tray_persistent = false;
  std::uint32_t prevents_in_flight = 0;
  std::uint32_t persistent_prevents_in_flight = 0;
  // The owner sent a PREVENT ALLOW MEDIUM REMOVAL with a non-zero PREVENT
  // field during its lock: its release then sends both ALLOWs whatever the
  // tracked bits say (a drive may read bit 1 as SPC-2 does, not as MMC).
  bool owner_touched_tray = false;
  std::optional<std::string> removed;  // why, once the drive is gone
  std::deque<Waiter> waiters;
  std::vector<Deferred> deferred;
  std::uint32_t commands = 0;  // clients' commands queued or in flight

  const std::string& id() const { return channel.description().id; }
  /// The lock state as status names it ("lock_state").
  std::string_view lock_state_name() const {
    switch (state) {
      case LockState::acquiring:
        return "acquiring";
      case LockState::owned:
        return "owned";
      case LockState::releasing:
        return "releasing";
      case LockState::free:
        break;
    }
    return "free";
  }
  /// DESIGN.md's drive state: free|owned|removed|error. "error" hides the
  /// lock state only in this field; lock_state still tells it.
  std::string_view public_state() const {
    if (removed)
      return "removed";
    if (channel.error())
      return "error";
    return state == LockState::free ? "free" : "owned";
  }
  bool in_transition() const {
    return state == LockState::acquiring || state == LockState::releasing;
  }
  bool may_prevent() const { return tray_locked || prevents_in_flight > 0; }
  bool may_prevent_persistently() const {
    return tray_persistent || persistent_prevents_in_flight > 0;
  }
  /// Forgets the tray's preventions: the device is gone or new.
  void forget_tray() {
    tray_locked = false;
    tray_persistent = false;
    owner_touched_tray = false;
  }
  /// A PREVENT ALLOW MEDIUM REMOVAL with this PREVENT field went out: one
  /// that sets a prevention counts as set until it is answered.
  void prevent_sent(std::uint8_t field) {
    if ((field & kPreventBit) != 0)
      ++((field & kPersistentBit) != 0 ? persistent_prevents_in_flight : prevents_in_flight);
  }
  /// ... and was answered: the drive's answer decides, and no answer counts
  /// as done for one that sets (the drive may have done it).
  void prevent_answered(std::uint8_t field, const ScsiResult& r) {
    const bool sets = (field & kPreventBit) != 0;
    const bool persistent = (field & kPersistentBit) != 0;
    if (sets) {
      auto& in_flight = persistent ? persistent_prevents_in_flight : prevents_in_flight;
      in_flight -= in_flight > 0 ? 1 : 0;
    }
    bool& prevented = persistent ? tray_persistent : tray_locked;
    if (r.good()) {
      prevented = sets;
    } else if (sets && !r.answered()) {
      prevented = true;
    }
  }
};

std::string_view to_string(AuditKind kind) {
  switch (kind) {
    case AuditKind::acquired:
      return "acquired";
    case AuditKind::nested:
      return "nested";
    case AuditKind::released:
      return "released";
    case AuditKind::freed:
      return "freed";
    case AuditKind::broken:
      return "broken";
    case AuditKind::acquire_failed:
      return "acquire_failed";
    case AuditKind::waiting:
      return "waiting";
    case AuditKind::wait_expired:
      return "wait_expired";
    case AuditKind::wait_dropped:
      return "wait_dropped";
    case AuditKind::session_ended:
      return "session_ended";
    case AuditKind::command_timeout:
      return "command_timeout";
    case AuditKind::drive_error:
      return "drive_error";
    case AuditKind::drive_recovered:
      return "drive_recovered";
    case AuditKind::drive_arrived:
      return "drive_arrived";
    case AuditKind::drive_removed:
      return "drive_removed";
  }
  return "unknown";
}

Arbiter::Arbiter(Scheduler& scheduler, AuditLog& audit, ArbiterConfig config)
    : scheduler_(scheduler), audit_(audit), config_(std::move(config)) {}

Arbiter::~Arbiter() {
  *alive_ = false;
  for (auto& drive : drives_) {
    for (auto& w : drive->waiters) {
      scheduler_.cancel(w.timer);
    }
  }
}

Result<Done> Arbiter::add_drive(std::shared_ptr<DriveChannel> channel) {
  Drive* d = find_drive(channel->description().id);
  if (d && !d->removed) {
    return Error{errc::invalid_arg, fmt::format("a drive named '{}' is already attached", d->id())};
  }
  if (d) {
    // The same drive came back (hot-plug): a fresh start on the new channel.
    // N.B. the removal already ended its lock and its waits.
    d->channel.attach(std::move(channel));
    d->removed.reset();
    d->forget_tray();
  } else {
    drives_.push_back(std::make_unique<Drive>(*this, std::move(channel)));
    d = drives_.back().get();
  }
  audit(AuditKind::drive_arrived, *d, 0, d->channel.description().path);
  notify(proto::DriveArrived{d->id()});
  // N.B. both preventions: a crash (ours or another program's) may have left
  // either, and a persistent one survives every ordinary ALLOW.
  allow_medium_removal(*d, TrayAllowing{true, true, true});
  return Done{};
}

void Arbiter::remove_drive(const std::string& id, const std::string& reason) {
  Drive* drive = find_drive(id);
  if (!drive || drive->removed)
    return;
  mark_removed(*drive, reason);
}

void Arbiter::mark_removed(Drive& drive, const std::string& reason) {
  // N.B. the whole state change first, the callouts (events, the waiters'
  // answers) after: any of them may end a session, this one's owner too.
  const Error gone{errc::dev_not_exist,
                   fmt::format("drive '{}' was removed while waiting: {}", drive.id(), reason)};
  const proto::Event event = proto::DriveRemoved{drive.id(), reason};
  drive.removed = reason;
  if (drive.acquisition)
    drive.acquisition->removed = reason;
  if (drive.acquisition || drive.hand_off)
    drive.channel.abandon_acquire();  // N.B. its next step would be sent for nothing
  // N.B. a hand-off's waiter is failed below with the rest, and a lock its
  // steps took on the vanished device is gone with it.
  drive.hand_off.reset();
  audit(AuditKind::drive_removed, drive, drive.owner, reason);
  auto waiters = std::exchange(drive.waiters, {});
  for (auto& w : waiters) {
    scheduler_.cancel(w.timer);
    if (Session* s = find_session(w.session))
      --s->waits;
  }
  if (drive.state == Drive::LockState::owned) {
    // N.B. nothing to send: the device is gone, and with it its tray lock.
    // ACQUIRING/RELEASING end on their own when the channel answers (an
    // acquire then fails with ERROR_DEV_NOT_EXIST: finish_acquire).
    audit(AuditKind::freed, drive, drive.owner, "the drive was removed");
    drive.state = Drive::LockState::free;
    drive.owner = 0;
    drive.lock_count = 0;
    drive.forget_tray();
  }
  // N.B. answered after the lock has ended: the owner's answer may end its
  // session, whose cleanup must find nothing left to release.
  drive.channel.drop_queued(
      std::nullopt, Error{errc::dev_not_exist,
                          fmt::format("drive '{}' was removed before it started the command: {}",
                                      drive.id(), reason)});
  notify(event);
  for (auto& w : waiters) {
    w.handler(gone);
  }
  check_all_free();
}

SessionId Arbiter::open_session(PeerIdentity peer, EventSink events) {
  auto session = std::make_unique<Session>();
  session->id = next_session_++;
  session->peer = std::move(peer);
  session->events = std::move(events);
  session->connected_since = scheduler_.wall_now();
  session->connected_since_text = format_rfc3339(session->connected_since);
  const SessionId id = session->id;
  sessions_.emplace(id, std::move(session));
  return id;
}

Result<Done> Arbiter::hello(SessionId id, std::string client_name, std::uint32_t pid) {
  Session* session = find_session(id);
  if (!session) {
    return Error{errc::invalid_handle, "no such session"};
  }
  if (!is_valid_client_name(client_name)) {
    return Error{errc::recorder_client_name_is_not_valid,
                 fmt::format("client name '{}' is not valid: {}", client_name,
                             error_explanation(errc::recorder_client_name_is_not_valid))};
  }
  if (session->greeted() && session->client_name != client_name) {
    return Error{errc::invalid_arg, "the client name cannot change within a session"};
  }
  session->client_name = std::move(client_name);
  session->reported_pid = pid;
  session->status_entry.reset();
  return Done{};
}

void Arbiter::subscribe(SessionId id) {
  if (Session* session = find_session(id)) {
    session->subscribed = true;
  }
}

bool Arbiter::holds_anything(SessionId id) const {
  const auto it = sessions_.find(id);
  if (it == sessions_.end())
    return false;
  const Session& session = *it->second;
  return session.subscribed || session.waits > 0 ||
         std::ranges::any_of(drives_, [id](const auto& d) { return d->owner == id; });
}

void Arbiter::close_session(SessionId id) {
  const auto it = sessions_.find(id);
  if (it == sessions_.end()) {
    return;
  }
  for (auto& drive : drives_) {
    std::erase_if(drive->waiters, [&](const Waiter& w) {
      if (w.session != id)
        return false;
      scheduler_.cancel(w.timer);
      audit(AuditKind::wait_dropped, *drive, id, "session ended while waiting");
      // N.B. an acquire already handed to it stops, or is undone; one that
      // kept the lock already is released when its answer comes
      // (take_hand_off).
      if (drive->hand_off && drive->hand_off->ticket == w.ticket)
        drive->channel.abandon_acquire();
      return true;
    });
  }
  // N.B. this may run inside the session's own event sink or reply handler
  // (a hostile sink, a transport that closes on the spot): callers never
  // hold a Session across a callout (notify copies the sink it calls), and
  // nothing below calls out synchronously but the answers to this session's
  // own dropped commands, whose transport has already let go.
  sessions_.erase(it);
  for (auto& drive : drives_) {
    drive->channel.drop_queued(
        id, Error{errc::fail, "the session ended before the drive started the command"});
    if (drive->owner == id && drive->state == Drive::LockState::owned) {
      audit(AuditKind::session_ended, *drive, id,
            fmt::format("session ended holding {} lock(s)", drive->lock_count));
      start_release(*drive, ReleaseCause::session_ended, {});
    }
    // ACQUIRING: finish_acquire sees the session gone and releases at once.
    // RELEASING: already on its way to FREE.
  }
}

// ---- requests: the public guard, then the step a deferred one resumes at ----

void Arbiter::acquire_exclusive_access(SessionId id, const std::string& drive_id,
                                       AcquireOptions options, CountHandler handler) {
  auto target = request_target(id, drive_id, "acquire");
  if (!target) {
    handler(target.error());
    return;
  }
  try_acquire(*target, options, std::move(handler));
}

void Arbiter::try_acquire(RequestTarget target, AcquireOptions options, CountHandler handler) {
  Session& session = *target.session;
  Drive& drive = *target.drive;
  if (drive.state == Drive::LockState::releasing ||
      (drive.owner == session.id && drive.state == Drive::LockState::acquiring)) {
    // The answer depends on how the transition ends: ask again then.
    if (auto limit = deferral_limit(session)) {
      handler(std::move(*limit));
      return;
    }
    defer(drive, session, Deferred{session.id, Deferred::Acquire{options, std::move(handler)}});
    return;
  }
  if (drive.owner == session.id) {
    ++drive.lock_count;
    audit(AuditKind::nested, drive, session.id);
    handler(drive.lock_count);
    return;
  }
  if (drive.state == Drive::LockState::free && drive.waiters.empty()) {
    start_acquire(drive, session.id, options, std::move(handler));
    return;
  }
  if (options.wait.count() <= 0) {
    handler(locked_error(drive));
    return;
  }
  enqueue_waiter(drive, session, options, std::move(handler));
}

void Arbiter::release_exclusive_access(SessionId id, const std::string& drive_id,
                                       CountHandler handler) {
  auto target = request_target(id, drive_id, "release");
  if (!target) {
    handler(target.error());
    return;
  }
  try_release(*target, std::move(handler));
}

void Arbiter::try_release(RequestTarget target, CountHandler handler) {
  Session& session = *target.session;
  Drive& drive = *target.drive;
  if (drive.owner != session.id) {
    handler(Error{errc::not_locked,
                  fmt::format("this client holds no lock on drive '{}'", drive.id())});
    return;
  }
  if (drive.in_transition()) {
    if (auto limit = deferral_limit(session)) {
      handler(std::move(*limit));
      return;
    }
    defer(drive, session, Deferred{session.id, Deferred::Release{std::move(handler)}});
    return;
  }
  if (--drive.lock_count > 0) {
    audit(AuditKind::released, drive, session.id);
    handler(drive.lock_count);
    return;
  }
  start_release(drive, ReleaseCause::released, ReleaseReply{std::move(handler), {}, {}});
}

Result<std::optional<proto::OwnerInfo>> Arbiter::exclusive_access_owner(
    const std::string& drive_id) const {
  const Drive* drive = find_drive(drive_id);
  if (!drive) {
    return Error{errc::dev_not_exist, fmt::format("no drive named '{}'", drive_id)};
  }
  return owner_info(*drive);
}

void Arbiter::break_exclusive_access(SessionId id, const std::string& drive_id,
                                     BreakHandler handler) {
  auto target = break_target(id, drive_id);
  if (!target) {
    handler(target.error());
    return;
  }
  try_break(*target, std::move(handler));
}

Result<Arbiter::RequestTarget> Arbiter::break_target(SessionId id, const std::string& drive_id) {
  Session* session = find_session(id);
  if (!session || !session->greeted()) {
    return Error{errc::hello_required, "break before hello"};
  }
  if (!session->peer.administrator) {
    return Error{errc::access_denied,
                 fmt::format("only administrators may break a lock; user '{}' is not one",
                             session->peer.user)};
  }
  auto found = usable_drive(drive_id);
  if (!found) {
    return found.error();
  }
  return RequestTarget{session, *found};
}

void Arbiter::try_break(RequestTarget target, BreakHandler handler) {
  Drive& drive = *target.drive;
  if (drive.in_transition()) {
    if (auto limit = deferral_limit(*target.session)) {
      handler(std::move(*limit));
      return;
    }
    defer(drive, *target.session,
          Deferred{target.session->id, Deferred::Break{std::move(handler)}});
    return;
  }
  if (drive.state != Drive::LockState::owned) {
    handler(Error{errc::not_locked,
                  fmt::format("drive '{}' is not held; nothing to break", drive.id())});
    return;
  }
  break_lock(target, std::move(handler));
}

void Arbiter::break_lock(RequestTarget target, BreakHandler handler) {
  const Session* session = target.session;
  const SessionId id = session->id;
  Drive& drive = *target.drive;
  const std::string drive_id = drive.id();
  proto::OwnerInfo former = *owner_info(drive);
  const std::string by = fmt::format("'{}' (session {}, pid {}, user {})", session->client_name, id,
                                     session->pid(), session->peer.user);
  audit(AuditKind::broken, drive, drive.owner,
        fmt::format("{} lock(s) broken by {}", drive.lock_count, by));
  const SessionId owner_id = drive.owner;
  const proto::Event event =
      proto::LockBroken{drive_id, {session->client_name, id, session->pid(), session->peer.user}};
  if (Session* owner = find_session(owner_id)) {
    owner->broken[drive_id] = by;
  }
  // N.B. RELEASING before anyone hears of it: the owner's sink may end the
  // owner's session, and its cleanup must find the release already under
  // way rather than start a second one. The reply comes once the drive is
  // free, whoever ended the lock.
  start_release(drive, ReleaseCause::broken,
                ReleaseReply{{}, std::move(handler), std::move(former)});
  // The owner is told whether or not it subscribed; subscribers hear it
  // through notify.
  if (Session* owner = find_session(owner_id); owner && !owner->subscribed && owner->events) {
    const EventSink sink = owner->events;  // N.B. a copy: the sink may end its session
    sink(event);
  }
  notify(event);
}

Result<Arbiter::RequestTarget> Arbiter::request_target(SessionId id, const std::string& drive_id,
                                                       std::string_view verb) {
  Session* session = find_session(id);
  if (!session || !session->greeted()) {
    return Error{errc::hello_required, fmt::format("{} before hello", verb)};
  }
  auto found = usable_drive(drive_id);
  if (!found) {
    return found.error();
  }
  if (auto notice = take_broken_notice(*session, drive_id)) {
    return std::move(*notice);
  }
  return RequestTarget{session, *found};
}

std::optional<Error> Arbiter::take_broken_notice(Session& session, const std::string& drive) {
  const auto it = session.broken.find(drive);
  if (it == session.broken.end())
    return std::nullopt;
  Error e{errc::recorder_locked,
          fmt::format("this client's lock on drive '{}' was broken by administrator {}", drive,
                      it->second)};
  session.broken.erase(it);
  return e;
}

// ---- a client's command -------------------------------------------------------

void Arbiter::execute(SessionId id, const std::string& drive_id, ScsiCommand command,
                      std::optional<std::uint32_t> requested_timeout_s, ExecuteHandler handler) {
  auto target = request_target(id, drive_id, "execute");
  if (!target) {
    handler(target.error());
    return;
  }
  admit_command(*target, Execution{std::move(command), requested_timeout_s, std::move(handler)});
}

void Arbiter::admit_command(RequestTarget target, Execution execution) {
  Session& session = *target.session;
  Drive& drive = *target.drive;
  const SessionId id = session.id;
  const bool acquiring = drive.owner == id && drive.state == Drive::LockState::acquiring;
  if (!acquiring && (drive.owner != id || drive.state != Drive::LockState::owned)) {
    execution.handler(drive.owner == id || drive.owner == 0
                          ? Error{errc::recorder_locked,
                                  fmt::format("only the owner of drive '{}' may send commands; "
                                              "acquire it first",
                                              drive.id())}
                          : locked_error(drive));
    return;
  }
  if (auto refused = command_refusal(session, drive, execution.command)) {
    execution.handler(std::move(*refused));  // N.B. before anything is sent or counted
    return;
  }
  // N.B. what the command holds while it waits: its data-out, and the
  // data-in buffer the drive will fill.
  const ScsiCommand& command = execution.command;
  const std::uint64_t bytes =
      command.data_out.size() + (command.direction == Direction::in ? command.data_in_len : 0);
  if (auto limit = command_limit(session, drive, bytes)) {
    execution.handler(std::move(*limit));
    return;
  }
  if (!acquiring) {
    queue_command(drive, session, std::move(execution), bytes);
    return;
  }
  if (auto limit = deferral_limit(session)) {
    execution.handler(std::move(*limit));
    return;
  }
  hold_command(session, drive, bytes);  // held while deferred too: its payload is in Deferred
  defer(drive, session, Deferred{id, Deferred::Execute{std::move(execution), bytes}});
}

std::optional<Error> Arbiter::command_refusal(const Session& session, const Drive& drive,
                                              const ScsiCommand& command) const {
  if (auto allowed = config_.commands.check(command.cdb, session.peer); !allowed) {
    return std::move(allowed.error());
  }
  if (command.cdb.size() < 6 || command.cdb.size() > 16) {
    return Error{errc::invalid_arg,
                 fmt::format("CDB of {} bytes; a CDB has 6 to 16", command.cdb.size())};
  }
  const std::uint32_t max_transfer = max_transfer_of(config_, drive.channel.description());
  const std::size_t transfer =
      command.direction == Direction::out ? command.data_out.size() : command.data_in_len;
  if (transfer > max_transfer) {
    return Error{errc::invalid_arg,
                 fmt::format("transfer of {} bytes exceeds drive '{}''s limit of {}", transfer,
                             drive.id(), max_transfer)};
  }
  return std::nullopt;
}

void Arbiter::queue_command(Drive& drive, Session& session, Execution execution,
                            std::uint64_t bytes) {
  ScsiCommand& command = execution.command;
  command.timeout = config_.timeouts.timeout_for(command.opcode(), execution.requested_timeout_s);
  CommandInFlight sent{command.opcode(), command.timeout, prevent_field(command),
                       std::move(execution.handler)};
  if (sent.prevent) {
    drive.prevent_sent(*sent.prevent);
    drive.owner_touched_tray = drive.owner_touched_tray || *sent.prevent != 0;
  }
  hold_command(session, drive, bytes);
  Drive* d = &drive;
  // N.B. the command counts against the bounds until the backend returns
  // it (or it is dropped unsent), not when the watchdog answers its caller:
  // a command a stuck backend holds is held by the service too.
  drive.channel.send(
      std::move(command),
      [this, d, sent = std::move(sent)](ScsiResult r) {
        on_command_answered(*d, sent, std::move(r));
      },
      session.id, [this, d, id = session.id, bytes] { let_go_command(id, *d, bytes); });
}

void Arbiter::on_command_answered(Drive& drive, const CommandInFlight& command, ScsiResult r) {
  if (command.prevent)
    drive.prevent_answered(*command.prevent, r);  // the owner may lock or unlock the tray itself
  if (!r.answered()) {
    command.handler(Error{
        r.transport, fmt::format("opcode 0x{:02X} on drive '{}' (timeout {} s): {}", command.opcode,
                                 drive.id(), command.timeout.count(), r.transport_message)});
    return;
  }
  command.handler(std::move(r));
}

std::optional<Error> Arbiter::command_limit(const Session& session, const Drive& drive,
                                            std::uint64_t bytes) const {
  if (session.commands >= config_.max_commands_per_session) {
    return Error{errc::limit_reached,
                 fmt::format("this client already has {} commands queued or in flight "
                             "(limits.max_commands_per_session = {})",
                             session.commands, config_.max_commands_per_session)};
  }
  if (drive.commands >= config_.max_commands_per_drive) {
    return Error{errc::limit_reached,
                 fmt::format("drive '{}' already has {} commands queued or in flight "
                             "(limits.max_commands_per_drive = {})",
                             drive.id(), drive.commands, config_.max_commands_per_drive)};
  }
  if (session.payload_bytes + bytes > config_.max_payload_bytes_per_session) {
    return Error{errc::limit_reached,
                 fmt::format("this client's commands already hold {} payload bytes; {} more would "
                             "pass limits.max_payload_bytes_per_session = {}",
                             session.payload_bytes, bytes, config_.max_payload_bytes_per_session)};
  }
  return std::nullopt;
}

void Arbiter::hold_command(Session& session, Drive& drive, std::uint64_t bytes) {
  ++session.commands;
  session.payload_bytes += bytes;
  ++drive.commands;
}

void Arbiter::let_go_command(SessionId id, Drive& drive, std::uint64_t bytes) {
  // N.B. the session may have ended meanwhile; ids are never reused.
  if (Session* session = find_session(id)) {
    --session->commands;
    session->payload_bytes -= bytes;
  }
  --drive.commands;
}

// ---- acquire: TEST UNIT READY, OS lock, PREVENT ------------------------------

void Arbiter::start_acquire(Drive& drive, SessionId id, AcquireOptions options,
                            CountHandler handler) {
  begin_acquire(drive, id, options, std::move(handler));
  // TEST UNIT READY, the OS-level exclusive lock under the client's name,
  // then PREVENT MEDIUM REMOVAL (tray_lock): the drive runs them back to
  // back (AcquireSteps holds their order and rollback), then
  // on_acquire_steps decides, step by step, as each answered.
  Drive* d = &drive;
  drive.channel.acquire_steps(
      acquire_steps(drive.owner_info.client_name, options),
      [this, d](AcquireSteps done) { on_acquire_steps(*d, std::move(done)); });
}

void Arbiter::begin_acquire(Drive& drive, SessionId id, AcquireOptions options,
                            CountHandler handler) {
  drive.state = Drive::LockState::acquiring;
  drive.owner = id;
  drive.lock_count = 0;
  if (const Session* session = find_session(id)) {
    drive.owner_administrator = session->peer.administrator;
    drive.owner_info = owner_snapshot(*session, options);
  }
  drive.acquisition = Acquisition{id, options, std::move(handler), {}};
}

proto::OwnerInfo Arbiter::owner_snapshot(const Session& session, AcquireOptions options) const {
  return proto::OwnerInfo{session.client_name,
                          session.id,
                          session.pid(),
                          session.peer.user,
                          session.peer.uid,
                          session.peer.sid,
                          session.peer.exe,
                          0,
                          format_rfc3339(scheduler_.wall_now()),
                          options.force};
}

AcquireSteps Arbiter::acquire_steps(std::string client_name, AcquireOptions options) const {
  AcquireSteps steps;
  steps.test_unit_ready = own_command(cdb_test_unit_ready());
  steps.client_name = std::move(client_name);
  steps.force = options.force;
  if (config_.tray_lock) {
    steps.prevent = own_command(cdb_prevent_allow_medium_removal(true));
    steps.allow = own_command(cdb_prevent_allow_medium_removal(false));
  }
  return steps;
}

void Arbiter::on_acquire_steps(Drive& drive, AcquireSteps steps) {
  // TEST UNIT READY: any SCSI answer will do (an empty drive says NOT READY
  // and may still be locked); no answer in time fails the acquire.
  const ScsiResult& tur = *steps.tur_answer;
  if (!tur.answered()) {
    finish_acquire(drive, Error{tur.transport, "TEST UNIT READY: " + tur.transport_message});
    return;
  }
  if (!steps.os_locked) {
    finish_acquire(drive, Done{});  // N.B. removed: it answers ERROR_DEV_NOT_EXIST
    return;
  }
  if (!*steps.os_locked) {
    const Error& e = steps.os_locked->error();
    finish_acquire(drive, Error{e.code, "OS exclusive lock: " + e.message});
    return;
  }
  if (!steps.holds_lock() && (!steps.prevented || steps.prevented->good())) {
    // Abandoned and undone: only a removed drive's steps answer so.
    finish_acquire(drive, Error{errc::fail, "the acquire was abandoned"});
    return;
  }
  if (!steps.prevented) {
    finish_acquire(drive, Done{});  // no tray_lock
    return;
  }
  const ScsiResult& r = *steps.prevented;
  if (r.good()) {
    drive.tray_locked = true;
    finish_acquire(drive, Done{});
    return;
  }
  // N.B. the steps rolled the OS lock back already.
  finish_acquire(drive, r.answered()
                            ? Error{errc::fail, "PREVENT MEDIUM REMOVAL failed with sense " +
                                                    proto::describe_sense(r.sense)}
                            : Error{r.transport, "PREVENT MEDIUM REMOVAL: " + r.transport_message});
}

void Arbiter::finish_acquire(Drive& drive, Result<Done> outcome) {
  Acquisition acquisition = std::move(*drive.acquisition);
  drive.acquisition.reset();
  if (acquisition.removed) {
    // N.B. nothing to undo on a device that is gone (mark_removed's
    // reasoning), and nothing of the lock may remain.
    drive.forget_tray();
    outcome = Error{errc::dev_not_exist,
                    fmt::format("drive '{}' was removed while it was being acquired: {}",
                                drive.id(), *acquisition.removed)};
  }
  if (!outcome) {
    acquire_failed(drive, acquisition.session, outcome.error(), std::move(acquisition.handler));
    return;
  }
  drive.state = Drive::LockState::owned;
  drive.lock_count = 1;
  if (!find_session(acquisition.session)) {
    // The client went away while its acquire was in flight: the lock dies
    // at once, as by a final release.
    audit(AuditKind::session_ended, drive, acquisition.session, "session ended while acquiring");
    start_release(drive, ReleaseCause::session_ended, {});
    return;
  }
  acquire_succeeded(drive, acquisition.session, std::move(acquisition.handler));
}

void Arbiter::acquire_succeeded(Drive& drive, SessionId id, CountHandler handler) {
  std::string how = drive.granted_from_queue ? "granted from the queue" : "";
  if (drive.owner_info.force)
    how += how.empty() ? "force" : ", force";
  audit(AuditKind::acquired, drive, id, std::move(how));
  const proto::Event event = drive.granted_from_queue
                                 ? proto::Event(proto::Granted{drive.id(), *owner_info(drive)})
                                 : proto::Event(proto::Acquired{drive.id(), *owner_info(drive)});
  drive.granted_from_queue = false;
  // N.B. the count as granted: a sink may end the owner's session, whose
  // cleanup starts the release and zeroes the drive's count.
  const std::uint32_t count = drive.lock_count;
  notify(event);
  handler(count);
  run_deferred(drive);
}

void Arbiter::acquire_failed(Drive& drive, SessionId id, const Error& why, CountHandler handler) {
  drive.state = Drive::LockState::free;
  drive.owner = 0;
  drive.lock_count = 0;
  drive.granted_from_queue = false;
  audit(AuditKind::acquire_failed, drive, id, why.message);
  handler(why);
  grant_next_waiter(drive);
  run_deferred(drive);
  check_all_free();
}

// ---- release: ALLOWs, OS unlock -----------------------------------------------

void Arbiter::start_release(Drive& drive, ReleaseCause cause, ReleaseReply reply) {
  // N.B. RELEASING before the owner's dropped commands are answered: an
  // answer may end the owner's session, whose cleanup must find the release
  // under way rather than start a second one.
  drive.state = Drive::LockState::releasing;
  drive.release_cause = cause;
  drive.release_reply = std::move(reply);
  drive.lock_count = 0;
  drop_departing_commands(drive, cause);
  // Whatever the owner did to the tray, none of it outlives the lock. N.B.
  // an owner that sent any non-zero PREVENT field gets both ALLOWs: an
  // answered 10b cleared tray_persistent under MMC, but not necessarily in
  // the drive.
  const bool touched = std::exchange(drive.owner_touched_tray, false);
  allow_medium_removal(drive, TrayAllowing{touched || drive.may_prevent_persistently(),
                                           touched || drive.may_prevent(), false});
}

void Arbiter::drop_departing_commands(Drive& drive, ReleaseCause cause) {
  std::optional<Error> why;
  if (cause != ReleaseCause::released) {
    // N.B. before ALLOW is queued: nothing of a departed or broken owner
    // reaches the drive after its lock is freed. (A final release keeps its
    // own earlier commands: they run before the ALLOW.) What a backend holds
    // unstarted is the owner's too: its acquire's calls were answered before
    // it owned the drive, and the channel runs calls in order.
    why = cause == ReleaseCause::broken
              ? Error{errc::recorder_locked,
                      fmt::format("the lock on drive '{}' was broken before the drive started the "
                                  "command",
                                  drive.id())}
              : Error{errc::fail, "the session ended before the drive started the command"};
  } else if (drive.channel.overrunning()) {
    // A final release normally keeps the owner's earlier commands (they run
    // before the ALLOW). Behind a stuck backend they could not, and would
    // hold the ALLOW behind them: drop them, and cancel what the backend
    // holds unstarted (handed after the overrun), so nothing of the owner
    // runs after the lock is freed. (Without an overrun the one call the
    // backend has is the owner's earlier command, and it runs.)
    why = Error{errc::recorder_command_timeout,
                fmt::format("drive '{}''s backend was still stuck on an earlier command when "
                            "the lock was released; the command was not started",
                            drive.id())};
  }
  if (!why)
    return;
  drive.channel.drop_queued(drive.owner, *why);
  drive.channel.cancel_in_backend(*why);
}

void Arbiter::allow_medium_removal(Drive& drive, TrayAllowing allowing) {
  // N.B. the ALLOWs and the OS unlock run back to back (ReleaseSteps),
  // each whatever the one before answered.
  ReleaseSteps steps;
  if (allowing.persistent)
    steps.allows.push_back(own_command(cdb_prevent_allow_medium_removal(false, true)));
  if (allowing.plain)
    steps.allows.push_back(own_command(cdb_prevent_allow_medium_removal(false, false)));
  steps.os_unlock = !allowing.start_up;  // add_drive's: nothing follows
  if (!allowing.start_up && !drive.waiters.empty()) {
    // A hand-off: the waiter at the queue's head, which the release would
    // grant, has its acquire's steps run in the same call, after the
    // release's. It stays queued (its wait may still end, and then its
    // acquire is abandoned); take_hand_off decides with the answer.
    const Waiter& next = drive.waiters.front();
    if (const Session* session = find_session(next.session)) {
      steps.then = acquire_steps(session->client_name, next.options);
      drive.hand_off = HandOff{next.ticket, next.session, next.options,
                               owner_snapshot(*session, next.options), session->peer.administrator};
    }
  }
  Drive* d = &drive;
  drive.channel.release_steps(std::move(steps),
                              [this, d, start_up = allowing.start_up](ReleaseSteps done) {
                                on_release_steps(*d, start_up, std::move(done));
                              });
}

void Arbiter::on_release_steps(Drive& drive, bool start_up, ReleaseSteps steps) {
  for (std::size_t i = 0; i < steps.allowed.size(); ++i) {
    const std::uint8_t field = steps.allows[i].cdb[4] & kPersistentBit;
    on_allowed(drive, field, start_up, steps.allowed[i]);
  }
  if (!steps.unlocked)
    return;  // add_drive's
  if (!*steps.unlocked) {
    audit(AuditKind::drive_error, drive, drive.owner,
          "OS unlock failed: " + steps.unlocked->error().message);
  }
  finish_release(drive, std::move(steps.then));
}

void Arbiter::on_allowed(Drive& drive, std::uint8_t field, bool start_up, const ScsiResult& r) {
  drive.prevent_answered(field, r);
  // N.B. MMC-3 drives take bit 1 for a changer's and refuse it with
  // INVALID FIELD IN CDB: they have no persistent prevention to clear.
  const bool no_persistent_prevention = (field & kPersistentBit) != 0 && r.answered() &&
                                        r.sense.size() > 12 && (r.sense[2] & 0x0F) == 0x05 &&
                                        r.sense[12] == 0x24;
  if (no_persistent_prevention) {
    drive.tray_persistent = false;
  } else if (!r.good()) {
    // N.B. the next step runs regardless: a drive that refuses ALLOW
    // must not keep a departed client's lock alive.
    audit(AuditKind::drive_error, drive, drive.owner,
          fmt::format("{}{}ALLOW MEDIUM REMOVAL failed: {}", start_up ? "start-up " : "",
                      (field & kPersistentBit) != 0 ? "PERSISTENT " : "",
                      r.answered() ? proto::describe_sense(r.sense) : r.transport_message));
  }
}

std::string_view Arbiter::name_of(ReleaseCause cause) {
  switch (cause) {
    case ReleaseCause::released:
      return "released";
    case ReleaseCause::session_ended:
      return "session_ended";
    case ReleaseCause::broken:
      return "broken";
  }
  return "released";
}

void Arbiter::finish_release(Drive& drive, std::optional<AcquireSteps> handed) {
  ReleaseReply reply = std::exchange(drive.release_reply, {});
  const SessionId former = drive.owner;
  drive.state = Drive::LockState::free;
  audit(AuditKind::freed, drive, former);
  drive.owner = 0;
  const proto::Event released = proto::Released{drive.id(), drive.owner_info.client_name, former,
                                                std::string(name_of(drive.release_cause))};
  // N.B. a hand-off's acquire that ran is the next owner's before anything
  // is called out: a callout may end sessions or ask for the drive, and
  // must find it changing hands, not free while its OS lock is held.
  std::optional<AcquireSteps> acquired = take_hand_off(drive, std::move(handed));
  notify(released);
  if (reply.broken) {
    reply.broken(std::move(reply.former));
  } else if (reply.released) {
    reply.released(0U);
  }
  if (acquired) {
    on_acquire_steps(drive, std::move(*acquired));
  } else {
    grant_next_waiter(drive);
  }
  run_deferred(drive);
  check_all_free();
}

std::optional<AcquireSteps> Arbiter::take_hand_off(Drive& drive,
                                                   std::optional<AcquireSteps> handed) {
  const std::optional<HandOff> hand_off = std::exchange(drive.hand_off, std::nullopt);
  // N.B. an acquire that did not run (abandoned before it began: its waiter
  // left, or the watchdog answered) leaves the grant to grant_next_waiter,
  // as without a hand-off; so does a drive removed meanwhile (mark_removed:
  // no hand-off left).
  if (!hand_off || !handed || !handed->tur_answer || drive.removed)
    return std::nullopt;
  if (!drive.waiters.empty() && drive.waiters.front().ticket == hand_off->ticket) {
    // grant_next_waiter's turn for it, its steps run already.
    Waiter w = std::move(drive.waiters.front());
    drive.waiters.pop_front();
    scheduler_.cancel(w.timer);
    if (Session* session = find_session(w.session))
      --session->waits;
    drive.granted_from_queue = true;
    begin_acquire(drive, w.session, w.options, std::move(w.handler));
    return handed;
  }
  // N.B. out of the queue, only an ended session's waiter may have its steps
  // hold the lock: a wait that ends after they kept it stays (expire_waiter).
  if (!handed->holds_lock() || find_session(hand_off->session))
    return std::nullopt;  // its waiter left: the steps stopped, or undid what they took
  // Its waiter's session ended after the steps kept the lock: as for a
  // session that ends while acquiring, the lock ends at once (finish_acquire).
  drive.granted_from_queue = true;
  begin_acquire(drive, hand_off->session, hand_off->options, [](const Result<std::uint32_t>&) {});
  drive.owner_info = hand_off->owner;
  drive.owner_administrator = hand_off->administrator;
  return handed;
}

// ---- waits and deferred requests ----------------------------------------------

std::optional<Error> Arbiter::wait_refusal(const Drive& drive, const Session& session) const {
  const bool already =
      std::ranges::any_of(drive.waiters, [&](const Waiter& w) { return w.session == session.id; });
  if (already) {
    return Error{errc::invalid_arg,
                 fmt::format("this client is already waiting for drive '{}'", drive.id())};
  }
  if (session.waits >= config_.max_waits_per_session) {
    return Error{errc::limit_reached, fmt::format("this client already has {} queued waits "
                                                  "(limits.max_waits_per_session = {})",
                                                  session.waits, config_.max_waits_per_session)};
  }
  if (drive.waiters.size() >= config_.max_waits_per_drive) {
    return Error{errc::limit_reached,
                 fmt::format("drive '{}' already has {} queued waits "
                             "(limits.max_waits_per_drive = {})",
                             drive.id(), drive.waiters.size(), config_.max_waits_per_drive)};
  }
  return std::nullopt;
}

void Arbiter::enqueue_waiter(Drive& drive, Session& session, AcquireOptions options,
                             CountHandler handler) {
  if (auto refused = wait_refusal(drive, session)) {
    handler(std::move(*refused));
    return;
  }
  Waiter w;
  w.ticket = next_ticket_++;
  w.session = session.id;
  w.options = options;
  w.handler = std::move(handler);
  w.since = scheduler_.wall_now();
  w.deadline = w.since + options.wait;
  w.timer = scheduler_.schedule_at(
      scheduler_.now() + options.wait,
      [this, alive = std::weak_ptr(alive_), drive_id = drive.id(), ticket = w.ticket] {
        if (alive.expired())
          return;
        expire_waiter(drive_id, ticket);
      });
  ++session.waits;
  drive.waiters.push_back(std::move(w));
  audit(AuditKind::waiting, drive, session.id,
        fmt::format("wait {} ms, position {}", options.wait.count(), drive.waiters.size()));
}

void Arbiter::expire_waiter(const std::string& drive_id, std::uint64_t ticket) {
  Drive* drive = find_drive(drive_id);
  if (!drive)
    return;
  const auto it = std::ranges::find(drive->waiters, ticket, &Waiter::ticket);
  if (it == drive->waiters.end())
    return;
  if (drive->hand_off && drive->hand_off->ticket == ticket && !drive->channel.abandon_acquire()) {
    // Its acquire, handed off to with the release, kept the lock before the
    // wait ended: the answer on its way grants it (take_hand_off).
    return;
  }
  Waiter w = std::move(*it);
  drive->waiters.erase(it);
  if (Session* s = find_session(w.session)) {
    --s->waits;
  }
  audit(AuditKind::wait_expired, *drive, w.session,
        fmt::format("after {} ms", w.options.wait.count()));
  Error e = locked_error(*drive);
  e.message = fmt::format("waited {} ms; {}", w.options.wait.count(), e.message);
  w.handler(std::move(e));
}

void Arbiter::grant_next_waiter(Drive& drive) {
  // N.B. the drive's state and queue are read again on every turn: what
  // start_acquire calls may end sessions, and with them their waits.
  while (drive.state == Drive::LockState::free && !drive.waiters.empty()) {
    Waiter w = std::move(drive.waiters.front());
    drive.waiters.pop_front();
    scheduler_.cancel(w.timer);
    Session* session = find_session(w.session);
    if (!session)
      continue;  // unreachable: close_session drops its waits
    --session->waits;
    drive.granted_from_queue = true;
    start_acquire(drive, w.session, w.options, std::move(w.handler));
  }
}

std::optional<Error> Arbiter::deferral_limit(const Session& session) const {
  if (session.deferred < config_.max_deferred_per_session)
    return std::nullopt;
  return Error{errc::limit_reached,
               fmt::format("this client already has {} requests waiting for a drive to finish "
                           "changing hands (limits.max_deferred_per_session = {})",
                           session.deferred, config_.max_deferred_per_session)};
}

void Arbiter::defer(Drive& drive, Session& session, Deferred request) {
  ++session.deferred;
  drive.deferred.push_back(std::move(request));
}

void Arbiter::run_deferred(Drive& drive) {
  // N.B. out of the drive first: each request may defer itself again, and
  // its answer may end a session.
  auto deferred = std::exchange(drive.deferred, {});
  for (auto& d : deferred) {
    if (Session* session = find_session(d.session))
      --session->deferred;
    resume(drive, std::move(d));
  }
}

void Arbiter::resume(Drive& drive, Deferred d) {
  // N.B. the public guard again: while the request waited its session may
  // have ended, the drive gone, or the lock been broken.
  const std::string drive_id = drive.id();
  auto guarded = [&](std::string_view verb, auto& handler, auto step) {
    auto target = verb == "break" ? break_target(d.session, drive_id)
                                  : request_target(d.session, drive_id, verb);
    if (!target) {
      handler(target.error());
      return;
    }
    step(*target);
  };
  std::visit(Overloaded{
                 [&](Deferred::Acquire& r) {
                   guarded("acquire", r.handler, [&](RequestTarget t) {
                     try_acquire(t, r.options, std::move(r.handler));
                   });
                 },
                 [&](Deferred::Release& r) {
                   guarded("release", r.handler,
                           [&](RequestTarget t) { try_release(t, std::move(r.handler)); });
                 },
                 [&](Deferred::Break& r) {
                   guarded("break", r.handler,
                           [&](RequestTarget t) { try_break(t, std::move(r.handler)); });
                 },
                 [&](Deferred::Execute& r) {
                   let_go_command(d.session, drive, r.bytes);
                   guarded("execute", r.execution.handler,
                           [&](RequestTarget t) { admit_command(t, std::move(r.execution)); });
                 },
             },
             d.request);
}

// ---- the drive's channel ------------------------------------------------------

void Arbiter::on_channel_notice(Drive& drive, const ChannelNotice& notice) {
  switch (notice.kind) {
    case ChannelNotice::Kind::command_timed_out:
      audit(AuditKind::command_timeout, drive, drive.owner, notice.detail);
      return;
    case ChannelNotice::Kind::error_entered:
      notify(proto::DriveError{drive.id(), notice.detail});
      return;
    case ChannelNotice::Kind::error_left:
      audit(AuditKind::drive_recovered, drive, drive.owner,
            "TEST UNIT READY answered after: " + notice.detail);
      notify(proto::DriveRecovered{drive.id()});
      return;
    case ChannelNotice::Kind::device_gone:
      if (!drive.removed)
        mark_removed(drive, notice.detail);
      return;
  }
}

ScsiCommand Arbiter::own_command(Bytes cdb) const {
  const std::uint8_t op = cdb.empty() ? 0 : cdb[0];
  return ScsiCommand{std::move(cdb), Direction::none, {}, 0, config_.timeouts.timeout_for(op)};
}

void Arbiter::when_all_free(std::function<void()> fn) {
  on_all_free_ = std::move(fn);
  check_all_free();
}

void Arbiter::check_all_free() {
  if (!on_all_free_)
    return;
  const bool all_free = std::ranges::all_of(
      drives_, [](const auto& d) { return d->state == Drive::LockState::free; });
  if (all_free) {
    std::exchange(on_all_free_, nullptr)();
  }
}

// ---- queries ----------------------------------------------------------------

std::vector<proto::DriveSummary> Arbiter::drives() const {
  std::vector<proto::DriveSummary> out;
  for (const auto& drive : drives_) {
    const auto& desc = drive->channel.description();
    out.push_back({desc.id, desc.path, desc.backend, desc.vendor, desc.product, desc.revision,
                   std::string(drive->public_state()), owner_info(*drive),
                   max_transfer_of(config_, desc)});
  }
  return out;
}

proto::ArbitrationStatus Arbiter::status() const {
  auto snapshot = status_snapshot();
  proto::ArbitrationStatus out{std::move(snapshot.drives), {}};
  out.clients.reserve(snapshot.clients.size());
  for (const auto& c : snapshot.clients)
    out.clients.push_back(*c);
  return out;
}

StatusSnapshot Arbiter::status_snapshot() const {
  StatusSnapshot out;
  const auto summaries = this->drives();
  for (std::size_t i = 0; i < drives_.size(); ++i) {
    const Drive& drive = *drives_[i];
    proto::DriveStatus d{summaries[i],
                         std::string(drive.lock_state_name()),
                         std::string(os_lock_name(drive.channel.description().os_lock)),
                         drive.tray_locked || drive.tray_persistent,
                         drive.tray_persistent,
                         drive.channel.error(),
                         {},
                         {drive.channel.stats().commands, drive.channel.stats().timeouts,
                          drive.channel.stats().errors}};
    for (const auto& w : drive.waiters) {
      const Session& s = *sessions_.at(w.session);
      d.waiters.push_back(
          {s.client_name, w.session, s.pid(), format_rfc3339(w.since), format_rfc3339(w.deadline)});
    }
    out.drives.push_back(std::move(d));
  }
  out.clients.reserve(sessions_.size());
  for (const auto& [id, session] : sessions_) {
    // N.B. an empty map allocates nothing: a session that holds no lock
    // costs a pointer copy here, once its entry is made.
    std::map<std::string, std::uint32_t> locks;
    for (const auto& drive : drives_) {
      if (drive->owner == id && drive->lock_count > 0)
        locks[drive->id()] = drive->lock_count;
    }
    if (!session->status_entry || session->status_entry->locks != locks) {
      auto c = std::make_shared<proto::ClientStatus>();
      c->session = id;
      c->client_name = session->client_name;
      c->pid = session->pid();
      c->user = session->peer.user;
      c->uid = session->peer.uid;
      c->sid = session->peer.sid;
      c->connected_since = session->connected_since_text;
      c->locks = std::move(locks);
      session->status_entry = std::move(c);
    }
    out.clients.push_back(session->status_entry);
  }
  return out;
}

// ---- helpers ----------------------------------------------------------------

Arbiter::Session* Arbiter::find_session(SessionId id) {
  const auto it = sessions_.find(id);
  return it == sessions_.end() ? nullptr : it->second.get();
}

const Arbiter::Drive* Arbiter::find_drive(const std::string& id) const {
  const auto it = std::ranges::find_if(drives_, [&](const auto& d) { return d->id() == id; });
  return it == drives_.end() ? nullptr : it->get();
}

Arbiter::Drive* Arbiter::find_drive(const std::string& id) {
  return const_cast<Drive*>(std::as_const(*this).find_drive(id));
}

Result<Arbiter::Drive*> Arbiter::usable_drive(const std::string& id) {
  Drive* drive = find_drive(id);
  if (!drive) {
    return Error{errc::dev_not_exist, fmt::format("no drive named '{}'", id)};
  }
  if (drive->removed) {
    return Error{errc::dev_not_exist, fmt::format("drive '{}' has been removed", id)};
  }
  return drive;
}

std::optional<proto::OwnerInfo> Arbiter::owner_info(const Drive& drive) const {
  if (drive.state != Drive::LockState::owned || drive.lock_count == 0) {
    return std::nullopt;
  }
  proto::OwnerInfo info = drive.owner_info;
  info.lock_count = drive.lock_count;
  return info;
}

Error Arbiter::locked_error(const Drive& drive) const {
  const auto& o = drive.owner_info;
  if (drive.owner == 0) {
    return Error{errc::recorder_locked, fmt::format("drive '{}' has {} client(s) waiting ahead",
                                                    drive.id(), drive.waiters.size())};
  }
  return Error{errc::recorder_locked,
               fmt::format("drive '{}' is held by '{}' (pid {}, user {})", drive.id(),
                           o.client_name, o.pid, o.user.empty() ? "?" : o.user)};
}

void Arbiter::audit(AuditKind kind, const Drive& drive, SessionId id, std::string detail) {
  AuditRecord r{kind, drive.id(), id, {}, 0, {}, drive.lock_count, std::move(detail)};
  if (const auto it = sessions_.find(id); it != sessions_.end()) {
    r.client_name = it->second->client_name;
    r.pid = it->second->pid();
    r.user = it->second->peer.user;
    r.administrator = it->second->peer.administrator;
  } else if (id == drive.owner_info.session) {
    r.client_name = drive.owner_info.client_name;
    r.pid = drive.owner_info.pid;
    r.user = drive.owner_info.user;
    r.administrator = drive.owner_administrator;
  }
  audit_.record(r);
}

void Arbiter::notify(const proto::Event& event) {
  // N.B. any sink may end any session, its own included, or open one: walk
  // a snapshot of the subscribers, look each up again before calling it, and
  // call a copy of its sink (close_session destroys the stored one).
  std::vector<SessionId> subscribers;
  for (const auto& [id, session] : sessions_) {
    if (session->subscribed && session->events)
      subscribers.push_back(id);
  }
  for (const SessionId id : subscribers) {
    const Session* session = find_session(id);
    if (!session)
      continue;
    const EventSink sink = session->events;
    sink(event);
  }
}

}  // namespace discarbiter::core
