#include "core/arbiter.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include "fakes.hpp"

namespace discarbiter::core {
namespace {

using namespace std::chrono_literals;
using testing::FakeDrive;
using testing::FakeScheduler;
using testing::RecordingAudit;

/// What a handler was given, captured for assertions.
struct Answer {
  std::optional<Result<std::uint32_t>> result;
  bool done() const { return result.has_value(); }
  bool ok() const { return done() && result->ok(); }
  std::uint32_t count() const { return result->value(); }
  errc code() const { return result->ok() ? errc::ok : result->error().code; }
  Arbiter::CountHandler handler() {
    return [this](Result<std::uint32_t> r) { result.emplace(std::move(r)); };
  }
};

class ArbiterTest : public ::testing::Test {
 protected:
  ArbiterTest() {
    for (const char* id : {"sim0", "sim1"}) {
      auto d = std::make_shared<FakeDrive>(scheduler, id);
      drives.push_back(d);
      EXPECT_TRUE(arbiter.add_drive(d).ok());
    }
    scheduler.run();
    for (auto& d : drives) {  // forget the start-up ALLOW
      d->commands.clear();
      d->timeouts.clear();
    }
  }

  SessionId client(const std::string& name, std::uint32_t pid = 100) {
    const SessionId s = arbiter.open_session(
        PeerIdentity{pid, "user" + std::to_string(pid), pid, {}, "/bin/" + name}, {});
    EXPECT_TRUE(arbiter.hello(s, name, pid).ok());
    return s;
  }

  // For requests answered before run() returns; a wait needs an Answer that
  // outlives the call (see the queue tests).
  Answer acquire(SessionId s, const std::string& drive, AcquireOptions options = {}) {
    Answer a;
    arbiter.acquire_exclusive_access(s, drive, options, a.handler());
    scheduler.run();
    return a;
  }

  Answer release(SessionId s, const std::string& drive) {
    Answer a;
    arbiter.release_exclusive_access(s, drive, a.handler());
    scheduler.run();
    return a;
  }

  /// Acquires sim0 for s, its drive set to run lock steps at once and to
  /// hold their returns until the test gives them back (return_held).
  Answer acquire_holding_returns(SessionId s) {
    drives[0]->steps_at_once = true;
    drives[0]->hold_returns = true;
    Answer a;
    arbiter.acquire_exclusive_access(s, "sim0", {}, a.handler());
    drives[0]->return_held();
    scheduler.run();
    return a;
  }

  /// A owns sim0, B waits `wait` for it (wb), and A's release (released)
  /// sits on its ALLOW in the drive; the drive's commands are forgotten.
  void release_stuck_on_its_allow(std::chrono::milliseconds wait, Answer& wb, Answer& released) {
    const auto a = client("A", 1), b = client("B", 2);
    ASSERT_TRUE(acquire(a, "sim0").ok());
    arbiter.acquire_exclusive_access(b, "sim0", {.wait = wait}, wb.handler());
    drives[0]->stuck.insert(opcode::prevent_allow_medium_removal);
    drives[0]->commands.clear();
    arbiter.release_exclusive_access(a, "sim0", released.handler());
  }

  struct Sessions {
    SessionId a, b, c;
  };
  /// A owns sim0; B, then C, wait 5 s for it (wb, wc).
  Sessions owner_and_two_waiters(Answer& wb, Answer& wc) {
    const Sessions s{client("A", 1), client("B", 2), client("C", 3)};
    EXPECT_TRUE(acquire(s.a, "sim0").ok());
    arbiter.acquire_exclusive_access(s.b, "sim0", {.wait = 5s}, wb.handler());
    arbiter.acquire_exclusive_access(s.c, "sim0", {.wait = 5s}, wc.handler());
    return s;
  }

  std::optional<proto::OwnerInfo> owner(const std::string& drive) {
    return arbiter.exclusive_access_owner(drive).value();
  }

  FakeScheduler scheduler;
  RecordingAudit audit;
  Arbiter arbiter{scheduler, audit, ArbiterConfig{}};
  std::vector<std::shared_ptr<FakeDrive>> drives;
};

TEST_F(ArbiterTest, StartUpSendsAllowMediumRemovalToEveryDrive) {
  FakeScheduler s;
  RecordingAudit a;
  Arbiter fresh(s, a, ArbiterConfig{});
  auto d = std::make_shared<FakeDrive>(s, "x");
  ASSERT_TRUE(fresh.add_drive(d).ok());
  s.run();
  ASSERT_EQ(d->commands.size(), 2U);
  // N.B. the persistent one first: the last word is a plain ALLOW.
  EXPECT_EQ(d->commands[0], cdb_prevent_allow_medium_removal(false, /*persistent=*/true));
  EXPECT_EQ(d->commands[1], cdb_prevent_allow_medium_removal(false));
}

TEST_F(ArbiterTest, FirstAcquireSendsTurThenOsLockThenPrevent) {
  const auto a = client("Burner");
  const auto r = acquire(a, "sim0");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.count(), 1U);
  EXPECT_EQ(drives[0]->opcodes(), (std::vector<std::uint8_t>{0x00, 0x1E}));
  EXPECT_EQ(drives[0]->commands[1][4], 1);  // prevent
  EXPECT_EQ(drives[0]->os_owner, "Burner");
  EXPECT_TRUE(drives[0]->tray_locked);
  EXPECT_EQ(drives[0]->timeouts[0], 20s);  // TEST UNIT READY's configured default
}

TEST_F(ArbiterTest, NestedAcquiresCountAndOnlyTheBalancingReleaseFrees) {
  const auto a = client("Burner");
  EXPECT_EQ(acquire(a, "sim0").count(), 1U);
  EXPECT_EQ(acquire(a, "sim0").count(), 2U);
  EXPECT_EQ(acquire(a, "sim0").count(), 3U);
  EXPECT_EQ(drives[0]->opcodes().size(), 2U) << "nested acquires are not forwarded";
  EXPECT_EQ(owner("sim0")->lock_count, 3U);
  EXPECT_EQ(release(a, "sim0").count(), 2U);
  EXPECT_EQ(release(a, "sim0").count(), 1U);
  EXPECT_TRUE(owner("sim0").has_value());
  EXPECT_EQ(release(a, "sim0").count(), 0U);
  EXPECT_FALSE(owner("sim0").has_value());
  EXPECT_EQ(drives[0]->opcodes(), (std::vector<std::uint8_t>{0x00, 0x1E, 0x1E}));
  EXPECT_EQ(drives[0]->commands[2][4], 0);  // allow
  EXPECT_EQ(drives[0]->unlocks, 1);
  EXPECT_FALSE(drives[0]->tray_locked);
}

TEST_F(ArbiterTest, AcquireByAnotherClientFailsAtOnceNamingTheOwner) {
  const auto a = client("Burner", 1);
  const auto b = client("Other", 2);
  ASSERT_TRUE(acquire(a, "sim0").ok());
  Answer r;
  arbiter.acquire_exclusive_access(b, "sim0", {}, r.handler());
  ASSERT_TRUE(r.done()) << "answered without waiting on the drive";
  EXPECT_EQ(r.code(), errc::recorder_locked);
  EXPECT_NE(r.result->error().message.find("Burner"), std::string::npos);
  EXPECT_EQ(owner("sim0")->client_name, "Burner");
}

TEST_F(ArbiterTest, ForceNeverStealsALock) {
  const auto a = client("Burner", 1);
  const auto b = client("Other", 2);
  ASSERT_TRUE(acquire(a, "sim0").ok());
  EXPECT_EQ(acquire(b, "sim0", {.force = true}).code(), errc::recorder_locked);
  EXPECT_EQ(owner("sim0")->client_name, "Burner");
}

TEST_F(ArbiterTest, ForceIsPassedToTheOsLockAndRecorded) {
  const auto a = client("Burner");
  ASSERT_TRUE(acquire(a, "sim0", {.force = true}).ok());
  EXPECT_TRUE(drives[0]->os_force);
  EXPECT_TRUE(owner("sim0")->force);
}

TEST_F(ArbiterTest, ReleaseByNonOwnerFailsAndLeavesTheOwnerAlone) {
  const auto a = client("Burner", 1);
  const auto b = client("Other", 2);
  ASSERT_TRUE(acquire(a, "sim0").ok());
  ASSERT_TRUE(acquire(a, "sim0").ok());
  EXPECT_EQ(release(b, "sim0").code(), errc::not_locked);
  EXPECT_EQ(release(b, "sim1").code(), errc::not_locked);
  EXPECT_EQ(owner("sim0")->lock_count, 2U);
}

TEST_F(ArbiterTest, UnknownDriveIsDevNotExist) {
  const auto a = client("Burner");
  EXPECT_EQ(acquire(a, "nope").code(), errc::dev_not_exist);
  EXPECT_EQ(release(a, "nope").code(), errc::dev_not_exist);
  EXPECT_EQ(arbiter.exclusive_access_owner("nope").error().code, errc::dev_not_exist);
}

TEST_F(ArbiterTest, ClientNameIsValidatedAtHello) {
  const SessionId s = arbiter.open_session({}, {});
  for (const std::string& bad :
       std::vector<std::string>{"", "a/b", "tab\there", std::string(64, 'x'), "émile"}) {
    const auto r = arbiter.hello(s, bad, 1);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, errc::recorder_client_name_is_not_valid);
  }
  EXPECT_TRUE(arbiter.hello(s, std::string(63, 'x'), 1).ok());
  EXPECT_EQ(acquire(arbiter.open_session({}, {}), "sim0").code(), errc::hello_required);
}

TEST_F(ArbiterTest, ReleaseHandsTheDriveToTheHeadOfTheQueueThenTheNext) {
  Answer wb, wc;
  const auto [a, b, c] = owner_and_two_waiters(wb, wc);
  scheduler.run();
  ASSERT_FALSE(wb.done());
  ASSERT_TRUE(release(a, "sim0").ok());
  ASSERT_TRUE(wb.ok());
  EXPECT_EQ(wb.count(), 1U);
  EXPECT_FALSE(wc.done());
  EXPECT_EQ(owner("sim0")->client_name, "B");
  EXPECT_EQ(drives[0]->os_owner, "B");
  ASSERT_TRUE(release(b, "sim0").ok());
  ASSERT_TRUE(wc.ok());
  EXPECT_EQ(owner("sim0")->client_name, "C");
  EXPECT_EQ(scheduler.pending_timers(), 0U) << "granted waits cancel their deadline";
}

TEST_F(ArbiterTest, AWaitExpiresWithLockedAtItsDeadline) {
  const auto a = client("A", 1), b = client("B", 2);
  ASSERT_TRUE(acquire(a, "sim0").ok());
  Answer wb;
  arbiter.acquire_exclusive_access(b, "sim0", {.wait = 1000ms}, wb.handler());
  scheduler.advance(999ms);
  EXPECT_FALSE(wb.done());
  scheduler.advance(1ms);
  ASSERT_TRUE(wb.done());
  EXPECT_EQ(wb.code(), errc::recorder_locked);
  EXPECT_NE(wb.result->error().message.find("waited 1000 ms"), std::string::npos);
  EXPECT_EQ(arbiter.status().drives[0].waiters.size(), 0U);
  EXPECT_EQ(audit.count(AuditKind::wait_expired), 1U);
  // The expired waiter is gone: the next release frees the drive.
  ASSERT_TRUE(release(a, "sim0").ok());
  EXPECT_FALSE(owner("sim0").has_value());
}

