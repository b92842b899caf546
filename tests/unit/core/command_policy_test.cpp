#include "core/command_policy.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "core/arbiter.hpp"
#include "fakes.hpp"
#include "host/config.hpp"

namespace discarbiter::core {
namespace {

using testing::FakeDrive;
using testing::FakeScheduler;
using testing::RecordingAudit;

PeerIdentity user() {
  return PeerIdentity{4242, "alice", 1000, {}, "/usr/bin/burner", false};
}
PeerIdentity administrator() {
  return PeerIdentity{1, "root", 0, {}, "/usr/bin/burner", true};
}

// What a ordinary user may not send: one of each class of issue 11 finding 2.
const std::vector<proto::Bytes> kRefused{
    {0x3B, 0x05, 0, 0, 0, 0, 0, 0x10, 0, 0},  // WRITE BUFFER: firmware download
    {0x1D, 0x04, 0, 0, 0, 0},                 // SEND DIAGNOSTIC
    {0x85, 0x08, 0x0E, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xEC, 0},  // ATA PASS-THROUGH(16)
    {0xC0, 0, 0, 0, 0, 0, 0, 0, 0, 0},                             // vendor-specific
    {0xFF, 0, 0, 0, 0, 0},                                         // vendor-specific
    {0x16, 0, 0, 0, 0, 0},                                         // RESERVE(6)
    {0x17, 0, 0, 0, 0, 0},                                         // RELEASE(6)
    {0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0},                             // RESERVE(10)
    {0x57, 0, 0, 0, 0, 0, 0, 0, 0, 0},                             // RELEASE(10)
    {0x5F, 0x01, 0, 0, 0, 0, 0, 0, 0x18, 0},                       // PERSISTENT RESERVE OUT
    {0x15, 0x11, 0, 0, 0x0C, 0},                                   // MODE SELECT(6), PF + SP
    {0x55, 0x11, 0, 0, 0, 0, 0, 0, 0x10, 0},                       // MODE SELECT(10), PF + SP
    {0x4C, 0x01, 0, 0, 0, 0, 0, 0, 0, 0},                          // LOG SELECT, SP
    {0x4C, 0x02, 0, 0, 0, 0, 0, 0, 0, 0},                          // LOG SELECT, PCR
    {0xA3, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x06, 0},                 // SEND KEY, RPC structure
};

TEST(CommandPolicy, EachClassOfRawIoIsRefusedToAUserAndAllowedToAnAdministrator) {
  const CommandPolicy policy;
  for (const auto& cdb : kRefused) {
    const auto r = policy.check(cdb, user());
    ASSERT_FALSE(r.ok()) << fmt::format("0x{:02X}", cdb[0]);
    EXPECT_EQ(r.error().code, errc::access_denied);
    EXPECT_NE(r.error().message.find(fmt::format("opcode 0x{:02X}", cdb[0])), std::string::npos)
        << r.error().message;
    EXPECT_NE(r.error().message.find("'alice'"), std::string::npos) << r.error().message;
    EXPECT_TRUE(policy.check(cdb, administrator()).ok()) << fmt::format("0x{:02X}", cdb[0]);
  }
}

TEST(CommandPolicy, TheRefusalNamesTheCommandWhereKnown) {
  const CommandPolicy policy;
  const auto message = [&](proto::Bytes cdb) { return policy.check(cdb, user()).error().message; };
  EXPECT_NE(message({0x3B, 0, 0, 0, 0, 0, 0, 0, 0, 0}).find("opcode 0x3B (WRITE BUFFER)"),
            std::string::npos);
  EXPECT_NE(message({0x1D, 0, 0, 0, 0, 0}).find("(SEND DIAGNOSTIC)"), std::string::npos);
  EXPECT_NE(message(proto::Bytes(16, 0x85)).find("(ATA PASS-THROUGH(16))"), std::string::npos);
  EXPECT_NE(message({0xD8, 0, 0, 0, 0, 0}).find("opcode 0xD8 (vendor-specific)"),
            std::string::npos);
  EXPECT_NE(message({0x5F, 0, 0, 0, 0, 0, 0, 0, 0, 0}).find("(PERSISTENT RESERVE OUT)"),
            std::string::npos);
  EXPECT_NE(message({0x55, 0x11, 0, 0, 0, 0, 0, 0, 0, 0}).find("(MODE SELECT(10)) with SP"),
            std::string::npos);
  // An opcode the service has no name for is named by number alone.
  EXPECT_NE(message({0x0D, 0, 0, 0, 0, 0}).find("opcode 0x0D may only"), std::string::npos);
}

TEST(CommandPolicy, WhatBurningRippingAndInspectionNeedIsAllowedToAUser) {
  const CommandPolicy policy;
  for (const std::uint8_t op : std::initializer_list<std::uint8_t>{
           0x00, 0x03, 0x04, 0x12, 0x1A, 0x1B, 0x1E, 0x23, 0x25, 0x28, 0x2A, 0x2E, 0x35,
           0x42, 0x43, 0x46, 0x4A, 0x51, 0x52, 0x53, 0x54, 0x5A, 0x5B, 0x5C, 0x5D, 0xA1,
           0xA3, 0xA4, 0xA8, 0xAA, 0xAC, 0xAD, 0xB6, 0xB9, 0xBB, 0xBD, 0xBE, 0xBF}) {
    proto::Bytes cdb(12, 0);
    cdb[0] = op;
    EXPECT_TRUE(policy.check(cdb, user()).ok()) << fmt::format("0x{:02X}", op);
  }
}

TEST(CommandPolicy, ZeroA1IsBlankForAnMmcDriveAndAllowed) {
  // SAT's ATA PASS-THROUGH(12) shares the opcode; on an MMC drive it is BLANK.
  const CommandPolicy policy;
  EXPECT_TRUE(policy.check(proto::Bytes{0xA1, 0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, user()).ok());
  EXPECT_EQ(command_name(0xA1), "BLANK");
}

TEST(CommandPolicy, ModeSelectIsAllowedOnlyWithoutSavePages) {
  const CommandPolicy policy;
  EXPECT_TRUE(policy.check(proto::Bytes{0x55, 0x10, 0, 0, 0, 0, 0, 0, 0x10, 0}, user()).ok());
  EXPECT_TRUE(policy.check(proto::Bytes{0x15, 0x10, 0, 0, 0x0C, 0}, user()).ok());
  EXPECT_FALSE(policy.check(proto::Bytes{0x55, 0x11, 0, 0, 0, 0, 0, 0, 0x10, 0}, user()).ok());
  EXPECT_FALSE(policy.check(proto::Bytes{0x15, 0x01, 0, 0, 0x0C, 0}, user()).ok());
  EXPECT_TRUE(
      policy.check(proto::Bytes{0x55, 0x11, 0, 0, 0, 0, 0, 0, 0x10, 0}, administrator()).ok());
}

TEST(CommandPolicy, LogSelectIsAllowedOnlyWithoutSaveOrCounterReset) {
  const CommandPolicy policy;
  // PC 00b (current threshold values) with a parameter list: allowed.
  EXPECT_TRUE(policy.check(proto::Bytes{0x4C, 0x00, 0x00, 0, 0, 0, 0, 0, 0x10, 0}, user()).ok());
  // Any other PC sets cumulative values or thresholds (to their defaults with
  // no parameter list): the same reset by another way.
  for (const std::uint8_t pc : {std::uint8_t{0x40}, std::uint8_t{0x80}, std::uint8_t{0xC0}}) {
    EXPECT_FALSE(policy.check(proto::Bytes{0x4C, 0x00, pc, 0, 0, 0, 0, 0, 0, 0}, user()).ok())
        << "PC " << (pc >> 6);
    EXPECT_TRUE(
        policy.check(proto::Bytes{0x4C, 0x00, pc, 0, 0, 0, 0, 0, 0, 0}, administrator()).ok());
  }
  const auto r = policy.check(proto::Bytes{0x4C, 0x02, 0, 0, 0, 0, 0, 0, 0, 0}, user());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, errc::access_denied);
  EXPECT_NE(r.error().message.find("opcode 0x4C (LOG SELECT) with PCR"), std::string::npos)
      << r.error().message;
  EXPECT_FALSE(policy.check(proto::Bytes{0x4C, 0x03, 0, 0, 0, 0, 0, 0, 0, 0}, user()).ok());
  EXPECT_TRUE(policy.check(proto::Bytes{0x4C, 0x02, 0, 0, 0, 0, 0, 0, 0, 0}, administrator()).ok());
}

TEST(CommandPolicy, SendKeyIsAllowedForAuthenticationButNotToSetTheRegion) {
  const CommandPolicy policy;
  // KEY FORMAT is byte 10 bits 5:0; bits 7:6 are the AGID.
  const auto send_key = [](std::uint8_t byte10) {
    return proto::Bytes{0xA3, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, byte10, 0};
  };
  // CSS: challenge (01h), KEY2 (03h), invalidate AGID (3Fh); AACS formats.
  for (const std::uint8_t format :
       std::initializer_list<std::uint8_t>{0x01, 0x03, 0x3F, 0x02, 0x11})
    EXPECT_TRUE(policy.check(send_key(format), user()).ok()) << format;
  EXPECT_TRUE(policy.check(send_key(0x40 | 0x01), user()).ok());  // AGID 1, challenge
  for (const std::uint8_t byte10 :
       std::initializer_list<std::uint8_t>{0x06, 0x46, 0xC6}) {  // RPC structure, any AGID bits
    const auto r = policy.check(send_key(byte10), user());
    ASSERT_FALSE(r.ok()) << byte10;
    EXPECT_EQ(r.error().code, errc::access_denied);
    EXPECT_NE(r.error().message.find("opcode 0xA3 (SEND KEY) with KEY FORMAT 06h"),
              std::string::npos)
        << r.error().message;
    EXPECT_TRUE(policy.check(send_key(byte10), administrator()).ok());
  }
  // A CDB too short to show its KEY FORMAT is refused rather than guessed at.
  EXPECT_FALSE(policy.check(proto::Bytes{0xA3, 0, 0, 0, 0, 0, 0, 0, 0, 0}, user()).ok());
}

TEST(CommandPolicy, TheBuiltInListIsSortedUniqueAndLeavesOutTheVendorRange) {
  const auto list = builtin_allowed_commands();
  ASSERT_FALSE(list.empty());
  for (std::size_t i = 1; i < list.size(); ++i)
    EXPECT_LT(list[i - 1].opcode, list[i].opcode);
  for (const auto& c : list) {
    EXPECT_LT(c.opcode, 0xC0);
    EXPECT_FALSE(c.name.empty());
    EXPECT_FALSE(c.why.empty());
  }
}

TEST(CommandPolicy, TheConfigurationExtendsTheListForUsers) {
  const auto config =
      host::parse_config(nlohmann::json::parse(R"({"commands": {"allow": ["0xD8", "0x3B"]}})"))
          .value();
  const CommandPolicy& policy = config.arbiter.commands;
  EXPECT_TRUE(policy.check(proto::Bytes{0xD8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, user()).ok());
  EXPECT_TRUE(policy.check(proto::Bytes{0x3B, 0, 0, 0, 0, 0, 0, 0, 0, 0}, user()).ok());
  EXPECT_FALSE(policy.check(proto::Bytes{0xD9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, user()).ok());
  EXPECT_TRUE(
      host::parse_config(nlohmann::json::object()).value().arbiter.commands.extra_allowed.empty());
}

TEST(CommandPolicy, TheConfigurationSectionIsParsedStrictly) {
  const auto error_of = [](const char* text) {
    auto r = host::parse_config(nlohmann::json::parse(text));
    EXPECT_FALSE(r.ok()) << text;
    return r.ok() ? std::string() : r.error().message;
  };
  EXPECT_NE(error_of(R"({"commands": {"allow": "0xD8"}})").find("commands.allow must be an array"),
            std::string::npos);
  EXPECT_NE(
      error_of(R"({"commands": {"allow": ["0x100"]}})").find("commands.allow holds \"0x100\""),
      std::string::npos);
  EXPECT_NE(error_of(R"({"commands": {"allow": [216]}})").find("commands.allow holds 216"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"commands": {"deny": []}})").find("commands.deny is not a known key"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"commands": []})").find("commands must be an object"), std::string::npos);
}

// ---- the arbiter's hook -----------------------------------------------------

class ArbiterPolicyTest : public ::testing::Test {
 protected:
  ArbiterPolicyTest() {
    EXPECT_TRUE(arbiter.add_drive(drive).ok());
    scheduler.run();
  }

