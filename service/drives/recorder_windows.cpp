// Windows recorders: the CD-ROM class driver's devices (GUID_DEVINTERFACE_CDROM),
// opened GENERIC_READ | GENERIC_WRITE, driven with IOCTL_SCSI_PASS_THROUGH_DIRECT,
// and locked for their owner with IOCTL_CDROM_EXCLUSIVE_ACCESS so IMAPI2 and
// every other program see who holds the drive and are kept out. Where the OS
// lacks a piece (Wine; third-party drivers), the drive still works without
// it, and the log says what is missing.
#include <windows.h>  // N.B. first: the headers below need its types

#include <winioctl.h>

#include <mutex>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "discarbiter/win32/cfgmgr.hpp"
#include "discarbiter/win32/error.hpp"
#include "discarbiter/win32/handle.hpp"
#include "discarbiter/win32/wide.hpp"
#include "drives/recorder.hpp"
#include "drives/spti_protocol_windows.hpp"

namespace discarbiter::drives {
namespace {

using win32::unique_hfile;

unique_hfile open_device(const std::string& path, DWORD access) {
  return unique_hfile(::CreateFileW(win32::to_wide(path).c_str(), access,
                                    FILE_SHARE_READ | FILE_SHARE_WRITE, nullptr, OPEN_EXISTING,
                                    FILE_ATTRIBUTE_NORMAL, nullptr));
}

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

class SptiDevice final : public ScsiDevice {
 public:
  explicit SptiDevice(RecorderInfo info) : info_(std::move(info)) {
    description_.id = info_.id;
    description_.path = info_.path;
    description_.backend = "spti";
  }

  ~SptiDevice() override {
    // N.B. never from inside a notification callback (that deadlocks).
    for (auto n : notifications_)
      ::CM_Unregister_Notification(n);
  }

  Result<Done> open(std::chrono::seconds inquiry_timeout) {
    if (auto opened = reopen(); !opened)
      return opened;
    const auto adapter = query_adapter();
    const auto exclusive = query_exclusive_access();
    if (auto identified = read_identity(*this, description_, inquiry_timeout); !identified)
      return identified;
    // N.B. once per drive the service keeps, after it answered INQUIRY.
    for (const auto& warning : {spti::adapter_warning(info_.id, adapter),
                                spti::exclusive_access_warning(info_.id, exclusive)}) {
      if (!warning.empty())
        spdlog::warn("{}", warning);
    }
    return Done{};
  }

  DriveDescription describe() override { return description_; }

  ScsiResult execute(const ScsiCommand& command) override {
    std::lock_guard lock(mutex_);
    if (!handle_)
      return ScsiResult::failed(errc::dev_not_exist, info_.path + " is being removed");
    spti::AlignedBuffer data(
        command.direction == core::Direction::out ? command.data_out.size() : command.data_in_len,
        limits_.alignment_mask);
    auto request = spti::build_pass_through(command, data);
    DWORD returned = 0;
    const BOOL ok = ::DeviceIoControl(handle_.get(), IOCTL_SCSI_PASS_THROUGH_DIRECT, &request,
                                      sizeof request, &request, sizeof request, &returned, nullptr);
    return spti::read_pass_through(ok, ok ? ERROR_SUCCESS : ::GetLastError(), request, data,
                                   command);
  }

  Result<Done> lock_exclusive(const std::string& client_name, bool force) override {
    std::lock_guard lock(mutex_);
    if (auto locked = send_lock(client_name, force); !locked)
      return locked;
    locked_as_ = client_name;
    locked_force_ = force;
    return Done{};
  }

  Result<Done> unlock_exclusive() override {
    std::lock_guard lock(mutex_);
    locked_as_.clear();
    if (!handle_)
      return Done{};  // N.B. the closed handle took the lock with it
    if (!os_lock_supported())
      return Done{};
    auto request = spti::make_exclusive_unlock();
    DWORD returned = 0;
    if (!::DeviceIoControl(handle_.get(), spti::kIoctlCdromExclusiveAccess, &request,
                           sizeof request, nullptr, 0, &returned, nullptr)) {
      const DWORD e = ::GetLastError();
      return Error{spti::transport_error(e),
                   win32::describe("IOCTL_CDROM_EXCLUSIVE_ACCESS (unlock)", e)};
    }
    return Done{};
  }

  // N.B. DeviceIoControl without overlapped I/O returns by the command's
  // own TimeOutValue; there is nothing to interrupt.
  void cancel() override {}

 private:
  Result<Done> reopen() {
    handle_ = open_device(info_.path, GENERIC_READ | GENERIC_WRITE);
    if (!handle_) {
      const DWORD e = ::GetLastError();
      return Error{spti::transport_error(e), win32::describe("open " + info_.path, e)};
    }
    if (!win32::device_notifications_available())
      return Done{};
    CM_NOTIFY_FILTER filter{};
    filter.cbSize = sizeof filter;
    filter.FilterType = CM_NOTIFY_FILTER_TYPE_DEVICEHANDLE;
    filter.u.DeviceHandle.hTarget = handle_.get();
    HCMNOTIFICATION notification = nullptr;
    // N.B. a failure here costs only the polite query-remove; commands still
    // fail cleanly once the drive is gone.
    if (::CM_Register_Notification(&filter, this, &SptiDevice::on_handle_event, &notification) ==
        CR_SUCCESS) {
      notifications_.push_back(notification);
    }
    return Done{};
  }

