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

/// Wine's ntdll exports wine_get_version. Wine's cfgmgr32 lacks pieces that
/// abort the process when called (CM_Get_Device_Interface_ListW) or are not
/// there (CM_Register_Notification); callers ask this first and say why they
/// go without.
inline bool running_under_wine() {
  const HMODULE ntdll = ::GetModuleHandleW(L"ntdll.dll");
  return ntdll != nullptr && ::GetProcAddress(ntdll, "wine_get_version") != nullptr;
}

inline bool device_notifications_available() {
  return !running_under_wine();
}

}  // namespace discarbiter::win32
