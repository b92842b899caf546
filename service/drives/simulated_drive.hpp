// A simulated MMC recorder with an in-memory rewritable disc, so the product
// can be tried and tested without hardware. Faults can be injected from the
// configuration or from tests: a per-opcode delay, a hang, removal.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "drives/scsi_device.hpp"

namespace discarbiter::drives {

struct SimulatedFaults {
  std::map<std::uint8_t, std::chrono::milliseconds> delay;  // before answering this opcode
  std::set<std::uint8_t> hang;                              // never answer this opcode
  bool removed = false;

  friend bool operator==(const SimulatedFaults&, const SimulatedFaults&) = default;
};

/// One command as it reached the simulated device, in the order they did:
/// what tests assert on ("nothing of a departed session reaches the drive
/// after its lock is freed").
struct SimulatedCommand {
  std::uint64_t sequence = 0;  // 1, 2, … per drive
  proto::Bytes cdb;
  std::size_t data_out_bytes = 0;
  std::uint32_t data_in_len = 0;
  /// Whose OS-level exclusive lock was held then (the client name), if any.
  std::optional<std::string> exclusive_owner;
};

/// "#12 CDB 2A 00 … (2048 bytes out), OS lock 'Burner'": one line for the log.
std::string describe(const SimulatedCommand& command);

class SimulatedDrive final : public ScsiDevice {
 public:
  /// Sees each command as it reaches the device, on the drive's thread.
  using CommandObserver = std::function<void(const SimulatedCommand&)>;
  static constexpr std::size_t kCommandLogSize = 1024;  // the newest kept
  static constexpr std::uint32_t kBlockSize = 2048;
  static constexpr std::uint32_t kBlocks = 1024;  // a 2 MiB disc
  static constexpr std::uint16_t kProfileDvdPlusRw = 0x001A;

  explicit SimulatedDrive(unsigned index, SimulatedFaults faults = {});

  DriveDescription describe() override;
  ScsiResult execute(const ScsiCommand& command) override;
  Result<Done> lock_exclusive(const std::string& client_name, bool force) override;
  Result<Done> unlock_exclusive() override;
  void cancel() override;

  // Fault injection and inspection; thread-safe.
  void set_faults(SimulatedFaults faults);
  /// Either prevention (PREVENT ALLOW MEDIUM REMOVAL 01 or 11) is set; an
  /// eject is refused with 5/53/02 while it is.
  bool tray_locked() const;
  bool tray_prevented() const;               // 01 set it, 00 cleared it
  bool tray_persistently_prevented() const;  // 11 set it, 10 cleared it
  bool tray_open() const;
  std::optional<std::string> exclusive_owner() const;
  /// The last kCommandLogSize commands that reached the device, oldest first.
  std::vector<SimulatedCommand> command_log() const;
  void set_command_observer(CommandObserver observer);

 private:
  ScsiResult answer(const ScsiCommand& command);  // with mutex_ held
  ScsiResult check_condition(std::uint8_t key, std::uint8_t asc, std::uint8_t ascq) const;
  bool medium_present() const { return !tray_open_; }

  const unsigned index_;
  mutable std::mutex mutex_;
  std::condition_variable cancelled_;
  bool cancel_ = false;
  SimulatedFaults faults_;
  bool tray_locked_ = false;
  bool tray_persistent_ = false;
  bool tray_open_ = false;
  std::optional<std::string> exclusive_owner_;
  proto::Bytes disc_;
  std::uint64_t commands_seen_ = 0;
  std::deque<SimulatedCommand> command_log_;  // bounded: kCommandLogSize
  CommandObserver observer_;
};

}  // namespace discarbiter::drives
