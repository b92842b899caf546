// The few facts about the running process the host needs, one definition per
// platform (platform_posix.cpp, platform_windows.cpp).
#pragma once

#include <cstdint>
#include <string_view>

namespace discarbiter::host {

std::uint32_t current_pid();
/// "linux" or "windows", as the status document names it.
std::string_view platform_name();

}  // namespace discarbiter::host
