#include "discarbiter/client.hpp"

#include <array>
#include <cstdlib>

#include <fmt/format.h>

#include <deque>
#include <mutex>

#include <nlohmann/json.hpp>

#include "connection.hpp"
#include "discarbiter/process.hpp"
#include "discarbiter/proto/frame.hpp"
#include "discarbiter/proto/incoming.hpp"
#include "discarbiter/proto/wire.hpp"

namespace discarbiter {
namespace {

// How long past its own deadline a request may take to come back: the
// service adds a TEST UNIT READY (and PREVENT) to a granted acquire.
constexpr std::chrono::seconds kServiceMargin{60};

}  // namespace

namespace detail {

// N.B. interim: one mutex serialises the session's requests (thread-safe,
// but a status() waits behind a long command).
class Session {
 public:
  std::mutex mutex;
  std::unique_ptr<Connection> connection;
  std::string endpoint;
  std::chrono::milliseconds request_timeout{};
  std::uint64_t next_id = 1;
  proto::FrameDecoder decoder;
  std::deque<proto::Event> events;
  bool subscribed = false;
  std::uint64_t events_dropped = 0;
  proto::HelloReply server;

  proto::Reply call(proto::RequestBody body, std::chrono::milliseconds timeout);
  template <typename Reply>
  Reply call_for(proto::RequestBody body, std::chrono::milliseconds timeout,
                 proto::Bytes* payload = nullptr);
  std::optional<proto::Frame> read_frame(std::chrono::steady_clock::time_point deadline);
  void queue_event(proto::Event event);
};

}  // namespace detail

namespace {

detail::Session& live(const std::shared_ptr<detail::Session>& session) {
  if (!session)
    throw ServiceError(Error{errc::connection_lost, "this client was moved from"});
  return *session;
}

}  // namespace

ServiceError::ServiceError(const Error& error)
    : std::system_error(make_error_code(error.code),
                        fmt::format("{}: {}", error_name(error.code), error.message)),
      error_(error) {}

ScsiCommand ScsiCommand::inquiry(std::uint8_t allocation) {
  return {{0x12, 0, 0, 0, allocation, 0}, proto::Direction::in, allocation, {}, std::nullopt};
}

ScsiCommand ScsiCommand::eject() {
  // START STOP UNIT with LoEj=1, Start=0.
  return {{0x1B, 0, 0, 0, 0x02, 0}, proto::Direction::none, 0, {}, std::nullopt};
}

ExclusiveAccess::ExclusiveAccess(std::weak_ptr<detail::Session> session, std::string drive,
                                 std::uint32_t count)
    : session_(std::move(session)), drive_(std::move(drive)), lock_count_(count) {}

ExclusiveAccess::ExclusiveAccess(ExclusiveAccess&& other) noexcept
    : session_(std::exchange(other.session_, {})),
      drive_(std::move(other.drive_)),
      lock_count_(other.lock_count_) {}

ExclusiveAccess::~ExclusiveAccess() {
  auto session = session_.lock();
  if (!session)
    return;
  try {
    std::lock_guard lock(session->mutex);
    (void)session->call_for<proto::ReleaseReply>(proto::ReleaseRequest{drive_},
                                                 session->request_timeout + kServiceMargin);
  } catch (...) {
    // N.B. the lock must not stay behind: a session that cannot release is
    // closed, and a closed session's locks die with it.
    session->connection.reset();
  }
}

std::uint32_t ExclusiveAccess::release() {
  auto session = std::exchange(session_, {}).lock();
  if (!session) {
    throw ServiceError(Error{errc::not_locked, "this lock was already released"});
  }
  std::lock_guard lock(session->mutex);
  return session
      ->call_for<proto::ReleaseReply>(proto::ReleaseRequest{drive_},
                                      session->request_timeout + kServiceMargin)
      .lock_count;
}

std::string Client::default_endpoint() {
  if (const char* env = std::getenv("DISCARBITER_ENDPOINT"); env && *env) {
    return env;
  }
  return platform_default_endpoint();
}

template <typename Reply>
Reply detail::Session::call_for(proto::RequestBody body, std::chrono::milliseconds timeout,
                                proto::Bytes* payload) {
  const std::string_view op = proto::op_name(body);
  auto reply = call(std::move(body), timeout);
  if (payload)
    *payload = std::move(reply.payload);
  try {
    return reply.body.get<Reply>();
  } catch (const std::exception& e) {  // nlohmann's, or a field's own check
    throw ServiceError(Error{errc::bad_frame, fmt::format("{} reply: {}", op, e.what())});
  }
}

Client::Client(ConnectOptions options) : session_(std::make_shared<detail::Session>()) {
  auto& s = *session_;
  s.endpoint = options.endpoint.empty() ? default_endpoint() : options.endpoint;
  s.request_timeout = options.timeout;
  s.connection =
      connect_to_service(s.endpoint, std::chrono::steady_clock::now() + s.request_timeout);
  s.server = s.call_for<proto::HelloReply>(
      proto::HelloRequest{proto::kProtocolVersion, options.client_name, current_process_id()},
      s.request_timeout);
}

Client::~Client() {
  if (session_) {
    std::lock_guard lock(session_->mutex);
    session_->connection.reset();
  }
}

Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;

std::optional<proto::Frame> detail::Session::read_frame(
    std::chrono::steady_clock::time_point deadline) {
  std::array<std::uint8_t, 16 * 1024> buffer{};
  for (;;) {
    auto out = decoder.next();
    if (out.status == proto::FrameDecoder::Status::frame)
      return std::move(out.frame);
    if (out.status == proto::FrameDecoder::Status::error ||
        out.status == proto::FrameDecoder::Status::oversize)
      throw ServiceError(out.error);
    const std::size_t n = connection->read_some(buffer, deadline);
    if (n == 0)
      return std::nullopt;
    decoder.feed({buffer.data(), n});
  }
}

proto::Reply detail::Session::call(proto::RequestBody body, std::chrono::milliseconds timeout) {
  if (!connection) {
    throw ServiceError(Error{errc::connection_lost, "this client is not connected"});
  }
  const std::uint64_t id = next_id++;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  connection->write_all(proto::encode_request(proto::Request{id, std::move(body)}), deadline);
  for (;;) {
    auto frame = read_frame(deadline);
    if (!frame) {
      // N.B. the request may still complete in the service; this session is
      // no longer in step with it, so it is closed (and its locks die).
      connection.reset();
      throw ServiceError(
          Error{errc::connection_lost,
                fmt::format("the service did not answer within {} ms", timeout.count())});
    }
    auto incoming = proto::parse_incoming(std::move(*frame));
    if (!incoming)
      throw ServiceError(incoming.error());
    if (auto* event = std::get_if<proto::Event>(&*incoming)) {
      queue_event(std::move(*event));
      continue;
    }
    auto& reply = std::get<proto::Reply>(*incoming);
    if (reply.id && *reply.id != id)
      continue;  // a reply to a request we gave up on
    if (reply.error)
      throw ServiceError(*reply.error);
    if (!reply.id) {
      throw ServiceError(Error{errc::bad_frame, "reply without an id"});
    }
    return std::move(reply);
  }
}

void detail::Session::queue_event(proto::Event event) {
  if (!subscribed)
    return;
  if (events.size() == Client::kMaxQueuedEvents) {
    events.pop_front();
    ++events_dropped;
  }
  events.push_back(std::move(event));
}

const proto::HelloReply& Client::server() const {
  return live(session_).server;
}

const std::string& Client::endpoint() const {
  return live(session_).endpoint;
}

std::uint32_t Client::max_transfer() const {
  (void)live(session_);
  return proto::kDefaultMaxPayloadBytes;  // N.B. interim, until hello says it
}

std::uint32_t Client::max_transfer(const std::string& drive) {
  for (const auto& d : drives()) {
    if (d.id == drive)
      return max_transfer();
  }
  throw ServiceError(Error{errc::dev_not_exist, fmt::format("no drive '{}'", drive)});
}

std::vector<proto::DriveSummary> Client::drives() {
  auto& s = live(session_);
  std::lock_guard lock(s.mutex);
  return s.call_for<proto::DrivesReply>(proto::ListDrivesRequest{}, s.request_timeout).drives;
}

proto::StatusDocument Client::status() {
  auto& s = live(session_);
  std::lock_guard lock(s.mutex);
  return s.call_for<proto::StatusReply>(proto::StatusRequest{}, s.request_timeout).status;
}

std::string Client::status_json() {
  nlohmann::json j = status();
  return j.dump();
}

std::uint32_t Client::acquire_exclusive_access(const std::string& drive, AcquireOptions options) {
  auto& s = live(session_);
  std::lock_guard lock(s.mutex);
  const auto wait_ms = static_cast<std::uint32_t>(options.wait.count());
  return s
      .call_for<proto::AcquireReply>(proto::AcquireRequest{drive, options.force, wait_ms},
                                     s.request_timeout + options.wait + kServiceMargin)
      .lock_count;
}

std::uint32_t Client::release_exclusive_access(const std::string& drive) {
  auto& s = live(session_);
  std::lock_guard lock(s.mutex);
  return s
      .call_for<proto::ReleaseReply>(proto::ReleaseRequest{drive},
                                     s.request_timeout + kServiceMargin)
      .lock_count;
}

std::optional<proto::OwnerInfo> Client::exclusive_access_owner(const std::string& drive) {
  auto& s = live(session_);
  std::lock_guard lock(s.mutex);
  return s.call_for<proto::OwnerReply>(proto::OwnerRequest{drive}, s.request_timeout).owner;
}

proto::OwnerInfo Client::break_exclusive_access(const std::string& drive) {
  auto& s = live(session_);
  std::lock_guard lock(s.mutex);
  return s
      .call_for<proto::BreakReply>(proto::BreakRequest{drive}, s.request_timeout + kServiceMargin)
      .broken_owner;
}

ScsiReply Client::execute(const std::string& drive, const ScsiCommand& command) {
  auto& s = live(session_);
  std::lock_guard lock(s.mutex);
  // The service clamps the timeout; wait for the longest it may allow.
  const auto command_time = std::chrono::seconds(command.timeout_s.value_or(3600));
  proto::Bytes data;
  const auto r = s.call_for<proto::ExecuteReply>(
      proto::ExecuteRequest{drive, command.cdb, command.direction, command.data_in_len,
                            command.timeout_s, command.data_out},
      s.request_timeout + command_time + kServiceMargin, &data);
  return ScsiReply{r.code, r.scsi_status, r.sense, std::move(data)};
}

namespace {

// N.B. interim: copies through execute().
CommandResult to_result(ScsiReply reply, std::uint32_t sent) {
  return CommandResult{reply.code, reply.scsi_status, std::move(reply.sense),
                       sent ? sent : static_cast<std::uint32_t>(reply.data.size())};
}

}  // namespace

CommandResult Client::send_command_no_data(const std::string& drive,
                                           std::span<const std::uint8_t> cdb,
                                           std::optional<std::uint32_t> timeout_s) {
  return to_result(
      execute(drive,
              ScsiCommand{{cdb.begin(), cdb.end()}, proto::Direction::none, 0, {}, timeout_s}),
      0);
}

CommandResult Client::send_command_send_data_to_device(const std::string& drive,
                                                       std::span<const std::uint8_t> cdb,
                                                       std::span<const std::uint8_t> data,
                                                       std::optional<std::uint32_t> timeout_s) {
  return to_result(execute(drive, ScsiCommand{{cdb.begin(), cdb.end()},
                                              proto::Direction::out,
                                              0,
                                              {data.begin(), data.end()},
                                              timeout_s}),
                   static_cast<std::uint32_t>(data.size()));
}

CommandResult Client::send_command_get_data_from_device(const std::string& drive,
                                                        std::span<const std::uint8_t> cdb,
                                                        std::span<std::uint8_t> buffer,
                                                        std::optional<std::uint32_t> timeout_s) {
  auto reply = execute(drive, ScsiCommand{{cdb.begin(), cdb.end()},
                                          proto::Direction::in,
                                          static_cast<std::uint32_t>(buffer.size()),
                                          {},
                                          timeout_s});
  const auto n = std::min(reply.data.size(), buffer.size());
  std::copy_n(reply.data.begin(), n, buffer.begin());
  reply.data.resize(n);
  return to_result(std::move(reply), 0);
}

ExclusiveAccess Client::acquire(const std::string& drive, AcquireOptions options) {
  const auto count = acquire_exclusive_access(drive, options);
  return ExclusiveAccess(session_, drive, count);
}

void Client::subscribe() {
  auto& s = live(session_);
  std::lock_guard lock(s.mutex);
  (void)s.call(proto::SubscribeRequest{}, s.request_timeout);
  s.subscribed = true;
}

std::optional<proto::Event> Client::next_event(std::chrono::milliseconds timeout) {
  auto& s = live(session_);
  std::lock_guard lock(s.mutex);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (s.events.empty()) {
    auto frame = s.read_frame(deadline);
    if (!frame)
      return std::nullopt;
    auto incoming = proto::parse_incoming(std::move(*frame));
    if (!incoming)
      throw ServiceError(incoming.error());
    if (auto* event = std::get_if<proto::Event>(&*incoming)) {
      s.events.push_back(std::move(*event));
    }
  }
  auto event = std::move(s.events.front());
  s.events.pop_front();
  return event;
}

std::uint64_t Client::events_dropped() const {
  auto& s = live(session_);
  std::lock_guard lock(s.mutex);
  return s.events_dropped;
}

}  // namespace discarbiter
