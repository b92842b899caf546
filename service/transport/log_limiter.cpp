#include "transport/log_limiter.hpp"

#include <algorithm>
#include <utility>

#include <fmt/format.h>

namespace discarbiter::transport {

LogLimiter::LogLimiter(LogLimits limits, Clock clock) : limits_(limits), clock_(std::move(clock)) {}

double LogLimiter::capacity(double share) const {
  return std::max(1.0, limits_.burst * share);
}

void LogLimiter::refill(Bucket& b, std::chrono::steady_clock::time_point now) const {
  const double minutes = std::chrono::duration<double, std::ratio<60>>(now - b.refilled).count();
  b.tokens = std::min(capacity(b.share), b.tokens + minutes * limits_.per_minute * b.share);
  b.refilled = now;
}

void LogLimiter::forget_full_buckets(std::chrono::steady_clock::time_point now) {
  // N.B. a full bucket with nothing to report is the same as no bucket.
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    refill(it->second, now);
    const bool full = it->second.tokens >= capacity(it->second.share);
    it = full && it->second.suppressed == 0 ? buckets_.erase(it) : std::next(it);
  }
}

LogLimiter::Bucket& LogLimiter::bucket(std::string_view key, double share,
                                       std::chrono::steady_clock::time_point now) {
  auto it = buckets_.find(std::string(key));
  if (it != buckets_.end()) {
    refill(it->second, now);
    return it->second;
  }
  if (buckets_.size() >= limits_.max_keys) {
    // Too many noisy keys at once: the newcomers share one bucket.
    auto& shared = buckets_["*"];
    refill(shared, now);
    return shared;
  }
  Bucket& b = buckets_[std::string(key)];
  b.share = share;
  b.tokens = capacity(share);
  b.refilled = now;
  return b;
}

LogLimiter::Admission LogLimiter::admit(std::string_view peer, std::string_view session) {
  std::lock_guard lock(mutex_);
  const auto now = clock_();
  if (buckets_.size() + 2 > limits_.max_keys)
    forget_full_buckets(now);  // N.B. before taking references into the map
  Bucket& by_peer = bucket(peer, 1.0, now);
  Bucket* by_session = session.empty() ? nullptr : &bucket(session, kSessionShare, now);
  // N.B. a held-back message is counted once, against the bucket that held
  // it back (the session's first: it is the narrower one).
  for (Bucket* b : {by_session, &by_peer}) {
    if (b && b->tokens < 1) {
      ++b->suppressed;
      ++suppressed_total_;
      return {};
    }
  }
  Admission admitted{true, 0};
  for (Bucket* b : {by_session, &by_peer}) {
    if (!b)
      continue;
    b->tokens -= 1;
    admitted.suppressed += std::exchange(b->suppressed, 0);
  }
  return admitted;
}

std::uint64_t LogLimiter::suppressed_total() const {
  std::lock_guard lock(mutex_);
  return suppressed_total_;
}

void LogLimiter::set_limits(LogLimits limits) {
  std::lock_guard lock(mutex_);
  limits_ = limits;
}

std::string suppressed_note(const LogLimiter::Admission& admission) {
  if (admission.suppressed == 0)
    return {};
  return fmt::format(" ({} similar message{} suppressed)", admission.suppressed,
                     admission.suppressed == 1 ? "" : "s");
}

LogLimiter& client_warnings() {
  static LogLimiter limiter;
  return limiter;
}

std::string peer_key(std::string_view user) {
  return fmt::format("user:{}", user.empty() ? "?" : user);
}

std::string session_key(std::uint64_t session) {
  return fmt::format("session:{}", session);
}

}  // namespace discarbiter::transport
