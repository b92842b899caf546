#include "transport/session_registry.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace discarbiter::transport {
namespace {

class FakeSession final : public SessionHandle {
 public:
  explicit FakeSession(std::string user) : user_(std::move(user)) {}
  void close(std::string_view) override {}
  const std::string& user() const override { return user_; }

 private:
  std::string user_;
};

/// Adds sessions of `user` while the registry admits them; returns how many.
int fill(SessionRegistry& registry, const std::string& user, bool administrator,
         std::vector<std::shared_ptr<FakeSession>>& keep) {
  int added = 0;
  while (!registry.refusal(user, administrator)) {
    keep.push_back(std::make_shared<FakeSession>(user));
    registry.add(keep.back());
    ++added;
  }
  return added;
}

TEST(SessionRegistry, TheLastSessionsAreForAdministratorsOnly) {
  SessionRegistry registry(/*max_sessions=*/10, /*max_sessions_per_user=*/4,
                           /*admin_reserved_sessions=*/3);
  std::vector<std::shared_ptr<FakeSession>> keep;
  EXPECT_EQ(fill(registry, "alice", false, keep), 4);
  EXPECT_EQ(fill(registry, "bob", false, keep), 3) << "7 = 10 - 3 reserved";
  const auto refused = registry.refusal("carol", false);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->code, errc::limit_reached);
  EXPECT_NE(refused->message.find("reserved for administrators"), std::string::npos)
      << refused->message;
  EXPECT_EQ(fill(registry, "root", true, keep), 3) << "the reserve is the administrators'";
  const auto full = registry.refusal("root2", true);
  ASSERT_TRUE(full);
  EXPECT_NE(full->message.find("maximum of 10 sessions"), std::string::npos) << full->message;
  // One session ends: an ordinary user still cannot take a reserved slot.
  registry.remove(keep.back().get());
  EXPECT_TRUE(registry.refusal("carol", false));
  EXPECT_FALSE(registry.refusal("root2", true));
}

TEST(SessionRegistry, AdministratorsHaveThePerUserLimitToo) {
  SessionRegistry registry(100, 2, 8);
  std::vector<std::shared_ptr<FakeSession>> keep;
  EXPECT_EQ(fill(registry, "root", true, keep), 2);
}

TEST(SessionRegistry, NoReserveMeansEveryoneMayFillIt) {
  SessionRegistry registry(5, 5, 0);
  std::vector<std::shared_ptr<FakeSession>> keep;
  EXPECT_EQ(fill(registry, "alice", false, keep), 5);
}

}  // namespace
}  // namespace discarbiter::transport
