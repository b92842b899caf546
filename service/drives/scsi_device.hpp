// A drive as a backend sees it: blocking calls, made only from that drive's
// worker thread (drive_worker.hpp). Implementations: simulated, sgio, spti.
#pragma once

#include <chrono>
#include <string>
#include <utility>

#include "core/drive_channel.hpp"
#include "core/scsi.hpp"
#include "discarbiter/proto/result.hpp"

namespace discarbiter::drives {

using core::DriveDescription;
using core::ScsiCommand;
using core::ScsiResult;

class ScsiDevice {
 public:
  virtual ~ScsiDevice() = default;

  virtual DriveDescription describe() = 0;
  /// Runs one CDB. Returns when the drive answers or command.timeout passes
  /// (then transport is E_IMAPI_RECORDER_COMMAND_TIMEOUT).
  virtual ScsiResult execute(const ScsiCommand& command) = 0;
  virtual Result<Done> lock_exclusive(const std::string& client_name, bool force) = 0;
  virtual Result<Done> unlock_exclusive() = 0;
  /// Makes a blocked execute return soon (service stop). Thread-safe.
  virtual void cancel() = 0;
};

/// Identifies a real drive by INQUIRY: fills `description`'s vendor, product
/// and revision, or fails naming its path and what went wrong.
inline Result<Done> read_identity(ScsiDevice& device, DriveDescription& description,
                                  std::chrono::seconds timeout) {
  auto inquiry =
      core::parse_inquiry(device.execute(core::inquiry_command(timeout)), description.path);
  if (!inquiry)
    return inquiry.error();
  description.vendor = std::move(inquiry->vendor);
  description.product = std::move(inquiry->product);
  description.revision = std::move(inquiry->revision);
  return Done{};
}

}  // namespace discarbiter::drives
