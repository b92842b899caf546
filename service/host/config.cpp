#include "host/config.hpp"

#include <algorithm>
#include <fstream>
#include <limits>
#include <set>

#include <fmt/format.h>

#include "discarbiter/proto/wire.hpp"
#include "host/logging.hpp"

namespace discarbiter::host {
namespace {

using nlohmann::json;

// Walks one JSON object, taking each known key and reporting the first
// problem with its full path ("limits.max_sessions: …").
class ObjectReader {
 public:
  ObjectReader(const json& object, std::string path, std::optional<Error>& error)
      : object_(object), path_(std::move(path)), error_(error) {
    if (!object_.is_object())
      fail(path_.empty() ? "the document" : path_, "must be an object");
  }

  ~ObjectReader() {
    if (!object_.is_object())
      return;
    for (const auto& [key, value] : object_.items()) {
      if (!taken_.contains(key)) {
        fail(name(key), "is not a known key");
      }
    }
  }
  ObjectReader(const ObjectReader&) = delete;
  ObjectReader& operator=(const ObjectReader&) = delete;

  template <typename T>
  void take(const char* key, T& out) {
    const json* v = find(key);
    if (!v)
      return;
    if constexpr (std::is_same_v<T, bool>) {
      if (!v->is_boolean())
        return fail(name(key), "must be true or false");
      out = v->get<bool>();
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (!v->is_string())
        return fail(name(key), "must be a string");
      out = v->get<std::string>();
    } else {
      const auto n = proto::as_unsigned(*v);
      if (!n || *n > std::numeric_limits<T>::max()) {
        return fail(name(key), fmt::format("must be an unsigned integer up to {}",
                                           std::numeric_limits<T>::max()));
      }
      out = static_cast<T>(*n);
    }
  }

  /// A nested object, or nullptr when absent.
  const json* object(const char* key) { return find(key); }

  std::string name(std::string_view key) const {
    return path_.empty() ? std::string(key) : fmt::format("{}.{}", path_, key);
  }

  void fail(const std::string& where, const std::string& what) {
    if (!error_)
      error_ = Error{errc::invalid_arg, fmt::format("config: {} {}", where, what)};
  }

 private:
  const json* find(const char* key) {
    taken_.insert(key);
    if (!object_.is_object())
      return nullptr;
    const auto it = object_.find(key);
    return it == object_.end() ? nullptr : &*it;
  }

