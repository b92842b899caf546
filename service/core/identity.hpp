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
};

}  // namespace discarbiter::core
