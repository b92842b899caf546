// The SPTI seam with recorded replies: what the service hands the CD-ROM
// class driver, and how it reads the answers (the struct layouts themselves
// are static_asserts in spti_protocol_windows.cpp).
#include "drives/spti_protocol_windows.hpp"

#include <gtest/gtest.h>

#include <cstring>

#include <fmt/format.h>

#include "discarbiter/win32/cfgmgr.hpp"
#include "drives/recorder.hpp"
#include "recorded_replies.hpp"

namespace discarbiter::drives::spti {
namespace {

using namespace std::chrono_literals;
using core::Direction;

using testing::kQemuInquiry;

TEST(Spti, ADataInRequestCarriesTheCdbTimeoutAndSenseAfterTheStruct) {
  const core::ScsiCommand inquiry{{0x12, 0, 0, 0, 96, 0}, Direction::in, {}, 96, 20s};
  AlignedBuffer data(96, 0x3);
  const PassThrough p = build_pass_through(inquiry, data);
  EXPECT_EQ(p.sptd.Length, sizeof(SCSI_PASS_THROUGH_DIRECT));
  EXPECT_EQ(p.sptd.DataIn, SCSI_IOCTL_DATA_IN);
  EXPECT_EQ(p.sptd.TimeOutValue, 20U);  // seconds
  EXPECT_EQ(p.sptd.CdbLength, 6);
  EXPECT_EQ(p.sptd.Cdb[0], 0x12);
  EXPECT_EQ(p.sptd.Cdb[4], 96);
  EXPECT_EQ(p.sptd.DataTransferLength, 96U);
  EXPECT_EQ(p.sptd.DataBuffer, data.data());
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p.sptd.DataBuffer) & 0x3, 0U);
  EXPECT_GE(p.sptd.SenseInfoOffset, sizeof(SCSI_PASS_THROUGH_DIRECT));
  EXPECT_EQ(p.sptd.SenseInfoOffset, offsetof(PassThrough, sense));
  EXPECT_GE(p.sptd.SenseInfoLength, 18);
}

TEST(Spti, DataOutIsCopiedAndNoDataHasNoBuffer) {
  const core::ScsiCommand write{
      {0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0}, Direction::out, proto::Bytes(2048, 0xAB), 0, 200s};
  AlignedBuffer out(2048, 0x1FF);  // a 512-byte-aligned adapter
  const PassThrough w = build_pass_through(write, out);
  EXPECT_EQ(w.sptd.DataIn, SCSI_IOCTL_DATA_OUT);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(w.sptd.DataBuffer) & 0x1FF, 0U);
  EXPECT_EQ(std::to_integer<int>(out.data()[2047]), 0xAB);
  AlignedBuffer none(0, 0);
  const PassThrough t = build_pass_through({{0, 0, 0, 0, 0, 0}, Direction::none, {}, 0, 20s}, none);
  EXPECT_EQ(t.sptd.DataIn, SCSI_IOCTL_DATA_UNSPECIFIED);
  EXPECT_EQ(t.sptd.DataBuffer, nullptr);
  EXPECT_EQ(t.sptd.DataTransferLength, 0U);
}

TEST(Spti, AGoodReplyKeepsOnlyTheBytesTransferred) {
  const core::ScsiCommand inquiry{{0x12, 0, 0, 0, 96, 0}, Direction::in, {}, 96, 10s};
  AlignedBuffer data(96, 0);
  PassThrough reply = build_pass_through(inquiry, data);
  std::memcpy(data.data(), kQemuInquiry.data(), kQemuInquiry.size());
  reply.sptd.DataTransferLength = 36;  // the driver's residual: 60 bytes unused
  const auto r = read_pass_through(TRUE, ERROR_SUCCESS, reply, data, inquiry);
  ASSERT_TRUE(r.good());
  EXPECT_EQ(r.data_in, kQemuInquiry);
}

TEST(Spti, CheckConditionIsAnAnswerWithSenseNotATransportError) {
  const core::ScsiCommand eject{{0x1B, 0, 0, 0, 0x02, 0}, Direction::none, {}, 0, 60s};
  AlignedBuffer none(0, 0);
  PassThrough reply = build_pass_through(eject, none);
  reply.sptd.ScsiStatus = core::kStatusCheckCondition;
  reply.sptd.SenseInfoLength = 18;
  const proto::Bytes sense = core::make_sense(0x05, 0x53, 0x02);
  std::memcpy(reply.sense, sense.data(), sense.size());
  const auto r = read_pass_through(TRUE, ERROR_SUCCESS, reply, none, eject);
  ASSERT_TRUE(r.answered());
  EXPECT_EQ(r.status, core::kStatusCheckCondition);
  EXPECT_EQ(proto::describe_sense(r.sense), "5/53/02");
}

