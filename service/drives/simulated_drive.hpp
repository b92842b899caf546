// A simulated MMC recorder with an in-memory rewritable disc, so the product
// can be tried and tested without hardware. Faults can be injected from the
// configuration or from tests: a per-opcode delay, a hang, removal.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "scsi_device.hpp"

namespace discarbiter::drives {

struct SimulatedFaults {
  std::map<std::uint8_t, std::chrono::milliseconds> delay;  // before answering this opcode
  std::set<std::uint8_t> hang;                              // never answer this opcode
  bool removed = false;

  friend bool operator==(const SimulatedFaults&, const SimulatedFaults&) = default;
};

class SimulatedDrive final : public ScsiDevice {
 public:
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
};

}  // namespace discarbiter::drives
