#include "host/config.hpp"

#include <gtest/gtest.h>

namespace discarbiter::host {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

std::string error_of(const json& j) {
  auto r = parse_config(j);
  EXPECT_FALSE(r.ok()) << j.dump();
  return r.ok() ? std::string() : r.error().message;
}

TEST(Config, AnEmptyDocumentGivesTheDefaults) {
  const auto c = parse_config(json::object()).value();
  EXPECT_TRUE(c.arbiter.tray_lock);
  EXPECT_EQ(c.arbiter.timeouts.default_timeout, 10s);
  EXPECT_EQ(c.listener.max_sessions, 256U);
  EXPECT_EQ(c.listener.session.handshake, 2000ms);
  EXPECT_EQ(c.listener.session.frames.max_payload_bytes, 1024U * 1024U);
  EXPECT_TRUE(c.discover);
  EXPECT_TRUE(c.drive_paths.empty());
  EXPECT_EQ(c.arbiter.watchdog_grace, 2s);
}

TEST(Config, EveryKeyIsRead) {
  const auto c = parse_config(json::parse(R"({
    "endpoint": "/tmp/x.sock", "socket_mode": "0666", "socket_group": "cdrom",
    "admin_group": "wheel", "simulate": 3, "log_level": "debug",
    "tray_lock": false, "drives": {"discover": false, "paths": ["/dev/sr1", "/dev/sg4"]},
    "timeouts": {"default_s": 5, "max_s": 600, "watchdog_grace_s": 7,
                 "opcodes": {"0x12": 2, "42": 300}},
    "limits": {"max_sessions": 10, "max_sessions_per_user": 2, "handshake_ms": 500,
               "max_waits_per_session": 3, "max_waits_per_drive": 4, "max_json_bytes": 4096,
               "max_transfer_bytes": 65536, "max_outbox_bytes": 100000},
    "simulated_faults": {"sim1": {"delay_ms": {"0x12": 5000}, "hang": ["0x28"], "removed": true}}
  })"))
                     .value();
  EXPECT_EQ(c.endpoint, "/tmp/x.sock");
  EXPECT_EQ(c.listener.socket_mode, 0666U);
  EXPECT_EQ(c.listener.socket_group, "cdrom");
  EXPECT_EQ(c.listener.admin_group, "wheel");
  EXPECT_EQ(c.simulate, 3U);
  EXPECT_FALSE(c.arbiter.tray_lock);
  EXPECT_FALSE(c.discover);
  EXPECT_EQ(c.drive_paths, (std::vector<std::string>{"/dev/sr1", "/dev/sg4"}));
  EXPECT_EQ(c.arbiter.watchdog_grace, 7s);
  EXPECT_EQ(c.arbiter.timeouts.timeout_for(0x12), 2s);
  EXPECT_EQ(c.arbiter.timeouts.timeout_for(0x2A), 300s);
  EXPECT_EQ(c.arbiter.timeouts.max_timeout, 600s);
  EXPECT_EQ(c.listener.max_sessions_per_user, 2U);
  EXPECT_EQ(c.listener.session.handshake, 500ms);
  EXPECT_EQ(c.arbiter.max_waits_per_drive, 4U);
  EXPECT_EQ(c.listener.session.frames.max_json_bytes, 4096U);
  EXPECT_EQ(c.listener.session.frames.max_payload_bytes, 65536U);
  const auto& f = c.simulated_faults.at("sim1");
  EXPECT_EQ(f.delay.at(0x12), 5000ms);
  EXPECT_TRUE(f.hang.contains(0x28));
  EXPECT_TRUE(f.removed);
  EXPECT_TRUE(check_simulated_faults(c).ok());
}

TEST(Config, UnknownKeysAreNamedWithTheirPath) {
  EXPECT_NE(error_of({{"trayLock", true}}).find("trayLock is not a known key"), std::string::npos);
  EXPECT_NE(error_of({{"limits", {{"max_session", 1}}}}).find("limits.max_session"),
            std::string::npos);
  EXPECT_NE(error_of({{"simulated_faults", {{"sim0", {{"delay", 1}}}}}})
                .find("simulated_faults.sim0.delay"),
            std::string::npos);
}

TEST(Config, IllTypedKeysAreNamed) {
  EXPECT_NE(error_of({{"tray_lock", "yes"}}).find("tray_lock must be true or false"),
            std::string::npos);
  EXPECT_NE(error_of({{"simulate", -1}}).find("simulate must be an unsigned integer"),
            std::string::npos);
  EXPECT_NE(error_of({{"limits", {{"max_sessions", 5000000000ULL}}}}).find("limits.max_sessions"),
            std::string::npos);
  EXPECT_NE(error_of({{"timeouts", {{"opcodes", {{"0x100", 1}}}}}}).find("timeouts.opcodes.0x100"),
            std::string::npos);
  EXPECT_NE(error_of({{"drives", {{"paths", "/dev/sr0"}}}}).find("drives.paths must be an array"),
            std::string::npos);
  EXPECT_NE(error_of({{"drives", {{"discover", 1}}}}).find("drives.discover must be true or false"),
            std::string::npos);
  EXPECT_NE(error_of({{"socket_mode", "rw-rw----"}}).find("socket_mode"), std::string::npos);
  EXPECT_NE(error_of(json::array()).find("must be an object"), std::string::npos);
}

TEST(Config, LoggingKeysAreReadAndTheQueueIsBounded) {
  const auto defaults = parse_config(json::object()).value();
  EXPECT_EQ(defaults.log_queue, 8192U);
  EXPECT_EQ(defaults.warnings.burst, 20U);
  EXPECT_EQ(defaults.warnings.per_minute, 30U);
  const auto c = parse_config(json::parse(
                                  R"({"logging": {"queue": 64, "warning_burst": 3,
                                                  "warnings_per_minute": 7}})"))
                     .value();
  EXPECT_EQ(c.log_queue, 64U);
  EXPECT_EQ(c.warnings.burst, 3U);
  EXPECT_EQ(c.warnings.per_minute, 7U);
  EXPECT_EQ(error_of(json::parse(R"({"logging": {"queue": 2}})")),
            "config: logging.queue must be between 16 and 1048576");
  EXPECT_EQ(error_of(json::parse(R"({"logging": {"warning_burst": 0}})")),
            "config: logging.warning_burst must be at least 1");
  EXPECT_EQ(error_of(json::parse(R"({"logging": {"level": "info"}})")),
            "config: logging.level is not a known key");
}

