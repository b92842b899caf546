// cfgmgr32's device notifications. MinGW-w64's cfgmgr32.h has the types
// (CM_NOTIFY_FILTER, PCM_NOTIFY_CALLBACK, HCMNOTIFICATION) and its import
// library the functions, but not their declarations: these are the Windows
// SDK's (Windows 8 and later).
#pragma once

#include <windows.h>  // N.B. first: cfgmgr32.h needs its types

#include <cfgmgr32.h>

#if defined(__MINGW32__)
extern "C" {
CMAPI CONFIGRET WINAPI CM_Register_Notification(PCM_NOTIFY_FILTER pFilter, PVOID pContext,
                                                PCM_NOTIFY_CALLBACK pCallback,
                                                PHCMNOTIFICATION pNotifyContext);
CMAPI CONFIGRET WINAPI CM_Unregister_Notification(HCMNOTIFICATION NotifyContext);
}
#endif

namespace discarbiter::win32 {

/// Wine exports CM_Register_Notification as a stub that aborts the process
/// when called; every caller asks this first and reports why it goes without.
inline bool device_notifications_available() {
  const HMODULE ntdll = ::GetModuleHandleW(L"ntdll.dll");
  return ntdll == nullptr || ::GetProcAddress(ntdll, "wine_get_version") == nullptr;
}

}  // namespace discarbiter::win32
