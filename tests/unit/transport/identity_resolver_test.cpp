#include "transport/identity_resolver.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "run_until.hpp"

namespace discarbiter::transport {
namespace {

using namespace std::chrono_literals;
using test::run_until;

/// A look-up that waits until released, as a user database that does not
/// answer; says when it has begun.
struct Gate {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<void> begun;  // by the first look-up through this gate
  std::once_flag first;

  IdentityResolver::Lookup lookup(std::string user) {
    return [this, user] {
      std::call_once(first, [this] { begun.set_value(); });
      released.wait();
      Identified out;
      out.peer.user = user;
      return out;
    };
  }
};

TEST(IdentityResolver, AStuckLookUpDelaysNothingOnTheStrandAndIsDeliveredThereOnceItAnswers) {
  boost::asio::io_context io;
  IdentityResolver resolver(io.get_executor(), 4);
  Gate gate;
  std::optional<std::string> identified;
  std::thread::id delivered_on;
  resolver.submit(gate.lookup("slow"), [&](Identified result) {
    identified = result.peer.user;
    delivered_on = std::this_thread::get_id();
  });
  ASSERT_EQ(gate.begun.get_future().wait_for(5s), std::future_status::ready);
  EXPECT_EQ(resolver.pending(), 1U);

  // The strand goes on while the look-up waits.
  bool other_work = false;
  boost::asio::post(io, [&] { other_work = true; });
  EXPECT_TRUE(run_until(io, [&] { return other_work; }));
  EXPECT_FALSE(identified);

  gate.release.set_value();
  ASSERT_TRUE(run_until(io, [&] { return identified.has_value(); }));
  EXPECT_EQ(*identified, "slow");
  EXPECT_EQ(delivered_on, std::this_thread::get_id()) << "delivered off the strand";
  EXPECT_EQ(resolver.pending(), 0U);
}

TEST(IdentityResolver, IsFullAtMaxPendingUntilOneIsDelivered) {
  boost::asio::io_context io;
  IdentityResolver resolver(io.get_executor(), 2);
  Gate gate;
  int delivered = 0;
  resolver.submit(gate.lookup("first"), [&](Identified) { ++delivered; });
  EXPECT_FALSE(resolver.full());
  resolver.submit(gate.lookup("second"), [&](Identified) { ++delivered; });
  EXPECT_TRUE(resolver.full()) << "one running, one queued behind it";
  ASSERT_EQ(gate.begun.get_future().wait_for(5s), std::future_status::ready);
  gate.release.set_value();
  ASSERT_TRUE(run_until(io, [&] { return delivered >= 1; }));
  EXPECT_FALSE(resolver.full());
  ASSERT_TRUE(run_until(io, [&] { return delivered == 2; }));
}

TEST(IdentityResolver, StopDoesNotWaitForAStuckLookUpAndDropsItsConnection) {
  boost::asio::io_context io;
  Gate gate;
  auto connection = std::make_shared<int>(1);
  std::weak_ptr<int> watched = connection;
  bool delivered = false;
  std::promise<void> returned;
  {
    IdentityResolver resolver(io.get_executor(), 4);
    auto slow = gate.lookup("stuck");
    resolver.submit(
        [&, slow] {
          auto out = slow();
          returned.set_value();
          return out;
        },
        [&delivered, connection = std::move(connection)](Identified) { delivered = true; });
    ASSERT_EQ(gate.begun.get_future().wait_for(5s), std::future_status::ready);
    resolver.stop();  // N.B. returns at once, the look-up still stuck
    EXPECT_TRUE(watched.expired()) << "the waiting connection was not closed at stop";
    EXPECT_EQ(resolver.pending(), 0U);
  }  // and so does the destructor
  gate.release.set_value();
  ASSERT_EQ(returned.get_future().wait_for(5s), std::future_status::ready);
  io.restart();
  io.poll();
  EXPECT_FALSE(delivered);
}

// The user names both listeners remember (by uid on Linux, by SID on
// Windows): kept kLifetime, then looked up again; bounded to kMaxNames users.
TEST(RecentUserNames, ANameIsKeptItsLifetimeThenLookedUpAgain) {
  using Names = RecentUserNames<std::string>;
  Names names;
  const auto t0 = Names::Clock::time_point() + 1h;
  EXPECT_EQ(names.find("S-1-5-21-1-1001", t0), nullptr);
  names.remember("S-1-5-21-1-1001", "HOST\\alice", t0);
  ASSERT_NE(names.find("S-1-5-21-1-1001", t0 + Names::kLifetime - 1s), nullptr);
  EXPECT_EQ(*names.find("S-1-5-21-1-1001", t0 + Names::kLifetime - 1s), "HOST\\alice");
  EXPECT_EQ(names.find("S-1-5-21-1-1002", t0), nullptr) << "another user";
  EXPECT_EQ(names.find("S-1-5-21-1-1001", t0 + Names::kLifetime), nullptr) << "expired";
  EXPECT_EQ(names.size(), 0U) << "an expired name is dropped";
}

TEST(RecentUserNames, AFloodOfUsersStaysBounded) {
  RecentUserNames<unsigned> names;
  const auto t0 = RecentUserNames<unsigned>::Clock::time_point() + 1h;
  for (unsigned uid = 0; uid < 10 * RecentUserNames<unsigned>::kMaxNames; ++uid) {
    names.remember(uid, "user" + std::to_string(uid), t0);
    ASSERT_LE(names.size(), RecentUserNames<unsigned>::kMaxNames);
    ASSERT_NE(names.find(uid, t0), nullptr) << "the latest is kept";
  }
  // Remembering a user already known never drops the others.
  const auto before = names.size();
  names.remember(10 * RecentUserNames<unsigned>::kMaxNames - 1, "renamed", t0);
  EXPECT_EQ(names.size(), before);
}

}  // namespace
}  // namespace discarbiter::transport
