// How `discarb hold` keeps its session: until stdin closes or a stop signal.
#pragma once

#include <string>

namespace discarbiter::cli {

/// Call first thing in main, before any thread exists.
void prepare_wait();
/// Blocks; returns what ended the wait ("stdin closed", "signal 15",
/// "interrupted").
std::string wait_for_stdin_close_or_signal();
/// Ends the wait from another thread (the service went away).
void interrupt_wait();

}  // namespace discarbiter::cli
