#include "discarbiter/client.hpp"

#include <algorithm>
#include <array>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <new>

#include <fmt/format.h>

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
// The longest command timeout the service allows (timeouts.max_s' ceiling):
// a command without its own timeout is waited for that long.
constexpr std::chrono::seconds kLongestCommand{3600};

using Clock = std::chrono::steady_clock;

[[noreturn]] void fail(errc code, std::string message) {
  throw ServiceError(Error{code, std::move(message)});
}

std::uint32_t u32_le(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
         (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}

/// Runs a public function's body: a ServiceError passes, anything else
/// becomes one (client.hpp's promise: no other exception leaves).
template <typename Body>
decltype(auto) guarded(Body&& body) {
  try {
    return body();
  } catch (const ServiceError&) {
    throw;
  } catch (const std::bad_alloc&) {
    fail(errc::out_of_memory, "out of memory");
  } catch (const std::exception& e) {
    fail(errc::fail, e.what());
  }
}

/// DA_E_CONNECTION_LOST with `message`, or with none when even that copy
/// fails (for paths that may not throw).
Error lost_error(const std::string& message) noexcept {
  try {
    return Error{errc::connection_lost, message};
  } catch (...) {
    return Error{errc::connection_lost, {}};
  }
}

// The largest JSON part of a frame from the service. N.B. far above the
// service's own 64 KiB for requests: a status document grows with the
// sessions (about 135 bytes each, so 135 KB with 1,000 of them), and a
// refused reply would close the session and with it the caller's locks.
// The server is a privileged one (the endpoint's owner is checked), so this
// bounds a broken server's cost, not a hostile user's.
constexpr std::uint32_t kMaxReplyJsonBytes = 16 * 1024 * 1024;

}  // namespace

namespace detail {

/// The session: one stream shared by every thread that calls the Client.
///
/// Writes: one frame at a time under write_mutex_, the head and the caller's
/// data in one gather write (Connection::write_all).
///
/// Reads, leader/follower: a caller registers its Call by id, writes its
/// request, then waits (wait_for). Whichever waiting caller finds nobody
/// reading takes the read role (read_one) and reads one frame with mutex_
/// released: a reply goes to the Call with its id, its payload read straight
/// from the stream into that caller's buffer (deliver); an event goes to the
/// queue. Then it gives the role up and every waiter looks at its Call again.
///
///   registered --write--> waiting --the reader finds its id--> filling --> done
///      a failure, a deadline passed: the session closes, and every Call not
///      being filled is done with DA_E_CONNECTION_LOST
class Session {
 public:
  /// One request in flight, on its caller's stack.
  struct Call {
    std::chrono::milliseconds timeout{};
    // Where the reply's payload goes: at most data_in_max bytes, into
    // data_in or, when data_in_vector is set, a vector sized from the frame.
    std::uint8_t* data_in = nullptr;
    std::size_t data_in_max = 0;
    proto::Bytes* data_in_vector = nullptr;
    bool subscribes = false;
    // Set by the session under mutex_:
    std::uint64_t id = 0;
    Clock::time_point deadline;
    bool filling = false;  // the reader writes into data_in: the caller may not leave
    bool done = false;
    std::optional<Error> error;
    proto::ReplyJson body;
    std::size_t data_len = 0;
  };

  explicit Session(const ConnectOptions& options);

  /// Sends one request and waits for its reply's body; throws ServiceError
  /// for an error reply or a failure. `data_out` is the frame's payload.
  proto::ReplyJson call(proto::RequestBody body, Call& call,
                        std::span<const std::uint8_t> data_out = {});
  template <typename Reply>
  Reply call_for(proto::RequestBody body, std::chrono::milliseconds timeout) {
    const std::string op(proto::op_name(body));
    Call c;
    c.timeout = timeout;
    return read_body<Reply>(op, call(std::move(body), c));
  }
  template <typename Reply>
  static Reply read_body(const std::string& op, const proto::ReplyJson& body) {
    try {
      return body.get<Reply>();
    } catch (const std::exception& e) {  // nlohmann's, or a field's own check
      fail(errc::bad_frame, fmt::format("{} reply: {}", op, e.what()));
    }
  }

