// The running process, named the same way on every platform. This is the
// Win32 definition; support/posix/discarbiter/process.hpp is its twin at the
// same include path, and the support target a build links (discarbiter_win32
// or discarbiter_posix) chooses which one "discarbiter/process.hpp" is. The
// service and the client library both use it.
#pragma once

#include <windows.h>

#include <cstdint>

namespace discarbiter {

/// This process's id, as HELLO and the status document carry it.
inline std::uint32_t current_process_id() {
  return static_cast<std::uint32_t>(::GetCurrentProcessId());
}

}  // namespace discarbiter
