// An in-memory stream for transport::Session, after Beast's test::stream and
// test::fail_count (boostorg/beast include/boost/beast/_experimental/test/):
// the session holds a TestStream, the test holds its StreamState and plays
// the peer (writes requests into it, reads replies out of it). A FailCount
// makes the Nth operation and every later one fail, so that a test can raise
// N from 0 until a whole conversation runs without reaching it.
//
// Single-threaded, as the service's io_context is: every completion is
// posted to the stream's executor, never run inside the call, as a socket's.
//
// Two kinds, as the session reads them (stream_reader.hpp): TestStream reads
// into the caller's buffer while the read is pending (as a Windows pipe);
// ReadinessTestStream waits for readability and reads without blocking (as
// a POSIX socket).
#pragma once

#include <utility>  // N.B. before Asio: Boost 1.74's awaitable.hpp needs std::exchange

#include <algorithm>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/system/error_code.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <vector>

namespace discarbiter::testing {

/// Counts operations; the Nth (from 0) and every one after it fail with
/// `error` (as Beast's fail_count: a broken stream stays broken).
class FailCount {
 public:
  static constexpr std::size_t kNever = std::numeric_limits<std::size_t>::max();

  explicit FailCount(std::size_t n = kNever, boost::system::error_code error =
                                                 make_error_code(boost::system::errc::io_error))
      : n_(n), error_(error) {}

  /// Called as each operation starts: whether it must fail, and with what.
  bool fail(boost::system::error_code& ec) {
    if (operations_++ < n_)
      return false;
    reached_ = true;
    ec = error_;
    return true;
  }

  /// Operations started so far.
  std::size_t operations() const { return operations_; }
  /// Whether an operation has failed.
  bool reached() const { return reached_; }

 private:
  std::size_t n_;
  boost::system::error_code error_;
  std::size_t operations_ = 0;
  bool reached_ = false;
};

/// Both directions of one connection, shared by the session's TestStream and
/// the test (the peer).
struct StreamState {
  StreamState(boost::asio::any_io_executor ex, FailCount fails = FailCount{})
      : executor(std::move(ex)), fail_count(fails) {}

  // ---- the peer's side ----

  /// Bytes for the session to read.
  void peer_write(const std::vector<std::uint8_t>& bytes) {
    inbound.insert(inbound.end(), bytes.begin(), bytes.end());
    complete_read();
  }
  /// The peer closes its end: the session reads the rest, then end of file.
  void peer_close() {
    peer_closed = true;
    complete_read();
  }
  /// Takes what the session has written so far.
  std::vector<std::uint8_t> peer_read() { return std::exchange(outbound, {}); }

  boost::asio::any_io_executor executor;
  FailCount fail_count;
  std::vector<std::uint8_t> inbound;   // written by the peer, not yet read by the session
  std::vector<std::uint8_t> outbound;  // written by the session, not yet read by the peer
  bool peer_closed = false;
  /// A peer that reads nothing: the session's writes never complete.
  bool stall_writes = false;
  /// At most this many bytes per read or write operation, so that a frame
  /// takes several and a failure can fall inside one.
  std::size_t max_read = 16;
  std::size_t max_write = 16;
  bool closed = false;  // by the session
  std::size_t closes = 0;
  /// The size of the buffer the pending read holds (0 for none, or a wait).
  std::size_t pending_read_buffer = 0;
  /// A readiness stream's reads that took bytes: the size of the buffer
  /// each was given.
  std::vector<std::size_t> read_sizes;
  /// A readiness stream's reads that found nothing (would_block), and its
  /// waits for readability.
  std::size_t empty_reads = 0;
  std::size_t waits = 0;
  /// A readiness stream's writes made at once (write_some), not through the
  /// session's writer.
  std::size_t immediate_writes = 0;
  /// The size of every write the session asked for (at once or through
  /// its writer), whatever the peer took of it.
  std::vector<std::size_t> write_requests;
  bool non_blocking = false;  // set by the session's reader

  // ---- the session's side (TestStream) ----

  using Completion = std::function<void(boost::system::error_code, std::size_t)>;

  /// A read waiting for the peer: tries to complete it now.
  std::function<bool()> waiting_read;
  /// A write a stalled peer never takes: completes only when closed.
  Completion waiting_write;

  /// Moves at most max_read bytes of `inbound` into `into`.
  template <typename MutableBuffers>
  std::size_t take_inbound(const MutableBuffers& into) {
    const std::size_t n = boost::asio::buffer_copy(
        into, boost::asio::buffer(inbound.data(), std::min(inbound.size(), max_read)));
    inbound.erase(inbound.begin(), inbound.begin() + static_cast<std::ptrdiff_t>(n));
    return n;
  }

  void complete_read() {
    if (waiting_read && waiting_read()) {
      waiting_read = nullptr;
      pending_read_buffer = 0;
    }
  }

  void close() {
    closed = true;
    ++closes;
    const auto aborted = make_error_code(boost::asio::error::operation_aborted);
    if (auto read = std::exchange(waiting_read, nullptr))
      read();  // N.B. sees `closed`: completes with operation_aborted
    pending_read_buffer = 0;
    if (auto write = std::exchange(waiting_write, nullptr))
      write(aborted, 0);
  }
};

template <bool kReadiness>
class BasicTestStream {
 public:
  using executor_type = boost::asio::any_io_executor;
  static constexpr auto wait_read = boost::asio::socket_base::wait_read;

  explicit BasicTestStream(std::shared_ptr<StreamState> state) : state_(std::move(state)) {}

  executor_type get_executor() const { return state_->executor; }

  void close(boost::system::error_code& ec) {
    ec = {};
    state_->close();
  }

