#include "host/platform.hpp"

#include <sys/resource.h>
#include <unistd.h>

namespace discarbiter::host {

std::string_view platform_name() {
  return "linux";
}

void lower_current_thread_priority() {
  // N.B. Linux: PRIO_PROCESS with a thread id sets that thread's nice value.
  // Nice 10 is enough for the scheduler not to preempt a nice-0 thread for
  // it on a wake-up, and leaves it a tenth of a CPU that nice-0 work fills.
  // Best effort: a failure only leaves the priority as it was.
  constexpr int kNice = 10;
  (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), kNice);
}

}  // namespace discarbiter::host
