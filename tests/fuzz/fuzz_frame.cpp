// libFuzzer: the frame decoder (proto/frame.hpp) on arbitrary bytes, fed in
// arbitrary pieces. Input: the first byte picks the piece size (bits 0-5) and
// whether a payload that has begun is read straight into payload_space(), as
// the session does (bit 6); the rest is the stream. Checks: no crash, limits hold (the decoder
// never holds more than one frame within them and a piece: an oversize payload is never buffered),
// an oversize frame comes out as such, and an accepted frame survives an
// encode and decode unchanged. A second decoder reads the same stream with
// set_flat_objects (as the service does): it gives the same frames and
// errors, and each frame it read without nlohmann holds nlohmann's members
// and parses to the same request or error, and to the same reply, event or
// error as the client reads it (proto/flat_reader_check.hpp).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "discarbiter/proto/frame.hpp"
#include "proto/flat_reader_check.hpp"

namespace {

constexpr discarbiter::proto::FrameLimits kLimits{4096, 8192};

void require(bool ok) {
  if (!ok)
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using discarbiter::proto::FrameDecoder;
  if (size == 0)
    return 0;
  const std::size_t piece = static_cast<std::size_t>(data[0] % 64) + 1;
  const bool direct = (data[0] & 0x40) != 0;
  std::span<const std::uint8_t> stream(data + 1, size - 1);
  FrameDecoder decoder(kLimits);
  FrameDecoder flat_decoder(kLimits);
  flat_decoder.set_flat_objects(true);
  std::vector<FrameDecoder::Output> outputs, flat_outputs;
  bool failed = false;
  while (!stream.empty() && !failed) {
    const auto space = direct ? decoder.payload_space() : std::span<std::uint8_t>();
    if (!space.empty()) {
      const auto n = std::min({piece, stream.size(), space.size()});
      std::copy_n(stream.begin(), n, space.begin());
      decoder.payload_filled(n);
      flat_decoder.feed(stream.first(n));
      stream = stream.subspan(n);
    } else {
      const auto n = std::min(piece, stream.size());
      decoder.feed(stream.first(n));
      flat_decoder.feed(stream.first(n));
      stream = stream.subspan(n);
    }
    for (auto out = flat_decoder.next(); out.status != FrameDecoder::Status::need_more;
         out = flat_decoder.next()) {
      const bool error = out.status == FrameDecoder::Status::error;
      flat_outputs.push_back(std::move(out));
      if (error)
        break;
    }
    require(decoder.buffered() <= discarbiter::proto::kFrameHeaderSize + kLimits.max_json_bytes +
                                      kLimits.max_payload_bytes + piece);
    for (;;) {
      auto out = decoder.next();
      if (out.status == FrameDecoder::Status::need_more)
        break;
      outputs.push_back(out);
      if (out.status == FrameDecoder::Status::error) {
        failed = true;
        require(!out.error.message.empty());
        break;
      }
      require(out.frame.json.is_object());
      if (out.status == FrameDecoder::Status::oversize) {
        require(out.error.code == discarbiter::errc::frame_too_large);
        require(out.frame.payload.empty());
        continue;
      }
      require(out.frame.payload.size() <= kLimits.max_payload_bytes);
      // N.B. dump() may be longer than what was sent (1e2 -> 100.0).
      FrameDecoder round_trip({1U << 20, kLimits.max_payload_bytes});
      round_trip.feed(discarbiter::proto::encode_frame(out.frame.json, out.frame.payload));
      auto back = round_trip.next();
      require(back.status == FrameDecoder::Status::frame);
      require(back.frame.json == out.frame.json && back.frame.payload == out.frame.payload);
    }
  }
  // N.B. the flat decoder may have read one frame more: the main one stops
  // feeding when its frame fails, and neither is read past an error.
  require(flat_outputs.size() >= outputs.size());
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    const auto& a = outputs[i];
    const auto& b = flat_outputs[i];
    require(a.status == b.status && a.error.code == b.error.code &&
            a.error.message == b.error.message && a.frame.payload == b.frame.payload);
    require(discarbiter::proto::testing::flat_reader_difference(a.frame, b.frame).empty());
    require(discarbiter::proto::testing::incoming_difference(a.frame, b.frame).empty());
  }
  return 0;
}
