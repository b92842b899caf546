#include "drives/simulated_drive.hpp"

#include <algorithm>
#include <cstring>
#include <span>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "discarbiter/proto/big_endian.hpp"
#include "discarbiter/proto/mmc.hpp"

namespace discarbiter::drives {
namespace {

using core::Direction;
using core::kStatusCheckCondition;
using core::make_sense;
namespace opcode = core::opcode;

// The opcodes the simulated drive answers beyond core::opcode's.
namespace mmc = proto::mmc;

// Mode pages (MMC-6 7.2).
constexpr std::uint8_t kPageWriteParameters = 0x05;
constexpr std::uint8_t kPageCapabilities = 0x2A;
constexpr std::uint8_t kPageAll = 0x3F;
constexpr std::size_t kModeHeaderBytes = 8;     // MODE SENSE(10)/MODE SELECT(10)
constexpr std::size_t kCapabilitiesBytes = 36;  // page 2Ah with one write speed descriptor

// FORMAT UNIT / READ FORMAT CAPACITIES format types (MMC-6 6.5.4.2).
constexpr std::uint8_t kFormatDvdPlusRw = 0x26;
constexpr std::uint8_t kFormatBdFull = 0x00;
constexpr std::uint8_t kFormatBdWithSpares = 0x30;
constexpr std::uint8_t kFormatBdWithoutSpares = 0x31;

using proto::be16;
using proto::be32;
using proto::put_be16;
using proto::put_be24;
using proto::put_be32;

// The CDB length of an opcode's group (SPC-4 4.2.5.1); 0 for the groups
// with no fixed length (vendor-specific, reserved).
std::size_t cdb_length(std::uint8_t op) {
  switch (op >> 5) {
    case 0:
      return 6;
    case 1:
    case 2:
      return 10;
    case 4:
      return 16;
    case 5:
      return 12;
    default:
      return 0;
  }
}

// GOOD with `data`, filled in the way an adapter does: at most what the CDB
// allocates and the host's buffer holds (a shorter answer is a residual, not
// an error).
ScsiResult data_in(proto::Bytes data, std::uint32_t allocation, const ScsiCommand& c) {
  const std::uint32_t buffer = c.direction == Direction::in ? c.data_in_len : 0;
  data.resize(std::min<std::size_t>(data.size(), std::min(allocation, buffer)));
  ScsiResult ok{};
  ok.data_in = std::move(data);
  return ok;
}

// A feature descriptor (MMC-6 5.3): its 4-byte header, then `length` bytes
// of zeros for the caller to fill.
proto::Bytes feature(std::uint16_t code, std::uint8_t version, bool persistent, bool current,
                     std::uint8_t length) {
  proto::Bytes f(4 + std::size_t{length}, 0);
  put_be16(f, 0, code);
  f[2] = static_cast<std::uint8_t>((version << 2) | (persistent ? 0x02 : 0) | (current ? 0x01 : 0));
  f[3] = length;
  return f;
}

bool all_zero(std::span<const std::uint8_t> data) {
  return std::ranges::all_of(data, [](std::uint8_t b) { return b == 0; });
}

// Mode page 05h (Write Parameters) as the drive starts: BUFE, track at once,
// data track, mode 1 blocks, audio pause 150.
std::array<std::uint8_t, SimulatedDrive::kWriteParametersBytes> default_write_parameters() {
  std::array<std::uint8_t, SimulatedDrive::kWriteParametersBytes> page{};
  page[0] = kPageWriteParameters;
  page[1] = SimulatedDrive::kWriteParametersBytes - 2;
  page[2] = 0x41;
  page[3] = 0x04;
  page[4] = 0x08;
  put_be16(page, 14, 150);
  return page;
}

// Which bits of page 05h MODE SELECT may change.
std::array<std::uint8_t, SimulatedDrive::kWriteParametersBytes> changeable_write_parameters() {
  std::array<std::uint8_t, SimulatedDrive::kWriteParametersBytes> mask{};
  mask[2] = 0x7F;  // BUFE, LS_V, Test Write, Write Type
  mask[3] = 0xFF;  // Multi-session, FP, Copy, Track Mode
  mask[4] = 0x0F;  // Data Block Type
  mask[5] = 0xFF;  // Link Size
  mask[7] = 0x3F;  // Initiator Application Code
  mask[8] = 0xFF;  // Session Format
  for (std::size_t i = 10; i < mask.size(); ++i)
    mask[i] = 0xFF;  // Packet Size, Audio Pause Length, MCN, ISRC, Subheader
  return mask;
}

}  // namespace

void SparseDisc::read(std::uint64_t offset, std::size_t size, proto::Bytes& out) const {
  // N.B. appended piece by piece, never resized first: a resize would zero
  // the whole buffer before the copies wrote over it. Only the gaps between
  // written chunks are zeroed, so each byte is written once.
  out.reserve(out.size() + size);
  const std::uint64_t end = offset + size;
  std::uint64_t done = offset;  // appended up to here
  for (auto it = chunks_.lower_bound(offset / kChunkBytes);
       size > 0 && it != chunks_.end() && it->first * kChunkBytes < end; ++it) {
    const std::uint64_t chunk_start = it->first * kChunkBytes;
    const std::uint64_t from = std::max(offset, chunk_start);
    const std::uint64_t to = std::min(end, chunk_start + kChunkBytes);
    out.resize(out.size() + (from - done));
    const auto* begin = it->second.data() + (from - chunk_start);
    out.insert(out.end(), begin, begin + (to - from));
    done = to;
  }
  out.resize(out.size() + (end - done));
}

bool SparseDisc::write(std::uint64_t offset, std::span<const std::uint8_t> data) {
  if (data.empty())
    return true;
  const std::uint64_t end = offset + data.size();
  const std::uint64_t first = offset / kChunkBytes;
  const std::uint64_t last = (end - 1) / kChunkBytes;
  // The part of `data` that falls into chunk `index`, and where in it.
  const auto slice = [&](std::uint64_t index) {
    const std::uint64_t chunk_start = index * kChunkBytes;
    const std::uint64_t from = std::max(offset, chunk_start);
    const std::uint64_t to = std::min(end, chunk_start + kChunkBytes);
    return std::pair{data.subspan(from - offset, to - from), from - chunk_start};
  };
  // N.B. counted before anything is written: a refused WRITE changes nothing.
  std::uint64_t new_chunks = 0;
  for (std::uint64_t i = first; i <= last; ++i) {
    if (!chunks_.contains(i) && !all_zero(slice(i).first))
      ++new_chunks;
  }
  if (stored_bytes() + new_chunks * kChunkBytes > max_stored_bytes_)
    return false;
  for (std::uint64_t i = first; i <= last; ++i) {
    const auto [part, at] = slice(i);
    auto chunk = chunks_.find(i);
    if (chunk == chunks_.end()) {
      if (all_zero(part))
        continue;  // reads as zeros already
      chunk = chunks_.emplace(i, proto::Bytes(kChunkBytes, 0)).first;
    }
    std::memcpy(chunk->second.data() + at, part.data(), part.size());
  }
  return true;
}

SimulatedDrive::SimulatedDrive(unsigned index, SimulatedFaults faults, SimulatedMedium medium)
    : index_(index),
      faults_(std::move(faults)),
      medium_(medium),
      disc_(medium.max_stored_bytes),
      write_parameters_(default_write_parameters()) {}

DriveDescription SimulatedDrive::describe() {
  return DriveDescription{fmt::format("sim{}", index_),
                          fmt::format("simulated:{}", index_),
                          "simulated",
                          "DISCARB",
                          "Simulated MMC",
                          "0001",
                          kMaxTransferBytes,
                          core::OsLock::simulated};
}

std::string describe(const SimulatedCommand& c) {
  std::string data;
  if (c.data_out_bytes)
    data = fmt::format(" ({} bytes out)", c.data_out_bytes);
  else if (c.data_in_len)
    data = fmt::format(" ({} bytes in)", c.data_in_len);
  return fmt::format("#{} CDB {:02X}{}, {}", c.sequence, fmt::join(c.cdb, " "), data,
                     c.exclusive_owner ? fmt::format("OS lock '{}'", *c.exclusive_owner)
                                       : std::string("no OS lock"));
}

ScsiResult SimulatedDrive::execute(const ScsiCommand& command) {
  std::unique_lock lock(mutex_);
  // N.B. logged before any fault: a command that hangs has reached the drive.
  SimulatedCommand seen{++commands_seen_, command.cdb, command.data_out.size(),
                        command.direction == Direction::in ? command.data_in_len : 0,
                        exclusive_owner_};
  if (command_log_.size() == kCommandLogSize)
    command_log_.pop_front();
  command_log_.push_back(seen);
  if (observer_) {
    const CommandObserver observer = observer_;
    lock.unlock();  // N.B. the observer logs; nothing of ours is held meanwhile
    observer(seen);
    lock.lock();
  }
  if (faults_.removed) {
    return {errc::dev_not_exist, "the simulated drive has been removed", 0, {}, {}};
  }
  const std::uint8_t op = command.opcode();
  const bool hang = faults_.hang.contains(op);
  const auto delay = faults_.delay.find(op);
  if (hang || delay != faults_.delay.end()) {
    const std::chrono::microseconds wanted =
        hang ? std::chrono::microseconds(command.timeout) : delay->second;
    if (auto failed = wait_for(command, wanted, hang, lock))
      return std::move(*failed);
  }
  return answer(command, lock);
}

std::optional<ScsiResult> SimulatedDrive::wait_for(const ScsiCommand& command,
                                                   std::chrono::microseconds wanted, bool hang,
                                                   Lock& lock) {
  const bool times_out = hang || wanted >= command.timeout;
  const auto until = std::chrono::steady_clock::now() +
                     std::min<std::chrono::microseconds>(wanted, command.timeout);
  if (cancelled_.wait_until(lock, until, [this] { return cancel_; })) {
    return ScsiResult::failed(errc::service_stopping, "command cancelled: the service is stopping");
  }
  if (times_out) {
    return ScsiResult::failed(errc::recorder_command_timeout,
                              fmt::format("no answer within {} s", command.timeout.count()));
  }
  if (faults_.removed)
    return ScsiResult::failed(errc::dev_not_exist, "the simulated drive has been removed");
  return std::nullopt;
}

ScsiResult SimulatedDrive::check_condition(std::uint8_t key, std::uint8_t asc,
                                           std::uint8_t ascq) const {
  return {errc::ok, {}, kStatusCheckCondition, make_sense(key, asc, ascq), {}};
}

std::uint64_t SimulatedDrive::stored_bytes() const {
  std::lock_guard lock(mutex_);
  return disc_.stored_bytes();
}

std::uint32_t SimulatedDrive::blocking() const {
  return medium_.profile == SimulatedMedium::kProfileBdRe ? 32 : 16;
}

ScsiResult SimulatedDrive::answer(const ScsiCommand& c, Lock& lock) {
  const auto& cdb = c.cdb;
  const std::uint8_t op = c.opcode();
  const auto no_medium = [this] { return check_condition(0x02, 0x3A, 0x00); };
  ScsiResult ok{};
  if (const std::size_t needed = cdb_length(op); needed == 0 || cdb.size() < needed) {
    return needed == 0 ? check_condition(0x05, 0x20, 0x00)   // invalid command operation code
                       : check_condition(0x05, 0x24, 0x00);  // invalid field in CDB
  }
  switch (op) {
    case opcode::test_unit_ready:
      return medium_present() ? ok : no_medium();
    case mmc::kRequestSense:
      // N.B. every CHECK CONDITION carries its sense already: nothing is pending.
      return data_in(make_sense(0x00, 0x00, 0x00), cdb[4], c);
    case opcode::inquiry: {
      proto::Bytes data(36, 0);
      data[0] = 0x05;  // peripheral device type: CD/DVD
      data[1] = 0x80;  // removable
      data[2] = 0x05;  // SPC-3
      data[3] = 0x02;  // response data format
      data[4] = 36 - 5;
      std::memcpy(&data[8], "DISCARB ", 8);
      std::memcpy(&data[16], "Simulated MMC   ", 16);
      std::memcpy(&data[32], "0001", 4);
      return data_in(std::move(data), be16(cdb, 3), c);
    }
    case opcode::prevent_allow_medium_removal:
      // MMC: byte 4 bit 1 chooses the persistent prevention, bit 0 sets or
      // clears it; each is independent of the other.
      ((cdb[4] & 0x02) != 0 ? tray_persistent_ : tray_locked_) = (cdb[4] & 0x01) != 0;
      return ok;
    case opcode::start_stop_unit: {
      const bool load_eject = (cdb[4] & 0x02) != 0;
      const bool start = (cdb[4] & 0x01) != 0;
      if (load_eject && !start) {
        if (tray_locked_ || tray_persistent_) {
          return check_condition(0x05, 0x53, 0x02);  // medium removal prevented
        }
        tray_open_ = true;
      } else if (load_eject && start) {
        tray_open_ = false;
      }
      return ok;
    }
    case opcode::get_configuration:
      return get_configuration(c);
    case mmc::kModeSense10:
      return mode_sense(c);
    case mmc::kModeSelect10:
      return mode_select(c);
    case mmc::kReadFormatCapacities:
      return read_format_capacities(c);
    case mmc::kSetCdSpeed:
    case mmc::kSetStreaming:
      // Accepted and ignored: the configured write speed stays.
      return ok;
    default:
      break;
  }
  // Everything below needs the disc.
  if (!medium_present())
    return no_medium();
  switch (op) {
    case opcode::read_capacity: {
      proto::Bytes data(8, 0);
      put_be32(data, 0, static_cast<std::uint32_t>(medium_.blocks - 1));
      put_be32(data, 4, kBlockSize);
      return data_in(std::move(data), 8, c);
    }
    case opcode::read10:
    case opcode::write10:
      return read_write(c, be32(cdb, 2), be16(cdb, 7), lock);
    case mmc::kRead12:
    case mmc::kWrite12:
      return read_write(c, be32(cdb, 2), be32(cdb, 6), lock);
    case opcode::synchronize_cache:
      return ok;  // N.B. nothing is cached: a WRITE's data is on the disc when it returns
    case mmc::kReadDiscInformation:
      return read_disc_information(c);
    case mmc::kReadTrackInformation:
      return read_track_information(c);
    case opcode::format_unit:
      return format_unit(c);
    case opcode::close_track_session:
      // Close Function (byte 2, bits 2-0): 001b closes the track, which on a
      // rewritable disc changes nothing; the others close the session or
      // finalize, which a disc with something on it records.
      if ((cdb[2] & 0x07) >= 0x02 && recorded_end_ > 0)
        closed_ = true;
      return ok;
    default:
      return check_condition(0x05, 0x20, 0x00);  // invalid command operation code
  }
}

ScsiResult SimulatedDrive::read_write(const ScsiCommand& c, std::uint64_t lba, std::uint64_t blocks,
                                      Lock& lock) {
  const bool write = c.opcode() == opcode::write10 || c.opcode() == mmc::kWrite12;
  if (lba + blocks > medium_.blocks)
    return check_condition(0x05, 0x21, 0x00);  // logical block address out of range
  const std::uint64_t bytes = blocks * kBlockSize;
  const std::uint64_t buffer = write ? (c.direction == Direction::out ? c.data_out.size() : 0)
                                     : (c.direction == Direction::in ? c.data_in_len : 0);
  if (buffer != bytes)
    return check_condition(0x05, 0x24, 0x00);  // the transfer length is not the buffer's
  ScsiResult ok{};
  if (!write) {
    disc_.read(lba * kBlockSize, bytes, ok.data_in);
    return ok;
  }
  if (medium_.write_speed_mb_s > 0 && bytes > 0) {
    // N.B. bytes / (MB/s × 10^6) seconds is bytes / (MB/s) microseconds.
    const std::chrono::microseconds takes(bytes / medium_.write_speed_mb_s);
    if (auto failed = wait_for(c, takes, false, lock))
      return std::move(*failed);
  }
  if (!disc_.write(lba * kBlockSize, c.data_out))
    return check_condition(0x03, 0x0C, 0x00);  // MEDIUM ERROR, write error: memory bound
  if (blocks > 0) {
    formatted_ = true;
    recorded_end_ = std::max(recorded_end_, lba + blocks);
  }
  return ok;
}

ScsiResult SimulatedDrive::get_configuration(const ScsiCommand& c) const {
  const std::uint8_t rt = c.cdb[1] & 0x03;
  if (rt == 0x03)
    return check_condition(0x05, 0x24, 0x00);
  const std::uint16_t starting = be16(c.cdb, 2);
  const bool present = medium_present();
  const bool bd = medium_.profile == SimulatedMedium::kProfileBdRe;

  std::vector<proto::Bytes> features;  // N.B. in ascending feature number
  auto& profiles = features.emplace_back(feature(0x0000, 0, true, true, 4));  // Profile List
  put_be16(profiles, 4, medium_.profile);
  profiles[6] = present ? 0x01 : 0x00;                                    // CurrentP
  auto& core = features.emplace_back(feature(0x0001, 2, true, true, 8));  // Core
  put_be32(core, 4, 0x00000001);  // physical interface: SCSI family
  core[8] = 0x01;                 // DBE
  auto& removable = features.emplace_back(feature(0x0003, 2, true, true, 4));  // Removable Medium
  removable[4] = 0x39;  // tray, Load, Eject, Lock
  auto& readable = features.emplace_back(feature(0x0010, 0, false, present, 8));  // Random Readable
  put_be32(readable, 4, kBlockSize);
  put_be16(readable, 8, static_cast<std::uint16_t>(blocking()));
  readable[10] = 0x01;  // PP
  auto& writable =
      features.emplace_back(feature(0x0020, 1, false, present, 12));  // Random Writable
  put_be32(writable, 4, static_cast<std::uint32_t>(medium_.blocks - 1));
  put_be32(writable, 8, kBlockSize);
  put_be16(writable, 12, static_cast<std::uint16_t>(blocking()));
  writable[14] = 0x01;  // PP
  if (bd) {
    auto& bd_read = features.emplace_back(feature(0x0040, 1, false, present, 28));  // BD Read
    put_be16(bd_read, 8, 0x0006);                                                   // class 0 BD-RE
    auto& bd_write = features.emplace_back(feature(0x0041, 2, false, present, 20));  // BD Write
    put_be16(bd_write, 8, 0x0006);  // class 0 BD-RE
  } else {
    auto& plus_rw = features.emplace_back(feature(0x002A, 1, false, present, 4));  // DVD+RW
    plus_rw[4] = 0x01;                                                             // Write
  }

  proto::Bytes data(8, 0);
  put_be16(data, 6, present ? medium_.profile : 0);  // current profile
  for (const auto& f : features) {
    const std::uint16_t code = be16(f, 0);
    const bool current = (f[2] & 0x01) != 0;
    const bool wanted = rt == 0x02 ? code == starting : code >= starting && (rt == 0x00 || current);
    if (wanted)
      data.insert(data.end(), f.begin(), f.end());
  }
  put_be32(data, 0, static_cast<std::uint32_t>(data.size() - 4));
  return data_in(std::move(data), be16(c.cdb, 7), c);
}

ScsiResult SimulatedDrive::read_disc_information(const ScsiCommand& c) const {
  if ((c.cdb[1] & 0x07) != 0)
    return check_condition(0x05, 0x24, 0x00);  // only Standard Disc Information
  proto::Bytes data(34, 0);
  put_be16(data, 0, static_cast<std::uint16_t>(data.size() - 2));
  // Erasable; State of Last Session and Disc Status: empty/empty,
  // incomplete/incomplete, or complete/finalized.
  const std::uint8_t state = closed_ ? 0x0E : recorded_end_ > 0 ? 0x05 : 0x00;
  data[2] = static_cast<std::uint8_t>(0x10 | state);
  data[3] = 1;                         // first track on disc
  data[4] = 1;                         // sessions
  data[5] = 1;                         // first track in last session
  data[6] = 1;                         // last track in last session
  data[7] = formatted_ ? 0x03 : 0x00;  // BG Format Status: complete, or never formatted
  put_be32(data, 20, static_cast<std::uint32_t>(medium_.blocks));  // last possible lead-out
  return data_in(std::move(data), be16(c.cdb, 7), c);
}

ScsiResult SimulatedDrive::read_track_information(const ScsiCommand& c) const {
  // The disc is one session of one track, LBA 0 to the last block.
  const std::uint8_t type = c.cdb[1] & 0x03;
  const std::uint32_t number = be32(c.cdb, 2);
  if (type == 0x00 && number >= medium_.blocks)
    return check_condition(0x05, 0x21, 0x00);
  if (type == 0x03 || (type != 0x00 && number != 1))
    return check_condition(0x05, 0x24, 0x00);
  proto::Bytes data(48, 0);
  put_be16(data, 0, static_cast<std::uint16_t>(data.size() - 2));
  data[2] = 1;     // track number
  data[3] = 1;     // session number
  data[5] = 0x04;  // Track Mode: data, recorded uninterrupted
  data[6] = static_cast<std::uint8_t>((recorded_end_ == 0 ? 0x40 : 0x00) | 0x01);  // Blank; mode 1
  // NWA_V: a rewritable disc is always writable (at any LBA; NWA is where
  // the last WRITE ended); LRA_V once something is written.
  data[7] = static_cast<std::uint8_t>(0x01 | (recorded_end_ > 0 ? 0x02 : 0x00));
  put_be32(data, 8, 0);                                                            // start
  put_be32(data, 12, static_cast<std::uint32_t>(recorded_end_));                   // NWA
  put_be32(data, 16, static_cast<std::uint32_t>(medium_.blocks - recorded_end_));  // free blocks
  put_be32(data, 20, blocking());                                  // blocking factor
  put_be32(data, 24, static_cast<std::uint32_t>(medium_.blocks));  // track size
  if (recorded_end_ > 0)
    put_be32(data, 28, static_cast<std::uint32_t>(recorded_end_ - 1));  // last recorded address
  return data_in(std::move(data), be16(c.cdb, 7), c);
}

ScsiResult SimulatedDrive::read_format_capacities(const ScsiCommand& c) const {
  const bool bd = medium_.profile == SimulatedMedium::kProfileBdRe;
  const bool present = medium_present();
  proto::Bytes data(12, 0);
  // Current/Maximum Capacity Descriptor: formatted (10b), unformatted (01b)
  // or no medium (11b).
  put_be32(data, 4, static_cast<std::uint32_t>(medium_.blocks));
  data[8] = !present ? 0x03 : formatted_ ? 0x02 : 0x01;
  put_be24(data, 9, kBlockSize);
  if (present) {
    // One Formattable Capacity Descriptor: what FORMAT UNIT would make.
    proto::Bytes descriptor(8, 0);
    put_be32(descriptor, 0, static_cast<std::uint32_t>(medium_.blocks));
    descriptor[4] = static_cast<std::uint8_t>((bd ? kFormatBdWithSpares : kFormatDvdPlusRw) << 2);
    data.insert(data.end(), descriptor.begin(), descriptor.end());
  }
  data[3] = static_cast<std::uint8_t>(data.size() - 4);  // capacity list length
  return data_in(std::move(data), be16(c.cdb, 7), c);
}

ScsiResult SimulatedDrive::format_unit(const ScsiCommand& c) {
  const bool fmt_data = (c.cdb[1] & 0x10) != 0;
  const std::size_t out = c.direction == Direction::out ? c.data_out.size() : 0;
  if (!fmt_data) {
    if (out != 0)
      return check_condition(0x05, 0x24, 0x00);
  } else {
    if ((c.cdb[1] & 0x07) != 0x01)
      return check_condition(0x05, 0x24, 0x00);  // MMC's Format Code is 001b
    // A 4-byte header, then one 8-byte Format Descriptor.
    if (out != 12 || be16(c.data_out, 2) != 8)
      return check_condition(0x05, 0x1A, 0x00);  // parameter list length error
    const std::uint8_t type = c.data_out[8] >> 2;
    const bool known =
        medium_.profile == SimulatedMedium::kProfileBdRe
            ? type == kFormatBdFull || type == kFormatBdWithSpares || type == kFormatBdWithoutSpares
            : type == kFormatDvdPlusRw;
    if (!known)
      return check_condition(0x05, 0x26, 0x00);  // invalid field in parameter list
  }
  disc_.clear();
  formatted_ = true;
  closed_ = false;
  recorded_end_ = 0;
  return {};
}

ScsiResult SimulatedDrive::mode_sense(const ScsiCommand& c) const {
  const std::uint8_t control = c.cdb[2] >> 6;  // current, changeable, default, saved
  const std::uint8_t page = c.cdb[2] & 0x3F;
  if (control == 0x03)
    return check_condition(0x05, 0x39, 0x00);  // saving parameters not supported
  if (c.cdb[3] != 0 ||
      (page != kPageWriteParameters && page != kPageCapabilities && page != kPageAll))
    return check_condition(0x05, 0x24, 0x00);
  proto::Bytes data(kModeHeaderBytes, 0);  // no block descriptors
  if (page == kPageWriteParameters || page == kPageAll) {
    const Page values = control == 0x01   ? changeable_write_parameters()
                        : control == 0x02 ? default_write_parameters()
                                          : write_parameters_;
    data.insert(data.end(), values.begin(), values.end());
    data[kModeHeaderBytes] = kPageWriteParameters;
    data[kModeHeaderBytes + 1] = kWriteParametersBytes - 2;
  }
  if (page == kPageCapabilities || page == kPageAll) {
    // CD/DVD Capabilities and Mechanical Status: nothing in it is changeable.
    proto::Bytes caps(kCapabilitiesBytes, 0);
    caps[0] = kPageCapabilities;
    caps[1] = kCapabilitiesBytes - 2;
    if (control != 0x01) {
      caps[2] = 0x3F;  // reads CD-R, CD-RW, method 2, DVD-ROM, DVD-R, DVD-RAM
      caps[4] = 0xC0;  // BUF (underrun protection), multi-session
      caps[6] = static_cast<std::uint8_t>(0x29 | (tray_locked_ || tray_persistent_ ? 0x02 : 0));
      put_be16(caps, 12, 2048);  // buffer, KiB
      // Write speeds in kB/s (10^3 bytes): the configured one, or the most
      // the field holds when unthrottled.
      const std::uint32_t speed =
          medium_.write_speed_mb_s == 0
              ? 0xFFFF
              : std::min<std::uint32_t>(medium_.write_speed_mb_s, 65) * 1000;
      put_be16(caps, 28, static_cast<std::uint16_t>(speed));  // current write speed
      put_be16(caps, 30, 1);                                  // one descriptor:
      put_be16(caps, 34, static_cast<std::uint16_t>(speed));  // CLV at that speed
    }
    data.insert(data.end(), caps.begin(), caps.end());
  }
  put_be16(data, 0, static_cast<std::uint16_t>(data.size() - 2));  // mode data length
  return data_in(std::move(data), be16(c.cdb, 7), c);
}

ScsiResult SimulatedDrive::mode_select(const ScsiCommand& c) {
  if ((c.cdb[1] & 0x01) != 0)
    return check_condition(0x05, 0x24, 0x00);  // SP: nothing is saved
  const std::size_t length = be16(c.cdb, 7);
  const proto::Bytes& list = c.data_out;
  if ((c.direction == Direction::out ? list.size() : 0) != length)
    return check_condition(0x05, 0x24, 0x00);  // the parameter list is not the buffer
  if (length == 0)
    return {};
  if (length < kModeHeaderBytes)
    return check_condition(0x05, 0x1A, 0x00);  // parameter list length error
  if (be16(list, 6) != 0)
    return check_condition(0x05, 0x26, 0x00);  // block descriptors: MMC has none
  // N.B. every page is checked before any is taken: a refused list changes nothing.
  Page pending = write_parameters_;
  const Page changeable = changeable_write_parameters();
  for (std::size_t at = kModeHeaderBytes; at < length;) {
    if (length - at < 2 || length - at < 2 + std::size_t{list[at + 1]})
      return check_condition(0x05, 0x1A, 0x00);
    if ((list[at] & 0x3F) != kPageWriteParameters || list[at + 1] != kWriteParametersBytes - 2)
      return check_condition(0x05, 0x26, 0x00);  // only page 05h may be selected
    for (std::size_t i = 2; i < kWriteParametersBytes; ++i) {
      pending[i] =
          static_cast<std::uint8_t>((pending[i] & ~changeable[i]) | (list[at + i] & changeable[i]));
    }
    at += kWriteParametersBytes;
  }
  write_parameters_ = pending;
  return {};
}

Result<Done> SimulatedDrive::lock_exclusive(const std::string& client_name, bool /*force*/) {
  std::lock_guard lock(mutex_);
  if (faults_.removed) {
    return Error{errc::dev_not_exist, "the simulated drive has been removed"};
  }
  if (exclusive_owner_) {
    return Error{errc::recorder_locked, fmt::format("already locked for '{}'", *exclusive_owner_)};
  }
  exclusive_owner_ = client_name;
  return Done{};
}

Result<Done> SimulatedDrive::unlock_exclusive() {
  std::lock_guard lock(mutex_);
  exclusive_owner_.reset();
  return Done{};
}

void SimulatedDrive::cancel() {
  {
    std::lock_guard lock(mutex_);
    cancel_ = true;
  }
  cancelled_.notify_all();
}

void SimulatedDrive::set_faults(SimulatedFaults faults) {
  std::lock_guard lock(mutex_);
  faults_ = std::move(faults);
}

bool SimulatedDrive::tray_locked() const {
  std::lock_guard lock(mutex_);
  return tray_locked_ || tray_persistent_;
}

bool SimulatedDrive::tray_prevented() const {
  std::lock_guard lock(mutex_);
  return tray_locked_;
}

bool SimulatedDrive::tray_persistently_prevented() const {
  std::lock_guard lock(mutex_);
  return tray_persistent_;
}

bool SimulatedDrive::tray_open() const {
  std::lock_guard lock(mutex_);
  return tray_open_;
}

std::optional<std::string> SimulatedDrive::exclusive_owner() const {
  std::lock_guard lock(mutex_);
  return exclusive_owner_;
}

std::vector<SimulatedCommand> SimulatedDrive::command_log() const {
  std::lock_guard lock(mutex_);
  return {command_log_.begin(), command_log_.end()};
}

void SimulatedDrive::set_command_observer(CommandObserver observer) {
  std::lock_guard lock(mutex_);
  observer_ = std::move(observer);
}

}  // namespace discarbiter::drives
