// SptiDevice against a scripted driver: what it sends at open, acquire and
// release, and what it makes of the answers, Wine's (no exclusive-access
// lock, no adapter limits) and the CD-ROM class driver's.
#include "drives/spti_device_windows.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include "recorded_replies.hpp"

namespace discarbiter::drives {
namespace {

using namespace std::chrono_literals;
using spti::ExclusiveRequest;

/// One IOCTL_CDROM_EXCLUSIVE_ACCESS the device sent.
struct ExclusiveCall {
  ExclusiveRequest request;
  ULONG flags = 0;
  std::string caller;  // lock_device only
};

/// A driver that answers from a script and records what it was sent. The
/// script's defaults are QEMU's drive under Wine 8.
class ScriptedDriver final : public SptiIo {
 public:
  // The script.
  DWORD query_error = ERROR_NOT_SUPPORTED;  // query_state's answer
  std::string holder;                       // when query_state succeeds: who holds the drive
  DWORD lock_error = ERROR_SUCCESS;
  DWORD unlock_error = ERROR_SUCCESS;
  DWORD adapter_error = ERROR_NOT_SUPPORTED;  // else a 128 KiB adapter
  DWORD inquiry_error = ERROR_SUCCESS;        // else the pass-through fails so

  // What it was sent.
  std::vector<DWORD> codes;
  std::vector<ExclusiveCall> exclusive;

  DWORD open(const std::string&) override {
    open_ = true;
    return ERROR_SUCCESS;
  }
  void close() override { open_ = false; }
  bool is_open() const override { return open_; }
  HANDLE native_handle() const override { return nullptr; }

  IoctlOutcome control(DWORD code, const void* in, DWORD in_bytes, void* out,
                       DWORD out_bytes) override {
    codes.push_back(code);
    switch (code) {
      case IOCTL_STORAGE_QUERY_PROPERTY:
        return adapter(out, out_bytes);
      case IOCTL_SCSI_PASS_THROUGH_DIRECT:
        return pass_through(*static_cast<spti::PassThrough*>(out));
      case spti::kIoctlCdromExclusiveAccess:
        return exclusive_access(in, in_bytes, out, out_bytes);
      default:
        return {ERROR_INVALID_FUNCTION, 0};
    }
  }

  std::size_t count(ExclusiveRequest request) const {
    return static_cast<std::size_t>(
        std::ranges::count(exclusive, request, &ExclusiveCall::request));
  }

 private:
  IoctlOutcome adapter(void* out, DWORD out_bytes) const {
    if (adapter_error != ERROR_SUCCESS)
      return {adapter_error, 0};
    STORAGE_ADAPTER_DESCRIPTOR d{};
    d.Version = d.Size = sizeof d;
    d.MaximumTransferLength = 128 * 1024;
    d.MaximumPhysicalPages = 33;
    d.AlignmentMask = 0x1;
    EXPECT_GE(out_bytes, sizeof d);
    std::memcpy(out, &d, sizeof d);
    return {ERROR_SUCCESS, sizeof d};
  }

  IoctlOutcome pass_through(spti::PassThrough& p) const {
    if (inquiry_error != ERROR_SUCCESS)
      return {inquiry_error, 0};
    EXPECT_EQ(p.sptd.Cdb[0], 0x12) << "only INQUIRY is scripted";
    const auto n = std::min<std::size_t>(p.sptd.DataTransferLength, testing::kQemuInquiry.size());
    std::memcpy(p.sptd.DataBuffer, testing::kQemuInquiry.data(), n);
    p.sptd.DataTransferLength = static_cast<ULONG>(n);
    p.sptd.ScsiStatus = 0;
    return {ERROR_SUCCESS, sizeof p};
  }

