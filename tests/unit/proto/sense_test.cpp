#include "discarbiter/proto/sense.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string_view>
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
  EXPECT_EQ(explain_sense(fixed(0x02, 0x3A, 0x02)),
            "sense 2/3A/02: medium not present - tray open");
  EXPECT_EQ(explain_sense(fixed(0x05, 0x20, 0x00)),
            "sense 5/20/00: invalid command operation code");
  EXPECT_EQ(explain_sense(fixed(0x05, 0x21, 0x00)),
            "sense 5/21/00: logical block address out of range");
  EXPECT_EQ(explain_sense(fixed(0x05, 0x24, 0x00)), "sense 5/24/00: invalid field in CDB");
  EXPECT_EQ(explain_sense(fixed(0x03, 0x99, 0x00)), "sense 3/99/00: medium error");
  EXPECT_EQ(explain_sense(fixed(0x05, 0x53, 0x01)), "sense 5/53/01: illegal request")
      << "53/01 is not the tray lock";
}

struct Condition {
  Sense sense;
  std::string_view explanation;
};

// The conditions a burner meets, with the sense key a drive gives them, as
// discarb and CommandError print them.
const Condition kBurnerConditions[] = {
    {fixed(2, 0x02, 0x00), "sense 2/02/00: no seek complete"},
    {fixed(2, 0x04, 0x00), "sense 2/04/00: logical unit not ready, cause not reportable"},
    {fixed(2, 0x04, 0x01), "sense 2/04/01: logical unit is in process of becoming ready"},
    {fixed(2, 0x04, 0x02), "sense 2/04/02: logical unit not ready, initializing command required"},
    {fixed(2, 0x04, 0x03), "sense 2/04/03: logical unit not ready, manual intervention required"},
    {fixed(2, 0x04, 0x04), "sense 2/04/04: logical unit not ready, format in progress"},
    {fixed(2, 0x04, 0x07), "sense 2/04/07: logical unit not ready, operation in progress"},
    {fixed(2, 0x04, 0x08), "sense 2/04/08: logical unit not ready, long write in progress"},
    {fixed(3, 0x0C, 0x00), "sense 3/0C/00: write error"},
    {fixed(3, 0x0C, 0x07), "sense 3/0C/07: write error - recovery needed"},
    {fixed(3, 0x0C, 0x09), "sense 3/0C/09: write error - loss of streaming"},
    {fixed(3, 0x11, 0x00), "sense 3/11/00: unrecovered read error"},
    {fixed(5, 0x20, 0x00), "sense 5/20/00: invalid command operation code"},
    {fixed(5, 0x21, 0x00), "sense 5/21/00: logical block address out of range"},
    {fixed(5, 0x21, 0x02), "sense 5/21/02: invalid address for write"},
    {fixed(5, 0x24, 0x00), "sense 5/24/00: invalid field in CDB"},
    {fixed(5, 0x26, 0x00), "sense 5/26/00: invalid field in parameter list"},
    {fixed(7, 0x27, 0x00), "sense 7/27/00: write protected"},
    {fixed(6, 0x28, 0x00), "sense 6/28/00: not ready to ready change, medium may have changed"},
    {fixed(6, 0x29, 0x00), "sense 6/29/00: power on, reset, or bus device reset occurred"},
    {fixed(5, 0x2C, 0x00), "sense 5/2C/00: command sequence error"},
    {fixed(5, 0x30, 0x00), "sense 5/30/00: incompatible medium installed"},
    {fixed(5, 0x30, 0x01), "sense 5/30/01: cannot read medium - unknown format"},
    {fixed(5, 0x30, 0x02), "sense 5/30/02: cannot read medium - incompatible format"},
    {fixed(5, 0x30, 0x03), "sense 5/30/03: cleaning cartridge installed"},
    {fixed(5, 0x30, 0x04), "sense 5/30/04: cannot write medium - unknown format"},
    {fixed(5, 0x30, 0x05), "sense 5/30/05: cannot write medium - incompatible format"},
    {fixed(2, 0x3A, 0x00), "sense 2/3A/00: medium not present"},
    {fixed(2, 0x3A, 0x01), "sense 2/3A/01: medium not present - tray closed"},
    {fixed(2, 0x3A, 0x02), "sense 2/3A/02: medium not present - tray open"},
    {fixed(4, 0x3E, 0x00), "sense 4/3E/00: logical unit has not self-configured yet"},
    {fixed(4, 0x44, 0x00), "sense 4/44/00: internal target failure"},
    {fixed(5, 0x53, 0x02),
     "sense 5/53/02: medium removal prevented (the tray is locked by PREVENT MEDIUM REMOVAL)"},
    {fixed(3, 0x57, 0x00), "sense 3/57/00: unable to recover table-of-contents"},
    {fixed(1, 0x5D, 0x00), "sense 1/5D/00: failure prediction threshold exceeded"},
    {fixed(5, 0x6F, 0x00),
     "sense 5/6F/00: copy protection key exchange failure - authentication failure"},
    {fixed(5, 0x6F, 0x01), "sense 5/6F/01: copy protection key exchange failure - key not present"},
    {fixed(5, 0x6F, 0x03), "sense 5/6F/03: read of scrambled sector without authentication"},
    {fixed(5, 0x72, 0x00), "sense 5/72/00: session fixation error"},
    {fixed(5, 0x72, 0x01), "sense 5/72/01: session fixation error writing lead-in"},
    {fixed(5, 0x72, 0x02), "sense 5/72/02: session fixation error writing lead-out"},
    {fixed(5, 0x72, 0x03), "sense 5/72/03: session fixation error - incomplete track in session"},
    {fixed(5, 0x72, 0x04), "sense 5/72/04: empty or partially written reserved track"},
    {fixed(5, 0x72, 0x05), "sense 5/72/05: no more track reservations allowed"},
    {fixed(5, 0x73, 0x00), "sense 5/73/00: CD control error"},
    {fixed(5, 0x73, 0x01), "sense 5/73/01: power calibration area almost full"},
    {fixed(5, 0x73, 0x02), "sense 5/73/02: power calibration area is full"},
    {fixed(5, 0x73, 0x03), "sense 5/73/03: power calibration area error"},
};

TEST(Sense, ExplainsTheConditionsABurnerMeets) {
  for (const auto& c : kBurnerConditions)
    EXPECT_EQ(explain_sense(c.sense), c.explanation);
}

TEST(Sense, AnUnlistedAscqFallsBackToItsAscsName) {
  EXPECT_EQ(additional_sense_name(0x04, 0x09), "logical unit not ready");
  EXPECT_EQ(additional_sense_name(0x0C, 0x0F), "write error");
  EXPECT_EQ(additional_sense_name(0x30, 0x11), "incompatible medium installed");
  EXPECT_EQ(additional_sense_name(0x3A, 0x04), "medium not present");
  EXPECT_EQ(additional_sense_name(0x5D, 0xFF), "failure prediction threshold exceeded");
  EXPECT_EQ(additional_sense_name(0x6F, 0x07), "copy protection key exchange failure");
  EXPECT_EQ(additional_sense_name(0x72, 0x07), "session fixation error");
  EXPECT_EQ(additional_sense_name(0x73, 0x17),
            "power calibration area or program memory area error");
  // …but an ASC with no catch-all names only its listed pairs.
  EXPECT_EQ(additional_sense_name(0x24, 0x01), "");
  EXPECT_EQ(explain_sense(fixed(0x05, 0x00, 0x00)), "sense 5/00/00: illegal request")
      << "00/00 has no name: the key says more";
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
