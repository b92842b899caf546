// discarb: the DiscArbiter command line (DESIGN.md "CLI").
#include <CLI/CLI.hpp>
#include <atomic>
#include <charconv>
#include <cstdint>
#include <ctime>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <optional>
#include <string>
#include <thread>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "discarbiter/client.hpp"
#include "discarbiter/mmc.hpp"
#include "discarbiter/proto/mmc.hpp"
#include "discarbiter/proto/sense.hpp"
#include "discarbiter/proto/wire.hpp"
#include "wait.hpp"

namespace {

using namespace discarbiter;
using nlohmann::json;

// Exit codes (DESIGN.md "CLI").
constexpr int kExitOk = 0;
constexpr int kExitOther = 1;
constexpr int kExitUsage = 2;
constexpr int kExitLocked = 3;
constexpr int kExitTimeout = 4;
constexpr int kExitNoDrive = 5;
constexpr int kExitUnreachable = 6;

int exit_code_for(errc code) {
  switch (code) {
    case errc::recorder_locked:
      return kExitLocked;
    case errc::recorder_command_timeout:
      return kExitTimeout;
    case errc::dev_not_exist:
      return kExitNoDrive;
    case errc::service_unavailable:
    case errc::connection_lost:
      return kExitUnreachable;
    case errc::invalid_arg:
    case errc::recorder_client_name_is_not_valid:
      return kExitUsage;
    default:
      return kExitOther;
  }
}

struct Globals {
  std::string endpoint;
  bool json_output = false;
};

Client connect(const Globals& g, const std::string& name) {
  return Client(ConnectOptions{g.endpoint, name, std::chrono::seconds(5)});
}

std::string text_or_dash(const std::string& s) {
  return s.empty() ? "-" : s;
}

std::string describe_owner(const proto::OwnerInfo& o) {
  return fmt::format("'{}' (pid {}, user {}, lock count {}, since {}{})", o.client_name, o.pid,
                     text_or_dash(o.user), o.lock_count, o.since, o.force ? ", force" : "");
}

void print_hex_dump(const proto::Bytes& data) {
  for (std::size_t i = 0; i < data.size(); i += 16) {
    std::string hex, ascii;
    for (std::size_t j = i; j < std::min(i + 16, data.size()); ++j) {
      hex += fmt::format("{:02X} ", data[j]);
      ascii += (data[j] >= 0x20 && data[j] < 0x7F) ? static_cast<char>(data[j]) : '.';
    }
    fmt::print("  {:04X}  {:<48} {}\n", i, hex, ascii);
  }
}

int cmd_status(const Globals& g) {
  Client client = connect(g, "discarb");
  const proto::StatusDocument status = client.status();
  if (g.json_output) {
    fmt::print("{}\n", json(status).dump(2));
    return kExitOk;
  }
  const auto& s = status.service;
  fmt::print("DiscArbiter {} ({}), pid {}, up {:.1f} s, endpoint {}\n\n", s.version, s.platform,
             s.pid, s.uptime_s, s.endpoint);
  fmt::print("{:<8} {:<8} {:<20} {:>7} {:<10} {:>5} {:>7} {:<8} {:>8}\n", "DRIVE", "STATE", "OWNER",
             "PID", "USER", "COUNT", "WAITERS", "TRAY", "COMMANDS");
  for (const auto& d : status.drives) {
    const auto& o = d.owner;
    fmt::print("{:<8} {:<8} {:<20} {:>7} {:<10} {:>5} {:>7} {:<8} {:>8}\n", d.id, d.state,
               o ? o->client_name : "-", o ? std::to_string(o->pid) : "-",
               o ? text_or_dash(o->user) : "-", o ? std::to_string(o->lock_count) : "-",
               d.waiters.size(), d.tray_locked ? "locked" : "unlocked", d.stats.commands);
  }
  fmt::print("\n{:<8} {:<24} {:>7} {:<10} {}\n", "SESSION", "CLIENT", "PID", "USER", "LOCKS");
  for (const auto& c : status.clients) {
    std::string locks;
    for (const auto& [drive, count] : c.locks) {
      locks += fmt::format("{}{}x{}", locks.empty() ? "" : ", ", drive, count);
    }
    fmt::print("{:<8} {:<24} {:>7} {:<10} {}\n", c.session, text_or_dash(c.client_name), c.pid,
               text_or_dash(c.user), locks.empty() ? "-" : locks);
  }
  return kExitOk;
}

int cmd_drives(const Globals& g) {
  Client client = connect(g, "discarb");
  const auto drives = client.drives();
  if (g.json_output) {
    fmt::print("{}\n", json(drives).dump(2));
    return kExitOk;
  }
  for (const auto& d : drives) {
    fmt::print("{:<8} {:<16} {} {} {}  {}{}\n", d.id, d.path, d.vendor, d.product, d.revision,
               d.state, d.owner ? " by " + describe_owner(*d.owner) : "");
  }
  return kExitOk;
}

int cmd_owner(const Globals& g, const std::string& drive) {
  Client client = connect(g, "discarb");
  const auto owner = client.exclusive_access_owner(drive);
  if (g.json_output) {
    fmt::print("{}\n", owner ? json(*owner).dump(2) : "null");
  } else {
    fmt::print("{}: {}\n", drive, owner ? "held by " + describe_owner(*owner) : "free");
  }
  return kExitOk;
}

int cmd_break(const Globals& g, const std::string& drive) {
  Client client = connect(g, "discarb");
  const auto former = client.break_exclusive_access(drive);
  if (g.json_output) {
    fmt::print("{}\n", json(former).dump(2));
  } else {
    fmt::print("{}: broke the lock of {}\n", drive, describe_owner(former));
  }
  return kExitOk;
}

/// Waits for stdin to close or a stop signal while a thread reads the
/// session's events and hands each to `on_event`, which returns false to end
/// the wait. Returns what ended it; throws the ServiceError if the service
/// went away first.
std::string wait_reading_events(Client& client,
                                const std::function<bool(const proto::Event&)>& on_event) {
  std::atomic<bool> stop_reading{false};
  std::optional<ServiceError> service_gone;
  std::thread reader([&] {
    try {
      while (!stop_reading) {
        // N.B. a bounded read, so the thread sees stop_reading.
        auto event = client.next_event(std::chrono::milliseconds(200));
        if (event && !on_event(*event)) {
          cli::interrupt_wait();
          return;
        }
      }
    } catch (const ServiceError& e) {
      service_gone = e;
      cli::interrupt_wait();
    }
  });
  std::string why = cli::wait_for_stdin_close_or_signal();
  stop_reading = true;
  reader.join();
  if (service_gone)
    throw *service_gone;
  return why;
}

int cmd_hold(const Globals& g, const std::string& drive, const std::string& name, double wait_s,
             unsigned count, bool force) {
  Client client = connect(g, name);
  const AcquireOptions options{std::chrono::milliseconds(static_cast<std::int64_t>(wait_s * 1000)),
                               force};
  std::uint32_t lock_count = 0;
  for (unsigned i = 0; i < count; ++i) {
    lock_count =
        client.acquire_exclusive_access(drive, i == 0 ? options : AcquireOptions{{}, force});
  }
  fmt::print("acquired {}\n", drive);
  std::fflush(stdout);
  fmt::print(stderr, "holding {} (lock count {}); close stdin or send SIGINT/SIGTERM to release\n",
             drive, lock_count);
  // N.B. a lock dies with the service: hold reads its session while it waits
  // so that it ends when the service does, or when its lock is broken.
  std::optional<proto::LockBroken> broken;
  const std::string why = wait_reading_events(client, [&](const proto::Event& event) {
    if (const auto* b = std::get_if<proto::LockBroken>(&event)) {
      broken = *b;
      return false;
    }
    return true;
  });
  if (broken) {
    fmt::print(stderr, "discarb: the lock on {} was broken by administrator '{}' (user {})\n",
               drive, broken->by.client_name, broken->by.user);
    return kExitLocked;
  }
  for (unsigned i = 0; i < count; ++i) {
    lock_count = client.release_exclusive_access(drive);
  }
  fmt::print(stderr, "released {} ({}); lock count {}\n", drive, why, lock_count);
  return kExitOk;
}

/// What an event says, after "drive: ".
struct EventText {
  std::string operator()(const proto::Acquired& e) const {
    return "acquired by " + describe_owner(e.owner);
  }
  std::string operator()(const proto::Granted& e) const {
    return "granted from the queue by " + describe_owner(e.owner);
  }
  std::string operator()(const proto::Released& e) const {
    return fmt::format("released by '{}' (session {}){}", e.client_name, e.session,
                       e.cause == "session_ended"
                           ? ": its session ended (the client exited or died)"
                       : e.cause == "broken" ? ": an administrator broke the lock"
                                             : "");
  }
  std::string operator()(const proto::LockBroken& e) const {
    return fmt::format("lock broken by administrator '{}' (user {})", e.by.client_name, e.by.user);
  }
  std::string operator()(const proto::DriveArrived&) const { return "arrived"; }
  std::string operator()(const proto::DriveRemoved& e) const {
    return fmt::format("removed ({})", e.reason);
  }
  std::string operator()(const proto::DriveError& e) const {
    return fmt::format("error: {}", e.reason);
  }
  std::string operator()(const proto::DriveRecovered&) const {
    return "recovered (TEST UNIT READY answered)";
  }
  std::string operator()(const proto::UnknownEvent& e) const {
    return fmt::format("{} {}", e.name, e.json);
  }
};

/// One line per event: "HH:MM:SS drive: what happened".
std::string describe_event(const proto::Event& event) {
  const std::string drive = std::visit(
      [](const auto& e) -> std::string {
        if constexpr (requires { e.drive; })
          return e.drive;
        else
          return "-";
      },
      event);
  return fmt::format("{:%H:%M:%S} {}: {}", fmt::localtime(std::time(nullptr)), drive,
                     std::visit(EventText{}, event));
}

int cmd_watch(const Globals& g) {
  Client client = connect(g, "discarb");
  client.subscribe();
  fmt::print(stderr, "watching events; close stdin or send SIGINT/SIGTERM to stop\n");
  const std::string why = wait_reading_events(client, [&](const proto::Event& event) {
    fmt::print("{}\n", g.json_output ? json(event).dump() : describe_event(event));
    std::fflush(stdout);
    return true;
  });
  fmt::print(stderr, "stopped watching ({})\n", why);
  return kExitOk;
}

int print_scsi_reply(const Globals& g, const ScsiReply& reply) {
  if (g.json_output) {
    fmt::print("{}\n", json{{"code", hresult(reply.code)},
                            {"name", error_name(reply.code)},
                            {"scsi_status", reply.scsi_status},
                            {"sense", proto::to_hex(reply.sense)},
                            {"data", proto::to_hex(reply.data)}}
                           .dump(2));
  } else {
    fmt::print("status: 0x{:02X} {}\n", reply.scsi_status,
               reply.scsi_status == 0   ? "GOOD"
               : reply.scsi_status == 2 ? "CHECK CONDITION"
                                        : "");
    if (!reply.sense.empty()) {
      fmt::print("{}: {}\n", error_name(reply.code), proto::explain_sense(reply.sense));
    }
    if (!reply.data.empty()) {
      fmt::print("data: {} bytes\n", reply.data.size());
      print_hex_dump(reply.data);
    }
  }
  return reply.scsi_status == 0 ? kExitOk : kExitOther;
}

ScsiReply run_one(const Globals& g, const std::string& drive, const std::string& name,
                  const ScsiCommand& command) {
  Client client = connect(g, name);
  auto lock = client.acquire(drive);
  return client.execute(drive, command);  // the lock is released on return
}

int cmd_exec(const Globals& g, const std::string& drive, const std::string& name,
             const std::string& cdb_text, std::optional<std::uint32_t> in_len,
             const std::string& out_file, std::optional<std::uint32_t> timeout_s) {
  auto cdb = proto::from_hex(cdb_text);
  if (!cdb || cdb->size() < 6 || cdb->size() > 16) {
    fmt::print(stderr,
               "discarb: --cdb must be 6 to 16 hexadecimal bytes, e.g. \"12 00 00 00 24 00\"\n");
    return kExitUsage;
  }
  ScsiCommand command{std::move(*cdb), proto::Direction::none, 0, {}, timeout_s};
  if (in_len) {
    command.direction = proto::Direction::in;
    command.data_in_len = *in_len;
  } else if (!out_file.empty()) {
    std::ifstream in(out_file, std::ios::binary);
    if (!in) {
      fmt::print(stderr, "discarb: cannot read {}\n", out_file);
      return kExitUsage;
    }
    command.direction = proto::Direction::out;
    command.data_out.assign(std::istreambuf_iterator<char>(in), {});
  }
  return print_scsi_reply(g, run_one(g, drive, name, command));
}

/// The current profile and the disc's status, from the mmc helpers, for
/// `inquiry`: null when the drive refuses GET CONFIGURATION; the disc's
/// fields null when it refuses READ DISC INFORMATION. `why` says what the
/// drive refused.
json describe_medium(Client& client, const std::string& drive, std::string& why) {
  namespace pm = proto::mmc;
  std::uint16_t profile = 0;
  try {
    profile = mmc::current_profile(client, drive);
  } catch (const CommandError& e) {
    why = e.detail();
    return nullptr;
  }
  const std::string_view name = pm::profile_name(profile);
  json medium{{"profile", profile},
              {"profile_name", name.empty() ? fmt::format("profile 0x{:04X}", profile) : name},
              {"disc_status", nullptr},
              {"erasable", nullptr}};
  if (profile == pm::kProfileNone)
    return medium;
  try {
    const auto disc = mmc::read_disc_information(client, drive);
    medium["disc_status"] = pm::disc_status_name(disc.status);
    medium["erasable"] = disc.erasable;
  } catch (const CommandError& e) {
    why = e.detail();
  }
  return medium;
}

/// "medium DVD+RW (profile 0x001A), disc complete, erasable".
std::string medium_text(const json& medium, const std::string& why) {
  if (medium.is_null())
    return "medium unknown: " + why;
  const auto profile = medium["profile"].get<std::uint16_t>();
  if (profile == proto::mmc::kProfileNone)
    return "no medium";
  std::string text = fmt::format("medium {} (profile 0x{:04X})",
                                 medium["profile_name"].get<std::string>(), profile);
  if (medium["disc_status"].is_null())
    return fmt::format("{}; disc status unknown: {}", text, why);
  return fmt::format("{}, disc {}{}", text, medium["disc_status"].get<std::string>(),
                     medium["erasable"].get<bool>() ? ", erasable" : "");
}

int cmd_inquiry(const Globals& g, const std::string& drive, const std::string& name) {
  Client client = connect(g, name);
  auto lock = client.acquire(drive);
  const auto reply = client.execute(drive, ScsiCommand::inquiry());
  if (reply.scsi_status != 0 || reply.data.size() < 36)
    return print_scsi_reply(g, reply);
  auto field = [&](std::size_t at, std::size_t len) {
    std::string s(reply.data.begin() + static_cast<std::ptrdiff_t>(at),
                  reply.data.begin() + static_cast<std::ptrdiff_t>(at + len));
    return s.substr(0, s.find_last_not_of(' ') + 1);
  };
  constexpr int kMmcDevice = 5;  // peripheral device type: CD/DVD/BD
  json j{{"drive", drive},
         {"device_type", reply.data[0] & 0x1F},
         {"vendor", field(8, 8)},
         {"product", field(16, 16)},
         {"revision", field(32, 4)}};
  std::string why;
  if (j["device_type"] == kMmcDevice)
    j["medium"] = describe_medium(client, drive, why);
  if (g.json_output) {
    fmt::print("{}\n", j.dump(2));
  } else {
    fmt::print("{}: vendor '{}' product '{}' revision '{}' (device type {})\n", drive,
               j["vendor"].get<std::string>(), j["product"].get<std::string>(),
               j["revision"].get<std::string>(), j["device_type"].get<int>());
    if (j.contains("medium"))
      fmt::print("{}: {}\n", drive, medium_text(j["medium"], why));
  }
  return kExitOk;
}

int cmd_eject(const Globals& g, const std::string& drive, const std::string& name,
              bool keep_tray_lock) {
  Client client = connect(g, name);
  auto lock = client.acquire(drive);
  // The service locks the tray while a drive is held (tray_lock); as the
  // owner we may lift it for a deliberate eject, unless told not to.
  if (!keep_tray_lock) {
    const ScsiCommand allow{{0x1E, 0, 0, 0, 0, 0}, proto::Direction::none, 0, {}, std::nullopt};
    if (const auto r = client.execute(drive, allow); r.scsi_status != 0) {
      fmt::print(stderr, "discarb: ALLOW MEDIUM REMOVAL refused by {}: {}\n", drive,
                 proto::explain_sense(r.sense));
      return kExitOther;
    }
  }
  const auto reply = client.execute(drive, ScsiCommand::eject());
  if (reply.scsi_status == 0) {
    fmt::print("{}: ejected\n", drive);
    return kExitOk;
  }
  fmt::print(stderr, "discarb: eject refused by {}: {}\n", drive,
             proto::explain_sense(reply.sense));
  return kExitOther;
}

/// A usage error: printed once, exit 2.
int usage_error(std::string_view message) {
  fmt::print(stderr, "discarb: {}\n", message);
  return kExitUsage;
}

/// "NAME (0x…): explanation; detail", without the explanation when the
/// detail already says it (the service's messages often do).
std::string describe_error(const ServiceError& e) {
  const std::string_view why = error_explanation(e.code_value());
  const std::string& detail = e.detail();
  std::string text = fmt::format("{} (0x{:08X}): ", e.name(), e.hresult());
  if (detail.empty())
    return text.append(why);
  if (detail.find(why) != std::string::npos)
    return text.append(detail);
  return fmt::format("{}{}; {}", text, why, detail);
}

/// CLI11 checks an option's text with these before converting it, so the
/// error names the option ("--count: …") and the range, whatever was typed.
CLI::Validator whole_number(std::uint64_t min, std::uint64_t max, std::string_view unit) {
  const std::string range = fmt::format("a whole number of {} from {} to {}", unit, min, max);
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        std::uint64_t value = 0;
        const auto* end = text.data() + text.size();
        const auto [at, ec] = std::from_chars(text.data(), end, value);
        if (ec != std::errc{} || at != end || value < min || value > max)
          return fmt::format("'{}' is not {}", text, range);
        return {};
      },
      range);
}

