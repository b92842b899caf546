// The client's byte stream to the service, one definition per platform
// (connection_posix.cpp: Unix socket; connection_windows.cpp: named pipe).
#pragma once

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
  /// Some bytes; 0 when the deadline passes. Throws ServiceError when the
  /// service closes the connection or after shutdown(). One reader at a time.
  virtual std::size_t read_some(std::span<std::uint8_t> buffer, Deadline deadline) = 0;
  /// Ends the stream in both directions, from any thread, while another may
  /// be blocked in read_some or write_all: they fail promptly, and the
  /// service sees the session end at once (its locks die with it), not when
  /// the Client is destroyed.
  virtual void shutdown() noexcept = 0;

  /// Fills `buffer` exactly. False when the deadline passes first (what was
  /// read is in the buffer, the rest is not).
  bool read_exact(std::span<std::uint8_t> buffer, Deadline deadline) {
    while (!buffer.empty()) {
      const std::size_t n = read_some(buffer, deadline);
      if (n == 0)
        return false;
      buffer = buffer.subspan(n);
    }
    return true;
  }
};

/// Throws ServiceError (DA_E_SERVICE_UNAVAILABLE) naming the endpoint.
std::unique_ptr<Connection> connect_to_service(const std::string& endpoint,
                                               Connection::Deadline deadline);
std::string platform_default_endpoint();

}  // namespace discarbiter
