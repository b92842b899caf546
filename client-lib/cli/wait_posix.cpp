#include <pthread.h>
#include <unistd.h>

#include <csignal>
#include <thread>

#include "wait.hpp"

namespace discarbiter::cli {
namespace {

sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (const int s : {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2})
    sigaddset(&set, s);
  return set;
}

}  // namespace

void prepare_wait() {
  // N.B. blocked in every thread, so sigwait below is the only receiver.
  const sigset_t set = stop_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

std::string wait_for_stdin_close_or_signal() {
  const pthread_t waiter = pthread_self();
  std::thread([waiter] {
    char buf[256];
    while (::read(STDIN_FILENO, buf, sizeof buf) > 0) {
    }
    pthread_kill(waiter, SIGUSR1);
  }).detach();
  const sigset_t set = stop_signals();
  int signo = 0;
  sigwait(&set, &signo);
  if (signo == SIGUSR1)
    return "stdin closed";
  return signo == SIGUSR2 ? "interrupted" : "signal " + std::to_string(signo);
}

void interrupt_wait() {
  // N.B. SIGUSR2 is blocked in every thread; sigwait above takes it.
  ::kill(::getpid(), SIGUSR2);
}

}  // namespace discarbiter::cli
