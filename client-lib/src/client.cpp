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

Client::Client(ConnectOptions options)
    : endpoint_(options.endpoint.empty() ? default_endpoint() : options.endpoint),
      timeout_(options.timeout) {
  connection_ = connect_to_service(endpoint_, std::chrono::steady_clock::now() + timeout_);
  const auto reply =
      call(proto::HelloRequest{proto::kProtocolVersion, options.client_name, current_process_id()},
           timeout_);
  try {
    server_ = reply.body.get<proto::HelloReply>();
  } catch (const nlohmann::json::exception& e) {
    throw ServiceError(Error{errc::bad_frame, fmt::format("hello reply: {}", e.what())});
  }
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
    if (out.status == proto::FrameDecoder::Status::error)
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
  return call(proto::ListDrivesRequest{}, timeout_)
      .body.at("drives")
      .get<std::vector<proto::DriveSummary>>();
}

nlohmann::json Client::status() {
  return call(proto::StatusRequest{}, timeout_).body.at("status");
}

std::uint32_t Client::acquire_exclusive_access(const std::string& drive, AcquireOptions options) {
  const auto wait_ms = static_cast<std::uint32_t>(options.wait.count());
  const auto reply = call(proto::AcquireRequest{drive, options.force, wait_ms},
                          timeout_ + options.wait + kServiceMargin);
  return reply.body.at("lock_count").get<std::uint32_t>();
}

std::uint32_t Client::release_exclusive_access(const std::string& drive) {
  return call(proto::ReleaseRequest{drive}, timeout_ + kServiceMargin)
      .body.at("lock_count")
      .get<std::uint32_t>();
}

std::optional<proto::OwnerInfo> Client::exclusive_access_owner(const std::string& drive) {
  const auto reply = call(proto::OwnerRequest{drive}, timeout_);
  const auto& owner = reply.body.at("owner");
  if (owner.is_null())
    return std::nullopt;
  return owner.get<proto::OwnerInfo>();
}

proto::OwnerInfo Client::break_exclusive_access(const std::string& drive) {
  return call(proto::BreakRequest{drive}, timeout_ + kServiceMargin)
      .body.at("broken_owner")
      .get<proto::OwnerInfo>();
}

ScsiReply Client::execute(const std::string& drive, const ScsiCommand& command) {
  // The service clamps the timeout; wait for the longest it may allow.
  const auto command_time = std::chrono::seconds(command.timeout_s.value_or(3600));
  auto reply = call(proto::ExecuteRequest{drive, command.cdb, command.direction,
                                          command.data_in_len, command.timeout_s, command.data_out},
                    timeout_ + command_time + kServiceMargin);
  const auto r = reply.body.get<proto::ExecuteReply>();
  const auto code = errc_from_hresult(reply.body.value("code", 0U)).value_or(errc::ok);
  return ScsiReply{code, r.scsi_status, r.sense, std::move(reply.payload)};
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