TEST(Spti, FailedCallsMapToTimeoutGoneOrFail) {
  const core::ScsiCommand tur{{0, 0, 0, 0, 0, 0}, Direction::none, {}, 0, 20s};
  AlignedBuffer none(0, 0);
  const PassThrough reply = build_pass_through(tur, none);
  EXPECT_EQ(read_pass_through(FALSE, ERROR_SEM_TIMEOUT, reply, none, tur).transport,
            errc::recorder_command_timeout);
  for (DWORD gone : {DWORD{ERROR_DEVICE_NOT_CONNECTED}, DWORD{ERROR_DEVICE_REMOVED},
                     DWORD{ERROR_DEV_NOT_EXIST}, DWORD{ERROR_INVALID_HANDLE}}) {
    EXPECT_EQ(read_pass_through(FALSE, gone, reply, none, tur).transport, errc::dev_not_exist)
        << gone;
  }
  const auto io = read_pass_through(FALSE, ERROR_IO_DEVICE, reply, none, tur);
  EXPECT_EQ(io.transport, errc::fail);
  EXPECT_NE(io.transport_message.find("1117"), std::string::npos) << io.transport_message;
  EXPECT_NE(io.transport_message.find("20 s"), std::string::npos) << io.transport_message;
}

TEST(Spti, AdapterLimitsComeFromTheDescriptor) {
  STORAGE_ADAPTER_DESCRIPTOR d{};
  d.Version = d.Size = sizeof d;
  d.MaximumTransferLength = 128 * 1024;
  d.MaximumPhysicalPages = 17;  // 16 pages once the start is unaligned
  d.AlignmentMask = 0x1;
  const auto limits = read_adapter_descriptor(&d, sizeof d);
  EXPECT_EQ(limits.max_transfer_bytes, 64U * 1024U);
  EXPECT_EQ(limits.alignment_mask, 0x1U);
  const auto short_reply = read_adapter_descriptor(&d, 8);
  EXPECT_EQ(short_reply.max_transfer_bytes, 64U * 1024U);
  EXPECT_EQ(short_reply.alignment_mask, 0xFFFU);
  const auto answered = read_adapter_query(TRUE, ERROR_SUCCESS, &d, sizeof d);
  EXPECT_EQ(answered.problem, "");
  EXPECT_EQ(answered.limits.alignment_mask, 0x1U);
  EXPECT_EQ(adapter_warning("cdrom0", answered), "");
}

// Wine 8 answers StorageAdapterProperty with error 50: the conservative
// default (64 KiB, page-aligned buffers), and a warning that says so.
TEST(Spti, ARefusedAdapterQueryGivesTheConservativeDefaultAndSaysWhy) {
  alignas(8) std::byte untouched[256] = {};
  const auto refused = read_adapter_query(FALSE, ERROR_NOT_SUPPORTED, untouched, 0);
  EXPECT_EQ(refused.limits.max_transfer_bytes, 64U * 1024U);
  EXPECT_EQ(refused.limits.alignment_mask, kPageBytes - 1);
  const auto warning = adapter_warning("cdrom0", refused);
  EXPECT_TRUE(
      warning.starts_with("drive cdrom0: the adapter's transfer limits are unknown: "
                          "IOCTL_STORAGE_QUERY_PROPERTY (StorageAdapterProperty): "))
      << warning;
  EXPECT_NE(warning.find("(error 50)"), std::string::npos) << warning;
  EXPECT_NE(warning.find("at most 65536 bytes per transfer, data buffers aligned to 4096 bytes"),
            std::string::npos)
      << warning;
  const auto short_reply = read_adapter_query(TRUE, ERROR_SUCCESS, untouched, 8);
  EXPECT_EQ(short_reply.limits.alignment_mask, kPageBytes - 1);
  EXPECT_NE(short_reply.problem.find("answered 8 bytes"), std::string::npos) << short_reply.problem;
  // The default meets any adapter's alignment up to a page.
  AlignedBuffer data(refused.limits.max_transfer_bytes, refused.limits.alignment_mask);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(data.data()) % kPageBytes, 0U);
}

TEST(Spti, TheExclusiveLockCarriesTheClientNameAndForce) {
  const auto lock = make_exclusive_lock("IMAPI2 Burner", true);
  EXPECT_EQ(lock.access.request_type, ExclusiveRequest::lock_device);
  EXPECT_EQ(lock.access.flags, kLockIgnoreVolume);
  EXPECT_STREQ(reinterpret_cast<const char*>(lock.caller_name), "IMAPI2 Burner");
  EXPECT_EQ(make_exclusive_lock("x", false).access.flags, 0U);
  const auto longest = make_exclusive_lock(std::string(80, 'n'), false);
  EXPECT_EQ(strnlen(reinterpret_cast<const char*>(longest.caller_name), kCallerLength), 63U);
  EXPECT_EQ(make_exclusive_unlock().request_type, ExclusiveRequest::unlock_device);
  EXPECT_EQ(make_exclusive_query().request_type, ExclusiveRequest::query_state);
}

TEST(Spti, TheLockStateNamesTheHolder) {
  ExclusiveLockState held{};
  held.lock_state = TRUE;
  std::memcpy(held.caller_name, "Nero Burning ROM", 16);
  EXPECT_EQ(read_lock_state(held), "Nero Burning ROM");
  EXPECT_EQ(read_lock_state(ExclusiveLockState{}), "");
}

