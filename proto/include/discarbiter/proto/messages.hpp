// Typed messages of the wire protocol (docs/protocol.md): every request,
// reply, event and the status document is a plain struct here. Their JSON is
// written and read only by the to_json/from_json of wire.hpp (messages.cpp
// names each key once, for both), so the service encodes and the client
// decodes through the same code. JSON carries control; SCSI data rides in the
// frame's raw payload.
//
// The standard library only: this header is part of the installed SDK (the
// client library's results are these types), and the core names them
// without pulling in the JSON library.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "discarbiter/export.h"
#include "discarbiter/proto/bytes.hpp"
#include "discarbiter/proto/errors.hpp"

namespace discarbiter::proto {

/// Protocol major version: a hello with another major is refused.
inline constexpr int kProtocolVersion = 1;

// ---- requests ---------------------------------------------------------------

enum class Direction { none, in, out };

struct HelloRequest {
  int protocol = kProtocolVersion;
  std::string client_name;
  std::uint32_t pid = 0;
};
struct ListDrivesRequest {};
struct StatusRequest {};
struct AcquireRequest {
  std::string drive;
  bool force = false;
  std::uint32_t wait_ms = 0;
};
struct ReleaseRequest {
  std::string drive;
};
struct OwnerRequest {
  std::string drive;
};
struct ExecuteRequest {
  std::string drive;
  Bytes cdb;
  Direction direction = Direction::none;
  std::uint32_t data_in_len = 0;
  std::optional<std::uint32_t> timeout_s;  // nullopt: the configured default for the opcode
  Bytes data_out;                          // the frame's payload when direction == out
};
struct SubscribeRequest {};
struct BreakRequest {
  std::string drive;
};

using RequestBody =
    std::variant<HelloRequest, ListDrivesRequest, StatusRequest, AcquireRequest, ReleaseRequest,
                 OwnerRequest, ExecuteRequest, SubscribeRequest, BreakRequest>;

struct Request {
  std::uint64_t id = 0;
  RequestBody body;
};

/// The wire name of a request ("hello", "acquire", …).
DISCARBITER_API std::string_view op_name(const RequestBody& body);

// ---- replies ----------------------------------------------------------------
// Each reply is the fields of `{"id": …, "ok": true, …}` besides id and ok.

struct HelloReply {
  std::string server_version;
  int protocol = kProtocolVersion;
  std::vector<std::string> capabilities;
  /// Bytes: the largest frame payload the service takes (its
  /// limits.max_transfer_bytes), so the largest transfer of any execute. A
  /// drive's own limit may be lower (DriveSummary::max_transfer).
  std::uint32_t max_transfer = 0;
  friend bool operator==(const HelloReply&, const HelloReply&) = default;
};

/// Who holds a drive (DESIGN.md "JSON status", `owner`).
struct OwnerInfo {
  std::string client_name;
  std::uint64_t session = 0;
  std::uint32_t pid = 0;
  std::string user;
  std::optional<std::uint32_t> uid;  // Linux
  std::optional<std::string> sid;    // Windows
  std::string exe;
  std::uint32_t lock_count = 0;
  std::string since;  // RFC 3339 UTC
  bool force = false;
  friend bool operator==(const OwnerInfo&, const OwnerInfo&) = default;
};

/// One drive as `list_drives` shows it (and the start of its status entry).
struct DriveSummary {
  std::string id;
  std::string path;
  std::string backend;
  std::string vendor;
  std::string product;
  std::string revision;
  std::string state;               // free|owned|removed|error
  std::optional<OwnerInfo> owner;  // null on the wire when nobody holds it
  /// Bytes: the largest transfer (data-out or data_in_len) one execute on
  /// this drive may carry: the lower of the service's limit and the drive's.
  std::uint32_t max_transfer = 0;
  friend bool operator==(const DriveSummary&, const DriveSummary&) = default;
};

struct DrivesReply {
  std::vector<DriveSummary> drives;
  friend bool operator==(const DrivesReply&, const DrivesReply&) = default;
};

/// acquire's reply: the session's lock count after it.
struct AcquireReply {
  std::string drive;
  std::uint32_t lock_count = 0;
  friend bool operator==(const AcquireReply&, const AcquireReply&) = default;
};

/// release's reply: the lock count that remains.
struct ReleaseReply {
  std::string drive;
  std::uint32_t lock_count = 0;
  friend bool operator==(const ReleaseReply&, const ReleaseReply&) = default;
};

struct OwnerReply {
  std::string drive;
  std::optional<OwnerInfo> owner;  // null on the wire when the drive is free
  friend bool operator==(const OwnerReply&, const OwnerReply&) = default;
};

/// execute's reply; the data-in bytes are the frame's payload. `code` is
/// S_OK or S_IMAPI_COMMAND_HAS_SENSE_DATA, on the wire as `code` (the
/// HRESULT) and `name`.
struct ExecuteReply {
  std::uint8_t scsi_status = 0;
  Bytes sense;
  std::uint32_t data_len = 0;
  errc code = errc::ok;
  friend bool operator==(const ExecuteReply&, const ExecuteReply&) = default;
};

/// subscribe's reply: nothing besides id and ok; events follow.
struct SubscribeReply {
  friend bool operator==(const SubscribeReply&, const SubscribeReply&) = default;
};

/// break's reply: the owner as it was when its lock was broken.
struct BreakReply {
  std::string drive;
  OwnerInfo broken_owner;
  friend bool operator==(const BreakReply&, const BreakReply&) = default;
};

// ---- the status document (docs/protocol.md "The status document") ------------

/// A session queued for a drive.
struct WaiterStatus {
  std::string client_name;
  std::uint64_t session = 0;
  std::uint32_t pid = 0;
  std::string waiting_since;  // RFC 3339 UTC
  std::string deadline;       // RFC 3339 UTC
  friend bool operator==(const WaiterStatus&, const WaiterStatus&) = default;
};

struct DriveStats {
  std::uint64_t commands = 0;
  std::uint64_t timeouts = 0;
  std::uint64_t errors = 0;
  friend bool operator==(const DriveStats&, const DriveStats&) = default;
};

/// One entry of "drives": the summary's fields and the arbiter's view.
struct DriveStatus : DriveSummary {
  std::string lock_state;  // free|acquiring|owned|releasing
  /// What keeps programs outside DiscArbiter away:
  /// class_driver|unsupported|exclusive_open|simulated (docs/protocol.md).
  std::string os_lock;
  bool tray_locked = false;
  bool tray_persistent = false;
  std::optional<std::string> error;  // set while the drive is in "error"
  std::vector<WaiterStatus> waiters;
  DriveStats stats;
  friend bool operator==(const DriveStatus&, const DriveStatus&) = default;
};

/// One entry of "clients": a session.
struct ClientStatus {
  std::uint64_t session = 0;
  std::string client_name;
  std::uint32_t pid = 0;
  std::string user;
  std::optional<std::uint32_t> uid;            // Linux
  std::optional<std::string> sid;              // Windows
  std::string connected_since;                 // RFC 3339 UTC
  std::map<std::string, std::uint32_t> locks;  // drive id -> lock count
  friend bool operator==(const ClientStatus&, const ClientStatus&) = default;
};

/// "drives" and "clients": what the arbiter knows (Arbiter::status()).
struct ArbitrationStatus {
  std::vector<DriveStatus> drives;
  std::vector<ClientStatus> clients;
  friend bool operator==(const ArbitrationStatus&, const ArbitrationStatus&) = default;
};

/// "service": the service's own facts.
struct ServiceInfo {
  std::string version;
  int protocol = kProtocolVersion;
  std::uint32_t pid = 0;
  std::string platform;
  std::string endpoint;
  double uptime_s = 0;
  std::uint64_t log_dropped = 0;
  friend bool operator==(const ServiceInfo&, const ServiceInfo&) = default;
};

/// The whole status document: the arbitration plus "service".
struct StatusDocument : ArbitrationStatus {
  ServiceInfo service;
  friend bool operator==(const StatusDocument&, const StatusDocument&) = default;
};

struct StatusReply {
  StatusDocument status;
  friend bool operator==(const StatusReply&, const StatusReply&) = default;
};

/// A successful reply's body, one alternative per request (RequestBody's order).
using ReplyBody = std::variant<HelloReply, DrivesReply, StatusReply, AcquireReply, ReleaseReply,
                               OwnerReply, ExecuteReply, SubscribeReply, BreakReply>;

// ---- events -----------------------------------------------------------------
// `{"event": kName, …fields}`, to sessions that sent subscribe (lock_broken
// also to the broken owner).

/// A drive was locked by a direct acquire.
struct Acquired {
  static constexpr std::string_view kName = "acquired";
  std::string drive;
  OwnerInfo owner;
  friend bool operator==(const Acquired&, const Acquired&) = default;
};

/// A queued waiter got the drive.
struct Granted {
  static constexpr std::string_view kName = "granted";
  std::string drive;
  OwnerInfo owner;
  friend bool operator==(const Granted&, const Granted&) = default;
};

/// The last lock on a drive ended.
struct Released {
  static constexpr std::string_view kName = "released";
  std::string drive;
  std::string client_name;
  std::uint64_t session = 0;
  std::string cause;  // released|session_ended|broken
  friend bool operator==(const Released&, const Released&) = default;
};

/// Who broke a lock (lock_broken's `by`).
struct LockBreaker {
  std::string client_name;
  std::uint64_t session = 0;
  std::uint32_t pid = 0;
  std::string user;
  friend bool operator==(const LockBreaker&, const LockBreaker&) = default;
};

/// An administrator broke a lock.
struct LockBroken {
  static constexpr std::string_view kName = "lock_broken";
  std::string drive;
  LockBreaker by;
  friend bool operator==(const LockBroken&, const LockBroken&) = default;
};

struct DriveArrived {
  static constexpr std::string_view kName = "drive_arrived";
  std::string drive;
  friend bool operator==(const DriveArrived&, const DriveArrived&) = default;
};

struct DriveRemoved {
  static constexpr std::string_view kName = "drive_removed";
  std::string drive;
  std::string reason;
  friend bool operator==(const DriveRemoved&, const DriveRemoved&) = default;
};

/// A drive was marked "error" (e.g. a command timed out).
struct DriveError {
  static constexpr std::string_view kName = "drive_error";
  std::string drive;
  std::string reason;
  friend bool operator==(const DriveError&, const DriveError&) = default;
};

/// A drive in "error" answered TEST UNIT READY again.
struct DriveRecovered {
  static constexpr std::string_view kName = "drive_recovered";
  std::string drive;
  friend bool operator==(const DriveRecovered&, const DriveRecovered&) = default;
};

/// An event this version does not know (a newer service's), as a client
/// reads it: its name and the whole JSON object as text. The service never
/// sends one.
struct UnknownEvent {
  std::string name;
  std::string json;
  friend bool operator==(const UnknownEvent&, const UnknownEvent&) = default;
};

using Event = std::variant<Acquired, Granted, Released, LockBroken, DriveArrived, DriveRemoved,
                           DriveError, DriveRecovered, UnknownEvent>;

/// The wire name of an event ("released", …).
DISCARBITER_API std::string_view event_name(const Event& event);

// ---- helpers shared by both ends --------------------------------------------

DISCARBITER_API std::string to_hex(std::span<const std::uint8_t> bytes);
/// Accepts upper or lower case, with optional spaces between bytes.
DISCARBITER_API std::optional<Bytes> from_hex(std::string_view text);

DISCARBITER_API std::string_view to_string(Direction d);
DISCARBITER_API std::optional<Direction> direction_from_string(std::string_view s);

/// RFC 3339 UTC with milliseconds, e.g. "2026-11-24T10:00:00.125Z".
DISCARBITER_API std::string format_rfc3339(std::chrono::system_clock::time_point t);

}  // namespace discarbiter::proto
