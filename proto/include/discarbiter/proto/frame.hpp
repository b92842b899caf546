// The frame codec: `u32 LE json_len | u32 LE payload_len | JSON | payload`.
// No I/O: bytes go in with feed(), frames come out of next() (as Beast's
// basic_parser). Limits are checked on the header, before anything the peer
// announced is buffered.
//
// A payload over its limit is skipped rather than fatal: the JSON (within its
// own limit) is read, the payload's bytes are dropped as they arrive, never
// buffered, and the frame comes out as `oversize` so that the request can be
// answered and the stream stays in step. A JSON part over its limit, or one
// that does not parse, is fatal: nothing after it can be trusted.
//
//   header ──json_len too large / 0──────────────────────────────► error (final)
//     │ payload_len within limit          │ payload_len over limit
//     ▼                                   ▼
//   JSON + payload buffered ──► frame   JSON buffered ──bad JSON──► error (final)
//                                         │
//                                         ▼
//                                       payload_len bytes dropped ──► oversize
//
// A payload within its limit that has not arrived whole with its JSON goes
// into a buffer of its own, allocated at its announced size once the header
// and JSON are in (never beyond the limit): the rest of it is copied there
// by feed(), or read there directly by a reader that asks payload_space(),
// and that buffer becomes frame.payload by move. An execute's data-out is
// then never copied between the socket and the drive.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "discarbiter/proto/bytes.hpp"
#include "discarbiter/proto/errors.hpp"

namespace discarbiter::proto {

inline constexpr std::size_t kFrameHeaderSize = 8;
inline constexpr std::uint32_t kDefaultMaxJsonBytes = 64 * 1024;
inline constexpr std::uint32_t kDefaultMaxPayloadBytes = 1024 * 1024;

/// A flat JSON object's members, read without an nlohmann tree: a request
/// is one (string, unsigned integer, true/false and null values).
struct FlatObject {
  using Value = std::variant<std::nullptr_t, bool, std::uint64_t, std::string>;
  std::vector<std::pair<std::string, Value>> members;  // in the text's order
  /// The member named `key`, or nullptr.
  const Value* find(std::string_view key) const noexcept;
  /// The same object as an nlohmann tree (what nlohmann reads from the text).
  nlohmann::json tree() const;
};

/// The most members parse_flat_object takes: a request or reply has a few;
/// more (a client may send thousands in one frame) go to nlohmann, whose
/// reading does not grow with their square.
inline constexpr std::size_t kMaxFlatMembers = 32;

/// `text` as a FlatObject; nullopt for whatever this small reader leaves to
/// nlohmann (nesting, negative or fractional numbers, numbers over 64 bits,
/// escapes, bytes outside printable ASCII in strings, duplicate keys, more
/// than kMaxFlatMembers members) and for text that is not JSON. Whatever it takes, nlohmann reads
/// as the same object (frame_test.cpp holds the two to each other).
std::optional<FlatObject> parse_flat_object(std::string_view text);

struct Frame {
  nlohmann::json json;  // an object; null when `flat` holds the members
  Bytes payload;
  /// The JSON part when FrameDecoder::set_flat_objects is on and it is a flat
  /// object (a request): then `json` is not built.
  std::optional<FlatObject> flat{};
};

struct FrameLimits {
  std::uint32_t max_json_bytes = kDefaultMaxJsonBytes;
  std::uint32_t max_payload_bytes = kDefaultMaxPayloadBytes;
};

/// Serializes one frame. The JSON must be an object.
Bytes encode_frame(const nlohmann::json& json, std::span<const std::uint8_t> payload = {});
/// The frame's header and JSON part only, announcing `payload_len` bytes that
/// the caller writes after it from its own buffer (a gather write).
Bytes encode_frame_head(const nlohmann::json& json, std::size_t payload_len);
/// encode_frame_head for a JSON object already written as text (valid UTF-8:
/// the caller's to ensure, as the text writer of messages.cpp does).
Bytes encode_text_frame_head(std::string_view json_text, std::size_t payload_len);

/// A frame on its way out as two parts written by one gather write: the
/// header and JSON part, and the payload the header announces, moved in (an
/// execute's data-in goes from the drive to the socket with no copy).
struct OutgoingFrame {
  /// A whole frame (encode_frame's) with nothing after it.
  OutgoingFrame(Bytes whole_frame) : head(std::move(whole_frame)) {}  // NOLINT(google-explicit-*)
  OutgoingFrame(Bytes frame_head, Bytes frame_payload)
      : head(std::move(frame_head)), payload(std::move(frame_payload)) {}

