// Naming accounts for messages and identities: the service's and the client
// library's errors say who is meant the same way.
#pragma once

#include <windows.h>

#include <sddl.h>

#include <array>
#include <string>

#include "discarbiter/win32/handle.hpp"
#include "discarbiter/win32/wide.hpp"

namespace discarbiter::win32 {

/// "S-1-5-18"; empty when the SID cannot be converted.
inline std::string sid_string(PSID sid) {
  wchar_t* text = nullptr;
  if (!::ConvertSidToStringSidW(sid, &text))
    return {};
  const unique_hlocal owner(text);
  return to_utf8(text);
}

/// "DOMAIN\\name" ("Everyone" where there is no domain); empty for a SID
/// that names no account. N.B. may ask a domain controller: not for a hot path.
inline std::string account_name(PSID sid) {
  std::array<wchar_t, 256> name{};
  std::array<wchar_t, 256> domain{};
  DWORD name_len = static_cast<DWORD>(name.size());
  DWORD domain_len = static_cast<DWORD>(domain.size());
  SID_NAME_USE use{};
  if (!::LookupAccountSidW(nullptr, sid, name.data(), &name_len, domain.data(), &domain_len, &use))
    return {};
  std::wstring full = domain_len ? std::wstring(domain.data(), domain_len) + L"\\" : L"";
  full.append(name.data(), name_len);
  return to_utf8(full);
}

/// "DOMAIN\\name (S-1-…)", or the SID alone for an account without a name.
inline std::string describe_sid(PSID sid) {
  std::string text = sid_string(sid);
  if (text.empty())
    text = "an unreadable SID";
  const std::string name = account_name(sid);
  return name.empty() ? text : name + " (" + text + ")";
}

}  // namespace discarbiter::win32
