#include <unistd.h>

#include "host/platform.hpp"

namespace discarbiter::host {

std::uint32_t current_pid() {
  return static_cast<std::uint32_t>(::getpid());
}
std::string_view platform_name() {
  return "linux";
}

}  // namespace discarbiter::host