  /// One SCSI command; data-in goes to `in` (its data_in… fields).
  CommandResult execute(const std::string& drive, std::span<const std::uint8_t> cdb,
                        proto::Direction direction, std::span<const std::uint8_t> data_out, Call in,
                        std::optional<std::uint32_t> timeout_s);

  void subscribe();
  std::optional<proto::Event> next_event(std::chrono::milliseconds timeout);
  std::uint64_t events_dropped() {
    std::lock_guard lock(mutex_);
    return events_dropped_;
  }

  /// Ends the session (the service frees its locks); every waiting caller
  /// gets DA_E_CONNECTION_LOST naming `why`.
  void close(const std::string& why) noexcept {
    std::lock_guard lock(mutex_);
    close_locked(lost_error(why));
  }

  /// hello's limit; a service older than that field has the default.
  std::uint32_t max_transfer() const noexcept {
    return server.max_transfer != 0 ? server.max_transfer : proto::kDefaultMaxPayloadBytes;
  }

  std::string endpoint;
  std::chrono::milliseconds request_timeout{};
  proto::HelloReply server;

 private:
  void wait_for(Call& call);
  /// Holds the read role for one frame (mutex_ held on entry and on return,
  /// released while reading). False when `deadline` passed before the next
  /// frame began: nothing was read.
  bool read_one(std::unique_lock<std::mutex>& lock, Clock::time_point deadline);
  bool read_frame(std::unique_lock<std::mutex>& lock, Clock::time_point deadline);
  void deliver(std::unique_lock<std::mutex>& lock, proto::Reply reply, std::size_t payload_len,
               Clock::time_point deadline);
  Call& call_for_reply(const proto::Reply& reply);
  void queue_event(proto::Event event);
  void close_locked(const Error& why) noexcept;

  std::unique_ptr<Connection> connection_;
  std::mutex write_mutex_;  // one frame at a time on the stream

  std::mutex mutex_;  // guards everything below
  std::condition_variable changed_;
  std::optional<Error> closed_;
  bool reading_ = false;  // a caller holds the read role
  std::uint64_t next_id_ = 1;
  std::map<std::uint64_t, Call*> pending_;
  std::deque<proto::Event> events_;
  bool subscribed_ = false;
  std::uint64_t events_dropped_ = 0;