  const json& object_;
  std::string path_;
  std::optional<Error>& error_;
  std::set<std::string> taken_;
};

std::optional<std::uint8_t> parse_opcode(const std::string& text) {
  // "0x2A" or "42"
  try {
    std::size_t used = 0;
    const unsigned long v = std::stoul(text, &used, 0);
    if (used != text.size() || v > 0xFF)
      return std::nullopt;
    return static_cast<std::uint8_t>(v);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

void read_opcode_map(ObjectReader& parent, const char* key, const std::string& path,
                     const std::function<void(std::uint8_t, std::uint32_t)>& put) {
  const json* j = parent.object(key);
  if (!j)
    return;
  if (!j->is_object())
    return parent.fail(path, "must be an object of opcode: number");
  for (const auto& [name, value] : j->items()) {
    const auto op = parse_opcode(name);
    if (!op)
      return parent.fail(fmt::format("{}.{}", path, name), "is not an opcode (0x00-0xFF)");
    const auto n = proto::as_unsigned(value);
    if (!n || *n > 0xFFFFFFFFULL) {
      return parent.fail(fmt::format("{}.{}", path, name), "must be an unsigned integer");
    }
    put(*op, static_cast<std::uint32_t>(*n));
  }
}

// One simulated_media entry, from the defaults ("*" is merged into it first).
drives::SimulatedMedium read_medium(const json& spec, const std::string& path,
                                    std::optional<Error>& error) {
  using drives::SimulatedMedium;
  constexpr std::uint32_t kMaxSizeMb = SimulatedMedium::kMaxBytes >> 20;
  constexpr std::uint32_t kMaxStoredMb = 64 * 1024;
  constexpr std::uint32_t kBlocksPerMb = (1U << 20) / SimulatedMedium::kBlockSize;
  ObjectReader r(spec, path, error);
  SimulatedMedium medium;
  std::string profile = "dvd+rw";
  std::uint32_t size_mb = 0;
  std::uint32_t max_stored_mb = SimulatedMedium::kDefaultMaxStoredBytes >> 20;
  r.take("profile", profile);
  r.take("size_mb", size_mb);
  r.take("write_speed_mb_s", medium.write_speed_mb_s);
  r.take("max_stored_mb", max_stored_mb);
  if (profile == "dvd+rw") {
    medium.profile = SimulatedMedium::kProfileDvdPlusRw;
    medium.blocks = SimulatedMedium::kDvdPlusRwBlocks;
  } else if (profile == "bd-re") {
    medium.profile = SimulatedMedium::kProfileBdRe;
    medium.blocks = SimulatedMedium::kBdReBlocks;
  } else {
    r.fail(r.name("profile"), "must be \"dvd+rw\" or \"bd-re\"");
  }
  if (spec.is_object() && spec.contains("size_mb")) {
    if (size_mb == 0 || size_mb > kMaxSizeMb)
      r.fail(r.name("size_mb"), fmt::format("must be 1 to {} (128 GiB)", kMaxSizeMb));
    medium.blocks = std::uint64_t{size_mb} * kBlocksPerMb;
  }
  if (max_stored_mb == 0 || max_stored_mb > kMaxStoredMb)
    r.fail(r.name("max_stored_mb"), fmt::format("must be 1 to {}", kMaxStoredMb));
  medium.max_stored_bytes = std::uint64_t{max_stored_mb} << 20;
  return medium;
}

// simulated_media: {"*": {...}, "sim0": {...}}; a drive's entry overrides
// the "*" entry key by key.
void read_simulated_media(ObjectReader& top, Config& c, std::optional<Error>& error) {
  const json* media = top.object("simulated_media");
  if (!media)
    return;
  if (!media->is_object())
    return top.fail("simulated_media", "must be an object keyed by drive id or \"*\"");
  json common = json::object();
  if (const auto star = media->find("*"); star != media->end()) {
    c.simulated_media_default = read_medium(*star, "simulated_media.*", error);
    common = *star;
  }
  for (const auto& [drive, spec] : media->items()) {
    if (drive == "*")
      continue;
    json merged = spec;
    if (spec.is_object() && common.is_object()) {
      merged = common;
      merged.update(spec);
    }
    c.simulated_media[drive] = read_medium(merged, "simulated_media." + drive, error);
  }
}

}  // namespace

Result<Config> parse_config(const json& document) {
  Config c;
  std::optional<Error> error;
  {
    ObjectReader top(document, "", error);
    top.take("endpoint", c.endpoint);
    std::string mode;
    top.take("socket_mode", mode);
    if (!mode.empty()) {
      std::size_t used = 0;
      unsigned long v = 0;
      try {
        v = std::stoul(mode, &used, 8);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != mode.size() || v > 0777) {
        top.fail("socket_mode", "must be an octal mode string such as \"0660\"");
      } else {
        c.listener.socket_mode = static_cast<std::uint32_t>(v);
      }
    }
    top.take("socket_group", c.listener.socket_group);
    top.take("admin_group", c.listener.admin_group);
    top.take("simulate", c.simulate);
    if (const json* d = top.object("drives")) {
      ObjectReader r(*d, "drives", error);
      r.take("discover", c.discover);
      if (const json* paths = r.object("paths")) {
        if (!paths->is_array() ||
            !std::ranges::all_of(*paths, [](const json& p) { return p.is_string(); })) {
          r.fail("drives.paths", "must be an array of device paths such as \"/dev/sr0\"");
        } else {
          for (const auto& p : *paths)
            c.drive_paths.push_back(p.get<std::string>());
        }
      }
    }
    top.take("log_level", c.log_level);
    if (const json* l = top.object("logging")) {
      ObjectReader r(*l, "logging", error);
      r.take("queue", c.log_queue);
      r.take("warning_burst", c.warnings.burst);
      r.take("warnings_per_minute", c.warnings.per_minute);
      if (c.log_queue < kMinLogQueue || c.log_queue > kMaxLogQueue)
        r.fail("logging.queue",
               fmt::format("must be between {} and {}", kMinLogQueue, kMaxLogQueue));
      if (c.warnings.burst == 0)
        r.fail("logging.warning_burst", "must be at least 1");
    }
    top.take("tray_lock", c.arbiter.tray_lock);

    if (const json* t = top.object("timeouts")) {
      ObjectReader r(*t, "timeouts", error);
      std::uint32_t default_s =
          static_cast<std::uint32_t>(c.arbiter.timeouts.default_timeout.count());
      std::uint32_t max_s = static_cast<std::uint32_t>(c.arbiter.timeouts.max_timeout.count());
      r.take("default_s", default_s);
      r.take("max_s", max_s);
      std::uint32_t grace_s = static_cast<std::uint32_t>(c.arbiter.watchdog_grace.count());
      r.take("watchdog_grace_s", grace_s);
      c.arbiter.watchdog_grace = std::chrono::seconds(grace_s);
      read_opcode_map(r, "opcodes", "timeouts.opcodes", [&](std::uint8_t op, std::uint32_t s) {
        c.arbiter.timeouts.by_opcode[op] = std::chrono::seconds(s);
      });
      if (default_s == 0 || max_s == 0)
        r.fail("timeouts", "default_s and max_s must be at least 1");
      c.arbiter.timeouts.default_timeout = std::chrono::seconds(default_s);
      c.arbiter.timeouts.max_timeout = std::chrono::seconds(max_s);
    }

    if (const json* cm = top.object("commands")) {
      ObjectReader r(*cm, "commands", error);
      if (const json* allow = r.object("allow")) {
        if (!allow->is_array()) {
          r.fail("commands.allow", "must be an array of opcodes such as \"0xD8\"");
        } else {
          for (const auto& a : *allow) {
            const auto op = a.is_string() ? parse_opcode(a.get<std::string>()) : std::nullopt;
            if (!op) {
              r.fail("commands.allow", fmt::format("holds {}, which is not an opcode string "
                                                   "(\"0x00\" to \"0xFF\")",
                                                   a.dump()));
              break;
            }
            c.arbiter.commands.extra_allowed.insert(*op);
          }
        }
      }
    }

    if (const json* l = top.object("limits")) {
      ObjectReader r(*l, "limits", error);
      auto& lo = c.listener;
      std::uint32_t handshake_ms = static_cast<std::uint32_t>(lo.session.handshake.count());
      std::size_t outbox = lo.session.max_outbox_bytes;
      std::uint32_t idle_s = static_cast<std::uint32_t>(lo.session.idle.count());
      r.take("max_sessions", lo.max_sessions);
      r.take("max_sessions_per_user", lo.max_sessions_per_user);
      r.take("admin_reserved_sessions", lo.admin_reserved_sessions);
      r.take("max_pending_connections", lo.max_pending_connections);
      r.take("handshake_ms", handshake_ms);
      r.take("idle_s", idle_s);
      r.take("max_waits_per_session", c.arbiter.max_waits_per_session);
      r.take("max_waits_per_drive", c.arbiter.max_waits_per_drive);
      r.take("max_json_bytes", lo.session.frames.max_json_bytes);
      r.take("max_transfer_bytes", c.arbiter.max_transfer_bytes);
      r.take("max_outbox_bytes", outbox);
      r.take("max_commands_per_session", c.arbiter.max_commands_per_session);
      r.take("max_commands_per_drive", c.arbiter.max_commands_per_drive);
      r.take("max_payload_bytes_per_session", c.arbiter.max_payload_bytes_per_session);
      r.take("max_deferred_per_session", c.arbiter.max_deferred_per_session);
      if (c.arbiter.max_payload_bytes_per_session < c.arbiter.max_transfer_bytes) {
        r.fail(r.name("max_payload_bytes_per_session"),
               fmt::format("must be at least max_transfer_bytes ({}): one transfer of the "
                           "largest size must fit",
                           c.arbiter.max_transfer_bytes));
      }
      if (c.arbiter.max_commands_per_session == 0 || c.arbiter.max_commands_per_drive == 0)
        r.fail(r.name("max_commands_per_session"), "and max_commands_per_drive must be at least 1");
      lo.session.handshake = std::chrono::milliseconds(handshake_ms);
      lo.session.idle = std::chrono::seconds(idle_s);
      lo.session.max_outbox_bytes = outbox;
      if (!l->contains("admin_reserved_sessions"))
        lo.admin_reserved_sessions = std::min(lo.admin_reserved_sessions, lo.max_sessions / 2);
      if (lo.admin_reserved_sessions >= lo.max_sessions && lo.max_sessions > 0) {
        r.fail("limits.admin_reserved_sessions",
               fmt::format("({}) must be less than limits.max_sessions ({}), or no one but an "
                           "administrator could connect",
                           lo.admin_reserved_sessions, lo.max_sessions));
      }
      if (lo.max_pending_connections == 0)
        r.fail("limits.max_pending_connections", "must be at least 1");
    }
    // N.B. a data-out payload is at most one transfer.
    c.listener.session.frames.max_payload_bytes = c.arbiter.max_transfer_bytes;

    if (const json* f = top.object("simulated_faults")) {
      if (!f->is_object()) {
        top.fail("simulated_faults", "must be an object keyed by drive id");
      } else {
        for (const auto& [drive, spec] : f->items()) {
          const std::string path = "simulated_faults." + drive;
          ObjectReader r(spec, path, error);
          drives::SimulatedFaults faults;
          read_opcode_map(r, "delay_ms", path + ".delay_ms",
                          [&](std::uint8_t op, std::uint32_t ms) {
                            faults.delay[op] = std::chrono::milliseconds(ms);
                          });
          if (const json* hang = r.object("hang")) {
            if (!hang->is_array()) {
              r.fail(path + ".hang", "must be an array of opcodes");
            } else {
              for (const auto& h : *hang) {
                const auto op = h.is_string() ? parse_opcode(h.get<std::string>()) : std::nullopt;
                if (!op) {
                  r.fail(path + ".hang", "must hold opcode strings such as \"0x28\"");
                  break;
                }
                faults.hang.insert(*op);
              }
            }
          }
          r.take("removed", faults.removed);
          c.simulated_faults[drive] = std::move(faults);
        }
      }
    }
    read_simulated_media(top, c, error);
  }  // N.B. readers report unknown keys as they go out of scope
  if (error)
    return *error;
  return c;
}

Result<Done> check_simulated_faults(const Config& config) {
  const auto check = [&](const char* key, const std::string& drive) -> Result<Done> {
    for (std::uint32_t i = 0; i < config.simulate; ++i) {
      if (drive == fmt::format("sim{}", i))
        return Done{};
    }
    return Error{errc::invalid_arg,
                 fmt::format("config: {}.{} names no simulated drive (there are {} simulated "
                             "drives)",
                             key, drive, config.simulate)};
  };
  for (const auto& [drive, faults] : config.simulated_faults) {
    if (auto known = check("simulated_faults", drive); !known)
      return known;
  }
  for (const auto& [drive, medium] : config.simulated_media) {
    if (auto known = check("simulated_media", drive); !known)
      return known;
  }
  return Done{};
}

drives::SimulatedMedium simulated_medium_for(const Config& config, const std::string& id) {
  const auto medium = config.simulated_media.find(id);
  return medium == config.simulated_media.end() ? config.simulated_media_default : medium->second;
}

Result<Config> load_config(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) {
    return Error{errc::invalid_arg, fmt::format("config: cannot open {}", file.string())};
  }
  json document = json::parse(in, nullptr, /*allow_exceptions=*/false, /*ignore_comments=*/true);
  if (document.is_discarded()) {
    return Error{errc::invalid_arg, fmt::format("config: {} is not valid JSON", file.string())};
  }
  return parse_config(document);
}

}  // namespace discarbiter::host
