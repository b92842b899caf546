#include "discarbiter/mmc.hpp"

#include <algorithm>
#include <array>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "discarbiter/proto/sense.hpp"

namespace discarbiter {

namespace pm = proto::mmc;

CommandError::CommandError(std::string_view command, CommandResult result)
    : ServiceError(Error{errc::command_has_sense_data,
                         fmt::format("{}: {}", command, proto::explain_sense(result.sense))}),
      result_(std::move(result)) {}

namespace mmc {
namespace {

/// The result of a command that succeeded; CommandError for CHECK CONDITION
/// (or any other status but GOOD).
CommandResult checked(std::string_view command, CommandResult result) {
  if (result.code != errc::ok || result.scsi_status != 0)
    throw CommandError(command, std::move(result));
  return result;
}

/// A reply's parse, or E_FAIL naming the command: the drive answered GOOD
/// with fewer bytes than the reply's fields need.
template <typename Parsed>
Parsed parsed(std::string_view command, std::optional<Parsed> reply, std::size_t bytes) {
  if (!reply)
    throw ServiceError(
        Error{errc::fail, fmt::format("{}: reply too short ({} bytes)", command, bytes)});
  return std::move(*reply);
}

/// Runs a data-in command into `buffer`; the bytes the drive returned.
std::span<const std::uint8_t> get(Client& client, const std::string& drive,
                                  std::string_view command, std::span<const std::uint8_t> cdb,
                                  std::span<std::uint8_t> buffer) {
  const auto result =
      checked(command, client.send_command_get_data_from_device(drive, cdb, buffer));
  return std::span<const std::uint8_t>(buffer).first(
      std::min<std::size_t>(result.bytes_transferred, buffer.size()));
}

/// READ(10) and WRITE(10) move whole 2048-byte blocks, at most 65535 of them.
std::uint16_t blocks_of(std::string_view command, std::size_t bytes) {
  constexpr std::size_t kMaxBlocks = 0xFFFF;
  if (bytes == 0 || bytes % pm::kBlockSize != 0 || bytes / pm::kBlockSize > kMaxBlocks)
    throw ServiceError(
        Error{errc::invalid_arg,
              fmt::format("{}: the data is {} bytes; it must be 1 to {} blocks of {} bytes",
                          command, bytes, kMaxBlocks, pm::kBlockSize)});
  return static_cast<std::uint16_t>(bytes / pm::kBlockSize);
}

constexpr std::string_view kGetConfiguration = "GET CONFIGURATION";
constexpr std::uint16_t kFeatureHeaderSize = 8;
// N.B. the allocation length is 16 bits, and some host adapters refuse an odd
// transfer length: the largest even one.
constexpr std::uint32_t kMaxConfigurationReply = 0xFFFE;

/// GET CONFIGURATION's 8-byte feature header alone: the current profile and
/// the length of the whole reply.
pm::Configuration feature_header(Client& client, const std::string& drive,
                                 std::uint32_t& reply_length) {
  std::array<std::uint8_t, kFeatureHeaderSize> header{};
  const auto head =
      get(client, drive, kGetConfiguration, pm::get_configuration(kFeatureHeaderSize), header);
  auto configuration = parsed(kGetConfiguration, pm::parse_configuration(head), head.size());
  // The data length counts the bytes after its own 4.
  reply_length = static_cast<std::uint32_t>(std::min<std::uint64_t>(
      4ULL + (std::uint32_t{header[0]} << 24 | std::uint32_t{header[1]} << 16 |
              std::uint32_t{header[2]} << 8 | header[3]),
      kMaxConfigurationReply));
  return configuration;
}

}  // namespace

pm::Configuration get_configuration(Client& client, const std::string& drive) {
  std::uint32_t length = 0;
  auto header = feature_header(client, drive, length);
  if (length <= kFeatureHeaderSize)
    return header;  // no feature descriptors
  std::vector<std::uint8_t> reply((length + 1) & ~1U);
  const auto all = get(client, drive, kGetConfiguration,
                       pm::get_configuration(static_cast<std::uint16_t>(reply.size())), reply);
  return parsed(kGetConfiguration, pm::parse_configuration(all), all.size());
}

std::uint16_t current_profile(Client& client, const std::string& drive) {
  std::uint32_t length = 0;
  return feature_header(client, drive, length).current_profile;
}

pm::Capacity read_capacity(Client& client, const std::string& drive) {
  constexpr std::string_view kCommand = "READ CAPACITY";
  std::array<std::uint8_t, 8> buffer{};
  const auto reply = get(client, drive, kCommand, pm::read_capacity(), buffer);
  return parsed(kCommand, pm::parse_capacity(reply), reply.size());
}

pm::DiscInformation read_disc_information(Client& client, const std::string& drive) {
  constexpr std::string_view kCommand = "READ DISC INFORMATION";
  std::array<std::uint8_t, 34> buffer{};
  const auto reply =
      get(client, drive, kCommand,
          pm::read_disc_information(static_cast<std::uint16_t>(buffer.size())), buffer);
  return parsed(kCommand, pm::parse_disc_information(reply), reply.size());
}

pm::TrackInformation read_track_information(Client& client, const std::string& drive,
                                            std::uint32_t track) {
  constexpr std::string_view kCommand = "READ TRACK INFORMATION";
  std::array<std::uint8_t, 48> buffer{};  // MMC-6's whole reply
  const auto reply =
      get(client, drive, kCommand,
          pm::read_track_information(track, static_cast<std::uint16_t>(buffer.size())), buffer);
  return parsed(kCommand, pm::parse_track_information(reply), reply.size());
}

void read10(Client& client, const std::string& drive, std::uint32_t lba,
            std::span<std::uint8_t> data) {
  constexpr std::string_view kCommand = "READ(10)";
  const auto cdb = pm::read10(lba, blocks_of(kCommand, data.size()));
  const auto reply = get(client, drive, kCommand, cdb, data);
  if (reply.size() != data.size())
    throw ServiceError(Error{errc::fail, fmt::format("{}: reply too short ({} of {} bytes)",
                                                     kCommand, reply.size(), data.size())});
}

void write10(Client& client, const std::string& drive, std::uint32_t lba,
             std::span<const std::uint8_t> data) {
  constexpr std::string_view kCommand = "WRITE(10)";
  const auto cdb = pm::write10(lba, blocks_of(kCommand, data.size()));
  checked(kCommand, client.send_command_send_data_to_device(drive, cdb, data));
}

void synchronize_cache(Client& client, const std::string& drive) {
  checked("SYNCHRONIZE CACHE", client.send_command_no_data(drive, pm::synchronize_cache()));
}

void close_track_session(Client& client, const std::string& drive, pm::CloseFunction function,
                         std::uint16_t number) {
  checked("CLOSE TRACK/SESSION",
          client.send_command_no_data(drive, pm::close_track_session(function, number)));
}

}  // namespace mmc
}  // namespace discarbiter
