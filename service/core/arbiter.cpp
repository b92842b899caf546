#include "core/arbiter.hpp"

#include <algorithm>
#include <utility>

#include <fmt/format.h>

#include "core/client_name.hpp"

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

}  // namespace

struct Arbiter::Session {
  SessionId id = 0;
  PeerIdentity peer;
  EventSink events;
  std::string client_name;  // empty until hello
  std::uint32_t reported_pid = 0;
  WallClock::time_point connected_since;
  bool subscribed = false;
  std::uint32_t waits = 0;
  std::uint32_t commands = 0;                 // queued or in flight, over all drives
  std::uint64_t payload_bytes = 0;            // data-out queued plus data-in reserved by those
  std::uint32_t deferred = 0;                 // requests waiting for a transition to end
  std::map<std::string, std::string> broken;  // drive -> who broke this session's lock there

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

struct Arbiter::ChannelCall {
  SessionId session = 0;  // whose command; 0: the arbiter's own (never dropped)
  std::function<void(std::uint64_t ticket)> start;  // hands it to the channel
  std::function<void(const Error&)> drop;           // answers it without the drive
};

struct Arbiter::Deferred {
  SessionId session = 0;
  std::function<void()> request;  // asks again
};

struct Arbiter::Drive {
  enum class LockState { free, acquiring, owned, releasing };

  std::shared_ptr<DriveChannel> channel;
  LockState state = LockState::free;
  SessionId owner = 0;               // 0: nobody (FREE)
  proto::OwnerInfo owner_info;       // identity snapshot at first acquire; outlives the session
  bool owner_administrator = false;  // of that snapshot: how the log treats its records
  std::uint32_t lock_count = 0;
  bool granted_from_queue = false;
  ReleaseCause release_cause = ReleaseCause::released;  // of the release in flight
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
  bool removed = false;
  std::optional<std::string> error;  // why the drive is in "error"; cleared by an answered TUR
  std::deque<Waiter> waiters;
  std::vector<Deferred> deferred;
  // N.B. the channel gets one call at a time: the watchdog of a call starts
  // when the drive does, and what waits here can still be dropped.
  std::deque<ChannelCall> calls;
  std::uint64_t call_in_flight = 0;  // the ticket of the call the channel has; 0: idle
  std::uint64_t next_call = 1;
  // Calls handed to the channel whose backend has not returned, watchdog
  // answer or not; counted per attachment (a re-attached drive starts anew).
  std::uint32_t in_backend = 0;
  std::uint64_t attachment = 0;
  std::uint32_t commands = 0;  // clients' commands queued or in flight
  struct {
    std::uint64_t commands = 0, timeouts = 0, errors = 0;
  } stats;

  const std::string& id() const { return channel->description().id; }
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
    if (error)
      return "error";
    return state == LockState::free ? "free" : "owned";
  }
  bool in_transition() const {
    return state == LockState::acquiring || state == LockState::releasing;
  }
  bool may_prevent() const { return tray_locked || prevents_in_flight > 0; }
  /// A watchdog has answered for a call the backend still works on.
  bool overrunning() const { return in_backend > (call_in_flight != 0 ? 1U : 0U); }
  bool may_prevent_persistently() const {
    return tray_persistent || persistent_prevents_in_flight > 0;
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
    d->channel = std::move(channel);
    d->call_in_flight = 0;  // N.B. a call stuck on the old channel answers there, not here
    d->in_backend = 0;
    ++d->attachment;
    d->removed = false;
    d->error.reset();
    d->tray_locked = false;
    d->tray_persistent = false;
    d->owner_touched_tray = false;
  } else {
    auto drive = std::make_unique<Drive>();
    drive->channel = std::move(channel);
    d = drive.get();
    drives_.push_back(std::move(drive));
  }
  audit(AuditKind::drive_arrived, *d, 0, d->channel->description().path);
  notify(proto::DriveArrived{d->id()});
  // N.B. both preventions: a crash (ours or another program's) may have left
  // either, and a persistent one survives every ordinary ALLOW.
  allow_medium_removal(*d, true, true, "start-up ", [] {});
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
  drive.removed = true;
  drop_commands(drive, std::nullopt,
                Error{errc::dev_not_exist,
                      fmt::format("drive '{}' was removed before it started the command: {}",
                                  drive.id(), reason)});
  audit(AuditKind::drive_removed, drive, drive.owner, reason);
  auto waiters = std::exchange(drive.waiters, {});
  for (auto& w : waiters) {
    scheduler_.cancel(w.timer);
    if (Session* s = find_session(w.session))
      --s->waits;
  }
  if (drive.state == Drive::LockState::owned) {
    // N.B. nothing to send: the device is gone, and with it its tray lock.
    // ACQUIRING/RELEASING end on their own when the channel answers.
    audit(AuditKind::freed, drive, drive.owner, "the drive was removed");
    drive.state = Drive::LockState::free;
    drive.owner = 0;
    drive.lock_count = 0;
    drive.tray_locked = false;
    drive.tray_persistent = false;
    drive.owner_touched_tray = false;
  }
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
    drop_commands(*drive, id,
                  Error{errc::fail, "the session ended before the drive started the command"});
    if (drive->owner == id && drive->state == Drive::LockState::owned) {
      audit(AuditKind::session_ended, *drive, id,
            fmt::format("session ended holding {} lock(s)", drive->lock_count));
      start_release(*drive, ReleaseCause::session_ended, nullptr);
    }
    // ACQUIRING: finish_acquire sees the session gone and releases at once.
    // RELEASING: already on its way to FREE.
  }
}