TEST_F(ArbiterTest, OwnerDisconnectReleasesEverythingAndHandsToTheFirstWaiter) {
  const auto a = client("A", 1), b = client("B", 2);
  ASSERT_TRUE(acquire(a, "sim0").ok());
  ASSERT_TRUE(acquire(a, "sim0").ok());
  Answer wb;
  arbiter.acquire_exclusive_access(b, "sim0", {.wait = 5s}, wb.handler());
  arbiter.close_session(a);
  scheduler.run();
  ASSERT_TRUE(wb.ok());
  EXPECT_EQ(owner("sim0")->client_name, "B");
  EXPECT_EQ(owner("sim0")->lock_count, 1U);
  // ALLOW + unlock for A, then TUR + lock + PREVENT for B.
  EXPECT_EQ(drives[0]->opcodes(), (std::vector<std::uint8_t>{0x00, 0x1E, 0x1E, 0x00, 0x1E}));
  EXPECT_EQ(audit.count(AuditKind::session_ended), 1U);
}

TEST_F(ArbiterTest, SessionEndCleansUpBothItsLocksAndItsWaits) {
  const auto a = client("A", 1), b = client("B", 2);
  ASSERT_TRUE(acquire(a, "sim0").ok());
  ASSERT_TRUE(acquire(b, "sim1").ok());
  Answer wa;
  arbiter.acquire_exclusive_access(a, "sim1", {.wait = 5s}, wa.handler());
  scheduler.run();
  arbiter.close_session(a);
  scheduler.run();
  EXPECT_FALSE(owner("sim0").has_value());
  EXPECT_EQ(arbiter.status().drives[1].waiters.size(), 0U);
  EXPECT_EQ(scheduler.pending_timers(), 0U);
  ASSERT_TRUE(release(b, "sim1").ok());
  EXPECT_FALSE(owner("sim1").has_value()) << "a departed waiter is never granted";
  EXPECT_FALSE(wa.done()) << "nobody is left to answer";
  EXPECT_EQ(arbiter.status().clients.size(), 1U);
}

TEST_F(ArbiterTest, SessionEndingMidAcquireReleasesWhenTheAcquireCompletes) {
  const auto a = client("A", 1);
  Answer r;
  arbiter.acquire_exclusive_access(a, "sim0", {}, r.handler());
  arbiter.close_session(a);  // TUR still in flight
  scheduler.run();
  EXPECT_FALSE(owner("sim0").has_value());
  EXPECT_EQ(drives[0]->unlocks, 1);
  EXPECT_FALSE(drives[0]->tray_locked);
  const auto b = client("B", 2);
  EXPECT_TRUE(acquire(b, "sim0").ok());
}

TEST_F(ArbiterTest, TurTimeoutFailsTheAcquireAndTakesNoLock) {
  drives[0]->script(opcode::test_unit_ready,
                    ScsiResult{errc::recorder_command_timeout, "no answer within 20 s", 0, {}, {}});
  const auto a = client("A");
  const auto r = acquire(a, "sim0");
  EXPECT_EQ(r.code(), errc::recorder_command_timeout);
  EXPECT_FALSE(owner("sim0").has_value());
  EXPECT_TRUE(drives[0]->os_owner.empty());
  EXPECT_EQ(arbiter.status().drives[0].stats.timeouts, 1);
  EXPECT_TRUE(acquire(a, "sim0").ok()) << "the drive is usable once it answers";
}

TEST_F(ArbiterTest, NotReadyIsAnAnswerAndTheLockIsTaken) {
  drives[0]->script(opcode::test_unit_ready,
                    ScsiResult{errc::ok, {}, kStatusCheckCondition, make_sense(2, 0x3A, 0), {}});
  EXPECT_TRUE(acquire(client("A"), "sim0").ok());
}

TEST_F(ArbiterTest, PreventFailureRollsBackTheOsLock) {
  drives[0]->script(opcode::prevent_allow_medium_removal,
                    ScsiResult{errc::ok, {}, kStatusCheckCondition, make_sense(5, 0x24, 0), {}});
  const auto r = acquire(client("A"), "sim0");
  EXPECT_EQ(r.code(), errc::fail);
  EXPECT_NE(r.result->error().message.find("5/24/00"), std::string::npos);
  EXPECT_EQ(drives[0]->unlocks, 1);
  EXPECT_TRUE(drives[0]->os_owner.empty());
  EXPECT_FALSE(owner("sim0").has_value());
}

TEST_F(ArbiterTest, OsLockFailureFailsTheAcquire) {
  drives[0]->os_lock_fails = true;
  EXPECT_EQ(acquire(client("A"), "sim0").code(), errc::access_denied);
  EXPECT_FALSE(owner("sim0").has_value());
}

TEST_F(ArbiterTest, AFailedAcquireOfTheQueueHeadMovesOnToTheNextWaiter) {
  Answer wb, wc;
  const auto [a, b, c] = owner_and_two_waiters(wb, wc);
  drives[0]->script(opcode::test_unit_ready,
                    ScsiResult{errc::recorder_command_timeout, "t", 0, {}, {}});
  const int calls = drives[0]->step_calls;
  ASSERT_TRUE(release(a, "sim0").ok());
  EXPECT_EQ(wb.code(), errc::recorder_command_timeout);
  ASSERT_TRUE(wc.ok());
  EXPECT_EQ(owner("sim0")->client_name, "C");
  // A's release with B's acquire (a hand-off, whose acquire failed), then C's.
  EXPECT_EQ(drives[0]->step_calls, calls + 2);
  EXPECT_EQ(audit.count(AuditKind::acquire_failed), 1U);
}

TEST_F(ArbiterTest, TrayLockOffSkipsPreventAndAllow) {
  FakeScheduler s;
  RecordingAudit au;
  ArbiterConfig config;
  config.tray_lock = false;
  Arbiter arb(s, au, config);
  auto d = std::make_shared<FakeDrive>(s, "x");
  ASSERT_TRUE(arb.add_drive(d).ok());
  s.run();
  d->commands.clear();
  const auto id = arb.open_session({}, {});
  ASSERT_TRUE(arb.hello(id, "A", 1).ok());
  Answer r, rel;
  arb.acquire_exclusive_access(id, "x", {}, r.handler());
  s.run();
  arb.release_exclusive_access(id, "x", rel.handler());
  s.run();
  EXPECT_TRUE(r.ok());
  EXPECT_TRUE(rel.ok());
  EXPECT_EQ(d->opcodes(), (std::vector<std::uint8_t>{0x00}));
}

TEST_F(ArbiterTest, OnlyTheOwnerMayExecuteAndSenseIsNotAnError) {
  const auto a = client("A", 1), b = client("B", 2);
  std::optional<Result<ScsiResult>> got;
  auto capture = [&](Result<ScsiResult> r) { got.emplace(std::move(r)); };
  arbiter.execute(a, "sim0", ScsiCommand{{0x12, 0, 0, 0, 36, 0}, Direction::in, {}, 36, {}}, {},
                  capture);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->error().code, errc::recorder_locked);
  ASSERT_TRUE(acquire(a, "sim0").ok());
  got.reset();
  arbiter.execute(b, "sim0", ScsiCommand{{0x12, 0, 0, 0, 36, 0}, Direction::in, {}, 36, {}}, {},
                  capture);
  EXPECT_EQ(got->error().code, errc::recorder_locked);
  drives[0]->script(0x1B,
                    ScsiResult{errc::ok, {}, kStatusCheckCondition, make_sense(5, 0x53, 2), {}});
  got.reset();
  arbiter.execute(a, "sim0", ScsiCommand{{0x1B, 0, 0, 0, 2, 0}, Direction::none, {}, 0, {}}, {},
                  capture);
  scheduler.run();
  ASSERT_TRUE(got && got->ok());
  EXPECT_EQ((*got)->status, kStatusCheckCondition);
  EXPECT_EQ(proto::describe_sense((*got)->sense), "5/53/02");
  EXPECT_EQ(drives[0]->timeouts.back(), 60s) << "START STOP UNIT's default timeout";
}

TEST_F(ArbiterTest, ExecuteTimeoutsAreClampedAndTransfersBounded) {
  const auto a = client("A");
  ASSERT_TRUE(acquire(a, "sim0").ok());
  std::optional<Result<ScsiResult>> got;
  auto capture = [&](Result<ScsiResult> r) { got.emplace(std::move(r)); };
  arbiter.execute(a, "sim0", ScsiCommand{{0x12, 0, 0, 0, 36, 0}, Direction::in, {}, 36, {}}, 999999,
                  capture);
  scheduler.run();
  EXPECT_EQ(drives[0]->timeouts.back(), 3600s);
  got.reset();
  arbiter.execute(a, "sim0",
                  ScsiCommand{{0x28, 0, 0, 0, 0, 0, 0, 1, 0, 0}, Direction::in, {}, 65537, {}}, {},
                  capture);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->error().code, errc::invalid_arg);
}

TEST_F(ArbiterTest, EachDrivesMaxTransferIsTheLowerOfTheServicesAndItsOwn) {
  // The fake drives' own limit is 64 KiB, the service's 1 MiB; the dispatcher's
  // tests cover a service limit below the drive's.
  for (const auto& d : arbiter.drives())
    EXPECT_EQ(d.max_transfer, 65536U) << d.id;
  for (const auto& d : arbiter.status().drives)
    EXPECT_EQ(d.max_transfer, 65536U) << d.id;
}

TEST_F(ArbiterTest, RequestsPipelinedDuringTheAcquireWaitForIt) {
  const auto a = client("A");
  Answer first, second, rel;
  arbiter.acquire_exclusive_access(a, "sim0", {}, first.handler());
  arbiter.acquire_exclusive_access(a, "sim0", {}, second.handler());
  arbiter.release_exclusive_access(a, "sim0", rel.handler());
  scheduler.run();
  EXPECT_EQ(first.count(), 1U);
  EXPECT_EQ(second.count(), 2U);
  EXPECT_EQ(rel.count(), 1U);
}

TEST_F(ArbiterTest, WaitLimitsAreEnforced) {
  FakeScheduler s;
  RecordingAudit au;
  ArbiterConfig config;
  config.max_waits_per_drive = 1;
  Arbiter arb(s, au, config);
  auto d = std::make_shared<FakeDrive>(s, "x");
  ASSERT_TRUE(arb.add_drive(d).ok());
  std::vector<SessionId> ids;
  for (std::uint32_t i = 0; i < 3; ++i) {
    ids.push_back(arb.open_session({}, {}));
    ASSERT_TRUE(arb.hello(ids.back(), "C" + std::to_string(i), i).ok());
  }
  Answer own, w1, w2;
  arb.acquire_exclusive_access(ids[0], "x", {}, own.handler());
  s.run();
  arb.acquire_exclusive_access(ids[1], "x", {.wait = 5s}, w1.handler());
  arb.acquire_exclusive_access(ids[2], "x", {.wait = 5s}, w2.handler());
  EXPECT_FALSE(w1.done());
  EXPECT_EQ(w2.code(), errc::limit_reached);
}

TEST_F(ArbiterTest, StatusCarriesOwnerIdentityWaitersAndClients) {
  const auto a = client("Burner", 4242);
  ASSERT_TRUE(acquire(a, "sim0").ok());
  ASSERT_TRUE(acquire(a, "sim0").ok());
  Answer w;
  arbiter.acquire_exclusive_access(client("Waiter", 7), "sim0", {.wait = 5s}, w.handler());
  const auto st = arbiter.status();
  const auto& d = st.drives[0];
  EXPECT_EQ(d.id, "sim0");
  EXPECT_EQ(d.state, "owned");
  EXPECT_EQ(d.tray_locked, true);
  EXPECT_EQ(d.owner->client_name, "Burner");
  EXPECT_EQ(d.owner->pid, 4242);
  EXPECT_EQ(d.owner->user, "user4242");
  EXPECT_EQ(d.owner->uid, 4242);
  EXPECT_EQ(d.owner->exe, "/bin/Burner");
  EXPECT_EQ(d.owner->lock_count, 2);
  EXPECT_EQ(d.waiters[0].client_name, "Waiter");
  EXPECT_TRUE(d.waiters[0].deadline.ends_with("Z"));
  EXPECT_EQ(st.drives[1].state, "free");
  EXPECT_TRUE(st.drives[1].owner == std::nullopt);
  EXPECT_EQ(st.clients[0].locks.at("sim0"), 2U);
}

