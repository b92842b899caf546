#include "discarbiter/proto/messages.hpp"

#include <algorithm>
#include <array>
#include <cassert>
#include <charconv>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "discarbiter/proto/frame.hpp"
#include "discarbiter/proto/incoming.hpp"
#include "discarbiter/proto/wire.hpp"

namespace discarbiter::proto {
namespace {

using nlohmann::json;

/// A request field's value as parse_request judges it, from an nlohmann
/// tree or a FlatObject alike: absent, null, a boolean, an unsigned integer,
/// a string, or anything else (`Other`: a negative or fractional number, an
/// array, an object).
struct Other {};
using FieldValue =
    std::variant<std::monostate, std::nullptr_t, bool, std::uint64_t, std::string_view, Other>;

FieldValue field_value(const json& object, const char* key) {
  const auto it = object.find(key);
  if (it == object.end()) {
    return std::monostate();
  }
  if (it->is_null()) {
    return nullptr;
  }
  if (it->is_boolean()) {
    return it->get<bool>();
  }
  if (const auto n = as_unsigned(*it)) {
    return *n;
  }
  if (it->is_string()) {
    return std::string_view(it->get_ref<const std::string&>());
  }
  return Other();
}

FieldValue field_value(const FlatObject& object, const char* key) {
  const auto* v = object.find(key);
  if (!v) {
    return std::monostate();
  }
  return std::visit([](const auto& x) -> FieldValue { return FieldValue(x); }, *v);
}

// Reads the fields of a request object, recording the first problem as an
// Error that names the field. Every accessor returns a usable default after
// a failure so a parser can read straight through and check once.
class FieldReader {
 public:
  explicit FieldReader(const Frame& frame) : frame_(frame) {}

  FieldValue get(const char* key) const {
    return frame_.flat ? field_value(*frame_.flat, key) : field_value(frame_.json, key);
  }

  std::string string(const char* key, bool required = true) {
    const auto v = find<std::string_view>(key, required, "a string");
    return v ? std::string(*v) : std::string();
  }

  bool boolean(const char* key) { return find<bool>(key, false, "true or false").value_or(false); }

  template <typename Int>
  std::optional<Int> integer(const char* key, bool required) {
    const auto raw = find<std::uint64_t>(key, required, "an unsigned integer");
    if (!raw) {
      return std::nullopt;
    }
    if (*raw > std::numeric_limits<Int>::max()) {
      fail(key, fmt::format("is {} and must be at most {}", *raw, std::numeric_limits<Int>::max()));
      return std::nullopt;
    }
    return static_cast<Int>(*raw);
  }

  void fail(const char* key, const std::string& what) {
    if (!error_) {
      error_ = Error{errc::invalid_arg, fmt::format("field '{}' {}", key, what)};
    }
  }

  const std::optional<Error>& error() const { return error_; }

 private:
  template <typename T>
  std::optional<T> find(const char* key, bool required, const char* expected) {
    const FieldValue v = get(key);
    if (std::holds_alternative<std::monostate>(v) || std::holds_alternative<std::nullptr_t>(v)) {
      if (required) {
        fail(key, "is required");
      }
      return std::nullopt;
    }
    if (!std::holds_alternative<T>(v)) {
      fail(key, fmt::format("must be {}", expected));
      return std::nullopt;
    }
    return std::get<T>(v);
  }