TEST(Config, TheAdministratorsReserveIsBelowMaxSessions) {
  const auto defaults = parse_config(json::object()).value();
  EXPECT_EQ(defaults.listener.admin_reserved_sessions, 8U);
  EXPECT_EQ(defaults.listener.max_pending_connections, 64U);
  const auto set = parse_config({{"limits",
                                  {{"max_sessions", 20},
                                   {"admin_reserved_sessions", 5},
                                   {"max_pending_connections", 7}}}})
                       .value();
  EXPECT_EQ(set.listener.admin_reserved_sessions, 5U);
  EXPECT_EQ(set.listener.max_pending_connections, 7U);
  // A small max_sessions without a reserve of its own keeps half for everyone.
  EXPECT_EQ(
      parse_config({{"limits", {{"max_sessions", 6}}}}).value().listener.admin_reserved_sessions,
      3U);
  EXPECT_NE(error_of({{"limits", {{"max_sessions", 8}, {"admin_reserved_sessions", 8}}}})
                .find("limits.admin_reserved_sessions (8) must be less than limits.max_sessions"),
            std::string::npos);
  EXPECT_NE(error_of({{"limits", {{"max_pending_connections", 0}}}})
                .find("limits.max_pending_connections must be at least 1"),
            std::string::npos);
}

TEST(Config, FaultsMustNameASimulatedDrive) {
  auto c =
      parse_config({{"simulate", 1}, {"simulated_faults", {{"sim4", json::object()}}}}).value();
  const auto r = check_simulated_faults(c);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("sim4"), std::string::npos);
}