// The answer to query_state at open, as Wine 8 gives it (error 50), as a
// class or filter driver without the IOCTL gives it (error 1), and as the
// CD-ROM class driver gives it (success, locked or not).
TEST(Spti, ADriverWithoutTheExclusiveLockIsUnsupportedNotAFailure) {
  for (const DWORD refusal : {DWORD{ERROR_NOT_SUPPORTED}, DWORD{ERROR_INVALID_FUNCTION}}) {
    const auto probe = read_exclusive_probe(FALSE, refusal, ExclusiveLockState{});
    EXPECT_EQ(probe.support, ExclusiveSupport::unsupported) << refusal;
    EXPECT_EQ(os_lock_for(probe), core::OsLock::unsupported);
    EXPECT_NE(probe.answer.find(fmt::format("(error {})", refusal)), std::string::npos)
        << probe.answer;
    const auto warning = exclusive_access_warning("cdrom0", probe);
    EXPECT_TRUE(
        warning.starts_with("drive cdrom0: the OS exclusive-access lock is not supported "
                            "here: IOCTL_CDROM_EXCLUSIVE_ACCESS (query_state): "))
        << warning;
    EXPECT_NE(warning.find("IMAPI2 and other programs outside DiscArbiter are not kept out"),
              std::string::npos)
        << warning;
  }
}

TEST(Spti, TheClassDriversAnswerKeepsTheOsLock) {
  const auto free = read_exclusive_probe(TRUE, ERROR_SUCCESS, ExclusiveLockState{});
  EXPECT_EQ(free.support, ExclusiveSupport::supported);
  EXPECT_EQ(os_lock_for(free), core::OsLock::class_driver);
  EXPECT_EQ(exclusive_access_warning("cdrom0", free), "");

  // Held by another program: still the class driver's lock, not "unsupported";
  // acquire names the holder (SptiDevice::send_lock).
  ExclusiveLockState held{};
  held.lock_state = TRUE;
  std::memcpy(held.caller_name, "IMAPI2 Burner", 13);
  const auto locked = read_exclusive_probe(TRUE, ERROR_SUCCESS, held);
  EXPECT_EQ(locked.support, ExclusiveSupport::supported);
  EXPECT_EQ(locked.holder, "IMAPI2 Burner");
  EXPECT_EQ(os_lock_for(locked), core::OsLock::class_driver);
  EXPECT_NE(exclusive_access_warning("cdrom0", locked).find("'IMAPI2 Burner'"), std::string::npos);

  // Any other failure is not taken for "unsupported": acquire still tries.
  const auto denied = read_exclusive_probe(FALSE, ERROR_ACCESS_DENIED, ExclusiveLockState{});
  EXPECT_EQ(denied.support, ExclusiveSupport::unknown);
  EXPECT_EQ(os_lock_for(denied), core::OsLock::class_driver);
  EXPECT_TRUE(exclusive_access_warning("cdrom0", denied)
                  .starts_with("drive cdrom0: the OS exclusive-access lock could not be queried"));
}

TEST(Spti, ADrivePathNamesItsId) {
  const auto info = recorder_at("\\\\.\\CdRom7");
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_EQ(info->id, "cdrom7");
  const auto missing = open_recorder(*info, 5s);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, errc::dev_not_exist);
  EXPECT_NE(missing.error().message.find("CdRom7"), std::string::npos) << missing.error().message;
  for (const char* not_a_cdrom : {"\\\\.\\CdRom", "\\\\.\\CdRom1x", "\\\\.\\NoSuchDevice"})
    EXPECT_FALSE(recorder_at(not_a_cdrom).ok()) << not_a_cdrom;
}

// Wine has no cfgmgr32 list (its CM_Get_Device_Interface_ListW aborts the
// process): discovery says so and probes \\.\CdRomN instead, and nothing
// aborts. (The build's prefix maps no drive, so the probe finds none here.)
TEST(Spti, DiscoveryWithoutTheDeviceListProbesAndSaysWhy) {
  const auto discovery = find_recorders();
  if (!win32::running_under_wine()) {
    EXPECT_EQ(discovery.method, "cfgmgr32") << discovery.problem.value_or(Error{}).message;
    GTEST_SKIP() << "not under Wine: cfgmgr32 lists this machine's drives";
  }
  EXPECT_EQ(discovery.method, "probing \\\\.\\CdRom0-31");
  ASSERT_TRUE(discovery.problem.has_value());
  EXPECT_EQ(discovery.problem->code, errc::fail);
  EXPECT_NE(discovery.problem->message.find("(Wine)"), std::string::npos)
      << discovery.problem->message;
  for (const auto& r : discovery.recorders)
    EXPECT_TRUE(r.path.starts_with("\\\\.\\CdRom")) << r.path;
}

}  // namespace
}  // namespace discarbiter::drives::spti