TEST_F(ArbiterTest, StatusNamesWhatKeepsOtherProgramsAway) {
  ASSERT_TRUE(
      arbiter.add_drive(std::make_shared<FakeDrive>(scheduler, "cdrom0", core::OsLock::unsupported))
          .ok());
  ASSERT_TRUE(
      arbiter
          .add_drive(std::make_shared<FakeDrive>(scheduler, "cdrom1", core::OsLock::class_driver))
          .ok());
  ASSERT_TRUE(
      arbiter.add_drive(std::make_shared<FakeDrive>(scheduler, "sr0", core::OsLock::exclusive_open))
          .ok());
  scheduler.run();
  std::vector<std::string> names;
  for (const auto& d : arbiter.status().drives)
    names.push_back(d.id + "=" + d.os_lock);
  EXPECT_EQ(names,
            (std::vector<std::string>{"sim0=simulated", "sim1=simulated", "cdrom0=unsupported",
                                      "cdrom1=class_driver", "sr0=exclusive_open"}));
}

TEST_F(ArbiterTest, EveryDecisionIsAudited) {
  const auto a = client("A", 1);
  ASSERT_TRUE(acquire(a, "sim0").ok());
  ASSERT_TRUE(acquire(a, "sim0").ok());
  ASSERT_TRUE(release(a, "sim0").ok());
  ASSERT_TRUE(release(a, "sim0").ok());
  EXPECT_EQ(audit.count(AuditKind::acquired), 1U);
  EXPECT_EQ(audit.count(AuditKind::nested), 1U);
  EXPECT_EQ(audit.count(AuditKind::released), 1U);
  EXPECT_EQ(audit.count(AuditKind::freed), 1U);
  EXPECT_EQ(audit.records.back().client_name, "A");
}

TEST_F(ArbiterTest, SubscribersHearOfAcquiresAndReleases) {
  std::vector<std::string> events;
  const auto watcher = arbiter.open_session(
      {}, [&](const proto::Event& e) { events.push_back(std::string(proto::event_name(e))); });
  ASSERT_TRUE(arbiter.hello(watcher, "Watcher", 9).ok());
  arbiter.subscribe(watcher);
  const auto a = client("A");
  ASSERT_TRUE(acquire(a, "sim0").ok());
  arbiter.close_session(a);
  scheduler.run();
  EXPECT_EQ(events, (std::vector<std::string>{"acquired", "released"}));
}

TEST_F(ArbiterTest, TheReleasedEventSaysWhyTheLockEnded) {
  std::vector<std::string> causes;
  const auto watcher = arbiter.open_session({}, [&](const proto::Event& e) {
    if (proto::event_name(e) == "released")
      causes.push_back(std::get<proto::Released>(e).cause);
  });
  ASSERT_TRUE(arbiter.hello(watcher, "Watcher", 9).ok());
  arbiter.subscribe(watcher);
  const auto a = client("A", 1);
  ASSERT_TRUE(acquire(a, "sim0").ok());
  ASSERT_TRUE(release(a, "sim0").ok());
  ASSERT_TRUE(acquire(a, "sim0").ok());
  arbiter.close_session(a);
  scheduler.run();
  const auto b = client("B", 2);
  ASSERT_TRUE(acquire(b, "sim0").ok());
  PeerIdentity root{3, "root", 0, {}, "/bin/discarb"};
  root.administrator = true;
  const auto admin = arbiter.open_session(root, {});
  ASSERT_TRUE(arbiter.hello(admin, "Admin", 3).ok());
  bool broke = false;
  arbiter.break_exclusive_access(admin, "sim0", [&](auto r) { broke = r.ok(); });
  scheduler.run();
  EXPECT_TRUE(broke);
  EXPECT_EQ(causes, (std::vector<std::string>{"released", "session_ended", "broken"}));
}

TEST_F(ArbiterTest, BreakIsForAdministratorsOnlyAndChangesNothingOtherwise) {
  const auto owner_session = client("Burner", 1), user = client("User", 2);
  ASSERT_TRUE(acquire(owner_session, "sim0").ok());
  std::optional<Result<proto::OwnerInfo>> got;
  arbiter.break_exclusive_access(user, "sim0", [&](auto r) { got.emplace(std::move(r)); });
  scheduler.run();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->error().code, errc::access_denied);
  EXPECT_NE(got->error().message.find("user2"), std::string::npos) << got->error().message;
  EXPECT_EQ(owner("sim0")->client_name, "Burner");
  EXPECT_EQ(acquire(owner_session, "sim0").count(), 2U) << "the owner's lock is untouched";
}

TEST_F(ArbiterTest, BreakEndsTheLockTellsTheOwnerAndHandsTheDriveOn) {
  std::vector<proto::Event> heard;
  const auto burner = arbiter.open_session(PeerIdentity{1, "alice", 1000, {}, "/bin/burn"},
                                           [&](const proto::Event& e) { heard.push_back(e); });
  ASSERT_TRUE(arbiter.hello(burner, "Burner", 1).ok());
  PeerIdentity root{2, "root", 0, {}, "/bin/discarb"};
  root.administrator = true;
  const auto admin = arbiter.open_session(root, {});
  ASSERT_TRUE(arbiter.hello(admin, "Admin", 2).ok());
  const auto waiter = client("Waiter", 3);
  ASSERT_EQ(acquire(burner, "sim0").count(), 1U);
  ASSERT_EQ(acquire(burner, "sim0").count(), 2U);
  Answer waited;
  arbiter.acquire_exclusive_access(waiter, "sim0", {false, 10s}, waited.handler());
  drives[0]->commands.clear();

  std::optional<Result<proto::OwnerInfo>> got;
  arbiter.break_exclusive_access(admin, "sim0", [&](auto r) { got.emplace(std::move(r)); });
  scheduler.run();
  ASSERT_TRUE(got && got->ok());
  EXPECT_EQ((*got)->client_name, "Burner");
  EXPECT_EQ((*got)->lock_count, 2U);
  // ALLOW for the broken lock, then TUR and PREVENT for the waiter.
  EXPECT_EQ(drives[0]->opcodes(), (std::vector<std::uint8_t>{0x1E, 0x00, 0x1E}));
  ASSERT_TRUE(waited.ok()) << "the head of the queue is granted";
  EXPECT_EQ(owner("sim0")->client_name, "Waiter");
  ASSERT_FALSE(heard.empty());
  EXPECT_EQ(proto::event_name(heard[0]), "lock_broken");
  EXPECT_EQ(std::get<proto::LockBroken>(heard[0]).by.user, "root");
  EXPECT_EQ(audit.count(AuditKind::broken), 1U);

  // The owner's next request on the drive is told; the one after is ordinary.
  const auto next = release(burner, "sim0");
  EXPECT_EQ(next.code(), errc::recorder_locked);
  EXPECT_NE(next.result->error().message.find("broken by administrator 'Admin'"), std::string::npos)
      << next.result->error().message;
  EXPECT_EQ(release(burner, "sim0").code(), errc::not_locked);
}

TEST_F(ArbiterTest, BreakingAFreeDriveIsNotLocked) {
  PeerIdentity root{2, "root", 0, {}, {}};
  root.administrator = true;
  const auto admin = arbiter.open_session(root, {});
  ASSERT_TRUE(arbiter.hello(admin, "Admin", 2).ok());
  std::optional<Result<proto::OwnerInfo>> got;
  arbiter.break_exclusive_access(admin, "sim0", [&](auto r) { got.emplace(std::move(r)); });
  ASSERT_TRUE(got);
  EXPECT_EQ(got->error().code, errc::not_locked);
  EXPECT_TRUE(drives[0]->commands.empty());
}

TEST_F(ArbiterTest, ASessionHoldsSomethingWhileItOwnsWaitsOrSubscribed) {
  const auto a = client("A", 1), b = client("B", 2), c = client("C", 3);
  EXPECT_FALSE(arbiter.holds_anything(a));
  ASSERT_TRUE(acquire(a, "sim0").ok());
  EXPECT_TRUE(arbiter.holds_anything(a));
  Answer waited;
  arbiter.acquire_exclusive_access(b, "sim0", {false, 10s}, waited.handler());
  EXPECT_TRUE(arbiter.holds_anything(b));
  EXPECT_FALSE(arbiter.holds_anything(c));
  arbiter.subscribe(c);
  EXPECT_TRUE(arbiter.holds_anything(c));
  ASSERT_EQ(release(a, "sim0").count(), 0U);
  EXPECT_FALSE(arbiter.holds_anything(a));
}

TEST_F(ArbiterTest, ARemovedDriveFailsLaterRequestsWithDevNotExist) {
  drives[0]->script(opcode::test_unit_ready, ScsiResult{errc::dev_not_exist, "gone", 0, {}, {}});
  const auto a = client("A");
  EXPECT_EQ(acquire(a, "sim0").code(), errc::dev_not_exist);
  EXPECT_EQ(acquire(a, "sim0").code(), errc::dev_not_exist);
  EXPECT_EQ(arbiter.status().drives[0].state, "removed");
}

TEST_F(ArbiterTest, ABackendThatOverrunsFailsItsCallerAtTimeoutPlusGraceAndMarksTheDriveError) {
  const auto a = client("A");
  ASSERT_TRUE(acquire(a, "sim0").ok());
  drives[0]->stuck.insert(opcode::read10);
  std::optional<Result<ScsiResult>> got;
  arbiter.execute(
      a, "sim0",
      ScsiCommand{{opcode::read10, 0, 0, 0, 0, 0, 0, 0, 1, 0}, Direction::in, {}, 2048, 5s}, 5,
      [&](Result<ScsiResult> r) { got.emplace(std::move(r)); });
  scheduler.advance(6s);  // past the 5 s timeout, within the 2 s grace
  EXPECT_FALSE(got.has_value());
  scheduler.advance(2s);
  ASSERT_TRUE(got.has_value());
  ASSERT_FALSE(got->ok());
  EXPECT_EQ(got->error().code, errc::recorder_command_timeout);
  const auto drive = arbiter.status().drives[0];
  EXPECT_EQ(drive.state, "error");
  EXPECT_EQ(drive.lock_state, "owned");
  EXPECT_NE(drive.error.value().find("0x28"), std::string::npos);
  EXPECT_EQ(drive.stats.timeouts, 1);
  // The other drive and its clients never noticed.
  const auto b = client("B", 200);
  EXPECT_TRUE(acquire(b, "sim1").ok());
  EXPECT_EQ(arbiter.status().drives[1].state, "owned");
  // The late answer is dropped: the caller was answered once.
  drives[0]->stuck_handlers.front()(ScsiResult{});
  scheduler.run();
  // start-up ALLOW and PERSISTENT ALLOW, TUR and PREVENT (acquire), READ;
  // not the late answer again
  EXPECT_EQ(arbiter.status().drives[0].stats.commands, 5);
}