  std::string json_text_;  // the read role's: the JSON part being read
};

Session::Session(const ConnectOptions& options)
    : endpoint(options.endpoint.empty() ? Client::default_endpoint() : options.endpoint),
      request_timeout(options.timeout) {
  connection_ = connect_to_service(endpoint, Clock::now() + request_timeout);
  server = call_for<proto::HelloReply>(
      proto::HelloRequest{proto::kProtocolVersion, options.client_name, current_process_id()},
      request_timeout);
}

proto::ReplyJson Session::call(proto::RequestBody body, Call& call,
                               std::span<const std::uint8_t> data_out) {
  {
    std::lock_guard lock(mutex_);
    if (closed_) {
      fail(errc::connection_lost,
           fmt::format("this client is not connected ({})", closed_->message));
    }
    call.id = next_id_++;
    call.deadline = Clock::now() + call.timeout;
    pending_.emplace(call.id, &call);
  }
  // N.B. the Call lives on the caller's stack: it leaves pending_ before
  // this returns, however it returns.
  struct Unregister {
    Session& session;
    std::uint64_t id;
    ~Unregister() {
      std::lock_guard lock(session.mutex_);
      session.pending_.erase(id);
    }
  } unregister{*this, call.id};

  const proto::Bytes head =
      proto::encode_request_head(proto::Request{call.id, std::move(body)}, data_out.size());
  try {
    std::lock_guard write(write_mutex_);
    connection_->write_all({head, data_out}, call.deadline);
  } catch (...) {
    // N.B. half a frame may be out: the stream is out of step for good.
    std::lock_guard lock(mutex_);
    close_locked(lost_error("the request could not be written"));
    throw;
  }
  wait_for(call);
  if (call.error)
    throw ServiceError(*call.error);
  return std::move(call.body);
}

void Session::wait_for(Call& call) {
  std::unique_lock lock(mutex_);
  while (!call.done) {
    if (closed_) {
      // Only a Call being filled is still open: its reader fails soon.
      changed_.wait(lock);
    } else if (!reading_) {
      // N.B. checked before each frame, not only when the stream is quiet: a
      // read at a passed deadline still returns what is waiting, so a peer
      // that never stops sending would otherwise hold this call for ever.
      if ((Clock::now() >= call.deadline || !read_one(lock, call.deadline)) && !call.done) {
        // N.B. the request may still complete in the service; this session
        // is no longer in step with it, so it is closed (its locks die).
        close_locked(lost_error(
            fmt::format("the service did not answer within {} ms", call.timeout.count())));
      }
    } else if (changed_.wait_until(lock, call.deadline) == std::cv_status::timeout && !call.done &&
               !closed_) {
      close_locked(
          lost_error(fmt::format("the service did not answer within {} ms", call.timeout.count())));
    }
  }
}

bool Session::read_one(std::unique_lock<std::mutex>& lock, Clock::time_point deadline) {
  reading_ = true;
  bool framed = true;
  std::optional<Error> failure;
  try {
    framed = read_frame(lock, deadline);
  } catch (const ServiceError& e) {
    failure = Error{e.code_value(), e.detail()};
  } catch (const std::bad_alloc&) {
    failure = Error{errc::out_of_memory, "out of memory reading a frame"};
  } catch (const std::exception& e) {
    failure = Error{errc::bad_frame, e.what()};
  }
  if (!lock.owns_lock())
    lock.lock();
  if (failure) {
    close_locked(failure->code == errc::connection_lost
                     ? *failure
                     : lost_error(fmt::format("{} from the service: {}", error_name(failure->code),
                                              failure->message)));
  }
  reading_ = false;
  changed_.notify_all();
  return framed;
}

bool Session::read_frame(std::unique_lock<std::mutex>& lock, Clock::time_point deadline) {
  lock.unlock();
  std::array<std::uint8_t, proto::kFrameHeaderSize> header{};
  // N.B. waits first: a reply is rarely there the moment its request is out.
  const std::size_t first = connection_->read(header, deadline, /*wait_first=*/true);
  if (first == 0) {
    lock.lock();
    return false;
  }
  // N.B. once a frame has begun, the rest comes at the stream's pace: a
  // caller's deadline that passes mid-frame does not cut it.
  const auto rest = std::max(deadline, Clock::now() + request_timeout);
  if (!connection_->read_exact(std::span(header).subspan(first), rest))
    fail(errc::connection_lost, "a frame's header stopped half way");
  const std::uint32_t json_len = u32_le(header.data());
  const std::uint32_t payload_len = u32_le(header.data() + 4);
  if (json_len == 0)
    fail(errc::bad_frame, "frame has an empty JSON part");
  if (json_len > kMaxReplyJsonBytes) {
    fail(errc::frame_too_large, fmt::format("JSON part of {} bytes exceeds the limit of {}",
                                            json_len, kMaxReplyJsonBytes));
  }
  json_text_.resize(json_len);
  if (!connection_->read_exact(
          std::span(reinterpret_cast<std::uint8_t*>(json_text_.data()), json_len), rest)) {
    fail(errc::connection_lost, "a frame's JSON part stopped half way");
  }
  proto::Frame frame;
  // N.B. the small replies are flat objects, read without an nlohmann tree.
  frame.flat = proto::parse_flat_object(json_text_);
  if (!frame.flat) {
    frame.json = nlohmann::json::parse(json_text_, nullptr, /*allow_exceptions=*/false);
    if (frame.json.is_discarded())
      fail(errc::bad_frame, "frame's JSON part does not parse");
    if (!frame.json.is_object())
      fail(errc::bad_frame, "frame's JSON part is not an object");
  }
  auto incoming = proto::parse_incoming(std::move(frame));
  if (!incoming)
    throw ServiceError(incoming.error());
  lock.lock();
  if (auto* event = std::get_if<proto::Event>(&*incoming)) {
    if (payload_len != 0)
      fail(errc::bad_frame, fmt::format("an event frame carries {} bytes", payload_len));
    queue_event(std::move(*event));
  } else {
    deliver(lock, std::move(std::get<proto::Reply>(*incoming)), payload_len, rest);
  }
  return true;
}

Session::Call& Session::call_for_reply(const proto::Reply& reply) {
  if (reply.id) {
    const auto it = pending_.find(*reply.id);
    if (it == pending_.end() || it->second->done)
      fail(errc::bad_frame, fmt::format("a reply to request {}, which is not waiting", *reply.id));
    return *it->second;
  }
  // The service could not read the id of a request it refuses; with one
  // request in flight it is that one's. N.B. not one already done: its
  // caller reads its result without mutex_ until it unregisters.
  if (reply.error && pending_.size() == 1 && !pending_.begin()->second->done)
    return *pending_.begin()->second;
  fail(errc::bad_frame,
       fmt::format("a reply without an id ({})", reply.error ? reply.error->message : "no error"));
}

void Session::deliver(std::unique_lock<std::mutex>& lock, proto::Reply reply,
                      std::size_t payload_len, Clock::time_point deadline) {
  Call& call = call_for_reply(reply);
  if (payload_len > call.data_in_max) {
    call.error =
        Error{errc::bad_frame, fmt::format("the service sent {} bytes of data for a buffer of {}",
                                           payload_len, call.data_in_max)};
    call.done = true;
    fail(errc::bad_frame, call.error->message);
  }
  std::uint8_t* into = call.data_in;
  if (call.data_in_vector) {
    call.data_in_vector->resize(payload_len);
    into = call.data_in_vector->data();
  }
  call.filling = true;
  lock.unlock();
  bool whole = false;
  try {
    // N.B. straight from the stream into the caller's buffer: no copy.
    whole = connection_->read_exact({into, payload_len}, deadline);
  } catch (...) {
    lock.lock();
    call.filling = false;
    throw;
  }
  lock.lock();
  call.filling = false;
  if (!whole)
    fail(errc::connection_lost, "a frame's payload stopped half way");
  call.data_len = payload_len;
  if (reply.error) {
    call.error = std::move(reply.error);
  } else {
    call.body = std::move(reply.body);
    if (call.subscribes)
      subscribed_ = true;  // N.B. here, not in subscribe(): the next frame may be an event
  }
  call.done = true;
}

void Session::queue_event(proto::Event event) {
  // N.B. lock_broken comes to the broken owner unasked (docs/protocol.md):
  // kept without subscribe(), so a holder learns that its lock is gone.
  if (!subscribed_ && !std::holds_alternative<proto::LockBroken>(event))
    return;
  if (events_.size() == Client::kMaxQueuedEvents) {
    events_.pop_front();
    ++events_dropped_;
  }
  events_.push_back(std::move(event));
}

void Session::close_locked(const Error& why) noexcept {
  if (!closed_) {
    closed_ = why;
    connection_->shutdown();
  }
  for (auto& [id, call] : pending_) {
    if (!call->done && !call->filling) {
      call->error = lost_error(why.message);
      call->done = true;
    }
  }
  changed_.notify_all();
}

CommandResult Session::execute(const std::string& drive, std::span<const std::uint8_t> cdb,
                               proto::Direction direction, std::span<const std::uint8_t> data_out,
                               Call in, std::optional<std::uint32_t> timeout_s) {
  const std::size_t size = direction == proto::Direction::in    ? in.data_in_max
                           : direction == proto::Direction::out ? data_out.size()
                                                                : 0;
  if (size > max_transfer()) {
    fail(errc::invalid_arg,
         fmt::format("a transfer of {} bytes is above the service's maximum of {} bytes "
                     "(max_transfer); split it",
                     size, max_transfer()));
  }
  if (direction != proto::Direction::in)
    in = Call{};
  // The service clamps the timeout; wait for the longest it may allow.
  const auto command_time =
      timeout_s ? std::chrono::seconds(*timeout_s) : std::chrono::seconds(kLongestCommand);
  in.timeout = request_timeout + command_time + kServiceMargin;
  const auto body = call(proto::ExecuteRequest{drive,
                                               {cdb.begin(), cdb.end()},
                                               direction,
                                               static_cast<std::uint32_t>(in.data_in_max),
                                               timeout_s,
                                               {}},
                         in, data_out);
  const auto r = read_body<proto::ExecuteReply>("execute", body);
  return CommandResult{r.code, r.scsi_status, r.sense,
                       static_cast<std::uint32_t>(
                           direction == proto::Direction::out ? data_out.size() : in.data_len)};
}

void Session::subscribe() {
  Call c;
  c.timeout = request_timeout;
  c.subscribes = true;
  (void)call(proto::SubscribeRequest{}, c);
}

std::optional<proto::Event> Session::next_event(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  std::unique_lock lock(mutex_);
  for (;;) {
    if (!events_.empty()) {
      auto event = std::move(events_.front());
      events_.pop_front();
      return event;
    }
    if (closed_)
      fail(errc::connection_lost,
           fmt::format("this client is not connected ({})", closed_->message));
    if (Clock::now() >= deadline)
      return std::nullopt;
    if (!reading_)
      (void)read_one(lock, deadline);
    else
      changed_.wait_until(lock, deadline);
  }
}

}  // namespace detail

