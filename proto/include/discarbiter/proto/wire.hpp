// How the messages of messages.hpp travel: each one's JSON reader and writer,
// the request parser and the frames each end sends. Internal to the service
// and the client library (not installed): the SDK's headers name no JSON
// type.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "discarbiter/proto/messages.hpp"
#include "discarbiter/proto/result.hpp"

namespace discarbiter::proto {

struct Frame;          // frame.hpp
struct OutgoingFrame;  // frame.hpp

// ---- requests ----------------------------------------------------------------

/// A request as parsed: the id (when the frame had a usable one, so an error
/// reply can echo it) and the body or the error naming the bad field.
struct ParsedRequest {
  std::optional<std::uint64_t> id;
  Result<RequestBody> body;
};
ParsedRequest parse_request(Frame frame);

/// The frame a client sends for a request.
Bytes encode_request(const Request& request);
/// The frame's header and JSON part only, announcing a payload of
/// `payload_len` bytes that the caller writes after it from its own buffer
/// (an ExecuteRequest's data_out is not read): the client's gather write.
Bytes encode_request_head(const Request& request, std::size_t payload_len);

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
/// The same frame as two parts, `payload` moved in: what the service sends
/// (an execute's data-in is never copied into a frame).
OutgoingFrame encode_reply_parts(std::uint64_t id, const ReplyBody& body, Bytes payload);
/// The status document's JSON text, written from the structs without an
/// nlohmann tree: the bytes encode_reply writes for it (the large reply, a line
/// per session, written once for every request it answers).
std::string status_json(const StatusDocument& status);
/// The same text from the service's snapshot, whose client entries are
/// shared (each is made again only when its session changes, so that taking
/// a snapshot copies a pointer per session).
std::string status_json(std::span<const DriveStatus> drives,
                        std::span<const std::shared_ptr<const ClientStatus>> clients,
                        const ServiceInfo& service);
/// encode_reply(id, StatusReply{…}) around status_json's text.
Bytes encode_status_reply(std::uint64_t id, std::string_view status_json);
/// `{"id": id|null, "ok": false, "error": {"code", "name", "message"}}`.
nlohmann::json make_error_reply(std::optional<std::uint64_t> id, const Error& error);
/// make_error_reply as a frame.
Bytes encode_error_reply(std::optional<std::uint64_t> id, const Error& error);
/// `{"event": name, …fields}`.
Bytes encode_event(const Event& event);

/// A JSON number that is a non-negative integer (nlohmann keeps integers
/// built in C++ as signed, those parsed from text as unsigned).
std::optional<std::uint64_t> as_unsigned(const nlohmann::json& j);

}  // namespace discarbiter::proto
