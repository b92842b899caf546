#include "discarbiter/proto/mmc.hpp"

#include <algorithm>

#include "discarbiter/proto/big_endian.hpp"

namespace discarbiter::proto::mmc {
namespace {

/// The part of `reply` its length field covers: the field (at offset 0, of
/// `field_size` bytes) counts the bytes after itself. Never longer than the
/// span: a drive may claim more than the allocation length let through.
std::span<const std::uint8_t> covered(std::span<const std::uint8_t> reply, std::uint64_t length,
                                      std::size_t field_size) {
  return reply.first(
      static_cast<std::size_t>(std::min<std::uint64_t>(reply.size(), field_size + length)));
}

/// A reply with a 2-byte length field (disc and track information), cut to
/// what that field covers; nullopt when that is shorter than `minimum`.
std::optional<std::span<const std::uint8_t>> with_length(std::span<const std::uint8_t> reply,
                                                         std::size_t minimum) {
  if (reply.size() < 2)
    return std::nullopt;
  const auto data = covered(reply, be16(reply, 0), 2);
  if (data.size() < minimum)
    return std::nullopt;
  return data;
}

Cdb10 cdb10(std::uint8_t opcode) {
  Cdb10 cdb{};
  cdb[0] = opcode;
  return cdb;
}

struct Profile {
  std::uint16_t number;
  std::string_view name;
};

constexpr std::array<Profile, 31> kProfiles{{
    {kProfileNone, "no current profile"},
    {0x0001, "non-removable disk"},
    {0x0002, "removable disk"},
    {0x0003, "MO erasable"},
    {0x0004, "optical write once"},
    {0x0005, "AS-MO"},
    {kProfileCdRom, "CD-ROM"},
    {kProfileCdR, "CD-R"},
    {kProfileCdRw, "CD-RW"},
    {kProfileDvdRom, "DVD-ROM"},
    {kProfileDvdRSequential, "DVD-R"},
    {kProfileDvdRam, "DVD-RAM"},
    {kProfileDvdRwRestricted, "DVD-RW (restricted overwrite)"},
    {kProfileDvdRwSequential, "DVD-RW (sequential)"},
    {0x0015, "DVD-R DL (sequential)"},
    {0x0016, "DVD-R DL (layer jump)"},
    {0x0017, "DVD-RW DL"},
    {0x0018, "DVD-Download"},
    {kProfileDvdPlusRw, "DVD+RW"},
    {kProfileDvdPlusR, "DVD+R"},
    {kProfileDvdPlusRwDl, "DVD+RW DL"},
    {kProfileDvdPlusRDl, "DVD+R DL"},
    {kProfileBdRom, "BD-ROM"},
    {kProfileBdR, "BD-R (sequential)"},
    {kProfileBdRRandom, "BD-R (random)"},
    {kProfileBdRe, "BD-RE"},
    {kProfileHdDvdRom, "HD DVD-ROM"},
    {0x0051, "HD DVD-R"},
    {0x0052, "HD DVD-RAM"},
    {0x0053, "HD DVD-RW"},
    {0xFFFF, "non-conforming"},
}};

constexpr std::size_t kFeatureHeaderSize = 8;
constexpr std::size_t kFeatureDescriptorHeaderSize = 4;
constexpr std::size_t kProfileDescriptorSize = 4;
constexpr std::size_t kCapacitySize = 8;
constexpr std::size_t kDiscInformationMinimum = 12;
constexpr std::size_t kTrackInformationMinimum = 28;
constexpr std::size_t kTrackInformationMsbs = 34;  // through the session number's MSB

}  // namespace

std::string_view profile_name(std::uint16_t profile) {
  const auto* found = std::find_if(kProfiles.begin(), kProfiles.end(),
                                   [&](const Profile& p) { return p.number == profile; });
  return found == kProfiles.end() ? std::string_view{} : found->name;
}

bool is_overwritable(std::uint16_t profile) {
  switch (profile) {
    case kProfileCdRw:
    case kProfileDvdRam:
    case kProfileDvdRwRestricted:
    case kProfileDvdPlusRw:
    case kProfileDvdPlusRwDl:
    case kProfileBdRe:
      return true;
    default:
      return false;
  }
}

std::string_view disc_status_name(DiscStatus status) {
  switch (status) {
    case DiscStatus::blank:
      return "blank";
    case DiscStatus::incomplete:
      return "incomplete";
    case DiscStatus::complete:
      return "complete";
    case DiscStatus::other:
      break;
  }
  return "other";
}

// ---- CDBs -----------------------------------------------------------------------

Cdb6 test_unit_ready() {
  return Cdb6{kTestUnitReady, 0, 0, 0, 0, 0};
}

Cdb10 get_configuration(std::uint16_t allocation, std::uint16_t start) {
  Cdb10 cdb = cdb10(kGetConfiguration);  // byte 1: RT = 00b, every feature
  put_be16(cdb, 2, start);
  put_be16(cdb, 7, allocation);
  return cdb;
}

Cdb10 read_capacity() {
  return cdb10(kReadCapacity);
}

Cdb10 read_disc_information(std::uint16_t allocation) {
  Cdb10 cdb = cdb10(kReadDiscInformation);  // byte 1: data type 000b, standard
  put_be16(cdb, 7, allocation);
  return cdb;
}

Cdb10 read_track_information(std::uint32_t track, std::uint16_t allocation) {
  Cdb10 cdb = cdb10(kReadTrackInformation);
  cdb[1] = 0x01;  // address/number type 01b: logical track number
  put_be32(cdb, 2, track);
  put_be16(cdb, 7, allocation);
  return cdb;
}

Cdb10 read10(std::uint32_t lba, std::uint16_t blocks) {
  Cdb10 cdb = cdb10(kRead10);
  put_be32(cdb, 2, lba);
  put_be16(cdb, 7, blocks);
  return cdb;
}

Cdb10 write10(std::uint32_t lba, std::uint16_t blocks) {
  Cdb10 cdb = cdb10(kWrite10);
  put_be32(cdb, 2, lba);
  put_be16(cdb, 7, blocks);
  return cdb;
}

// LBA 0 and 0 blocks: the whole cache; IMMED = 0: the drive answers when done.
Cdb10 synchronize_cache() {
  return cdb10(kSynchronizeCache);
}

Cdb10 close_track_session(CloseFunction function, std::uint16_t number) {
  Cdb10 cdb = cdb10(kCloseTrackSession);  // byte 1: IMMED = 0
  cdb[2] = static_cast<std::uint8_t>(function) & 0x07;
  put_be16(cdb, 4, number);
  return cdb;
}

// ---- replies ----------------------------------------------------------------------

std::optional<Configuration> parse_configuration(std::span<const std::uint8_t> reply) {
  if (reply.size() < kFeatureHeaderSize)
    return std::nullopt;
  Configuration configuration;
  configuration.current_profile = be16(reply, 6);
  const auto data = covered(reply, be32(reply, 0), 4);
  // N.B. each step advances by at least the descriptor's 4-byte header, so
  // the walk ends within data.size() / 4 steps whatever the lengths say.
  std::size_t at = kFeatureHeaderSize;
  while (at + kFeatureDescriptorHeaderSize <= data.size()) {
    const std::uint16_t code = be16(data, at);
    const std::size_t body_at = at + kFeatureDescriptorHeaderSize;
    const std::size_t body_end = std::min(data.size(), body_at + data[at + 3]);
    configuration.features.push_back(code);
    if (code == kFeatureProfileList) {
      for (std::size_t p = body_at; p + kProfileDescriptorSize <= body_end;
           p += kProfileDescriptorSize)
        configuration.profiles.push_back(be16(data, p));
    }
    at = body_at + data[at + 3];
  }
  return configuration;
}

std::optional<Capacity> parse_capacity(std::span<const std::uint8_t> reply) {
  if (reply.size() < kCapacitySize)
    return std::nullopt;
  return Capacity{be32(reply, 0), be32(reply, 4)};
}

std::optional<DiscInformation> parse_disc_information(std::span<const std::uint8_t> reply) {
  const auto found = with_length(reply, kDiscInformationMinimum);
  if (!found)
    return std::nullopt;
  const auto data = *found;
  DiscInformation info;
  info.status = static_cast<DiscStatus>(data[2] & 0x03);
  info.last_session_state = static_cast<std::uint8_t>((data[2] >> 2) & 0x03);
  info.erasable = (data[2] & 0x10) != 0;
  info.first_track = data[3];
  info.sessions = static_cast<std::uint16_t>(data[9] << 8 | data[4]);
  info.last_track_in_last_session = static_cast<std::uint16_t>(data[11] << 8 | data[6]);
  return info;
}

std::optional<TrackInformation> parse_track_information(std::span<const std::uint8_t> reply) {
  const auto found = with_length(reply, kTrackInformationMinimum);
  if (!found)
    return std::nullopt;
  const auto data = *found;
  const bool msbs = data.size() >= kTrackInformationMsbs;
  TrackInformation info;
  info.track = static_cast<std::uint16_t>((msbs ? data[32] << 8 : 0) | data[2]);
  info.session = static_cast<std::uint16_t>((msbs ? data[33] << 8 : 0) | data[3]);
  info.start_lba = be32(data, 8);
  if ((data[7] & 0x01) != 0)  // NWA_V
    info.next_writable_address = be32(data, 12);
  info.free_blocks = be32(data, 16);
  info.track_size = be32(data, 24);
  return info;
}

}  // namespace discarbiter::proto::mmc
