// %ProgramData%\DiscArbiter's protection (data_directory_windows.hpp), on
// folders of the test's own under %TEMP%: the protected DACL read back, and
// planted folders and files that others can change refused, naming the path.
// Runs under Wine here; checks that Wine cannot emulate skip with the reason.
#include "host/data_directory_windows.hpp"

#include <aclapi.h>
#include <sddl.h>
#include <windows.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <vector>

#include <fmt/format.h>

#include "discarbiter/win32/cfgmgr.hpp"
#include "discarbiter/win32/handle.hpp"

namespace discarbiter::host {
namespace {

namespace fs = std::filesystem;

using win32::running_under_wine;

/// A fresh folder under %TEMP% for one test, removed afterwards.
class TempRoot {
 public:
  TempRoot() {
    root_ = fs::temp_directory_path() /
            fmt::format("discarbiter-dd-{}-{}", ::GetCurrentProcessId(), ::GetTickCount64());
    fs::create_directories(root_);
  }
  ~TempRoot() {
    std::error_code ignored;
    fs::remove_all(root_, ignored);
  }
  const fs::path& path() const { return root_; }

 private:
  fs::path root_;
};

win32::unique_hlocal descriptor_from(const wchar_t* sddl) {
  PSECURITY_DESCRIPTOR raw = nullptr;
  EXPECT_TRUE(
      ::ConvertStringSecurityDescriptorToSecurityDescriptorW(sddl, SDDL_REVISION_1, &raw, nullptr));
  return win32::unique_hlocal(raw);
}

/// Sets the DACL of `sd` on `path` once more after creation: Wine masks a
/// new file's mode with the umask and maps a DACL to the mode only when it is
/// set this way (it keeps no DACL of its own).
void set_dacl_again(const fs::path& path, PSECURITY_DESCRIPTOR sd) {
  BOOL present = FALSE;
  BOOL defaulted = FALSE;
  PACL dacl = nullptr;
  ASSERT_TRUE(::GetSecurityDescriptorDacl(sd, &present, &dacl, &defaulted));
  const DWORD set =
      ::SetNamedSecurityInfoW(const_cast<wchar_t*>(path.c_str()), SE_FILE_OBJECT,
                              DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                              nullptr, nullptr, dacl, nullptr);
  ASSERT_EQ(set, static_cast<DWORD>(ERROR_SUCCESS));
}

void create_directory_with(const fs::path& dir, const wchar_t* sddl) {
  const auto sd = descriptor_from(sddl);
  SECURITY_ATTRIBUTES sa{sizeof sa, sd.get(), FALSE};
  ASSERT_TRUE(::CreateDirectoryW(dir.c_str(), &sa)) << ::GetLastError();
  set_dacl_again(dir, sd.get());
}

void create_file_with(const fs::path& file, const wchar_t* sddl) {
  const auto sd = descriptor_from(sddl);
  SECURITY_ATTRIBUTES sa{sizeof sa, sd.get(), FALSE};
  {
    const win32::unique_hfile f(::CreateFileW(file.c_str(), GENERIC_WRITE, 0, &sa, CREATE_NEW,
                                              FILE_ATTRIBUTE_NORMAL, nullptr));
    ASSERT_TRUE(f.valid()) << ::GetLastError();
  }
  set_dacl_again(file, sd.get());
}

/// The SDDL of a path's owner and DACL, for messages.
std::string sddl_of(const fs::path& path) {
  PSECURITY_DESCRIPTOR sd = nullptr;
  if (::GetNamedSecurityInfoW(path.c_str(), SE_FILE_OBJECT,
                              OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION, nullptr,
                              nullptr, nullptr, nullptr, &sd) != ERROR_SUCCESS)
    return "?";
  const win32::unique_hlocal owned(sd);
  wchar_t* text = nullptr;
  if (!::ConvertSecurityDescriptorToStringSecurityDescriptorW(
          sd, SDDL_REVISION_1, OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION, &text,
          nullptr))
    return "?";
  const std::wstring wide(text);
  ::LocalFree(text);
  return {wide.begin(), wide.end()};
}

struct Ace {
  std::string sid;
  DWORD mask;
  BYTE flags;
};

/// The DACL of `path` as (SID string, mask, flags), and whether it is protected.
std::pair<std::vector<Ace>, bool> read_dacl(const fs::path& path) {
  PACL dacl = nullptr;
  PSECURITY_DESCRIPTOR raw = nullptr;
  const DWORD got = ::GetNamedSecurityInfoW(path.c_str(), SE_FILE_OBJECT, DACL_SECURITY_INFORMATION,
                                            nullptr, nullptr, &dacl, nullptr, &raw);
  EXPECT_EQ(got, static_cast<DWORD>(ERROR_SUCCESS));
  const win32::unique_hlocal sd(raw);
  SECURITY_DESCRIPTOR_CONTROL control = 0;
  DWORD revision = 0;
  ::GetSecurityDescriptorControl(raw, &control, &revision);
  std::vector<Ace> aces;
  for (DWORD i = 0; dacl && i < dacl->AceCount; ++i) {
    void* ace = nullptr;
    ::GetAce(dacl, i, &ace);
    auto* allowed = static_cast<ACCESS_ALLOWED_ACE*>(ace);
    wchar_t* sid = nullptr;
    ::ConvertSidToStringSidW(&allowed->SidStart, &sid);
    const std::wstring wide(sid);
    ::LocalFree(sid);
    aces.push_back(
        {std::string(wide.begin(), wide.end()), allowed->Mask, allowed->Header.AceFlags});
  }
  return {aces, (control & SE_DACL_PROTECTED) != 0};
}

bool has_ace_for(const fs::path& path, std::string_view sid) {
  const auto aces = read_dacl(path).first;
  return std::any_of(aces.begin(), aces.end(), [&](const Ace& a) { return a.sid == sid; });
}

TEST(DataDirectory, IsCreatedWithAProtectedDaclForSystemAdministratorsAndUsersRead) {
  TempRoot temp;
  const auto dir = temp.path() / "DiscArbiter";
  const auto made = create_trusted_directory(dir);
  ASSERT_TRUE(made.ok()) << made.error().message;
  const auto logs = dir / "logs";
  const auto made_logs = create_trusted_directory(logs);
  ASSERT_TRUE(made_logs.ok()) << made_logs.error().message;

  // Whatever the DACL reads back as, the service trusts what it made.
  EXPECT_TRUE(check_trusted_path(dir).ok());
  EXPECT_TRUE(check_trusted_path(logs).ok());
  if (running_under_wine() && !has_ace_for(dir, "S-1-5-32-545")) {
    std::printf(
        "skipped: Wine keeps no DACL of its own; it shows one made from the folder's "
        "Unix mode (%s). Windows returns the protected DACL set\n",
        sddl_of(dir).c_str());
    return;
  }
  const auto [aces, is_protected] = read_dacl(dir);
  const BYTE inherit = OBJECT_INHERIT_ACE | CONTAINER_INHERIT_ACE;
  ASSERT_EQ(aces.size(), 3U);
  EXPECT_EQ(aces[0].sid, "S-1-5-18");
  EXPECT_EQ(aces[0].mask, static_cast<DWORD>(FILE_ALL_ACCESS));
  EXPECT_EQ(aces[1].sid, "S-1-5-32-544");
  EXPECT_EQ(aces[1].mask, static_cast<DWORD>(FILE_ALL_ACCESS));
  EXPECT_EQ(aces[2].sid, "S-1-5-32-545");
  EXPECT_EQ(aces[2].mask, kDataDirectoryUsersAccess);
  for (const auto& ace : aces)
    EXPECT_EQ(ace.flags & inherit, inherit) << ace.sid;
  EXPECT_TRUE(is_protected) << "the DACL must not inherit %ProgramData%'s";

  // logs\ inherits exactly these: nobody else may create a file in it.
  const auto log_aces = read_dacl(logs).first;
  ASSERT_EQ(log_aces.size(), 3U);
  EXPECT_EQ(log_aces[2].sid, "S-1-5-32-545");
  EXPECT_EQ(log_aces[2].mask, kDataDirectoryUsersAccess);
  EXPECT_TRUE(log_aces[2].flags & INHERITED_ACE);
}

TEST(DataDirectory, AFolderPlantedWithAnEveryoneFullControlDaclIsRefusedNamingThePath) {
  TempRoot temp;
  const auto dir = temp.path() / "DiscArbiter";
  create_directory_with(dir, L"D:P(A;OICI;FA;;;WD)");
  const auto made = create_trusted_directory(dir);
  ASSERT_FALSE(made.ok()) << sddl_of(dir);
  EXPECT_EQ(made.error().code, errc::access_denied);
  EXPECT_NE(made.error().message.find(dir.string()), std::string::npos) << made.error().message;
  EXPECT_NE(made.error().message.find("S-1-1-0"), std::string::npos) << made.error().message;
  std::printf("refused: %s\n", made.error().message.c_str());
}

TEST(DataDirectory, AFolderUsersMayCreateFilesInIsRefused) {
  TempRoot temp;
  const auto dir = temp.path() / "DiscArbiter";
  // What %ProgramData% hands down by default: Users may add files and folders.
  create_directory_with(dir, L"D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;CI;0x100006;;;BU)");
  if (running_under_wine() && !has_ace_for(dir, "S-1-5-32-545")) {
    std::printf(
        "skipped: Wine shows no ACE for BUILTIN\\Users (%s); the Everyone cases "
        "cover the check under Wine\n",
        sddl_of(dir).c_str());
    return;
  }
  const auto made = create_trusted_directory(dir);
  ASSERT_FALSE(made.ok());
  EXPECT_NE(made.error().message.find("S-1-5-32-545"), std::string::npos) << made.error().message;
}

TEST(DataDirectory, AConfigFileUsersMayWriteIsRefusedAndAProtectedOneIsTrusted) {
  TempRoot temp;
  const auto dir = temp.path() / "DiscArbiter";
  ASSERT_TRUE(create_trusted_directory(dir).ok());
  const auto good = dir / "discarbiter.json";
  create_file_with(good, L"D:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FR;;;BU)");
  const auto trusted = check_trusted_path(good);
  EXPECT_TRUE(trusted.ok()) << trusted.error().message;

  const auto planted = dir / "planted.json";
  create_file_with(planted, L"D:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FRFW;;;WD)");
  const auto refused = check_trusted_path(planted);
  ASSERT_FALSE(refused.ok()) << sddl_of(planted);
  EXPECT_NE(refused.error().message.find(planted.string()), std::string::npos);
  EXPECT_NE(refused.error().message.find("S-1-1-0"), std::string::npos) << refused.error().message;
}

TEST(DataDirectory, AJunctionOrSymbolicLinkIsRefusedWithoutFollowingIt) {
  TempRoot temp;
  const auto target = temp.path() / "elsewhere";
  ASSERT_TRUE(create_trusted_directory(target).ok());
  const auto link = temp.path() / "DiscArbiter";
  if (!::CreateSymbolicLinkW(link.c_str(), target.c_str(), SYMBOLIC_LINK_FLAG_DIRECTORY)) {
    const DWORD error = ::GetLastError();
    if (running_under_wine()) {
      std::printf("skipped: Wine could not create a directory symbolic link (error %lu)\n", error);
      return;
    }
    GTEST_SKIP() << "creating a symbolic link needs a privilege this account lacks (error " << error
                 << ")";
  }
  const DWORD attributes = ::GetFileAttributesW(link.c_str());
  if (running_under_wine() &&
      (attributes == INVALID_FILE_ATTRIBUTES || !(attributes & FILE_ATTRIBUTE_REPARSE_POINT))) {
    std::printf(
        "skipped: Wine does not report its symbolic link as a reparse point "
        "(attributes 0x%lx)\n",
        attributes);
    return;
  }
  const auto made = create_trusted_directory(link);
  ASSERT_FALSE(made.ok());
  EXPECT_NE(made.error().message.find("junction or symbolic link"), std::string::npos)
      << made.error().message;
}

}  // namespace
}  // namespace discarbiter::host
