#include "discarbiter/proto/messages.hpp"

#include <array>
#include <limits>

#include <fmt/format.h>

namespace discarbiter::proto {
namespace {

using nlohmann::json;

// Reads the fields of a request object, recording the first problem as an
// Error that names the field. Every accessor returns a usable default after
// a failure so a parser can read straight through and check once.
class FieldReader {
 public:
  explicit FieldReader(const json& object) : object_(object) {}

  std::string string(const char* key, bool required = true) {
    const json* v = find(key, required, json::value_t::string, "a string");
    return v ? v->get<std::string>() : std::string();
  }

  bool boolean(const char* key) {
    const json* v = find(key, false, json::value_t::boolean, "true or false");
    return v ? v->get<bool>() : false;
  }

  template <typename Int>
  std::optional<Int> integer(const char* key, bool required) {
    const json* v = find(key, required, json::value_t::number_unsigned, "an unsigned integer");
    if (!v) {
      return std::nullopt;
    }
    const auto raw = *as_unsigned(*v);
    if (raw > std::numeric_limits<Int>::max()) {
      fail(key, fmt::format("is {} and must be at most {}", raw, std::numeric_limits<Int>::max()));
      return std::nullopt;
    }
    return static_cast<Int>(raw);
  }

  void fail(const char* key, const std::string& what) {
    if (!error_) {
      error_ = Error{errc::invalid_arg, fmt::format("field '{}' {}", key, what)};
    }
  }

  const std::optional<Error>& error() const { return error_; }

 private:
  const json* find(const char* key, bool required, json::value_t type, const char* expected) {
    const auto it = object_.find(key);
    if (it == object_.end() || it->is_null()) {
      if (required) {
        fail(key, "is required");
      }
      return nullptr;
    }
    const bool matches =
        type == json::value_t::number_unsigned ? as_unsigned(*it).has_value() : it->type() == type;
    if (!matches) {
      fail(key, fmt::format("must be {}", expected));
      return nullptr;
    }
    return &*it;
  }