TEST(Config, SimulatedMediaAreReadEachOverTheStarEntry) {
  using drives::SimulatedMedium;
  const auto defaults = parse_config(json::object()).value();
  EXPECT_EQ(simulated_medium_for(defaults, "sim0"), SimulatedMedium{});
  EXPECT_EQ(SimulatedMedium{}.blocks, SimulatedMedium::kDvdPlusRwBlocks);
  EXPECT_EQ(SimulatedMedium{}.max_stored_bytes, 256U << 20);

  const auto c = parse_config(json::parse(R"({"simulate": 3, "simulated_media": {
    "*": {"profile": "bd-re", "write_speed_mb_s": 36},
    "sim1": {"size_mb": 100, "max_stored_mb": 128},
    "sim2": {"profile": "dvd+rw"}}})"))
                     .value();
  const auto sim0 = simulated_medium_for(c, "sim0");
  EXPECT_EQ(sim0.profile, SimulatedMedium::kProfileBdRe);
  EXPECT_EQ(sim0.blocks, SimulatedMedium::kBdReBlocks);
  EXPECT_EQ(sim0.write_speed_mb_s, 36U);
  const auto sim1 = simulated_medium_for(c, "sim1");
  EXPECT_EQ(sim1.profile, SimulatedMedium::kProfileBdRe);
  EXPECT_EQ(sim1.blocks, 100U * 512);
  EXPECT_EQ(sim1.write_speed_mb_s, 36U);
  EXPECT_EQ(sim1.max_stored_bytes, 128U << 20);
  const auto sim2 = simulated_medium_for(c, "sim2");
  EXPECT_EQ(sim2.profile, SimulatedMedium::kProfileDvdPlusRw);
  EXPECT_EQ(sim2.blocks, SimulatedMedium::kDvdPlusRwBlocks) << "the profile's own size";
  EXPECT_TRUE(check_simulated_faults(c).ok());
}

TEST(Config, BadSimulatedMediaAreNamed) {
  const auto media = [](json entry) { return json{{"simulated_media", {{"sim0", entry}}}}; };
  EXPECT_NE(error_of(media({{"profile", "cd-r"}}))
                .find(R"(simulated_media.sim0.profile must be "dvd+rw" or "bd-re")"),
            std::string::npos);
  EXPECT_NE(
      error_of(media({{"size_mb", 0}})).find("simulated_media.sim0.size_mb must be 1 to 131072"),
      std::string::npos);
  EXPECT_NE(error_of(media({{"size_mb", 131073}})).find("simulated_media.sim0.size_mb"),
            std::string::npos);
  EXPECT_NE(error_of(media({{"max_stored_mb", 0}})).find("simulated_media.sim0.max_stored_mb"),
            std::string::npos);
  EXPECT_NE(error_of(media({{"speed", 4}})).find("simulated_media.sim0.speed is not a known key"),
            std::string::npos);
  EXPECT_NE(
      error_of(media({{"write_speed_mb_s", -1}})).find("simulated_media.sim0.write_speed_mb_s"),
      std::string::npos);
  EXPECT_NE(error_of(media(42)).find("simulated_media.sim0 must be an object"), std::string::npos);
  EXPECT_NE(error_of({{"simulated_media", {{"*", {{"size_mb", 0}}}, {"sim0", json::object()}}}})
                .find("simulated_media.*.size_mb"),
            std::string::npos);
  EXPECT_NE(error_of({{"simulated_media", 1}}).find("simulated_media must be an object"),
            std::string::npos);
  // A drive the command line does not create.
  const auto c =
      parse_config({{"simulate", 2}, {"simulated_media", {{"sim7", json::object()}}}}).value();
  const auto r = check_simulated_faults(c);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("simulated_media.sim7 names no simulated drive"),
            std::string::npos);
}

TEST(Config, TheBoundsOnWhatASessionHoldsAreReadAndChecked) {
  const auto defaults = parse_config(json::object()).value();
  EXPECT_EQ(defaults.arbiter.max_commands_per_session, 32U);
  EXPECT_EQ(defaults.arbiter.max_commands_per_drive, 64U);
  EXPECT_EQ(defaults.arbiter.max_payload_bytes_per_session, 8U * 1024 * 1024);
  EXPECT_EQ(defaults.arbiter.max_deferred_per_session, 64U);
  const auto c = parse_config(json::parse(R"({"limits": {
    "max_commands_per_session": 5, "max_commands_per_drive": 6,
    "max_payload_bytes_per_session": 2097152, "max_deferred_per_session": 7}})"))
                     .value();
  EXPECT_EQ(c.arbiter.max_commands_per_session, 5U);
  EXPECT_EQ(c.arbiter.max_commands_per_drive, 6U);
  EXPECT_EQ(c.arbiter.max_payload_bytes_per_session, 2097152U);
  EXPECT_EQ(c.arbiter.max_deferred_per_session, 7U);
  // One transfer of the largest size must fit.
  EXPECT_NE(
      error_of(
          {{"limits", {{"max_transfer_bytes", 1048576}, {"max_payload_bytes_per_session", 65536}}}})
          .find("limits.max_payload_bytes_per_session must be at least"),
      std::string::npos);
  EXPECT_NE(error_of({{"limits", {{"max_commands_per_drive", 0}}}}).find("at least 1"),
            std::string::npos);
}

}  // namespace
}  // namespace discarbiter::host
