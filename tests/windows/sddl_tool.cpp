// A test helper for the Windows tests run under Wine, which has no icacls:
//   sddl_tool get PATH          prints PATH's owner and DACL as SDDL
//   sddl_tool mkdir PATH SDDL   creates the folder PATH with that security
#include <aclapi.h>
#include <sddl.h>
#include <windows.h>

#include <cstdio>
#include <cwchar>

int wmain(int argc, wchar_t** argv) {
  if (argc == 3 && std::wcscmp(argv[1], L"get") == 0) {
    PSECURITY_DESCRIPTOR sd = nullptr;
    const DWORD got = ::GetNamedSecurityInfoW(
        argv[2], SE_FILE_OBJECT, OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION, nullptr,
        nullptr, nullptr, nullptr, &sd);
    if (got != ERROR_SUCCESS) {
      std::fprintf(stderr, "GetNamedSecurityInfoW: error %lu\n", got);
      return 1;
    }
    wchar_t* text = nullptr;
    if (!::ConvertSecurityDescriptorToStringSecurityDescriptorW(
            sd, SDDL_REVISION_1, OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION, &text,
            nullptr)) {
      std::fprintf(stderr, "ConvertSecurityDescriptorToStringSecurityDescriptorW: error %lu\n",
                   ::GetLastError());
      return 1;
    }
    std::printf("%ls\n", text);
    ::LocalFree(text);
    ::LocalFree(sd);
    return 0;
  }
  if (argc == 4 && std::wcscmp(argv[1], L"mkdir") == 0) {
    PSECURITY_DESCRIPTOR sd = nullptr;
    if (!::ConvertStringSecurityDescriptorToSecurityDescriptorW(argv[3], SDDL_REVISION_1, &sd,
                                                                nullptr)) {
      std::fprintf(stderr, "bad SDDL: error %lu\n", ::GetLastError());
      return 1;
    }
    SECURITY_ATTRIBUTES sa{sizeof sa, sd, FALSE};
    BOOL made = ::CreateDirectoryW(argv[2], &sa);
    DWORD error = ::GetLastError();
    if (made) {
      // N.B. once more after creation: Wine masks a new folder's mode with
      // the umask, and maps the DACL to the mode only when set this way.
      BOOL present = FALSE;
      BOOL defaulted = FALSE;
      PACL dacl = nullptr;
      ::GetSecurityDescriptorDacl(sd, &present, &dacl, &defaulted);
      error = ::SetNamedSecurityInfoW(
          argv[2], SE_FILE_OBJECT, DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
          nullptr, nullptr, dacl, nullptr);
      made = error == ERROR_SUCCESS;
    }
    ::LocalFree(sd);
    if (!made) {
      std::fprintf(stderr, "CreateDirectoryW/SetNamedSecurityInfoW: error %lu\n", error);
      return 1;
    }
    return 0;
  }
  std::fprintf(stderr, "usage: sddl_tool get PATH | sddl_tool mkdir PATH SDDL\n");
  return 2;
}
