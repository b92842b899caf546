// The named pipe's security (DESIGN.md "Security"), shared by the listener
// and the tests that read it back from the live pipe.
#pragma once

#include <windows.h>

namespace discarbiter::transport {

/// Protected DACL: SYSTEM and Administrators get full control; Authenticated
/// Users get read/write *without* FILE_CREATE_PIPE_INSTANCE (0x4), so no
/// ordinary user can create a rogue instance of our pipe. Plain GRGW would
/// include that right.
inline constexpr wchar_t kPipeSddl[] = L"D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;0x12019b;;;AU)";
inline constexpr DWORD kPipeUsersAccess = 0x12019b;
static_assert((kPipeUsersAccess & FILE_CREATE_PIPE_INSTANCE) == 0,
              "users must not be able to create pipe instances");
static_assert(kPipeUsersAccess == ((FILE_GENERIC_READ | FILE_GENERIC_WRITE) &
                                   ~static_cast<DWORD>(FILE_CREATE_PIPE_INSTANCE)));

/// Byte mode (the same frames as the Unix socket), local clients only.
inline constexpr DWORD kPipeMode =
    PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS;
inline constexpr DWORD kPipeBufferBytes = 64 * 1024;

}  // namespace discarbiter::transport
