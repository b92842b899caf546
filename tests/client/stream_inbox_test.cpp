#include "stream_inbox.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#include "discarbiter/proto/frame.hpp"

// The client's read side (client-lib/src/stream_inbox.hpp) over a scripted
// stream that records each read: how many reads a reply takes, and where a
// large payload's bytes are read to.
namespace discarbiter {
namespace {

using namespace std::chrono_literals;

/// A stream whose bytes are all there from the start, at most `max_read`
/// per read; a read with nothing left is a deadline passed (0).
class ScriptedConnection final : public Connection {
 public:
  struct Read {
    const std::uint8_t* into;
    std::size_t size;
  };

  explicit ScriptedConnection(std::vector<std::uint8_t> bytes, std::size_t max_read = 1 << 30)
      : bytes_(std::move(bytes)), max_read_(max_read) {}

  void write_all(Buffers, Deadline) override {}
  void shutdown() noexcept override {}
  std::size_t read_some(std::span<std::uint8_t> buffer, Deadline) override {
    reads.push_back({buffer.data(), buffer.size()});
    const std::size_t n = std::min({buffer.size(), bytes_.size() - at_, max_read_});
    std::copy_n(bytes_.begin() + static_cast<std::ptrdiff_t>(at_), n, buffer.begin());
    at_ += n;
    return n;
  }

  std::vector<Read> reads;

 private:
  std::vector<std::uint8_t> bytes_;
  std::size_t at_ = 0;
  std::size_t max_read_;
};

const auto kDeadline = std::chrono::steady_clock::now() + 10s;

std::vector<std::uint8_t> pattern(std::size_t size) {
  std::vector<std::uint8_t> out(size);
  for (std::size_t i = 0; i < size; ++i)
    out[i] = static_cast<std::uint8_t>(i * 7 + 3);
  return out;
}

/// Reads one frame as the client does: header, JSON part, payload.
struct Parts {
  std::vector<std::uint8_t> header = std::vector<std::uint8_t>(proto::kFrameHeaderSize);
  std::vector<std::uint8_t> json;
  std::vector<std::uint8_t> payload;
};
Parts read_frame(StreamInbox& inbox, Connection& c, std::size_t json_len, std::size_t payload_len) {
  Parts p;
  p.json.resize(json_len);
  p.payload.resize(payload_len);
  EXPECT_TRUE(inbox.wait_for_bytes(c, kDeadline));
  EXPECT_TRUE(inbox.read_exact(c, p.header, kDeadline));
  EXPECT_TRUE(inbox.read_exact(c, p.json, kDeadline));
  EXPECT_TRUE(inbox.read_exact(c, p.payload, kDeadline));
  return p;
}

TEST(StreamInbox, AReplyWithALargePayloadTakesTwoReadsTheSecondStraightIntoTheCallersBuffer) {
  const auto data = pattern(64 * 1024);
  const auto frame = proto::encode_frame({{"id", 1}, {"ok", true}}, data);
  const std::size_t head = frame.size() - data.size();
  ScriptedConnection c(frame);
  StreamInbox inbox;
  const Parts p = read_frame(inbox, c, head - proto::kFrameHeaderSize, data.size());
  EXPECT_EQ(p.payload, data);
  ASSERT_EQ(c.reads.size(), 2U) << "header, JSON and the payload's start in one read";
  EXPECT_EQ(c.reads[0].size, StreamInbox::kInboxBytes);
  const std::size_t copied = StreamInbox::kInboxBytes - head;
  EXPECT_EQ(c.reads[1].into, p.payload.data() + copied)
      << "the rest, read into the caller's buffer";
  EXPECT_EQ(c.reads[1].size, data.size() - copied);
}

TEST(StreamInbox, SmallFramesThatArriveTogetherAreReadInOneRead) {
  auto stream = proto::encode_frame({{"id", 1}, {"ok", true}});
  const auto event = proto::encode_frame({{"event", "lock_broken"}}, pattern(10));
  const std::size_t first_json = stream.size() - proto::kFrameHeaderSize;
  const std::size_t second_json = event.size() - 10 - proto::kFrameHeaderSize;
  stream.insert(stream.end(), event.begin(), event.end());
  ScriptedConnection c(stream);
  StreamInbox inbox;
  (void)read_frame(inbox, c, first_json, 0);
  EXPECT_EQ(read_frame(inbox, c, second_json, 10).payload, pattern(10));
  EXPECT_EQ(c.reads.size(), 1U);
  EXPECT_EQ(inbox.buffered(), 0U);
  EXPECT_FALSE(inbox.wait_for_bytes(c, kDeadline)) << "nothing more: the deadline passes";
}

TEST(StreamInbox, AFrameThatTrickles) {
  // Every part split across reads, and a payload just under and one over
  // the inbox's size.
  for (const std::size_t size : {StreamInbox::kInboxBytes - 1, StreamInbox::kInboxBytes + 1}) {
    const auto data = pattern(size);
    const auto frame = proto::encode_frame({{"id", 2}, {"ok", true}}, data);
    ScriptedConnection c(frame, 7);
    StreamInbox inbox;
    const Parts p =
        read_frame(inbox, c, frame.size() - size - proto::kFrameHeaderSize, data.size());
    EXPECT_EQ(p.payload, data) << size;
    std::vector<std::uint8_t> whole(p.header);
    whole.insert(whole.end(), p.json.begin(), p.json.end());
    whole.insert(whole.end(), p.payload.begin(), p.payload.end());
    EXPECT_EQ(whole, frame);
    std::vector<std::uint8_t> one(1);
    EXPECT_FALSE(inbox.read_exact(c, one, kDeadline)) << "the stream has ended";
  }
}

}  // namespace
}  // namespace discarbiter
