#include <windows.h>

#include "host/platform.hpp"

namespace discarbiter::host {

std::uint32_t current_pid() {
  return static_cast<std::uint32_t>(::GetCurrentProcessId());
}
std::string_view platform_name() {
  return "windows";
}

}  // namespace discarbiter::host
