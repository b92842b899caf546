// A Windows recorder driven through SPTI: the class-driver device opened
// GENERIC_READ | GENERIC_WRITE, CDBs through IOCTL_SCSI_PASS_THROUGH_DIRECT,
// and the owner's IOCTL_CDROM_EXCLUSIVE_ACCESS lock. Its device I/O goes
// through SptiIo, so the unit tests (tests/windows/spti_device_test.cpp)
// script the driver's answers, Wine's and the class driver's.
#pragma once

#include <windows.h>  // N.B. first: the headers below need its types

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "discarbiter/win32/cfgmgr.hpp"
#include "discarbiter/win32/handle.hpp"
#include "drives/recorder.hpp"
#include "drives/scsi_device.hpp"
#include "drives/spti_protocol_windows.hpp"

namespace discarbiter::drives {

/// One DeviceIoControl's outcome.
struct IoctlOutcome {
  DWORD error = ERROR_SUCCESS;  // GetLastError() when the call failed
  DWORD returned = 0;           // bytes the driver wrote to the out buffer

  bool ok() const { return error == ERROR_SUCCESS; }
};

/// The device I/O an SptiDevice does, and nothing else. Not thread-safe:
/// SptiDevice calls it under its mutex.
class SptiIo {
 public:
  virtual ~SptiIo() = default;
  /// Opens path for reading and writing, closing what was open:
  /// ERROR_SUCCESS, or CreateFileW's GetLastError().
  virtual DWORD open(const std::string& path) = 0;
  virtual void close() = 0;
  virtual bool is_open() const = 0;
  /// The open handle, for CM_Register_Notification; nullptr when there is
  /// none to watch (closed, or a fake): then no notification is registered.
  virtual HANDLE native_handle() const = 0;
  /// DeviceIoControl on the open device (in and out may be one buffer).
  virtual IoctlOutcome control(DWORD code, const void* in, DWORD in_bytes, void* out,
                               DWORD out_bytes) = 0;
};

/// CreateFileW of a device, shared for reading and writing with other
/// programs (the exclusive-access lock, not the share mode, keeps them out).
win32::unique_hfile open_device(const std::string& path, DWORD access);

/// CreateFileW and DeviceIoControl.
std::unique_ptr<SptiIo> make_win32_spti_io();

class SptiDevice final : public ScsiDevice {
 public:
  SptiDevice(RecorderInfo info, std::unique_ptr<SptiIo> io);
  ~SptiDevice() override;
  SptiDevice(const SptiDevice&) = delete;
  SptiDevice& operator=(const SptiDevice&) = delete;

  /// Opens the device, asks the adapter's limits and whether the driver has
  /// the exclusive-access lock (warning where it falls back), and reads
  /// INQUIRY. Fails naming the holder when another program holds the drive
  /// and INQUIRY fails.
  Result<Done> open(std::chrono::seconds inquiry_timeout);

  DriveDescription describe() override;
  ScsiResult execute(const ScsiCommand& command) override;
  Result<Done> lock_exclusive(const std::string& client_name, bool force) override;
  Result<Done> unlock_exclusive() override;
  // N.B. DeviceIoControl without overlapped I/O returns by the command's
  // own TimeOutValue; there is nothing to interrupt.
  void cancel() override {}

 private:
  Result<Done> reopen();
  spti::AdapterQuery query_adapter();
  spti::ExclusiveProbe query_exclusive_access();
  IoctlOutcome query_lock_state(spti::ExclusiveLockState& state);
  bool os_lock_supported() const;
  Result<Done> send_lock(const std::string& name, bool force);

  static DWORD CALLBACK on_handle_event(HCMNOTIFICATION, PVOID context, CM_NOTIFY_ACTION action,
                                        PCM_NOTIFY_EVENT_DATA, DWORD);

  RecorderInfo info_;
  DriveDescription description_;
  spti::AdapterLimits limits_;
  spti::ExclusiveProbe probe_;  // query_state's answer at open
  std::mutex mutex_;            // N.B. the PnP callback closes and reopens the device
  std::unique_ptr<SptiIo> io_;
  std::string locked_as_;
  bool locked_force_ = false;
  std::vector<HCMNOTIFICATION> notifications_;
};

}  // namespace discarbiter::drives
