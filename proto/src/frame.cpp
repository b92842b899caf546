#include "discarbiter/proto/frame.hpp"

#include <algorithm>
#include <utility>

#include <fmt/format.h>

namespace discarbiter::proto {
namespace {

void put_u32_le(Bytes& out, std::uint32_t v) {
  for (int shift = 0; shift < 32; shift += 8) {
    out.push_back(static_cast<std::uint8_t>(v >> shift));
  }
}

std::uint32_t get_u32_le(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
         (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}

struct Header {
  std::uint32_t json_len;
  std::uint32_t payload_len;
};

}  // namespace

Bytes encode_frame(const nlohmann::json& json, std::span<const std::uint8_t> payload) {
  // N.B. replace invalid UTF-8 rather than throw: a drive's INQUIRY strings
  // are not ours to trust.
  const std::string text = json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  Bytes out;
  out.reserve(kFrameHeaderSize + text.size() + payload.size());
  put_u32_le(out, static_cast<std::uint32_t>(text.size()));
  put_u32_le(out, static_cast<std::uint32_t>(payload.size()));
  out.insert(out.end(), text.begin(), text.end());
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

void FrameDecoder::feed(std::span<const std::uint8_t> bytes) {
  if (error_) {
    return;
  }
  // N.B. an oversize payload's bytes are dropped here, before they reach the
  // buffer: a peer announcing 4 GiB costs no memory.
  if (skip_left_ > 0) {
    skip_buffered();
    const std::size_t dropped = std::min<std::size_t>(skip_left_, bytes.size());
    skip_left_ -= static_cast<std::uint32_t>(dropped);
    bytes = bytes.subspan(dropped);
  }
  // Compact before growing so the buffer never holds more than one frame
  // plus one read's worth of bytes.
  if (consumed_ > 0 && consumed_ == buffer_.size()) {
    buffer_.clear();
    consumed_ = 0;
  } else if (consumed_ > buffer_.size() / 2) {
    buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(consumed_));
    consumed_ = 0;
  }
  buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
}

void FrameDecoder::skip_buffered() noexcept {
  const std::size_t dropped = std::min<std::size_t>(skip_left_, buffered());
  consumed_ += dropped;
  skip_left_ -= static_cast<std::uint32_t>(dropped);
}

std::size_t FrameDecoder::bytes_wanted() const noexcept {
  if (error_) {
    return 0;
  }
  if (oversize_) {
    return skip_left_;
  }
  const std::size_t have = buffered();
  if (have < kFrameHeaderSize) {
    return kFrameHeaderSize - have;
  }
  const auto* p = buffer_.data() + consumed_;
  const Header header{get_u32_le(p), get_u32_le(p + 4)};
  // An oversize payload is not buffered: only its JSON is wanted first.
  const std::size_t payload =
      header.payload_len > limits_.max_payload_bytes ? 0 : std::size_t{header.payload_len};
  const std::size_t total = kFrameHeaderSize + std::size_t{header.json_len} + payload;
  return total > have ? total - have : 0;
}

FrameDecoder::Output FrameDecoder::next() {
  auto fail = [this](errc code, std::string message) {
    error_ = Error{code, std::move(message)};
    return Output{Status::error, {}, *error_};
  };
  if (error_) {
    return Output{Status::error, {}, *error_};
  }
  if (oversize_) {
    skip_buffered();
    if (skip_left_ > 0) {
      return {};
    }
    return *std::exchange(oversize_, std::nullopt);
  }
  if (buffered() < kFrameHeaderSize) {
    return {};
  }
  const std::uint8_t* p = buffer_.data() + consumed_;
  const Header header{get_u32_le(p), get_u32_le(p + 4)};
  if (header.json_len > limits_.max_json_bytes) {
    return fail(errc::frame_too_large, fmt::format("JSON part of {} bytes exceeds the limit of {}",
                                                   header.json_len, limits_.max_json_bytes));
  }
  if (header.json_len == 0) {
    return fail(errc::bad_frame, "frame has an empty JSON part");
  }
  const bool oversize = header.payload_len > limits_.max_payload_bytes;
  // N.B. an oversize payload is never waited for: it is skipped below.
  const std::size_t needed = kFrameHeaderSize + std::size_t{header.json_len} +
                             (oversize ? 0 : std::size_t{header.payload_len});
  if (buffered() < needed) {
    return {};
  }
  const auto* json_begin = reinterpret_cast<const char*>(p + kFrameHeaderSize);
  Output out{oversize ? Status::oversize : Status::frame, {}, {}};
  out.frame.json = nlohmann::json::parse(json_begin, json_begin + header.json_len, nullptr,
                                         /*allow_exceptions=*/false);
  if (out.frame.json.is_discarded()) {
    return fail(errc::bad_frame, "frame's JSON part does not parse");
  }
  if (!out.frame.json.is_object()) {
    return fail(errc::bad_frame, "frame's JSON part is not an object");
  }
  consumed_ += needed;
  if (oversize) {
    out.error =
        Error{errc::frame_too_large, fmt::format("payload of {} bytes is over the limit of {}",
                                                 header.payload_len, limits_.max_payload_bytes)};
    oversize_ = std::move(out);
    skip_left_ = header.payload_len;
    return next();
  }
  const std::uint8_t* payload_begin = p + kFrameHeaderSize + header.json_len;
  out.frame.payload.assign(payload_begin, payload_begin + header.payload_len);
  return out;
}

}  // namespace discarbiter::proto
