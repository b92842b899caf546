#include "discarbiter/proto/frame.hpp"

#include <gtest/gtest.h>

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

TEST(Frame, OversizePayloadIsRefusedOnTheHeaderAlone) {
  FrameDecoder d(FrameLimits{100, 1000});
  d.feed(header(2, 0xFFFFFFFF));
  const auto out = d.next();
  ASSERT_EQ(out.status, Status::error);
  EXPECT_EQ(out.error.code, errc::frame_too_large);
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
