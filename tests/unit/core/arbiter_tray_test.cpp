// No tray prevention outlives a lock (issue 11 finding 4): the arbiter
// against the simulated drive, which models both of MMC's preventions.
#include "core/arbiter.hpp"

#include <gtest/gtest.h>

#include "drives/simulated_drive.hpp"
#include "fakes.hpp"

namespace discarbiter::core {
namespace {

using testing::FakeScheduler;
using testing::RecordingAudit;

/// The simulated drive behind the arbiter's seam: each call runs on the
/// spot and completes when the test runs the scheduler.
class SimulatedChannel final : public DriveChannel {
 public:
  SimulatedChannel(FakeScheduler& scheduler, std::shared_ptr<drives::SimulatedDrive> drive)
      : scheduler_(scheduler), drive_(std::move(drive)), description_(drive_->describe()) {}

  const DriveDescription& description() const override { return description_; }
  void async_execute(ScsiCommand command, ExecuteHandler handler) override {
    sent.push_back(command.cdb);
    scheduler_.post([r = drive_->execute(command), h = std::move(handler)] { h(r); });
  }
  void async_os_lock(std::string client_name, bool force, LockHandler handler) override {
    scheduler_.post(
        [r = drive_->lock_exclusive(client_name, force), h = std::move(handler)] { h(r); });
  }
  void async_os_unlock(LockHandler handler) override {
    scheduler_.post([r = drive_->unlock_exclusive(), h = std::move(handler)] { h(r); });
  }

  std::vector<proto::Bytes> sent;

 private:
  FakeScheduler& scheduler_;
  std::shared_ptr<drives::SimulatedDrive> drive_;
  DriveDescription description_;
};

const proto::Bytes kPersistentPrevent{0x1E, 0, 0, 0, 0x03, 0};
// MMC's persistent ALLOW: QEMU and drives that ignore bit 1 read it as ALLOW.
const proto::Bytes kPersistentAllowOnly{0x1E, 0, 0, 0, 0x02, 0};
const proto::Bytes kEject{0x1B, 0, 0, 0, 0x02, 0};

class ArbiterTrayTest : public ::testing::TestWithParam<bool> {
 protected:
  ArbiterTrayTest() {
    config.tray_lock = GetParam();
    arbiter = std::make_unique<Arbiter>(scheduler, audit, config);
    EXPECT_TRUE(arbiter->add_drive(channel).ok());
    scheduler.run();
  }

  SessionId owner_of_sim0() {
    const SessionId s = arbiter->open_session(PeerIdentity{100, "alice", 1000, {}, "", false}, {});
    EXPECT_TRUE(arbiter->hello(s, "Burner", 100).ok());
    std::optional<Result<std::uint32_t>> acquired;
    arbiter->acquire_exclusive_access(s, "sim0", {},
                                      [&](Result<std::uint32_t> r) { acquired.emplace(r); });
    scheduler.run();
    EXPECT_TRUE(acquired && acquired->ok());
    return s;
  }

  ScsiResult execute(SessionId s, proto::Bytes cdb) {
    std::optional<Result<ScsiResult>> answer;
    arbiter->execute(s, "sim0", ScsiCommand{std::move(cdb), Direction::none, {}, 0, {}}, {},
                     [&](Result<ScsiResult> r) { answer.emplace(std::move(r)); });
    scheduler.run();
    EXPECT_TRUE(answer && answer->ok());
    return answer && answer->ok() ? answer->value() : ScsiResult{};
  }

  /// An owner that leaves the drive persistently prevented.
  SessionId owner_who_prevents_persistently() {
    const SessionId s = owner_of_sim0();
    EXPECT_TRUE(execute(s, kPersistentPrevent).good());
    EXPECT_TRUE(drive->tray_persistently_prevented());
    EXPECT_EQ(arbiter->status().drives[0].tray_persistent, true);
    EXPECT_EQ(arbiter->status().drives[0].tray_locked, true);
    EXPECT_EQ(proto::describe_sense(execute(s, kEject).sense), "5/53/02") << "the tray is held";
    return s;
  }

  void expect_nothing_left() {
    EXPECT_FALSE(drive->tray_persistently_prevented());
    EXPECT_FALSE(drive->tray_prevented());
    EXPECT_EQ(arbiter->status().drives[0].tray_locked, false);
    EXPECT_EQ(arbiter->status().drives[0].tray_persistent, false);
    EXPECT_EQ(arbiter->status().drives[0].state, "free");
    EXPECT_TRUE(
        drive->execute(ScsiCommand{kEject, Direction::none, {}, 0, std::chrono::seconds(5)}).good())
        << "the next owner, or anyone's eject button, can open the tray";
  }

