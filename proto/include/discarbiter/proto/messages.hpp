// Typed messages of the wire protocol (docs/protocol.md). JSON carries
// control; SCSI data rides in the frame's raw payload.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "discarbiter/proto/errors.hpp"
#include "discarbiter/proto/frame.hpp"
#include "discarbiter/proto/result.hpp"

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

// ---- replies and events -----------------------------------------------------

struct HelloReply {
  std::string server_version;
  int protocol = kProtocolVersion;
  std::vector<std::string> capabilities;
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
};

struct DriveSummary {
  std::string id;
  std::string path;
  std::string backend;
  std::string vendor;
  std::string product;
  std::string revision;
  std::string state;  // free|owned|removed|error
  std::optional<OwnerInfo> owner;
};

struct ExecuteReply {
  std::uint8_t scsi_status = 0;
  Bytes sense;
  std::uint32_t data_len = 0;
};

void to_json(nlohmann::json& j, const HelloReply& v);
void from_json(const nlohmann::json& j, HelloReply& v);
void to_json(nlohmann::json& j, const OwnerInfo& v);
void from_json(const nlohmann::json& j, OwnerInfo& v);
void to_json(nlohmann::json& j, const DriveSummary& v);
void from_json(const nlohmann::json& j, DriveSummary& v);
void to_json(nlohmann::json& j, const ExecuteReply& v);
void from_json(const nlohmann::json& j, ExecuteReply& v);

/// `{"id": id, "ok": true, …fields}`; fields must be an object or null.
nlohmann::json make_reply(std::uint64_t id, nlohmann::json fields = nullptr);
/// `{"id": id|null, "ok": false, "error": {"code", "name", "message"}}`.
nlohmann::json make_error_reply(std::optional<std::uint64_t> id, const Error& error);
/// `{"event": name, …fields}`.
nlohmann::json make_event(std::string_view name, nlohmann::json fields = nullptr);

/// What a client reads: a reply to one of its requests, or an event.
struct Reply {
  std::optional<std::uint64_t> id;
  std::optional<Error> error;  // set when ok is false
  nlohmann::json body;         // the whole JSON object
  Bytes payload;
};
struct Event {
  std::string name;
  nlohmann::json body;
};
using Incoming = std::variant<Reply, Event>;
Result<Incoming> parse_incoming(Frame frame);

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
