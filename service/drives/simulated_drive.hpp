// A simulated MMC recorder with an in-memory rewritable disc (DVD+RW or
// BD-RE, sparse: it costs what was written), so the product can be tried and
// tested without hardware, burns included. Faults can be injected from the
// configuration or from tests: a per-opcode delay, a hang, removal.
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <span>
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

/// The disc in a simulated drive (`simulated_media` in docs/configuration.md).
struct SimulatedMedium {
  static constexpr std::uint32_t kBlockSize = 2048;
  static constexpr std::uint16_t kProfileDvdPlusRw = 0x001A;
  static constexpr std::uint16_t kProfileBdRe = 0x0043;
  static constexpr std::uint64_t kDvdPlusRwBlocks = 2'295'104;  // 4.7 GB
  static constexpr std::uint64_t kBdReBlocks = 12'219'392;      // 25 GB, one layer
  static constexpr std::uint64_t kMaxBytes = 128ULL << 30;      // what a size may be
  static constexpr std::uint64_t kDefaultMaxStoredBytes = 256ULL << 20;

  std::uint16_t profile = kProfileDvdPlusRw;
  std::uint64_t blocks = kDvdPlusRwBlocks;
  /// A WRITE of N bytes takes N / (this × 10^6) seconds; 0: at once.
  std::uint32_t write_speed_mb_s = 0;
  /// What the written part may take in memory: every client may write every
  /// block, so a WRITE that would need more gets 3/0C/00 and changes nothing.
  std::uint64_t max_stored_bytes = kDefaultMaxStoredBytes;

  friend bool operator==(const SimulatedMedium&, const SimulatedMedium&) = default;
};

/// The written part of a simulated disc: chunks of kChunkBytes, allocated
/// when non-zero data is first written into them; everything else reads as
/// zeros.
class SparseDisc {
 public:
  static constexpr std::size_t kChunkBytes = 64 * 1024;

  explicit SparseDisc(std::uint64_t max_stored_bytes) : max_stored_bytes_(max_stored_bytes) {}

  /// Appends `size` bytes from `offset` to `out`, each written once (no
  /// zero-fill of the whole buffer first).
  void read(std::uint64_t offset, std::size_t size, proto::Bytes& out) const;
  /// False, and nothing written, when the chunks it needs would take more
  /// than max_stored_bytes.
  [[nodiscard]] bool write(std::uint64_t offset, std::span<const std::uint8_t> data);
  void clear() { chunks_.clear(); }
  std::uint64_t stored_bytes() const { return chunks_.size() * std::uint64_t{kChunkBytes}; }

 private:
  std::uint64_t max_stored_bytes_;
  std::map<std::uint64_t, proto::Bytes> chunks_;  // by chunk index
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
  static constexpr std::uint32_t kBlockSize = SimulatedMedium::kBlockSize;
  static constexpr std::uint32_t kMaxTransferBytes = 1024 * 1024;
  static constexpr std::size_t kWriteParametersBytes = 52;  // mode page 05h

  explicit SimulatedDrive(unsigned index, SimulatedFaults faults = {}, SimulatedMedium medium = {});

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
  const SimulatedMedium& medium() const { return medium_; }
  /// What the disc's written chunks take in memory.
  std::uint64_t stored_bytes() const;

 private:
  using Lock = std::unique_lock<std::mutex>;
  using Page = std::array<std::uint8_t, kWriteParametersBytes>;

  // All with mutex_ held.
  ScsiResult answer(const ScsiCommand& command, Lock& lock);
  /// Waits `wanted`, or the command's timeout when that is shorter; nullopt
  /// when the command may go on (not cancelled, not timed out).
  std::optional<ScsiResult> wait_for(const ScsiCommand& command, std::chrono::microseconds wanted,
                                     bool hang, Lock& lock);
  ScsiResult read_write(const ScsiCommand& command, std::uint64_t lba, std::uint64_t blocks,
                        Lock& lock);
  ScsiResult get_configuration(const ScsiCommand& command) const;
  ScsiResult read_disc_information(const ScsiCommand& command) const;
  ScsiResult read_track_information(const ScsiCommand& command) const;
  ScsiResult read_format_capacities(const ScsiCommand& command) const;
  ScsiResult format_unit(const ScsiCommand& command);
  ScsiResult mode_sense(const ScsiCommand& command) const;
  ScsiResult mode_select(const ScsiCommand& command);
  ScsiResult check_condition(std::uint8_t key, std::uint8_t asc, std::uint8_t ascq) const;
  bool medium_present() const { return !tray_open_; }
  std::uint32_t blocking() const;  // blocks per ECC block (DVD) or cluster (BD)

  const unsigned index_;
  mutable std::mutex mutex_;
  std::condition_variable cancelled_;
  bool cancel_ = false;
  SimulatedFaults faults_;
  bool tray_locked_ = false;
  bool tray_persistent_ = false;
  bool tray_open_ = false;
  std::optional<std::string> exclusive_owner_;
  const SimulatedMedium medium_;
  SparseDisc disc_;
  bool formatted_ = false;          // by FORMAT UNIT or the first WRITE
  bool closed_ = false;             // CLOSE SESSION after a WRITE; FORMAT UNIT reopens
  std::uint64_t recorded_end_ = 0;  // one past the last block written since FORMAT UNIT
  Page write_parameters_;
  std::uint64_t commands_seen_ = 0;
  std::deque<SimulatedCommand> command_log_;  // bounded: kCommandLogSize
  CommandObserver observer_;
};

}  // namespace discarbiter::drives
