// The frame codec: `u32 LE json_len | u32 LE payload_len | JSON | payload`.
// No I/O: bytes go in with feed(), frames come out of next() (as Beast's
// basic_parser). Limits are checked on the header, before anything the peer
// announced is buffered.
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

  enum class Status { need_more, frame, error };
  struct Output {
    Status status = Status::need_more;
    Frame frame;  // when status == frame
    Error error;  // when status == error
  };

  /// The next complete frame, if the buffered bytes hold one.
  Output next();

  /// Bytes buffered but not yet returned as a frame.
  std::size_t buffered() const noexcept { return buffer_.size() - consumed_; }

  /// How many more bytes the current frame needs, at least (for a reader
  /// that wants to size its next read). Zero when a frame is ready.
  std::size_t bytes_wanted() const noexcept;

 private:
  FrameLimits limits_;
  Bytes buffer_;
  std::size_t consumed_ = 0;
  std::optional<Error> error_;
};

}  // namespace discarbiter::proto
