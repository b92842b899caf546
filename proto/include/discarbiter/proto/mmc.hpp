// MMC-6 commands a burner sends, as CDBs, and the replies it reads, as
// structs: one definition for the client library's helpers (mmc.hpp), the
// CLI and the tests of the simulated recorder. No I/O; standard library only
// (installed with the SDK).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "discarbiter/export.h"
namespace discarbiter::proto::mmc {

using Cdb6 = std::array<std::uint8_t, 6>;
using Cdb10 = std::array<std::uint8_t, 10>;
using Cdb12 = std::array<std::uint8_t, 12>;

inline constexpr std::uint32_t kBlockSize = 2048;  // a DVD or BD logical block

// ---- opcodes ------------------------------------------------------------------
inline constexpr std::uint8_t kTestUnitReady = 0x00;
inline constexpr std::uint8_t kRequestSense = 0x03;
inline constexpr std::uint8_t kFormatUnit = 0x04;
inline constexpr std::uint8_t kInquiry = 0x12;
inline constexpr std::uint8_t kStartStopUnit = 0x1B;
inline constexpr std::uint8_t kPreventAllowMediumRemoval = 0x1E;
inline constexpr std::uint8_t kReadFormatCapacities = 0x23;
inline constexpr std::uint8_t kReadCapacity = 0x25;
inline constexpr std::uint8_t kRead10 = 0x28;
inline constexpr std::uint8_t kWrite10 = 0x2A;
inline constexpr std::uint8_t kSynchronizeCache = 0x35;
inline constexpr std::uint8_t kGetConfiguration = 0x46;
inline constexpr std::uint8_t kReadDiscInformation = 0x51;
inline constexpr std::uint8_t kReadTrackInformation = 0x52;
inline constexpr std::uint8_t kModeSelect10 = 0x55;
inline constexpr std::uint8_t kModeSense10 = 0x5A;
inline constexpr std::uint8_t kCloseTrackSession = 0x5B;
inline constexpr std::uint8_t kRead12 = 0xA8;
inline constexpr std::uint8_t kWrite12 = 0xAA;
inline constexpr std::uint8_t kSetStreaming = 0xB6;
inline constexpr std::uint8_t kSetCdSpeed = 0xBB;

// ---- profiles (GET CONFIGURATION, MMC-6 table 91) -------------------------------
inline constexpr std::uint16_t kProfileNone = 0x0000;  // no medium, or none current
inline constexpr std::uint16_t kProfileCdRom = 0x0008;
inline constexpr std::uint16_t kProfileCdR = 0x0009;
inline constexpr std::uint16_t kProfileCdRw = 0x000A;
inline constexpr std::uint16_t kProfileDvdRom = 0x0010;
inline constexpr std::uint16_t kProfileDvdRSequential = 0x0011;
inline constexpr std::uint16_t kProfileDvdRam = 0x0012;
inline constexpr std::uint16_t kProfileDvdRwRestricted = 0x0013;
inline constexpr std::uint16_t kProfileDvdRwSequential = 0x0014;
inline constexpr std::uint16_t kProfileDvdPlusRw = 0x001A;
inline constexpr std::uint16_t kProfileDvdPlusR = 0x001B;
inline constexpr std::uint16_t kProfileDvdPlusRwDl = 0x002A;
inline constexpr std::uint16_t kProfileDvdPlusRDl = 0x002B;
inline constexpr std::uint16_t kProfileBdRom = 0x0040;
inline constexpr std::uint16_t kProfileBdR = 0x0041;  // sequential recording mode
inline constexpr std::uint16_t kProfileBdRRandom = 0x0042;
inline constexpr std::uint16_t kProfileBdRe = 0x0043;
inline constexpr std::uint16_t kProfileHdDvdRom = 0x0050;

// ---- features (GET CONFIGURATION) ---------------------------------------------------
inline constexpr std::uint16_t kFeatureProfileList = 0x0000;
inline constexpr std::uint16_t kFeatureCore = 0x0001;
inline constexpr std::uint16_t kFeatureRandomWritable = 0x0020;
inline constexpr std::uint16_t kFeatureDvdPlusRw = 0x002A;

/// "DVD+RW", "BD-RE", "no current profile" (0), …; empty for a profile
/// this table does not know ("profile 0x…" is the caller's job).
DISCARBITER_API std::string_view profile_name(std::uint16_t profile);
/// A rewritable profile a burner may overwrite in place with WRITE(10):
/// CD-RW, DVD-RAM, DVD-RW restricted overwrite, DVD+RW (and DL), BD-RE.
DISCARBITER_API bool is_overwritable(std::uint16_t profile);

// ---- CDBs -----------------------------------------------------------------------
DISCARBITER_API Cdb6 test_unit_ready();
/// RT = 0 (all features), starting at feature `start`.
DISCARBITER_API Cdb10 get_configuration(std::uint16_t allocation, std::uint16_t start = 0);
DISCARBITER_API Cdb10 read_capacity();
DISCARBITER_API Cdb10 read_disc_information(std::uint16_t allocation = 34);
/// By track number (address type 01b).
DISCARBITER_API Cdb10 read_track_information(std::uint32_t track, std::uint16_t allocation = 36);
DISCARBITER_API Cdb10 read10(std::uint32_t lba, std::uint16_t blocks);
DISCARBITER_API Cdb10 write10(std::uint32_t lba, std::uint16_t blocks);
DISCARBITER_API Cdb10 synchronize_cache();
enum class CloseFunction : std::uint8_t { track = 1, session = 2, finalize = 5 };
DISCARBITER_API Cdb10 close_track_session(CloseFunction function, std::uint16_t number);

// ---- replies ----------------------------------------------------------------------
struct Configuration {
  std::uint16_t current_profile = 0;
  std::vector<std::uint16_t> profiles;  // the Profile List feature's, if present
  std::vector<std::uint16_t> features;  // every feature code in the reply
};
/// Parsers read only the bytes in `reply` and, where the reply has a length
/// field, only those it covers; a reply too short for the fields the struct
/// needs is nullopt. None of them reads past the span, whatever the bytes.
///
/// GET CONFIGURATION: nullopt when shorter than the 8-byte feature header.
/// Feature descriptors are walked by their additional length; one cut off by
/// the end of the reply still counts its code, its body is not read.
DISCARBITER_API std::optional<Configuration> parse_configuration(
    std::span<const std::uint8_t> reply);

struct Capacity {
  std::uint32_t last_lba = 0;
  std::uint32_t block_length = 0;
  std::uint64_t bytes() const { return (std::uint64_t{last_lba} + 1) * block_length; }
};
/// READ CAPACITY(10): 8 bytes.
DISCARBITER_API std::optional<Capacity> parse_capacity(std::span<const std::uint8_t> reply);

enum class DiscStatus : std::uint8_t { blank = 0, incomplete = 1, complete = 2, other = 3 };
struct DiscInformation {
  DiscStatus status = DiscStatus::other;
  std::uint8_t last_session_state = 0;  // 0 empty, 1 incomplete, 3 complete
  bool erasable = false;
  std::uint16_t sessions = 0;
  std::uint16_t first_track = 0;
  std::uint16_t last_track_in_last_session = 0;
};
/// "blank", "incomplete", "complete", "other".
DISCARBITER_API std::string_view disc_status_name(DiscStatus status);
/// Standard disc information: needs 12 bytes (through the MSBs of the
/// session and track numbers).
DISCARBITER_API std::optional<DiscInformation> parse_disc_information(
    std::span<const std::uint8_t> reply);

struct TrackInformation {
  std::uint16_t track = 0;
  std::uint16_t session = 0;
  std::uint32_t start_lba = 0;
  std::optional<std::uint32_t> next_writable_address;  // when the NWA_V bit is set
  std::uint32_t free_blocks = 0;
  std::uint32_t track_size = 0;
};
/// Needs 28 bytes (through the track size); the track and session numbers'
/// MSBs (bytes 32, 33) are read when present.
DISCARBITER_API std::optional<TrackInformation> parse_track_information(
    std::span<const std::uint8_t> reply);

}  // namespace discarbiter::proto::mmc
