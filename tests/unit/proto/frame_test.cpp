#include "discarbiter/proto/frame.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace discarbiter::proto {
namespace {

using Status = FrameDecoder::Status;

Bytes header(std::uint32_t json_len, std::uint32_t payload_len) {
  Bytes b;
  for (auto v : {json_len, payload_len}) {
    for (int s = 0; s < 32; s += 8)
      b.push_back(static_cast<std::uint8_t>(v >> s));
  }
  return b;
}

Bytes raw_frame(std::string_view json, Bytes payload = {}) {
  Bytes b =
      header(static_cast<std::uint32_t>(json.size()), static_cast<std::uint32_t>(payload.size()));
  b.insert(b.end(), json.begin(), json.end());
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

TEST(Frame, EncodesLittleEndianLengthsThenJsonThenPayload) {
  const Bytes payload{1, 2, 3};
  const Bytes f = encode_frame({{"a", 1}}, payload);
  ASSERT_EQ(f.size(), 8 + 7 + 3U);
  EXPECT_EQ(f[0], 7);  // {"a":1}
  EXPECT_EQ(f[4], 3);
  EXPECT_EQ(std::string(f.begin() + 8, f.begin() + 15), R"({"a":1})");
  EXPECT_EQ(Bytes(f.end() - 3, f.end()), payload);
}

TEST(Frame, DecodesAFrameFedOneByteAtATime) {
  const Bytes f = encode_frame({{"id", 7}, {"op", "status"}}, Bytes{9, 8});
  FrameDecoder d;
  for (std::size_t i = 0; i + 1 < f.size(); ++i) {
    d.feed({&f[i], 1});
    ASSERT_EQ(d.next().status, Status::need_more) << "byte " << i;
  }
  d.feed({&f.back(), 1});
  auto out = d.next();
  ASSERT_EQ(out.status, Status::frame);
  EXPECT_EQ(out.frame.json["id"], 7);
  EXPECT_EQ(out.frame.payload, (Bytes{9, 8}));
  EXPECT_EQ(d.next().status, Status::need_more);
  EXPECT_EQ(d.buffered(), 0U);
}

TEST(Frame, DecodesTwoFramesFromOneRead) {
  Bytes both = encode_frame({{"n", 1}});
  const Bytes second = encode_frame({{"n", 2}});
  both.insert(both.end(), second.begin(), second.end());
  FrameDecoder d;
  d.feed(both);
  EXPECT_EQ(d.next().frame.json["n"], 1);
  EXPECT_EQ(d.next().frame.json["n"], 2);
  EXPECT_EQ(d.next().status, Status::need_more);
}

TEST(Frame, TruncatedFrameNeedsMore) {
  const Bytes f = encode_frame({{"id", 1}});
  FrameDecoder d;
  d.feed({f.data(), f.size() - 1});
  EXPECT_EQ(d.next().status, Status::need_more);
  EXPECT_EQ(d.bytes_wanted(), 1U);
}

TEST(Frame, OversizeJsonIsRefusedOnTheHeaderAlone) {
  FrameDecoder d(FrameLimits{100, 1000});
  d.feed(header(101, 0));  // nothing of the announced body has arrived
  const auto out = d.next();
  ASSERT_EQ(out.status, Status::error);
  EXPECT_EQ(out.error.code, errc::frame_too_large);
  EXPECT_NE(out.error.message.find("101"), std::string::npos);
}

// ---- a payload read into its own buffer -----------------------------------------

TEST(Frame, APayloadReadIntoPayloadSpaceIsTheFramesPayloadWithNoCopy) {
  Bytes payload(5000);
  for (std::size_t i = 0; i < payload.size(); ++i)
    payload[i] = static_cast<std::uint8_t>(i);
  const Bytes f = encode_frame({{"id", 1}}, payload);
  Bytes next_frame = encode_frame({{"id", 2}});
  FrameDecoder d;
  EXPECT_TRUE(d.payload_space().empty()) << "no frame begun";
  const std::size_t head = f.size() - payload.size();
  d.feed({f.data(), head + 10});  // the head and the payload's first 10 bytes
  ASSERT_EQ(d.next().status, Status::need_more);
  auto space = d.payload_space();
  ASSERT_EQ(space.size(), payload.size() - 10) << "exactly the payload's rest, never beyond";
  EXPECT_EQ(d.bytes_wanted(), space.size());
  const std::uint8_t* read_into = space.data() - 10;
  // Two reads into it, as a reader would do.
  std::copy_n(f.begin() + static_cast<std::ptrdiff_t>(head + 10), 1000, space.begin());
  d.payload_filled(1000);
  ASSERT_EQ(d.next().status, Status::need_more);
  space = d.payload_space();
  ASSERT_EQ(space.size(), payload.size() - 1010);
  std::copy(f.begin() + static_cast<std::ptrdiff_t>(head + 1010), f.end(), space.begin());
  d.payload_filled(space.size());
  EXPECT_TRUE(d.payload_space().empty());
  d.feed(next_frame);  // what follows goes to the decoder's own buffer
  auto out = d.next();
  ASSERT_EQ(out.status, Status::frame);
  EXPECT_EQ(out.frame.json["id"], 1);
  EXPECT_EQ(out.frame.payload, payload);
  EXPECT_EQ(out.frame.payload.data(), read_into) << "the buffer read into, moved out";
  out = d.next();
  ASSERT_EQ(out.status, Status::frame);
  EXPECT_EQ(out.frame.json["id"], 2);
  EXPECT_EQ(d.buffered(), 0U);
}

TEST(Frame, WithPayloadSpaceOffAnAnnouncedPayloadCostsOnlyTheBytesThatCame) {
  const Bytes payload(1024 * 1024, 0x33);
  const Bytes f = encode_frame({{"id", 1}}, payload);
  const std::size_t head = f.size() - payload.size();
  FrameDecoder d;
  d.set_payload_space(false);  // a session before hello
  d.feed({f.data(), head + 10});
  ASSERT_EQ(d.next().status, Status::need_more);
  EXPECT_TRUE(d.payload_space().empty()) << "no buffer of the announced megabyte";
  EXPECT_EQ(d.buffered(), head + 10);
  // Hello succeeded: the rest of a payload begun is read into its own buffer.
  d.set_payload_space(true);
  d.feed({f.data() + head + 10, 10});
  EXPECT_EQ(d.payload_space().size(), payload.size() - 20);
  d.feed({f.data() + head + 20, payload.size() - 20});
  auto out = d.next();
  ASSERT_EQ(out.status, Status::frame);
  EXPECT_EQ(out.frame.payload, payload);
}

TEST(Frame, AFeedThatEndsAPayloadCarriesTheNextFrameOn) {
  const Bytes payload(300, 0x11);
  Bytes stream = encode_frame({{"id", 1}}, payload);
  const Bytes second = encode_frame({{"id", 2}}, Bytes{4, 5});
  stream.insert(stream.end(), second.begin(), second.end());
  FrameDecoder d;
  d.feed({stream.data(), 20});  // the head (8 + 8) and 4 payload bytes
  EXPECT_EQ(d.payload_space().size(), 296U);
  d.feed({stream.data() + 20, stream.size() - 20});
  auto out = d.next();
  ASSERT_EQ(out.status, Status::frame);
  EXPECT_EQ(out.frame.payload, payload);
  out = d.next();
  ASSERT_EQ(out.status, Status::frame);
  EXPECT_EQ(out.frame.json["id"], 2);
  EXPECT_EQ(out.frame.payload, (Bytes{4, 5}));
  EXPECT_EQ(d.next().status, Status::need_more);
}

TEST(Frame, NoPayloadSpaceForAFrameBufferedWholeOrAnOversizeOrAFailedOne) {
  FrameDecoder whole;
  whole.feed(encode_frame({{"id", 1}}, Bytes(100, 1)));
  EXPECT_TRUE(whole.payload_space().empty());
  EXPECT_EQ(whole.next().status, Status::frame);

  FrameDecoder skipping(FrameLimits{100, 4});
  Bytes start = header(8, 5);
  const std::string_view json = R"({"id":1})";
  start.insert(start.end(), json.begin(), json.end());
  start.push_back(1);
  skipping.feed(start);
  EXPECT_EQ(skipping.next().status, Status::need_more);
  EXPECT_TRUE(skipping.payload_space().empty()) << "an oversize payload is dropped, not read";

  FrameDecoder failed;
  Bytes bad = header(1, 10);
  bad.push_back('{');
  bad.push_back(0);
  failed.feed(bad);
  EXPECT_EQ(failed.payload_space().size(), 9U);
  const Bytes rest(9, 0);
  std::ranges::copy(rest, failed.payload_space().begin());
  failed.payload_filled(rest.size());
  EXPECT_EQ(failed.next().error.code, errc::bad_frame) << "its JSON is checked as before";
  EXPECT_TRUE(failed.payload_space().empty());
}

// ---- an oversize payload is skipped, not fatal --------------------------------

/// Feeds `stream` in `piece`-byte pieces, collecting every output; checks
/// after each piece that the decoder holds no more than `max_buffered`.
std::vector<FrameDecoder::Output> feed_in_pieces(FrameDecoder& d, const Bytes& stream,
                                                 std::size_t piece, std::size_t max_buffered) {
  std::vector<FrameDecoder::Output> outputs;
  for (std::size_t at = 0; at < stream.size(); at += piece) {
    d.feed({stream.data() + at, std::min(piece, stream.size() - at)});
    EXPECT_LE(d.buffered(), max_buffered) << "after byte " << at;
    for (auto out = d.next(); out.status != Status::need_more; out = d.next()) {
      outputs.push_back(std::move(out));
      if (outputs.back().status == Status::error)
        return outputs;
    }
  }
  return outputs;
}

TEST(Frame, AnOversizePayloadIsSkippedAndTheFramesAroundItDecode) {
  const std::string json = R"({"id":2,"op":"execute"})";
  Bytes stream = encode_frame({{"id", 1}}, Bytes(1000, 0xAA));
  const Bytes oversize = raw_frame(json, Bytes(2048 + 5, 0xBB));  // ends mid-piece
  const Bytes after = encode_frame({{"id", 3}}, Bytes{1, 2, 3});
  stream.insert(stream.end(), oversize.begin(), oversize.end());
  stream.insert(stream.end(), after.begin(), after.end());

  FrameDecoder d(FrameLimits{100, 1024});
  // N.B. at most one frame within the limits and a piece: the 2053 bytes
  // skipped never count.
  const auto outputs = feed_in_pieces(d, stream, 16, 8 + 7 + 1000 + 16);
  ASSERT_EQ(outputs.size(), 3U);
  EXPECT_EQ(outputs[0].status, Status::frame);
  EXPECT_EQ(outputs[0].frame.payload, Bytes(1000, 0xAA));
  ASSERT_EQ(outputs[1].status, Status::oversize);
  EXPECT_EQ(outputs[1].frame.json, nlohmann::json::parse(json));
  EXPECT_TRUE(outputs[1].frame.payload.empty());
  EXPECT_EQ(outputs[1].error.code, errc::frame_too_large);
  EXPECT_EQ(outputs[1].error.message, "payload of 2053 bytes is over the limit of 1024");
  ASSERT_EQ(outputs[2].status, Status::frame) << outputs[2].error.message;
  EXPECT_EQ(outputs[2].frame.json["id"], 3);
  EXPECT_EQ(outputs[2].frame.payload, (Bytes{1, 2, 3}));
  EXPECT_EQ(d.buffered(), 0U);
}

TEST(Frame, AnOversizeFrameComesOutOnlyOnceItsPayloadHasGone) {
  FrameDecoder d(FrameLimits{100, 4});
  const Bytes f = raw_frame(R"({"id":1})", Bytes{1, 2, 3, 4, 5});
  d.feed({f.data(), f.size() - 1});
  EXPECT_EQ(d.next().status, Status::need_more);
  EXPECT_EQ(d.bytes_wanted(), 1U);
  d.feed({&f.back(), 1});
  EXPECT_EQ(d.next().status, Status::oversize);
  EXPECT_EQ(d.next().status, Status::need_more);
}

TEST(Frame, AnOversizeFramesJsonIsWaitedForButNotItsPayload) {
  FrameDecoder d(FrameLimits{100, 1000});
  d.feed(header(8, 0xFFFFFFFF));
  EXPECT_EQ(d.next().status, Status::need_more);
  EXPECT_EQ(d.bytes_wanted(), 8U) << "the JSON only: a reader must not size a read by 4 GiB";
}

TEST(Frame, FourGibibytesAnnouncedAndTrickledAreNeverBuffered) {
  FrameDecoder hostile(FrameLimits{100, 1024});
  Bytes start = header(8, 0xFFFFFFFF);
  const std::string_view json = R"({"id":9})";
  start.insert(start.end(), json.begin(), json.end());
  hostile.feed(start);
  ASSERT_EQ(hostile.next().status, Status::need_more);
  EXPECT_EQ(hostile.buffered(), 0U);
  const Bytes piece(16, 0xCC);
  std::uint64_t left = 0xFFFFFFFFULL;
  for (int i = 0; i < 64 * 1024; ++i) {  // 1 MiB of it, 16 bytes at a time
    hostile.feed(piece);
    left -= piece.size();
    ASSERT_EQ(hostile.next().status, Status::need_more);
    ASSERT_EQ(hostile.buffered(), 0U) << "after piece " << i;
  }
  EXPECT_EQ(hostile.bytes_wanted(), left);
}

TEST(Frame, AnOversizeFrameWhoseJsonDoesNotParseIsFinal) {
  FrameDecoder d(FrameLimits{100, 4});
  d.feed(raw_frame("{", Bytes(5, 0)));
  EXPECT_EQ(d.next().error.code, errc::bad_frame);
  d.feed(encode_frame({{"id", 1}}));
  EXPECT_EQ(d.next().status, Status::error);
}

TEST(Frame, AnOversizeJsonPartIsFinalEvenWithAnOversizePayload) {
  FrameDecoder d(FrameLimits{100, 4});
  d.feed(header(101, 5));
  EXPECT_EQ(d.next().error.code, errc::frame_too_large);
}

TEST(Frame, LimitsAreInclusive) {
  FrameDecoder d(FrameLimits{7, 3});
  d.feed(raw_frame(R"({"a":1})", Bytes{1, 2, 3}));
  EXPECT_EQ(d.next().status, Status::frame);
}

TEST(Frame, MalformedJsonIsABadFrame) {
  for (const std::string_view bad : {"{", "nul", R"({"a":})", "\xff\xfe"}) {
    FrameDecoder d;
    d.feed(raw_frame(bad));
    const auto out = d.next();
    ASSERT_EQ(out.status, Status::error) << bad;
    EXPECT_EQ(out.error.code, errc::bad_frame);
  }
}

TEST(Frame, NonObjectJsonIsABadFrame) {
  for (const std::string_view bad : {"[1,2]", "42", R"("text")", "null"}) {
    FrameDecoder d;
    d.feed(raw_frame(bad));
    const auto out = d.next();
    ASSERT_EQ(out.status, Status::error) << bad;
    EXPECT_EQ(out.error.code, errc::bad_frame);
    EXPECT_NE(out.error.message.find("not an object"), std::string::npos);
  }
}

TEST(Frame, EmptyJsonPartIsABadFrame) {
  FrameDecoder d;
  d.feed(header(0, 0));
  EXPECT_EQ(d.next().error.code, errc::bad_frame);
}

TEST(Frame, AnErrorIsFinalAndLaterBytesAreIgnored) {
  FrameDecoder d;
  d.feed(raw_frame("[]"));
  ASSERT_EQ(d.next().status, Status::error);
  d.feed(encode_frame({{"id", 1}}));
  EXPECT_EQ(d.next().status, Status::error);
}

}  // namespace
}  // namespace discarbiter::proto
