// The platform as the host names it, one definition per platform
// (platform_posix.cpp, platform_windows.cpp). The process id, which the
// client library needs too, is discarbiter/process.hpp in support/.
#pragma once

#include <string_view>

namespace discarbiter::host {

/// "linux" or "windows", as the status document names it.
std::string_view platform_name();

/// Keeps the stop signals (SIGINT, SIGTERM) away from the calling thread and
/// every thread it starts from now on; main calls it before any thread
/// exists. N.B. a signal handled on a thread that stays blocked where the
/// runtime cannot run the handler (seen under TSan) never reaches the io
/// thread's signal_set, and the service would not stop. Windows: nothing.
void hold_stop_signals();
/// Lets the stop signals reach the calling thread: the io thread, just
/// before it runs the loop. Windows: nothing.
void accept_stop_signals();
/// Lowers the calling thread's scheduling priority: for the log's writer,
/// so that a record queued by the io thread does not preempt it (on one CPU
/// the writer would otherwise run, format and write before the reply that
/// the io thread was about to send). It still gets its share of a busy CPU.
void lower_current_thread_priority();
/// `idle`: runs the calling thread only on a CPU that nothing else wants
/// (Linux SCHED_IDLE; Windows THREAD_PRIORITY_IDLE); else as
/// lower_current_thread_priority. For the status writer, idle while it
/// writes a document's text, so that a client asking for status without end
/// never delays a grant (nice 10 was not enough: measured pinned on Linux
/// 6.18's EEVDF, a woken waiter or drive worker waited behind the writer's
/// ~120 us documents more than behind anything else), and not idle when it
/// takes a lock the io thread also takes (posting the frames back): an idle
/// thread preempted there on a busy machine held the io thread for tens of
/// ms (a status flood raised a lock's p99 from ~5 to ~20 ms).
void idle_current_thread_priority(bool idle);

}  // namespace discarbiter::host