  IoctlOutcome exclusive_access(const void* in, DWORD in_bytes, void* out, DWORD out_bytes) {
    EXPECT_GE(in_bytes, sizeof(spti::ExclusiveAccess));
    spti::ExclusiveAccess access{};
    std::memcpy(&access, in, sizeof access);
    ExclusiveCall& call =
        exclusive.emplace_back(ExclusiveCall{access.request_type, access.flags, {}});
    switch (access.request_type) {
      case ExclusiveRequest::query_state: {
        if (query_error != ERROR_SUCCESS)
          return {query_error, 0};
        spti::ExclusiveLockState state{};
        state.lock_state = static_cast<BOOLEAN>(!holder.empty());
        std::memcpy(state.caller_name, holder.data(), holder.size());
        EXPECT_GE(out_bytes, sizeof state);
        std::memcpy(out, &state, sizeof state);
        return {ERROR_SUCCESS, sizeof state};
      }
      case ExclusiveRequest::lock_device: {
        EXPECT_EQ(in_bytes, sizeof(spti::ExclusiveLock));
        const auto* lock = static_cast<const spti::ExclusiveLock*>(in);
        call.caller = reinterpret_cast<const char*>(lock->caller_name);
        return {lock_error, 0};
      }
      case ExclusiveRequest::unlock_device:
        return {unlock_error, 0};
    }
    return {ERROR_INVALID_PARAMETER, 0};
  }

  bool open_ = false;
};

/// The warnings logged while it lives (on a logger of its own, set as the
/// default and put back after).
class WarningLog {
 public:
  WarningLog() : sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(64)) {
    sink_->set_pattern("%l %v");
    previous_ = spdlog::default_logger();
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("spti_device_test", sink_));
  }
  ~WarningLog() { spdlog::set_default_logger(previous_); }
  WarningLog(const WarningLog&) = delete;
  WarningLog& operator=(const WarningLog&) = delete;

  std::vector<std::string> warnings() const {
    std::vector<std::string> out;
    for (auto& line : sink_->last_formatted()) {
      if (line.starts_with("warning "))
        out.push_back(line.substr(8));
    }
    return out;
  }

  /// How many warnings contain text.
  std::size_t count(std::string_view text) const {
    return static_cast<std::size_t>(std::ranges::count_if(
        warnings(), [text](const std::string& w) { return w.find(text) != std::string::npos; }));
  }

 private:
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
  std::shared_ptr<spdlog::logger> previous_;
};

/// \\.\CdRom0 behind a scripted driver, which the test keeps to script and read.
struct Drive {
  explicit Drive(std::unique_ptr<ScriptedDriver> scripted)
      : driver(scripted.get()),
        device(RecorderInfo{"cdrom0", "\\\\.\\CdRom0", {}}, std::move(scripted)) {}

  ScriptedDriver* driver;
  SptiDevice device;
};

std::unique_ptr<ScriptedDriver> wine() {
  return std::make_unique<ScriptedDriver>();
}

std::unique_ptr<ScriptedDriver> class_driver() {
  auto d = std::make_unique<ScriptedDriver>();
  d->query_error = ERROR_SUCCESS;
  d->adapter_error = ERROR_SUCCESS;
  return d;
}

constexpr auto kInquiryTimeout = 5s;