namespace {

detail::Session& live(const std::shared_ptr<detail::Session>& session) {
  if (!session)
    fail(errc::connection_lost, "this client was moved from");
  return *session;
}

/// The session, kept alive for a call that may block: a Client destroyed
/// by another thread meanwhile (which the docs forbid) closes the session,
/// and that call ends with DA_E_CONNECTION_LOST instead of waiting on a
/// freed mutex.
std::shared_ptr<detail::Session> hold(const std::shared_ptr<detail::Session>& session) {
  (void)live(session);
  return session;
}

}  // namespace

namespace {

/// "NAME: detail: explanation"; std::system_error's own what() would repeat
/// an explanation the detail already holds (the service's messages often do).
std::string describe(const Error& error) {
  const std::string_view why = error_explanation(error.code);
  if (error.message.empty())
    return fmt::format("{}: {}", error_name(error.code), why);
  if (error.message.find(why) != std::string::npos)
    return fmt::format("{}: {}", error_name(error.code), error.message);
  return fmt::format("{}: {}: {}", error_name(error.code), error.message, why);
}

}  // namespace

ServiceError::ServiceError(const Error& error)
    : std::system_error(make_error_code(error.code), error.message),
      error_(error),
      what_(describe(error)) {}

const char* ServiceError::what() const noexcept {
  return what_.c_str();
}

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
    return;  // released, or its Client (and so the lock) is gone
  try {
    (void)session->call_for<proto::ReleaseReply>(proto::ReleaseRequest{drive_},
                                                 session->request_timeout + kServiceMargin);
  } catch (...) {
    // N.B. the lock must not stay behind: a session that cannot release is
    // closed, and a closed session's locks die with it.
    session->close("a lock's release failed; the session was closed to free the drive");
  }
}

