// SCSI sense data (SPC-4 4.5): the sense key, ASC and ASCQ of a fixed- or
// descriptor-format buffer, and their names. One decoder for the service
// (its errors and logs: "5/53/02") and the client (discarb's explanations:
// "sense 5/53/02: medium removal prevented …").
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "discarbiter/export.h"
namespace discarbiter::proto {

struct SenseCodes {
  std::uint8_t key = 0;  // low four bits
  std::uint8_t asc = 0;
  std::uint8_t ascq = 0;

  friend bool operator==(const SenseCodes&, const SenseCodes&) = default;
};

/// The codes of a sense buffer. Descriptor format (response code 72h or
/// 73h) needs 4 bytes; any other is read as fixed format (70h, 71h), which
/// needs 14. nullopt when the buffer is shorter.
DISCARBITER_API std::optional<SenseCodes> decode_sense(std::span<const std::uint8_t> sense);

/// SPC's name of a sense key, in lower case: "illegal request".
DISCARBITER_API std::string_view sense_key_name(std::uint8_t key);
/// What an ASC/ASCQ pair means, for the pairs an optical drive's user meets
/// most: "invalid field in CDB"; empty for the others.
DISCARBITER_API std::string_view additional_sense_name(std::uint8_t asc, std::uint8_t ascq);

/// "5/24/00": key, ASC and ASCQ in hexadecimal; "no sense data" when the
/// buffer holds none.
DISCARBITER_API std::string describe_sense(std::span<const std::uint8_t> sense);
/// "sense 5/24/00: invalid field in CDB": with the ASC/ASCQ's name, or the
/// sense key's when the pair has none here.
DISCARBITER_API std::string explain_sense(std::span<const std::uint8_t> sense);

}  // namespace discarbiter::proto