void Arbiter::acquire_exclusive_access(SessionId id, const std::string& drive_id,
                                       AcquireOptions options, CountHandler handler) {
  auto target = request_target(id, drive_id, "acquire");
  if (!target) {
    handler(target.error());
    return;
  }
  Session& session = *target->session;
  Drive& drive = *target->drive;
  if (drive.state == Drive::LockState::releasing ||
      (drive.owner == id && drive.state == Drive::LockState::acquiring)) {
    // The answer depends on how the transition ends: ask again then.
    if (auto limit = deferral_limit(session)) {
      handler(std::move(*limit));
      return;
    }
    defer(drive, session, [this, id, drive_id, options, h = std::move(handler)]() mutable {
      acquire_exclusive_access(id, drive_id, options, std::move(h));
    });
    return;
  }
  if (drive.owner == id) {
    ++drive.lock_count;
    audit(AuditKind::nested, drive, id);
    handler(drive.lock_count);
    return;
  }
  if (drive.state == Drive::LockState::free && drive.waiters.empty()) {
    start_acquire(drive, id, options, std::move(handler));
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
  Drive* drive = target->drive;
  if (drive->owner != id) {
    handler(
        Error{errc::not_locked, fmt::format("this client holds no lock on drive '{}'", drive_id)});
    return;
  }
  if (drive->in_transition()) {
    if (auto limit = deferral_limit(*target->session)) {
      handler(std::move(*limit));
      return;
    }
    defer(*drive, *target->session, [this, id, drive_id, h = std::move(handler)]() mutable {
      release_exclusive_access(id, drive_id, std::move(h));
    });
    return;
  }
  if (--drive->lock_count > 0) {
    audit(AuditKind::released, *drive, id);
    handler(drive->lock_count);
    return;
  }
  start_release(*drive, ReleaseCause::released, std::move(handler));
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
  Session* session = find_session(id);
  if (!session || !session->greeted()) {
    handler(Error{errc::hello_required, "break before hello"});
    return;
  }
  if (!session->peer.administrator) {
    handler(Error{errc::access_denied,
                  fmt::format("only administrators may break a lock; user '{}' is not one",
                              session->peer.user)});
    return;
  }
  auto found = usable_drive(drive_id);
  if (!found) {
    handler(found.error());
    return;
  }
  Drive& drive = **found;
  if (drive.in_transition()) {
    if (auto limit = deferral_limit(*session)) {
      handler(std::move(*limit));
      return;
    }
    defer(drive, *session, [this, id, drive_id, h = std::move(handler)]() mutable {
      break_exclusive_access(id, drive_id, std::move(h));
    });
    return;
  }
  if (drive.state != Drive::LockState::owned) {
    handler(
        Error{errc::not_locked, fmt::format("drive '{}' is not held; nothing to break", drive_id)});
    return;
  }
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
                [former = std::move(former),
                 h = std::move(handler)](Result<std::uint32_t>) mutable { h(std::move(former)); });
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

void Arbiter::execute(SessionId id, const std::string& drive_id, ScsiCommand command,
                      std::optional<std::uint32_t> requested_timeout_s, ExecuteHandler handler) {
  auto target = request_target(id, drive_id, "execute");
  if (!target) {
    handler(target.error());
    return;
  }
  Session& session = *target->session;
  Drive& drive = *target->drive;
  const bool acquiring = drive.owner == id && drive.state == Drive::LockState::acquiring;
  if (!acquiring && (drive.owner != id || drive.state != Drive::LockState::owned)) {
    handler(drive.owner == id || drive.owner == 0
                ? Error{errc::recorder_locked,
                        fmt::format("only the owner of drive '{}' may send commands; acquire it "
                                    "first",
                                    drive_id)}
                : locked_error(drive));
    return;
  }
  if (auto allowed = config_.commands.check(command.cdb, target->session->peer); !allowed) {
    handler(std::move(allowed.error()));  // N.B. before anything is sent or counted
    return;
  }
  const std::uint32_t max_transfer =
      std::min(config_.max_transfer_bytes, drive.channel->description().max_transfer_bytes);
  if (command.cdb.size() < 6 || command.cdb.size() > 16) {
    handler(Error{errc::invalid_arg,
                  fmt::format("CDB of {} bytes; a CDB has 6 to 16", command.cdb.size())});
    return;
  }
  const std::size_t transfer =
      command.direction == Direction::out ? command.data_out.size() : command.data_in_len;
  if (transfer > max_transfer) {
    handler(Error{errc::invalid_arg,
                  fmt::format("transfer of {} bytes exceeds drive '{}''s limit of {}", transfer,
                              drive_id, max_transfer)});
    return;
  }
  // N.B. what the command holds while it waits: its data-out, and the
  // data-in buffer the drive will fill.
  const std::uint64_t bytes =
      command.data_out.size() + (command.direction == Direction::in ? command.data_in_len : 0);
  if (auto limit = command_limit(session, drive, bytes)) {
    handler(std::move(*limit));
    return;
  }
  if (acquiring) {
    if (auto limit = deferral_limit(session)) {
      handler(std::move(*limit));
      return;
    }
    // Held while deferred too: its payload is in the closure.
    hold_command(session, drive, bytes);
    Drive* d = &drive;
    defer(drive, session,
          [this, id, d, bytes, drive_id, c = std::move(command), requested_timeout_s,
           h = std::move(handler)]() mutable {
            let_go_command(id, *d, bytes);
            execute(id, drive_id, std::move(c), requested_timeout_s, std::move(h));
          });
    return;
  }
  command.timeout = config_.timeouts.timeout_for(command.opcode(), requested_timeout_s);
  const std::uint8_t op = command.opcode();
  const auto timeout = command.timeout;
  const auto prevent = prevent_field(command);
  if (prevent) {
    drive.prevent_sent(*prevent);
    drive.owner_touched_tray = drive.owner_touched_tray || *prevent != 0;
  }
  hold_command(session, drive, bytes);
  Drive* d = &drive;
  // N.B. the command counts against the bounds until the backend returns
  // it (or it is dropped unsent), not when the watchdog answers its caller:
  // a command a stuck backend holds is held by the service too.
  send(
      drive, std::move(command),
      [d, op, timeout, prevent, h = std::move(handler)](ScsiResult r) {
        if (prevent)
          d->prevent_answered(*prevent, r);  // the owner may lock or unlock the tray itself
        if (!r.answered()) {
          h(Error{r.transport, fmt::format("opcode 0x{:02X} on drive '{}' (timeout {} s): {}", op,
                                           d->id(), timeout.count(), r.transport_message)});
          return;
        }
        h(std::move(r));
      },
      id, [this, id, d, bytes] { let_go_command(id, *d, bytes); });
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

// ---- transitions ------------------------------------------------------------

void Arbiter::start_acquire(Drive& drive, SessionId id, AcquireOptions options,
                            CountHandler handler) {
  const Session* session = find_session(id);
  drive.state = Drive::LockState::acquiring;
  drive.owner = id;
  drive.lock_count = 0;
  drive.owner_administrator = session->peer.administrator;
  drive.owner_info = proto::OwnerInfo{session->client_name,
                                      id,
                                      session->pid(),
                                      session->peer.user,
                                      session->peer.uid,
                                      session->peer.sid,
                                      session->peer.exe,
                                      0,
                                      format_rfc3339(scheduler_.wall_now()),
                                      options.force};
  Drive* d = &drive;
  auto fail = [this, d, id](CountHandler& h, Error e) {
    finish_acquire(*d, id, std::move(e), std::move(h));
  };

  // Step 3: PREVENT MEDIUM REMOVAL when configured; roll back the OS lock if
  // it fails.
  auto prevent = [this, d, id, fail](CountHandler h) mutable {
    if (!config_.tray_lock) {
      finish_acquire(*d, id, Done{}, std::move(h));
      return;
    }
    ScsiCommand cmd{cdb_prevent_allow_medium_removal(true),
                    Direction::none,
                    {},
                    0,
                    config_.timeouts.timeout_for(opcode::prevent_allow_medium_removal)};
    send(*d, std::move(cmd), [this, d, id, fail, h = std::move(h)](ScsiResult r) mutable {
      if (r.good()) {
        d->tray_locked = true;
        finish_acquire(*d, id, Done{}, std::move(h));
        return;
      }
      Error e = r.answered() ? Error{errc::fail, "PREVENT MEDIUM REMOVAL failed with sense " +
                                                     describe_sense(r.sense)}
                             : Error{r.transport, "PREVENT MEDIUM REMOVAL: " + r.transport_message};
      os_unlock(*d, [fail, e = std::move(e), h = std::move(h)](Result<Done>) mutable {
        fail(h, std::move(e));
      });
    });
  };

  // Step 2: the OS-level exclusive lock, under the client's name.
  auto lock = [this, d, fail, prevent, options,
               name = session->client_name](CountHandler h) mutable {
    os_lock(*d, name, options.force,
            [fail, prevent, h = std::move(h)](Result<Done> locked) mutable {
              if (!locked) {
                fail(h, Error{locked.error().code, "OS exclusive lock: " + locked.error().message});
                return;
              }
              prevent(std::move(h));
            });
  };

  // Step 1: TEST UNIT READY. Any SCSI answer will do (an empty drive says NOT
  // READY and may still be locked); no answer in time fails the acquire.
  ScsiCommand tur{cdb_test_unit_ready(),
                  Direction::none,
                  {},
                  0,
                  config_.timeouts.timeout_for(opcode::test_unit_ready)};
  send(drive, std::move(tur), [fail, lock, h = std::move(handler)](ScsiResult r) mutable {
    if (!r.answered()) {
      fail(h, Error{r.transport, "TEST UNIT READY: " + r.transport_message});
      return;
    }
    lock(std::move(h));
  });
}

void Arbiter::finish_acquire(Drive& drive, SessionId id, Result<Done> outcome,
                             CountHandler handler) {
  if (outcome.ok()) {
    drive.state = Drive::LockState::owned;
    drive.lock_count = 1;
    if (!find_session(id)) {
      // The client went away while its acquire was in flight: the lock dies
      // at once, as by a final release.
      audit(AuditKind::session_ended, drive, id, "session ended while acquiring");
      start_release(drive, ReleaseCause::session_ended, nullptr);
      return;
    }
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
    return;
  }
  drive.state = Drive::LockState::free;
  drive.owner = 0;
  drive.lock_count = 0;
  drive.granted_from_queue = false;
  audit(AuditKind::acquire_failed, drive, id, outcome.error().message);
  handler(outcome.error());
  grant_next_waiter(drive);
  run_deferred(drive);
  check_all_free();
}

void Arbiter::start_release(Drive& drive, ReleaseCause cause, CountHandler handler) {
  if (cause != ReleaseCause::released) {
    // N.B. before ALLOW is queued: nothing of a departed or broken owner
    // reaches the drive after its lock is freed. (A final release keeps its
    // own earlier commands: they run before the ALLOW.) What a backend holds
    // unstarted is the owner's too: its acquire's calls were answered before
    // it owned the drive, and the channel runs calls in order.
    const Error why =
        cause == ReleaseCause::broken
            ? Error{errc::recorder_locked,
                    fmt::format("the lock on drive '{}' was broken before the drive started the "
                                "command",
                                drive.id())}
            : Error{errc::fail, "the session ended before the drive started the command"};
    drop_commands(drive, drive.owner, why);
    drive.channel->cancel_queued(why);
  } else if (drive.overrunning()) {
    // A final release normally keeps the owner's earlier commands (they run
    // before the ALLOW). Behind a stuck backend they could not, and would
    // hold the ALLOW behind them: drop them, and cancel what the backend
    // holds unstarted (handed after the overrun), so nothing of the owner
    // runs after the lock is freed. (Without an overrun the one call the
    // backend has is the owner's earlier command, and it runs.)
    const Error why{errc::recorder_command_timeout,
                    fmt::format("drive '{}''s backend was still stuck on an earlier command when "
                                "the lock was released; the command was not started",
                                drive.id())};
    drop_commands(drive, drive.owner, why);
    drive.channel->cancel_queued(why);
  }
  drive.state = Drive::LockState::releasing;
  drive.release_cause = cause;
  drive.lock_count = 0;
  Drive* d = &drive;
  auto unlock = [this, d](CountHandler h) mutable {
    os_unlock(*d, [this, d, h = std::move(h)](Result<Done> r) mutable {
      if (!r) {
        audit(AuditKind::drive_error, *d, d->owner, "OS unlock failed: " + r.error().message);
      }
      finish_release(*d, std::move(h));
    });
  };
  // Whatever the owner did to the tray, none of it outlives the lock. N.B.
  // an owner that sent any non-zero PREVENT field gets both ALLOWs: an
  // answered 10b cleared tray_persistent under MMC, but not necessarily in
  // the drive.
  const bool touched = std::exchange(drive.owner_touched_tray, false);
  allow_medium_removal(drive, touched || drive.may_prevent(),
                       touched || drive.may_prevent_persistently(), "",
                       [unlock, h = std::move(handler)]() mutable { unlock(std::move(h)); });
}

void Arbiter::allow_medium_removal(Drive& drive, bool prevent, bool persistent,
                                   std::string_view when, std::function<void()> done) {
  Drive* d = &drive;
  auto step = [this, d, when = std::string(when)](std::uint8_t field, std::function<void()> next) {
    ScsiCommand allow{cdb_prevent_allow_medium_removal(false, (field & kPersistentBit) != 0),
                      Direction::none,
                      {},
                      0,
                      config_.timeouts.timeout_for(opcode::prevent_allow_medium_removal)};
    send(*d, std::move(allow), [this, d, field, when, next = std::move(next)](ScsiResult r) {
      d->prevent_answered(field, r);
      // N.B. MMC-3 drives take bit 1 for a changer's and refuse it with
      // INVALID FIELD IN CDB: they have no persistent prevention to clear.
      const bool no_persistent_prevention = (field & kPersistentBit) != 0 && r.answered() &&
                                            r.sense.size() > 12 && (r.sense[2] & 0x0F) == 0x05 &&
                                            r.sense[12] == 0x24;
      if (no_persistent_prevention) {
        d->tray_persistent = false;
      } else if (!r.good()) {
        // N.B. the next step runs regardless: a drive that refuses ALLOW
        // must not keep a departed client's lock alive.
        audit(AuditKind::drive_error, *d, d->owner,
              fmt::format("{}{}ALLOW MEDIUM REMOVAL failed: {}", when,
                          (field & kPersistentBit) != 0 ? "PERSISTENT " : "",
                          r.answered() ? describe_sense(r.sense) : r.transport_message));
      }
      next();
    });
  };
  // N.B. PERSISTENT ALLOW first and the plain ALLOW last: a drive that
  // reads bit 1 as SPC-2's medium changer bit takes 10b for a PREVENT, and
  // the last word must leave the tray unlocked under either reading.
  auto then_plain = [step, prevent, done = std::move(done)]() mutable {
    if (prevent)
      step(0, std::move(done));
    else
      done();
  };
  if (persistent)
    step(kPersistentBit, std::move(then_plain));
  else
    then_plain();
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

void Arbiter::finish_release(Drive& drive, CountHandler handler) {
  const SessionId former = drive.owner;
  drive.state = Drive::LockState::free;
  audit(AuditKind::freed, drive, former);
  drive.owner = 0;
  notify(proto::Released{drive.id(), drive.owner_info.client_name, former,
                         std::string(name_of(drive.release_cause))});
  if (handler) {
    handler(0U);
  }
  grant_next_waiter(drive);
  run_deferred(drive);
  check_all_free();
}

void Arbiter::enqueue_waiter(Drive& drive, Session& session, AcquireOptions options,
                             CountHandler handler) {
  const bool already =
      std::ranges::any_of(drive.waiters, [&](const Waiter& w) { return w.session == session.id; });
  if (already) {
    handler(Error{errc::invalid_arg,
                  fmt::format("this client is already waiting for drive '{}'", drive.id())});
    return;
  }
  if (session.waits >= config_.max_waits_per_session) {
    handler(Error{errc::limit_reached, fmt::format("this client already has {} queued waits "
                                                   "(limits.max_waits_per_session = {})",
                                                   session.waits, config_.max_waits_per_session)});
    return;
  }
  if (drive.waiters.size() >= config_.max_waits_per_drive) {
    handler(Error{errc::limit_reached,
                  fmt::format("drive '{}' already has {} queued waits "
                              "(limits.max_waits_per_drive = {})",
                              drive.id(), drive.waiters.size(), config_.max_waits_per_drive)});
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

void Arbiter::defer(Drive& drive, Session& session, std::function<void()> request) {
  ++session.deferred;
  drive.deferred.push_back(Deferred{session.id, std::move(request)});
}

void Arbiter::run_deferred(Drive& drive) {
  // N.B. out of the drive first: each request may defer itself again, and
  // its answer may end a session.
  auto deferred = std::exchange(drive.deferred, {});
  for (auto& d : deferred) {
    if (Session* session = find_session(d.session))
      --session->deferred;
    d.request();
  }
}

template <typename R>
std::function<void(R)> Arbiter::watch(std::chrono::seconds limit, std::function<R()> overrun,
                                      std::function<void(R)> handler) {
  // Whichever comes first answers: the channel, or the timer at the limit
  // plus the grace. The loser finds `done` set and is dropped.
  struct Watched {
    bool done = false;
    Scheduler::TimerId timer = 0;
    std::function<void(R)> handler;
  };
  auto w = std::make_shared<Watched>();
  w->handler = std::move(handler);
  auto alive = std::weak_ptr(alive_);
  w->timer = scheduler_.schedule_at(scheduler_.now() + limit + config_.watchdog_grace,
                                    [alive, w, overrun = std::move(overrun)] {
                                      if (alive.expired() || std::exchange(w->done, true))
                                        return;
                                      w->handler(overrun());
                                    });
  return [this, alive, w](R r) {
    if (alive.expired() || std::exchange(w->done, true))
      return;
    scheduler_.cancel(w->timer);
    w->handler(std::move(r));
  };
}

template <typename R>
std::function<void(R)> Arbiter::track(Drive& drive, std::function<void()> returned,
                                      std::function<void(R)> watched) {
  ++drive.in_backend;
  Drive* d = &drive;
  auto alive = std::weak_ptr(alive_);
  return [this, alive, d, attachment = drive.attachment, returned = std::move(returned),
          watched = std::move(watched)](R r) {
    if (alive.expired())
      return;
    if (d->attachment == attachment)
      --d->in_backend;
    if (returned)
      returned();
    watched(std::move(r));
    hand_next_call(*d);  // N.B. after an overrun, the return is what frees the slot
  };
}

void Arbiter::send(Drive& drive, ScsiCommand command, std::function<void(ScsiResult)> handler,
                   SessionId session, std::function<void()> returned) {
  // N.B. shared: a ChannelCall is copyable, and either start or drop answers.
  auto h = std::make_shared<std::function<void(ScsiResult)>>(std::move(handler));
  auto c = std::make_shared<ScsiCommand>(std::move(command));
  Drive* d = &drive;
  auto ret = std::make_shared<std::function<void()>>(std::move(returned));
  enqueue_call(
      drive,
      ChannelCall{
          session,
          [this, d, c, h, ret](std::uint64_t ticket) {
            const std::uint8_t op = c->opcode();
            const auto limit = c->timeout;
            auto channel = d->channel;  // N.B. a re-attached drive has a new one; answer on the old
            channel->async_execute(
                std::move(*c),
                track<ScsiResult>(
                    *d, *ret,
                    watch<ScsiResult>(
                        limit,
                        [limit] {
                          return ScsiResult::failed(
                              errc::recorder_command_timeout,
                              fmt::format("the drive's backend did not return within the {} s "
                                          "timeout (plus grace); the command may still be stuck",
                                          limit.count()));
                        },
                        [this, d, op, ticket, h](ScsiResult r) {
                          call_finished(*d, ticket);
                          note_command_result(*d, op, r);
                          (*h)(std::move(r));
                          hand_next_call(*d);
                        })));
          },
          [h, ret](const Error& why) {
            if (*ret)
              (*ret)();
            (*h)(ScsiResult::failed(why.code, why.message));
          }});
}

void Arbiter::os_lock(Drive& drive, std::string client_name, bool force,
                      std::function<void(Result<Done>)> handler) {
  const auto limit = config_.timeouts.default_timeout;
  auto h = std::make_shared<std::function<void(Result<Done>)>>(std::move(handler));
  Drive* d = &drive;
  enqueue_call(
      drive,
      ChannelCall{0,
                  [this, d, limit, h, name = std::move(client_name), force](std::uint64_t ticket) {
                    d->channel->async_os_lock(
                        name, force,
                        track<Result<Done>>(
                            *d, {},
                            watch<Result<Done>>(
                                limit, [limit] { return os_call_overrun("lock", limit); },
                                [this, d, ticket, h](Result<Done> r) {
                                  call_finished(*d, ticket);
                                  (*h)(std::move(r));
                                  hand_next_call(*d);
                                })));
                  },
                  [h](const Error& why) { (*h)(why); }});
}

void Arbiter::os_unlock(Drive& drive, std::function<void(Result<Done>)> handler) {
  const auto limit = config_.timeouts.default_timeout;
  auto h = std::make_shared<std::function<void(Result<Done>)>>(std::move(handler));
  Drive* d = &drive;
  enqueue_call(drive,
               ChannelCall{0,
                           [this, d, limit, h](std::uint64_t ticket) {
                             d->channel->async_os_unlock(track<Result<Done>>(
                                 *d, {},
                                 watch<Result<Done>>(
                                     limit, [limit] { return os_call_overrun("unlock", limit); },
                                     [this, d, ticket, h](Result<Done> r) {
                                       call_finished(*d, ticket);
                                       (*h)(std::move(r));
                                       hand_next_call(*d);
                                     })));
                           },
                           [h](const Error& why) { (*h)(why); }});
}

void Arbiter::enqueue_call(Drive& drive, ChannelCall call) {
  drive.calls.push_back(std::move(call));
  hand_next_call(drive);
}

void Arbiter::hand_next_call(Drive& drive) {
  if (drive.call_in_flight != 0 || drive.calls.empty())
    return;
  // N.B. while a watchdog-answered call still holds the backend, at most one
  // further call goes to it (so a release's ALLOW or a TUR can still be
  // tried); the rest wait here, in order, where they stay counted against
  // their bounds and a departing owner's can be dropped. A drive whose
  // backend never returns thus holds them (and a release behind them) until
  // it does: nothing is run, or freed, behind the backend's back.
  // The arbiter's own calls (TUR, OS lock, PREVENT, ALLOW, OS unlock) are
  // exempt: their number is bounded by the lock state machine, and each
  // needs its watchdog running, or an acquire or a release behind a stuck
  // backend would wait unanswered for ever.
  if (drive.in_backend > 1 && drive.calls.front().session != 0)
    return;
  ChannelCall call = std::move(drive.calls.front());
  drive.calls.pop_front();
  drive.call_in_flight = drive.next_call++;
  // N.B. a channel never completes inside the call, so this cannot re-enter.
  call.start(drive.call_in_flight);
}

void Arbiter::call_finished(Drive& drive, std::uint64_t ticket) {
  // N.B. after a watchdog answer the backend may still be stuck on the call;
  // hand_next_call hands it one more at most (see there). The drive is in
  // "error" by then.
  if (drive.call_in_flight == ticket)
    drive.call_in_flight = 0;
}

void Arbiter::drop_commands(Drive& drive, std::optional<SessionId> session, const Error& why) {
  std::deque<ChannelCall> kept;
  std::vector<ChannelCall> dropped;
  for (auto& call : drive.calls) {
    const bool drop = call.session != 0 && (!session || call.session == *session);
    (drop ? dropped.emplace_back(std::move(call)) : kept.emplace_back(std::move(call)));
  }
  drive.calls = std::move(kept);
  // N.B. answered after the queue is settled: a handler may queue again.
  for (auto& call : dropped)
    call.drop(why);
}

Result<Done> Arbiter::os_call_overrun(std::string_view what, std::chrono::seconds limit) {
  return Error{errc::recorder_command_timeout,
               fmt::format("the OS exclusive {} did not return within {} s", what, limit.count())};
}

void Arbiter::note_command_result(Drive& drive, std::uint8_t op, const ScsiResult& r) {
  ++drive.stats.commands;
  if (r.transport == errc::recorder_command_timeout) {
    ++drive.stats.timeouts;
    audit(AuditKind::command_timeout, drive, drive.owner,
          fmt::format("opcode 0x{:02X}: {}", op, r.transport_message));
    if (!drive.error) {
      drive.error = fmt::format("opcode 0x{:02X} timed out: {}", op, r.transport_message);
      notify(proto::DriveError{drive.id(), *drive.error});
    }
    return;
  }
  if (!r.answered()) {
    ++drive.stats.errors;
    if (r.transport == errc::dev_not_exist && !drive.removed) {
      mark_removed(drive, r.transport_message);
    }
    return;
  }
  if (op == opcode::test_unit_ready && drive.error) {
    // Any answer will do: an empty drive's NOT READY is a working drive.
    audit(AuditKind::drive_recovered, drive, drive.owner,
          "TEST UNIT READY answered after: " + *drive.error);
    drive.error.reset();
    notify(proto::DriveRecovered{drive.id()});
  }
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
    const auto& desc = drive->channel->description();
    out.push_back({desc.id, desc.path, desc.backend, desc.vendor, desc.product, desc.revision,
                   std::string(drive->public_state()), owner_info(*drive)});
  }
  return out;
}

proto::ArbitrationStatus Arbiter::status() const {
  proto::ArbitrationStatus out;
  const auto summaries = this->drives();
  for (std::size_t i = 0; i < drives_.size(); ++i) {
    const Drive& drive = *drives_[i];
    proto::DriveStatus d{summaries[i],
                         std::string(drive.lock_state_name()),
                         drive.tray_locked || drive.tray_persistent,
                         drive.tray_persistent,
                         drive.error,
                         {},
                         {drive.stats.commands, drive.stats.timeouts, drive.stats.errors}};
    for (const auto& w : drive.waiters) {
      const Session& s = *sessions_.at(w.session);
      d.waiters.push_back(
          {s.client_name, w.session, s.pid(), format_rfc3339(w.since), format_rfc3339(w.deadline)});
    }
    out.drives.push_back(std::move(d));
  }
  for (const auto& [id, session] : sessions_) {
    proto::ClientStatus& c = out.clients.emplace_back();
    c.session = id;
    c.client_name = session->client_name;
    c.pid = session->pid();
    c.user = session->peer.user;
    c.uid = session->peer.uid;
    c.sid = session->peer.sid;
    c.connected_since = format_rfc3339(session->connected_since);
    for (const auto& drive : drives_) {
      if (drive->owner == id && drive->lock_count > 0) {
        c.locks[drive->id()] = drive->lock_count;
      }
    }
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