  const Frame& frame_;
  std::optional<Error> error_;
};

Result<RequestBody> parse_body(std::string_view op, FieldReader& r, Bytes payload) {
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

/// How deeply an event's JSON may nest. An event the client does not know is
/// kept as text (UnknownEvent), and nlohmann writes text recursively: a frame
/// nested thousands deep would overflow the reader's stack. The service's
/// own events nest three deep.
constexpr std::size_t kMaxEventDepth = 32;

/// Whether `j` nests more than `limit` deep; without recursion, for the same
/// reason.
bool nested_deeper_than(const json& j, std::size_t limit) {
  std::vector<std::pair<const json*, std::size_t>> todo{{&j, 0}};
  while (!todo.empty()) {
    const auto [value, depth] = todo.back();
    todo.pop_back();
    if (!value->is_structured())
      continue;
    if (depth >= limit)
      return true;
    for (const auto& child : *value)
      todo.emplace_back(&child, depth + 1);
  }
  return false;
}

// An event by its name; the last alternative (UnknownEvent) takes any other.
template <std::size_t I = 0>
void read_event(const json& j, std::string_view name, Event& v) {
  using T = std::variant_alternative_t<I, Event>;
  if constexpr (I + 1 == std::variant_size_v<Event>) {
    static_assert(std::is_same_v<T, UnknownEvent>);
    v = j.get<T>();
  } else if (name == T::kName) {
    v = j.get<T>();
  } else {
    read_event<I + 1>(j, name, v);
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
  FieldReader reader(frame);
  const FieldValue id = reader.get("id");
  if (!std::holds_alternative<std::uint64_t>(id)) {
    return {std::nullopt, Error{errc::invalid_arg, std::holds_alternative<std::monostate>(id)
                                                       ? "field 'id' is required"
                                                       : "field 'id' must be an unsigned integer"}};
  }
  const FieldValue op = reader.get("op");
  if (!std::holds_alternative<std::string_view>(op)) {
    return {std::get<std::uint64_t>(id),
            Error{errc::invalid_arg, "field 'op' is required and must be a string"}};
  }
  return {std::get<std::uint64_t>(id),
          parse_body(std::get<std::string_view>(op), reader, std::move(frame.payload))};
}

// ---- each message's fields, named once -----------------------------------------
// fields(const T*) lists a message's JSON keys with its members; to_json and
// from_json both walk that one list (json_by_fields), so a key cannot differ
// between the writer and the reader. An optional member that is empty is left
// out, or written as null where the protocol says so.

namespace {

enum class Empty { omitted, null };

template <typename T, typename M>
struct Field {
  const char* key;
  M T::*member;
  Empty empty = Empty::omitted;
};
template <typename T, typename M>
Field(const char*, M T::*) -> Field<T, M>;
template <typename T, typename M>
Field(const char*, M T::*, Empty) -> Field<T, M>;

template <typename... F>
constexpr std::tuple<F...> list(F... f) {
  return {f...};
}

constexpr auto fields(const HelloReply*) {
  return list(Field{"server_version", &HelloReply::server_version},
              Field{"protocol", &HelloReply::protocol},
              Field{"capabilities", &HelloReply::capabilities},
              Field{"max_transfer", &HelloReply::max_transfer});
}
constexpr auto fields(const OwnerInfo*) {
  return list(Field{"client_name", &OwnerInfo::client_name}, Field{"session", &OwnerInfo::session},
              Field{"pid", &OwnerInfo::pid}, Field{"user", &OwnerInfo::user},
              Field{"uid", &OwnerInfo::uid}, Field{"sid", &OwnerInfo::sid},
              Field{"exe", &OwnerInfo::exe}, Field{"lock_count", &OwnerInfo::lock_count},
              Field{"since", &OwnerInfo::since}, Field{"force", &OwnerInfo::force});
}
constexpr auto fields(const DriveSummary*) {
  return list(Field{"id", &DriveSummary::id}, Field{"path", &DriveSummary::path},
              Field{"backend", &DriveSummary::backend}, Field{"vendor", &DriveSummary::vendor},
              Field{"product", &DriveSummary::product}, Field{"revision", &DriveSummary::revision},
              Field{"state", &DriveSummary::state},
              Field{"owner", &DriveSummary::owner, Empty::null},
              Field{"max_transfer", &DriveSummary::max_transfer});
}
constexpr auto fields(const DrivesReply*) {
  return list(Field{"drives", &DrivesReply::drives});
}
constexpr auto fields(const AcquireReply*) {
  return list(Field{"drive", &AcquireReply::drive}, Field{"lock_count", &AcquireReply::lock_count});
}
constexpr auto fields(const ReleaseReply*) {
  return list(Field{"drive", &ReleaseReply::drive}, Field{"lock_count", &ReleaseReply::lock_count});
}
constexpr auto fields(const OwnerReply*) {
  return list(Field{"drive", &OwnerReply::drive}, Field{"owner", &OwnerReply::owner, Empty::null});
}
constexpr auto fields(const ExecuteReply*) {  // and code, name: see to_json
  return list(Field{"scsi_status", &ExecuteReply::scsi_status},
              Field{"sense", &ExecuteReply::sense}, Field{"data_len", &ExecuteReply::data_len});
}
constexpr auto fields(const SubscribeReply*) {
  return list();
}
constexpr auto fields(const BreakReply*) {
  return list(Field{"drive", &BreakReply::drive}, Field{"broken_owner", &BreakReply::broken_owner});
}
constexpr auto fields(const WaiterStatus*) {
  return list(Field{"client_name", &WaiterStatus::client_name},
              Field{"session", &WaiterStatus::session}, Field{"pid", &WaiterStatus::pid},
              Field{"waiting_since", &WaiterStatus::waiting_since},
              Field{"deadline", &WaiterStatus::deadline});
}
constexpr auto fields(const DriveStats*) {
  return list(Field{"commands", &DriveStats::commands}, Field{"timeouts", &DriveStats::timeouts},
              Field{"errors", &DriveStats::errors});
}
constexpr auto fields(const DriveStatus*) {
  return std::tuple_cat(
      fields(static_cast<const DriveSummary*>(nullptr)),
      list(Field{"lock_state", &DriveStatus::lock_state}, Field{"os_lock", &DriveStatus::os_lock},
           Field{"tray_locked", &DriveStatus::tray_locked},
           Field{"tray_persistent", &DriveStatus::tray_persistent},
           Field{"error", &DriveStatus::error}, Field{"waiters", &DriveStatus::waiters},
           Field{"stats", &DriveStatus::stats}));
}
constexpr auto fields(const ClientStatus*) {
  return list(Field{"session", &ClientStatus::session},
              Field{"client_name", &ClientStatus::client_name}, Field{"pid", &ClientStatus::pid},
              Field{"user", &ClientStatus::user}, Field{"uid", &ClientStatus::uid},
              Field{"sid", &ClientStatus::sid},
              Field{"connected_since", &ClientStatus::connected_since},
              Field{"locks", &ClientStatus::locks});
}
constexpr auto fields(const ArbitrationStatus*) {
  return list(Field{"drives", &ArbitrationStatus::drives},
              Field{"clients", &ArbitrationStatus::clients});
}
constexpr auto fields(const ServiceInfo*) {
  return list(Field{"version", &ServiceInfo::version}, Field{"protocol", &ServiceInfo::protocol},
              Field{"pid", &ServiceInfo::pid}, Field{"platform", &ServiceInfo::platform},
              Field{"endpoint", &ServiceInfo::endpoint}, Field{"uptime_s", &ServiceInfo::uptime_s},
              Field{"log_dropped", &ServiceInfo::log_dropped});
}
constexpr auto fields(const StatusDocument*) {
  return std::tuple_cat(fields(static_cast<const ArbitrationStatus*>(nullptr)),
                        list(Field{"service", &StatusDocument::service}));
}
constexpr auto fields(const StatusReply*) {
  return list(Field{"status", &StatusReply::status});
}
// Requests: "id" and "op" are written by encode_request; an ExecuteRequest's
// data_out is the frame's payload.
constexpr auto fields(const HelloRequest*) {
  return list(Field{"protocol", &HelloRequest::protocol},
              Field{"client_name", &HelloRequest::client_name}, Field{"pid", &HelloRequest::pid});
}
constexpr auto fields(const AcquireRequest*) {
  return list(Field{"drive", &AcquireRequest::drive}, Field{"force", &AcquireRequest::force},
              Field{"wait_ms", &AcquireRequest::wait_ms});
}
template <typename T>
requires std::is_same_v<T, ReleaseRequest> || std::is_same_v<T, OwnerRequest> ||
    std::is_same_v<T, BreakRequest>
constexpr auto fields(const T*) {
  return list(Field{"drive", &T::drive});
}
constexpr auto fields(const ExecuteRequest*) {
  return list(Field{"drive", &ExecuteRequest::drive}, Field{"cdb", &ExecuteRequest::cdb},
              Field{"direction", &ExecuteRequest::direction},
              Field{"data_in_len", &ExecuteRequest::data_in_len},
              Field{"timeout_s", &ExecuteRequest::timeout_s});
}
template <typename T>
requires std::is_same_v<T, ListDrivesRequest> || std::is_same_v<T, StatusRequest> ||
    std::is_same_v<T, SubscribeRequest>
constexpr auto fields(const T*) {
  return list();
}
// Events: "event" is written from kName (read by from_json(Event)).
constexpr auto fields(const Acquired*) {
  return list(Field{"drive", &Acquired::drive}, Field{"owner", &Acquired::owner});
}
constexpr auto fields(const Granted*) {
  return list(Field{"drive", &Granted::drive}, Field{"owner", &Granted::owner});
}
constexpr auto fields(const Released*) {
  return list(Field{"drive", &Released::drive}, Field{"client_name", &Released::client_name},
              Field{"session", &Released::session}, Field{"cause", &Released::cause});
}
constexpr auto fields(const LockBreaker*) {
  return list(Field{"client_name", &LockBreaker::client_name},
              Field{"session", &LockBreaker::session}, Field{"pid", &LockBreaker::pid},
              Field{"user", &LockBreaker::user});
}
constexpr auto fields(const LockBroken*) {
  return list(Field{"drive", &LockBroken::drive}, Field{"by", &LockBroken::by});
}
constexpr auto fields(const DriveArrived*) {
  return list(Field{"drive", &DriveArrived::drive});
}
constexpr auto fields(const DriveRemoved*) {
  return list(Field{"drive", &DriveRemoved::drive}, Field{"reason", &DriveRemoved::reason});
}
constexpr auto fields(const DriveError*) {
  return list(Field{"drive", &DriveError::drive}, Field{"reason", &DriveError::reason});
}
constexpr auto fields(const DriveRecovered*) {
  return list(Field{"drive", &DriveRecovered::drive});
}

template <typename M>
struct is_optional : std::false_type {};
template <typename M>
struct is_optional<std::optional<M>> : std::true_type {};
template <typename M>
struct is_shared_ptr : std::false_type {};
template <typename M>
struct is_shared_ptr<std::shared_ptr<M>> : std::true_type {};

// Bytes travel as hex; everything else as nlohmann writes it.
template <typename M>
void put(json& slot, const M& value) {
  if constexpr (std::is_same_v<M, Bytes>) {
    slot = to_hex(value);
  } else {
    slot = value;
  }
}
template <typename M>
void take(const json& slot, const char* key, M& value) {
  if constexpr (std::is_same_v<M, Bytes>) {
    auto bytes = from_hex(slot.get<std::string>());
    if (!bytes) {
      throw std::invalid_argument(fmt::format("'{}' is not hexadecimal", key));
    }
    value = std::move(*bytes);
  } else if constexpr (std::is_integral_v<M> && !std::is_same_v<M, bool>) {
    // N.B. not get_to: nlohmann casts a float (1e300) or an out-of-range
    // number to M, which is undefined behaviour or a silent wrap.
    const bool fits = slot.is_number_unsigned()  ? std::in_range<M>(slot.get<std::uint64_t>())
                      : slot.is_number_integer() ? std::in_range<M>(slot.get<std::int64_t>())
                                                 : false;
    if (!fits) {
      throw std::invalid_argument(
          fmt::format("'{}' is not an integer that fits its field ({})", key, slot.type_name()));
    }
    value = slot.get<M>();
  } else {
    slot.get_to(value);
  }
}

template <typename F, typename T>
void write_field(json& j, const F& f, const T& v) {
  const auto& value = v.*f.member;
  if constexpr (is_optional<std::decay_t<decltype(value)>>::value) {
    if (value) {
      put(j[f.key], *value);
    } else if (f.empty == Empty::null) {
      j[f.key] = nullptr;
    }
  } else {
    put(j[f.key], value);
  }
}

template <typename F, typename T>
void read_field(const json& j, const F& f, T& v) {
  auto& value = v.*f.member;
  if constexpr (is_optional<std::decay_t<decltype(value)>>::value) {
    const auto it = j.find(f.key);
    value.reset();
    if (it != j.end() && !it->is_null()) {
      take(*it, f.key, value.emplace());
    }
  } else {
    take(j.at(f.key), f.key, value);
  }
}

template <typename T>
void write_fields(json& j, const T& v) {
  j = json::object();
  if constexpr (requires { T::kName; }) {
    j["event"] = T::kName;
  }
  std::apply([&](const auto&... f) { (write_field(j, f, v), ...); },
             fields(static_cast<const T*>(nullptr)));
}

template <typename T>
void read_fields(const json& j, T& v) {
  std::apply([&](const auto&... f) { (read_field(j, f, v), ...); },
             fields(static_cast<const T*>(nullptr)));
}

// A flat object's value as M: false where nlohmann's reading (take) is left
// to judge it (another type, a number out of M's range, a member type the
// flat reader does not hold: Bytes, a nested struct, an array).
template <typename M>
bool take_flat(const FlatObject::Value& slot, M& value) {
  if constexpr (std::is_same_v<M, std::string> || std::is_same_v<M, bool>) {
    if (const auto* v = std::get_if<M>(&slot)) {
      value = *v;
      return true;
    }
  } else if constexpr (std::is_integral_v<M>) {
    if (const auto* n = std::get_if<std::uint64_t>(&slot); n && std::in_range<M>(*n)) {
      value = static_cast<M>(*n);
      return true;
    }
  }
  return false;
}

template <typename F, typename T>
bool read_flat_field(const FlatObject& object, const F& f, T& v) {
  auto& value = v.*f.member;
  const auto* slot = object.find(f.key);
  if constexpr (is_optional<std::decay_t<decltype(value)>>::value) {
    value.reset();
    return !slot || std::holds_alternative<std::nullptr_t>(*slot) ||
           take_flat(*slot, value.emplace());
  } else {
    return slot && take_flat(*slot, value);
  }
}

/// read_fields from a flat object: false where nlohmann is to judge.
template <typename T>
bool read_flat_fields(const FlatObject& object, T& v) {
  return std::apply([&](const auto&... f) { return (read_flat_field(object, f, v) && ...); },
                    fields(static_cast<const T*>(nullptr)));
}

}  // namespace

template <typename T>
T ReplyJson::get() const {
  if (!flat) {
    return tree.get<T>();
  }
  // N.B. ExecuteReply has a from_json of its own (code, name).
  if constexpr (!std::is_same_v<T, ExecuteReply>) {
    T v{};
    if (read_flat_fields(*flat, v)) {
      return v;
    }
  }
  return flat->tree().get<T>();  // nlohmann's value or exception
}

#define DISCARBITER_JSON_BY_FIELDS(Type)   \
  void to_json(json& j, const Type& v) {   \
    write_fields(j, v);                    \
  }                                        \
  void from_json(const json& j, Type& v) { \
    read_fields(j, v);                     \
  }
DISCARBITER_JSON_BY_FIELDS(HelloReply)
DISCARBITER_JSON_BY_FIELDS(OwnerInfo)
DISCARBITER_JSON_BY_FIELDS(DriveSummary)
DISCARBITER_JSON_BY_FIELDS(DrivesReply)
DISCARBITER_JSON_BY_FIELDS(AcquireReply)
DISCARBITER_JSON_BY_FIELDS(ReleaseReply)
DISCARBITER_JSON_BY_FIELDS(OwnerReply)
DISCARBITER_JSON_BY_FIELDS(SubscribeReply)
DISCARBITER_JSON_BY_FIELDS(BreakReply)
DISCARBITER_JSON_BY_FIELDS(WaiterStatus)
DISCARBITER_JSON_BY_FIELDS(DriveStats)
DISCARBITER_JSON_BY_FIELDS(DriveStatus)
DISCARBITER_JSON_BY_FIELDS(ClientStatus)
DISCARBITER_JSON_BY_FIELDS(ArbitrationStatus)
DISCARBITER_JSON_BY_FIELDS(ServiceInfo)
DISCARBITER_JSON_BY_FIELDS(StatusDocument)
DISCARBITER_JSON_BY_FIELDS(StatusReply)
DISCARBITER_JSON_BY_FIELDS(Acquired)
DISCARBITER_JSON_BY_FIELDS(Granted)
DISCARBITER_JSON_BY_FIELDS(Released)
DISCARBITER_JSON_BY_FIELDS(LockBreaker)
DISCARBITER_JSON_BY_FIELDS(LockBroken)
DISCARBITER_JSON_BY_FIELDS(DriveArrived)
DISCARBITER_JSON_BY_FIELDS(DriveRemoved)
DISCARBITER_JSON_BY_FIELDS(DriveError)
DISCARBITER_JSON_BY_FIELDS(DriveRecovered)
#undef DISCARBITER_JSON_BY_FIELDS

// ---- the status document, written straight to text ---------------------------
// Status is the one large reply (a line per session): it is written from the
// structs by walking the same field lists, without building an nlohmann tree,
// byte for byte what to_json and encode_frame write (keys sorted as nlohmann's
// objects keep them; messages_test.cpp holds the two to each other).

namespace {

void write_text(std::string& out, const std::string& s) {
  // N.B. only printable ASCII is written here; anything else (controls, UTF-8,
  // invalid bytes that encode_frame replaces) goes through nlohmann's escaping.
  const bool plain = std::ranges::all_of(
      s, [](char c) { return c >= 0x20 && c <= 0x7E && c != '"' && c != '\\'; });
  if (!plain) {
    out += json(s).dump(-1, ' ', false, json::error_handler_t::replace);
    return;
  }
  out.push_back('"');
  out += s;
  out.push_back('"');
}

template <typename T>
void write_object(std::string& out, const T& v);

template <typename M>
void write_value(std::string& out, const M& value) {
  if constexpr (std::is_same_v<M, std::string>) {
    write_text(out, value);
  } else if constexpr (std::is_same_v<M, Direction>) {
    write_text(out, std::string(to_string(value)));
  } else if constexpr (std::is_same_v<M, Bytes>) {
    write_text(out, to_hex(value));
  } else if constexpr (std::is_same_v<M, bool>) {
    out.append(value ? std::string_view("true") : std::string_view("false"));
  } else if constexpr (std::is_integral_v<M>) {
    std::array<char, 24> digits{};
    const auto end = std::to_chars(digits.data(), digits.data() + digits.size(), value).ptr;
    out.append(digits.data(), end);
  } else if constexpr (std::is_floating_point_v<M>) {
    out += json(value).dump();                     // nlohmann's own shortest form
  } else if constexpr (is_shared_ptr<M>::value) {  // a shared entry (the status snapshot's)
    write_value(out, *value);
  } else if constexpr (requires { value.begin()->second; }) {  // a map: an object
    out.push_back('{');
    for (bool first = true; const auto& [key, item] : value) {
      out += std::exchange(first, false) ? "" : ",";
      write_text(out, key);
      out.push_back(':');
      write_value(out, item);
    }
    out.push_back('}');
  } else if constexpr (requires { value.begin(); }) {
    out.push_back('[');
    for (bool first = true; const auto& item : value) {
      out += std::exchange(first, false) ? "" : ",";
      write_value(out, item);
    }
    out.push_back(']');
  } else {
    write_object(out, value);
  }
}

/// Writes field I of T as `,"key":value` (no comma before the first), or
/// nothing for an empty optional that is omitted.
template <typename T, std::size_t I>
void write_field_text(std::string& out, const T& v, bool& first) {
  constexpr auto f = std::get<I>(fields(static_cast<const T*>(nullptr)));
  constexpr std::string_view name = f.key;  // N.B. its length counted once, here
  const auto& value = v.*f.member;
  const auto key = [&] {
    out.append(std::exchange(first, false) ? std::string_view("\"") : std::string_view(",\""));
    out.append(name);
    out.append(std::string_view("\":"));
  };
  if constexpr (is_optional<std::decay_t<decltype(value)>>::value) {
    if (value) {
      key();
      write_value(out, *value);
    } else if (f.empty == Empty::null) {
      key();
      out.append(std::string_view("null"));
    }
  } else {
    key();
    write_value(out, value);
  }
}

/// T's field writers in the order nlohmann writes the keys (sorted).
template <typename T>
const auto& sorted_field_writers() {
  using Writer = void (*)(std::string&, const T&, bool&);
  constexpr auto all = fields(static_cast<const T*>(nullptr));
  constexpr std::size_t n = std::tuple_size_v<decltype(all)>;
  static const auto writers = [&] {
    std::array<std::pair<std::string_view, Writer>, n> out{};
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      ((out[I] = {std::get<I>(all).key, &write_field_text<T, I>}), ...);
    }
    (std::make_index_sequence<n>{});
    std::ranges::sort(out, {}, [](const auto& w) { return w.first; });
    return out;
  }();
  return writers;
}

/// A key that T's field list does not name, its value already written as
/// JSON text: a reply's "id" and "ok", an event's "event", ExecuteReply's
/// "code" and "name", a request's "id" and "op".
struct ExtraKey {
  std::string_view key;
  std::string_view json;
};

/// `{…}` with T's fields and `extra` (sorted by key) merged in nlohmann's
/// order: the keys sorted.
template <typename T>
void write_object(std::string& out, const T& v, std::span<const ExtraKey> extra) {
  assert(std::ranges::is_sorted(extra, {}, &ExtraKey::key));
  out.push_back('{');
  bool first = true;
  auto next_extra = extra.begin();
  const auto write_extras_before = [&](std::string_view key) {
    for (; next_extra != extra.end() && next_extra->key < key; ++next_extra) {
      out.append(std::exchange(first, false) ? std::string_view("\"") : std::string_view(",\""));
      out.append(next_extra->key);
      out.append(std::string_view("\":"));
      out.append(next_extra->json);
    }
  };
  for (const auto& [key, write] : sorted_field_writers<T>()) {
    write_extras_before(key);
    write(out, v, first);
  }
  write_extras_before(std::string_view("\x7F"));  // after every key: they are ASCII
  out.push_back('}');
}

template <typename T>
void write_object(std::string& out, const T& v) {
  static_assert(
      !requires { T::kName; }, "events are written by write_message");
  write_object(out, v, {});
}

/// A message with its extra keys: the JSON text of a whole frame.
template <typename T>
std::string write_message(const T& v, std::span<const ExtraKey> extra) {
  std::string out;
  out.reserve(128);
  write_object(out, v, extra);
  return out;
}

std::string number_text(std::uint64_t n) {
  std::string out;
  write_value(out, n);
  return out;
}

}  // namespace

// The HRESULT goes as "code" and "name" both.
void to_json(json& j, const ExecuteReply& v) {
  write_fields(j, v);
  j["code"] = hresult(v.code);
  j["name"] = error_name(v.code);
}
void from_json(const json& j, ExecuteReply& v) {
  read_fields(j, v);
  v.code = errc_from_hresult(j.at("code").get<std::uint32_t>()).value_or(errc::ok);
}

void to_json(json& j, const ReplyBody& v) {
  std::visit([&j](const auto& reply) { j = reply; }, v);
}

void to_json(json& j, const UnknownEvent& v) {
  j = json::parse(v.json);
}
void from_json(const json& j, UnknownEvent& v) {
  j.at("event").get_to(v.name);
  v.json = j.dump();
}

void to_json(json& j, const Event& v) {
  std::visit([&j](const auto& event) { j = event; }, v);
}
void from_json(const json& j, Event& v) {
  read_event(j, j.at("event").get<std::string>(), v);
}

std::string_view event_name(const Event& event) {
  return std::visit(
      [](const auto& e) -> std::string_view {
        if constexpr (std::is_same_v<std::decay_t<decltype(e)>, UnknownEvent>) {
          return e.name;
        } else {
          return e.kName;
        }
      },
      event);
}

// ---- frames -----------------------------------------------------------------
// Every frame the service sends, and every request the client sends, is
// written by write_object above, not through an nlohmann tree: the same bytes
// (messages_test.cpp holds each message kind's text to nlohmann's dump).

namespace {

/// `{"id":…,"ok":true,…body}`; an ExecuteReply's HRESULT also goes as "code"
/// and "name".
std::string reply_text(std::uint64_t id, const ReplyBody& body) {
  const std::string id_text = number_text(id);
  return std::visit(
      [&](const auto& reply) {
        if constexpr (std::is_same_v<std::decay_t<decltype(reply)>, ExecuteReply>) {
          const std::string code = number_text(hresult(reply.code));
          std::string name;
          write_text(name, error_name(reply.code));
          const std::array<ExtraKey, 4> extra{
              {{"code", code}, {"id", id_text}, {"name", name}, {"ok", "true"}}};
          return write_message(reply, extra);
        } else {
          const std::array<ExtraKey, 2> extra{{{"id", id_text}, {"ok", "true"}}};
          return write_message(reply, extra);
        }
      },
      body);
}

std::string request_text(const Request& request) {
  const std::string id_text = number_text(request.id);
  std::string op;
  write_text(op, std::string(op_name(request.body)));
  const std::array<ExtraKey, 2> extra{{{"id", id_text}, {"op", op}}};
  return std::visit([&](const auto& body) { return write_message(body, extra); }, request.body);
}

std::span<const std::uint8_t> request_payload(const Request& request) {
  const auto* execute = std::get_if<ExecuteRequest>(&request.body);
  return execute ? std::span<const std::uint8_t>(execute->data_out)
                 : std::span<const std::uint8_t>();
}

/// An error reply's fields, for write_object.
struct ErrorText {
  std::uint32_t code = 0;
  std::string name;
  std::string message;
};
struct ErrorReplyText {
  ErrorText error;
  std::optional<std::uint64_t> id;
  bool ok = false;
};
constexpr auto fields(const ErrorText*) {
  return list(Field{"code", &ErrorText::code}, Field{"name", &ErrorText::name},
              Field{"message", &ErrorText::message});
}
constexpr auto fields(const ErrorReplyText*) {
  return list(Field{"error", &ErrorReplyText::error}, Field{"id", &ErrorReplyText::id, Empty::null},
              Field{"ok", &ErrorReplyText::ok});
}

}  // namespace

Bytes encode_request(const Request& request) {
  const auto payload = request_payload(request);
  Bytes out = encode_text_frame_head(request_text(request), payload.size());
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

Bytes encode_request_head(const Request& request, std::size_t payload_len) {
  return encode_text_frame_head(request_text(request), payload_len);
}

Bytes encode_reply(std::uint64_t id, const ReplyBody& body, std::span<const std::uint8_t> payload) {
  Bytes out = encode_text_frame_head(reply_text(id, body), payload.size());
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

OutgoingFrame encode_reply_parts(std::uint64_t id, const ReplyBody& body, Bytes payload) {
  Bytes head = encode_text_frame_head(reply_text(id, body), payload.size());
  return {std::move(head), std::move(payload)};
}

std::string status_json(const StatusDocument& status) {
  std::string out;
  // About what one session and one drive take, so that the text is not
  // copied as it grows.
  out.reserve(512 + 160 * status.clients.size() + 1024 * status.drives.size());
  write_object(out, status);
  return out;
}

std::string status_json(std::span<const DriveStatus> drives,
                        std::span<const std::shared_ptr<const ClientStatus>> clients,
                        const ServiceInfo& service) {
  std::string out;
  out.reserve(512 + 160 * clients.size() + 1024 * drives.size());
  // N.B. StatusDocument's keys in nlohmann's order, as write_object writes them.
  out += "{\"clients\":";
  write_value(out, clients);
  out += ",\"drives\":";
  write_value(out, drives);
  out += ",\"service\":";
  write_object(out, service);
  out.push_back('}');
  return out;
}

Bytes encode_status_reply(std::uint64_t id, std::string_view status_json) {
  // `{"id":…,"ok":true,"status":…}`: the keys in nlohmann's order, as
  // encode_reply writes a StatusReply.
  std::string head = "{\"id\":";
  write_value(head, id);
  head += ",\"ok\":true,\"status\":";
  const std::size_t length = head.size() + status_json.size() + 1;
  Bytes out;
  out.reserve(kFrameHeaderSize + length);
  for (const std::uint32_t word : {static_cast<std::uint32_t>(length), std::uint32_t{0}}) {
    for (std::size_t i = 0; i < 4; ++i) {
      out.push_back(static_cast<std::uint8_t>(word >> (8 * i)));
    }
  }
  // N.B. memcpy: inserting chars into a vector of bytes goes a byte at a time.
  out.resize(kFrameHeaderSize + length);
  std::memcpy(out.data() + kFrameHeaderSize, head.data(), head.size());
  std::memcpy(out.data() + kFrameHeaderSize + head.size(), status_json.data(), status_json.size());
  out.back() = '}';
  return out;
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

Bytes encode_error_reply(std::optional<std::uint64_t> id, const Error& error) {
  const ErrorReplyText reply{{hresult(error.code), error_name(error.code), error.message}, id};
  std::string text;
  write_object(text, reply);
  return encode_text_frame_head(text, 0);
}

Bytes encode_event(const Event& event) {
  return std::visit(
      [](const auto& e) {
        if constexpr (std::is_same_v<std::decay_t<decltype(e)>, UnknownEvent>) {
          return encode_frame(json(e));  // the service never sends one
        } else {
          std::string name;
          write_text(name, std::string(e.kName));
          const std::array<ExtraKey, 1> extra{{{"event", name}}};
          return encode_text_frame_head(write_message(e, extra), 0);
        }
      },
      event);
}

static_assert(std::variant_size_v<ReplyBody> == 9,
              "ReplyJson::get is instantiated here for each of ReplyBody's types");
template HelloReply ReplyJson::get<HelloReply>() const;
template DrivesReply ReplyJson::get<DrivesReply>() const;
template StatusReply ReplyJson::get<StatusReply>() const;
template AcquireReply ReplyJson::get<AcquireReply>() const;
template ReleaseReply ReplyJson::get<ReleaseReply>() const;
template OwnerReply ReplyJson::get<OwnerReply>() const;
template ExecuteReply ReplyJson::get<ExecuteReply>() const;
template SubscribeReply ReplyJson::get<SubscribeReply>() const;
template BreakReply ReplyJson::get<BreakReply>() const;

Result<Incoming> parse_incoming(Frame frame) {
  if (frame.flat && frame.flat->find("event")) {
    frame.json = frame.flat->tree();  // events are read from the tree
    frame.flat.reset();
  }
  const json& j = frame.json;  // null when `flat` holds the members
  if (const auto ev = j.find("event"); ev != j.end()) {
    if (!ev->is_string()) {
      return Error{errc::bad_frame, "event frame's 'event' is not a string"};
    }
    if (nested_deeper_than(j, kMaxEventDepth)) {
      return Error{errc::bad_frame,
                   fmt::format("event frame nests more than {} levels deep", kMaxEventDepth)};
    }
    try {
      return Incoming{j.get<Event>()};
    } catch (const std::exception& e) {  // nlohmann's, or a field's own check
      return Error{errc::bad_frame,
                   fmt::format("'{}' event: {}", ev->get_ref<const std::string&>(), e.what())};
    }
  }
  const FieldReader reader(frame);
  Reply reply;
  if (const FieldValue id = reader.get("id"); std::holds_alternative<std::uint64_t>(id)) {
    reply.id = std::get<std::uint64_t>(id);
  }
  const FieldValue ok = reader.get("ok");
  if (!std::holds_alternative<bool>(ok)) {
    return Error{errc::bad_frame, "reply frame has no boolean 'ok'"};
  }
  if (!std::get<bool>(ok)) {
    // N.B. "error" is an object: never in a flat one, so j.find fails alike.
    const auto e = j.find("error");
    if (e == j.end() || !e->is_object() || !e->contains("code") || !as_unsigned(e->at("code"))) {
      return Error{errc::bad_frame, "error reply has no numeric 'error.code'"};
    }
    const auto message = e->find("message");
    if (message != e->end() && !message->is_string()) {
      return Error{errc::bad_frame, "error reply's 'error.message' is not a string"};
    }
    const auto code = e->at("code").get<std::uint32_t>();
    const auto known = errc_from_hresult(code);
    reply.error = Error{known.value_or(errc::fail),
                        (message == e->end() ? std::string() : message->get<std::string>()) +
                            (known ? "" : fmt::format(" ({})", error_name(code)))};
  }
  reply.body = ReplyJson{std::move(frame.json), std::move(frame.flat)};
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