  const json& object_;
  std::optional<Error> error_;
};

Result<RequestBody> parse_body(std::string_view op, const json& j, Bytes payload) {
  FieldReader r(j);
  RequestBody body;
  if (op == "hello") {
    HelloRequest v;
    v.protocol = static_cast<int>(r.integer<std::uint16_t>("protocol", true).value_or(0));
    v.client_name = r.string("client_name");
    v.pid = r.integer<std::uint32_t>("pid", false).value_or(0);
    body = std::move(v);
  } else if (op == "list_drives") {
    body = ListDrivesRequest{};
  } else if (op == "status") {
    body = StatusRequest{};
  } else if (op == "acquire") {
    AcquireRequest v;
    v.drive = r.string("drive");
    v.force = r.boolean("force");
    v.wait_ms = r.integer<std::uint32_t>("wait_ms", false).value_or(0);
    body = std::move(v);
  } else if (op == "release") {
    body = ReleaseRequest{r.string("drive")};
  } else if (op == "owner") {
    body = OwnerRequest{r.string("drive")};
  } else if (op == "execute") {
    ExecuteRequest v;
    v.drive = r.string("drive");
    const std::string cdb = r.string("cdb");
    const std::string direction = r.string("direction", false);
    v.data_in_len = r.integer<std::uint32_t>("data_in_len", false).value_or(0);
    v.timeout_s = r.integer<std::uint32_t>("timeout_s", false);
    if (!r.error()) {
      auto bytes = from_hex(cdb);
      if (!bytes) {
        r.fail("cdb", "must be hexadecimal bytes");
      } else if (bytes->size() < 6 || bytes->size() > 16) {
        r.fail("cdb", fmt::format("has {} bytes; a CDB has 6 to 16", bytes->size()));
      } else {
        v.cdb = std::move(*bytes);
      }
      const auto d = direction.empty() ? Direction::none : direction_from_string(direction);
      if (!d) {
        r.fail("direction", "must be \"none\", \"in\" or \"out\"");
      } else {
        v.direction = *d;
      }
    }
    if (!r.error()) {
      if (v.direction != Direction::in && v.data_in_len != 0) {
        r.fail("data_in_len", "is only allowed with direction \"in\"");
      } else if (v.direction == Direction::out && payload.empty()) {
        r.fail("direction", "is \"out\" but the frame carries no payload");
      } else if (v.direction != Direction::out && !payload.empty()) {
        r.fail("direction", "must be \"out\" when the frame carries a payload");
      }
    }
    v.data_out = std::move(payload);
    body = std::move(v);
  } else if (op == "subscribe") {
    body = SubscribeRequest{};
  } else if (op == "break") {
    body = BreakRequest{r.string("drive")};
  } else {
    return Error{errc::unknown_request, fmt::format("unknown request op '{}'", op)};
  }
  if (r.error()) {
    return *r.error();
  }
  return body;
}

template <typename T>
void set_optional(json& j, const char* key, const std::optional<T>& v) {
  if (v) {
    j[key] = *v;
  }
}

template <typename T>
void get_optional(const json& j, const char* key, std::optional<T>& v) {
  const auto it = j.find(key);
  if (it != j.end() && !it->is_null()) {
    v = it->get<T>();
  } else {
    v.reset();
  }
}

}  // namespace

std::string_view op_name(const RequestBody& body) {
  static constexpr std::array<std::string_view, std::variant_size_v<RequestBody>> kNames{
      "hello", "list_drives", "status",    "acquire", "release",
      "owner", "execute",     "subscribe", "break"};
  return kNames[body.index()];
}

ParsedRequest parse_request(Frame frame) {
  const json& j = frame.json;
  ParsedRequest out{std::nullopt, Error{errc::invalid_arg, "field 'id' is required"}};
  const auto id = j.find("id");
  if (id == j.end() || !as_unsigned(*id)) {
    if (id != j.end()) {
      out.body = Error{errc::invalid_arg, "field 'id' must be an unsigned integer"};
    }
    return out;
  }
  out.id = as_unsigned(*id);
  const auto op = j.find("op");
  if (op == j.end() || !op->is_string()) {
    out.body = Error{errc::invalid_arg, "field 'op' is required and must be a string"};
    return out;
  }
  out.body = parse_body(op->get_ref<const std::string&>(), j, std::move(frame.payload));
  return out;
}

Bytes encode_request(const Request& request) {
  json j{{"id", request.id}, {"op", op_name(request.body)}};
  std::span<const std::uint8_t> payload;
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, HelloRequest>) {
          j["protocol"] = v.protocol;
          j["client_name"] = v.client_name;
          j["pid"] = v.pid;
        } else if constexpr (std::is_same_v<T, AcquireRequest>) {
          j["drive"] = v.drive;
          j["force"] = v.force;
          j["wait_ms"] = v.wait_ms;
        } else if constexpr (std::is_same_v<T, ReleaseRequest> || std::is_same_v<T, OwnerRequest> ||
                             std::is_same_v<T, BreakRequest>) {
          j["drive"] = v.drive;
        } else if constexpr (std::is_same_v<T, ExecuteRequest>) {
          j["drive"] = v.drive;
          j["cdb"] = to_hex(v.cdb);
          j["direction"] = to_string(v.direction);
          j["data_in_len"] = v.data_in_len;
          set_optional(j, "timeout_s", v.timeout_s);
          payload = v.data_out;
        }
      },
      request.body);
  return encode_frame(j, payload);
}

void to_json(json& j, const HelloReply& v) {
  j = json{{"server_version", v.server_version},
           {"protocol", v.protocol},
           {"capabilities", v.capabilities}};
}
void from_json(const json& j, HelloReply& v) {
  j.at("server_version").get_to(v.server_version);
  j.at("protocol").get_to(v.protocol);
  j.at("capabilities").get_to(v.capabilities);
}

void to_json(json& j, const OwnerInfo& v) {
  j = json{{"client_name", v.client_name},
           {"session", v.session},
           {"pid", v.pid},
           {"user", v.user},
           {"exe", v.exe},
           {"lock_count", v.lock_count},
           {"since", v.since},
           {"force", v.force}};
  set_optional(j, "uid", v.uid);
  set_optional(j, "sid", v.sid);
}
void from_json(const json& j, OwnerInfo& v) {
  j.at("client_name").get_to(v.client_name);
  j.at("session").get_to(v.session);
  j.at("pid").get_to(v.pid);
  j.at("user").get_to(v.user);
  j.at("exe").get_to(v.exe);
  j.at("lock_count").get_to(v.lock_count);
  j.at("since").get_to(v.since);
  j.at("force").get_to(v.force);
  get_optional(j, "uid", v.uid);
  get_optional(j, "sid", v.sid);
}

void to_json(json& j, const DriveSummary& v) {
  j = json{{"id", v.id},         {"path", v.path},       {"backend", v.backend},
           {"vendor", v.vendor}, {"product", v.product}, {"revision", v.revision},
           {"state", v.state},   {"owner", nullptr}};
  if (v.owner) {
    j["owner"] = *v.owner;
  }
}
void from_json(const json& j, DriveSummary& v) {
  j.at("id").get_to(v.id);
  j.at("path").get_to(v.path);
  j.at("backend").get_to(v.backend);
  j.at("vendor").get_to(v.vendor);
  j.at("product").get_to(v.product);
  j.at("revision").get_to(v.revision);
  j.at("state").get_to(v.state);
  get_optional(j, "owner", v.owner);
}

