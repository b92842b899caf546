// Command timeouts: a default per opcode, a request may ask for its own, and
// everything is clamped to a configured ceiling.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>

namespace discarbiter::core {

struct TimeoutPolicy {
  std::chrono::seconds default_timeout{10};
  std::chrono::seconds max_timeout{3600};
  std::map<std::uint8_t, std::chrono::seconds> by_opcode = defaults();

  /// The timeout for a command with this opcode; requested (a client's
  /// timeout_s) wins over the default when non-zero. Always in [1, max].
  std::chrono::seconds timeout_for(std::uint8_t opcode,
                                   std::optional<std::uint32_t> requested_s = std::nullopt) const;

  /// Defaults that fit real drives: slow media operations get long ones.
  static std::map<std::uint8_t, std::chrono::seconds> defaults();
};

}  // namespace discarbiter::core
