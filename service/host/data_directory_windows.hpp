// %ProgramData%\DiscArbiter: where the service (LocalSystem) reads its
// configuration and writes its logs. Every user can create folders under
// %ProgramData%, so the service trusts the folder only when no one but
// SYSTEM and Administrators can change it: otherwise anyone could plant a
// configuration (endpoint, limits, log level) or, by creating the folder
// first, point SYSTEM's log rotation through a junction at any file.
#pragma once

#include <windows.h>

#include <filesystem>

#include "discarbiter/proto/result.hpp"

namespace discarbiter::host {

/// Protected (nothing inherited from %ProgramData%), inherited by what is
/// created inside: SYSTEM and Administrators full control, Users read and
/// list. The MSI (installer/windows/DiscArbiter.wxs) and install.ps1 set
/// the same.
inline constexpr wchar_t kDataDirectorySddl[] =
    L"D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1200a9;;;BU)";
inline constexpr DWORD kDataDirectoryUsersAccess = 0x1200a9;
static_assert(kDataDirectoryUsersAccess == (FILE_GENERIC_READ | FILE_GENERIC_EXECUTE));

/// Rights that let their holder change a file or folder, or what is in it:
/// any of them granted to someone else makes the path untrusted.
inline constexpr DWORD kChangeRights = FILE_WRITE_DATA | FILE_APPEND_DATA | FILE_WRITE_EA |
                                       FILE_DELETE_CHILD | FILE_WRITE_ATTRIBUTES | DELETE |
                                       WRITE_DAC | WRITE_OWNER | GENERIC_WRITE | GENERIC_ALL;
static_assert((kDataDirectoryUsersAccess & kChangeRights) == 0);

/// Creates `dir` with kDataDirectorySddl when it does not exist, then
/// checks it as check_trusted_path does. The error names the path and why.
Result<Done> create_trusted_directory(const std::filesystem::path& dir);

/// `path` (a folder or a file) is not a reparse point (junction, symbolic
/// link), is owned by SYSTEM, Administrators, TrustedInstaller or the
/// service's own account, and no ACE of its DACL grants anyone else a right
/// in kChangeRights. The error names the path and the account that could
/// change it.
Result<Done> check_trusted_path(const std::filesystem::path& path);

/// %ProgramData%\DiscArbiter.
std::filesystem::path data_directory();

}  // namespace discarbiter::host