void to_json(json& j, const ExecuteReply& v) {
  j = json{{"scsi_status", v.scsi_status}, {"sense", to_hex(v.sense)}, {"data_len", v.data_len}};
}
void from_json(const json& j, ExecuteReply& v) {
  j.at("scsi_status").get_to(v.scsi_status);
  auto sense = from_hex(j.at("sense").get<std::string>());
  if (!sense) {
    throw std::invalid_argument("execute reply: 'sense' is not hexadecimal");
  }
  v.sense = std::move(*sense);
  j.at("data_len").get_to(v.data_len);
}

json make_reply(std::uint64_t id, json fields) {
  json j = fields.is_object() ? std::move(fields) : json::object();
  j["id"] = id;
  j["ok"] = true;
  return j;
}

json make_error_reply(std::optional<std::uint64_t> id, const Error& error) {
  json j{{"ok", false},
         {"error",
          {{"code", hresult(error.code)},
           {"name", error_name(error.code)},
           {"message", error.message}}}};
  j["id"] = id ? json(*id) : json(nullptr);
  return j;
}

json make_event(std::string_view name, json fields) {
  json j = fields.is_object() ? std::move(fields) : json::object();
  j["event"] = name;
  return j;
}

Result<Incoming> parse_incoming(Frame frame) {
  const json& j = frame.json;
  if (const auto ev = j.find("event"); ev != j.end()) {
    if (!ev->is_string()) {
      return Error{errc::bad_frame, "event frame's 'event' is not a string"};
    }
    return Incoming{Event{ev->get<std::string>(), j}};
  }
  Reply reply;
  if (const auto id = j.find("id"); id != j.end()) {
    reply.id = as_unsigned(*id);
  }
  const auto ok = j.find("ok");
  if (ok == j.end() || !ok->is_boolean()) {
    return Error{errc::bad_frame, "reply frame has no boolean 'ok'"};
  }
  if (!ok->get<bool>()) {
    const auto e = j.find("error");
    if (e == j.end() || !e->is_object() || !e->contains("code") || !as_unsigned(e->at("code"))) {
      return Error{errc::bad_frame, "error reply has no numeric 'error.code'"};
    }
    const auto code = e->at("code").get<std::uint32_t>();
    const auto known = errc_from_hresult(code);
    reply.error = Error{
        known.value_or(errc::fail),
        e->value("message", std::string()) + (known ? "" : fmt::format(" ({})", error_name(code)))};
  }
  reply.body = std::move(frame.json);
  reply.payload = std::move(frame.payload);
  return Incoming{std::move(reply)};
}

std::optional<std::uint64_t> as_unsigned(const json& j) {
  if (j.is_number_unsigned())
    return j.get<std::uint64_t>();
  if (j.is_number_integer() && j.get<std::int64_t>() >= 0) {
    return static_cast<std::uint64_t>(j.get<std::int64_t>());
  }
  return std::nullopt;
}

std::string to_hex(std::span<const std::uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const auto b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xF]);
  }
  return out;
}

std::optional<Bytes> from_hex(std::string_view text) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9')
      return c - '0';
    if (c >= 'a' && c <= 'f')
      return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
      return c - 'A' + 10;
    return -1;
  };
  Bytes out;
  int high = -1;
  for (const char c : text) {
    if (c == ' ') {
      if (high >= 0) {
        return std::nullopt;  // a space inside a byte
      }
      continue;
    }
    const int n = nibble(c);
    if (n < 0) {
      return std::nullopt;
    }
    if (high < 0) {
      high = n;
    } else {
      out.push_back(static_cast<std::uint8_t>((high << 4) | n));
      high = -1;
    }
  }
  if (high >= 0) {
    return std::nullopt;
  }
  return out;
}

std::string_view to_string(Direction d) {
  switch (d) {
    case Direction::in:
      return "in";
    case Direction::out:
      return "out";
    case Direction::none:
      break;
  }
  return "none";
}

std::optional<Direction> direction_from_string(std::string_view s) {
  if (s == "none")
    return Direction::none;
  if (s == "in")
    return Direction::in;
  if (s == "out")
    return Direction::out;
  return std::nullopt;
}

std::string format_rfc3339(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  const auto ms = time_point_cast<milliseconds>(t);
  const auto day = floor<days>(ms);
  const year_month_day ymd{day};
  const hh_mm_ss hms{ms - day};
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                     hms.hours().count(), hms.minutes().count(), hms.seconds().count(),
                     hms.subseconds().count());
}

}  // namespace discarbiter::proto