std::uint32_t ExclusiveAccess::release() {
  return guarded([&] {
    auto session = std::exchange(session_, {}).lock();
    if (!session)
      fail(errc::not_locked, fmt::format("the lock on {} was already released", drive_));
    return session
        ->call_for<proto::ReleaseReply>(proto::ReleaseRequest{drive_},
                                        session->request_timeout + kServiceMargin)
        .lock_count;
  });
}

std::string Client::default_endpoint() {
  return guarded([] {
    if (const char* env = std::getenv("DISCARBITER_ENDPOINT"); env && *env)
      return std::string(env);
    return platform_default_endpoint();
  });
}

Client::Client(ConnectOptions options)
    : session_(guarded([&] { return std::make_shared<detail::Session>(options); })) {}

Client::~Client() {
  if (session_)
    session_->close("the client was closed");
}

Client::Client(Client&&) noexcept = default;

Client& Client::operator=(Client&& other) noexcept {
  if (this != &other) {
    if (session_)
      session_->close("the client was replaced");
    session_ = std::move(other.session_);
  }
  return *this;
}

const proto::HelloReply& Client::server() const {
  return live(session_).server;
}

const std::string& Client::endpoint() const {
  return live(session_).endpoint;
}

std::uint32_t Client::max_transfer() const {
  return live(session_).max_transfer();
}

std::uint32_t Client::max_transfer(const std::string& drive) {
  return guarded([&] {
    const std::uint32_t service = max_transfer();
    for (const auto& d : drives()) {
      if (d.id == drive)
        return d.max_transfer != 0 ? std::min(d.max_transfer, service) : service;
    }
    fail(errc::dev_not_exist, fmt::format("no drive '{}'", drive));
  });
}

std::vector<proto::DriveSummary> Client::drives() {
  return guarded([&] {
    const auto held = hold(session_);
    auto& s = *held;
    return s.call_for<proto::DrivesReply>(proto::ListDrivesRequest{}, s.request_timeout).drives;
  });
}