TEST_F(ArbiterTest, OnlyAnAnsweredTestUnitReadyTakesTheDriveOutOfError) {
  drives[0]->script(opcode::test_unit_ready,
                    ScsiResult::failed(errc::recorder_command_timeout, "scripted timeout"));
  const auto a = client("A");
  EXPECT_EQ(acquire(a, "sim0").code(), errc::recorder_command_timeout);
  EXPECT_EQ(arbiter.status().drives[0].state, "error");
  EXPECT_EQ(audit.count(AuditKind::drive_recovered), 0U);
  // NOT READY is an answer: the drive works, it just has no disc.
  drives[0]->script(opcode::test_unit_ready,
                    ScsiResult{errc::ok, {}, kStatusCheckCondition, make_sense(2, 0x3A, 0), {}});
  EXPECT_TRUE(acquire(a, "sim0").ok());
  const auto drive = arbiter.status().drives[0];
  EXPECT_EQ(drive.state, "owned");
  EXPECT_FALSE(drive.error.has_value());
  EXPECT_EQ(audit.count(AuditKind::drive_recovered), 1U);
}

TEST_F(ArbiterTest, ARemovedDriveEndsItsLockFailsItsWaitersAndComesBackFree) {
  std::vector<proto::Event> events;
  const auto a = arbiter.open_session(PeerIdentity{100, "u", 100, {}, ""},
                                      [&](const proto::Event& e) { events.push_back(e); });
  ASSERT_TRUE(arbiter.hello(a, "Owner", 100).ok());
  arbiter.subscribe(a);
  const auto b = client("Waiter", 200);
  ASSERT_TRUE(acquire(a, "sim0").ok());
  Answer waiting;
  arbiter.acquire_exclusive_access(b, "sim0", {.wait = 60s}, waiting.handler());
  scheduler.run();
  ASSERT_FALSE(waiting.done());

  arbiter.remove_drive("sim0", "/dev/sr0 was removed");
  EXPECT_EQ(waiting.code(), errc::dev_not_exist);
  auto drive = arbiter.status().drives[0];
  EXPECT_EQ(drive.state, "removed");
  EXPECT_TRUE(drive.owner == std::nullopt);
  EXPECT_TRUE(std::ranges::any_of(
      events, [](const auto& e) { return proto::event_name(e) == "drive_removed"; }));
  EXPECT_EQ(release(a, "sim0").code(), errc::dev_not_exist);
  EXPECT_EQ(acquire(b, "sim0").code(), errc::dev_not_exist);

  // The same id again (hot-plug): attached on the new channel, free, ALLOW
  // and PERSISTENT ALLOW sent.
  auto again = std::make_shared<FakeDrive>(scheduler, "sim0");
  ASSERT_TRUE(arbiter.add_drive(again).ok());
  scheduler.run();
  EXPECT_EQ(again->opcodes(), (std::vector<std::uint8_t>{opcode::prevent_allow_medium_removal,
                                                         opcode::prevent_allow_medium_removal}));
  EXPECT_EQ(arbiter.status().drives[0].state, "free");
  EXPECT_EQ(arbiter.status().drives.size(), 2U);
  EXPECT_TRUE(acquire(b, "sim0").ok());
  // A second drive under a live id is refused.
  EXPECT_EQ(arbiter.add_drive(std::make_shared<FakeDrive>(scheduler, "sim1")).error().code,
            errc::invalid_arg);
}

// ---- bounds: what a session can make the arbiter hold (issue 11, finding 3) ----

/// A FakeDrive that also counts cancel_queued() (FakeDrive runs every call at
/// once, so it never holds one unstarted).
class CancelCountingChannel final : public DriveChannel {
 public:
  explicit CancelCountingChannel(std::shared_ptr<FakeDrive> inner) : inner_(std::move(inner)) {}
  const DriveDescription& description() const override { return inner_->description(); }
  void async_execute(ScsiCommand c, ExecuteHandler h) override {
    inner_->async_execute(std::move(c), std::move(h));
  }
  void async_os_lock(std::string name, bool force, LockHandler h) override {
    inner_->async_os_lock(std::move(name), force, std::move(h));
  }
  void async_os_unlock(LockHandler h) override { inner_->async_os_unlock(std::move(h)); }
  void cancel_queued(const Error& why) override { cancelled.push_back(why); }

  std::vector<Error> cancelled;

 private:
  std::shared_ptr<FakeDrive> inner_;
};

/// An arbiter with its own limits and one drive, for the bounds.
class ArbiterBoundsTest : public ::testing::Test {
 protected:
  using Reply = std::shared_ptr<std::optional<Result<ScsiResult>>>;

  void start(ArbiterConfig config) {
    arbiter = std::make_unique<Arbiter>(scheduler, audit, config);
    drive = std::make_shared<FakeDrive>(scheduler, "sim0");
    channel = std::make_shared<CancelCountingChannel>(drive);
    ASSERT_TRUE(arbiter->add_drive(channel).ok());
    scheduler.run();
    drive->commands.clear();  // forget the start-up ALLOW
  }

  SessionId client(const std::string& name, std::uint32_t pid = 100, bool admin = false) {
    PeerIdentity peer{pid, "user" + std::to_string(pid), pid, {}, "/bin/" + name};
    peer.administrator = admin;
    const SessionId s = arbiter->open_session(std::move(peer), {});
    EXPECT_TRUE(arbiter->hello(s, name, pid).ok());
    return s;
  }

  SessionId owner() {
    const SessionId s = client("Owner");
    Answer a;
    arbiter->acquire_exclusive_access(s, "sim0", {}, a.handler());
    scheduler.run();
    EXPECT_TRUE(a.ok());
    drive->commands.clear();  // forget TUR and PREVENT
    return s;
  }

  static ScsiCommand read(std::uint32_t bytes = 2048) {
    return {{opcode::read10, 0, 0, 0, 0, 0, 0, 0, 1, 0}, Direction::in, {}, bytes, {}};
  }
  static ScsiCommand write(std::size_t bytes = 2048) {
    return {{0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0}, Direction::out, proto::Bytes(bytes, 0xA5), 0, {}};
  }

  Reply exec(SessionId s, ScsiCommand c, std::optional<std::uint32_t> timeout_s = {}) {
    auto reply = std::make_shared<std::optional<Result<ScsiResult>>>();
    arbiter->execute(s, "sim0", std::move(c), timeout_s,
                     [reply](Result<ScsiResult> r) { reply->emplace(std::move(r)); });
    scheduler.run();
    return reply;
  }

  /// The owner's READ the drive sits on until answer_stuck().
  Reply stuck_read(SessionId s, std::uint32_t bytes = 2048, std::uint32_t timeout_s = 30) {
    drive->stuck.insert(opcode::read10);
    return exec(s, read(bytes), timeout_s);
  }
  void answer_stuck() {
    auto h = std::move(drive->stuck_handlers.front());
    drive->stuck_handlers.erase(drive->stuck_handlers.begin());
    h(ScsiResult{});
    scheduler.run();
  }

  static void expect_limit(const Reply& reply, std::string_view key_and_value) {
    ASSERT_TRUE(reply->has_value());
    ASSERT_FALSE((*reply)->ok());
    EXPECT_EQ((*reply)->error().code, errc::limit_reached);
    EXPECT_NE((*reply)->error().message.find(key_and_value), std::string::npos)
        << (*reply)->error().message;
  }

  FakeScheduler scheduler;
  RecordingAudit audit;
  std::unique_ptr<Arbiter> arbiter;
  std::shared_ptr<FakeDrive> drive;
  std::shared_ptr<CancelCountingChannel> channel;
};

TEST_F(ArbiterBoundsTest, CommandsBeyondThePerSessionLimitAreRefusedAndNothingChanges) {
  ArbiterConfig c;
  c.max_commands_per_session = 3;
  start(c);
  const auto s = owner();
  const auto slow = stuck_read(s);
  const auto w1 = exec(s, write());
  const auto w2 = exec(s, write());
  const auto before = arbiter->status();
  const auto refused = exec(s, write());
  expect_limit(refused, "limits.max_commands_per_session = 3");
  EXPECT_EQ(arbiter->status(), before);
  EXPECT_EQ(drive->opcodes(), std::vector<std::uint8_t>{opcode::read10});  // one at a time
  // The held ones run in order once the drive is free, and make room again.
  answer_stuck();
  ASSERT_TRUE(w1->has_value() && w2->has_value());
  EXPECT_TRUE((*w1)->ok() && (*w2)->ok());
  EXPECT_EQ(drive->opcodes(), (std::vector<std::uint8_t>{opcode::read10, 0x2A, 0x2A}));
  const auto again = exec(s, write());
  ASSERT_TRUE(again->has_value());
  EXPECT_TRUE((*again)->ok());
  // A final release keeps the owner's own earlier commands: nothing cancelled.
  Answer released;
  arbiter->release_exclusive_access(s, "sim0", released.handler());
  scheduler.run();
  EXPECT_TRUE(released.ok());
  EXPECT_TRUE(channel->cancelled.empty());
}

TEST_F(ArbiterBoundsTest, CommandsBeyondThePerDriveLimitAreRefusedAndNothingChanges) {
  ArbiterConfig c;
  c.max_commands_per_drive = 2;
  start(c);
  const auto s = owner();
  const auto slow = stuck_read(s);
  const auto w1 = exec(s, write());
  const auto before = arbiter->status();
  expect_limit(exec(s, write()), "limits.max_commands_per_drive = 2");
  EXPECT_EQ(arbiter->status(), before);
  EXPECT_FALSE(w1->has_value());
  answer_stuck();
  EXPECT_TRUE(w1->has_value() && (*w1)->ok());
}

TEST_F(ArbiterBoundsTest, PayloadBytesBeyondThePerSessionLimitAreRefusedAndNothingChanges) {
  ArbiterConfig c;
  c.max_transfer_bytes = 65536;
  c.max_payload_bytes_per_session = 3 * 65536;
  start(c);
  const auto s = owner();
  const auto slow = stuck_read(s, 65536);  // data-in counts: the buffer it will fill
  const auto w1 = exec(s, write(65536));
  const auto w2 = exec(s, write(65536));
  const auto before = arbiter->status();
  expect_limit(exec(s, write(2048)), "limits.max_payload_bytes_per_session = 196608");
  expect_limit(exec(s, read(2048)), "limits.max_payload_bytes_per_session = 196608");
  EXPECT_EQ(arbiter->status(), before);
  // A command without data holds no payload.
  const auto tur =
      exec(s, ScsiCommand{{opcode::test_unit_ready, 0, 0, 0, 0, 0}, Direction::none, {}, 0, {}});
  EXPECT_FALSE(tur->has_value());
  answer_stuck();
  EXPECT_TRUE(w1->has_value() && w2->has_value() && tur->has_value());
  const auto again = exec(s, write(65536));
  EXPECT_TRUE(again->has_value() && (*again)->ok());
}

TEST_F(ArbiterBoundsTest, RequestsDeferredBeyondThePerSessionLimitAreRefusedAndNothingChanges) {
  ArbiterConfig c;
  c.max_deferred_per_session = 2;
  start(c);
  const auto a = owner();
  const auto slow = stuck_read(a);
  // A's release waits for the READ: the drive is RELEASING meanwhile.
  Answer released;
  arbiter->release_exclusive_access(a, "sim0", released.handler());
  scheduler.run();
  ASSERT_EQ(arbiter->status().drives[0].lock_state, "releasing");
  const auto b = client("Eager", 200);
  Answer first, second, third;
  arbiter->acquire_exclusive_access(b, "sim0", {}, first.handler());
  arbiter->acquire_exclusive_access(b, "sim0", {}, second.handler());
  const auto before = arbiter->status();
  arbiter->acquire_exclusive_access(b, "sim0", {}, third.handler());
  scheduler.run();
  ASSERT_TRUE(third.done());
  EXPECT_EQ(third.code(), errc::limit_reached);
  EXPECT_NE(third.result->error().message.find("limits.max_deferred_per_session = 2"),
            std::string::npos);
  EXPECT_FALSE(first.done());
  EXPECT_FALSE(second.done());
  EXPECT_EQ(arbiter->status(), before);
  // The deferred two run when the release ends, in order.
  answer_stuck();
  ASSERT_TRUE(released.ok());
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first.count(), 1U);
  EXPECT_EQ(second.count(), 2U);
  // Their slots are free again.
  Answer more;
  arbiter->acquire_exclusive_access(b, "sim0", {}, more.handler());
  scheduler.run();
  EXPECT_EQ(more.count(), 3U);
}

