// The transport's options, as configuration fills them: what a session and
// the listener are allowed (DESIGN.md "Limits"). No Asio here, so the host's
// configuration can name them without pulling in the session template.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "discarbiter/proto/frame.hpp"

namespace discarbiter::transport {

struct SessionLimits {
  std::chrono::milliseconds handshake{2000};
  /// A session that holds no lock, waits for none and has not subscribed is
  /// closed after this long without a request; 0 never.
  std::chrono::seconds idle{600};
  proto::FrameLimits frames;
  std::size_t max_outbox_bytes = 8 * 1024 * 1024;
};

struct ListenerOptions {
  std::string endpoint;
  std::uint32_t socket_mode = 0660;  // POSIX: permissions of the socket file
  std::string socket_group;          // POSIX: group of the socket file ("": root's)
  std::string admin_group;           // POSIX: its members may `break` (as may uid 0)
  std::uint32_t max_sessions = 256;
  std::uint32_t max_sessions_per_user = 32;
  /// Of max_sessions, the last this many only administrators may take.
  std::uint32_t admin_reserved_sessions = 8;
  /// Windows: connected pipe instances that have not yet sent their first
  /// bytes (so are not yet identified, and count against no user).
  std::uint32_t max_pending_connections = 64;
  SessionLimits session;
};

}  // namespace discarbiter::transport
