// Accepts client connections on the platform's endpoint (Unix socket or named
// pipe) and runs a Session for each. One definition per platform:
// socket_listener_posix.cpp, pipe_listener_windows.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "discarbiter/proto/result.hpp"
#include "transport/dispatcher.hpp"
#include "transport/log_limiter.hpp"
#include "transport/options.hpp"
#include "transport/refusals.hpp"
#include "transport/session.hpp"
#include "transport/session_registry.hpp"

namespace discarbiter::transport {

class Listener {
 public:
  virtual ~Listener() = default;
  /// Binds the endpoint; the error names the step that failed.
  virtual Result<Done> open() = 0;
  virtual void start() = 0;
  /// Stops accepting and closes every session (their locks are released).
  virtual void stop() = 0;
  virtual std::size_t session_count() const = 0;
};

std::unique_ptr<Listener> make_listener(boost::asio::io_context& io, ServiceContext& context,
                                        ListenerOptions options);

/// Refuses a new connection with an error frame when a limit is reached;
/// otherwise starts a Session for it, registered in `registry` until it ends.
/// On the strand, once the peer is identified.
template <typename Stream>
void admit_connection(SessionRegistry& registry, Refusals& refusals, Stream stream,
                      ServiceContext& context, core::PeerIdentity peer, const SessionLimits& limits,
                      proto::Bytes already_read = {}) {
  if (auto refusal = registry.refusal(peer.user, peer.administrator)) {
    if (const auto admitted = client_warnings().admit(peer_key(peer.user))) {
      spdlog::warn("refusing connection from pid {} ({}): {}{}", peer.pid, peer.user,
                   refusal->message, suppressed_note(admitted));
    }
    refusals.refuse(std::move(stream), *refusal);
    return;
  }
  auto session = std::make_shared<Session<Stream>>(
      std::move(stream), context, std::move(peer), limits,
      [&registry](SessionHandle* closed) { registry.remove(closed); }, std::move(already_read));
  registry.add(session);
  session->start();
}

/// The endpoint used when neither the command line nor the config names one.
std::string default_endpoint();

}  // namespace discarbiter::transport
