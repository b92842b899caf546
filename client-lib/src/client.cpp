#include "discarbiter/client.hpp"

#include <array>
#include <cstdlib>

#include <fmt/format.h>

#include "connection.hpp"
#include "discarbiter/process.hpp"

namespace discarbiter {
namespace {

// How long past its own deadline a request may take to come back: the
// service adds a TEST UNIT READY (and PREVENT) to a granted acquire.
constexpr std::chrono::seconds kServiceMargin{60};

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

ExclusiveAccess::ExclusiveAccess(ExclusiveAccess&& other) noexcept
    : client_(std::exchange(other.client_, nullptr)),
      drive_(std::move(other.drive_)),
      lock_count_(other.lock_count_) {}

ExclusiveAccess::~ExclusiveAccess() {
  if (!client_)
    return;
  try {
    client_->release_exclusive_access(drive_);
  } catch (const ServiceError&) {
    // N.B. nothing to do: if the service cannot be told, the session is
    // broken, and a broken session's locks die with it.
  }
}

std::uint32_t ExclusiveAccess::release() {
  Client* client = std::exchange(client_, nullptr);
  if (!client) {
    throw ServiceError(Error{errc::not_locked, "this lock was already released"});
  }
  return client->release_exclusive_access(drive_);
}

std::string Client::default_endpoint() {
  if (const char* env = std::getenv("DISCARBITER_ENDPOINT"); env && *env) {
    return env;
  }
  return platform_default_endpoint();
}

template <typename Reply>
Reply Client::call_for(proto::RequestBody body, std::chrono::milliseconds timeout,
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

Client::Client(ConnectOptions options)
    : endpoint_(options.endpoint.empty() ? default_endpoint() : options.endpoint),
      timeout_(options.timeout) {
  connection_ = connect_to_service(endpoint_, std::chrono::steady_clock::now() + timeout_);
  server_ = call_for<proto::HelloReply>(
      proto::HelloRequest{proto::kProtocolVersion, options.client_name, current_process_id()},
      timeout_);
}

Client::~Client() = default;
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;

std::optional<proto::Frame> Client::read_frame(std::chrono::steady_clock::time_point deadline) {
  std::array<std::uint8_t, 16 * 1024> buffer{};
  for (;;) {
    auto out = decoder_.next();
    if (out.status == proto::FrameDecoder::Status::frame)
      return std::move(out.frame);
    if (out.status == proto::FrameDecoder::Status::error ||
        out.status == proto::FrameDecoder::Status::oversize)
      throw ServiceError(out.error);
    const std::size_t n = connection_->read_some(buffer, deadline);
    if (n == 0)
      return std::nullopt;
    decoder_.feed({buffer.data(), n});
  }
}

proto::Reply Client::call(proto::RequestBody body, std::chrono::milliseconds timeout) {
  if (!connection_) {
    throw ServiceError(Error{errc::connection_lost, "this client is not connected"});
  }
  const std::uint64_t id = next_id_++;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  connection_->write_all(proto::encode_request(proto::Request{id, std::move(body)}), deadline);
  for (;;) {
    auto frame = read_frame(deadline);
    if (!frame) {
      // N.B. the request may still complete in the service; this session is
      // no longer in step with it, so it is closed (and its locks die).
      connection_.reset();
      throw ServiceError(
          Error{errc::connection_lost,
                fmt::format("the service did not answer within {} ms", timeout.count())});
    }
    auto incoming = proto::parse_incoming(std::move(*frame));
    if (!incoming)
      throw ServiceError(incoming.error());
    if (auto* event = std::get_if<proto::Event>(&*incoming)) {
      events_.push_back(std::move(*event));
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

std::vector<proto::DriveSummary> Client::drives() {
  return call_for<proto::DrivesReply>(proto::ListDrivesRequest{}, timeout_).drives;
}

proto::StatusDocument Client::status() {
  return call_for<proto::StatusReply>(proto::StatusRequest{}, timeout_).status;
}

std::uint32_t Client::acquire_exclusive_access(const std::string& drive, AcquireOptions options) {
  const auto wait_ms = static_cast<std::uint32_t>(options.wait.count());
  return call_for<proto::AcquireReply>(proto::AcquireRequest{drive, options.force, wait_ms},
                                       timeout_ + options.wait + kServiceMargin)
      .lock_count;
}

std::uint32_t Client::release_exclusive_access(const std::string& drive) {
  return call_for<proto::ReleaseReply>(proto::ReleaseRequest{drive}, timeout_ + kServiceMargin)
      .lock_count;
}

std::optional<proto::OwnerInfo> Client::exclusive_access_owner(const std::string& drive) {
  return call_for<proto::OwnerReply>(proto::OwnerRequest{drive}, timeout_).owner;
}

proto::OwnerInfo Client::break_exclusive_access(const std::string& drive) {
  return call_for<proto::BreakReply>(proto::BreakRequest{drive}, timeout_ + kServiceMargin)
      .broken_owner;
}

ScsiReply Client::execute(const std::string& drive, const ScsiCommand& command) {
  // The service clamps the timeout; wait for the longest it may allow.
  const auto command_time = std::chrono::seconds(command.timeout_s.value_or(3600));
  proto::Bytes data;
  const auto r = call_for<proto::ExecuteReply>(
      proto::ExecuteRequest{drive, command.cdb, command.direction, command.data_in_len,
                            command.timeout_s, command.data_out},
      timeout_ + command_time + kServiceMargin, &data);
  return ScsiReply{r.code, r.scsi_status, r.sense, std::move(data)};
}

ExclusiveAccess Client::acquire(const std::string& drive, AcquireOptions options) {
  const auto count = acquire_exclusive_access(drive, options);
  return ExclusiveAccess(*this, drive, count);
}

void Client::subscribe() {
  (void)call(proto::SubscribeRequest{}, timeout_);
}

std::optional<proto::Event> Client::next_event(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (events_.empty()) {
    auto frame = read_frame(deadline);
    if (!frame)
      return std::nullopt;
    auto incoming = proto::parse_incoming(std::move(*frame));
    if (!incoming)
      throw ServiceError(incoming.error());
    if (auto* event = std::get_if<proto::Event>(&*incoming)) {
      events_.push_back(std::move(*event));
    }
  }
  auto event = std::move(events_.front());
  events_.pop_front();
  return event;
}

}  // namespace discarbiter
