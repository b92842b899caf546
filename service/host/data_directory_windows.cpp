#include "host/data_directory_windows.hpp"

#include <aclapi.h>
#include <sddl.h>

#include <array>
#include <vector>

#include <fmt/format.h>

#include "discarbiter/win32/account.hpp"
#include "discarbiter/win32/error.hpp"
#include "discarbiter/win32/handle.hpp"
#include "discarbiter/win32/wide.hpp"

namespace discarbiter::host {
namespace {

using win32::describe;

/// NT SERVICE\TrustedInstaller, which owns much of a stock Windows.
constexpr wchar_t kTrustedInstallerSid[] =
    L"S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464";

std::vector<BYTE> well_known_sid(WELL_KNOWN_SID_TYPE type) {
  std::vector<BYTE> sid(SECURITY_MAX_SID_SIZE);
  DWORD size = static_cast<DWORD>(sid.size());
  if (!::CreateWellKnownSid(type, nullptr, sid.data(), &size))
    return {};
  sid.resize(size);
  return sid;
}

std::vector<BYTE> sid_from_string(const wchar_t* text) {
  PSID raw = nullptr;
  if (!::ConvertStringSidToSidW(text, &raw))
    return {};
  const win32::unique_hlocal owned(raw);
  const auto* bytes = static_cast<const BYTE*>(raw);
  return {bytes, bytes + ::GetLengthSid(raw)};
}

/// The account this process runs as (LocalSystem for the service).
std::vector<BYTE> own_account_sid() {
  HANDLE raw = nullptr;
  if (!::OpenProcessToken(::GetCurrentProcess(), TOKEN_QUERY, &raw))
    return {};
  const win32::unique_handle token(raw);
  std::array<BYTE, sizeof(TOKEN_USER) + SECURITY_MAX_SID_SIZE> buffer{};
  DWORD size = 0;
  if (!::GetTokenInformation(token.get(), TokenUser, buffer.data(),
                             static_cast<DWORD>(buffer.size()), &size))
    return {};
  const PSID sid = reinterpret_cast<const TOKEN_USER*>(buffer.data())->User.Sid;
  const auto* bytes = static_cast<const BYTE*>(sid);
  return {bytes, bytes + ::GetLengthSid(sid)};
}

/// SYSTEM, Administrators, TrustedInstaller and the service's own account.
bool is_trusted(PSID sid) {
  static const std::array<std::vector<BYTE>, 4> trusted = {
      well_known_sid(WinLocalSystemSid), well_known_sid(WinBuiltinAdministratorsSid),
      sid_from_string(kTrustedInstallerSid), own_account_sid()};
  for (const auto& t : trusted) {
    if (!t.empty() && ::EqualSid(sid, const_cast<BYTE*>(t.data())))
      return true;
  }
  return false;
}

Error untrusted(const std::filesystem::path& path, const std::string& why) {
  return Error{errc::access_denied,
               fmt::format("{} {}; the service will not use it. Remove it, or let only SYSTEM "
                           "and Administrators change it (docs/windows.md, \"The data "
                           "directory\")",
                           path.string(), why)};
}

}  // namespace

std::filesystem::path data_directory() {
  std::array<wchar_t, MAX_PATH> buffer{};
  const DWORD n =
      ::GetEnvironmentVariableW(L"ProgramData", buffer.data(), static_cast<DWORD>(buffer.size()));
  const std::filesystem::path root = n == 0 || n >= buffer.size()
                                         ? std::filesystem::path(L"C:\\ProgramData")
                                         : std::filesystem::path(std::wstring(buffer.data(), n));
  return root / L"DiscArbiter";
}

Result<Done> check_trusted_path(const std::filesystem::path& path) {
  // N.B. FILE_FLAG_OPEN_REPARSE_POINT: open the junction or link itself,
  // never what it points to; the security is read from this same handle.
  const win32::unique_hfile file(
      ::CreateFileW(path.c_str(), READ_CONTROL | FILE_READ_ATTRIBUTES,
                    FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, nullptr, OPEN_EXISTING,
                    FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT, nullptr));
  if (!file)
    return Error{errc::fail,
                 fmt::format("{}: {}", path.string(), describe("CreateFileW", ::GetLastError()))};
  BY_HANDLE_FILE_INFORMATION info{};
  if (!::GetFileInformationByHandle(file.get(), &info))
    return Error{errc::fail, fmt::format("{}: {}", path.string(),
                                         describe("GetFileInformationByHandle", ::GetLastError()))};
  if (info.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT)
    return untrusted(path, "is a junction or symbolic link");

  PSID owner = nullptr;
  PACL dacl = nullptr;
  PSECURITY_DESCRIPTOR raw = nullptr;
  const DWORD got = ::GetSecurityInfo(file.get(), SE_FILE_OBJECT,
                                      OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION,
                                      &owner, nullptr, &dacl, nullptr, &raw);
  if (got != ERROR_SUCCESS)
    return Error{errc::fail,
                 fmt::format("{}: {}", path.string(), describe("GetSecurityInfo", got))};
  const win32::unique_hlocal descriptor(raw);
  if (!owner || !is_trusted(owner))
    return untrusted(path,
                     fmt::format("is owned by {}", owner ? win32::describe_sid(owner) : "no one"));
  if (!dacl)
    return untrusted(path, "has no DACL: everyone may change it");
  for (DWORD i = 0; i < dacl->AceCount; ++i) {
    void* ace = nullptr;
    if (!::GetAce(dacl, i, &ace))
      return Error{errc::fail,
                   fmt::format("{}: {}", path.string(), describe("GetAce", ::GetLastError()))};
    const auto* header = static_cast<const ACE_HEADER*>(ace);
    if (header->AceType != ACCESS_ALLOWED_ACE_TYPE)
      continue;  // N.B. deny ACEs take nothing away from what we check
    auto* allowed = static_cast<ACCESS_ALLOWED_ACE*>(ace);
    const PSID sid = &allowed->SidStart;
    // N.B. inherit-only ACEs too: they would let their holder change what
    // is created inside later (discarbiter.json, the logs).
    if ((allowed->Mask & kChangeRights) != 0 && !is_trusted(sid)) {
      return untrusted(path, fmt::format("can be changed by {} (access mask 0x{:x})",
                                         win32::describe_sid(sid), allowed->Mask));
    }
  }
  return Done{};
}

Result<Done> create_trusted_directory(const std::filesystem::path& dir) {
  PSECURITY_DESCRIPTOR raw = nullptr;
  if (!::ConvertStringSecurityDescriptorToSecurityDescriptorW(kDataDirectorySddl, SDDL_REVISION_1,
                                                              &raw, nullptr)) {
    return Error{errc::fail, describe("ConvertStringSecurityDescriptorToSecurityDescriptorW",
                                      ::GetLastError())};
  }
  const win32::unique_hlocal descriptor(raw);
  SECURITY_ATTRIBUTES attributes{sizeof attributes, raw, FALSE};
  if (!::CreateDirectoryW(dir.c_str(), &attributes)) {
    const DWORD error = ::GetLastError();
    // N.B. one that exists is checked, never repaired: whoever made it may
    // have put something inside already.
    if (error != ERROR_ALREADY_EXISTS)
      return Error{errc::fail,
                   fmt::format("{}: {}", dir.string(), describe("CreateDirectoryW", error))};
  }
  if (auto trusted = check_trusted_path(dir); !trusted)
    return trusted;
  const DWORD attributes_now = ::GetFileAttributesW(dir.c_str());
  if (attributes_now == INVALID_FILE_ATTRIBUTES || !(attributes_now & FILE_ATTRIBUTE_DIRECTORY))
    return untrusted(dir, "is not a folder");
  return Done{};
}

}  // namespace discarbiter::host
