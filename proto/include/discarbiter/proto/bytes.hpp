// Raw bytes: CDBs, sense data and the frame's payload.
#pragma once

#include <cstdint>
#include <vector>

namespace discarbiter::proto {

using Bytes = std::vector<std::uint8_t>;

}  // namespace discarbiter::proto
