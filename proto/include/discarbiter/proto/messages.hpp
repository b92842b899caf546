// Typed messages of the wire protocol (docs/protocol.md): every request,
// reply, event and the status document is a struct here, and its JSON is
// written and read only by the to_json/from_json declared next to it
// (messages.cpp names each key once, for both). So the service encodes and
// the client decodes through the same code: a renamed member is a compile
// error on both sides, a renamed key changes both together. JSON carries
// control; SCSI data rides in the frame's raw payload.
//
// Only nlohmann's forward declarations here: the core names these types
// without pulling in the JSON library (incoming.hpp and frame.hpp do).
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

#include <nlohmann/json_fwd.hpp>

#include "discarbiter/proto/bytes.hpp"
#include "discarbiter/proto/errors.hpp"
#include "discarbiter/proto/result.hpp"

namespace discarbiter::proto {

struct Frame;  // frame.hpp

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
std::string_view op_name(const RequestBody& body);

/// A request as parsed: the id (when the frame had a usable one, so an error
/// reply can echo it) and the body or the error naming the bad field.
struct ParsedRequest {
  std::optional<std::uint64_t> id;
  Result<RequestBody> body;
};
ParsedRequest parse_request(Frame frame);

/// The frame a client sends for a request.
Bytes encode_request(const Request& request);

// ---- replies ----------------------------------------------------------------
// Each reply is the fields of `{"id": …, "ok": true, …}` besides id and ok.

struct HelloReply {
  std::string server_version;
  int protocol = kProtocolVersion;
  std::vector<std::string> capabilities;
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
std::string_view event_name(const Event& event);

// ---- JSON, each message's one reader and writer -------------------------------

#define DISCARBITER_PROTO_JSON(Type)              \
  void to_json(nlohmann::json& j, const Type& v); \
  void from_json(const nlohmann::json& j, Type& v)
DISCARBITER_PROTO_JSON(HelloReply);
DISCARBITER_PROTO_JSON(OwnerInfo);
DISCARBITER_PROTO_JSON(DriveSummary);
DISCARBITER_PROTO_JSON(DrivesReply);
DISCARBITER_PROTO_JSON(AcquireReply);
DISCARBITER_PROTO_JSON(ReleaseReply);
DISCARBITER_PROTO_JSON(OwnerReply);
DISCARBITER_PROTO_JSON(ExecuteReply);
DISCARBITER_PROTO_JSON(SubscribeReply);
DISCARBITER_PROTO_JSON(BreakReply);
DISCARBITER_PROTO_JSON(WaiterStatus);
DISCARBITER_PROTO_JSON(DriveStats);
DISCARBITER_PROTO_JSON(DriveStatus);
DISCARBITER_PROTO_JSON(ClientStatus);
DISCARBITER_PROTO_JSON(ArbitrationStatus);
DISCARBITER_PROTO_JSON(ServiceInfo);
DISCARBITER_PROTO_JSON(StatusDocument);
DISCARBITER_PROTO_JSON(StatusReply);
DISCARBITER_PROTO_JSON(Acquired);
DISCARBITER_PROTO_JSON(Granted);
DISCARBITER_PROTO_JSON(Released);
DISCARBITER_PROTO_JSON(LockBreaker);
DISCARBITER_PROTO_JSON(LockBroken);
DISCARBITER_PROTO_JSON(DriveArrived);
DISCARBITER_PROTO_JSON(DriveRemoved);
DISCARBITER_PROTO_JSON(DriveError);
DISCARBITER_PROTO_JSON(DriveRecovered);
DISCARBITER_PROTO_JSON(UnknownEvent);
/// Reads any event: by its "event" name, an UnknownEvent for a name this
/// version does not know. Throws (nlohmann's exceptions) on a known event
/// with a missing or ill-typed field.
DISCARBITER_PROTO_JSON(Event);
#undef DISCARBITER_PROTO_JSON
/// Writes the reply's fields (no id, no ok); reading needs the request's type.
void to_json(nlohmann::json& j, const ReplyBody& v);

// ---- frames the service sends -------------------------------------------------

/// `{"id": id, "ok": true, …body}` with `payload` after it.
Bytes encode_reply(std::uint64_t id, const ReplyBody& body,
                   std::span<const std::uint8_t> payload = {});
/// `{"id": id|null, "ok": false, "error": {"code", "name", "message"}}`.
nlohmann::json make_error_reply(std::optional<std::uint64_t> id, const Error& error);
/// make_error_reply as a frame.
Bytes encode_error_reply(std::optional<std::uint64_t> id, const Error& error);
/// `{"event": name, …fields}`.
Bytes encode_event(const Event& event);

// ---- helpers shared by both ends --------------------------------------------

/// A JSON number that is a non-negative integer (nlohmann keeps integers
/// built in C++ as signed, those parsed from text as unsigned).
std::optional<std::uint64_t> as_unsigned(const nlohmann::json& j);

std::string to_hex(std::span<const std::uint8_t> bytes);
/// Accepts upper or lower case, with optional spaces between bytes.
std::optional<Bytes> from_hex(std::string_view text);

std::string_view to_string(Direction d);
std::optional<Direction> direction_from_string(std::string_view s);

/// RFC 3339 UTC with milliseconds, e.g. "2026-11-24T10:00:00.125Z".
std::string format_rfc3339(std::chrono::system_clock::time_point t);

}  // namespace discarbiter::proto