// Wine 8 answers query_state and StorageAdapterProperty with error 50: the
// drive opens, status says os_lock "unsupported" and the default transfer
// limit, the log says each once, and acquire and release take only the
// service's own lock (no lock or unlock reaches the driver).
TEST(SptiDevice, UnderWineTheDriveWorksWithTheServicesOwnLockAndSaysSo) {
  const WarningLog log;
  Drive drive(wine());
  const auto opened = drive.device.open(kInquiryTimeout);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  const auto description = drive.device.describe();
  EXPECT_EQ(description.vendor, "QEMU");
  EXPECT_EQ(description.product, "QEMU DVD-ROM");
  EXPECT_EQ(description.os_lock, core::OsLock::unsupported);
  EXPECT_EQ(description.max_transfer_bytes, 65536U);
  EXPECT_EQ(log.warnings().size(), 2U) << fmt::format("{}", fmt::join(log.warnings(), "\n"));
  EXPECT_EQ(log.count("drive cdrom0: the OS exclusive-access lock is not supported here: "
                      "IOCTL_CDROM_EXCLUSIVE_ACCESS (query_state): "),
            1U);
  EXPECT_EQ(log.count("(error 50)"), 2U);
  EXPECT_EQ(log.count("drive cdrom0: the adapter's transfer limits are unknown: "), 1U);
  ASSERT_EQ(drive.driver->exclusive.size(), 1U);
  EXPECT_EQ(drive.driver->exclusive[0].request, ExclusiveRequest::query_state);

  const auto locked = drive.device.lock_exclusive("Burner", false);
  EXPECT_TRUE(locked.ok()) << locked.error().message;
  const auto unlocked = drive.device.unlock_exclusive();
  EXPECT_TRUE(unlocked.ok()) << unlocked.error().message;
  EXPECT_EQ(drive.driver->count(ExclusiveRequest::lock_device), 0U);
  EXPECT_EQ(drive.driver->count(ExclusiveRequest::unlock_device), 0U);
  EXPECT_EQ(drive.driver->exclusive.size(), 1U);  // the open's query_state only
  EXPECT_EQ(log.warnings().size(), 2U);           // nothing more at acquire or release
}

// The class driver answers query_state (nobody holds the drive): no
// warning; acquire locks in the owner's name with its force flag, and the
// release unlocks.
TEST(SptiDevice, TheClassDriversLockIsTakenInTheOwnersNameAndGivenBack) {
  const WarningLog log;
  Drive drive(class_driver());
  ASSERT_TRUE(drive.device.open(kInquiryTimeout).ok());
  EXPECT_EQ(drive.device.describe().os_lock, core::OsLock::class_driver);
  EXPECT_EQ(drive.device.describe().max_transfer_bytes, 128U * 1024U);
  EXPECT_EQ(log.warnings().size(), 0U) << fmt::format("{}", fmt::join(log.warnings(), "\n"));

  ASSERT_TRUE(drive.device.lock_exclusive("Burner", true).ok());
  ASSERT_EQ(drive.driver->count(ExclusiveRequest::lock_device), 1U);
  const auto& lock = drive.driver->exclusive.back();
  EXPECT_EQ(lock.caller, "Burner");
  EXPECT_EQ(lock.flags, spti::kLockIgnoreVolume);
  ASSERT_TRUE(drive.device.unlock_exclusive().ok());
  EXPECT_EQ(drive.driver->count(ExclusiveRequest::unlock_device), 1U);
  EXPECT_EQ(drive.driver->exclusive.back().request, ExclusiveRequest::unlock_device);

  ASSERT_TRUE(drive.device.lock_exclusive("Other", false).ok());
  EXPECT_EQ(drive.driver->exclusive.back().caller, "Other");
  EXPECT_EQ(drive.driver->exclusive.back().flags, 0U);
}

// query_state worked at open, yet the lock is refused as unsupported: the
// acquire fails and says so, rather than going on without the OS's lock.
TEST(SptiDevice, ALockRefusedAfterTheQueryWorkedFailsTheAcquire) {
  Drive drive(class_driver());
  ASSERT_TRUE(drive.device.open(kInquiryTimeout).ok());
  drive.driver->lock_error = ERROR_NOT_SUPPORTED;
  const auto locked = drive.device.lock_exclusive("Burner", false);
  ASSERT_FALSE(locked.ok());
  EXPECT_EQ(locked.error().code, errc::fail);
  EXPECT_TRUE(locked.error().message.starts_with("IOCTL_CDROM_EXCLUSIVE_ACCESS (lock): "))
      << locked.error().message;
  EXPECT_NE(locked.error().message.find("(error 50); the driver answered the lock's query_state "
                                        "at open but refuses the lock"),
            std::string::npos)
      << locked.error().message;
}