  template <typename MutableBuffers, typename Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [state = state_](auto handler, const MutableBuffers& into) {
          auto done = completion(*state, std::move(handler));
          if (failed(*state, done))
            return;
          // Completes when there are bytes, end of file or a close.
          state->pending_read_buffer = boost::asio::buffer_size(into);
          state->waiting_read = [state = state.get(), done, into] {
            if (state->closed) {
              done(make_error_code(boost::asio::error::operation_aborted), 0);
            } else if (!state->inbound.empty()) {
              done({}, state->take_inbound(into));
            } else if (state->peer_closed) {
              done(make_error_code(boost::asio::error::eof), 0);
            } else {
              return false;
            }
            return true;
          };
          state->complete_read();
        },
        token, buffers);
  }

  // ---- a readiness stream's reads ----

  void non_blocking(bool, boost::system::error_code& ec) requires kReadiness {
    ec = {};
    state_->non_blocking = true;
  }
  bool non_blocking() const requires kReadiness { return state_->non_blocking; }

  /// Reads what is there now: would_block when nothing is.
  template <typename MutableBuffers>
  std::size_t read_some(const MutableBuffers& into,
                        boost::system::error_code& ec) requires kReadiness {
    if (!may_start(ec))
      return 0;
    if (!state_->inbound.empty()) {
      state_->read_sizes.push_back(boost::asio::buffer_size(into));
      return state_->take_inbound(into);
    } else if (state_->peer_closed) {
      ec = make_error_code(boost::asio::error::eof);
    } else {
      ++state_->empty_reads;
      ec = make_error_code(boost::asio::error::would_block);
    }
    return 0;
  }

  /// Completes when there are bytes or end of file, holding no buffer.
  template <typename Token>
  auto async_wait(boost::asio::socket_base::wait_type, Token&& token) requires kReadiness {
    return boost::asio::async_initiate<Token, void(boost::system::error_code)>(
        [state = state_](auto handler) {
          auto done = completion(
              *state, [h = std::move(handler)](boost::system::error_code ec, std::size_t) mutable {
                std::move(h)(ec);
              });
          if (failed(*state, done))
            return;
          ++state->waits;
          state->waiting_read = [state = state.get(), done] {
            if (state->closed) {
              done(make_error_code(boost::asio::error::operation_aborted), 0);
            } else if (!state->inbound.empty() || state->peer_closed) {
              done({}, 0);
            } else {
              return false;
            }
            return true;
          };
          state->complete_read();
        },
        token);
  }

  /// Writes what the peer takes now (at most max_write): would_block while
  /// writes stall.
  template <typename ConstBuffers>
  std::size_t write_some(const ConstBuffers& from,
                         boost::system::error_code& ec) requires kReadiness {
    if (!may_start(ec))
      return 0;
    state_->write_requests.push_back(boost::asio::buffer_size(from));
    if (state_->stall_writes) {
      ec = make_error_code(boost::asio::error::would_block);
      return 0;
    }
    std::vector<std::uint8_t> chunk(std::min(boost::asio::buffer_size(from), state_->max_write));
    chunk.resize(boost::asio::buffer_copy(boost::asio::buffer(chunk), from));
    state_->outbound.insert(state_->outbound.end(), chunk.begin(), chunk.end());
    ++state_->immediate_writes;
    return chunk.size();
  }

  template <typename ConstBuffers, typename Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [state = state_](auto handler, const ConstBuffers& from) {
          auto done = completion(*state, std::move(handler));
          state->write_requests.push_back(boost::asio::buffer_size(from));
          if (failed(*state, done)) {
            return;
          } else if (state->stall_writes) {
            state->waiting_write = done;
          } else {
            std::vector<std::uint8_t> chunk(
                std::min(boost::asio::buffer_size(from), state->max_write));
            chunk.resize(boost::asio::buffer_copy(boost::asio::buffer(chunk), from));
            state->outbound.insert(state->outbound.end(), chunk.begin(), chunk.end());
            done({}, chunk.size());
          }
        },
        token, buffers);
  }

 private:
  /// Counts a readiness stream's operation (one that completes on the spot)
  /// as it starts: false, with `ec`, when it fails with the scripted failure
  /// or on a closed stream.
  bool may_start(boost::system::error_code& ec) {
    ec = {};
    if (state_->fail_count.fail(ec))
      return false;
    if (state_->closed) {
      ec = make_error_code(boost::asio::error::bad_descriptor);
      return false;
    }
    return true;
  }

  /// Counts an operation as it starts; completes it at once with the
  /// scripted failure, or on a closed stream.
  static bool failed(StreamState& state, const StreamState::Completion& done) {
    boost::system::error_code ec;
    if (state.fail_count.fail(ec)) {
      done(ec, 0);
    } else if (state.closed) {
      done(make_error_code(boost::asio::error::bad_descriptor), 0);
    } else {
      return false;
    }
    return true;
  }

  /// A copyable completion that posts the (move-only) handler to the
  /// stream's executor; the first call wins.
  template <typename Handler>
  static StreamState::Completion completion(StreamState& state, Handler handler) {
    auto held = std::make_shared<std::optional<Handler>>(std::move(handler));
    return [executor = state.executor, held](boost::system::error_code ec, std::size_t n) {
      if (!*held)
        return;
      boost::asio::post(executor,
                        [h = std::move(**held), ec, n]() mutable { std::move(h)(ec, n); });
      held->reset();
    };
  }

  std::shared_ptr<StreamState> state_;
};

using TestStream = BasicTestStream<false>;
using ReadinessTestStream = BasicTestStream<true>;

}  // namespace discarbiter::testing
