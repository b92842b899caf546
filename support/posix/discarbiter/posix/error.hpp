// One vocabulary for POSIX failures, the twin of win32/error.hpp: the step
// that failed, the error number and the system's words for it. OS errors
// travel as std::error_code; they become text only at the edge (a log line,
// an error reply).
#pragma once

#include <cerrno>
#include <string>
#include <string_view>
#include <system_error>

namespace discarbiter::posix {

inline std::error_code make_error(int error) noexcept {
  return {error, std::system_category()};
}

/// errno as an error_code; read it before anything else can change errno.
inline std::error_code last_error() noexcept {
  return make_error(errno);
}

/// "step: message (errno N)", for logs and error replies.
inline std::string describe(std::string_view step, std::error_code error) {
  return std::string(step) + ": " + error.message() + " (errno " + std::to_string(error.value()) +
         ")";
}

inline std::string describe(std::string_view step, int error) {
  return describe(step, make_error(error));
}

}  // namespace discarbiter::posix
