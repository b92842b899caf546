// Whether standard output is a terminal: the one platform question the
// sample burner asks (terminal_posix.cpp, terminal_windows.cpp; CMake picks
// the file).
#pragma once

namespace burner {

/// True when stdout is a terminal, so a progress bar redrawn with '\r' is
/// read by a person rather than written into a log.
bool stdout_is_terminal();

}  // namespace burner
