// One connection: reads frames into a Dispatcher, writes its replies through
// a bounded queue. The same code serves a Unix socket and a named pipe; the
// Stream type is the only difference.
//
// All sessions run on the service's single io_context thread, which is also
// the arbiter's strand, so no session needs a strand of its own.
#pragma once

#include <utility>  // N.B. before Asio: Boost 1.74's awaitable.hpp needs std::exchange

#include <algorithm>
#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <spdlog/spdlog.h>

#include "discarbiter/proto/frame.hpp"
#include "transport/dispatcher.hpp"
#include "transport/log_limiter.hpp"
#include "transport/options.hpp"
#include "transport/reactor_timeout.hpp"
#include "transport/session_registry.hpp"
#include "transport/stream_reader.hpp"

namespace discarbiter::transport {

/// The peer went away (end of file, broken pipe, reset): an ordinary end of a
/// session, not a failure. One definition per platform (stream_errors_*.cpp).
bool is_peer_gone(const boost::system::error_code& ec);

/// The most a session writes in one turn of the io thread: a larger frame
/// (a status document is 135 KB with 1,000 sessions, an execute's data-in up
/// to 1 MiB) goes a piece per turn, so that another session's reply, a
/// waiter's grant, never waits behind the whole copy. 64 KiB of data with
/// room for its frame's head: a 64 KiB READ's reply leaves in one write (at
/// exactly 64 KiB its last hundred bytes took another turn, and the writer's
/// wake-up: 64 KiB READs went from 2.1 to 1.8 GB/s pinned).
inline constexpr std::size_t kMaxWritePerTurn = 68 * 1024;

/// A frame queued behind others is appended to the last one queued when it
/// is at most kMaxCoalescedFrame and that one has room within
/// kCoalescedBytes: a client that does not read keeps its replies and events
/// in a few buffers, not an allocation each (8 MiB of events was 80,000
/// frames, all freed on the io thread when the session was cut).
inline constexpr std::size_t kMaxCoalescedFrame = 4 * 1024;
inline constexpr std::size_t kCoalescedBytes = 64 * 1024;

/// The bytes of `frame` from `from` on, at most kMaxWritePerTurn of them: its
/// head, then its payload from the buffer the drive filled.
inline std::array<boost::asio::const_buffer, 2> next_piece(const proto::OutgoingFrame& frame,
                                                           std::size_t from) {
  const std::size_t head_skip = std::min(from, frame.head.size());
  const auto head = boost::asio::buffer(frame.head) + head_skip;
  const auto payload = boost::asio::buffer(frame.payload) + (from - head_skip);
  const std::size_t head_part = std::min(head.size(), kMaxWritePerTurn);
  return {boost::asio::buffer(head, head_part),
          boost::asio::buffer(payload, kMaxWritePerTurn - head_part)};
}

template <typename Stream>
class Session final : public SessionHandle, public std::enable_shared_from_this<Session<Stream>> {
 public:
  using OnClosed = std::function<void(SessionHandle*)>;

  /// `already_read`: bytes the listener read before the session existed (the
  /// pipe listener reads first so that it can impersonate the client).
  Session(Stream stream, ServiceContext& context, core::PeerIdentity peer, SessionLimits limits,
          OnClosed on_closed, proto::Bytes already_read = {})
      : stream_(std::move(stream)),
        already_read_(std::move(already_read)),
        limits_(limits),
        decoder_(limits.frames),
        write_signal_(stream_.get_executor()),
        handshake_timer_(stream_.get_executor()),
        idle_timer_(stream_.get_executor()),
        on_closed_(std::move(on_closed)) {
    user_ = peer.user;
    dispatcher_.emplace(context, std::move(peer), limits.frames,
                        [this](proto::OutgoingFrame frame) { send(std::move(frame)); });
    write_signal_.expires_at(std::chrono::steady_clock::time_point::max());
    // N.B. until hello succeeds a payload costs only the bytes that came.
    decoder_.set_payload_space(false);
    // Requests are flat objects: read without an nlohmann tree.
    decoder_.set_flat_objects(true);
  }

  void start() {
    namespace asio = boost::asio;
    auto self = this->shared_from_this();
    handshake_timer_.expires_after(limits_.handshake);
    handshake_armed_ = true;
    handshake_timer_.async_wait([self](boost::system::error_code ec) {
      if (ec)
        return;
      self->handshake_armed_ = false;
      if (self->dispatcher_ && !self->dispatcher_->greeted()) {
        self->close(fmt::format("no hello within {} ms", self->limits_.handshake.count()));
      }
    });
    arm_idle_timer(limits_.idle);
    asio::co_spawn(
        stream_.get_executor(), [self] { return self->read_loop(); }, asio::detached);
    asio::co_spawn(
        stream_.get_executor(), [self] { return self->write_loop(); }, asio::detached);
  }

