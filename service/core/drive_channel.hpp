// How the arbiter reaches one drive. A backend (simulated, sgio, spti) sits
// behind it; the arbiter never sees a handle or a thread.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "core/scsi.hpp"
#include "discarbiter/proto/result.hpp"

namespace discarbiter::core {

/// What keeps programs outside DiscArbiter away from a drive (status `os_lock`).
enum class OsLock {
  simulated,       // no OS device behind it
  exclusive_open,  // Linux: the service's O_EXCL open and flock, for as long as it runs
  class_driver,    // Windows: IOCTL_CDROM_EXCLUSIVE_ACCESS in the owner's name while owned
  unsupported,     // Windows: the driver below refuses that IOCTL; only the service's own lock
};

/// The name status shows (docs/protocol.md "The status document").
constexpr std::string_view os_lock_name(OsLock lock) {
  switch (lock) {
    case OsLock::simulated:
      return "simulated";
    case OsLock::exclusive_open:
      return "exclusive_open";
    case OsLock::class_driver:
      return "class_driver";
    case OsLock::unsupported:
      return "unsupported";
  }
  return "unknown";
}

struct DriveDescription {
  std::string id;       // "sim0", "cdrom0"
  std::string path;     // "/dev/sg0", "\\.\CdRom0", "simulated:0"
  std::string backend;  // "simulated" | "sgio" | "spti"
  std::string vendor;
  std::string product;
  std::string revision;
  std::uint32_t max_transfer_bytes = 64 * 1024;
  OsLock os_lock = OsLock::simulated;
};

class DriveChannel {
 public:
  using ExecuteHandler = std::function<void(ScsiResult)>;
  using LockHandler = std::function<void(Result<Done>)>;

  virtual ~DriveChannel() = default;

  virtual const DriveDescription& description() const = 0;

  // Each call completes exactly once, on the arbiter's strand, never inside
  // the call itself; calls on one channel complete in the order made.
  virtual void async_execute(ScsiCommand command, ExecuteHandler handler) = 0;
  /// The OS-level exclusive lock (Windows IOCTL_CDROM_EXCLUSIVE_ACCESS with
  /// the client name; a no-op where the service's open already excludes).
  virtual void async_os_lock(std::string client_name, bool force, LockHandler handler) = 0;
  virtual void async_os_unlock(LockHandler handler) = 0;
  /// Calls made but not yet started complete with `why` instead (as every
  /// call does: on the strand, in order); the one the drive works on is left
  /// alone. The arbiter hands one call at a time, so normally nothing waits
  /// here; after a watchdog answered for a backend that overran, the calls
  /// it handed on may, and a departing owner's must not reach the drive.
  virtual void cancel_queued(const Error& /*why*/) {}
};

}  // namespace discarbiter::core
