#include "host/platform.hpp"

#include <pthread.h>

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

}  // namespace discarbiter::host
