#include "core/timeout_policy.hpp"

#include <algorithm>

#include "core/scsi.hpp"

namespace discarbiter::core {

std::chrono::seconds TimeoutPolicy::timeout_for(std::uint8_t op,
                                                std::optional<std::uint32_t> requested_s) const {
  std::chrono::seconds t = default_timeout;
  if (requested_s && *requested_s > 0) {
    t = std::chrono::seconds(*requested_s);
  } else if (const auto it = by_opcode.find(op); it != by_opcode.end()) {
    t = it->second;
  }
  return std::clamp(t, std::chrono::seconds(1), std::max(max_timeout, std::chrono::seconds(1)));
}

std::map<std::uint8_t, std::chrono::seconds> TimeoutPolicy::defaults() {
  using std::chrono::seconds;
  return {
      {opcode::test_unit_ready, seconds(20)},
      {opcode::start_stop_unit, seconds(60)},
      {opcode::write10, seconds(200)},
      {opcode::synchronize_cache, seconds(600)},
      {opcode::blank, seconds(3600)},
      {opcode::format_unit, seconds(3600)},
      {opcode::close_track_session, seconds(3600)},
  };
}

}  // namespace discarbiter::core
