// Real recorders: finding them and opening them for the service's exclusive
// use. One implementation per platform: recorder_posix.cpp (Linux: sysfs,
// O_EXCL + flock, SG_IO) and recorder_windows.cpp (cfgmgr32, SPTI,
// IOCTL_CDROM_EXCLUSIVE_ACCESS).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "discarbiter/proto/result.hpp"
#include "drives/scsi_device.hpp"

namespace discarbiter::drives {

struct RecorderInfo {
  std::string id;    // "cdrom0": stable for as long as the OS keeps its number
  std::string path;  // what the service opens: "/dev/sr0", "\\?\ide#cdrom…"
  std::string twin;  // Linux: the /dev/sgN of the same drive, held as well; may be empty

  friend bool operator==(const RecorderInfo&, const RecorderInfo&) = default;
};

/// What find_recorders found, and how.
struct Discovery {
  std::vector<RecorderInfo> recorders;
  std::string method;  // how they were found: "sysfs", "cfgmgr32", "probing \\.\CdRom0-31"
  std::optional<Error> problem;  // why the OS's own list was not used (method is then a fallback)
};

/// Every optical drive (SCSI peripheral type 5) the OS shows now. Where the
/// OS's list is not available, a fallback that calls nothing that may abort.
Discovery find_recorders();

/// The recorder at a path given on the command line or in the config
/// (`--drive /dev/sr0`, `--drive /dev/sg1`, `--drive \\.\CdRom0`).
Result<RecorderInfo> recorder_at(const std::string& path);

/// Opens the recorder for the service alone and reads its INQUIRY.
/// inquiry_timeout bounds that first command.
Result<std::shared_ptr<ScsiDevice>> open_recorder(const RecorderInfo& recorder,
                                                  std::chrono::seconds inquiry_timeout);

}  // namespace discarbiter::drives