proto::StatusDocument Client::status() {
  return guarded([&] {
    const auto held = hold(session_);
    auto& s = *held;
    return s.call_for<proto::StatusReply>(proto::StatusRequest{}, s.request_timeout).status;
  });
}

std::string Client::status_json() {
  return guarded([&] {
    const nlohmann::json j = status();
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  });
}

std::uint32_t Client::acquire_exclusive_access(const std::string& drive, AcquireOptions options) {
  return guarded([&] {
    const auto held = hold(session_);
    auto& s = *held;
    const auto wait_ms = static_cast<std::uint32_t>(std::clamp<std::int64_t>(
        options.wait.count(), 0, std::numeric_limits<std::uint32_t>::max()));
    return s
        .call_for<proto::AcquireReply>(proto::AcquireRequest{drive, options.force, wait_ms},
                                       s.request_timeout + options.wait + kServiceMargin)
        .lock_count;
  });
}

std::uint32_t Client::release_exclusive_access(const std::string& drive) {
  return guarded([&] {
    const auto held = hold(session_);
    auto& s = *held;
    return s
        .call_for<proto::ReleaseReply>(proto::ReleaseRequest{drive},
                                       s.request_timeout + kServiceMargin)
        .lock_count;
  });
}

std::optional<proto::OwnerInfo> Client::exclusive_access_owner(const std::string& drive) {
  return guarded([&] {
    const auto held = hold(session_);
    auto& s = *held;
    return s.call_for<proto::OwnerReply>(proto::OwnerRequest{drive}, s.request_timeout).owner;
  });
}

proto::OwnerInfo Client::break_exclusive_access(const std::string& drive) {
  return guarded([&] {
    const auto held = hold(session_);
    auto& s = *held;
    return s
        .call_for<proto::BreakReply>(proto::BreakRequest{drive}, s.request_timeout + kServiceMargin)
        .broken_owner;
  });
}

ScsiReply Client::execute(const std::string& drive, const ScsiCommand& command) {
  return guarded([&] {
    ScsiReply reply;
    detail::Session::Call in;
    in.data_in_max = command.data_in_len;
    in.data_in_vector = &reply.data;
    auto r = hold(session_)->execute(drive, command.cdb, command.direction, command.data_out, in,
                                     command.timeout_s);
    reply.code = r.code;
    reply.scsi_status = r.scsi_status;
    reply.sense = std::move(r.sense);
    return reply;
  });
}

CommandResult Client::send_command_no_data(const std::string& drive,
                                           std::span<const std::uint8_t> cdb,
                                           std::optional<std::uint32_t> timeout_s) {
  return guarded([&] {
    return hold(session_)->execute(drive, cdb, proto::Direction::none, {}, {}, timeout_s);
  });
}

CommandResult Client::send_command_send_data_to_device(const std::string& drive,
                                                       std::span<const std::uint8_t> cdb,
                                                       std::span<const std::uint8_t> data,
                                                       std::optional<std::uint32_t> timeout_s) {
  return guarded([&] {
    return hold(session_)->execute(drive, cdb, proto::Direction::out, data, {}, timeout_s);
  });
}

CommandResult Client::send_command_get_data_from_device(const std::string& drive,
                                                        std::span<const std::uint8_t> cdb,
                                                        std::span<std::uint8_t> buffer,
                                                        std::optional<std::uint32_t> timeout_s) {
  return guarded([&] {
    detail::Session::Call in;
    in.data_in = buffer.data();
    in.data_in_max = buffer.size();
    return hold(session_)->execute(drive, cdb, proto::Direction::in, {}, in, timeout_s);
  });
}

ExclusiveAccess Client::acquire(const std::string& drive, AcquireOptions options) {
  const auto count = acquire_exclusive_access(drive, options);
  return ExclusiveAccess(session_, drive, count);
}

void Client::subscribe() {
  guarded([&] { hold(session_)->subscribe(); });
}

std::optional<proto::Event> Client::next_event(std::chrono::milliseconds timeout) {
  return guarded([&] { return hold(session_)->next_event(timeout); });
}

std::uint64_t Client::events_dropped() const {
  return live(session_).events_dropped();
}

}  // namespace discarbiter
