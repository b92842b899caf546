// A kernel uevent as netlink delivers it: "add@/devices/…\0ACTION=add\0
// SUBSYSTEM=block\0DEVNAME=sr0\0…". Parsed without I/O so it is unit-tested
// everywhere.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace discarbiter::host {

struct Uevent {
  std::string action;     // "add", "remove", "change", …
  std::string subsystem;  // "block", "scsi_generic", …
  std::string devname;    // "sr0", "sg1" (without /dev/)
};

/// nullopt for a message that is not a kernel uevent (udev's own
/// "libudev" messages, truncated or malformed data).
std::optional<Uevent> parse_uevent(std::string_view message);

}  // namespace discarbiter::host
