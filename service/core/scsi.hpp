// The SCSI/MMC vocabulary the core forwards: a command, its result, and the
// few CDBs the arbiter itself sends on acquire and release.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "discarbiter/proto/errors.hpp"
#include "discarbiter/proto/messages.hpp"
#include "discarbiter/proto/result.hpp"
#include "discarbiter/proto/sense.hpp"  // proto::describe_sense for a ScsiResult's sense

namespace discarbiter::core {

using proto::Bytes;
using proto::Direction;

/// Operation codes (SPC-4, MMC-6) that the service names.
namespace opcode {
inline constexpr std::uint8_t test_unit_ready = 0x00;
inline constexpr std::uint8_t format_unit = 0x04;
inline constexpr std::uint8_t inquiry = 0x12;
inline constexpr std::uint8_t start_stop_unit = 0x1B;
inline constexpr std::uint8_t prevent_allow_medium_removal = 0x1E;
inline constexpr std::uint8_t read_capacity = 0x25;
inline constexpr std::uint8_t read10 = 0x28;
inline constexpr std::uint8_t write10 = 0x2A;
inline constexpr std::uint8_t synchronize_cache = 0x35;
inline constexpr std::uint8_t get_configuration = 0x46;
inline constexpr std::uint8_t close_track_session = 0x5B;
inline constexpr std::uint8_t blank = 0xA1;
}  // namespace opcode

inline constexpr std::uint8_t kStatusGood = 0x00;
inline constexpr std::uint8_t kStatusCheckCondition = 0x02;
inline constexpr std::size_t kSenseBytes = 18;  // fixed-format sense, the minimum we return
inline constexpr std::uint8_t kPeripheralTypeMmc = 0x05;  // SPC peripheral device type: CD/DVD

struct ScsiCommand {
  Bytes cdb;
  Direction direction = Direction::none;
  Bytes data_out;                 // direction == out
  std::uint32_t data_in_len = 0;  // direction == in
  std::chrono::seconds timeout{10};

  std::uint8_t opcode() const { return cdb.empty() ? 0 : cdb[0]; }
};

struct ScsiResult {
  /// S_OK when the drive answered (with any SCSI status); otherwise the
  /// transport failure: E_IMAPI_RECORDER_COMMAND_TIMEOUT, ERROR_DEV_NOT_EXIST…
  errc transport = errc::ok;
  std::string transport_message;
  std::uint8_t status = kStatusGood;
  Bytes sense;  // kSenseBytes or more when status is CHECK CONDITION
  Bytes data_in;
  /// False when the command was taken back before its backend started it (a
  /// departing owner's queued command): the drive never saw it, so it counts
  /// in none of the drive's statistics.
  bool sent = true;

  /// The drive never answered: a timeout, a vanished device, a failed call.
  static ScsiResult failed(errc why, std::string message) {
    ScsiResult r;
    r.transport = why;
    r.transport_message = std::move(message);
    return r;
  }
  /// The command was taken back unstarted (see `sent`), answered with `why`.
  static ScsiResult not_sent(errc why, std::string message) {
    ScsiResult r = failed(why, std::move(message));
    r.sent = false;
    return r;
  }

  bool answered() const { return transport == errc::ok; }
  bool good() const { return answered() && status == kStatusGood; }
};

/// Fixed-format sense data (SPC-4 4.5.3) with the given key/ASC/ASCQ.
Bytes make_sense(std::uint8_t key, std::uint8_t asc, std::uint8_t ascq);

/// The INQUIRY (standard data, 96 bytes) a backend sends to identify a drive.
ScsiCommand inquiry_command(std::chrono::seconds timeout);

struct InquiryData {
  std::string vendor;  // printable ASCII, trailing blanks dropped
  std::string product;
  std::string revision;
};

/// Reads the answer to inquiry_command() from the device at `path`. The
/// error names the path: the command failed (transport or sense), the answer
/// is shorter than 36 bytes, or the device is not an MMC (type 5) device.
Result<InquiryData> parse_inquiry(const ScsiResult& result, std::string_view path);

Bytes cdb_test_unit_ready();
/// MMC's PREVENT field is byte 4 bits 1:0 (Persistent, Prevent): 00 allow,
/// 01 prevent, 10 persistent allow, 11 persistent prevent.
Bytes cdb_prevent_allow_medium_removal(bool prevent, bool persistent = false);

}  // namespace discarbiter::core
