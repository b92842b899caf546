#include "discarbiter/proto/sense.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace discarbiter::proto {
namespace {

using Sense = std::vector<std::uint8_t>;

/// Fixed-format sense (SPC-4 4.5.3), 18 bytes.
Sense fixed(std::uint8_t key, std::uint8_t asc, std::uint8_t ascq) {
  Sense s(18, 0);
  s[0] = 0x70;
  s[2] = key;
  s[7] = 10;
  s[12] = asc;
  s[13] = ascq;
  return s;
}

/// Descriptor-format sense (SPC-4 4.5.2): the 8-byte header, no descriptors.
Sense descriptor(std::uint8_t key, std::uint8_t asc, std::uint8_t ascq) {
  return {0x72, key, asc, ascq, 0, 0, 0, 0};
}

TEST(Sense, FixedFormatGivesKeyAscAndAscq) {
  EXPECT_EQ(decode_sense(fixed(0x05, 0x24, 0x00)), (SenseCodes{0x05, 0x24, 0x00}));
  EXPECT_EQ(describe_sense(fixed(0x05, 0x24, 0x00)), "5/24/00");
  EXPECT_EQ(describe_sense(fixed(0x02, 0x3A, 0x01)), "2/3A/01");
  // The key is the low four bits: FILEMARK, EOM and ILI are not part of it.
  EXPECT_EQ(describe_sense(fixed(0xE3, 0x11, 0x00)), "3/11/00");
  Sense deferred = fixed(0x04, 0x44, 0x00);
  deferred[0] = 0xF1;  // VALID bit, deferred error
  EXPECT_EQ(describe_sense(deferred), "4/44/00");
}

TEST(Sense, DescriptorFormatGivesKeyAscAndAscq) {
  EXPECT_EQ(decode_sense(descriptor(0x05, 0x53, 0x02)), (SenseCodes{0x05, 0x53, 0x02}));
  EXPECT_EQ(describe_sense(descriptor(0x05, 0x53, 0x02)), "5/53/02");
  EXPECT_EQ(describe_sense(Sense{0x73, 0x06, 0x28, 0x00}), "6/28/00") << "deferred, 4 bytes";
  EXPECT_EQ(explain_sense(descriptor(0x05, 0x24, 0x00)), "sense 5/24/00: invalid field in CDB");
}

TEST(Sense, ABufferTooShortHasNoSenseData) {
  EXPECT_EQ(decode_sense(Sense{}), std::nullopt);
  EXPECT_EQ(describe_sense(Sense{}), "no sense data");
  EXPECT_EQ(explain_sense(Sense{}), "no sense data");
  Sense short_fixed = fixed(0x05, 0x24, 0x00);
  short_fixed.resize(13);
  EXPECT_EQ(describe_sense(short_fixed), "no sense data");
  EXPECT_EQ(describe_sense(Sense{0x72, 0x05, 0x24}), "no sense data");
}

TEST(Sense, ExplainNamesTheAdditionalSenseOrElseTheKey) {
  // N.B. the texts discarb prints; tests/e2e/qemu_e2e.py matches the first.
  EXPECT_EQ(explain_sense(fixed(0x05, 0x53, 0x02)),
            "sense 5/53/02: medium removal prevented (the tray is locked by PREVENT MEDIUM "
            "REMOVAL)");
  EXPECT_EQ(explain_sense(fixed(0x02, 0x53, 0x00)),
            "sense 2/53/00: medium removal prevented (the tray is locked by PREVENT MEDIUM "
            "REMOVAL)");
  EXPECT_EQ(explain_sense(fixed(0x02, 0x3A, 0x02)), "sense 2/3A/02: medium not present");
  EXPECT_EQ(explain_sense(fixed(0x05, 0x20, 0x00)),
            "sense 5/20/00: invalid command operation code");
  EXPECT_EQ(explain_sense(fixed(0x05, 0x21, 0x00)),
            "sense 5/21/00: logical block address out of range");
  EXPECT_EQ(explain_sense(fixed(0x05, 0x24, 0x00)), "sense 5/24/00: invalid field in CDB");
  EXPECT_EQ(explain_sense(fixed(0x03, 0x99, 0x00)), "sense 3/99/00: medium error");
  EXPECT_EQ(explain_sense(fixed(0x05, 0x53, 0x01)), "sense 5/53/01: illegal request")
      << "53/01 is not the tray lock";
}

TEST(Sense, EveryKeyHasAName) {
  EXPECT_EQ(sense_key_name(0x0), "no sense");
  EXPECT_EQ(sense_key_name(0x2), "not ready");
  EXPECT_EQ(sense_key_name(0x5), "illegal request");
  EXPECT_EQ(sense_key_name(0x6), "unit attention");
  EXPECT_EQ(sense_key_name(0xE), "miscompare");
  for (unsigned key = 0; key < 16; ++key)
    EXPECT_FALSE(sense_key_name(static_cast<std::uint8_t>(key)).empty()) << key;
  EXPECT_EQ(additional_sense_name(0x99, 0x00), "");
}

}  // namespace
}  // namespace discarbiter::proto