  spti::AdapterQuery query_adapter() {
    STORAGE_PROPERTY_QUERY query{};
    query.PropertyId = StorageAdapterProperty;
    query.QueryType = PropertyStandardQuery;
    alignas(8) std::byte reply[256] = {};
    DWORD returned = 0;
    const BOOL ok = ::DeviceIoControl(handle_.get(), IOCTL_STORAGE_QUERY_PROPERTY, &query,
                                      sizeof query, reply, sizeof reply, &returned, nullptr);
    auto answer = spti::read_adapter_query(ok, ok ? ERROR_SUCCESS : ::GetLastError(), reply,
                                           ok ? returned : 0);
    limits_ = answer.limits;
    description_.max_transfer_bytes = limits_.max_transfer_bytes;
    return answer;
  }

  /// Whether the driver below has the class driver's lock at all.
  spti::ExclusiveProbe query_exclusive_access() {
    auto query = spti::make_exclusive_query();
    spti::ExclusiveLockState state{};
    DWORD returned = 0;
    const BOOL ok = ::DeviceIoControl(handle_.get(), spti::kIoctlCdromExclusiveAccess, &query,
                                      sizeof query, &state, sizeof state, &returned, nullptr);
    auto probe = spti::read_exclusive_probe(ok, ok ? ERROR_SUCCESS : ::GetLastError(), state);
    description_.os_lock = spti::os_lock_for(probe);
    return probe;
  }

  bool os_lock_supported() const { return description_.os_lock != core::OsLock::unsupported; }

  Result<Done> send_lock(const std::string& name, bool force) {
    if (!handle_)
      return Error{errc::dev_not_exist, info_.path + " is being removed"};
    // N.B. the service's own lock still keeps every other DiscArbiter client
    // out; open() warned what the OS does not do.
    if (!os_lock_supported())
      return Done{};
    auto request = spti::make_exclusive_lock(name, force);
    DWORD returned = 0;
    if (::DeviceIoControl(handle_.get(), spti::kIoctlCdromExclusiveAccess, &request, sizeof request,
                          nullptr, 0, &returned, nullptr)) {
      return Done{};
    }
    const DWORD e = ::GetLastError();
    // Someone outside DiscArbiter (IMAPI2, another burner) may hold it.
    auto query = spti::make_exclusive_query();
    spti::ExclusiveLockState state{};
    if (::DeviceIoControl(handle_.get(), spti::kIoctlCdromExclusiveAccess, &query, sizeof query,
                          &state, sizeof state, &returned, nullptr)) {
      if (const auto holder = spti::read_lock_state(state); !holder.empty()) {
        return Error{errc::recorder_locked,
                     fmt::format("{} is locked outside DiscArbiter by '{}'", info_.path, holder)};
      }
    }
    auto message = win32::describe("IOCTL_CDROM_EXCLUSIVE_ACCESS (lock)", e);
    if (e == ERROR_NOT_SUPPORTED || e == ERROR_INVALID_FUNCTION)
      message += "; the driver answered the lock's query_state at open but refuses the lock";
    return Error{e == ERROR_ACCESS_DENIED ? errc::access_denied : spti::transport_error(e),
                 std::move(message)};
  }

  // Plug and Play asks before a drive goes: close the handle so it can, and
  // take it up again (with the owner's lock) if the removal is called off.
  static DWORD CALLBACK on_handle_event(HCMNOTIFICATION, PVOID context, CM_NOTIFY_ACTION action,
                                        PCM_NOTIFY_EVENT_DATA, DWORD) {
    auto* self = static_cast<SptiDevice*>(context);
    std::lock_guard lock(self->mutex_);
    switch (action) {
      case CM_NOTIFY_ACTION_DEVICEQUERYREMOVE:
      case CM_NOTIFY_ACTION_DEVICEREMOVEPENDING:
      case CM_NOTIFY_ACTION_DEVICEREMOVECOMPLETE:
        self->handle_.reset();
        break;
      case CM_NOTIFY_ACTION_DEVICEQUERYREMOVEFAILED:
        if (!self->handle_ && self->reopen() && !self->locked_as_.empty())
          (void)self->send_lock(self->locked_as_, self->locked_force_);
        break;
      default:
        break;
    }
    return ERROR_SUCCESS;
  }

  RecorderInfo info_;
  DriveDescription description_;
  spti::AdapterLimits limits_;
  std::mutex mutex_;  // N.B. the PnP callback closes and reopens the handle
  unique_hfile handle_;
  std::string locked_as_;
  bool locked_force_ = false;
  std::vector<HCMNOTIFICATION> notifications_;
};

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
    if (const auto n = device_number(path))
      found.push_back(info_for(*n, path));
  }
  return found;
}

/// \\.\CdRom0 … \\.\CdRom31 that exist: each a candidate for open_recorder.
std::vector<RecorderInfo> probe_cdroms() {
  std::vector<RecorderInfo> found;
  for (unsigned n = 0; n < kProbedCdroms; ++n) {
    auto info = info_for(n, {});
    if (open_device(info.path, 0))  // N.B. no access needed to see it exists
      found.push_back(std::move(info));
  }
  return found;
}

}  // namespace

Discovery find_recorders() {
  auto listed = list_interfaces();
  if (listed)
    return Discovery{std::move(listed.value()), "cfgmgr32", {}};
  return Discovery{probe_cdroms(), fmt::format("probing \\\\.\\CdRom0-{}", kProbedCdroms - 1),
                   listed.error().message};
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
  auto device = std::make_shared<SptiDevice>(recorder);
  if (auto opened = device->open(inquiry_timeout); !opened)
    return opened.error();
  return std::shared_ptr<ScsiDevice>(std::move(device));
}

}  // namespace discarbiter::drives
