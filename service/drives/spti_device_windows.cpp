#include "drives/spti_device_windows.hpp"

#include <winioctl.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "discarbiter/win32/error.hpp"
#include "discarbiter/win32/wide.hpp"

namespace discarbiter::drives {
win32::unique_hfile open_device(const std::string& path, DWORD access) {
  return win32::unique_hfile(::CreateFileW(win32::to_wide(path).c_str(), access,
                                           FILE_SHARE_READ | FILE_SHARE_WRITE, nullptr,
                                           OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, nullptr));
}

namespace {

class Win32SptiIo final : public SptiIo {
 public:
  DWORD open(const std::string& path) override {
    handle_ = open_device(path, GENERIC_READ | GENERIC_WRITE);
    return handle_ ? ERROR_SUCCESS : ::GetLastError();
  }
  void close() override { handle_.reset(); }
  bool is_open() const override { return handle_.valid(); }
  HANDLE native_handle() const override { return handle_ ? handle_.get() : nullptr; }

  IoctlOutcome control(DWORD code, const void* in, DWORD in_bytes, void* out,
                       DWORD out_bytes) override {
    IoctlOutcome outcome;
    if (!::DeviceIoControl(handle_.get(), code, const_cast<void*>(in), in_bytes, out, out_bytes,
                           &outcome.returned, nullptr)) {
      outcome.error = ::GetLastError();
    }
    return outcome;
  }

