#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace discarbiter::core {

/// Who is at the other end of a connection, as the OS tells it (Windows:
/// the pipe client's token; Linux: SO_PEERCRED).
struct PeerIdentity {
  std::uint32_t pid = 0;  // 0 when the OS does not say
  std::string user;
  std::optional<std::uint32_t> uid;
  std::optional<std::string> sid;
  std::string exe;
  /// May `break` another client's lock. Decided by the listener: Windows,
  /// a member of BUILTIN\Administrators or SYSTEM; Linux, uid 0 or a member
  /// of the configured admin group.
  bool administrator = false;
};

}  // namespace discarbiter::core
