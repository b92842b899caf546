// What one SG_IO call came back with, and what that means for the caller.
// Kept free of <scsi/sg.h> so the mapping is unit-tested on every platform;
// the numbers are Linux's (include/scsi/scsi_status.h, sg.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <system_error>

#include "core/scsi.hpp"

namespace discarbiter::drives {

struct SgIoOutcome {
  std::error_code ioctl_error{};  // errno when ioctl(SG_IO) itself failed
  std::uint8_t status = 0;        // the SCSI status byte
  std::uint16_t host_status = 0;
  std::uint16_t driver_status = 0;
  std::uint32_t duration_ms = 0;
  proto::Bytes sense{};    // the sb_len_wr bytes written
  proto::Bytes data_in{};  // dxfer_len - resid bytes
};

namespace sg {
// host_status (DID_*)
inline constexpr std::uint16_t did_ok = 0x00;
inline constexpr std::uint16_t did_no_connect = 0x01;
inline constexpr std::uint16_t did_bus_busy = 0x02;
inline constexpr std::uint16_t did_time_out = 0x03;
inline constexpr std::uint16_t did_bad_target = 0x04;
inline constexpr std::uint16_t did_abort = 0x05;
inline constexpr std::uint16_t did_reset = 0x08;
// driver_status (DRIVER_*), the low nibble
inline constexpr std::uint16_t driver_ok = 0x00;
inline constexpr std::uint16_t driver_timeout = 0x06;
inline constexpr std::uint16_t driver_sense = 0x08;
}  // namespace sg

/// The result the arbiter sees: an answer (any SCSI status, with sense on
/// CHECK CONDITION, padded to 18 bytes), or a transport failure: a timeout is
/// E_IMAPI_RECORDER_COMMAND_TIMEOUT, a vanished device ERROR_DEV_NOT_EXIST,
/// anything else E_FAIL naming the numbers.
core::ScsiResult interpret_sg_io(const SgIoOutcome& outcome, std::chrono::seconds timeout);

}  // namespace discarbiter::drives