  SessionId owner_of_sim0(PeerIdentity peer) {
    const SessionId s = arbiter.open_session(std::move(peer), {});
    EXPECT_TRUE(arbiter.hello(s, "Burner", 100).ok());
    std::optional<Result<std::uint32_t>> acquired;
    arbiter.acquire_exclusive_access(s, "sim0", {},
                                     [&](Result<std::uint32_t> r) { acquired.emplace(r); });
    scheduler.run();
    EXPECT_TRUE(acquired && acquired->ok());
    drive->commands.clear();
    return s;
  }

  std::optional<Result<ScsiResult>> execute(SessionId s, proto::Bytes cdb) {
    std::optional<Result<ScsiResult>> answer;
    arbiter.execute(s, "sim0", ScsiCommand{std::move(cdb), Direction::none, {}, 0, {}}, {},
                    [&](Result<ScsiResult> r) { answer.emplace(std::move(r)); });
    scheduler.run();
    return answer;
  }

  std::uint64_t commands_counted() const { return arbiter.status().drives[0].stats.commands; }

  FakeScheduler scheduler;
  RecordingAudit audit;
  Arbiter arbiter{scheduler, audit, ArbiterConfig{}};
  std::shared_ptr<FakeDrive> drive = std::make_shared<FakeDrive>(scheduler, "sim0");
};

TEST_F(ArbiterPolicyTest, ARefusedCommandIsAnsweredAccessDeniedAndNeverReachesTheDrive) {
  const SessionId s = owner_of_sim0(user());
  const auto counted = commands_counted();
  const auto records = audit.records.size();
  for (const auto& cdb : kRefused) {
    const auto answer = execute(s, cdb);
    ASSERT_TRUE(answer.has_value()) << "answered at once";
    ASSERT_FALSE(answer->ok());
    EXPECT_EQ(answer->error().code, errc::access_denied);
    EXPECT_NE(answer->error().message.find(fmt::format("opcode 0x{:02X}", cdb[0])),
              std::string::npos);
  }
  EXPECT_TRUE(drive->commands.empty()) << "nothing was sent";
  EXPECT_EQ(commands_counted(), counted) << "nothing was counted";
  EXPECT_EQ(audit.records.size(), records);
  EXPECT_EQ(arbiter.exclusive_access_owner("sim0").value()->lock_count, 1U) << "the lock lives on";
  const auto inquiry = execute(s, {0x12, 0, 0, 0, 36, 0});
  ASSERT_TRUE(inquiry && inquiry->ok()) << "the session goes on as before";
  EXPECT_EQ(drive->opcodes(), std::vector<std::uint8_t>{0x12});
}

TEST_F(ArbiterPolicyTest, AnAdministratorsCommandReachesTheDrive) {
  const SessionId s = owner_of_sim0(administrator());
  for (const auto& cdb : kRefused) {
    const auto answer = execute(s, cdb);
    ASSERT_TRUE(answer && answer->ok()) << fmt::format("0x{:02X}", cdb[0]);
  }
  EXPECT_EQ(drive->commands, kRefused);
}

TEST_F(ArbiterPolicyTest, TheOwnerCheckComesFirst) {
  const SessionId holder = owner_of_sim0(user());
  const SessionId other = arbiter.open_session(user(), {});
  ASSERT_TRUE(arbiter.hello(other, "Other", 200).ok());
  const auto answer = execute(other, {0x3B, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  ASSERT_TRUE(answer && !answer->ok());
  EXPECT_EQ(answer->error().code, errc::recorder_locked) << "who holds it is the first answer";
  (void)holder;
}

}  // namespace
}  // namespace discarbiter::core