// Another program took the lock after open: acquire names it.
TEST(SptiDevice, ALockHeldOutsideDiscArbiterNamesItsHolder) {
  Drive drive(class_driver());
  ASSERT_TRUE(drive.device.open(kInquiryTimeout).ok());
  drive.driver->lock_error = ERROR_ACCESS_DENIED;
  drive.driver->holder = "IMAPI2 Burner";
  const auto locked = drive.device.lock_exclusive("Burner", false);
  ASSERT_FALSE(locked.ok());
  EXPECT_EQ(locked.error().code, errc::recorder_locked);
  EXPECT_EQ(locked.error().message,
            "\\\\.\\CdRom0 is locked outside DiscArbiter by 'IMAPI2 Burner'");
}

// query_state failed at open with something other than "not supported":
// os_lock stays class_driver, the log says the query failed, and every
// acquire still takes the lock (and, refused, says what open saw).
TEST(SptiDevice, AQueryThatFailedOtherwiseStillLocksAtAcquire) {
  const WarningLog log;
  auto driver = class_driver();
  driver->query_error = ERROR_ACCESS_DENIED;
  Drive drive(std::move(driver));
  ASSERT_TRUE(drive.device.open(kInquiryTimeout).ok());
  EXPECT_EQ(drive.device.describe().os_lock, core::OsLock::class_driver);
  EXPECT_EQ(log.warnings().size(), 1U);
  EXPECT_EQ(log.count("drive cdrom0: the OS exclusive-access lock could not be queried: "
                      "IOCTL_CDROM_EXCLUSIVE_ACCESS (query_state): "),
            1U);

  ASSERT_TRUE(drive.device.lock_exclusive("Burner", false).ok());
  EXPECT_EQ(drive.driver->count(ExclusiveRequest::lock_device), 1U);
  ASSERT_TRUE(drive.device.unlock_exclusive().ok());
  EXPECT_EQ(drive.driver->count(ExclusiveRequest::unlock_device), 1U);

  drive.driver->lock_error = ERROR_NOT_SUPPORTED;
  const auto refused = drive.device.lock_exclusive("Burner", false);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().message.find("answered the lock's query_state"), std::string::npos)
      << refused.error().message;
  EXPECT_NE(refused.error().message.find("(error 50); the driver refuses the lock, and its "
                                         "query_state at open had failed: "
                                         "IOCTL_CDROM_EXCLUSIVE_ACCESS (query_state): "),
            std::string::npos)
      << refused.error().message;
  EXPECT_NE(refused.error().message.find("(error 5)"), std::string::npos)
      << refused.error().message;
}

// Another program holds the drive at open and INQUIRY fails (the class
// driver keeps other handles' commands out): the open's error names the
// holder, not only the failed INQUIRY.
TEST(SptiDevice, AnOpenWhoseInquiryFailsNamesTheDrivesHolder) {
  auto driver = class_driver();
  driver->holder = "IMAPI2 Burner";
  driver->inquiry_error = ERROR_ACCESS_DENIED;
  Drive drive(std::move(driver));
  const auto opened = drive.device.open(kInquiryTimeout);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.error().code, errc::recorder_locked);
  EXPECT_TRUE(opened.error().message.starts_with(
      "\\\\.\\CdRom0 is locked outside DiscArbiter by 'IMAPI2 Burner'; its INQUIRY failed: "))
      << opened.error().message;

  // Nobody holding it: the INQUIRY's own failure.
  auto unheld = class_driver();
  unheld->inquiry_error = ERROR_ACCESS_DENIED;
  Drive alone(std::move(unheld));
  const auto failed = alone.device.open(kInquiryTimeout);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.error().code, errc::recorder_locked);
  EXPECT_EQ(failed.error().message.find("locked outside"), std::string::npos)
      << failed.error().message;
}

}  // namespace
}  // namespace discarbiter::drives