TEST_F(ArbiterBoundsTest, ADepartedSessionsQueuedCommandsNeverReachTheDrive) {
  start(ArbiterConfig{});
  const auto s = owner();
  const auto slow = stuck_read(s);
  std::vector<Reply> writes;
  for (int i = 0; i < 5; ++i)
    writes.push_back(exec(s, write()));
  arbiter->close_session(s);
  // Dropped at once, before the release's ALLOW is even queued; and what the
  // backend might hold unstarted (after a watchdog answer) is cancelled too.
  for (const auto& w : writes) {
    ASSERT_TRUE(w->has_value());
    EXPECT_FALSE((*w)->ok());
  }
  ASSERT_EQ(channel->cancelled.size(), 1U);
  EXPECT_EQ(drive->opcodes(), std::vector<std::uint8_t>{opcode::read10});
  EXPECT_EQ(audit.count(AuditKind::freed), 0U);
  answer_stuck();  // the READ the drive had started ends; then ALLOW and the OS unlock
  ASSERT_EQ(audit.count(AuditKind::freed), 1U);
  EXPECT_EQ(drive->opcodes(),
            (std::vector<std::uint8_t>{opcode::read10, opcode::prevent_allow_medium_removal}));
  EXPECT_EQ(drive->unlocks, 1);
  EXPECT_EQ(arbiter->status().drives[0].lock_state, "free");
}

TEST_F(ArbiterBoundsTest, ABrokenOwnersQueuedCommandsNeverReachTheDrive) {
  start(ArbiterConfig{});
  const auto s = owner();
  const auto slow = stuck_read(s);
  const auto w = exec(s, write());
  const auto admin = client("Admin", 0, true);
  bool broke = false;
  arbiter->break_exclusive_access(admin, "sim0", [&](auto r) { broke = r.ok(); });
  scheduler.run();
  ASSERT_TRUE(w->has_value());
  EXPECT_EQ((*w)->error().code, errc::recorder_locked);
  ASSERT_EQ(channel->cancelled.size(), 1U);
  EXPECT_EQ(channel->cancelled[0].code, errc::recorder_locked);
  answer_stuck();
  EXPECT_TRUE(broke);
  EXPECT_EQ(drive->opcodes(),
            (std::vector<std::uint8_t>{opcode::read10, opcode::prevent_allow_medium_removal}));
}

TEST_F(ArbiterBoundsTest,
       AnOwnerWhoseDroppedCommandsAnswerEndsItsSessionDuringABreakIsReleasedOnce) {
  // The broken owner's queued WRITE is answered (dropped) while the break
  // starts the release; its handler ends the owner's session on the spot.
  start(ArbiterConfig{});
  const auto s = owner();
  const auto waiter = client("Waiter", 7);
  const auto slow = stuck_read(s);
  int dropped = 0;
  arbiter->execute(s, "sim0", write(), {}, [&](Result<ScsiResult>) {
    ++dropped;
    arbiter->close_session(s);
  });
  scheduler.run();
  Answer waited;
  arbiter->acquire_exclusive_access(waiter, "sim0", {false, 60s}, waited.handler());
  const auto admin = client("Admin", 0, true);
  int replies = 0;
  arbiter->break_exclusive_access(admin, "sim0", [&](auto) { ++replies; });
  scheduler.run();
  EXPECT_EQ(dropped, 1);
  answer_stuck();
  EXPECT_EQ(replies, 1);
  EXPECT_EQ(audit.count(AuditKind::freed), 1U) << "one release, not one per ending";
  EXPECT_EQ(drive->unlocks, 1) << "a second OS unlock could end the next owner's lock";
  ASSERT_TRUE(waited.ok());
  EXPECT_EQ(arbiter->exclusive_access_owner("sim0").value()->client_name, "Waiter");
}

TEST_F(ArbiterBoundsTest, AnOwnerWhoseDroppedCommandsAnswerEndsItsSessionOnRemovalSendsNothing) {
  // The owner's queued WRITE is answered (dropped) when its drive goes; its
  // handler ends the owner's session on the spot.
  start(ArbiterConfig{});
  const auto s = owner();
  const auto slow = stuck_read(s);
  int dropped = 0;
  arbiter->execute(s, "sim0", write(), {}, [&](Result<ScsiResult> r) {
    ++dropped;
    EXPECT_EQ(r.error().code, errc::dev_not_exist);
    arbiter->close_session(s);
  });
  scheduler.run();
  arbiter->remove_drive("sim0", "unplugged");
  scheduler.run();
  EXPECT_EQ(dropped, 1);
  answer_stuck();
  EXPECT_EQ(drive->opcodes(), std::vector<std::uint8_t>{opcode::read10})
      << "the lock ended with the drive, before the answer";
  EXPECT_EQ(drive->unlocks, 0);
  EXPECT_EQ(audit.count(AuditKind::session_ended), 0U);
  EXPECT_EQ(audit.count(AuditKind::freed), 1U);
  EXPECT_EQ(arbiter->status().drives[0].lock_state, "free");
}

TEST_F(ArbiterBoundsTest,
       AnOwnerWhoseDroppedCommandsAnswerEndsItsSessionOnItsFinalReleaseIsReleasedOnce) {
  // Behind an overrunning backend the final release drops the owner's queued
  // WRITE; its handler ends the owner's session on the spot.
  start(ArbiterConfig{});
  const auto s = owner();
  drive->stuck.insert(0x2A);
  const auto slow = stuck_read(s, 2048, 30);
  const auto w1 = exec(s, write(), 5);
  int dropped = 0;
  arbiter->execute(s, "sim0", write(), 5, [&](Result<ScsiResult>) {
    ++dropped;
    arbiter->close_session(s);
  });
  scheduler.advance(41s);  // the READ and w1 are answered for; the backend holds both
  ASSERT_TRUE(w1->has_value());
  int releases = 0;
  arbiter->release_exclusive_access(s, "sim0", [&](Result<std::uint32_t> r) {
    ++releases;
    EXPECT_EQ(r.value(), 0U);
  });
  scheduler.run();
  EXPECT_EQ(dropped, 1);
  EXPECT_EQ(releases, 1);
  EXPECT_EQ(audit.count(AuditKind::freed), 1U) << "one release, not one per ending";
  EXPECT_EQ(audit.count(AuditKind::session_ended), 0U);
  EXPECT_EQ(drive->unlocks, 1);
  EXPECT_EQ(arbiter->status().drives[0].lock_state, "free");
}

TEST_F(ArbiterBoundsTest, TheWatchdogCountsFromWhenTheDriveStartsTheCommand) {
  start(ArbiterConfig{});
  const auto s = owner();
  const auto slow = stuck_read(s, 2048, 30);  // the drive works on it for a long time
  const auto w = exec(s, write(), 5);         // 5 s, but only once the drive has it
  scheduler.advance(20s);                     // far past the WRITE's 5 s + 2 s grace
  EXPECT_FALSE(w->has_value());
  EXPECT_EQ(drive->opcodes(), std::vector<std::uint8_t>{opcode::read10});
  auto d = arbiter->status().drives[0];
  EXPECT_EQ(d.state, "owned");
  EXPECT_EQ(d.stats.timeouts, 0);
  answer_stuck();
  ASSERT_TRUE(w->has_value());
  EXPECT_TRUE((*w)->ok());
  d = arbiter->status().drives[0];
  EXPECT_EQ(d.state, "owned");
  EXPECT_EQ(d.stats.timeouts, 0);
}

TEST_F(ArbiterBoundsTest, AfterAGenuineOverrunTheNextCommandIsHandedOn) {
  start(ArbiterConfig{});
  const auto s = owner();
  const auto slow = stuck_read(s, 2048, 30);
  const auto w = exec(s, write(), 5);
  scheduler.advance(33s);  // the READ's 30 s + 2 s grace: it is answered for
  ASSERT_TRUE(slow->has_value());
  EXPECT_EQ((*slow)->error().code, errc::recorder_command_timeout);
  ASSERT_TRUE(w->has_value());  // handed on and answered
  EXPECT_TRUE((*w)->ok());
  const auto d = arbiter->status().drives[0];
  EXPECT_EQ(d.state, "error");
  EXPECT_EQ(d.stats.timeouts, 1);  // the READ's only
}

TEST_F(ArbiterBoundsTest, CommandsHandedToAnOverrunningBackendCountUntilItReturnsThem) {
  ArbiterConfig c;
  c.max_transfer_bytes = 65536;
  c.max_commands_per_session = 4;
  c.max_payload_bytes_per_session = 4 * 65536;
  start(c);
  const auto s = owner();
  drive->stuck.insert(0x2A);  // the drive sits on every WRITE too
  const auto slow = stuck_read(s, 65536, 30);
  const auto w1 = exec(s, write(65536), 5);
  const auto w2 = exec(s, write(65536), 5);
  const auto w3 = exec(s, write(65536), 5);
  scheduler.advance(33s);  // the READ is answered for; w1 is handed on (the one more)
  ASSERT_TRUE(slow->has_value());
  EXPECT_EQ((*slow)->error().code, errc::recorder_command_timeout);
  scheduler.advance(8s);  // w1 is answered for too; the backend still holds both
  ASSERT_TRUE(w1->has_value());
  EXPECT_EQ((*w1)->error().code, errc::recorder_command_timeout);
  EXPECT_FALSE(w2->has_value());
  EXPECT_FALSE(w3->has_value());
  // Nothing more reaches the stuck backend, however long it stays stuck.
  scheduler.advance(600s);
  EXPECT_EQ(drive->opcodes(), (std::vector<std::uint8_t>{opcode::read10, 0x2A}));
  EXPECT_EQ(drive->stuck_handlers.size(), 2U);
  // All four still count: their callers have answers, but the service (and
  // the drive) still hold them.
  expect_limit(exec(s, write(2048)), "limits.max_commands_per_session = 4");
  EXPECT_EQ(drive->opcodes(), (std::vector<std::uint8_t>{opcode::read10, 0x2A}));
  // The backend returns the READ: one slot frees, w2 goes to the backend.
  answer_stuck();
  EXPECT_EQ(drive->opcodes(), (std::vector<std::uint8_t>{opcode::read10, 0x2A, 0x2A}));
  const auto w4 = exec(s, write(65536), 5);
  EXPECT_FALSE(w4->has_value());  // accepted and queued, not refused
  expect_limit(exec(s, write(2048)), "limits.max_commands_per_session = 4");
  // The backend catches up: everything runs in order and the counts go.
  drive->stuck.clear();
  answer_stuck();  // w1
  answer_stuck();  // w2
  ASSERT_TRUE(w2->has_value() && w3->has_value() && w4->has_value());
  EXPECT_TRUE((*w3)->ok() && (*w4)->ok());
  EXPECT_EQ(drive->opcodes(), (std::vector<std::uint8_t>{opcode::read10, 0x2A, 0x2A, 0x2A, 0x2A}));
  const auto again = exec(s, write(65536));
  ASSERT_TRUE(again->has_value());
  EXPECT_TRUE((*again)->ok());
}

