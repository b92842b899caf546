// How a session reads its stream, chosen by the stream's type (a trait, not
// the platform): an idle session should hold no read buffer.
//
// - A readiness stream (the POSIX socket, over a reactor: the kernel says
//   when bytes are there, and the caller then reads them) waits for
//   readability holding no buffer, then reads what is there into the io
//   thread's one buffer; the session feeds its decoder before anything else
//   reads. An idle session costs no buffer at all.
// - Any other stream (the Windows pipe, over I/O completion ports: the kernel
//   writes into the buffer while the read is pending) keeps a buffer of its
//   own for as long as a read is pending: a small one, and a larger one only
//   while a large frame is arriving.
#pragma once

#include <utility>  // N.B. before Asio: Boost 1.74's awaitable.hpp needs std::exchange

#include <algorithm>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/error_code.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace discarbiter::transport {

/// The most one read takes from a stream.
inline constexpr std::size_t kReadChunk = 64 * 1024;
/// What a pending read on a completion stream holds while no large frame is
/// arriving (hello and every request without a payload fit in it).
inline constexpr std::size_t kPendingReadBuffer = 4 * 1024;

/// A stream that can wait for readability, then read without blocking.
template <typename Stream>
concept ReadinessStream = requires(Stream& s, boost::asio::mutable_buffer b,
                                   boost::system::error_code& ec) {
  s.non_blocking(true, ec);
  { s.read_some(b, ec) } -> std::convertible_to<std::size_t>;
  s.async_wait(Stream::wait_read, boost::asio::use_awaitable);
};

/// The io thread's read buffer, shared by every session it serves: bytes
/// read into it are fed to a decoder before the thread reads again.
/// N.B. allocated on first use and never initialised: a thread_local array
/// would be zeroed in every thread of the process.
inline std::span<std::uint8_t> io_thread_read_buffer() {
  thread_local const auto buffer = std::make_unique_for_overwrite<std::uint8_t[]>(kReadChunk);
  return {buffer.get(), kReadChunk};
}

template <typename Stream>
class StreamReader;

template <ReadinessStream Stream>
class StreamReader<Stream> {
 public:
  /// Bytes read (valid until this thread reads again), or end of file, a
  /// failure, a close (in `ec`). Waits for bytes if there are none yet.
  /// `wanted`: how many more bytes the frame arriving needs, at least; a read
  /// into the thread's buffer takes at most kPendingReadBuffer bytes unless
  /// more are wanted. `into`, when not empty: the caller's buffer (a
  /// payload's), read into instead of the thread's.
  boost::asio::awaitable<std::span<const std::uint8_t>> read(Stream& stream, std::size_t wanted,
                                                             std::span<std::uint8_t> into,
                                                             boost::system::error_code& ec) {
    namespace asio = boost::asio;
    if (!std::exchange(non_blocking_, true)) {
      stream.non_blocking(true, ec);  // N.B. or read_some would block the io thread
      if (ec)
        co_return std::span<const std::uint8_t>{};
    }
    // N.B. a read between frames takes a small bite: the head of a frame
    // with a payload, and a little of the payload, which the decoder copies;
    // the rest of the payload is then read straight into its own buffer
    // (FrameDecoder::payload_space). A whole chunk would pass 64 KiB of a
    // WRITE's data through the thread's buffer and copy it.
    const auto buffer =
        into.empty()
            ? io_thread_read_buffer().first(std::clamp(wanted, kPendingReadBuffer, kReadChunk))
            : into;
    switch (std::exchange(next_, Next::read)) {
      case Next::read:
        break;
      case Next::yield:
        // N.B. a client that writes without pause must not keep the io
        // thread: after a read that filled the buffer, everything else ready
        // runs before the next.
        co_await asio::post(stream.get_executor(), asio::use_awaitable);
        break;
      case Next::wait:
        // The last read was short: the stream had nothing more, so a read
        // now would most likely find nothing (a system call for EAGAIN).
        // N.B. waiting first loses nothing that came meanwhile: Asio's epoll
        // reactor starts every wait with EPOLL_CTL_MOD, which re-arms the
        // edge-triggered registration, and the kernel then reports bytes
        // already there (epoll_reactor.ipp start_op, allow_speculative false;
        // stream_reader_test.cpp checks it on a real socket).
        co_await stream.async_wait(Stream::wait_read,
                                   asio::redirect_error(asio::use_awaitable, ec));
        if (ec)
          co_return std::span<const std::uint8_t>{};
        break;
    }
    for (;;) {
      const std::size_t n = stream.read_some(asio::buffer(buffer.data(), buffer.size()), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) {
        ec = {};
        co_await stream.async_wait(Stream::wait_read,
                                   asio::redirect_error(asio::use_awaitable, ec));
        if (ec)
          co_return std::span<const std::uint8_t>{};
        continue;
      }
      if (!ec)
        next_ = n < buffer.size() ? Next::wait : Next::yield;
      co_return std::span<const std::uint8_t>{buffer.data(), ec ? 0 : n};
    }
  }

 private:
  /// What the next read does before reading.
  enum class Next { read, yield, wait };

  Next next_ = Next::read;  // N.B. the first read reads: hello is usually there
  bool non_blocking_ = false;
};

template <typename Stream>
requires(!ReadinessStream<Stream>) class StreamReader<Stream> {
 public:
  /// Bytes read (valid until the next read), or end of file, a failure, a
  /// close (in `ec`). `wanted`: how many more bytes the frame arriving needs,
  /// at least; past kPendingReadBuffer, a larger buffer is held meanwhile.
  /// `into`, when not empty: the caller's buffer (a payload's), read into
  /// instead of one of its own.
  boost::asio::awaitable<std::span<const std::uint8_t>> read(Stream& stream, std::size_t wanted,
                                                             std::span<std::uint8_t> into,
                                                             boost::system::error_code& ec) {
    namespace asio = boost::asio;
    if (!into.empty()) {
      const std::size_t n = co_await stream.async_read_some(
          asio::buffer(into.data(), into.size()), asio::redirect_error(asio::use_awaitable, ec));
      co_return std::span<const std::uint8_t>{into.data(), ec ? 0 : n};
    }
    const std::size_t size = wanted > kPendingReadBuffer ? kReadChunk : kPendingReadBuffer;
    if (size != size_) {
      // N.B. never initialised: the kernel writes it.
      buffer_ = std::make_unique_for_overwrite<std::uint8_t[]>(size);
      size_ = size;
    }
    const std::size_t n = co_await stream.async_read_some(
        asio::buffer(buffer_.get(), size_), asio::redirect_error(asio::use_awaitable, ec));
    co_return std::span<const std::uint8_t>{buffer_.get(), ec ? 0 : n};
  }

 private:
  std::unique_ptr<std::uint8_t[]> buffer_;
  std::size_t size_ = 0;
};

}  // namespace discarbiter::transport
