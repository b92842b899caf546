#include "host/platform.hpp"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>

namespace discarbiter::host {

std::string_view platform_name() {
  return "linux";
}

namespace {

void set_stop_signals(int how) {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(how, &stop, nullptr);
}

}  // namespace

void hold_stop_signals() {
  set_stop_signals(SIG_BLOCK);
}

void accept_stop_signals() {
  set_stop_signals(SIG_UNBLOCK);
}

void lower_current_thread_priority() {
  // N.B. Linux: PRIO_PROCESS with a thread id sets that thread's nice value.
  // Nice 10 is enough for the scheduler not to preempt a nice-0 thread for
  // it on a wake-up, and leaves it a tenth of a CPU that nice-0 work fills.
  // Best effort: a failure only leaves the priority as it was.
  constexpr int kNice = 10;
  (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), kNice);
}

void idle_current_thread_priority(bool idle) {
  // Best effort: a failure (a kernel without SCHED_IDLE) leaves it at nice 10.
  const sched_param param{};
  (void)::pthread_setschedparam(::pthread_self(), idle ? SCHED_IDLE : SCHED_OTHER, &param);
  if (!idle)
    lower_current_thread_priority();
}

}  // namespace discarbiter::host
