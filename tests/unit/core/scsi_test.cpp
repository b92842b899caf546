#include "core/scsi.hpp"

#include <cstring>

#include <gtest/gtest.h>

namespace discarbiter::core {
namespace {

using namespace std::chrono_literals;

ScsiResult standard_inquiry(std::uint8_t type, const char* vendor, const char* product,
                            const char* revision) {
  ScsiResult r;
  r.data_in.assign(36, 0);
  r.data_in[0] = type;
  std::memcpy(&r.data_in[8], vendor, 8);
  std::memcpy(&r.data_in[16], product, 16);
  std::memcpy(&r.data_in[32], revision, 4);
  return r;
}

TEST(Inquiry, TheCommandAsksForStandardData) {
  const ScsiCommand c = inquiry_command(7s);
  EXPECT_EQ(c.cdb, (Bytes{opcode::inquiry, 0, 0, 0, 96, 0}));
  EXPECT_EQ(c.direction, Direction::in);
  EXPECT_EQ(c.data_in_len, 96u);
  EXPECT_EQ(c.timeout, 7s);
}

TEST(Inquiry, VendorProductAndRevisionLoseTheirPaddingAndControlBytes) {
  ScsiResult r = standard_inquiry(0x05, "QEMU    ", "QEMU DVD-ROM    ", "2.5+");
  r.data_in[20] = 0x07;  // a BEL in the product field reads as a blank
  const auto parsed = parse_inquiry(r, "/dev/sg0");
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->vendor, "QEMU");
  EXPECT_EQ(parsed->product, "QEMU DVD-ROM");
  EXPECT_EQ(parsed->revision, "2.5+");
}

TEST(Inquiry, AnotherPeripheralTypeIsNotARecorder) {
  const auto parsed =
      parse_inquiry(standard_inquiry(0x00, "ATA     ", "Some Disk       ", "1.0 "), "/dev/sg1");
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().code, errc::invalid_arg);
  EXPECT_EQ(parsed.error().message, "/dev/sg1 is not an optical drive (SCSI peripheral type 0)");
}

TEST(Inquiry, FailuresNameThePathAndTheCause) {
  const auto timed_out = parse_inquiry(
      ScsiResult::failed(errc::recorder_command_timeout, "no answer within 10 s"), "/dev/sg0");
  ASSERT_FALSE(timed_out);
  EXPECT_EQ(timed_out.error().code, errc::recorder_command_timeout);
  EXPECT_EQ(timed_out.error().message, "INQUIRY on /dev/sg0: no answer within 10 s");

  ScsiResult check;
  check.status = kStatusCheckCondition;
  check.sense = make_sense(0x05, 0x24, 0x00);
  const auto refused = parse_inquiry(check, "/dev/sg0");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, errc::fail);
  EXPECT_EQ(refused.error().message, "INQUIRY on /dev/sg0 failed (sense 5/24/00)");

  ScsiResult short_answer;
  short_answer.data_in.assign(20, 0);
  const auto cut = parse_inquiry(short_answer, "/dev/sg0");
  ASSERT_FALSE(cut);
  EXPECT_EQ(cut.error().message, "INQUIRY on /dev/sg0 failed (short answer: 20 bytes, want 36)");
}

}  // namespace
}  // namespace discarbiter::core