/// A backend like DriveWorker: one job at a time, in order; the job at the
/// head runs at once unless its opcode is slow, when it waits for finish().
/// Records each job the backend runs with how many `freed` audit records
/// there were then, and takes back unstarted jobs on cancel_queued.
class SerialChannel final : public DriveChannel {
 public:
  SerialChannel(FakeScheduler& scheduler, const RecordingAudit& audit)
      : scheduler_(scheduler), audit_(audit) {
    description_.id = "sim0";
    description_.path = "fake:sim0";
    description_.backend = "simulated";
    description_.max_transfer_bytes = 65536;
  }
  const DriveDescription& description() const override { return description_; }
  void async_execute(ScsiCommand c, ExecuteHandler h) override {
    const std::uint8_t op = c.opcode();
    jobs_.push_back(
        Job{op, [this, h] { post(h, ScsiResult{}); },
            [this, h](const Error& why) { post(h, ScsiResult::not_sent(why.code, why.message)); }});
    pump();
  }
  void async_os_lock(std::string, bool, LockHandler h) override {
    jobs_.push_back(Job{kOsLock, [this, h] { post(h, Result<Done>(Done{})); },
                        [this, h](const Error& why) { post(h, Result<Done>(why)); }});
    pump();
  }
  void async_os_unlock(LockHandler h) override {
    jobs_.push_back(Job{kOsUnlock, [this, h] { post(h, Result<Done>(Done{})); },
                        [this, h](const Error& why) { post(h, Result<Done>(why)); }});
    pump();
  }
  void cancel_queued(const Error& why) override {
    // N.B. the head has started (the backend is stuck on it); the rest has not.
    while (jobs_.size() > 1) {
      auto job = std::move(jobs_.back());
      jobs_.pop_back();
      cancelled.push_back(job.op);
      job.cancel(why);
    }
  }
  /// The backend returns the slow job it is stuck on, and runs on.
  void finish() {
    ASSERT_FALSE(jobs_.empty());
    run_head();
    pump();
  }

  static constexpr std::uint8_t kOsLock = 0xF0, kOsUnlock = 0xF1;
  std::set<std::uint8_t> slow;
  struct Ran {
    std::uint8_t op;
    std::size_t freed_before;
  };
  std::vector<Ran> ran;                 // every job the backend ran, in order
  std::vector<std::uint8_t> cancelled;  // taken back unstarted

 private:
  struct Job {
    std::uint8_t op;
    std::function<void()> complete;
    std::function<void(const Error&)> cancel;
  };
  template <typename H, typename R>
  void post(H h, R r) {
    scheduler_.post([h, r] { h(r); });
  }
  void run_head() {
    auto job = std::move(jobs_.front());
    jobs_.pop_front();
    ran.push_back(Ran{job.op, audit_.count(AuditKind::freed)});
    job.complete();
  }
  void pump() {
    while (!jobs_.empty() && !slow.contains(jobs_.front().op))
      run_head();
  }

  FakeScheduler& scheduler_;
  const RecordingAudit& audit_;
  DriveDescription description_;
  std::deque<Job> jobs_;
};

/// A drive on a SerialChannel, acquired by one owner: where each overrun
/// test starts.
class ArbiterOverrunTest : public ::testing::Test {
 protected:
  SessionId acquired_owner(const std::string& exe) {
    EXPECT_TRUE(arbiter.add_drive(channel).ok());
    scheduler.run();
    const SessionId s = arbiter.open_session(PeerIdentity{100, "u", 100, {}, exe}, {});
    EXPECT_TRUE(arbiter.hello(s, "Owner", 100).ok());
    std::optional<Result<std::uint32_t>> acquired;
    arbiter.acquire_exclusive_access(s, "sim0", {}, [&](auto r) { acquired.emplace(r); });
    scheduler.run();
    EXPECT_TRUE(acquired && acquired->ok());
    return s;
  }

  FakeScheduler scheduler;
  RecordingAudit audit;
  Arbiter arbiter{scheduler, audit, ArbiterConfig{}};
  std::shared_ptr<SerialChannel> channel = std::make_shared<SerialChannel>(scheduler, audit);
};

TEST_F(ArbiterOverrunTest, AfterAnOverrunAndAFinalReleaseNothingOfTheOwnerRunsAfterFreed) {
  const SessionId s = acquired_owner("/bin/owner");
  ASSERT_FALSE(HasFailure());
  // The owner sends a READ the drive works on far past its timeout, then
  // pipelines WRITEs.
  channel->slow.insert(opcode::read10);
  std::vector<std::optional<Result<ScsiResult>>> replies(5);
  auto exec = [&](ScsiCommand c, std::uint32_t timeout_s, std::size_t slot) {
    arbiter.execute(s, "sim0", std::move(c), timeout_s,
                    [&replies, slot](Result<ScsiResult> r) { replies[slot].emplace(r); });
  };
  exec({{opcode::read10, 0, 0, 0, 0, 0, 0, 0, 1, 0}, Direction::in, {}, 2048, {}}, 30, 0);
  for (std::size_t i = 1; i < replies.size(); ++i)
    exec({{0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0}, Direction::out, proto::Bytes(2048, 0xA5), 0, {}}, 5,
         i);
  scheduler.advance(120s);  // the READ and the one WRITE handed after it are answered for
  ASSERT_TRUE(replies[0] && replies[1]);
  EXPECT_EQ(replies[0]->error().code, errc::recorder_command_timeout);
  EXPECT_EQ(replies[1]->error().code, errc::recorder_command_timeout);
  // A normal final release, then the owner disconnects.
  std::optional<Result<std::uint32_t>> released;
  arbiter.release_exclusive_access(s, "sim0", [&](auto r) { released.emplace(r); });
  scheduler.advance(120s);
  arbiter.close_session(s);
  scheduler.advance(120s);
  // The WRITE the backend held unstarted was taken back at the release.
  EXPECT_EQ(channel->cancelled, std::vector<std::uint8_t>{0x2A});
  // The drive finally returns the READ; everything else runs, in order.
  channel->finish();
  scheduler.advance(120s);
  ASSERT_TRUE(released.has_value());
  ASSERT_EQ(audit.count(AuditKind::freed), 1U);
  for (const auto& r : replies)
    EXPECT_TRUE(r.has_value());
  std::vector<std::uint8_t> ops;
  for (const auto& ran : channel->ran) {
    ops.push_back(ran.op);
    // N.B. the READ is exempt: the drive started it long before the release
    // (the fake records a job when it returns). No WRITE may run at all.
    EXPECT_NE(ran.op, 0x2A) << "a WRITE ran; it was handed after the overrun";
  }
  // Start-up PERSISTENT ALLOW and ALLOW, TUR, OS lock, PREVENT; the READ;
  // the release's ALLOW and unlock, handed to the stuck backend so that
  // their watchdogs run (the release ends when they answer for it). The
  // WRITE the backend held was cancelled at the release, and those still in
  // the arbiter's queue were dropped there.
  EXPECT_EQ(ops, (std::vector<std::uint8_t>{
                     opcode::prevent_allow_medium_removal, opcode::prevent_allow_medium_removal,
                     opcode::test_unit_ready, SerialChannel::kOsLock,
                     opcode::prevent_allow_medium_removal, opcode::read10,
                     opcode::prevent_allow_medium_removal, SerialChannel::kOsUnlock}));
  // The last record is the drive's freeing; the backend is idle.
  EXPECT_EQ(audit.records.back().kind, AuditKind::freed);
}

TEST_F(ArbiterOverrunTest, AnAcquireBehindAStuckBackendIsAnsweredWithTheTimeout) {
  // DESIGN.md: a drive that does not answer TEST UNIT READY in time fails the
  // acquire with E_IMAPI_RECORDER_COMMAND_TIMEOUT. The arbiter's own calls
  // go to a stuck backend (at most one client call waits there) so that
  // their watchdogs run: nothing waits unanswered.
  const SessionId owner = acquired_owner("/bin/a");
  ASSERT_FALSE(HasFailure());
  channel->slow.insert(opcode::read10);
  channel->slow.insert(0x2A);
  int answered = 0;
  arbiter.execute(owner, "sim0",
                  {{opcode::read10, 0, 0, 0, 0, 0, 0, 0, 1, 0}, Direction::in, {}, 2048, {}}, 5,
                  [&](Result<ScsiResult>) { ++answered; });
  arbiter.execute(owner, "sim0",
                  {{0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0}, Direction::out, proto::Bytes(2048, 0), 0, {}},
                  5, [&](Result<ScsiResult>) { ++answered; });
  scheduler.advance(60s);  // both handed to the backend, both answered for by the watchdog
  ASSERT_EQ(answered, 2);
  std::optional<Result<std::uint32_t>> released;
  arbiter.release_exclusive_access(owner, "sim0", [&](auto r) { released.emplace(r); });
  scheduler.advance(120s);
  ASSERT_TRUE(released.has_value()) << "a release behind a stuck backend must end";
  arbiter.close_session(owner);

  const SessionId next = arbiter.open_session(PeerIdentity{101, "v", 101, {}, "/bin/b"}, {});
  ASSERT_TRUE(arbiter.hello(next, "Next", 101).ok());
  std::optional<Result<std::uint32_t>> second;
  arbiter.acquire_exclusive_access(next, "sim0", {}, [&](auto r) { second.emplace(r); });
  scheduler.advance(120s);
  ASSERT_TRUE(second.has_value()) << "the acquire was never answered";
  ASSERT_FALSE(second->ok());
  EXPECT_EQ(second->error().code, errc::recorder_command_timeout) << second->error().message;
  EXPECT_EQ(arbiter.status().drives[0].owner, std::nullopt);
}

// ---- re-entry: sinks and handlers that end sessions (issue 11, finding 1) ----
//
// A transport may end a session from inside its event sink or a reply
// handler (the service once closed a session whose outbox overflowed inside
// the send); the arbiter must survive any sink that does, whoever's session
// it ends.

/// Subscribers whose sinks record what they hear and may run an action on an
/// event; their ids are known only after open_session, hence the indirection.
struct Subscribers {
  struct One {
    SessionId id = 0;
    std::vector<std::string> heard;
    std::function<void(const proto::Event&)> on_event;
  };
  std::deque<One> all;  // N.B. a deque: sinks keep pointers to their One

  One& add(Arbiter& arbiter, const std::string& name, std::uint32_t pid, bool subscribe = true) {
    One& one = all.emplace_back();
    one.id =
        arbiter.open_session(PeerIdentity{pid, "user" + std::to_string(pid), pid, {}, "/bin/watch"},
                             [one = &one](const proto::Event& e) {
                               // N.B. copies kept on the stack: the action may destroy this sink.
                               const std::string event(proto::event_name(e));
                               one->heard.push_back(event);
                               if (auto action = one->on_event)
                                 action(e);
                             });
    EXPECT_TRUE(arbiter.hello(one.id, name, pid).ok());
    if (subscribe)
      arbiter.subscribe(one.id);
    return one;
  }
};

int count_allows(const FakeDrive& drive) {
  return static_cast<int>(std::ranges::count_if(drive.commands, [](const proto::Bytes& c) {
    return c.size() > 4 && c[0] == opcode::prevent_allow_medium_removal && (c[4] & 1) == 0;
  }));
}

TEST_F(ArbiterTest, AnEventSinkThatEndsItsOwnSessionDuringAFanOutHarmsNoOtherSubscriber) {
  Subscribers subs;
  for (std::uint32_t i = 0; i < 5; ++i)
    subs.add(arbiter, "Watcher" + std::to_string(i), 10 + i);
  // The middle one and the last one end their own sessions at the first event.
  for (const std::size_t quitter : {std::size_t{2}, std::size_t{4}}) {
    auto& one = subs.all[quitter];
    one.on_event = [this, &one](const proto::Event&) {
      one.on_event = nullptr;
      arbiter.close_session(one.id);
    };
  }
  const auto a = client("A", 1);
  ASSERT_TRUE(acquire(a, "sim0").ok());
  ASSERT_TRUE(release(a, "sim0").ok());
  for (const std::size_t i : std::initializer_list<std::size_t>{0, 1, 3}) {
    EXPECT_EQ(subs.all[i].heard, (std::vector<std::string>{"acquired", "released"})) << i;
  }
  for (const std::size_t i : std::initializer_list<std::size_t>{2, 4}) {
    EXPECT_EQ(subs.all[i].heard, std::vector<std::string>{"acquired"}) << i;
  }
  EXPECT_EQ(arbiter.status().clients.size(), 4U) << "three watchers and A";
}

