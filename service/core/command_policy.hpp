// Which CDBs a lock owner may send (docs/command-policy.md). The service
// opens every drive as root / LocalSystem, so without this an owner would
// get CAP_SYS_RAWIO's pass-through: firmware download, diagnostics, ATA
// pass-through, reservations. Ordinary users get what the kernel's SG_IO
// filter (scsi_cmd_allowed() for a read-write open) gives them, plus what MMC
// recording needs; administrators get everything. No I/O, no OS headers.
#pragma once

#include <cstdint>
#include <set>
#include <span>
#include <string_view>

#include "core/identity.hpp"
#include "discarbiter/proto/result.hpp"

namespace discarbiter::core {

/// One opcode of the built-in list: what it is and why ordinary users may
/// send it.
struct AllowedCommand {
  /// A further condition on the CDB beyond its opcode.
  enum class Condition {
    none,
    /// MODE SELECT: only without SP (save pages, byte 1 bit 0), which
    /// would change the drive for every later owner.
    no_save,
    /// LOG SELECT: only without SP (save parameters, byte 1 bit 0) and
    /// without PCR (parameter code reset, byte 1 bit 1), which resets the
    /// drive's cumulative log counters.
    no_save_no_reset,
    /// SEND KEY: not KEY FORMAT 06h (RPC structure: sets the drive's DVD
    /// region, which the drive allows a few times and then locks for good).
    /// KEY FORMAT is byte 10 bits 5:0 (MMC); a CDB too short to carry it is
    /// refused too.
    no_region,
  };
  std::uint8_t opcode;
  std::string_view name;
  std::string_view why;
  Condition condition = Condition::none;
};

/// The built-in list, in opcode order (docs/command-policy.md prints it).
std::span<const AllowedCommand> builtin_allowed_commands();

/// The command's name (MMC's where SPC and MMC differ: 0xA1 is BLANK), or
/// "vendor-specific" for 0xC0-0xFF, or empty when the service has none.
std::string_view command_name(std::uint8_t opcode);

struct CommandPolicy {
  /// Opcodes ordinary users may also send, unconditionally (configuration
  /// "commands.allow"; listing 0x15 or 0x55 also allows saved mode pages).
  std::set<std::uint8_t> extra_allowed;

  /// Done when `peer` may send `cdb`; otherwise E_ACCESSDENIED naming the
  /// opcode and, where known, its name. An empty CDB passes: the length
  /// check answers it.
  Result<Done> check(std::span<const std::uint8_t> cdb, const PeerIdentity& peer) const;
};

}  // namespace discarbiter::core
