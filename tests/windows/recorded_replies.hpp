// Replies recorded from real drives, shared by the SPTI tests.
#pragma once

#include <cstring>

#include "discarbiter/proto/bytes.hpp"

namespace discarbiter::testing {

// QEMU's ATAPI drive answering INQUIRY (recorded in the QEMU end to end).
inline const proto::Bytes kQemuInquiry = [] {
  proto::Bytes b(36, 0);
  b[0] = 0x05;
  b[1] = 0x80;
  b[4] = 31;
  std::memcpy(&b[8], "QEMU    QEMU DVD-ROM    2.5+", 28);
  return b;
}();

}  // namespace discarbiter::testing