TEST_F(ArbiterTest, AnEventSinkThatEndsAnotherSessionDuringAFanOutSkipsIt) {
  Subscribers subs;
  for (std::uint32_t i = 0; i < 4; ++i)
    subs.add(arbiter, "Watcher" + std::to_string(i), 10 + i);
  // The first ends the third (not yet told) and the second (already told).
  subs.all[0].on_event = [this, &subs](const proto::Event&) {
    subs.all[0].on_event = nullptr;
    arbiter.close_session(subs.all[2].id);
    arbiter.close_session(subs.all[1].id);
  };
  const auto a = client("A", 1);
  ASSERT_TRUE(acquire(a, "sim0").ok());
  ASSERT_TRUE(release(a, "sim0").ok());
  EXPECT_EQ(subs.all[0].heard, (std::vector<std::string>{"acquired", "released"}));
  EXPECT_TRUE(subs.all[1].heard.empty()) << "ended before its turn";
  EXPECT_TRUE(subs.all[2].heard.empty()) << "ended before its turn";
  EXPECT_EQ(subs.all[3].heard, (std::vector<std::string>{"acquired", "released"}));
}

TEST_F(ArbiterTest, AnOwnerWhoseSinkEndsItsSessionOnItsOwnGrantIsReleasedOnce) {
  Subscribers subs;
  auto& owner_sub = subs.add(arbiter, "Burner", 1);
  subs.add(arbiter, "Watcher", 2);
  owner_sub.on_event = [this, &owner_sub](const proto::Event& e) {
    if (proto::event_name(e) == "acquired")
      arbiter.close_session(owner_sub.id);
  };
  const auto r = acquire(owner_sub.id, "sim0");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.count(), 1U) << "the count as granted, not as the cleanup left it";
  EXPECT_EQ(count_allows(*drives[0]), 1);
  EXPECT_EQ(drives[0]->unlocks, 1);
  EXPECT_FALSE(owner("sim0").has_value());
  EXPECT_EQ(subs.all[1].heard, (std::vector<std::string>{"acquired", "released"}));
}

/// An administrator breaks the lock of an owner whose sink ends the owner's
/// session on hearing "lock_broken": told directly (not subscribed) or
/// through the fan-out (subscribed).
class BreakReentryTest : public ArbiterTest, public ::testing::WithParamInterface<bool> {};

TEST_P(BreakReentryTest, AnOwnerWhoseSinkEndsItsSessionDuringABreakIsReleasedExactlyOnce) {
  const bool subscribed = GetParam();
  Subscribers subs;
  auto& burner = subs.add(arbiter, "Burner", 1, subscribed);
  auto& watcher = subs.add(arbiter, "Watcher", 2);
  burner.on_event = [this, &burner](const proto::Event& e) {
    if (proto::event_name(e) == "lock_broken")
      arbiter.close_session(burner.id);
  };
  PeerIdentity root{3, "root", 0, {}, "/bin/discarb"};
  root.administrator = true;
  const auto admin = arbiter.open_session(root, {});
  ASSERT_TRUE(arbiter.hello(admin, "Admin", 3).ok());
  ASSERT_EQ(acquire(burner.id, "sim0").count(), 1U);
  ASSERT_EQ(acquire(burner.id, "sim0").count(), 2U);
  const auto waiter = client("Waiter", 4);
  Answer waited;
  arbiter.acquire_exclusive_access(waiter, "sim0", {false, 10s}, waited.handler());
  drives[0]->commands.clear();
  const int unlocks_before = drives[0]->unlocks;

  int replies = 0;
  std::optional<Result<proto::OwnerInfo>> got;
  arbiter.break_exclusive_access(admin, "sim0", [&](auto r) {
    ++replies;
    got.emplace(std::move(r));
  });
  scheduler.run();
  EXPECT_EQ(burner.heard.back(), "lock_broken");
  EXPECT_EQ(arbiter.status().clients.size(), 3U) << "the owner's session ended";
  EXPECT_EQ(count_allows(*drives[0]), 1) << "one release, not one per ending";
  EXPECT_EQ(drives[0]->unlocks - unlocks_before, 1);
  EXPECT_EQ(replies, 1);
  ASSERT_TRUE(got && got->ok());
  EXPECT_EQ((*got)->client_name, "Burner");
  EXPECT_EQ((*got)->lock_count, 2U);
  EXPECT_EQ(std::ranges::count(watcher.heard, "released"), 1);
  EXPECT_EQ(audit.count(AuditKind::freed), 1U) << "freed once";
  // The drive went free once and passed to the head of the queue.
  ASSERT_TRUE(waited.ok());
  EXPECT_EQ(owner("sim0")->client_name, "Waiter");
  ASSERT_TRUE(release(waiter, "sim0").ok());
  EXPECT_FALSE(owner("sim0").has_value());
  EXPECT_EQ(arbiter.status().drives[0].lock_state, "free");
}

INSTANTIATE_TEST_SUITE_P(OwnerTold, BreakReentryTest, ::testing::Values(false, true),
                         [](const auto& p) { return p.param ? "Subscribed" : "Directly"; });

TEST_F(ArbiterTest, ASinkThatEndsTheOwnerOnDriveRemovedSendsNothingToTheRemovedDrive) {
  Subscribers subs;
  auto& burner = subs.add(arbiter, "Burner", 1);
  burner.on_event = [this, &burner](const proto::Event& e) {
    if (proto::event_name(e) == "drive_removed")
      arbiter.close_session(burner.id);
  };
  ASSERT_TRUE(acquire(burner.id, "sim0").ok());
  drives[0]->commands.clear();
  arbiter.remove_drive("sim0", "unplugged");
  scheduler.run();
  EXPECT_TRUE(drives[0]->commands.empty()) << "the lock ended with the drive, before the sink ran";
  EXPECT_EQ(arbiter.status().drives[0].lock_state, "free");
  EXPECT_EQ(audit.count(AuditKind::session_ended), 0U);
}

TEST_F(ArbiterTest, AWaitersAnswerThatEndsTheOwnerOnDriveRemovedSendsNothingToTheRemovedDrive) {
  const auto owner_session = client("Owner", 1), waiter = client("Waiter", 2);
  ASSERT_TRUE(acquire(owner_session, "sim0").ok());
  std::optional<errc> answer;
  arbiter.acquire_exclusive_access(waiter, "sim0", {false, 10s}, [&](Result<std::uint32_t> r) {
    answer = r.ok() ? errc::ok : r.error().code;
    arbiter.close_session(owner_session);
  });
  drives[0]->commands.clear();
  arbiter.remove_drive("sim0", "unplugged");
  scheduler.run();
  EXPECT_EQ(answer, errc::dev_not_exist);
  EXPECT_TRUE(drives[0]->commands.empty()) << "the lock ended with the drive, before any answer";
  EXPECT_EQ(arbiter.status().drives[0].lock_state, "free");
}

TEST_F(ArbiterTest, ReplyHandlersThatEndTheirOwnSessionsLeaveTheArbiterConsistent) {
  // An expired wait, a direct grant, grants from the queue: each handler ends
  // its own session on the spot.
  const auto owner_session = client("Owner", 1);
  ASSERT_TRUE(acquire(owner_session, "sim0").ok());
  std::vector<SessionId> waiters;
  for (std::uint32_t i = 0; i < 3; ++i)
    waiters.push_back(client("Waiter" + std::to_string(i), 10 + i));
  int answers = 0;
  auto ends_itself = [&](SessionId s) {
    return [&, s](Result<std::uint32_t>) {
      ++answers;
      arbiter.close_session(s);
    };
  };
  arbiter.acquire_exclusive_access(waiters[2], "sim0", {false, 1s}, ends_itself(waiters[2]));
  scheduler.advance(2s);
  EXPECT_EQ(answers, 1) << "the wait expired";
  arbiter.acquire_exclusive_access(waiters[0], "sim0", {false, 10s}, ends_itself(waiters[0]));
  arbiter.acquire_exclusive_access(waiters[1], "sim0", {false, 10s}, ends_itself(waiters[1]));
  // The owner's grant of sim1 ends the owner, so sim0 passes to waiter 0,
  // whose grant ends it, and on to waiter 1.
  arbiter.acquire_exclusive_access(owner_session, "sim1", {}, ends_itself(owner_session));
  scheduler.run();
  EXPECT_EQ(answers, 4);
  for (const char* id : {"sim0", "sim1"})
    EXPECT_FALSE(owner(id).has_value()) << id;
  EXPECT_EQ(count_allows(*drives[0]), 3);
  EXPECT_EQ(count_allows(*drives[1]), 1);
  EXPECT_TRUE(arbiter.status().clients.empty());
}

// ---- a drive removed while it is being acquired (issue 12, item 8) ----------

/// Where the acquire is when the drive goes: its TEST UNIT READY, its OS
/// lock or its PREVENT MEDIUM REMOVAL in flight.
enum class AcquireStep { tur, os_lock, prevent };

class RemovedMidAcquireTest : public ArbiterTest,
                              public ::testing::WithParamInterface<AcquireStep> {};

TEST_P(RemovedMidAcquireTest, TheAcquirerHearsDevNotExistAndNothingIsLeftHeld) {
  FakeDrive& drive = *drives[0];
  if (GetParam() == AcquireStep::os_lock)
    drive.stuck.insert(opcode::test_unit_ready);
  if (GetParam() == AcquireStep::prevent)
    drive.stuck.insert(opcode::prevent_allow_medium_removal);
  const auto a = client("A", 1);
  Answer r;
  arbiter.acquire_exclusive_access(a, "sim0", {}, r.handler());
  if (GetParam() != AcquireStep::tur)
    scheduler.run();
  if (GetParam() == AcquireStep::os_lock) {
    ASSERT_EQ(drive.stuck_handlers.size(), 1U);
    drive.stuck_handlers[0](ScsiResult{});  // TUR answered: the OS lock goes out
  }
  arbiter.remove_drive("sim0", "unplugged");
  if (GetParam() == AcquireStep::prevent) {
    ASSERT_EQ(drive.stuck_handlers.size(), 1U);
    drive.stuck.clear();                    // the ALLOW that undoes it is answered
    drive.stuck_handlers[0](ScsiResult{});  // PREVENT answered after the removal
  }
  scheduler.run();

  ASSERT_TRUE(r.done());
  EXPECT_EQ(r.code(), errc::dev_not_exist);
  EXPECT_FALSE(owner("sim0").has_value());
  EXPECT_FALSE(arbiter.holds_anything(a));
  const auto status = arbiter.status().drives[0];
  EXPECT_EQ(status.state, "removed");
  EXPECT_EQ(status.lock_state, "free");
  EXPECT_EQ(status.tray_locked, false);
  EXPECT_EQ(audit.count(AuditKind::acquire_failed), 1U);
  EXPECT_TRUE(drive.os_owner.empty()) << "the abandoned steps undid their OS lock";
  EXPECT_FALSE(drive.tray_locked) << "and their PREVENT";
  bool all_free = false;
  arbiter.when_all_free([&] { all_free = true; });
  EXPECT_TRUE(all_free);

  // The drive comes back free, for anyone.
  ASSERT_TRUE(arbiter.add_drive(std::make_shared<FakeDrive>(scheduler, "sim0")).ok());
  scheduler.run();
  EXPECT_TRUE(acquire(client("B", 2), "sim0").ok());
}

