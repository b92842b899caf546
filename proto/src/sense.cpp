#include "discarbiter/proto/sense.hpp"

#include <array>

#include <fmt/format.h>

namespace discarbiter::proto {
namespace {

constexpr std::uint8_t kDescriptorCurrent = 0x72;
constexpr std::uint8_t kDescriptorDeferred = 0x73;
constexpr std::size_t kDescriptorCodesEnd = 4;  // response code, key, ASC, ASCQ
constexpr std::size_t kFixedCodesEnd = 14;      // through the ASCQ at byte 13

constexpr std::string_view kRemovalPrevented =
    "medium removal prevented (the tray is locked by PREVENT MEDIUM REMOVAL)";

struct AdditionalSense {
  std::uint8_t asc;
  std::optional<std::uint8_t> ascq;  // nullopt: every ASCQ of the ASC
  std::string_view name;
};

// SPC-4 Annex D's names of the pairs an optical drive answers most (MMC-6
// Annex F). An entry without an ASCQ names every ASCQ of its ASC that no
// entry before it names: it follows that ASC's exact entries.
constexpr std::array<AdditionalSense, 101> kAdditionalSense{{
    {0x02, 0x00, "no seek complete"},
    {0x04, 0x00, "logical unit not ready, cause not reportable"},
    {0x04, 0x01, "logical unit is in process of becoming ready"},
    {0x04, 0x02, "logical unit not ready, initializing command required"},
    {0x04, 0x03, "logical unit not ready, manual intervention required"},
    {0x04, 0x04, "logical unit not ready, format in progress"},
    {0x04, 0x07, "logical unit not ready, operation in progress"},
    {0x04, 0x08, "logical unit not ready, long write in progress"},
    {0x04, std::nullopt, "logical unit not ready"},
    {0x06, 0x00, "no reference position found"},
    {0x09, 0x00, "track following error"},
    {0x09, 0x01, "tracking servo failure"},
    {0x09, 0x02, "focus servo failure"},
    {0x0C, 0x00, "write error"},
    {0x0C, 0x07, "write error - recovery needed"},
    {0x0C, 0x08, "write error - recovery failed"},
    {0x0C, 0x09, "write error - loss of streaming"},
    {0x0C, 0x0A, "write error - padding blocks added"},
    {0x0C, std::nullopt, "write error"},
    {0x11, 0x00, "unrecovered read error"},
    {0x11, 0x05, "L-EC uncorrectable error"},
    {0x11, 0x06, "CIRC unrecovered error"},
    {0x11, std::nullopt, "unrecovered read error"},
    {0x15, 0x00, "random positioning error"},
    {0x1A, 0x00, "parameter list length error"},
    {0x20, 0x00, "invalid command operation code"},
    {0x21, 0x00, "logical block address out of range"},
    {0x21, 0x01, "invalid element address"},
    {0x21, 0x02, "invalid address for write"},
    {0x21, 0x03, "invalid write crossing layer jump"},
    {0x24, 0x00, "invalid field in CDB"},
    {0x25, 0x00, "logical unit not supported"},
    {0x26, 0x00, "invalid field in parameter list"},
    {0x26, 0x01, "parameter not supported"},
    {0x26, 0x02, "parameter value invalid"},
    {0x27, 0x00, "write protected"},
    {0x27, 0x01, "hardware write protected"},
    {0x27, 0x02, "logical unit software write protected"},
    {0x27, std::nullopt, "write protected"},
    {0x28, 0x00, "not ready to ready change, medium may have changed"},
    {0x29, 0x00, "power on, reset, or bus device reset occurred"},
    {0x29, std::nullopt, "power on or reset occurred"},
    {0x2A, 0x01, "mode parameters changed"},
    {0x2C, 0x00, "command sequence error"},
    {0x2C, 0x03, "current program area is not empty"},
    {0x2C, 0x04, "current program area is empty"},
    {0x2E, 0x00, "insufficient time for operation"},
    {0x30, 0x00, "incompatible medium installed"},
    {0x30, 0x01, "cannot read medium - unknown format"},
    {0x30, 0x02, "cannot read medium - incompatible format"},
    {0x30, 0x03, "cleaning cartridge installed"},
    {0x30, 0x04, "cannot write medium - unknown format"},
    {0x30, 0x05, "cannot write medium - incompatible format"},
    {0x30, 0x06, "cannot format medium - incompatible medium"},
    {0x30, 0x07, "cleaning failure"},
    {0x30, 0x08, "cannot write - application code mismatch"},
    {0x30, 0x09, "current session not fixated for append"},
    {0x30, 0x10, "medium not formatted"},
    {0x30, std::nullopt, "incompatible medium installed"},
    {0x31, 0x00, "medium format corrupted"},
    {0x31, 0x01, "format command failed"},
    {0x3A, 0x01, "medium not present - tray closed"},
    {0x3A, 0x02, "medium not present - tray open"},
    {0x3A, std::nullopt, "medium not present"},
    {0x3E, 0x00, "logical unit has not self-configured yet"},
    {0x3E, 0x01, "logical unit failure"},
    {0x3E, 0x02, "timeout on logical unit"},
    {0x44, 0x00, "internal target failure"},
    {0x4E, 0x00, "overlapped commands attempted"},
    {0x51, 0x00, "erase failure"},
    // N.B. MMC says 5/53/02; QEMU and some drives answer 2/53/00 ("media load
    // or eject failed") when the tray is locked.
    {0x53, 0x00, kRemovalPrevented},
    {0x53, 0x02, kRemovalPrevented},
    {0x57, 0x00, "unable to recover table-of-contents"},
    {0x5A, 0x01, "operator medium removal request"},
    {0x5D, std::nullopt, "failure prediction threshold exceeded"},
    {0x63, 0x00, "end of user area encountered on this track"},
    {0x63, 0x01, "packet does not fit in available space"},
    {0x64, 0x00, "illegal mode for this track"},
    {0x64, 0x01, "invalid packet size"},
    {0x6F, 0x00, "copy protection key exchange failure - authentication failure"},
    {0x6F, 0x01, "copy protection key exchange failure - key not present"},
    {0x6F, 0x02, "copy protection key exchange failure - key not established"},
    {0x6F, 0x03, "read of scrambled sector without authentication"},
    {0x6F, 0x04, "media region code is mismatched to logical unit region"},
    {0x6F, 0x05, "drive region must be permanent/region reset count error"},
    {0x6F, std::nullopt, "copy protection key exchange failure"},
    {0x72, 0x00, "session fixation error"},
    {0x72, 0x01, "session fixation error writing lead-in"},
    {0x72, 0x02, "session fixation error writing lead-out"},
    {0x72, 0x03, "session fixation error - incomplete track in session"},
    {0x72, 0x04, "empty or partially written reserved track"},
    {0x72, 0x05, "no more track reservations allowed"},
    {0x72, std::nullopt, "session fixation error"},
    {0x73, 0x00, "CD control error"},
    {0x73, 0x01, "power calibration area almost full"},
    {0x73, 0x02, "power calibration area is full"},
    {0x73, 0x03, "power calibration area error"},
    {0x73, 0x04, "program memory area update failure"},
    {0x73, 0x05, "program memory area is full"},
    {0x73, 0x06, "RMA/PMA is almost full"},
    {0x73, std::nullopt, "power calibration area or program memory area error"},
}};

/// No entry is unreachable: no pair named twice, no exact entry after its
/// ASC's catch-all.
constexpr bool well_ordered(std::span<const AdditionalSense> table) {
  for (std::size_t i = 0; i < table.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (table[j].asc == table[i].asc && (!table[j].ascq || table[j].ascq == table[i].ascq))
        return false;
    }
  }
  return true;
}
static_assert(well_ordered(kAdditionalSense));

}  // namespace

