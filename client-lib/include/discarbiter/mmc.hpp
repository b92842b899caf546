// MMC helpers on a Client: the commands a burner sends, with their replies
// parsed (discarbiter/proto/mmc.hpp). Each throws ServiceError for a
// service error, and CommandError (a ServiceError) when the drive answers
// CHECK CONDITION.
//
// @code
//   auto lock = client.acquire("sim0");
//   if (!discarbiter::proto::mmc::is_overwritable(discarbiter::mmc::current_profile(client,
//   "sim0")))
//     return;
//   discarbiter::mmc::write10(client, "sim0", 0, image_chunk);
//   discarbiter::mmc::synchronize_cache(client, "sim0");
// @endcode
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "discarbiter/client.hpp"
#include "discarbiter/export.h"
#include "discarbiter/proto/mmc.hpp"

namespace discarbiter {

/// A command the drive answered with CHECK CONDITION: code() is
/// S_IMAPI_COMMAND_HAS_SENSE_DATA, what() names the command and explains the
/// sense ("READ(10): sense 5/21/00: logical block address out of range").
class DISCARBITER_API CommandError : public ServiceError {
 public:
  CommandError(std::string_view command, CommandResult result);
  const CommandResult& result() const noexcept { return result_; }

 private:
  CommandResult result_;
};

/// Each helper throws ServiceError E_FAIL naming the command when the drive
/// answers GOOD with a reply too short to parse ("READ CAPACITY: reply too
/// short (4 bytes)").
namespace mmc {

/// The current profile, the Profile List and every feature code (two
/// commands: the header, then the whole reply, at most 65534 bytes).
DISCARBITER_API proto::mmc::Configuration get_configuration(Client& client,
                                                            const std::string& drive);
/// GET CONFIGURATION's header alone: one command.
DISCARBITER_API std::uint16_t current_profile(Client& client, const std::string& drive);
DISCARBITER_API proto::mmc::Capacity read_capacity(Client& client, const std::string& drive);
DISCARBITER_API proto::mmc::DiscInformation read_disc_information(Client& client,
                                                                  const std::string& drive);
DISCARBITER_API proto::mmc::TrackInformation read_track_information(Client& client,
                                                                    const std::string& drive,
                                                                    std::uint32_t track);
/// READ(10) of data.size() / 2048 blocks at `lba` into `data`, with no copy.
/// E_INVALIDARG before anything is sent unless data.size() is 1 to 65535
/// blocks of 2048 bytes (and at most the drive's max_transfer); E_FAIL if
/// the drive returns fewer bytes.
DISCARBITER_API void read10(Client& client, const std::string& drive, std::uint32_t lba,
                            std::span<std::uint8_t> data);
/// WRITE(10) of `data` at `lba`, with no copy; the same limits as read10.
DISCARBITER_API void write10(Client& client, const std::string& drive, std::uint32_t lba,
                             std::span<const std::uint8_t> data);
DISCARBITER_API void synchronize_cache(Client& client, const std::string& drive);
DISCARBITER_API void close_track_session(Client& client, const std::string& drive,
                                         proto::mmc::CloseFunction function, std::uint16_t number);

}  // namespace mmc
}  // namespace discarbiter