INSTANTIATE_TEST_SUITE_P(Steps, RemovedMidAcquireTest,
                         ::testing::Values(AcquireStep::tur, AcquireStep::os_lock,
                                           AcquireStep::prevent));

TEST_F(ArbiterTest, AnAcquireInFlightWhenItsDriveWentFailsEvenIfTheDriveIsBackWhenItEnds) {
  drives[0]->stuck.insert(opcode::test_unit_ready);
  const auto a = client("A", 1);
  Answer r;
  arbiter.acquire_exclusive_access(a, "sim0", {}, r.handler());
  scheduler.run();
  arbiter.remove_drive("sim0", "unplugged");
  auto again = std::make_shared<FakeDrive>(scheduler, "sim0");
  ASSERT_TRUE(arbiter.add_drive(again).ok());
  scheduler.run();
  ASSERT_EQ(drives[0]->stuck_handlers.size(), 1U);
  drives[0]->stuck_handlers[0](ScsiResult{});  // the old channel's TUR answers at last
  scheduler.run();

  EXPECT_EQ(r.code(), errc::dev_not_exist);
  EXPECT_FALSE(owner("sim0").has_value());
  EXPECT_TRUE(again->os_owner.empty());
  EXPECT_EQ(again->opcodes(), (std::vector<std::uint8_t>{opcode::prevent_allow_medium_removal,
                                                         opcode::prevent_allow_medium_removal}))
      << "only the start-up ALLOWs";
  EXPECT_TRUE(acquire(client("B", 2), "sim0").ok());
}

// ---- the late acquire return and the hand-off as one call (issue 15) ---------

TEST_F(ArbiterTest, AnAcquireThatKeptTheLockBeforeItsWatchdogFiredIsAnsweredByItsReturn) {
  // The drive ran every step in time; its answer is posted but the strand
  // hears it only after the watchdog's deadline. The watchdog must not
  // answer (and drop the return): the OS lock and the PREVENT would stay
  // held for nobody.
  drives[0]->steps_at_once = true;
  drives[0]->hold_returns = true;
  const auto a = client("A", 1);
  Answer r;
  arbiter.acquire_exclusive_access(a, "sim0", {}, r.handler());
  scheduler.run();
  ASSERT_EQ(drives[0]->held_returns.size(), 1U);
  scheduler.advance(10min);
  drives[0]->return_held();
  scheduler.run();
  ASSERT_TRUE(r.done());
  EXPECT_TRUE(r.ok()) << "the drive's own answer decides";
  ASSERT_TRUE(owner("sim0").has_value());
  EXPECT_EQ(owner("sim0")->client_name, "A");
  EXPECT_EQ(drives[0]->os_owner, "A");
  EXPECT_TRUE(drives[0]->tray_locked);
  EXPECT_EQ(audit.count(AuditKind::command_timeout), 0U);
  drives[0]->hold_returns = false;
  ASSERT_TRUE(release(a, "sim0").ok());
  EXPECT_EQ(drives[0]->os_owner, "");
  EXPECT_FALSE(drives[0]->tray_locked);
}

TEST_F(ArbiterTest, AHandOffIsOneCallToTheDriveWithTheRecordsAndEventsOfTwo) {
  std::vector<std::string> order;
  const auto watcher = arbiter.open_session({}, [&](const proto::Event& e) {
    order.push_back("event:" + std::string(proto::event_name(e)));
  });
  ASSERT_TRUE(arbiter.hello(watcher, "Watcher", 9).ok());
  arbiter.subscribe(watcher);
  const auto a = client("A", 1), b = client("B", 2);
  ASSERT_TRUE(acquire(a, "sim0").ok());
  bool b_granted = false;
  arbiter.acquire_exclusive_access(b, "sim0", {.wait = 5s}, [&](Result<std::uint32_t> r) {
    b_granted = r.ok() && r.value() == 1U;
    order.push_back("B granted");
  });
  drives[0]->commands.clear();
  const int calls = drives[0]->step_calls;
  arbiter.release_exclusive_access(a, "sim0", [&](Result<std::uint32_t> r) {
    EXPECT_EQ(r.value(), 0U);
    order.push_back("A released");
  });
  scheduler.run();
  EXPECT_EQ(drives[0]->step_calls, calls + 1) << "the release and B's acquire: one call";
  // ALLOW, (OS unlock), TUR, (OS lock), PREVENT.
  EXPECT_EQ(drives[0]->opcodes(), (std::vector<std::uint8_t>{0x1E, 0x00, 0x1E}));
  EXPECT_EQ(drives[0]->commands[0][4], 0);
  EXPECT_EQ(drives[0]->commands[2][4], 1);
  EXPECT_TRUE(b_granted);
  EXPECT_EQ(owner("sim0")->client_name, "B");
  EXPECT_EQ(drives[0]->os_owner, "B");
  EXPECT_TRUE(drives[0]->tray_locked);
  EXPECT_EQ(order, (std::vector<std::string>{"event:acquired", "event:released", "A released",
                                             "event:granted", "B granted"}));
  std::vector<std::pair<AuditKind, SessionId>> records;
  for (const auto& rec : audit.records)
    records.emplace_back(rec.kind, rec.session);
  EXPECT_EQ(records, (std::vector<std::pair<AuditKind, SessionId>>{{AuditKind::drive_arrived, 0},
                                                                   {AuditKind::drive_arrived, 0},
                                                                   {AuditKind::acquired, a},
                                                                   {AuditKind::waiting, b},
                                                                   {AuditKind::freed, a},
                                                                   {AuditKind::acquired, b}}));
  EXPECT_EQ(audit.records.back().detail, "granted from the queue");
  EXPECT_EQ(audit.records.back().client_name, "B");
  EXPECT_EQ(scheduler.pending_timers(), 0U) << "the granted wait's deadline is cancelled";
}

TEST_F(ArbiterTest, AWaiterThatLeavesBeforeItsHandOffBeginsIsSkippedAndTheNextGranted) {
  Answer wb, wc;
  const auto [a, b, c] = owner_and_two_waiters(wb, wc);
  drives[0]->commands.clear();
  Answer ra;
  arbiter.release_exclusive_access(a, "sim0", ra.handler());  // the ALLOW is under way
  arbiter.close_session(b);
  scheduler.run();
  EXPECT_TRUE(ra.ok());
  EXPECT_FALSE(wb.done());
  ASSERT_TRUE(wc.ok());
  EXPECT_EQ(owner("sim0")->client_name, "C");
  EXPECT_EQ(drives[0]->os_owner, "C");
  // A's ALLOW, then C's TUR and PREVENT: nothing of B reached the drive.
  EXPECT_EQ(drives[0]->opcodes(), (std::vector<std::uint8_t>{0x1E, 0x00, 0x1E}));
  EXPECT_EQ(audit.count(AuditKind::wait_dropped), 1U);
  EXPECT_EQ(audit.count(AuditKind::session_ended), 0U);
}

TEST_F(ArbiterTest, AWaiterThatLeavesAfterItsHandOffKeptTheLockHasItEndedAtOnce) {
  const auto a = client("A", 1), b = client("B", 2), c = client("C", 3);
  ASSERT_TRUE(acquire_holding_returns(a).ok());
  Answer wb, wc;
  arbiter.acquire_exclusive_access(b, "sim0", {.wait = 5s}, wb.handler());
  arbiter.acquire_exclusive_access(c, "sim0", {.wait = 5s}, wc.handler());
  Answer released;
  arbiter.release_exclusive_access(a, "sim0", released.handler());
  ASSERT_EQ(drives[0]->held_returns.size(), 1U);
  EXPECT_EQ(drives[0]->os_owner, "B") << "the hand-off ran whole on the drive";
  arbiter.close_session(b);  // too late to stop it: its answer is on its way
  drives[0]->return_held();
  scheduler.run();
  EXPECT_TRUE(released.ok());
  EXPECT_FALSE(wb.done());
  ASSERT_EQ(drives[0]->held_returns.size(), 1U) << "B's lock ends, handing off to C";
  EXPECT_EQ(drives[0]->os_owner, "C");
  drives[0]->return_held();
  scheduler.run();
  ASSERT_TRUE(wc.ok());
  EXPECT_EQ(owner("sim0")->client_name, "C");
  EXPECT_TRUE(drives[0]->tray_locked);
  EXPECT_EQ(audit.count(AuditKind::wait_dropped), 1U);
  ASSERT_EQ(audit.count(AuditKind::session_ended), 1U);
  const auto ended = std::ranges::find(audit.records, AuditKind::session_ended, &AuditRecord::kind);
  EXPECT_EQ(ended->session, b);
  EXPECT_EQ(ended->client_name, "B");
  EXPECT_EQ(ended->detail, "session ended while acquiring");
  EXPECT_EQ(audit.count(AuditKind::freed), 2U) << "A's lock, then B's";
}

TEST_F(ArbiterTest, AWaitThatEndsAfterItsHandOffKeptTheLockIsGranted) {
  const auto a = client("A", 1), b = client("B", 2);
  ASSERT_TRUE(acquire_holding_returns(a).ok());
  Answer wb;
  arbiter.acquire_exclusive_access(b, "sim0", {.wait = 1s}, wb.handler());
  Answer released;
  arbiter.release_exclusive_access(a, "sim0", released.handler());
  scheduler.advance(2s);  // the drive holds the lock for B already
  EXPECT_FALSE(wb.done());
  drives[0]->return_held();
  scheduler.run();
  ASSERT_TRUE(wb.ok());
  EXPECT_EQ(owner("sim0")->client_name, "B");
  EXPECT_EQ(audit.count(AuditKind::wait_expired), 0U);
}

TEST_F(ArbiterTest, AWaitThatEndsBeforeItsHandOffBeginsExpiresAndNothingOfItRuns) {
  Answer wb, released;
  release_stuck_on_its_allow(1s, wb, released);
  scheduler.advance(1s);
  ASSERT_TRUE(wb.done());
  EXPECT_EQ(wb.code(), errc::recorder_locked);
  drives[0]->stuck.clear();
  auto allow = std::move(drives[0]->stuck_handlers.at(0));
  drives[0]->stuck_handlers.clear();
  allow(ScsiResult{});
  scheduler.run();
  EXPECT_TRUE(released.ok());
  EXPECT_FALSE(owner("sim0").has_value());
  EXPECT_EQ(drives[0]->os_owner, "");
  EXPECT_EQ(drives[0]->opcodes(), std::vector<std::uint8_t>{0x1E}) << "A's ALLOW only";
}

TEST_F(ArbiterTest, AHandOffWhoseReleaseOverrunsHandsTheWaiterAnAcquireOfItsOwn) {
  Answer wb, released;
  release_stuck_on_its_allow(10h, wb, released);
  scheduler.run();
  ASSERT_EQ(drives[0]->stuck_handlers.size(), 1U) << "A's ALLOW sits in the drive";
  drives[0]->stuck.clear();
  const int calls = drives[0]->step_calls;
  scheduler.advance(1h);  // the watchdog answers the hand-off; B's part never began
  ASSERT_TRUE(released.ok());
  EXPECT_GE(audit.count(AuditKind::drive_error), 1U) << "the ALLOW's timeout is audited";
  EXPECT_EQ(drives[0]->step_calls, calls + 1) << "B's acquire, as a call of its own";
  ASSERT_TRUE(wb.ok());
  EXPECT_EQ(owner("sim0")->client_name, "B");
}

}  // namespace
}  // namespace discarbiter::core