  /// Ends the session now (service stop).
  void close(std::string_view reason) override {
    if (closed_)
      return;
    closed_ = true;
    spdlog::debug("session {} ({}): closed: {}", id(), name(), reason);
    dispatcher_.reset();  // N.B. first: the arbiter frees this client's locks
    boost::system::error_code ignored;
    stream_.close(ignored);
    const bool handshake_was_armed = handshake_armed_;
    handshake_timer_.cancel();
    idle_timer_.cancel();
    handshake_armed_ = idle_armed_ = false;
    // N.B. a client gone before its hello must not wake the service at its
    // deadline either (reactor_timeout.hpp).
    if (handshake_was_armed)
      rearm_reactor_timeout(stream_.get_executor());
    write_signal_.cancel();
    if (on_closed_)
      std::exchange(on_closed_, nullptr)(this);
  }

  const std::string& user() const override { return user_; }

  /// The buffers queued and their bytes (tests: what a client that does not
  /// read holds of the service).
  std::size_t outbox_frames() const { return outbox_.size(); }
  std::size_t outbox_bytes() const { return outbox_bytes_; }

  /// The timers that will wake the service for this session: the handshake
  /// deadline until hello succeeds, and the idle check when limits.idle is
  /// set (once per idle period: closing a quiet session that holds nothing
  /// needs it). Nothing else, so that a service with idle sessions sleeps.
  std::size_t timers_armed() const {
    return std::size_t{handshake_armed_} + std::size_t{idle_armed_};
  }

 private:
  core::SessionId id() const { return dispatcher_ ? dispatcher_->session() : 0; }
  std::string name() const { return dispatcher_ ? dispatcher_->client_name() : std::string(); }

  /// Queues a frame. Never ends the session on the spot: send runs inside
  /// the arbiter's callbacks (an event's fan-out, a reply), and closing ends
  /// the arbiter's session under the caller's feet.
  void send(proto::OutgoingFrame frame) {
    if (closed_ || closing_)
      return;
    if constexpr (ReadinessStream<Stream>) {
      if (outbox_.empty()) {
        front_written_ = write_at_once(frame);
        if (front_written_ == frame.size()) {
          front_written_ = 0;
          return;
        }
      }
    }
    outbox_bytes_ += frame.size();
    if (!coalesce(frame))
      outbox_.push_back(std::move(frame));
    if (outbox_bytes_ > limits_.max_outbox_bytes) {
      // A client that does not read its replies degrades only itself: stop
      // reading, drop what else comes, and close from the strand.
      closing_ = true;
      close_reason_ =
          fmt::format("client is not reading: {} bytes of replies queued", outbox_bytes_);
      if (const auto admitted = client_warnings().admit(peer_key(user_), session_key(id()))) {
        spdlog::warn("session {} ({}): closing: {}{}", id(), name(), close_reason_,
                     suppressed_note(admitted));
      }
      boost::asio::post(stream_.get_executor(),
                        [self = this->shared_from_this()] { self->close(self->close_reason_); });
      return;
    }
    write_signal_.cancel_one();
  }

  /// Appends `frame` to the outbox's last frame if it is small and that one
  /// has room and is not being written (not the front: the writer holds a
  /// view of its bytes). Whether it did.
  bool coalesce(const proto::OutgoingFrame& frame) {
    if (outbox_.size() < 2 || frame.size() > kMaxCoalescedFrame)
      return false;
    proto::OutgoingFrame& back = outbox_.back();
    if (!back.payload.empty() || back.head.size() + frame.size() > kCoalescedBytes)
      return false;
    back.head.insert(back.head.end(), frame.head.begin(), frame.head.end());
    back.head.insert(back.head.end(), frame.payload.begin(), frame.payload.end());
    return true;
  }

  /// Writes what the socket takes now of a frame that nothing is queued
  /// before (the writer is idle), without waiting, at most kMaxWritePerTurn:
  /// how many bytes went.
  /// N.B. a reply leaves as it is made, before the session reads again, and
  /// the writer is woken only for what the socket did not take. A failure
  /// writes nothing here: the writer meets it and ends the session, from its
  /// own coroutine (send must not close under the arbiter's callbacks).
  std::size_t write_at_once(const proto::OutgoingFrame& frame) {
    if (!stream_.non_blocking())
      return 0;  // N.B. not read from yet: a write now could block the io thread
    boost::system::error_code ec;
    const std::size_t n = stream_.write_some(next_piece(frame, 0), ec);
    return ec ? 0 : n;
  }

  /// Closes the session once it has been idle for limits_.idle while
  /// holding nothing; checks again after `after`.
  void arm_idle_timer(std::chrono::steady_clock::duration after) {
    if (limits_.idle.count() == 0)
      return;
    idle_timer_.expires_after(after);
    idle_armed_ = true;
    idle_timer_.async_wait([self = this->shared_from_this()](boost::system::error_code ec) {
      if (ec || self->closed_ || !self->dispatcher_)
        return;
      self->idle_armed_ = false;
      const auto quiet = std::chrono::steady_clock::now() - self->last_request_;
      if (quiet < self->limits_.idle) {
        self->arm_idle_timer(self->limits_.idle - quiet);
      } else if (self->dispatcher_->holds_anything()) {
        self->arm_idle_timer(self->limits_.idle);
      } else {
        const auto why = fmt::format("idle for {} s holding nothing", self->limits_.idle.count());
        spdlog::info("session {} ({}): closing: {}", self->id(), self->name(), why);
        self->close(why);
      }
    });
  }

