#include "drives/simulated_drive.hpp"

#include <algorithm>
#include <future>
#include <thread>

#include <gtest/gtest.h>

namespace discarbiter::drives {
namespace {

using namespace std::chrono_literals;
using core::Direction;

ScsiCommand cmd(proto::Bytes cdb, Direction d = Direction::none, std::uint32_t in = 0,
                proto::Bytes out = {}, std::chrono::seconds timeout = 10s) {
  return ScsiCommand{std::move(cdb), d, std::move(out), in, timeout};
}

std::string sense_of(const ScsiResult& r) {
  return r.status == core::kStatusCheckCondition ? proto::describe_sense(r.sense) : "good";
}

std::uint32_t be32(const proto::Bytes& b, std::size_t at) {
  return (std::uint32_t{b.at(at)} << 24) | (std::uint32_t{b.at(at + 1)} << 16) |
         (std::uint32_t{b.at(at + 2)} << 8) | b.at(at + 3);
}
std::uint16_t be16(const proto::Bytes& b, std::size_t at) {
  return static_cast<std::uint16_t>((b.at(at) << 8) | b.at(at + 1));
}
void put32(proto::Bytes& b, std::size_t at, std::uint64_t v) {
  for (std::size_t i = 0; i < 4; ++i)
    b.at(at + i) = static_cast<std::uint8_t>(v >> (24 - 8 * i));
}
void put16(proto::Bytes& b, std::size_t at, std::uint16_t v) {
  b.at(at) = static_cast<std::uint8_t>(v >> 8);
  b.at(at + 1) = static_cast<std::uint8_t>(v);
}

proto::Bytes pattern(std::size_t bytes, std::uint32_t seed) {
  proto::Bytes data(bytes);
  for (std::size_t i = 0; i < bytes; ++i)
    data[i] = static_cast<std::uint8_t>(i * 7 + seed * 13 + (i >> 11));
  return data;
}

ScsiCommand write10(std::uint64_t lba, proto::Bytes data) {
  proto::Bytes cdb{0x2A, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  put32(cdb, 2, lba);
  put16(cdb, 7, static_cast<std::uint16_t>(data.size() / 2048));
  return cmd(std::move(cdb), Direction::out, 0, std::move(data));
}

ScsiCommand read10(std::uint64_t lba, std::uint16_t blocks) {
  proto::Bytes cdb{0x28, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  put32(cdb, 2, lba);
  put16(cdb, 7, blocks);
  return cmd(std::move(cdb), Direction::in, blocks * 2048U);
}

// RT and Starting Feature Number; 256 bytes allocated.
ScsiCommand get_configuration(std::uint8_t rt, std::uint16_t feature) {
  const auto high = static_cast<std::uint8_t>(feature >> 8);
  return cmd({0x46, rt, high, static_cast<std::uint8_t>(feature), 0, 0, 0, 0x01, 0x00, 0},
             Direction::in, 256);
}

ScsiCommand read_disc_information() {
  return cmd({0x51, 0, 0, 0, 0, 0, 0, 0, 34, 0}, Direction::in, 34);
}

ScsiCommand read_track_information(std::uint8_t type, std::uint32_t number) {
  proto::Bytes cdb{0x52, type, 0, 0, 0, 0, 0, 0, 48, 0};
  put32(cdb, 2, number);
  return cmd(std::move(cdb), Direction::in, 48);
}

ScsiCommand read_format_capacities() {
  return cmd({0x23, 0, 0, 0, 0, 0, 0, 0, 0xFC, 0}, Direction::in, 0xFC);
}

// FORMAT UNIT with FmtData: a header and one descriptor of `type`, all blocks.
ScsiCommand format_unit(std::uint8_t type) {
  proto::Bytes list{0, 0x02, 0, 8, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0};
  list[8] = static_cast<std::uint8_t>(type << 2);
  return cmd({0x04, 0x11, 0, 0, 0, 0}, Direction::out, 0, std::move(list));
}

ScsiCommand mode_sense(std::uint8_t page_control_and_code) {
  return cmd({0x5A, 0x08, page_control_and_code, 0, 0, 0, 0, 0x01, 0x00, 0}, Direction::in, 256);
}

ScsiCommand mode_select(proto::Bytes list) {
  proto::Bytes cdb{0x55, 0x10, 0, 0, 0, 0, 0, 0, 0, 0};
  put16(cdb, 7, static_cast<std::uint16_t>(list.size()));
  return cmd(std::move(cdb), Direction::out, 0, std::move(list));
}

SimulatedMedium bd_re() {
  SimulatedMedium medium;
  medium.profile = SimulatedMedium::kProfileBdRe;
  medium.blocks = SimulatedMedium::kBdReBlocks;
  return medium;
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
  EXPECT_EQ(be16(conf.data_in, 6), SimulatedMedium::kProfileDvdPlusRw);
  const auto cap = drive.execute(cmd({0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0}, Direction::in, 8));
  ASSERT_TRUE(cap.good());
  // 2,295,104 blocks of 2048: the last is 0x0023053F.
  EXPECT_EQ(cap.data_in, (proto::Bytes{0x00, 0x23, 0x05, 0x3F, 0x00, 0x00, 0x08, 0x00}));
}

TEST(SimulatedDrive, WhatIsWrittenReadsBack) {
  SimulatedDrive drive(0);
  const proto::Bytes block = pattern(2 * SimulatedDrive::kBlockSize, 7);
  ASSERT_TRUE(drive.execute(write10(10, block)).good());
  const auto r = drive.execute(read10(10, 2));
  ASSERT_TRUE(r.good());
  EXPECT_EQ(r.data_in, block);
  EXPECT_EQ(drive.execute(read10(8, 2)).data_in, proto::Bytes(2 * 2048, 0))
      << "what was never written reads as zeros";
  EXPECT_EQ(sense_of(drive.execute(read10(SimulatedMedium::kDvdPlusRwBlocks, 1))), "5/21/00");
  EXPECT_EQ(sense_of(drive.execute(read10(SimulatedMedium::kDvdPlusRwBlocks - 1, 2))), "5/21/00");
  EXPECT_TRUE(drive.execute(read10(SimulatedMedium::kDvdPlusRwBlocks - 1, 1)).good());
}

TEST(SimulatedDrive, ATransferLengthThatIsNotTheBuffersIsRefusedAndChangesNothing) {
  SimulatedDrive drive(0);
  // WRITE(10) of two blocks with one block of data, and with none at all.
  auto write = write10(4, pattern(2048, 1));
  write.cdb[8] = 2;
  EXPECT_EQ(sense_of(drive.execute(write)), "5/24/00");
  EXPECT_EQ(sense_of(drive.execute(cmd({0x2A, 0, 0, 0, 0, 4, 0, 0, 1, 0}))), "5/24/00");
  EXPECT_EQ(drive.stored_bytes(), 0U);
  // READ(10) of two blocks into a one-block buffer, and into a larger one.
  EXPECT_EQ(sense_of(drive.execute(cmd({0x28, 0, 0, 0, 0, 4, 0, 0, 2, 0}, Direction::in, 2048))),
            "5/24/00");
  EXPECT_EQ(
      sense_of(drive.execute(cmd({0x28, 0, 0, 0, 0, 4, 0, 0, 2, 0}, Direction::in, 3 * 2048))),
      "5/24/00");
  // READ(12) of 2^32-1 blocks: out of range before anything is allocated.
  EXPECT_EQ(sense_of(drive.execute(
                cmd({0xA8, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0}, Direction::in, 2048))),
            "5/21/00");
  // A READ(10) CDB cut short.
  EXPECT_EQ(sense_of(drive.execute(cmd({0x28, 0, 0, 0, 0, 0}, Direction::in, 2048))), "5/24/00");
}

TEST(SimulatedDrive, Read12AndWrite12ReachTheLastBlock) {
  SimulatedDrive drive(0);
  const std::uint32_t last = SimulatedMedium::kDvdPlusRwBlocks - 1;
  const proto::Bytes data = pattern(2048, 3);
  proto::Bytes write{0xAA, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0};
  put32(write, 2, last);
  ASSERT_TRUE(drive.execute(cmd(write, Direction::out, 0, data)).good());
  proto::Bytes read{0xA8, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0};
  put32(read, 2, last);
  const auto r = drive.execute(cmd(read, Direction::in, 2048));
  ASSERT_TRUE(r.good());
  EXPECT_EQ(r.data_in, data);
  put32(write, 2, last + 1);
  EXPECT_EQ(sense_of(drive.execute(cmd(write, Direction::out, 0, data))), "5/21/00");
}

TEST(SparseDisc, AReadAcrossWrittenAndUnwrittenChunksFillsEveryByte) {
  constexpr std::size_t kChunk = SparseDisc::kChunkBytes;
  SparseDisc disc(8 * kChunk);
  const proto::Bytes data(kChunk, 0x5A);
  ASSERT_TRUE(disc.write(2 * kChunk, data));  // chunk 2 only; 0, 1 and 3 unwritten
  // From the middle of chunk 0 to the middle of chunk 3, after what the
  // buffer holds already.
  proto::Bytes out{0xFF, 0xFE};
  disc.read(kChunk / 2, 3 * kChunk, out);
  proto::Bytes expected(2 + 3 * kChunk, 0);
  expected[0] = 0xFF;
  expected[1] = 0xFE;
  std::fill_n(expected.begin() + 2 + kChunk + kChunk / 2, kChunk, std::uint8_t{0x5A});
  EXPECT_EQ(out, expected) << "appended: zeros before, between and after the written chunk";
  proto::Bytes none;
  disc.read(0, 0, none);
  EXPECT_TRUE(none.empty());
}

TEST(SimulatedDrive, ABdReIsSparseAWriteNearItsEndTakesOneChunk) {
  SimulatedDrive drive(0, {}, bd_re());
  const std::uint64_t last = SimulatedMedium::kBdReBlocks - 1;  // 25 GB in
  ASSERT_TRUE(drive.execute(write10(last - 1, pattern(2 * 2048, 5))).good());
  EXPECT_EQ(drive.stored_bytes(), SparseDisc::kChunkBytes);
  EXPECT_EQ(drive.execute(read10(last - 1, 2)).data_in, pattern(2 * 2048, 5));
  // Zeros into blocks never written allocate nothing.
  ASSERT_TRUE(drive.execute(write10(1000, proto::Bytes(64 * 2048, 0))).good());
  EXPECT_EQ(drive.stored_bytes(), SparseDisc::kChunkBytes);
  const auto cap = drive.execute(cmd({0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0}, Direction::in, 8));
  EXPECT_EQ(be32(cap.data_in, 0), last);
}

TEST(SimulatedDrive, WhatTheDiscStoresIsBoundedAndARefusedWriteChangesNothing) {
  SimulatedMedium medium;
  medium.max_stored_bytes = 2 * SparseDisc::kChunkBytes;
  SimulatedDrive drive(0, {}, medium);
  constexpr std::uint64_t kChunkBlocks = SparseDisc::kChunkBytes / 2048;
  ASSERT_TRUE(drive.execute(write10(0, pattern(2048, 1))).good());
  ASSERT_TRUE(drive.execute(write10(kChunkBlocks, pattern(2048, 2))).good());
  EXPECT_EQ(drive.stored_bytes(), 2 * SparseDisc::kChunkBytes);
  // A third chunk is one too many; so is a WRITE over chunk 1 that spills into chunk 2.
  EXPECT_EQ(sense_of(drive.execute(write10(2 * kChunkBlocks, pattern(2048, 3)))), "3/0C/00");
  EXPECT_EQ(sense_of(drive.execute(write10(2 * kChunkBlocks - 1, pattern(2 * 2048, 4)))),
            "3/0C/00");
  EXPECT_EQ(drive.stored_bytes(), 2 * SparseDisc::kChunkBytes);
  EXPECT_EQ(drive.execute(read10(2 * kChunkBlocks - 1, 1)).data_in, proto::Bytes(2048, 0))
      << "the refused WRITE wrote nothing into the chunk that was there";
  // What is stored may still be rewritten, and FORMAT UNIT frees it all.
  EXPECT_TRUE(drive.execute(write10(1, pattern(2048, 6))).good());
  ASSERT_TRUE(drive.execute(cmd({0x04, 0, 0, 0, 0, 0})).good());
  EXPECT_EQ(drive.stored_bytes(), 0U);
  EXPECT_TRUE(drive.execute(write10(2 * kChunkBlocks, pattern(2048, 3))).good());
}

TEST(SimulatedDrive, TheDefaultDriveTakesASixtyFourMebibyteBurnInMaximumTransfers) {
  SimulatedDrive drive(0);
  constexpr std::uint32_t kBlocksPerWrite = SimulatedDrive::kMaxTransferBytes / 2048;
  for (std::uint32_t i = 0; i < 64; ++i) {
    ASSERT_TRUE(
        drive.execute(write10(i * kBlocksPerWrite, pattern(SimulatedDrive::kMaxTransferBytes, i)))
            .good());
  }
  ASSERT_TRUE(drive.execute(cmd({0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0})).good());
  for (std::uint32_t i = 0; i < 64; ++i) {
    const auto r = drive.execute(read10(i * kBlocksPerWrite, kBlocksPerWrite));
    ASSERT_TRUE(r.good());
    ASSERT_EQ(r.data_in, pattern(SimulatedDrive::kMaxTransferBytes, i)) << i;
  }
  EXPECT_EQ(drive.stored_bytes(), 64U << 20);
}

TEST(SimulatedDrive, AWriteTakesItsTimeAtTheConfiguredSpeed) {
  SimulatedMedium medium;
  medium.write_speed_mb_s = 50;
  SimulatedDrive drive(0, {}, medium);
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(drive.execute(write10(0, pattern(1 << 20, 1))).good());
  // 1 MiB at 50 MB/s: 21 ms.
  EXPECT_GE(std::chrono::steady_clock::now() - start, 18ms);
  // Longer than its timeout: E_IMAPI_RECORDER_COMMAND_TIMEOUT, nothing written.
  const auto slow = drive.execute(
      cmd({0x2A, 0, 0, 0, 0x10, 0, 0, 0, 1, 0}, Direction::out, 0, pattern(2048, 2), 0s));
  EXPECT_EQ(slow.transport, errc::recorder_command_timeout);
  EXPECT_EQ(drive.execute(read10(0x1000, 1)).data_in, proto::Bytes(2048, 0));
}

TEST(SimulatedDrive, CancelEndsASlowWriteAtOnce) {
  SimulatedMedium medium;
  medium.write_speed_mb_s = 1;  // 4 MiB: 4.2 s
  SimulatedDrive drive(0, {}, medium);
  std::promise<void> reached;
  drive.set_command_observer([&](const SimulatedCommand&) { reached.set_value(); });
  std::thread canceller([&] {
    reached.get_future().wait();
    drive.cancel();
  });
  const auto start = std::chrono::steady_clock::now();
  const auto r = drive.execute(
      cmd({0x2A, 0, 0, 0, 0, 0, 0, 0x08, 0, 0}, Direction::out, 0, pattern(4 << 20, 1), 60s));
  canceller.join();
  EXPECT_EQ(r.transport, errc::service_stopping);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_EQ(drive.stored_bytes(), 0U);
}

TEST(SimulatedDrive, GetConfigurationListsTheProfileAndTheFeaturesOfADvdPlusRw) {
  SimulatedDrive drive(0);
  const auto all = drive.execute(get_configuration(0x00, 0x0000));
  ASSERT_TRUE(all.good());
  const proto::Bytes expected{
      0x00, 0x00, 0x00, 0x44, 0x00, 0x00, 0x00, 0x1A,  // header: 68 bytes follow; DVD+RW
      0x00, 0x00, 0x03, 0x04, 0x00, 0x1A, 0x01, 0x00,  // Profile List: DVD+RW, current
      0x00, 0x01, 0x0B, 0x08, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00,  // Core
      0x00, 0x03, 0x0B, 0x04, 0x39, 0x00, 0x00, 0x00,                          // Removable
      0x00, 0x10, 0x01, 0x08, 0x00, 0x00, 0x08, 0x00, 0x00, 0x10, 0x01, 0x00,  // Random Readable
      0x00, 0x20, 0x05, 0x0C, 0x00, 0x23, 0x05, 0x3F, 0x00, 0x00, 0x08, 0x00,  // Random Writable
      0x00, 0x10, 0x01, 0x00,                                                  //
      0x00, 0x2A, 0x05, 0x04, 0x01, 0x00, 0x00, 0x00};                         // DVD+RW
  EXPECT_EQ(all.data_in, expected);
  // RT 10b: the one feature asked for.
  const auto one = drive.execute(get_configuration(0x02, 0x002A));
  EXPECT_EQ(one.data_in, (proto::Bytes{0x00, 0x00, 0x00, 0x0C, 0x00, 0x00, 0x00, 0x1A, 0x00, 0x2A,
                                       0x05, 0x04, 0x01, 0x00, 0x00, 0x00}));
  // RT 01b with the tray open: no current profile, only the persistent features.
  ASSERT_TRUE(drive.execute(cmd({0x1B, 0, 0, 0, 0x02, 0})).good());
  const auto current = drive.execute(get_configuration(0x01, 0x0000));
  ASSERT_TRUE(current.good());
  EXPECT_EQ(be16(current.data_in, 6), 0);
  EXPECT_EQ(current.data_in.size(), 8U + 8 + 12 + 8);
  EXPECT_EQ(current.data_in[14], 0x00) << "the profile is not current";
  EXPECT_EQ(sense_of(drive.execute(get_configuration(0x03, 0))), "5/24/00");
}

TEST(SimulatedDrive, ABdReReportsItsProfileAndTheBdFeatures) {
  SimulatedDrive drive(0, {}, bd_re());
  const auto all = drive.execute(get_configuration(0x00, 0x0000));
  ASSERT_TRUE(all.good());
  EXPECT_EQ(be16(all.data_in, 6), 0x0043);
  EXPECT_EQ(be16(all.data_in, 12), 0x0043);
  const auto bd_write = drive.execute(get_configuration(0x02, 0x0041));
  EXPECT_EQ(bd_write.data_in.size(), 8U + 24);
  EXPECT_EQ(be16(bd_write.data_in, 8), 0x0041);
  EXPECT_EQ(bd_write.data_in[10], 0x09);  // version 2, current
  EXPECT_EQ(drive.execute(get_configuration(0x02, 0x002A)).data_in.size(), 8U)
      << "no DVD+RW feature";
  const auto random = drive.execute(get_configuration(0x02, 0x0020));
  EXPECT_EQ(be32(random.data_in, 12), SimulatedMedium::kBdReBlocks - 1);
  EXPECT_EQ(be16(random.data_in, 20), 32) << "a BD cluster is 32 blocks";
}

TEST(SimulatedDrive, DiscInformationFollowsWhatWasWrittenClosedAndFormatted) {
  SimulatedDrive drive(0);
  const auto blank = drive.execute(read_disc_information());
  ASSERT_TRUE(blank.good());
  proto::Bytes expected(34, 0);
  expected[1] = 0x20;  // 32 bytes follow
  expected[2] = 0x10;  // erasable, empty session, empty disc
  expected[3] = expected[4] = expected[5] = expected[6] = 1;
  expected[20] = 0x00;  // last possible lead-out: 2,295,104 = 0x00230540
  expected[21] = 0x23;
  expected[22] = 0x05;
  expected[23] = 0x40;
  EXPECT_EQ(blank.data_in, expected);

  ASSERT_TRUE(drive.execute(write10(0, pattern(2048, 1))).good());
  const auto written = drive.execute(read_disc_information());
  EXPECT_EQ(written.data_in[2], 0x15);  // erasable, incomplete session, incomplete disc
  EXPECT_EQ(written.data_in[7], 0x03);  // background format: complete
  ASSERT_TRUE(drive.execute(cmd({0x5B, 0, 0x01, 0, 0, 1, 0, 0, 0, 0})).good());  // close track
  EXPECT_EQ(drive.execute(read_disc_information()).data_in[2], 0x15);
  ASSERT_TRUE(drive.execute(cmd({0x5B, 0, 0x02, 0, 0, 0, 0, 0, 0, 0})).good());  // close session
  EXPECT_EQ(drive.execute(read_disc_information()).data_in[2], 0x1E);  // complete, finalized
  ASSERT_TRUE(drive.execute(format_unit(0x26)).good());
  const auto formatted = drive.execute(read_disc_information());
  EXPECT_EQ(formatted.data_in[2], 0x10);
  EXPECT_EQ(formatted.data_in[7], 0x03);
  // Only Standard Disc Information; with the tray open, no medium.
  EXPECT_EQ(sense_of(drive.execute(cmd({0x51, 0x01, 0, 0, 0, 0, 0, 0, 34, 0}, Direction::in, 34))),
            "5/24/00");
  ASSERT_TRUE(drive.execute(cmd({0x1B, 0, 0, 0, 0x02, 0})).good());
  EXPECT_EQ(sense_of(drive.execute(read_disc_information())), "2/3A/00");
}

TEST(SimulatedDrive, TrackInformationGivesTheNextWritableAddressAndTheFreeBlocks) {
  SimulatedDrive drive(0);
  constexpr std::uint32_t kBlocks = SimulatedMedium::kDvdPlusRwBlocks;
  const auto blank = drive.execute(read_track_information(0x01, 1));
  ASSERT_TRUE(blank.good());
  proto::Bytes expected(48, 0);
  expected[1] = 46;
  expected[2] = expected[3] = 1;  // track 1, session 1
  expected[5] = 0x04;             // data track
  expected[6] = 0x41;             // blank, data mode 1
  expected[7] = 0x01;             // NWA valid
  put32(expected, 12, 0);         // NWA
  put32(expected, 16, kBlocks);   // free blocks
  put32(expected, 20, 16);        // an ECC block
  put32(expected, 24, kBlocks);   // track size
  EXPECT_EQ(blank.data_in, expected);

  ASSERT_TRUE(drive.execute(write10(100, pattern(32 * 2048, 1))).good());
  const auto after = drive.execute(read_track_information(0x00, 5000));  // by LBA
  ASSERT_TRUE(after.good());
  EXPECT_EQ(after.data_in[6], 0x01);  // no longer blank
  EXPECT_EQ(after.data_in[7], 0x03);  // NWA and LRA valid
  EXPECT_EQ(be32(after.data_in, 12), 132U);
  EXPECT_EQ(be32(after.data_in, 16), kBlocks - 132);
  EXPECT_EQ(be32(after.data_in, 28), 131U);
  EXPECT_TRUE(drive.execute(read_track_information(0x02, 1)).good());  // session 1's first track
  EXPECT_EQ(sense_of(drive.execute(read_track_information(0x01, 2))), "5/24/00");
  EXPECT_EQ(sense_of(drive.execute(read_track_information(0x00, kBlocks))), "5/21/00");
}

TEST(SimulatedDrive, FormatCapacitiesOfferTheProfilesFormat) {
  SimulatedDrive drive(0);
  const auto dvd = drive.execute(read_format_capacities());
  ASSERT_TRUE(dvd.good());
  EXPECT_EQ(dvd.data_in,
            (proto::Bytes{0x00, 0x00, 0x00, 0x10,                             //
                          0x00, 0x23, 0x05, 0x40, 0x01, 0x00, 0x08, 0x00,     // unformatted
                          0x00, 0x23, 0x05, 0x40, 0x98, 0x00, 0x00, 0x00}));  // 26h
  ASSERT_TRUE(drive.execute(format_unit(0x26)).good());
  EXPECT_EQ(drive.execute(read_format_capacities()).data_in[8], 0x02);  // formatted
  ASSERT_TRUE(drive.execute(cmd({0x1B, 0, 0, 0, 0x02, 0})).good());
  const auto none = drive.execute(read_format_capacities());
  EXPECT_EQ(none.data_in.size(), 12U);
  EXPECT_EQ(none.data_in[8], 0x03);  // no medium

  SimulatedDrive bd(1, {}, bd_re());
  EXPECT_EQ(bd.execute(read_format_capacities()).data_in[16], 0x30 << 2);
}

TEST(SimulatedDrive, FormatUnitDiscardsTheDiscAndRefusesAFormatOfAnotherProfile) {
  SimulatedDrive drive(0);
  ASSERT_TRUE(drive.execute(write10(7, pattern(2048, 9))).good());
  EXPECT_EQ(sense_of(drive.execute(format_unit(0x30))), "5/26/00");  // a BD format on a DVD+RW
  auto short_list = format_unit(0x26);
  short_list.data_out.resize(8);
  EXPECT_EQ(sense_of(drive.execute(short_list)), "5/1A/00");
  EXPECT_EQ(drive.execute(read10(7, 1)).data_in, pattern(2048, 9)) << "refused: nothing changed";
  ASSERT_TRUE(drive.execute(format_unit(0x26)).good());
  EXPECT_EQ(drive.stored_bytes(), 0U);
  EXPECT_EQ(drive.execute(read10(7, 1)).data_in, proto::Bytes(2048, 0));

  SimulatedDrive bd(1, {}, bd_re());
  EXPECT_TRUE(bd.execute(format_unit(0x30)).good());
  EXPECT_TRUE(bd.execute(format_unit(0x31)).good());
  EXPECT_EQ(sense_of(bd.execute(format_unit(0x26))), "5/26/00");
}

TEST(SimulatedDrive, ModeSenseGivesTheCapabilitiesAndWriteParametersPages) {
  SimulatedMedium medium;
  medium.write_speed_mb_s = 11;
  SimulatedDrive drive(0, {}, medium);
  const auto caps = drive.execute(mode_sense(0x2A));
  ASSERT_TRUE(caps.good());
  proto::Bytes expected(8 + 36, 0);
  expected[1] = 42;  // mode data length
  expected[8] = 0x2A;
  expected[9] = 34;  // page length
  expected[10] = 0x3F;
  expected[12] = 0xC0;
  expected[14] = 0x29;             // tray, eject, lock; not locked
  expected[20] = 0x08;             // 2048 KiB buffer
  put16(expected, 8 + 28, 11000);  // kB/s
  expected[8 + 31] = 1;
  put16(expected, 8 + 34, 11000);
  EXPECT_EQ(caps.data_in, expected);
  ASSERT_TRUE(drive.execute(cmd(core::cdb_prevent_allow_medium_removal(true))).good());
  EXPECT_EQ(drive.execute(mode_sense(0x2A)).data_in[14], 0x2B) << "lock state";

  const auto page5 = drive.execute(mode_sense(0x05));
  ASSERT_TRUE(page5.good());
  ASSERT_EQ(page5.data_in.size(), 8U + 52);
  EXPECT_EQ(be16(page5.data_in, 0), 58);
  EXPECT_EQ(proto::Bytes(page5.data_in.begin() + 8, page5.data_in.begin() + 13),
            (proto::Bytes{0x05, 0x32, 0x41, 0x04, 0x08}));  // BUFE, TAO, data, mode 1
  EXPECT_EQ(be16(page5.data_in, 8 + 14), 150);              // audio pause

  const auto every = drive.execute(mode_sense(0x3F));
  ASSERT_EQ(every.data_in.size(), 8U + 52 + 36);
  EXPECT_EQ(every.data_in[8], 0x05);
  EXPECT_EQ(every.data_in[8 + 52], 0x2A);
  EXPECT_EQ(sense_of(drive.execute(mode_sense(0xC0 | 0x05))), "5/39/00");  // saved values
  EXPECT_EQ(sense_of(drive.execute(mode_sense(0x01))), "5/24/00");
}

TEST(SimulatedDrive, ModeSelectOfTheWriteParametersPageIsKept) {
  SimulatedDrive drive(0);
  auto page = drive.execute(mode_sense(0x05)).data_in;
  page[0] = page[1] = 0;  // mode data length: reserved in MODE SELECT
  page[8 + 2] = 0x52;     // BUFE, test write, session at once
  page[8 + 30] = 0xAB;    // a byte of the MCN
  page[8 + 0] |= 0x80;    // PS: ignored
  ASSERT_TRUE(drive.execute(mode_select(page)).good());
  const auto now = drive.execute(mode_sense(0x05)).data_in;
  EXPECT_EQ(now[8 + 2], 0x52);
  EXPECT_EQ(now[8 + 30], 0xAB);
  EXPECT_EQ(now[8 + 0], 0x05);
  EXPECT_EQ(drive.execute(mode_sense(0x80 | 0x05)).data_in[8 + 2], 0x41) << "default values";
  EXPECT_EQ(drive.execute(mode_sense(0x40 | 0x05)).data_in[8 + 2], 0x7F) << "changeable bits";

  // Refused, changing nothing: save pages, another page, a list that is not the buffer.
  auto save = mode_select(page);
  save.cdb[1] |= 0x01;
  EXPECT_EQ(sense_of(drive.execute(save)), "5/24/00");
  auto other = page;
  other[8 + 2] = 0x41;
  other.push_back(0x2A);  // page 2Ah is not changeable
  other.push_back(0);
  EXPECT_EQ(sense_of(drive.execute(mode_select(other))), "5/26/00");
  auto mismatch = mode_select(page);
  mismatch.data_out.pop_back();
  EXPECT_EQ(sense_of(drive.execute(mismatch)), "5/24/00");
  auto truncated = page;
  truncated.resize(8 + 20);
  EXPECT_EQ(sense_of(drive.execute(mode_select(truncated))), "5/1A/00");
  EXPECT_EQ(drive.execute(mode_sense(0x05)).data_in[8 + 2], 0x52);
  EXPECT_TRUE(drive.execute(cmd({0x55, 0x10, 0, 0, 0, 0, 0, 0, 0, 0})).good()) << "an empty list";
}

TEST(SimulatedDrive, SpeedStreamingCacheAndCloseAreAccepted) {
  SimulatedDrive drive(0);
  EXPECT_TRUE(drive.execute(cmd({0xBB, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0})).good());
  EXPECT_TRUE(drive
                  .execute(cmd({0xB6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 28, 0}, Direction::out, 0,
                               proto::Bytes(28, 0)))
                  .good());
  EXPECT_TRUE(drive.execute(cmd({0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0})).good());
  EXPECT_TRUE(drive.execute(cmd({0x5B, 0, 0x02, 0, 0, 0, 0, 0, 0, 0})).good());
  EXPECT_EQ(drive.execute(read_disc_information()).data_in[2], 0x10)
      << "closing a session with nothing in it leaves the disc empty";
  const auto sense = drive.execute(cmd({0x03, 0, 0, 0, 18, 0}, Direction::in, 18));
  ASSERT_TRUE(sense.good());
  EXPECT_EQ(proto::describe_sense(sense.data_in), "0/00/00");
  ASSERT_TRUE(drive.execute(cmd({0x1B, 0, 0, 0, 0x02, 0})).good());
  EXPECT_EQ(sense_of(drive.execute(cmd({0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0}))), "2/3A/00");
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