CLI::Validator seconds(double max) {
  const std::string range = fmt::format("a number of seconds from 0 to {}", max);
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        double value = -1;
        std::size_t used = 0;
        try {
          value = std::stod(text, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used == 0 || used != text.size() || !(value >= 0 && value <= max))
          return fmt::format("'{}' is not {}", text, range);
        return {};
      },
      range);
}

}  // namespace

int main(int argc, char** argv) {
  cli::prepare_wait();
  CLI::App app{"discarb: talk to the DiscArbiter service (optical drive arbitration)", "discarb"};
  app.set_version_flag("--version", std::string("discarb ") + DISCARBITER_VERSION,
                       "print discarb's version and exit");
  Globals g;
  // N.B. before the verbs are added: they inherit these. Fallthrough: the
  // global options are accepted after the verb too (`discarb status --json`).
  app.fallthrough();
  app.footer(
      "--endpoint and --json may come before or after the verb.\nExit codes: 0 success, 2 usage, "
      "3 locked by another client, 4 timeout, 5 no such drive, 6 service unreachable, 1 other.");
  app.get_formatter()->label("SUBCOMMAND", "VERB");
  app.add_option(
      "--endpoint", g.endpoint,
      "service endpoint (default: $DISCARBITER_ENDPOINT, else " + Client::default_endpoint() + ")");
  auto* json_flag = app.add_flag("--json", g.json_output,
                                 "machine-readable output (status, drives, owner, break, exec, "
                                 "inquiry; JSON lines for watch)");

  std::string drive, name = "discarb", cdb, out_file;
  double wait_s = 0;
  unsigned count = 1;
  bool force = false, keep_tray_lock = false;
  std::optional<std::uint32_t> in_len, timeout_s;
  const std::string drive_help = "the drive's id, e.g. sim0 or cdrom0 (see 'discarb drives')";
  const std::string name_help = "client name shown to others, 1-63 of [0-9A-Za-z .,:;_-]";

  auto* status = app.add_subcommand("status", "service, drives and clients");
  auto* drives = app.add_subcommand("drives", "the drives: id, path, vendor/product, state, owner");
  auto* owner = app.add_subcommand("owner", "who holds a drive");
  owner->add_option("drive", drive, drive_help)->required();
  auto* hold = app.add_subcommand(
      "hold", "acquire, print 'acquired DRIVE', hold until stdin closes or a signal comes");
  hold->add_option("drive", drive, drive_help)->required();
  hold->add_option("--name", name, name_help)->required();
  constexpr double kMaxWaitS = 4294967;  // the wire's wait_ms is 32 bits
  hold->add_option("--wait", wait_s, "seconds to wait in the queue if the drive is held (0)")
      ->check(seconds(kMaxWaitS));
  hold->add_option("--count", count, "acquire N times (1)")->check(whole_number(1, 1000, "locks"));
  hold->add_flag("--force", force, "lock even if a file system is mounted");
  auto* exec = app.add_subcommand("exec", "acquire, run one CDB, print the result, release");
  exec->add_option("drive", drive, drive_help)->required();
  exec->add_option("--name", name, name_help);
  exec->add_option("--cdb", cdb, "CDB as hex bytes, e.g. \"12 00 00 00 24 00\"")->required();
  auto* in_opt = exec->add_option("--in", in_len, "read LEN bytes from the drive")
                     ->check(whole_number(1, UINT32_MAX, "bytes"));
  exec->add_option("--out", out_file, "write FILE's bytes to the drive")->excludes(in_opt);
  exec->add_option("--timeout", timeout_s,
                   "command timeout in seconds (default: the service's for the opcode; it caps "
                   "it at its max_timeout)")
      ->check(whole_number(1, 86400, "seconds"));
  auto* inquiry = app.add_subcommand(
      "inquiry", "vendor, product and revision from INQUIRY; the medium's profile and status");
  inquiry->add_option("drive", drive, drive_help)->required();
  inquiry->add_option("--name", name, name_help);
  auto* eject =
      app.add_subcommand("eject", "open the tray (refused while another client holds it)");
  eject->add_option("drive", drive, drive_help)->required();
  eject->add_option("--name", name, name_help);
  eject->add_flag("--keep-tray-lock", keep_tray_lock,
                  "do not send ALLOW MEDIUM REMOVAL first: a drive whose tray is locked refuses");
  auto* watch = app.add_subcommand(
      "watch", "print events (locks, hand-offs, drives arriving or failing) until stopped");
  auto* brk = app.add_subcommand("break",
                                 "administrators: end another client's lock (it is told; audited)");
  brk->add_option("drive", drive, drive_help)->required();
  // N.B. after the verbs are added, so that they do not inherit it: what no
  // verb takes falls through to here, and is refused below with its verb.
  app.allow_extras();
  app.require_subcommand(0, 1);
  std::string verbs;  // "status, drives, …", in the order of --help
  for (auto* verb : app.get_subcommands([](const CLI::App*) { return true; })) {
    verb->group("Verbs");
    verbs += (verbs.empty() ? "" : ", ") + verb->get_name();
  }

  const auto verb_name = [&]() -> std::string {
    const auto parsed = app.get_subcommands();
    return parsed.empty() ? std::string{} : parsed.front()->get_name();
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);  // --help, --version
  } catch (const CLI::ParseError& e) {
    const std::string verb = verb_name();
    return usage_error(verb.empty() ? e.what() : fmt::format("{}: {}", verb, e.what()));
  }
  const std::string verb = verb_name();
  if (const auto extras = app.remaining(); !extras.empty()) {
    if (verb.empty() && extras.front().rfind('-', 0) != 0)
      return usage_error(fmt::format("unknown verb '{}'; verbs: {}", extras.front(), verbs));
    return usage_error(fmt::format("{}{}unexpected argument '{}'", verb, verb.empty() ? "" : ": ",
                                   extras.front()));
  }
  if (verb.empty())
    return usage_error(fmt::format("a verb is required; verbs: {}", verbs));
  if (*json_flag && (*hold || *eject)) {
    return usage_error(fmt::format("{}: --json is not accepted: {}", verb,
                                   *hold ? "hold prints only 'acquired DRIVE' (see 'discarb "
                                           "--json owner DRIVE')"
                                         : "eject prints no data"));
  }

  try {
    if (*status)
      return cmd_status(g);
    if (*drives)
      return cmd_drives(g);
    if (*owner)
      return cmd_owner(g, drive);
    if (*brk)
      return cmd_break(g, drive);
    if (*watch)
      return cmd_watch(g);
    if (*hold)
      return cmd_hold(g, drive, name, wait_s, count, force);
    if (*exec)
      return cmd_exec(g, drive, name, cdb, in_len, out_file, timeout_s);
    if (*inquiry)
      return cmd_inquiry(g, drive, name);
    if (*eject)
      return cmd_eject(g, drive, name, keep_tray_lock);
  } catch (const ServiceError& e) {
    fmt::print(stderr, "discarb: {}\n", describe_error(e));
    return exit_code_for(e.code_value());
  } catch (const std::exception& e) {
    fmt::print(stderr, "discarb: unexpected reply from the service: {}\n", e.what());
    return kExitOther;
  }
  return kExitUsage;
}
