// The platform as the host names it, one definition per platform
// (platform_posix.cpp, platform_windows.cpp). The process id, which the
// client library needs too, is discarbiter/process.hpp in support/.
#pragma once

#include <string_view>

namespace discarbiter::host {

/// "linux" or "windows", as the status document names it.
std::string_view platform_name();

}  // namespace discarbiter::host
