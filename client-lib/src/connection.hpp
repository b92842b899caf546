// The client's byte stream to the service, one definition per platform
// (connection_posix.cpp: Unix socket; connection_windows.cpp: named pipe).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace discarbiter {

class Connection {
 public:
  using Deadline = std::chrono::steady_clock::time_point;
  virtual ~Connection() = default;
  /// Throws ServiceError (DA_E_CONNECTION_LOST) on failure or at the deadline.
  virtual void write_all(std::span<const std::uint8_t> bytes, Deadline deadline) = 0;
  /// Some bytes; 0 when the deadline passes. Throws ServiceError when the
  /// service closes the connection.
  virtual std::size_t read_some(std::span<std::uint8_t> buffer, Deadline deadline) = 0;
};

/// Throws ServiceError (DA_E_SERVICE_UNAVAILABLE) naming the endpoint.
std::unique_ptr<Connection> connect_to_service(const std::string& endpoint,
                                               Connection::Deadline deadline);
std::string platform_default_endpoint();

}  // namespace discarbiter
