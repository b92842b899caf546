// The platform as the host names it, one definition per platform
// (platform_posix.cpp, platform_windows.cpp). The process id, which the
// client library needs too, is discarbiter/process.hpp in support/.
#pragma once

#include <string_view>

namespace discarbiter::host {

/// "linux" or "windows", as the status document names it.
std::string_view platform_name();

/// Lowers the calling thread's scheduling priority: for the log's writer,
/// so that a record queued by the io thread does not preempt it (on one CPU
/// the writer would otherwise run, format and write before the reply that
/// the io thread was about to send). It still gets its share of a busy CPU.
void lower_current_thread_priority();

}  // namespace discarbiter::host
