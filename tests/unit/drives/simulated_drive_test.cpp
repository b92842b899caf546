#include "drives/simulated_drive.hpp"

#include <gtest/gtest.h>

namespace discarbiter::drives {
namespace {

using namespace std::chrono_literals;
using core::Direction;

ScsiCommand cmd(proto::Bytes cdb, Direction d = Direction::none, std::uint32_t in = 0,
                proto::Bytes out = {}, std::chrono::seconds timeout = 10s) {
  return ScsiCommand{std::move(cdb), d, std::move(out), in, timeout};
}

TEST(SimulatedDrive, InquiryNamesAnMmcDevice) {
  SimulatedDrive drive(0);
  const auto r = drive.execute(cmd({0x12, 0, 0, 0, 36, 0}, Direction::in, 36));
  ASSERT_TRUE(r.good());
  ASSERT_EQ(r.data_in.size(), 36U);
  EXPECT_EQ(r.data_in[0] & 0x1F, 5);
  EXPECT_EQ(std::string(r.data_in.begin() + 8, r.data_in.begin() + 16), "DISCARB ");
  EXPECT_EQ(drive.describe().id, "sim0");
}

TEST(SimulatedDrive, EjectIsRefusedWhileTheTrayIsLocked) {
  SimulatedDrive drive(0);
  ASSERT_TRUE(drive.execute(cmd(core::cdb_prevent_allow_medium_removal(true))).good());
  EXPECT_TRUE(drive.tray_locked());
  const auto refused = drive.execute(cmd({0x1B, 0, 0, 0, 0x02, 0}));
  EXPECT_EQ(refused.status, core::kStatusCheckCondition);
  EXPECT_EQ(proto::describe_sense(refused.sense), "5/53/02");
  EXPECT_FALSE(drive.tray_open());
  ASSERT_TRUE(drive.execute(cmd(core::cdb_prevent_allow_medium_removal(false))).good());
  EXPECT_TRUE(drive.execute(cmd({0x1B, 0, 0, 0, 0x02, 0})).good());
  EXPECT_TRUE(drive.tray_open());
  const auto tur = drive.execute(cmd(core::cdb_test_unit_ready()));
  EXPECT_EQ(proto::describe_sense(tur.sense), "2/3A/00");
}

TEST(SimulatedDrive, PersistentPreventionIsSeparateAndOnlyPersistentAllowClearsIt) {
  SimulatedDrive drive(0);
  const proto::Bytes eject{0x1B, 0, 0, 0, 0x02, 0};
  ASSERT_TRUE(drive.execute(cmd({0x1E, 0, 0, 0, 0x03, 0})).good());  // persistent prevent
  EXPECT_TRUE(drive.tray_persistently_prevented());
  EXPECT_FALSE(drive.tray_prevented());
  EXPECT_TRUE(drive.tray_locked());
  ASSERT_TRUE(drive.execute(cmd(core::cdb_prevent_allow_medium_removal(false))).good());
  EXPECT_TRUE(drive.tray_persistently_prevented()) << "an ordinary ALLOW leaves it";
  EXPECT_EQ(proto::describe_sense(drive.execute(cmd(eject)).sense), "5/53/02");
  ASSERT_TRUE(drive.execute(cmd({0x1E, 0, 0, 0, 0x01, 0})).good());
  ASSERT_TRUE(drive.execute(cmd({0x1E, 0, 0, 0, 0x02, 0})).good());  // persistent allow
  EXPECT_FALSE(drive.tray_persistently_prevented());
  EXPECT_TRUE(drive.tray_prevented()) << "a persistent ALLOW leaves the other one";
  EXPECT_EQ(proto::describe_sense(drive.execute(cmd(eject)).sense), "5/53/02");
  ASSERT_TRUE(drive.execute(cmd(core::cdb_prevent_allow_medium_removal(false))).good());
  EXPECT_FALSE(drive.tray_locked());
  EXPECT_TRUE(drive.execute(cmd(eject)).good());
  EXPECT_TRUE(drive.tray_open());
}

TEST(SimulatedDrive, ReportsItsProfileAndCapacity) {
  SimulatedDrive drive(0);
  const auto conf = drive.execute(cmd({0x46, 0, 0, 0, 0, 0, 0, 0, 16, 0}, Direction::in, 16));
  ASSERT_TRUE(conf.good());
  EXPECT_EQ((conf.data_in[6] << 8) | conf.data_in[7], SimulatedDrive::kProfileDvdPlusRw);
  const auto cap = drive.execute(cmd({0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0}, Direction::in, 8));
  ASSERT_TRUE(cap.good());
  EXPECT_EQ(cap.data_in[3] + (cap.data_in[2] << 8), static_cast<int>(SimulatedDrive::kBlocks - 1));
}

TEST(SimulatedDrive, WhatIsWrittenReadsBack) {
  SimulatedDrive drive(0);
  proto::Bytes block(2 * SimulatedDrive::kBlockSize);
  for (std::size_t i = 0; i < block.size(); ++i)
    block[i] = static_cast<std::uint8_t>(i * 7);
  const proto::Bytes write{0x2A, 0, 0, 0, 0, 10, 0, 0, 2, 0};
  ASSERT_TRUE(drive.execute(cmd(write, Direction::out, 0, block)).good());
  const auto r = drive.execute(cmd({0x28, 0, 0, 0, 0, 10, 0, 0, 2, 0}, Direction::in,
                                   static_cast<std::uint32_t>(block.size())));
  ASSERT_TRUE(r.good());
  EXPECT_EQ(r.data_in, block);
  const auto beyond = drive.execute(cmd({0x28, 0, 0, 0, 4, 0, 0, 0, 1, 0}, Direction::in, 2048));
  EXPECT_EQ(proto::describe_sense(beyond.sense), "5/21/00");
}

TEST(SimulatedDrive, UnknownOpcodeIsInvalidCommand) {
  SimulatedDrive drive(0);
  EXPECT_EQ(proto::describe_sense(drive.execute(cmd({0xEE, 0, 0, 0, 0, 0})).sense), "5/20/00");
}

TEST(SimulatedDrive, ADelayLongerThanTheTimeoutTimesOutAtTheTimeout) {
  SimulatedDrive drive(0, SimulatedFaults{{{0x12, 5000ms}}, {}, false});
  const auto start = std::chrono::steady_clock::now();
  const auto r = drive.execute(cmd({0x12, 0, 0, 0, 36, 0}, Direction::in, 36, {}, 1s));
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.transport, errc::recorder_command_timeout);
  EXPECT_GE(took, 1s);
  EXPECT_LT(took, 3s);
}

TEST(SimulatedDrive, AShortDelayStillAnswers) {
  SimulatedDrive drive(0, SimulatedFaults{{{0x00, 50ms}}, {}, false});
  EXPECT_TRUE(drive.execute(cmd(core::cdb_test_unit_ready())).good());
}

TEST(SimulatedDrive, CancelEndsAHangAtOnce) {
  SimulatedDrive drive(0, SimulatedFaults{{}, {0x28}, false});
  std::thread canceller([&] {
    std::this_thread::sleep_for(50ms);  // N.B. lets execute start waiting; cancel works either way
    drive.cancel();
  });
  const auto start = std::chrono::steady_clock::now();
  const auto r =
      drive.execute(cmd({0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0}, Direction::in, 2048, {}, 60s));
  canceller.join();
  EXPECT_EQ(r.transport, errc::service_stopping);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
}

TEST(SimulatedDrive, ARemovedDriveDoesNotExist) {
  SimulatedDrive drive(0);
  drive.set_faults(SimulatedFaults{{}, {}, true});
  EXPECT_EQ(drive.execute(cmd(core::cdb_test_unit_ready())).transport, errc::dev_not_exist);
  EXPECT_EQ(drive.lock_exclusive("A", false).error().code, errc::dev_not_exist);
}

TEST(SimulatedDrive, TheExclusiveLockRecordsItsOwner) {
  SimulatedDrive drive(0);
  ASSERT_TRUE(drive.lock_exclusive("Burner", false).ok());
  EXPECT_EQ(drive.exclusive_owner(), "Burner");
  EXPECT_EQ(drive.lock_exclusive("Other", false).error().code, errc::recorder_locked);
  ASSERT_TRUE(drive.unlock_exclusive().ok());
  EXPECT_EQ(drive.exclusive_owner(), std::nullopt);
}

TEST(SimulatedDrive, TheCommandLogSaysWhatReachedTheDeviceInOrderAndUnderWhoseLock) {
  SimulatedDrive drive(0, SimulatedFaults{.delay = {}, .hang = {0x28}, .removed = false});
  std::vector<std::string> observed;
  drive.set_command_observer([&](const SimulatedCommand& c) { observed.push_back(describe(c)); });
  ASSERT_TRUE(drive.execute(cmd(core::cdb_test_unit_ready())).answered());
  ASSERT_TRUE(drive.lock_exclusive("Burner", false).ok());
  ASSERT_TRUE(
      drive
          .execute(cmd({0x2A, 0, 0, 0, 0, 5, 0, 0, 1, 0}, Direction::out, 0, proto::Bytes(2048, 0)))
          .good());
  // A command that hangs has still reached the device.
  EXPECT_EQ(
      drive.execute(cmd({0x28, 0, 0, 0, 0, 5, 0, 0, 1, 0}, Direction::in, 2048, {}, 0s)).transport,
      errc::recorder_command_timeout);
  ASSERT_TRUE(drive.unlock_exclusive().ok());
  ASSERT_TRUE(drive.execute(cmd(core::cdb_test_unit_ready())).answered());

  const auto log = drive.command_log();
  ASSERT_EQ(log.size(), 4U);
  EXPECT_EQ(log[0].sequence, 1U);
  EXPECT_EQ(log[0].exclusive_owner, std::nullopt);
  EXPECT_EQ(log[1].cdb[0], 0x2A);
  EXPECT_EQ(log[1].data_out_bytes, 2048U);
  EXPECT_EQ(log[1].exclusive_owner, "Burner");
  EXPECT_EQ(log[2].cdb[0], 0x28);
  EXPECT_EQ(log[2].data_in_len, 2048U);
  EXPECT_EQ(log[2].exclusive_owner, "Burner");
  EXPECT_EQ(log[3].sequence, 4U);
  EXPECT_EQ(log[3].exclusive_owner, std::nullopt);
  ASSERT_EQ(observed.size(), 4U);
  EXPECT_EQ(observed[1], "#2 CDB 2A 00 00 00 00 05 00 00 01 00 (2048 bytes out), OS lock 'Burner'");
  EXPECT_EQ(observed[3], "#4 CDB 00 00 00 00 00 00, no OS lock");
}

TEST(SimulatedDrive, TheCommandLogKeepsOnlyTheNewest) {
  SimulatedDrive drive(0);
  for (std::size_t i = 0; i < SimulatedDrive::kCommandLogSize + 10; ++i)
    ASSERT_TRUE(drive.execute(cmd(core::cdb_test_unit_ready())).answered());
  const auto log = drive.command_log();
  ASSERT_EQ(log.size(), SimulatedDrive::kCommandLogSize);
  EXPECT_EQ(log.front().sequence, 11U);
  EXPECT_EQ(log.back().sequence, SimulatedDrive::kCommandLogSize + 10);
}

}  // namespace
}  // namespace discarbiter::drives
