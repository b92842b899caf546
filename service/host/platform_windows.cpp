#include "host/platform.hpp"

#include <windows.h>

namespace discarbiter::host {

std::string_view platform_name() {
  return "windows";
}

// N.B. the SCM and the console deliver stops as calls, not signals.
void hold_stop_signals() {}
void accept_stop_signals() {}

void lower_current_thread_priority() {
  // Best effort: a failure only leaves the priority as it was.
  (void)::SetThreadPriority(::GetCurrentThread(), THREAD_PRIORITY_BELOW_NORMAL);
}

void idle_current_thread_priority(bool idle) {
  // Best effort: a failure only leaves the priority as it was.
  (void)::SetThreadPriority(::GetCurrentThread(),
                            idle ? THREAD_PRIORITY_IDLE : THREAD_PRIORITY_BELOW_NORMAL);
}

}  // namespace discarbiter::host
