#include "discarbiter/proto/frame.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <string>
#include <utility>

#include <fmt/format.h>

namespace discarbiter::proto {
namespace {

void put_u32_le(std::uint8_t* out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) {
    out[i] = static_cast<std::uint8_t>(v >> (8 * i));
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

/// Reads a flat object from the text, the cursor moving along it; each
/// reader returns nullopt where the text leaves what it takes.
class FlatReader {
 public:
  explicit FlatReader(std::string_view text) : text_(text) {}

  std::optional<FlatObject> object() {
    FlatObject out;
    if (!take('{')) {
      return std::nullopt;
    }
    if (!take('}')) {
      do {
        // N.B. bounded: the duplicate check scans the members read so far.
        if (out.members.size() == kMaxFlatMembers) {
          return std::nullopt;
        }
        auto key = take('"') ? string_body() : std::nullopt;
        if (!key || out.find(*key) || !take(':')) {
          return std::nullopt;
        }
        auto v = value();
        if (!v) {
          return std::nullopt;
        }
        out.members.emplace_back(std::string(*key), std::move(*v));
      } while (take(','));
      if (!take('}')) {
        return std::nullopt;
      }
    }
    skip_space();
    if (at_ != text_.size()) {
      return std::nullopt;
    }
    return out;
  }

 private:
  void skip_space() {
    while (at_ < text_.size() &&
           (text_[at_] == ' ' || text_[at_] == '\t' || text_[at_] == '\n' || text_[at_] == '\r')) {
      ++at_;
    }
  }

  bool take(char c) {
    skip_space();
    if (at_ < text_.size() && text_[at_] == c) {
      ++at_;
      return true;
    }
    return false;
  }

  bool take(std::string_view word) {
    if (text_.substr(at_).starts_with(word)) {
      at_ += word.size();
      return true;
    }
    return false;
  }

  /// A string's text after its opening quote: printable ASCII, no escapes.
  std::optional<std::string_view> string_body() {
    for (std::size_t begin = at_; at_ < text_.size(); ++at_) {
      const char c = text_[at_];
      if (c == '"') {
        return text_.substr(begin, at_++ - begin);
      }
      if (c < 0x20 || c > 0x7E || c == '\\') {
        return std::nullopt;
      }
    }
    return std::nullopt;
  }

  std::optional<FlatObject::Value> value() {
    skip_space();
    if (take('"')) {
      auto s = string_body();
      return s ? std::optional<FlatObject::Value>(std::string(*s)) : std::nullopt;
    }
    if (take("true")) {
      return true;
    }
    if (take("false")) {
      return false;
    }
    if (take("null")) {
      return nullptr;
    }
    const char* begin = text_.data() + at_;
    const char* end = text_.data() + text_.size();
    std::uint64_t n = 0;
    const auto [last, ec] = std::from_chars(begin, end, n);
    // N.B. "01" is not JSON; "1.5", "1e3" and "-1" are nlohmann's.
    if (ec != std::errc() || (*begin == '0' && last - begin > 1) ||
        (last != end && (*last == '.' || *last == 'e' || *last == 'E'))) {
      return std::nullopt;
    }
    at_ += static_cast<std::size_t>(last - begin);
    return n;
  }

  std::string_view text_;
  std::size_t at_ = 0;
};

}  // namespace

const FlatObject::Value* FlatObject::find(std::string_view key) const noexcept {
  const auto it = std::ranges::find(members, key, &std::pair<std::string, Value>::first);
  return it == members.end() ? nullptr : &it->second;
}

nlohmann::json FlatObject::tree() const {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [key, value] : members) {
    out[key] = std::visit([](const auto& v) { return nlohmann::json(v); }, value);
  }
  return out;
}

std::optional<FlatObject> parse_flat_object(std::string_view text) {
  return FlatReader(text).object();
}

Bytes encode_frame_head(const nlohmann::json& json, std::size_t payload_len) {
  // N.B. replace invalid UTF-8 rather than throw: a drive's INQUIRY strings
  // are not ours to trust.
  return encode_text_frame_head(json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                                payload_len);
}

Bytes encode_text_frame_head(std::string_view json_text, std::size_t payload_len) {
  Bytes out(kFrameHeaderSize + json_text.size());
  put_u32_le(out.data(), static_cast<std::uint32_t>(json_text.size()));
  put_u32_le(out.data() + 4, static_cast<std::uint32_t>(payload_len));
  // N.B. memcpy: inserting chars into a vector of bytes goes a byte at a time.
  std::memcpy(out.data() + kFrameHeaderSize, json_text.data(), json_text.size());
  return out;
}

Bytes encode_frame(const nlohmann::json& json, std::span<const std::uint8_t> payload) {
  Bytes out = encode_frame_head(json, payload.size());
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

OutgoingFrame encode_frame_parts(const nlohmann::json& json, Bytes payload) {
  Bytes head = encode_frame_head(json, payload.size());
  return {std::move(head), std::move(payload)};
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
  if (const auto space = payload_space(); !space.empty()) {
    const std::size_t n = std::min(space.size(), bytes.size());
    std::copy_n(bytes.begin(), n, space.begin());
    payload_filled(n);
    bytes = bytes.subspan(n);
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
  start_payload();
}

std::span<std::uint8_t> FrameDecoder::payload_space() noexcept {
  if (!in_payload_ || error_) {
    return {};
  }
  return std::span(payload_).subspan(payload_filled_);
}

void FrameDecoder::payload_filled(std::size_t n) noexcept {
  payload_filled_ += std::min(n, payload_.size() - payload_filled_);
}

void FrameDecoder::start_payload() {
  if (!payload_space_on_ || error_ || oversize_ || in_payload_ ||
      buffer_.size() - consumed_ < kFrameHeaderSize) {
    return;
  }
  const std::uint8_t* p = buffer_.data() + consumed_;
  const Header header{get_u32_le(p), get_u32_le(p + 4)};
  // N.B. a bad or oversize header is next()'s to report or skip; a frame
  // already buffered whole is cut out by next() with one copy.
  if (header.json_len == 0 || header.json_len > limits_.max_json_bytes || header.payload_len == 0 ||
      header.payload_len > limits_.max_payload_bytes) {
    return;
  }
  const std::size_t head = kFrameHeaderSize + std::size_t{header.json_len};
  const std::size_t have = buffer_.size() - consumed_;
  if (have < head || have >= head + header.payload_len) {
    return;
  }
  // Everything buffered after the JSON part is this payload's start.
  payload_.resize(header.payload_len);
  std::copy(buffer_.begin() + static_cast<std::ptrdiff_t>(consumed_ + head), buffer_.end(),
            payload_.begin());
  payload_filled_ = have - head;
  buffer_.resize(consumed_ + head);
  in_payload_ = true;
}

void FrameDecoder::skip_buffered() noexcept {
  const std::size_t dropped = std::min<std::size_t>(skip_left_, buffer_.size() - consumed_);
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
  if (in_payload_) {
    return payload_.size() - payload_filled_;
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
    payload_ = Bytes();
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
  if (buffer_.size() - consumed_ < kFrameHeaderSize) {
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
  // N.B. an oversize payload is never waited for: it is skipped below; one
  // in payload_ is not in buffer_.
  const std::size_t needed = kFrameHeaderSize + std::size_t{header.json_len} +
                             (oversize || in_payload_ ? 0 : std::size_t{header.payload_len});
  if (buffer_.size() - consumed_ < needed || payload_filled_ < payload_.size()) {
    start_payload();
    return {};
  }
  const auto* json_begin = reinterpret_cast<const char*>(p + kFrameHeaderSize);
  Output out{oversize ? Status::oversize : Status::frame, {}, {}};
  if (flat_objects_) {
    out.frame.flat = parse_flat_object(std::string_view(json_begin, header.json_len));
  }
  if (!out.frame.flat) {
    out.frame.json = nlohmann::json::parse(json_begin, json_begin + header.json_len, nullptr,
                                           /*allow_exceptions=*/false);
    if (out.frame.json.is_discarded()) {
      return fail(errc::bad_frame, "frame's JSON part does not parse");
    }
    if (!out.frame.json.is_object()) {
      return fail(errc::bad_frame, "frame's JSON part is not an object");
    }
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
  if (in_payload_) {
    out.frame.payload = std::exchange(payload_, Bytes());
    payload_filled_ = 0;
    in_payload_ = false;
    return out;
  }
  const std::uint8_t* payload_begin = p + kFrameHeaderSize + header.json_len;
  out.frame.payload.assign(payload_begin, payload_begin + header.payload_len);
  return out;
}

}  // namespace discarbiter::proto
