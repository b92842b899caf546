#include "drives/sgio_outcome.hpp"

#include <fmt/format.h>

namespace discarbiter::drives {

core::ScsiResult interpret_sg_io(const SgIoOutcome& o, std::chrono::seconds timeout) {
  using core::ScsiResult;
  // N.B. the error's own words: this mapping also builds (and is tested) on
  // Windows, where support/posix's describe() is not available.
  if (const std::error_code e = o.ioctl_error) {
    if (e == std::errc::no_such_device || e == std::errc::no_such_device_or_address ||
        e == std::errc::no_such_file_or_directory) {
      return ScsiResult::failed(errc::dev_not_exist,
                                fmt::format("the device is gone (SG_IO: {})", e.message()));
    }
    if (e == std::errc::timed_out) {
      return ScsiResult::failed(
          errc::recorder_command_timeout,
          fmt::format("no answer within {} s (SG_IO: {})", timeout.count(), e.message()));
    }
    return ScsiResult::failed(errc::fail,
                              fmt::format("SG_IO failed: {} (errno {})", e.message(), e.value()));
  }
  switch (o.host_status) {
    case sg::did_ok:
      break;
    case sg::did_time_out:
    case sg::did_abort:  // N.B. the midlayer aborts a command that overran its timeout
      return ScsiResult::failed(
          errc::recorder_command_timeout,
          fmt::format("no answer within {} s (host_status 0x{:02X}, after {} ms)", timeout.count(),
                      o.host_status, o.duration_ms));
    case sg::did_no_connect:
    case sg::did_bad_target:
      return ScsiResult::failed(
          errc::dev_not_exist,
          fmt::format("the device is gone (host_status 0x{:02X})", o.host_status));
    default:
      return ScsiResult::failed(
          errc::fail,
          fmt::format("the adapter failed the command (host_status 0x{:02X}{})", o.host_status,
                      o.host_status == sg::did_bus_busy || o.host_status == sg::did_reset
                          ? ", bus busy or reset"
                          : ""));
  }
  const std::uint16_t driver = o.driver_status & 0x0F;
  if (driver == sg::driver_timeout) {
    return ScsiResult::failed(errc::recorder_command_timeout,
                              fmt::format("no answer within {} s (driver_status 0x{:02X})",
                                          timeout.count(), o.driver_status));
  }
  if (driver != sg::driver_ok && driver != sg::driver_sense) {
    return ScsiResult::failed(
        errc::fail,
        fmt::format("the driver failed the command (driver_status 0x{:02X})", o.driver_status));
  }
  ScsiResult r;
  r.status = o.status;
  r.data_in = o.data_in;
  if (o.status == core::kStatusCheckCondition) {
    r.sense = o.sense;
    if (r.sense.size() < core::kSenseBytes)
      r.sense.resize(core::kSenseBytes, 0);
  }
  return r;
}

}  // namespace discarbiter::drives
