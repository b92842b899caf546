#include "drives/simulated_drive.hpp"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace discarbiter::drives {
namespace {

using core::Direction;
using core::kStatusCheckCondition;
using core::make_sense;
namespace opcode = core::opcode;

std::uint32_t be32(const proto::Bytes& b, std::size_t at) {
  return (std::uint32_t{b[at]} << 24) | (std::uint32_t{b[at + 1]} << 16) |
         (std::uint32_t{b[at + 2]} << 8) | std::uint32_t{b[at + 3]};
}
std::uint16_t be16(const proto::Bytes& b, std::size_t at) {
  return static_cast<std::uint16_t>((b[at] << 8) | b[at + 1]);
}
void put_be32(proto::Bytes& b, std::size_t at, std::uint32_t v) {
  for (std::size_t i = 0; i < 4; ++i) {
    b[at + i] = static_cast<std::uint8_t>(v >> (24 - 8 * i));
  }
}
void put_be16(proto::Bytes& b, std::size_t at, std::uint16_t v) {
  b[at] = static_cast<std::uint8_t>(v >> 8);
  b[at + 1] = static_cast<std::uint8_t>(v);
}

// Fills a data-in buffer the way an adapter does: at most what the host
// asked for (a shorter answer is a residual, not an error).
proto::Bytes truncate_to(proto::Bytes data, std::uint32_t allocation, std::uint32_t data_in_len) {
  data.resize(std::min<std::size_t>(data.size(), std::min(allocation, data_in_len)));
  return data;
}

}  // namespace

SimulatedDrive::SimulatedDrive(unsigned index, SimulatedFaults faults)
    : index_(index), faults_(std::move(faults)) {}

DriveDescription SimulatedDrive::describe() {
  return DriveDescription{fmt::format("sim{}", index_),
                          fmt::format("simulated:{}", index_),
                          "simulated",
                          "DISCARB",
                          "Simulated MMC",
                          "0001",
                          1024 * 1024};
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
    const std::chrono::milliseconds wanted =
        hang ? std::chrono::milliseconds(command.timeout) : delay->second;
    const bool times_out = hang || wanted >= command.timeout;
    const auto until = std::chrono::steady_clock::now() +
                       std::min<std::chrono::milliseconds>(wanted, command.timeout);
    if (cancelled_.wait_until(lock, until, [this] { return cancel_; })) {
      return {errc::service_stopping, "command cancelled: the service is stopping", 0, {}, {}};
    }
    if (times_out) {
      return {errc::recorder_command_timeout,
              fmt::format("no answer within {} s", command.timeout.count()),
              0,
              {},
              {}};
    }
    if (faults_.removed) {
      return {errc::dev_not_exist, "the simulated drive has been removed", 0, {}, {}};
    }
  }
  return answer(command);
}

ScsiResult SimulatedDrive::check_condition(std::uint8_t key, std::uint8_t asc,
                                           std::uint8_t ascq) const {
  return {errc::ok, {}, kStatusCheckCondition, make_sense(key, asc, ascq), {}};
}

ScsiResult SimulatedDrive::answer(const ScsiCommand& c) {
  const auto& cdb = c.cdb;
  const std::uint32_t in_len = c.direction == Direction::in ? c.data_in_len : 0;
  ScsiResult ok{};
  switch (c.opcode()) {
    case opcode::test_unit_ready:
      return medium_present() ? ok : check_condition(0x02, 0x3A, 0x00);  // NOT READY, no medium
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
      ok.data_in = truncate_to(std::move(data), be16(cdb, 3), in_len);
      return ok;
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
    case opcode::get_configuration: {
      proto::Bytes data(16, 0);
      const std::uint16_t profile = medium_present() ? kProfileDvdPlusRw : 0;
      put_be32(data, 0, static_cast<std::uint32_t>(data.size() - 4));
      put_be16(data, 6, profile);
      // Feature 0000h (Profile List) with one profile descriptor.
      data[10] = 0x03;  // persistent, current
      data[11] = 4;
      put_be16(data, 12, kProfileDvdPlusRw);
      data[14] = medium_present() ? 0x01 : 0x00;  // CurrentP
      ok.data_in = truncate_to(std::move(data), be16(cdb, 7), in_len);
      return ok;
    }
    case opcode::read_capacity: {
      if (!medium_present())
        return check_condition(0x02, 0x3A, 0x00);
      proto::Bytes data(8, 0);
      put_be32(data, 0, kBlocks - 1);
      put_be32(data, 4, kBlockSize);
      ok.data_in = truncate_to(std::move(data), 8, in_len);
      return ok;
    }
    case opcode::read10:
    case opcode::write10: {
      if (cdb.size() < 10)
        return check_condition(0x05, 0x24, 0x00);
      if (!medium_present())
        return check_condition(0x02, 0x3A, 0x00);
      const std::uint64_t lba = be32(cdb, 2);
      const std::uint64_t blocks = be16(cdb, 7);
      if (lba + blocks > kBlocks) {
        return check_condition(0x05, 0x21, 0x00);  // LBA out of range
      }
      const auto offset = static_cast<std::ptrdiff_t>(lba * kBlockSize);
      const std::size_t bytes = blocks * kBlockSize;
      if (disc_.empty())
        disc_.resize(std::size_t{kBlockSize} * kBlocks);  // N.B. on first use: drives are cheap
      if (c.opcode() == opcode::read10) {
        const std::size_t n = std::min<std::size_t>(bytes, in_len);
        ok.data_in.assign(disc_.begin() + offset,
                          disc_.begin() + offset + static_cast<std::ptrdiff_t>(n));
        return ok;
      }
      if (c.direction != Direction::out || c.data_out.size() != bytes) {
        return check_condition(0x05, 0x24, 0x00);  // invalid field in CDB
      }
      std::copy(c.data_out.begin(), c.data_out.end(), disc_.begin() + offset);
      return ok;
    }
    default:
      return check_condition(0x05, 0x20, 0x00);  // invalid command operation code
  }
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