  std::size_t size() const noexcept { return head.size() + payload.size(); }

  Bytes head;
  Bytes payload;
};
/// encode_frame's twin that takes the payload by move instead of copying it.
OutgoingFrame encode_frame_parts(const nlohmann::json& json, Bytes payload);

class FrameDecoder {
 public:
  explicit FrameDecoder(FrameLimits limits = {}) : limits_(limits) {}

  /// Appends bytes read from the stream. After an error, further input is
  /// ignored: a framing error leaves the stream unsynchronised for good.
  void feed(std::span<const std::uint8_t> bytes);

  /// The unfilled rest of the payload being read (empty when none is): a
  /// reader may read straight into it, then call payload_filled(), instead of
  /// feeding those bytes. Never reaches past the current frame.
  std::span<std::uint8_t> payload_space() noexcept;
  /// `n` bytes (at most payload_space().size()) were written at the start of
  /// payload_space().
  void payload_filled(std::size_t n) noexcept;
  /// Whether a payload's buffer is allocated (at its announced size) once its
  /// frame's header and JSON are in, for payload_space(). Off, a payload is
  /// buffered only as its bytes arrive: a session keeps it off until hello
  /// succeeds, so that an unauthenticated peer cannot make the service hold
  /// a megabyte for a hundred bytes sent. On by default.
  void set_payload_space(bool on) noexcept { payload_space_on_ = on; }
  bool payload_space_on() const noexcept { return payload_space_on_; }
  /// Whether a flat JSON part is read into frame.flat (parse_flat_object)
  /// rather than into an nlohmann tree in frame.json: the service's requests
  /// are, and parse_request reads either. Anything else still goes to
  /// nlohmann, so what is accepted or refused does not change. Off by default.
  void set_flat_objects(bool on) noexcept { flat_objects_ = on; }

  /// `oversize`: a frame whose payload was over max_payload_bytes and was
  /// skipped; `frame.json` is its JSON, `frame.payload` is empty and `error`
  /// (DA_E_FRAME_TOO_LARGE) says why. Decoding goes on after it.
  enum class Status { need_more, frame, oversize, error };
  struct Output {
    Status status = Status::need_more;
    Frame frame;  // when status == frame or oversize
    Error error;  // when status == error or oversize
  };

  /// The next complete frame, if the buffered bytes hold one.
  Output next();

  /// Bytes buffered but not yet returned as a frame. An oversize payload's
  /// bytes never count: they are dropped as they arrive.
  std::size_t buffered() const noexcept { return buffer_.size() - consumed_ + payload_filled_; }

  /// How many more bytes the current frame needs, at least (for a reader
  /// that wants to size its next read). Zero when a frame is ready.
  std::size_t bytes_wanted() const noexcept;

 private:
  /// Drops what is buffered of an oversize payload.
  void skip_buffered() noexcept;
  /// Moves a payload that has begun but not ended into payload_, once its
  /// frame's header and JSON part are buffered.
  void start_payload();

  FrameLimits limits_;
  bool payload_space_on_ = true;
  bool flat_objects_ = false;
  Bytes buffer_;
  std::size_t consumed_ = 0;
  std::optional<Error> error_;
  /// The oversize frame being skipped, returned once its payload has gone.
  std::optional<Output> oversize_;
  std::uint32_t skip_left_ = 0;  // bytes of its payload still to drop
  /// The payload of the frame whose header and JSON are at consumed_, when
  /// it is read into its own buffer (in_payload_), and how much has arrived.
  bool in_payload_ = false;
  Bytes payload_;
  std::size_t payload_filled_ = 0;
};

}  // namespace discarbiter::proto
