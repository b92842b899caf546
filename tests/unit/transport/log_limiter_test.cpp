#include "transport/log_limiter.hpp"

#include <gtest/gtest.h>

namespace discarbiter::transport {
namespace {

using namespace std::chrono_literals;

class FakeClock {
 public:
  LogLimiter::Clock clock() {
    return [this] { return now_; };
  }
  void advance(std::chrono::steady_clock::duration d) { now_ += d; }

 private:
  std::chrono::steady_clock::time_point now_{std::chrono::hours(1)};
};

/// How many of `n` messages under (peer, session) pass now.
int admitted(LogLimiter& limiter, int n, std::string_view peer, std::string_view session = {}) {
  int passed = 0;
  for (int i = 0; i < n; ++i)
    passed += limiter.admit(peer, session) ? 1 : 0;
  return passed;
}

TEST(LogLimiter, BurstThenHeldBackThenOnePerRefillWithTheCountSuppressed) {
  FakeClock clock;
  LogLimiter limiter({.burst = 5, .per_minute = 6, .max_keys = 16}, clock.clock());
  EXPECT_EQ(admitted(limiter, 1000, "user:alice"), 5);
  EXPECT_EQ(limiter.suppressed_total(), 995u);

  clock.advance(9s);  // 0.9 of a token: 6 per minute
  EXPECT_FALSE(limiter.admit("user:alice"));
  clock.advance(2s);
  const auto next = limiter.admit("user:alice");
  ASSERT_TRUE(next);
  EXPECT_EQ(next.suppressed, 996u);
  EXPECT_EQ(suppressed_note(next), " (996 similar messages suppressed)");
  clock.advance(10s);
  const auto quiet = limiter.admit("user:alice");
  ASSERT_TRUE(quiet);
  EXPECT_EQ(quiet.suppressed, 0u);
  EXPECT_EQ(suppressed_note(quiet), "");
}

TEST(LogLimiter, RefillsNoFurtherThanTheBurst) {
  FakeClock clock;
  LogLimiter limiter({.burst = 3, .per_minute = 60, .max_keys = 16}, clock.clock());
  EXPECT_EQ(admitted(limiter, 10, "user:alice"), 3);
  clock.advance(24h);
  EXPECT_EQ(admitted(limiter, 10, "user:alice"), 3);
}

TEST(LogLimiter, OnePeerDoesNotSilenceAnother) {
  FakeClock clock;
  LogLimiter limiter({.burst = 4, .per_minute = 1, .max_keys = 16}, clock.clock());
  EXPECT_EQ(admitted(limiter, 100, "user:mallory"), 4);
  EXPECT_EQ(admitted(limiter, 100, "user:alice"), 4);
  EXPECT_EQ(admitted(limiter, 1, "user:admin"), 1);
}

TEST(LogLimiter, ASessionGetsAQuarterOfItsPeersAllowance) {
  FakeClock clock;
  LogLimiter limiter({.burst = 20, .per_minute = 60, .max_keys = 16}, clock.clock());
  EXPECT_EQ(admitted(limiter, 100, "user:mallory", "session:1"), 5);
  // The same user's other sessions still get theirs, until the peer's bucket is empty.
  EXPECT_EQ(admitted(limiter, 100, "user:mallory", "session:2"), 5);
  EXPECT_EQ(admitted(limiter, 100, "user:mallory", "session:3"), 5);
  EXPECT_EQ(admitted(limiter, 100, "user:mallory", "session:4"), 5);
  EXPECT_EQ(admitted(limiter, 100, "user:mallory", "session:5"), 0);
  // Each held-back message is counted once, against the bucket that held it
  // back, and reported by the next message that passes through that bucket.
  clock.advance(2s);  // two tokens for the peer, half of one for each session
  EXPECT_FALSE(limiter.admit("user:mallory", "session:1"));
  clock.advance(3s);
  const auto next = limiter.admit("user:mallory", "session:1");
  ASSERT_TRUE(next);
  // Session 1's own 95 and the one just now; session 5's 100, held back by the peer's bucket.
  EXPECT_EQ(next.suppressed, 96u + 100u);
  const auto other = limiter.admit("user:mallory", "session:5");
  ASSERT_TRUE(other);
  EXPECT_EQ(other.suppressed, 0u);
}

TEST(LogLimiter, KeysAreBoundedAndFullBucketsForgotten) {
  FakeClock clock;
  LogLimiter limiter({.burst = 2, .per_minute = 60, .max_keys = 8}, clock.clock());
  // Many one-off peers (each a fresh connection's user, say): full buckets
  // are dropped, so newcomers keep their own allowance.
  for (int i = 0; i < 1000; ++i) {
    EXPECT_TRUE(limiter.admit("user:u" + std::to_string(i))) << i;
    clock.advance(2s);
  }
  // Eight noisy peers at once fill the table; a ninth shares one bucket.
  for (int i = 0; i < 8; ++i)
    EXPECT_EQ(admitted(limiter, 10, "user:n" + std::to_string(i)), 2);
  EXPECT_EQ(admitted(limiter, 10, "user:late1") + admitted(limiter, 10, "user:late2"), 2);
}

}  // namespace
}  // namespace discarbiter::transport
