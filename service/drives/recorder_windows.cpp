// Windows recorders: the CD-ROM class driver's devices (GUID_DEVINTERFACE_CDROM),
// opened GENERIC_READ | GENERIC_WRITE, driven with IOCTL_SCSI_PASS_THROUGH_DIRECT,
// and locked for their owner with IOCTL_CDROM_EXCLUSIVE_ACCESS so IMAPI2 and
// every other program see who holds the drive and are kept out. Where the OS
// lacks a piece (Wine; third-party drivers), the drive still works without
// it, and the log says what is missing.
#include <windows.h>  // N.B. first: the headers below need its types

#include <winioctl.h>

#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "discarbiter/win32/cfgmgr.hpp"
#include "discarbiter/win32/error.hpp"
#include "discarbiter/win32/wide.hpp"
#include "drives/recorder.hpp"
#include "drives/spti_device_windows.hpp"

namespace discarbiter::drives {
namespace {

constexpr unsigned kProbedCdroms = 32;  // \\.\CdRom0 … \\.\CdRom31

/// "\\?\ide#cdrom…{53f56308-…}" -> its \\.\CdRomN number.
Result<DWORD> device_number(const std::string& path) {
  const auto h = open_device(path, 0);  // N.B. no access needed to ask
  if (!h)
    return Error{errc::dev_not_exist, win32::describe("open " + path, ::GetLastError())};
  STORAGE_DEVICE_NUMBER number{};
  DWORD returned = 0;
  if (!::DeviceIoControl(h.get(), IOCTL_STORAGE_GET_DEVICE_NUMBER, nullptr, 0, &number,
                         sizeof number, &returned, nullptr)) {
    return Error{errc::fail,
                 win32::describe("IOCTL_STORAGE_GET_DEVICE_NUMBER on " + path, ::GetLastError())};
  }
  // N.B. Wine answers every handle with a disk's number (DISK 1).
  if (number.DeviceType != FILE_DEVICE_CD_ROM && number.DeviceType != FILE_DEVICE_DVD) {
    return Error{errc::invalid_arg,
                 fmt::format("{} is not a CD-ROM device (device type {}); name it as "
                             "\\\\.\\CdRomN",
                             path, number.DeviceType)};
  }
  return number.DeviceNumber;
}

RecorderInfo info_for(DWORD number, std::string interface_path) {
  return RecorderInfo{fmt::format("cdrom{}", number), fmt::format("\\\\.\\CdRom{}", number),
                      std::move(interface_path)};
}

/// GUID_DEVINTERFACE_CDROM's interfaces, or why cfgmgr32 could not list them.
Result<std::vector<RecorderInfo>> list_interfaces() {
  // N.B. Wine's CM_Get_Device_Interface_ListW is a stub that aborts the
  // process: never reach it there.
  if (win32::running_under_wine())
    return Error{errc::fail, "cfgmgr32's device interface list is not implemented here (Wine)"};
  auto* guid = const_cast<GUID*>(&GUID_DEVINTERFACE_CDROM);
  std::wstring list;
  // N.B. a drive that arrives between the two calls makes the list too small:
  // ask again, a few times.
  CONFIGRET cr = CR_BUFFER_SMALL;
  for (int tries = 0; cr == CR_BUFFER_SMALL && tries < 4; ++tries) {
    ULONG length = 0;
    if (const CONFIGRET sized = ::CM_Get_Device_Interface_List_SizeW(
            &length, guid, nullptr, CM_GET_DEVICE_INTERFACE_LIST_PRESENT);
        sized != CR_SUCCESS) {
      return Error{errc::fail,
                   fmt::format("CM_Get_Device_Interface_List_SizeW(GUID_DEVINTERFACE_CDROM) failed "
                               "with CONFIGRET {}",
                               sized)};
    }
    if (length <= 1)
      return std::vector<RecorderInfo>{};  // none present
    list.assign(length, L'\0');
    cr = ::CM_Get_Device_Interface_ListW(guid, nullptr, list.data(), length,
                                         CM_GET_DEVICE_INTERFACE_LIST_PRESENT);
  }
  if (cr != CR_SUCCESS) {
    return Error{errc::fail,
                 fmt::format("CM_Get_Device_Interface_ListW(GUID_DEVINTERFACE_CDROM) failed with "
                             "CONFIGRET {}",
                             cr)};
  }
  std::vector<RecorderInfo> found;
  for (const wchar_t* p = list.c_str(); *p; p += wcslen(p) + 1) {
    const auto path = win32::to_utf8(p);
    const auto n = device_number(path);
    if (!n) {
      spdlog::warn("drive discovery: {} left out: {}", path, n.error().message);
      continue;
    }
    found.push_back(info_for(*n, path));
  }
  return found;
}

/// \\.\CdRom0 … \\.\CdRom31 that exist: each a candidate for open_recorder.
std::vector<RecorderInfo> probe_cdroms() {
  std::vector<RecorderInfo> found;
  for (unsigned n = 0; n < kProbedCdroms; ++n) {
    auto info = info_for(n, {});
    if (open_device(info.path, 0)) {  // N.B. no access needed to see it exists
      found.push_back(std::move(info));
      continue;
    }
    // N.B. a number no drive has is the common answer; anything else is news.
    if (const DWORD e = ::GetLastError(); e != ERROR_FILE_NOT_FOUND && e != ERROR_PATH_NOT_FOUND)
      spdlog::warn("drive discovery: {} left out: {}", info.path,
                   win32::describe("open " + info.path, e));
  }
  return found;
}

}  // namespace

Discovery find_recorders() {
  auto listed = list_interfaces();
  if (listed)
    return Discovery{std::move(listed.value()), "cfgmgr32", {}};
  return Discovery{probe_cdroms(), fmt::format("probing \\\\.\\CdRom0-{}", kProbedCdroms - 1),
                   listed.error()};
}

Result<RecorderInfo> recorder_at(const std::string& path) {
  unsigned n = 0;
  int used = 0;
  if (std::sscanf(path.c_str(), "\\\\.\\CdRom%u%n", &n, &used) == 1 &&
      static_cast<std::size_t>(used) == path.size()) {
    return info_for(n, {});
  }
  auto number = device_number(path);
  if (!number)
    return Error{number.error().code, fmt::format("--drive {}: {}", path, number.error().message)};
  return info_for(*number, path);
}

Result<std::shared_ptr<ScsiDevice>> open_recorder(const RecorderInfo& recorder,
                                                  std::chrono::seconds inquiry_timeout) {
  auto device = std::make_shared<SptiDevice>(recorder, make_win32_spti_io());
  if (auto opened = device->open(inquiry_timeout); !opened)
    return opened.error();
  return std::shared_ptr<ScsiDevice>(std::move(device));
}

}  // namespace discarbiter::drives
