// The client's byte stream to the service, one definition per platform
// (connection_posix.cpp: Unix socket; connection_windows.cpp: named pipe).
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>

namespace discarbiter {

class Connection {
 public:
  using Deadline = std::chrono::steady_clock::time_point;
  using Buffers = std::initializer_list<std::span<const std::uint8_t>>;
  virtual ~Connection() = default;
  /// Writes every buffer in order, with no copy (a gather write where the OS
  /// has one). Throws ServiceError (DA_E_CONNECTION_LOST) on failure or at
  /// the deadline. One writer at a time.
  virtual void write_all(Buffers buffers, Deadline deadline) = 0;
  /// Some bytes from the stream itself; 0 when the deadline passes. Throws
  /// ServiceError when the service closes the connection or after
  /// shutdown(). One reader at a time. N.B. readers call read() or
  /// read_exact(), which hand out what was read ahead first.
  virtual std::size_t read_some(std::span<std::uint8_t> buffer, Deadline deadline) = 0;
  /// Ends the stream in both directions, from any thread, while another may
  /// be blocked in read_some or write_all: they fail promptly, and the
  /// service sees the session end at once (its locks die with it), not when
  /// the Client is destroyed.
  virtual void shutdown() noexcept = 0;

  /// Waits until bytes can be read, the stream ends or the deadline passes
  /// (false). Where the OS cannot wait without reading (a pipe's overlapped
  /// read), true at once: read_some waits.
  virtual bool wait_readable(Deadline /*deadline*/) { return true; }

  /// Some bytes: those read ahead first, then from the stream; 0 when the
  /// deadline passes. A part smaller than the read-ahead buffer is read
  /// through it, so that a reply's header and JSON (and the next frame's
  /// start) come in one read; a larger part goes straight into `buffer`.
  /// `wait_first`: nothing is expected yet (a reply's first bytes): wait for
  /// readability before reading rather than read for nothing first.
  std::size_t read(std::span<std::uint8_t> buffer, Deadline deadline, bool wait_first = false) {
    if (ahead_begin_ == ahead_end_) {
      if (wait_first && !wait_readable(deadline))
        return 0;
      if (buffer.size() >= ahead_.size())
        return read_some(buffer, deadline);
      ahead_end_ = read_some(ahead_, deadline);
      ahead_begin_ = 0;
    }
    const std::size_t n = std::min(buffer.size(), ahead_end_ - ahead_begin_);
    std::copy_n(ahead_.begin() + static_cast<std::ptrdiff_t>(ahead_begin_), n, buffer.begin());
    ahead_begin_ += n;
    return n;
  }

  /// Fills `buffer` exactly (read()). False when the deadline passes first
  /// (what was read is in the buffer, the rest is not).
  bool read_exact(std::span<std::uint8_t> buffer, Deadline deadline) {
    while (!buffer.empty()) {
      const std::size_t n = read(buffer, deadline);
      if (n == 0)
        return false;
      buffer = buffer.subspan(n);
    }
    return true;
  }

 private:
  /// What read() took from the stream and has not handed out yet. N.B. a
  /// reply without a payload is about 50 to 300 bytes: one read takes it.
  std::array<std::uint8_t, 1024> ahead_{};
  std::size_t ahead_begin_ = 0;
  std::size_t ahead_end_ = 0;
};

/// Throws ServiceError (DA_E_SERVICE_UNAVAILABLE) naming the endpoint.
std::unique_ptr<Connection> connect_to_service(const std::string& endpoint,
                                               Connection::Deadline deadline);
std::string platform_default_endpoint();

}  // namespace discarbiter