  /// Stop reading; close once the queued replies are written.
  void close_after_flush(std::string reason) {
    closing_ = true;
    close_reason_ = std::move(reason);
    write_signal_.cancel_one();
  }

  boost::asio::awaitable<void> read_loop() {
    auto self = this->shared_from_this();
    decoder_.feed(already_read_);
    proto::Bytes().swap(already_read_);  // N.B. freed: an idle session keeps no buffer
    // N.B. decode what the listener read before reading more
    while (decode_buffered()) {
      boost::system::error_code ec;
      // N.B. a payload that has begun is read straight into the buffer that
      // carries it to the drive (frame.hpp): no copy on the way.
      const auto payload = decoder_.payload_space();
      const auto bytes = co_await reader_.read(stream_, decoder_.bytes_wanted(), payload, ec);
      if (closed_ || closing_)
        co_return;
      if (ec) {
        close(is_peer_gone(ec) ? std::string("client disconnected")
                               : fmt::format("read: {}", ec.message()));
        co_return;
      }
      if (payload.empty())
        decoder_.feed(bytes);
      else
        decoder_.payload_filled(bytes.size());
    }
  }

  /// Hands every complete frame buffered to the dispatcher. False once the
  /// session must read no more.
  bool decode_buffered() {
    for (;;) {
      if (closed_ || closing_)
        return false;
      auto out = decoder_.next();
      if (out.status == proto::FrameDecoder::Status::need_more)
        return true;
      std::string close_reason = "request refused before a successful hello";
      if (out.status == proto::FrameDecoder::Status::error) {
        if (const auto admitted = client_warnings().admit(peer_key(user_), session_key(id()))) {
          spdlog::warn("session {} ({}): closing: {}: {}{}", id(), name(),
                       error_name(out.error.code), out.error.message, suppressed_note(admitted));
        }
        close_reason = out.error.message;
      } else {
        last_request_ = std::chrono::steady_clock::now();
        if (out.status == proto::FrameDecoder::Status::oversize)  // answered; the session goes on
          spdlog::debug("session {} ({}): refused: {}", id(), name(), out.error.message);
      }
      if (dispatcher_->on_decoded(std::move(out)) == Dispatcher::Verdict::close) {
        close_after_flush(std::move(close_reason));
        return false;
      }
      if (!decoder_.payload_space_on() && dispatcher_->greeted())
        decoder_.set_payload_space(true);
      if (handshake_armed_ && dispatcher_->greeted()) {
        // N.B. the deadline is met: a timer left armed would wake the
        // service for nothing when it expires.
        handshake_armed_ = false;
        handshake_timer_.cancel();
        rearm_reactor_timeout(stream_.get_executor());
      }
    }
  }

  boost::asio::awaitable<void> write_loop() {
    namespace asio = boost::asio;
    auto self = this->shared_from_this();
    while (!closed_) {
      boost::system::error_code ec;
      if (outbox_.empty()) {
        if (closing_) {
          close(close_reason_);
          co_return;
        }
        co_await write_signal_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        continue;
      }
      // One gather write of the next piece (next_piece): a piece per turn of
      // the io thread, whatever the socket would take.
      // N.B. from where the last piece, or send's write at once, ended.
      const std::size_t written =
          co_await stream_.async_write_some(next_piece(outbox_.front(), front_written_),
                                            asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        close(is_peer_gone(ec) ? std::string("client disconnected")
                               : fmt::format("write: {}", ec.message()));
        co_return;
      }
      front_written_ += written;
      if (front_written_ < outbox_.front().size())
        continue;
      front_written_ = 0;
      outbox_bytes_ -= outbox_.front().size();
      outbox_.pop_front();
    }
  }

  Stream stream_;
  proto::Bytes already_read_;
  SessionLimits limits_;
  proto::FrameDecoder decoder_;
  StreamReader<Stream> reader_;
  std::optional<Dispatcher> dispatcher_;
  std::deque<proto::OutgoingFrame> outbox_;
  std::size_t outbox_bytes_ = 0;
  std::size_t front_written_ = 0;           // of the outbox's first frame
  boost::asio::steady_timer write_signal_;  // cancelled to wake the writer
  boost::asio::steady_timer handshake_timer_;
  boost::asio::steady_timer idle_timer_;
  std::chrono::steady_clock::time_point last_request_ = std::chrono::steady_clock::now();
  OnClosed on_closed_;
  std::string user_;
  bool closed_ = false;
  bool closing_ = false;
  bool handshake_armed_ = false;
  bool idle_armed_ = false;
  std::string close_reason_;
};

}  // namespace discarbiter::transport
