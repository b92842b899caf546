#include "core/command_policy.hpp"

#include <algorithm>
#include <array>

#include <fmt/format.h>

namespace discarbiter::core {
namespace {

using C = AllowedCommand::Condition;

// N.B. the kernel's scsi_cmd_allowed() (drivers/scsi/scsi_ioctl.c) for a
// read-write open, in opcode order, plus MECHANISM STATUS; every "why" names
// its source. docs/command-policy.md is this table in prose: keep them alike.
constexpr std::string_view kRead = "kernel read list";
constexpr std::string_view kWrite = "kernel write list";
constexpr std::array kAllowed{
    AllowedCommand{0x00, "TEST UNIT READY", kRead},
    AllowedCommand{0x03, "REQUEST SENSE", kRead},
    AllowedCommand{0x04, "FORMAT UNIT", kWrite},
    AllowedCommand{0x08, "READ(6)", kRead},
    AllowedCommand{0x0A, "WRITE(6)", kWrite},
    AllowedCommand{0x12, "INQUIRY", kRead},
    AllowedCommand{0x15, "MODE SELECT(6)", kWrite, C::no_save},
    AllowedCommand{0x19, "ERASE(6)", kWrite},
    AllowedCommand{0x1A, "MODE SENSE(6)", kRead},
    AllowedCommand{0x1B, "START STOP UNIT", kRead},
    AllowedCommand{0x1C, "RECEIVE DIAGNOSTIC RESULTS", kRead},
    AllowedCommand{0x1E, "PREVENT ALLOW MEDIUM REMOVAL", kWrite},
    AllowedCommand{0x23, "READ FORMAT CAPACITIES", kRead},
    AllowedCommand{0x25, "READ CAPACITY", kRead},
    AllowedCommand{0x28, "READ(10)", kRead},
    AllowedCommand{0x2A, "WRITE(10)", kWrite},
    AllowedCommand{0x2B, "SEEK(10)", kRead},
    AllowedCommand{0x2E, "WRITE AND VERIFY(10)", kWrite},
    AllowedCommand{0x2F, "VERIFY(10)", kRead},
    AllowedCommand{0x35, "SYNCHRONIZE CACHE(10)", kWrite},
    AllowedCommand{0x37, "READ DEFECT DATA(10)", kRead},
    AllowedCommand{0x3C, "READ BUFFER", kRead},
    AllowedCommand{0x3E, "READ LONG(10)", kRead},
    AllowedCommand{0x3F, "WRITE LONG(10)", kWrite},
    AllowedCommand{0x41, "WRITE SAME(10)", kWrite},
    AllowedCommand{0x42, "READ SUB-CHANNEL", kRead},
    AllowedCommand{0x43, "READ TOC/PMA/ATIP", kRead},
    AllowedCommand{0x44, "READ HEADER", kRead},
    AllowedCommand{0x45, "PLAY AUDIO(10)", kRead},
    AllowedCommand{0x46, "GET CONFIGURATION", kRead},
    AllowedCommand{0x47, "PLAY AUDIO MSF", kRead},
    AllowedCommand{0x48, "PLAY AUDIO TRACK INDEX", kRead},
    AllowedCommand{0x4A, "GET EVENT STATUS NOTIFICATION", kRead},
    AllowedCommand{0x4B, "PAUSE/RESUME", kRead},
    AllowedCommand{0x4C, "LOG SELECT", kWrite, C::no_save_no_reset},
    AllowedCommand{0x4D, "LOG SENSE", kRead},
    AllowedCommand{0x4E, "STOP PLAY/SCAN", kRead},
    AllowedCommand{0x51, "READ DISC INFORMATION", kRead},
    AllowedCommand{0x52, "READ TRACK INFORMATION", kRead},
    AllowedCommand{0x53, "RESERVE TRACK", kWrite},
    AllowedCommand{0x54, "SEND OPC INFORMATION", kWrite},
    AllowedCommand{0x55, "MODE SELECT(10)", kWrite, C::no_save},
    AllowedCommand{0x58, "REPAIR TRACK", kWrite},
    AllowedCommand{0x5A, "MODE SENSE(10)", kRead},
    AllowedCommand{0x5B, "CLOSE TRACK/SESSION", kWrite},
    AllowedCommand{0x5C, "READ BUFFER CAPACITY", kRead},
    AllowedCommand{0x5D, "SEND CUE SHEET", kWrite},
    AllowedCommand{0x88, "READ(16)", kRead},
    AllowedCommand{0x8A, "WRITE(16)", kWrite},
    AllowedCommand{0x8F, "VERIFY(16)", kRead},
    AllowedCommand{0x93, "WRITE SAME(16)", kWrite},
    AllowedCommand{0x94, "ZBC OUT", kWrite},
    AllowedCommand{0x95, "ZBC IN", kRead},
    AllowedCommand{0x9E, "SERVICE ACTION IN(16)", kRead},
    AllowedCommand{0xA0, "REPORT LUNS", kRead},
    AllowedCommand{0xA1, "BLANK", kWrite},
    AllowedCommand{0xA2, "SEND EVENT", kWrite},
    AllowedCommand{0xA3, "SEND KEY", kRead, C::no_region},
    AllowedCommand{0xA4, "REPORT KEY", kRead},
    AllowedCommand{0xA6, "LOAD/UNLOAD MEDIUM", kWrite},
    AllowedCommand{0xA7, "SET READ AHEAD", kWrite},
    AllowedCommand{0xA8, "READ(12)", kRead},
    AllowedCommand{0xAA, "WRITE(12)", kWrite},
    AllowedCommand{0xAC, "GET PERFORMANCE", kRead},
    AllowedCommand{0xAD, "READ DISC STRUCTURE", kRead},
    AllowedCommand{0xAE, "WRITE AND VERIFY(12)", kWrite},
    AllowedCommand{0xB6, "SET STREAMING", kWrite},
    AllowedCommand{0xB9, "READ CD MSF", kRead},
    AllowedCommand{0xBA, "SCAN", kRead},
    AllowedCommand{0xBB, "SET CD SPEED", kWrite},
    AllowedCommand{0xBC, "PLAY CD", kRead},
    AllowedCommand{0xBD, "MECHANISM STATUS", "MMC: tray and changer state, read only"},
    AllowedCommand{0xBE, "READ CD", kRead},
    AllowedCommand{0xBF, "SEND DISC STRUCTURE", kWrite},
};

// Names of opcodes users may not send, for the refusal's message.
struct Named {
  std::uint8_t opcode;
  std::string_view name;
};
constexpr std::array kRefusedNames{
    Named{0x01, "REZERO UNIT"},
    Named{0x07, "REASSIGN BLOCKS"},
    Named{0x16, "RESERVE(6)"},
    Named{0x17, "RELEASE(6)"},
    Named{0x1D, "SEND DIAGNOSTIC"},
    Named{0x2C, "ERASE(10)"},
    Named{0x3B, "WRITE BUFFER"},
    Named{0x56, "RESERVE(10)"},
    Named{0x57, "RELEASE(10)"},
    Named{0x5E, "PERSISTENT RESERVE IN"},
    Named{0x5F, "PERSISTENT RESERVE OUT"},
    Named{0x7F, "VARIABLE LENGTH"},
    Named{0x83, "THIRD-PARTY COPY OUT"},
    Named{0x84, "THIRD-PARTY COPY IN"},
    Named{0x85, "ATA PASS-THROUGH(16)"},
    Named{0x8C, "READ ATTRIBUTE"},
    Named{0x8D, "WRITE ATTRIBUTE"},
    Named{0x91, "SYNCHRONIZE CACHE(16)"},
    Named{0x9F, "SERVICE ACTION OUT(16)"},
    Named{0xA9, "SERVICE ACTION OUT(12)"},
    Named{0xAB, "SERVICE ACTION IN(12)"},
    Named{0xB5, "SECURITY PROTOCOL OUT"},
};

constexpr std::uint8_t kFirstVendorOpcode = 0xC0;
constexpr std::uint8_t kSaveBit = 0x01;   // SP, byte 1 bit 0 (SPC-4 MODE SELECT, LOG SELECT)
constexpr std::uint8_t kResetBit = 0x02;  // PCR, byte 1 bit 1 (SPC-4 LOG SELECT)
// SEND KEY (MMC): KEY FORMAT is byte 10 bits 5:0 (bits 7:6 are the AGID);
// 06h is the RPC structure, which sets the drive's region.
constexpr std::size_t kKeyFormatByte = 10;
constexpr std::uint8_t kKeyFormatMask = 0x3F;
constexpr std::uint8_t kRpcKeyFormat = 0x06;

const AllowedCommand* builtin(std::uint8_t opcode) {
  const auto it = std::ranges::find(kAllowed, opcode, &AllowedCommand::opcode);
  return it == kAllowed.end() ? nullptr : &*it;
}

std::string describe(std::uint8_t opcode) {
  const auto name = command_name(opcode);
  return name.empty() ? fmt::format("opcode 0x{:02X}", opcode)
                      : fmt::format("opcode 0x{:02X} ({})", opcode, name);
}

}  // namespace

std::span<const AllowedCommand> builtin_allowed_commands() {
  return kAllowed;
}

std::string_view command_name(std::uint8_t opcode) {
  if (const AllowedCommand* c = builtin(opcode))
    return c->name;
  if (const auto it = std::ranges::find(kRefusedNames, opcode, &Named::opcode);
      it != kRefusedNames.end())
    return it->name;
  return opcode >= kFirstVendorOpcode ? "vendor-specific" : "";
}

Result<Done> CommandPolicy::check(std::span<const std::uint8_t> cdb,
                                  const PeerIdentity& peer) const {
  if (peer.administrator || cdb.empty())
    return Done{};
  const std::uint8_t op = cdb[0];
  if (extra_allowed.contains(op))
    return Done{};
  const std::string user = peer.user.empty() ? "?" : peer.user;
  const AllowedCommand* c = builtin(op);
  if (!c) {
    return Error{errc::access_denied,
                 fmt::format("{} may only be sent by an administrator; user '{}' is not one "
                             "(docs/command-policy.md lists what every user may send)",
                             describe(op), user)};
  }
  const bool save = cdb.size() > 1 && (cdb[1] & kSaveBit) != 0;
  if ((c->condition == C::no_save || c->condition == C::no_save_no_reset) && save) {
    return Error{errc::access_denied,
                 fmt::format("{} with SP (save) set may only be sent by an administrator: saved "
                             "parameters outlive the lock; user '{}' is not one (send it "
                             "without SP)",
                             describe(op), user)};
  }
  // N.B. PC (byte 2, bits 7:6) other than 00b (current thresholds) sets
  // cumulative values or thresholds (to defaults with no parameter list):
  // the same reset by another way.
  if (c->condition == C::no_save_no_reset &&
      ((cdb.size() > 1 && (cdb[1] & kResetBit) != 0) || (cdb.size() > 2 && (cdb[2] & 0xC0) != 0))) {
    return Error{errc::access_denied,
                 fmt::format("{} with PCR (parameter code reset) set, or with a PC other than "
                             "00b, may only be sent by an administrator: it resets or sets the "
                             "drive's cumulative log values; user '{}' is not one (send it "
                             "without PCR and with PC 00b)",
                             describe(op), user)};
  }
  if (c->condition == C::no_region &&
      (cdb.size() <= kKeyFormatByte || (cdb[kKeyFormatByte] & kKeyFormatMask) == kRpcKeyFormat)) {
    return Error{errc::access_denied,
                 fmt::format("{} with KEY FORMAT 06h (RPC structure: sets the drive's DVD "
                             "region, which it allows only a few times), or too short to carry a "
                             "KEY FORMAT, may only be sent by an administrator; user '{}' is not "
                             "one (the other key formats, for authentication, are allowed)",
                             describe(op), user)};
  }
  return Done{};
}

}  // namespace discarbiter::core
