// Identity look-ups that may wait on something outside this machine (a user
// database behind NSS, a domain controller) run on a thread of their own,
// never on the strand, and each result comes back to the strand with post.
// Until it is identified a connection counts against no user, so the number
// waiting is bounded: a local user who connects in a loop fills this queue,
// not the service's memory.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/identity.hpp"

namespace discarbiter::transport {

/// What a look-up found. A look-up never logs (it may finish after the
/// service has stopped): what it would say goes in `note`, logged at debug
/// level on the strand.
struct Identified {
  core::PeerIdentity peer;
  std::string note;
  /// peer.user came from the user database (not a stand-in for a user it
  /// does not know), so it may be remembered for a while.
  bool user_found = false;
};

class IdentityResolver {
 public:
  /// Runs off the strand. It owns everything it uses (plain data: no Asio
  /// object, no reference to the listener): it may finish after both are
  /// gone, or never.
  using Lookup = std::function<Identified()>;
  /// Runs on the strand with the look-up's result, unless stop() came first.
  using OnIdentified = std::function<void(Identified)>;

  /// N.B. holds no work on the io_context: a stuck look-up does not keep
  /// run() from returning. Destroy (or stop) it before the io_context.
  IdentityResolver(boost::asio::any_io_executor strand, std::size_t max_pending);
  ~IdentityResolver();
  IdentityResolver(const IdentityResolver&) = delete;
  IdentityResolver& operator=(const IdentityResolver&) = delete;

  /// Whether `max_pending` look-ups are already waiting or running: the
  /// caller refuses the connection (with its own frame) instead of submitting.
  bool full() const { return pending() >= max_pending_; }
  /// Queues `lookup`. On the strand.
  void submit(Lookup lookup, OnIdentified on_identified);
  /// Look-ups submitted whose OnIdentified has not run yet.
  std::size_t pending() const;
  /// Drops every look-up not yet delivered: each OnIdentified is destroyed
  /// unrun (closing the connection it holds). Never waits for a look-up that
  /// is running: one stuck forever keeps only the worker thread.
  void stop();

 private:
  struct Shared;
  std::shared_ptr<Shared> shared_;
  std::size_t max_pending_;
  std::uint64_t next_id_ = 0;
};

}  // namespace discarbiter::transport
