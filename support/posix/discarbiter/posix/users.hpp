// Naming users for messages: the service's and the client library's errors
// say who is meant the same way.
#pragma once

#include <pwd.h>
#include <sys/types.h>

#include <array>
#include <string>

#include <fmt/format.h>

namespace discarbiter::posix {

/// "uid 65534 (nobody)", or "uid 65534" when the name is unknown.
inline std::string describe_uid(uid_t uid) {
  passwd pw{};
  passwd* found = nullptr;
  std::array<char, 1024> buf{};
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found)
    return fmt::format("uid {} ({})", uid, found->pw_name);
  return fmt::format("uid {}", uid);
}

}  // namespace discarbiter::posix