std::optional<SenseCodes> decode_sense(std::span<const std::uint8_t> sense) {
  if (sense.empty())
    return std::nullopt;
  const std::uint8_t response_code = sense[0] & 0x7F;
  if (response_code == kDescriptorCurrent || response_code == kDescriptorDeferred) {
    if (sense.size() < kDescriptorCodesEnd)
      return std::nullopt;
    return SenseCodes{static_cast<std::uint8_t>(sense[1] & 0x0F), sense[2], sense[3]};
  }
  if (sense.size() < kFixedCodesEnd)
    return std::nullopt;
  return SenseCodes{static_cast<std::uint8_t>(sense[2] & 0x0F), sense[12], sense[13]};
}

std::string_view sense_key_name(std::uint8_t key) {
  static constexpr std::array<std::string_view, 16> kNames{
      "no sense",        "recovered error", "not ready",      "medium error",
      "hardware error",  "illegal request", "unit attention", "data protect",
      "blank check",     "vendor specific", "copy aborted",   "aborted command",
      "obsolete key Ch", "volume overflow", "miscompare",     "completed"};
  return kNames[static_cast<std::size_t>(key & 0x0F)];
}

std::string_view additional_sense_name(std::uint8_t asc, std::uint8_t ascq) {
  for (const auto& entry : kAdditionalSense) {
    if (entry.asc == asc && (!entry.ascq || *entry.ascq == ascq))
      return entry.name;
  }
  return {};
}

std::string describe_sense(std::span<const std::uint8_t> sense) {
  const auto codes = decode_sense(sense);
  if (!codes)
    return "no sense data";
  return fmt::format("{:X}/{:02X}/{:02X}", codes->key, codes->asc, codes->ascq);
}

std::string explain_sense(std::span<const std::uint8_t> sense) {
  const auto codes = decode_sense(sense);
  if (!codes)
    return "no sense data";
  std::string_view what = additional_sense_name(codes->asc, codes->ascq);
  if (what.empty())
    what = sense_key_name(codes->key);
  return fmt::format("sense {}: {}", describe_sense(sense), what);
}

}  // namespace discarbiter::proto
