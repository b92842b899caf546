#include "drives/spti_protocol_windows.hpp"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "discarbiter/win32/error.hpp"

namespace discarbiter::drives::spti {

// The layouts the drivers expect (the Windows SDK's, on x64).
static_assert(sizeof(void*) != 8 || sizeof(SCSI_PASS_THROUGH_DIRECT) == 56);
static_assert(sizeof(void*) != 8 || offsetof(SCSI_PASS_THROUGH_DIRECT, DataBuffer) == 24);
static_assert(offsetof(SCSI_PASS_THROUGH_DIRECT, Cdb) + 16 <= sizeof(SCSI_PASS_THROUGH_DIRECT));
static_assert(offsetof(PassThrough, sense) % sizeof(ULONG) == 0);
static_assert(IOCTL_SCSI_PASS_THROUGH_DIRECT == 0x4D014);
static_assert(kIoctlCdromExclusiveAccess == 0x2C05C);
static_assert(sizeof(ExclusiveAccess) == 8);
static_assert(sizeof(ExclusiveLock) == 72 && offsetof(ExclusiveLock, caller_name) == 8);
static_assert(sizeof(ExclusiveLockState) == 65 && offsetof(ExclusiveLockState, caller_name) == 1);

AlignedBuffer::AlignedBuffer(std::size_t size, ULONG alignment_mask)
    : storage_(std::make_unique<std::byte[]>(size + alignment_mask + 1)), size_(size) {
  const auto base = reinterpret_cast<std::uintptr_t>(storage_.get());
  aligned_ = storage_.get() + (((base + alignment_mask) & ~std::uintptr_t{alignment_mask}) - base);
}

PassThrough build_pass_through(const core::ScsiCommand& command, AlignedBuffer& data) {
  PassThrough p{};
  auto& s = p.sptd;
  s.Length = sizeof(SCSI_PASS_THROUGH_DIRECT);
  s.CdbLength = static_cast<UCHAR>(std::min<std::size_t>(command.cdb.size(), sizeof s.Cdb));
  std::memcpy(s.Cdb, command.cdb.data(), s.CdbLength);
  s.SenseInfoLength = static_cast<UCHAR>(kSenseBytes);
  s.SenseInfoOffset = offsetof(PassThrough, sense);
  s.TimeOutValue = static_cast<ULONG>(command.timeout.count());
  switch (command.direction) {
    case core::Direction::in:
      s.DataIn = SCSI_IOCTL_DATA_IN;
      break;
    case core::Direction::out:
      s.DataIn = SCSI_IOCTL_DATA_OUT;
      std::memcpy(data.data(), command.data_out.data(),
                  std::min(data.size(), command.data_out.size()));
      break;
    case core::Direction::none:
      s.DataIn = SCSI_IOCTL_DATA_UNSPECIFIED;
      break;
  }
  s.DataTransferLength = static_cast<ULONG>(data.size());
  s.DataBuffer = data.size() == 0 ? nullptr : data.data();
  return p;
}

errc transport_error(DWORD error) {
  switch (error) {
    case ERROR_SEM_TIMEOUT:
    case ERROR_TIMEOUT:
      return errc::recorder_command_timeout;
    case ERROR_DEV_NOT_EXIST:
    case ERROR_DEVICE_NOT_CONNECTED:
    case ERROR_DEVICE_REMOVED:
    case ERROR_FILE_NOT_FOUND:
    case ERROR_INVALID_HANDLE:  // N.B. our handle was closed for a query-remove
      return errc::dev_not_exist;
    default:
      return errc::fail;
  }
}

core::ScsiResult read_pass_through(BOOL ok, DWORD error, const PassThrough& reply,
                                   const AlignedBuffer& data, const core::ScsiCommand& command) {
  if (!ok) {
    return core::ScsiResult::failed(
        transport_error(error),
        win32::describe(
            fmt::format("IOCTL_SCSI_PASS_THROUGH_DIRECT (timeout {} s)", command.timeout.count()),
            error));
  }
  core::ScsiResult r;
  r.status = reply.sptd.ScsiStatus;
  if (command.direction == core::Direction::in) {
    const auto n = std::min<std::size_t>(reply.sptd.DataTransferLength, data.size());
    const auto* bytes =
        reinterpret_cast<const std::uint8_t*>(const_cast<AlignedBuffer&>(data).data());
    r.data_in.assign(bytes, bytes + n);
  }
  if (r.status == core::kStatusCheckCondition) {
    const auto n = std::min<std::size_t>(reply.sptd.SenseInfoLength, kSenseBytes);
    r.sense.assign(reply.sense, reply.sense + n);
    if (r.sense.size() < core::kSenseBytes)
      r.sense.resize(core::kSenseBytes, 0);
  }
  return r;
}

AdapterLimits read_adapter_descriptor(const void* bytes, std::size_t size) {
  AdapterLimits limits;
  if (size < offsetof(STORAGE_ADAPTER_DESCRIPTOR, AlignmentMask) + sizeof(ULONG))
    return limits;
  STORAGE_ADAPTER_DESCRIPTOR d{};
  std::memcpy(&d, bytes, std::min(size, sizeof d));
  std::uint64_t max = d.MaximumTransferLength;
  if (d.MaximumPhysicalPages > 1)
    max = std::min<std::uint64_t>(max, std::uint64_t{d.MaximumPhysicalPages - 1} * kPageBytes);
  if (max > 0)
    limits.max_transfer_bytes = static_cast<std::uint32_t>(std::min<std::uint64_t>(max, 1u << 30));
  limits.alignment_mask = d.AlignmentMask;
  return limits;
}

AdapterQuery read_adapter_query(BOOL ok, DWORD error, const void* reply, std::size_t returned) {
  constexpr std::size_t kNeeded =
      offsetof(STORAGE_ADAPTER_DESCRIPTOR, AlignmentMask) + sizeof(ULONG);
  if (!ok) {
    return {AdapterLimits{},
            win32::describe("IOCTL_STORAGE_QUERY_PROPERTY (StorageAdapterProperty)", error), error};
  }
  if (returned < kNeeded) {
    return {AdapterLimits{},
            fmt::format("IOCTL_STORAGE_QUERY_PROPERTY (StorageAdapterProperty) answered {} bytes, "
                        "fewer than the {} that hold the limits",
                        returned, kNeeded),
            ERROR_SUCCESS};
  }
  return {read_adapter_descriptor(reply, returned), {}, ERROR_SUCCESS};
}

std::string adapter_warning(const std::string& drive_id, const AdapterQuery& query) {
  if (query.problem.empty())
    return {};
  return fmt::format(
      "drive {}: the adapter's transfer limits are unknown: {}; using the conservative default: "
      "at most {} bytes per transfer, data buffers aligned to {} bytes",
      drive_id, query.problem, query.limits.max_transfer_bytes, query.limits.alignment_mask + 1);
}

ExclusiveLock make_exclusive_lock(const std::string& caller_name, bool force) {
  ExclusiveLock lock{};
  lock.access.request_type = ExclusiveRequest::lock_device;
  lock.access.flags = force ? kLockIgnoreVolume : 0;
  std::memcpy(lock.caller_name, caller_name.data(),
              std::min(caller_name.size(), kCallerLength - 1));  // N.B. stays NUL-terminated
  return lock;
}

ExclusiveAccess make_exclusive_unlock() {
  return ExclusiveAccess{ExclusiveRequest::unlock_device, 0};
}

ExclusiveAccess make_exclusive_query() {
  return ExclusiveAccess{ExclusiveRequest::query_state, 0};
}

std::string read_lock_state(const ExclusiveLockState& state) {
  if (!state.lock_state)
    return {};
  const auto* name = reinterpret_cast<const char*>(state.caller_name);
  return std::string(name, strnlen(name, kCallerLength));
}

namespace {

// N.B. what a driver without the IOCTL answers: STATUS_NOT_SUPPORTED, or
// STATUS_INVALID_DEVICE_REQUEST from a class or filter driver that does not
// know the code.
bool lacks_the_ioctl(DWORD error) {
  return error == ERROR_NOT_SUPPORTED || error == ERROR_INVALID_FUNCTION;
}

}  // namespace

ExclusiveProbe read_exclusive_probe(BOOL ok, DWORD error, const ExclusiveLockState& reply) {
  if (ok)
    return {ExclusiveSupport::supported, read_lock_state(reply), {}, ERROR_SUCCESS};
  const auto answer = win32::describe("IOCTL_CDROM_EXCLUSIVE_ACCESS (query_state)", error);
  if (lacks_the_ioctl(error))
    return {ExclusiveSupport::unsupported, {}, answer, error};
  return {ExclusiveSupport::unknown, {}, answer, error};
}

core::OsLock os_lock_for(const ExclusiveProbe& probe) {
  return probe.support == ExclusiveSupport::unsupported ? core::OsLock::unsupported
                                                        : core::OsLock::class_driver;
}

std::string exclusive_access_warning(const std::string& drive_id, const ExclusiveProbe& probe) {
  switch (probe.support) {
    case ExclusiveSupport::supported:
      if (probe.holder.empty())
        return {};
      return fmt::format(
          "drive {}: locked outside DiscArbiter by '{}'; acquire fails until it "
          "lets go",
          drive_id, probe.holder);
    case ExclusiveSupport::unsupported:
      return fmt::format(
          "drive {}: the OS exclusive-access lock is not supported here: {}; only DiscArbiter's "
          "own lock applies: DiscArbiter's clients still take turns, but IMAPI2 and other "
          "programs outside DiscArbiter are not kept out by the OS",
          drive_id, probe.answer);
    case ExclusiveSupport::unknown:
      break;
  }
  return fmt::format(
      "drive {}: the OS exclusive-access lock could not be queried: {}; acquire "
      "still takes it and fails if the driver refuses",
      drive_id, probe.answer);
}

std::string lock_refusal(DWORD error, const ExclusiveProbe& probe) {
  auto message = win32::describe("IOCTL_CDROM_EXCLUSIVE_ACCESS (lock)", error);
  if (!lacks_the_ioctl(error))
    return message;
  switch (probe.support) {
    case ExclusiveSupport::supported:
      return message + "; the driver answered the lock's query_state at open but refuses the lock";
    case ExclusiveSupport::unknown:
      return message + "; the driver refuses the lock, and its query_state at open had failed: " +
             probe.answer;
    case ExclusiveSupport::unsupported:
      break;  // N.B. not sent then: only the service's lock applies
  }
  return message;
}

}  // namespace discarbiter::drives::spti
