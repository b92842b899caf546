#include <windows.h>

#include <atomic>
#include <thread>

#include "wait.hpp"

namespace discarbiter::cli {
namespace {

// N.B. a manual-reset event that both the console handler (its own thread)
// and the stdin reader may set; the handler does nothing else.
HANDLE g_stop = nullptr;
std::atomic<DWORD> g_console_event{0xFFFFFFFF};
std::atomic<bool> g_interrupted{false};

BOOL WINAPI on_console_event(DWORD event) {
  g_console_event = event;
  ::SetEvent(g_stop);
  return TRUE;
}

}  // namespace

void prepare_wait() {
  g_stop = ::CreateEventW(nullptr, TRUE, FALSE, nullptr);
  ::SetConsoleCtrlHandler(on_console_event, TRUE);
}

std::string wait_for_stdin_close_or_signal() {
  std::thread([] {
    const HANDLE in = ::GetStdHandle(STD_INPUT_HANDLE);
    char buf[256];
    DWORD n = 0;
    while (in && in != INVALID_HANDLE_VALUE && ::ReadFile(in, buf, sizeof buf, &n, nullptr) &&
           n > 0) {
    }
    ::SetEvent(g_stop);
  }).detach();
  ::WaitForSingleObject(g_stop, INFINITE);
  if (g_interrupted)
    return "interrupted";
  switch (g_console_event.load()) {
    case CTRL_C_EVENT:
      return "Ctrl-C";
    case CTRL_BREAK_EVENT:
      return "Ctrl-Break";
    case 0xFFFFFFFF:
      return "stdin closed";
    default:
      return "console closed";
  }
}

void interrupt_wait() {
  g_interrupted = true;
  ::SetEvent(g_stop);
}

}  // namespace discarbiter::cli
