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

// SPC-4 Annex D, the pairs MMC drives answer most.
constexpr std::array<AdditionalSense, 20> kAdditionalSense{{
    {0x04, 0x00, "logical unit not ready, cause not reportable"},
    {0x04, 0x01, "logical unit is in process of becoming ready"},
    {0x04, 0x04, "logical unit not ready, format in progress"},
    {0x04, 0x07, "logical unit not ready, operation in progress"},
    {0x04, 0x08, "logical unit not ready, long write in progress"},
    {0x0C, 0x00, "write error"},
    {0x11, 0x00, "unrecovered read error"},
    {0x20, 0x00, "invalid command operation code"},
    {0x21, 0x00, "logical block address out of range"},
    {0x21, 0x02, "invalid address for write"},
    {0x24, 0x00, "invalid field in CDB"},
    {0x26, 0x00, "invalid field in parameter list"},
    {0x28, 0x00, "not ready to ready change, medium may have changed"},
    {0x29, 0x00, "power on, reset, or bus device reset occurred"},
    {0x30, 0x00, "incompatible medium installed"},
    {0x3A, std::nullopt, "medium not present"},
    // N.B. MMC says 5/53/02; QEMU and some drives answer 2/53/00.
    {0x53, 0x00, kRemovalPrevented},
    {0x53, 0x02, kRemovalPrevented},
    {0x64, 0x00, "illegal mode for this track"},
    {0x73, 0x03, "power calibration area error"},
}};

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