  FakeScheduler scheduler;
  RecordingAudit audit;
  ArbiterConfig config;
  std::unique_ptr<Arbiter> arbiter;
  std::shared_ptr<drives::SimulatedDrive> drive = std::make_shared<drives::SimulatedDrive>(0);
  std::shared_ptr<SimulatedChannel> channel = std::make_shared<SimulatedChannel>(scheduler, drive);
};

TEST_P(ArbiterTrayTest, TheFinalReleaseClearsAPersistentPrevent) {
  const SessionId s = owner_who_prevents_persistently();
  std::optional<Result<std::uint32_t>> released;
  arbiter->release_exclusive_access(s, "sim0",
                                    [&](Result<std::uint32_t> r) { released.emplace(r); });
  scheduler.run();
  ASSERT_TRUE(released && released->ok());
  expect_nothing_left();
}

TEST_P(ArbiterTrayTest, ThePersistentAllowOnlyCdbLeavesNoStaleBelief) {
  // `1E .. 02 ..` is MMC's persistent ALLOW; bit 0 clear must not make the
  // service forget the ordinary prevention it set itself.
  const SessionId s = owner_of_sim0();
  EXPECT_TRUE(execute(s, kPersistentAllowOnly).good());
  EXPECT_EQ(drive->tray_prevented(), config.tray_lock);
  std::optional<Result<std::uint32_t>> released;
  arbiter->release_exclusive_access(s, "sim0",
                                    [&](Result<std::uint32_t> r) { released.emplace(r); });
  scheduler.run();
  ASSERT_TRUE(released && released->ok());
  expect_nothing_left();
}

TEST_P(ArbiterTrayTest, SessionEndClearsAPersistentPrevent) {
  const SessionId s = owner_who_prevents_persistently();
  arbiter->close_session(s);
  scheduler.run();
  expect_nothing_left();
}

TEST_P(ArbiterTrayTest, BreakClearsAPersistentPrevent) {
  owner_who_prevents_persistently();
  const SessionId admin = arbiter->open_session(PeerIdentity{1, "root", 0, {}, "", true}, {});
  ASSERT_TRUE(arbiter->hello(admin, "Admin", 1).ok());
  std::optional<Result<proto::OwnerInfo>> broken;
  arbiter->break_exclusive_access(admin, "sim0",
                                  [&](Result<proto::OwnerInfo> r) { broken.emplace(r); });
  scheduler.run();
  ASSERT_TRUE(broken && broken->ok());
  expect_nothing_left();
}

TEST_P(ArbiterTrayTest, APreventStillInFlightAtReleaseIsClearedToo) {
  // Pipelined: the release is decided while the PREVENT is queued ahead of it.
  const SessionId s = owner_of_sim0();
  std::optional<Result<ScsiResult>> prevent;
  std::optional<Result<std::uint32_t>> released;
  arbiter->execute(s, "sim0", ScsiCommand{kPersistentPrevent, Direction::none, {}, 0, {}}, {},
                   [&](Result<ScsiResult> r) { prevent.emplace(std::move(r)); });
  arbiter->release_exclusive_access(s, "sim0",
                                    [&](Result<std::uint32_t> r) { released.emplace(r); });
  scheduler.run();
  ASSERT_TRUE(prevent && prevent->ok());
  ASSERT_TRUE(released && released->ok());
  expect_nothing_left();
}

TEST_P(ArbiterTrayTest, ANormalReleaseSendsNoPersistentAllow) {
  const SessionId s = owner_of_sim0();
  channel->sent.clear();
  std::optional<Result<std::uint32_t>> released;
  arbiter->release_exclusive_access(s, "sim0",
                                    [&](Result<std::uint32_t> r) { released.emplace(r); });
  scheduler.run();
  ASSERT_TRUE(released && released->ok());
  const auto expected = config.tray_lock ? std::vector<proto::Bytes>{{0x1E, 0, 0, 0, 0, 0}}
                                         : std::vector<proto::Bytes>{};
  EXPECT_EQ(channel->sent, expected) << "only what may be set is cleared";
}

TEST_P(ArbiterTrayTest, AnOwnerWhoTouchedTheTrayGetsBothAllowsWhateverTheTrackedBitsSay) {
  // Under MMC the answered 02 clears the persistent prevention, so the
  // tracked bits say nothing is left; a drive that reads bit 1 as SPC-2 does
  // would still hold one. The release, session end or break sends both.
  enum class End { release, close, brk };
  for (const End end : {End::release, End::close, End::brk}) {
    const SessionId s = owner_of_sim0();
    EXPECT_TRUE(execute(s, kPersistentPrevent).good());
    EXPECT_TRUE(execute(s, kPersistentAllowOnly).good());
    EXPECT_EQ(arbiter->status().drives[0].tray_persistent, false);
    channel->sent.clear();
    if (end == End::release) {
      std::optional<Result<std::uint32_t>> released;
      arbiter->release_exclusive_access(s, "sim0",
                                        [&](Result<std::uint32_t> r) { released.emplace(r); });
      scheduler.run();
      ASSERT_TRUE(released && released->ok());
    } else if (end == End::close) {
      arbiter->close_session(s);
      scheduler.run();
    } else {
      const SessionId admin = arbiter->open_session(PeerIdentity{1, "root", 0, {}, "", true}, {});
      ASSERT_TRUE(arbiter->hello(admin, "Admin", 1).ok());
      std::optional<Result<proto::OwnerInfo>> broken;
      arbiter->break_exclusive_access(admin, "sim0",
                                      [&](Result<proto::OwnerInfo> r) { broken.emplace(r); });
      scheduler.run();
      ASSERT_TRUE(broken && broken->ok());
      arbiter->close_session(admin);
      arbiter->close_session(s);
      scheduler.run();
    }
    EXPECT_EQ(channel->sent,
              (std::vector<proto::Bytes>{{0x1E, 0, 0, 0, 0x02, 0}, {0x1E, 0, 0, 0, 0x00, 0}}))
        << "end " << static_cast<int>(end);
    EXPECT_EQ(audit.count(AuditKind::drive_error), 0U);
    expect_nothing_left();
  }
  // A later owner that leaves the tray alone gets only what may be set.
  const SessionId s = owner_of_sim0();
  channel->sent.clear();
  std::optional<Result<std::uint32_t>> released;
  arbiter->release_exclusive_access(s, "sim0",
                                    [&](Result<std::uint32_t> r) { released.emplace(r); });
  scheduler.run();
  ASSERT_TRUE(released && released->ok());
  EXPECT_EQ(channel->sent.size(), config.tray_lock ? 1U : 0U);
}

INSTANTIATE_TEST_SUITE_P(TrayLock, ArbiterTrayTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? "On" : "Off";
                         });

TEST(ArbiterStartUp, ClearsADriveLeftPersistentlyPrevented) {
  // A crash (the service's or another program's) left both preventions set.
  auto drive = std::make_shared<drives::SimulatedDrive>(0);
  const ScsiCommand prevent{
      {0x1E, 0, 0, 0, 0x01, 0}, Direction::none, {}, 0, std::chrono::seconds(5)};
  ASSERT_TRUE(drive->execute(prevent).good());
  ASSERT_TRUE(drive
                  ->execute(ScsiCommand{
                      kPersistentPrevent, Direction::none, {}, 0, std::chrono::seconds(5)})
                  .good());
  FakeScheduler scheduler;
  RecordingAudit audit;
  Arbiter arbiter(scheduler, audit, ArbiterConfig{});
  auto channel = std::make_shared<SimulatedChannel>(scheduler, drive);
  ASSERT_TRUE(arbiter.add_drive(channel).ok());
  scheduler.run();
  EXPECT_FALSE(drive->tray_prevented());
  EXPECT_FALSE(drive->tray_persistently_prevented());
  EXPECT_EQ(channel->sent,
            (std::vector<proto::Bytes>{{0x1E, 0, 0, 0, 0x02, 0}, {0x1E, 0, 0, 0, 0x00, 0}}));
  EXPECT_EQ(audit.count(AuditKind::drive_error), 0U);
}

ScsiResult check_condition(std::uint8_t key, std::uint8_t asc) {
  ScsiResult r;
  r.status = kStatusCheckCondition;
  r.sense = make_sense(key, asc, 0x00);
  return r;
}

TEST(ArbiterStartUp, AFailedPersistentAllowIsAuditedAndTheDriveIsStillUsable) {
  FakeScheduler scheduler;
  RecordingAudit audit;
  Arbiter arbiter(scheduler, audit, ArbiterConfig{});
  auto drive = std::make_shared<testing::FakeDrive>(scheduler, "sim0");
  drive->script(opcode::prevent_allow_medium_removal,
                check_condition(0x04, 0x44));  // the persistent one, first
  drive->script(opcode::prevent_allow_medium_removal, ScsiResult{});
  ASSERT_TRUE(arbiter.add_drive(drive).ok());
  scheduler.run();
  ASSERT_EQ(audit.count(AuditKind::drive_error), 1U);
  const auto& r = audit.records.back();
  EXPECT_NE(r.detail.find("start-up PERSISTENT ALLOW MEDIUM REMOVAL failed: 4/44/00"),
            std::string::npos)
      << r.detail;
  EXPECT_EQ(arbiter.status().drives[0].state, "free");
}

TEST(ArbiterStartUp, ADriveWithoutPersistentPreventionIsNoError) {
  // MMC-3 drives refuse PREVENT field 10b as an invalid field.
  FakeScheduler scheduler;
  RecordingAudit audit;
  Arbiter arbiter(scheduler, audit, ArbiterConfig{});
  auto drive = std::make_shared<testing::FakeDrive>(scheduler, "sim0");
  drive->script(opcode::prevent_allow_medium_removal,
                check_condition(0x05, 0x24));  // the persistent one, first
  drive->script(opcode::prevent_allow_medium_removal, ScsiResult{});
  ASSERT_TRUE(arbiter.add_drive(drive).ok());
  scheduler.run();
  EXPECT_EQ(drive->opcodes(), (std::vector<std::uint8_t>{0x1E, 0x1E}));
  EXPECT_EQ(audit.count(AuditKind::drive_error), 0U);
  EXPECT_EQ(arbiter.status().drives[0].tray_persistent, false);
}

}  // namespace
}  // namespace discarbiter::core
