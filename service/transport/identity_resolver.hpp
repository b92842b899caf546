// Identity look-ups that may wait on something outside this machine (a user
// database behind NSS, a domain controller) run on a thread of their own,
// never on the strand, and each result comes back to the strand with post.
// Until it is identified a connection counts against no user, so the number
// waiting is bounded: a local user who connects in a loop fills this queue,
// not the service's memory.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

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

/// User names a look-up gave lately, by the user's uid (POSIX) or SID
/// (Windows), so that a user's next connections are identified on the strand
/// without waiting on the user database or a domain controller again (as
/// nscd would). A name is kept kLifetime: a user renamed meanwhile keeps the
/// old name (the same uid or SID, so the same limits) that long. At most
/// kMaxNames users: a flood of users costs look-ups, not memory.
template <typename Key>
class RecentUserNames {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::seconds kLifetime{60};
  static constexpr std::size_t kMaxNames = 256;

  /// The name remembered for `key`, or null once it is older than kLifetime.
  const std::string* find(const Key& key, Clock::time_point now = Clock::now()) {
    const auto it = names_.find(key);
    if (it == names_.end())
      return nullptr;
    if (now >= it->second.until) {
      names_.erase(it);
      return nullptr;
    }
    return &it->second.name;
  }

  void remember(const Key& key, const std::string& name, Clock::time_point now = Clock::now()) {
    if (names_.size() >= kMaxNames && !names_.contains(key)) {
      std::erase_if(names_, [now](const auto& entry) { return now >= entry.second.until; });
      if (names_.size() >= kMaxNames)
        names_.clear();  // N.B. bounded: a few more look-ups, not memory
    }
    names_[key] = {name, now + kLifetime};
  }

  std::size_t size() const { return names_.size(); }

 private:
  struct Entry {
    std::string name;
    Clock::time_point until;
  };
  std::unordered_map<Key, Entry> names_;
};

}  // namespace discarbiter::transport