 private:
  win32::unique_hfile handle_;
};

}  // namespace

std::unique_ptr<SptiIo> make_win32_spti_io() {
  return std::make_unique<Win32SptiIo>();
}

SptiDevice::SptiDevice(RecorderInfo info, std::unique_ptr<SptiIo> io)
    : info_(std::move(info)), io_(std::move(io)) {
  description_.id = info_.id;
  description_.path = info_.path;
  description_.backend = "spti";
}

SptiDevice::~SptiDevice() {
  // N.B. never from inside a notification callback (that deadlocks).
  for (auto n : notifications_)
    ::CM_Unregister_Notification(n);
}

Result<Done> SptiDevice::open(std::chrono::seconds inquiry_timeout) {
  if (auto opened = reopen(); !opened)
    return opened;
  const auto adapter = query_adapter();
  probe_ = query_exclusive_access();
  if (auto identified = read_identity(*this, description_, inquiry_timeout); !identified) {
    // N.B. the class driver keeps other programs' commands out while another
    // program holds its lock: that is the likelier cause to name.
    if (!probe_.holder.empty()) {
      return Error{errc::recorder_locked,
                   fmt::format("{} is locked outside DiscArbiter by '{}'; its INQUIRY failed: {}",
                               info_.path, probe_.holder, identified.error().message)};
    }
    return identified;
  }
  // N.B. once per open of the drive, after it answered INQUIRY: a drive that
  // arrives again warns again.
  for (const auto& warning : {spti::adapter_warning(info_.id, adapter),
                              spti::exclusive_access_warning(info_.id, probe_)}) {
    if (!warning.empty())
      spdlog::warn("{}", warning);
  }
  return Done{};
}

DriveDescription SptiDevice::describe() {
  return description_;
}

ScsiResult SptiDevice::execute(const ScsiCommand& command) {
  std::lock_guard lock(mutex_);
  if (!io_->is_open())
    return ScsiResult::failed(errc::dev_not_exist, info_.path + " is being removed");
  spti::AlignedBuffer data(
      command.direction == core::Direction::out ? command.data_out.size() : command.data_in_len,
      limits_.alignment_mask);
  auto request = spti::build_pass_through(command, data);
  const auto outcome = io_->control(IOCTL_SCSI_PASS_THROUGH_DIRECT, &request, sizeof request,
                                    &request, sizeof request);
  return spti::read_pass_through(outcome.ok(), outcome.error, request, data, command);
}

Result<Done> SptiDevice::lock_exclusive(const std::string& client_name, bool force) {
  std::lock_guard lock(mutex_);
  if (auto locked = send_lock(client_name, force); !locked)
    return locked;
  locked_as_ = client_name;
  locked_force_ = force;
  return Done{};
}

Result<Done> SptiDevice::unlock_exclusive() {
  std::lock_guard lock(mutex_);
  locked_as_.clear();
  if (!io_->is_open())
    return Done{};  // N.B. the closed handle took the lock with it
  if (!os_lock_supported())
    return Done{};
  const auto request = spti::make_exclusive_unlock();
  if (const auto outcome =
          io_->control(spti::kIoctlCdromExclusiveAccess, &request, sizeof request, nullptr, 0);
      !outcome.ok()) {
    return Error{spti::transport_error(outcome.error),
                 win32::describe("IOCTL_CDROM_EXCLUSIVE_ACCESS (unlock)", outcome.error)};
  }
  return Done{};
}

Result<Done> SptiDevice::reopen() {
  if (const DWORD e = io_->open(info_.path); e != ERROR_SUCCESS)
    return Error{spti::transport_error(e), win32::describe("open " + info_.path, e)};
  const HANDLE handle = io_->native_handle();
  if (handle == nullptr || !win32::device_notifications_available())
    return Done{};
  CM_NOTIFY_FILTER filter{};
  filter.cbSize = sizeof filter;
  filter.FilterType = CM_NOTIFY_FILTER_TYPE_DEVICEHANDLE;
  filter.u.DeviceHandle.hTarget = handle;
  HCMNOTIFICATION notification = nullptr;
  // N.B. a failure here costs only the polite query-remove; commands still
  // fail cleanly once the drive is gone.
  if (::CM_Register_Notification(&filter, this, &SptiDevice::on_handle_event, &notification) ==
      CR_SUCCESS) {
    notifications_.push_back(notification);
  }
  return Done{};
}

spti::AdapterQuery SptiDevice::query_adapter() {
  STORAGE_PROPERTY_QUERY query{};
  query.PropertyId = StorageAdapterProperty;
  query.QueryType = PropertyStandardQuery;
  alignas(8) std::byte reply[256] = {};
  const auto outcome =
      io_->control(IOCTL_STORAGE_QUERY_PROPERTY, &query, sizeof query, reply, sizeof reply);
  auto answer = spti::read_adapter_query(outcome.ok(), outcome.error, reply,
                                         outcome.ok() ? outcome.returned : 0);
  limits_ = answer.limits;
  description_.max_transfer_bytes = limits_.max_transfer_bytes;
  return answer;
}

/// Whether the driver below has the class driver's lock at all.
spti::ExclusiveProbe SptiDevice::query_exclusive_access() {
  spti::ExclusiveLockState state{};
  const auto outcome = query_lock_state(state);
  auto probe = spti::read_exclusive_probe(outcome.ok(), outcome.error, state);
  description_.os_lock = spti::os_lock_for(probe);
  return probe;
}

IoctlOutcome SptiDevice::query_lock_state(spti::ExclusiveLockState& state) {
  const auto query = spti::make_exclusive_query();
  return io_->control(spti::kIoctlCdromExclusiveAccess, &query, sizeof query, &state, sizeof state);
}

bool SptiDevice::os_lock_supported() const {
  return description_.os_lock != core::OsLock::unsupported;
}

Result<Done> SptiDevice::send_lock(const std::string& name, bool force) {
  if (!io_->is_open())
    return Error{errc::dev_not_exist, info_.path + " is being removed"};
  // N.B. the service's own lock still keeps every other DiscArbiter client
  // out; open() warned what the OS does not do.
  if (!os_lock_supported())
    return Done{};
  const auto request = spti::make_exclusive_lock(name, force);
  const auto locked =
      io_->control(spti::kIoctlCdromExclusiveAccess, &request, sizeof request, nullptr, 0);
  if (locked.ok())
    return Done{};
  // Someone outside DiscArbiter (IMAPI2, another burner) may hold it.
  spti::ExclusiveLockState state{};
  if (query_lock_state(state).ok()) {
    if (const auto holder = spti::read_lock_state(state); !holder.empty()) {
      return Error{errc::recorder_locked,
                   fmt::format("{} is locked outside DiscArbiter by '{}'", info_.path, holder)};
    }
  }
  const DWORD e = locked.error;
  return Error{e == ERROR_ACCESS_DENIED ? errc::access_denied : spti::transport_error(e),
               spti::lock_refusal(e, probe_)};
}

// Plug and Play asks before a drive goes: close the handle so it can, and
// take it up again (with the owner's lock) if the removal is called off.
DWORD CALLBACK SptiDevice::on_handle_event(HCMNOTIFICATION, PVOID context, CM_NOTIFY_ACTION action,
                                           PCM_NOTIFY_EVENT_DATA, DWORD) {
  auto* self = static_cast<SptiDevice*>(context);
  std::lock_guard lock(self->mutex_);
  switch (action) {
    case CM_NOTIFY_ACTION_DEVICEQUERYREMOVE:
    case CM_NOTIFY_ACTION_DEVICEREMOVEPENDING:
    case CM_NOTIFY_ACTION_DEVICEREMOVECOMPLETE:
      self->io_->close();
      break;
    case CM_NOTIFY_ACTION_DEVICEQUERYREMOVEFAILED:
      if (!self->io_->is_open() && self->reopen() && !self->locked_as_.empty())
        (void)self->send_lock(self->locked_as_, self->locked_force_);
      break;
    default:
      break;
  }
  return ERROR_SUCCESS;
}

}  // namespace discarbiter::drives
