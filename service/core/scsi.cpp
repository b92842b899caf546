#include "scsi.hpp"

#include <fmt/format.h>

namespace discarbiter::core {

Bytes make_sense(std::uint8_t key, std::uint8_t asc, std::uint8_t ascq) {
  Bytes sense(kSenseBytes, 0);
  sense[0] = 0x70;  // current error, fixed format
  sense[2] = key & 0x0F;
  sense[7] = static_cast<std::uint8_t>(kSenseBytes - 8);  // additional sense length
  sense[12] = asc;
  sense[13] = ascq;
  return sense;
}

std::string describe_sense(const Bytes& sense) {
  if (sense.size() < 14) {
    return "no sense data";
  }
  return fmt::format("{:X}/{:02X}/{:02X}", sense[2] & 0x0F, sense[12], sense[13]);
}

Bytes cdb_test_unit_ready() {
  return Bytes(6, 0);
}

Bytes cdb_prevent_allow_medium_removal(bool prevent) {
  Bytes cdb(6, 0);
  cdb[0] = opcode::prevent_allow_medium_removal;
  cdb[4] = prevent ? 1 : 0;
  return cdb;
}

}  // namespace discarbiter::core
