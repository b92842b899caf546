#include "host/platform.hpp"

namespace discarbiter::host {

std::string_view platform_name() {
  return "windows";
}

// N.B. the SCM and the console deliver stops as calls, not signals.
void hold_stop_signals() {}
void accept_stop_signals() {}

}  // namespace discarbiter::host
