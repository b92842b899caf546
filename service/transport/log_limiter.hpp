// Rate limits for the warnings a client can cause at will (bad frames,
// refused connections, refused requests), so that no user can flood the log
// and push everyone else's records (an administrator's `break`, a drive
// error) out of journald's burst window or the log queue.
//
// A token bucket per peer (its user, across all its connections) and per
// session: a peer may log `burst` messages at once, then `per_minute`; one
// session of it a quarter of that, so a single noisy connection cannot use
// up its user's whole allowance. A message passes only if both its buckets
// have a token; one that does not pass is counted against the bucket that
// stopped it, and the next message that passes under that bucket says how
// many were held back ("… (37 similar messages suppressed)"). No timer: an
// idle service does not wake up for the limiter.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace discarbiter::transport {

struct LogLimits {
  std::uint32_t burst = 20;       // messages a key may log at once
  std::uint32_t per_minute = 30;  // and then, on average
  std::size_t max_keys = 4096;    // buckets kept; beyond, keys share one
};

class LogLimiter {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  explicit LogLimiter(LogLimits limits = {}, Clock clock = &std::chrono::steady_clock::now);

  struct Admission {
    bool log = false;
    /// Messages held back under the admitted keys since their last one.
    std::uint64_t suppressed = 0;
    explicit operator bool() const { return log; }
  };

  /// Whether a message caused by `peer` (and, when not empty, by its
  /// session `session`) may be logged now; takes a token from each bucket
  /// when it may. Thread-safe.
  Admission admit(std::string_view peer, std::string_view session = {});

  /// Messages held back since start, under every key.
  std::uint64_t suppressed_total() const;
  /// New limits for later messages; existing buckets keep their tokens.
  void set_limits(LogLimits limits);

 private:
  struct Bucket {
    double share = 1;
    double tokens = 0;
    std::chrono::steady_clock::time_point refilled;
    std::uint64_t suppressed = 0;
  };
  /// A session's bucket is this share of a peer's.
  static constexpr double kSessionShare = 0.25;

  Bucket& bucket(std::string_view key, double share, std::chrono::steady_clock::time_point now);
  void refill(Bucket& b, std::chrono::steady_clock::time_point now) const;
  double capacity(double share) const;
  void forget_full_buckets(std::chrono::steady_clock::time_point now);

  mutable std::mutex mutex_;
  LogLimits limits_;
  Clock clock_;
  std::unordered_map<std::string, Bucket> buckets_;
  std::uint64_t suppressed_total_ = 0;
};

/// "" or " (N similar messages suppressed)", to end the admitted message with.
std::string suppressed_note(const LogLimiter::Admission& admission);

/// The service's limiter for client-caused warnings (configured at start from
/// `logging.warning_burst` and `logging.warnings_per_minute`).
LogLimiter& client_warnings();

/// The keys for one client: its user, and one of its sessions.
std::string peer_key(std::string_view user);
std::string session_key(std::uint64_t session);

}  // namespace discarbiter::transport
