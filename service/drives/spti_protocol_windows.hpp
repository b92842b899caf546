// SCSI pass-through on Windows, without the I/O: building the
// IOCTL_SCSI_PASS_THROUGH_DIRECT request and the IOCTL_CDROM_EXCLUSIVE_ACCESS
// structures, and reading what the driver hands back. The device
// (spti_device_windows.cpp) only adds DeviceIoControl; the unit tests
// (tests/windows/spti_test.cpp) feed these recorded replies under Wine.
#pragma once

#include <windows.h>  // N.B. first: the headers below need its types

#include <winioctl.h>
// N.B. after winioctl.h
#include <ntddscsi.h>

#include <cstddef>
#include <memory>
#include <string>

#include "core/drive_channel.hpp"
#include "core/scsi.hpp"
#include "discarbiter/proto/result.hpp"

namespace discarbiter::drives::spti {

// ---- IOCTL_SCSI_PASS_THROUGH_DIRECT -----------------------------------------

inline constexpr std::size_t kSenseBytes = 32;

/// The request as the driver reads it: the SDK struct with the sense
/// buffer after it (SenseInfoOffset points there).
struct PassThrough {
  SCSI_PASS_THROUGH_DIRECT sptd;
  ULONG align;  // N.B. keeps the sense buffer ULONG-aligned, as the SDK samples do
  UCHAR sense[kSenseBytes];
};

/// A data buffer aligned as the adapter demands (AlignmentMask + 1).
class AlignedBuffer {
 public:
  AlignedBuffer(std::size_t size, ULONG alignment_mask);
  std::byte* data() { return aligned_; }
  std::size_t size() const { return size_; }

 private:
  std::unique_ptr<std::byte[]> storage_;
  std::byte* aligned_ = nullptr;
  std::size_t size_ = 0;
};

/// Fills the request for command, with data (which holds data_out, or
/// receives data_in). TimeOutValue is in seconds.
PassThrough build_pass_through(const core::ScsiCommand& command, AlignedBuffer& data);

/// What DeviceIoControl's outcome means: an answer (a non-zero ScsiStatus
/// with its sense is an answer, not a transport error), or a transport
/// failure named from the Win32 error.
core::ScsiResult read_pass_through(BOOL ok, DWORD error, const PassThrough& reply,
                                   const AlignedBuffer& data, const core::ScsiCommand& command);

/// The Win32 error of a failed DeviceIoControl as the arbiter's errc:
/// ERROR_SEM_TIMEOUT / ERROR_TIMEOUT are command timeouts; a device that is
/// gone is ERROR_DEV_NOT_EXIST; anything else E_FAIL.
errc transport_error(DWORD error);

// ---- IOCTL_STORAGE_QUERY_PROPERTY (StorageAdapterProperty) ------------------

inline constexpr ULONG kPageBytes = 4096;

/// The default is what any adapter accepts when it does not say (the query
/// refused, as under Wine, or answered short): 64 KiB, page-aligned, so a
/// transfer spans 16 physical pages and meets every AlignmentMask up to a page.
struct AdapterLimits {
  std::uint32_t max_transfer_bytes = 64 * 1024;
  ULONG alignment_mask = kPageBytes - 1;
};

/// From the STORAGE_ADAPTER_DESCRIPTOR bytes the driver returned; the
/// transfer is also bounded by MaximumPhysicalPages (one page is lost to an
/// unaligned start).
AdapterLimits read_adapter_descriptor(const void* bytes, std::size_t size);

/// The adapter query's outcome: its limits, or the default and why.
struct AdapterQuery {
  AdapterLimits limits;
  std::string problem;          // empty when the adapter answered in full
  DWORD error = ERROR_SUCCESS;  // the query's Win32 error when it failed
};
AdapterQuery read_adapter_query(BOOL ok, DWORD error, const void* reply, std::size_t returned);

/// The warning the service logs for drive_id when query has a problem, or "".
std::string adapter_warning(const std::string& drive_id, const AdapterQuery& query);

// ---- IOCTL_CDROM_EXCLUSIVE_ACCESS (ntddcdrm.h; not in MinGW's headers) ------

inline constexpr DWORD kIoctlCdromExclusiveAccess =
    CTL_CODE(FILE_DEVICE_CD_ROM, 0x0017, METHOD_BUFFERED, FILE_READ_ACCESS | FILE_WRITE_ACCESS);
inline constexpr std::size_t kCallerLength = 64;  // CDROM_EXCLUSIVE_CALLER_LENGTH
inline constexpr ULONG kLockIgnoreVolume = 0x1;   // CDROM_LOCK_IGNORE_VOLUME

enum class ExclusiveRequest : ULONG { query_state = 0, lock_device = 1, unlock_device = 2 };

struct ExclusiveAccess {  // CDROM_EXCLUSIVE_ACCESS
  ExclusiveRequest request_type;
  ULONG flags;
};

struct ExclusiveLock {  // CDROM_EXCLUSIVE_LOCK
  ExclusiveAccess access;
  UCHAR caller_name[kCallerLength];
};

struct ExclusiveLockState {  // CDROM_EXCLUSIVE_LOCK_STATE
  BOOLEAN lock_state;
  UCHAR caller_name[kCallerLength];
};

/// Lock under the client's name (validated upstream to the driver's own
/// rule); force adds CDROM_LOCK_IGNORE_VOLUME.
ExclusiveLock make_exclusive_lock(const std::string& caller_name, bool force);
ExclusiveAccess make_exclusive_unlock();
ExclusiveAccess make_exclusive_query();
/// The holder's name, or empty when the drive is not locked.
std::string read_lock_state(const ExclusiveLockState& state);

/// Whether the driver below has the class driver's lock, from its answer to
/// query_state at open.
enum class ExclusiveSupport {
  supported,    // acquire takes the lock in the owner's name
  unsupported,  // ERROR_NOT_SUPPORTED or ERROR_INVALID_FUNCTION (Wine, some
                // third-party class or filter drivers): only the service's lock
  unknown,      // another failure: acquire still tries the lock and reports it
};

struct ExclusiveProbe {
  ExclusiveSupport support = ExclusiveSupport::supported;
  std::string holder;           // supported: who holds the drive outside DiscArbiter now, or ""
  std::string answer;           // otherwise: the driver's answer (win32::describe)
  DWORD error = ERROR_SUCCESS;  // otherwise: its Win32 error
};
ExclusiveProbe read_exclusive_probe(BOOL ok, DWORD error, const ExclusiveLockState& reply);

/// What status shows as the drive's os_lock.
core::OsLock os_lock_for(const ExclusiveProbe& probe);

/// Why acquire fails when the driver refused the lock with error, worded
/// from what query_state answered at open.
std::string lock_refusal(DWORD error, const ExclusiveProbe& probe);

/// The warning the service logs once for drive_id at open, or "" (the class
/// driver answered and nobody holds the drive).
std::string exclusive_access_warning(const std::string& drive_id, const ExclusiveProbe& probe);

}  // namespace discarbiter::drives::spti
