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
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

#include "discarbiter/proto/bytes.hpp"
#include "discarbiter/proto/errors.hpp"

namespace discarbiter::proto {

inline constexpr std::size_t kFrameHeaderSize = 8;
inline constexpr std::uint32_t kDefaultMaxJsonBytes = 64 * 1024;
inline constexpr std::uint32_t kDefaultMaxPayloadBytes = 1024 * 1024;

struct Frame {
  nlohmann::json json;  // always an object
  Bytes payload;
};

struct FrameLimits {
  std::uint32_t max_json_bytes = kDefaultMaxJsonBytes;
  std::uint32_t max_payload_bytes = kDefaultMaxPayloadBytes;
};

/// Serializes one frame. The JSON must be an object.
Bytes encode_frame(const nlohmann::json& json, std::span<const std::uint8_t> payload = {});

class FrameDecoder {
 public:
  explicit FrameDecoder(FrameLimits limits = {}) : limits_(limits) {}

  /// Appends bytes read from the stream. After an error, further input is
  /// ignored: a framing error leaves the stream unsynchronised for good.
  void feed(std::span<const std::uint8_t> bytes);

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
  std::size_t buffered() const noexcept { return buffer_.size() - consumed_; }

  /// How many more bytes the current frame needs, at least (for a reader
  /// that wants to size its next read). Zero when a frame is ready.
  std::size_t bytes_wanted() const noexcept;

 private:
  /// Drops what is buffered of an oversize payload.
  void skip_buffered() noexcept;

  FrameLimits limits_;
  Bytes buffer_;
  std::size_t consumed_ = 0;
  std::optional<Error> error_;
  /// The oversize frame being skipped, returned once its payload has gone.
  std::optional<Output> oversize_;
  std::uint32_t skip_left_ = 0;  // bytes of its payload still to drop
};

}  // namespace discarbiter::proto
