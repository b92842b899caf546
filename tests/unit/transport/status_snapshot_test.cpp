#include <gtest/gtest.h>

#include <string>

#include "discarbiter/proto/wire.hpp"
#include "transport/dispatch_fixture.hpp"

// The status snapshot the io thread takes (core::StatusSnapshot): a client's
// entry is shared from one snapshot to the next while its session does not
// change, and made again when it does; the text written from it is the
// document's, byte for byte.
namespace discarbiter::transport {
namespace {

core::SessionId greeted(testing::DispatchFixture& f, const std::string& name,
                        const std::string& user = "alice") {
  const auto id = f.arbiter.open_session(core::PeerIdentity{4242, user, 1000, {}, "/x"}, {});
  EXPECT_TRUE(f.arbiter.hello(id, name, 4242).ok());
  return id;
}

TEST(StatusSnapshot, AnEntryIsSharedUntilItsSessionChanges) {
  testing::DispatchFixture f;
  const auto quiet = f.arbiter.open_session(core::PeerIdentity{7, "bob", 1001, {}, "/y"}, {});
  const auto holder = greeted(f, "Holder");

  const auto first = f.arbiter.status_snapshot();
  ASSERT_EQ(first.clients.size(), 2U);
  const auto second = f.arbiter.status_snapshot();
  EXPECT_EQ(second.clients[0], first.clients[0]) << "nothing changed: the same entries";
  EXPECT_EQ(second.clients[1], first.clients[1]);

  // The holder's locks change its entry, and only its entry.
  int answers = 0;
  f.arbiter.acquire_exclusive_access(holder, "sim0", {}, [&](Result<std::uint32_t> r) {
    EXPECT_TRUE(r.ok());
    ++answers;
  });
  f.scheduler.run();
  ASSERT_EQ(answers, 1);
  const auto held = f.arbiter.status_snapshot();
  EXPECT_EQ(held.clients[0], first.clients[0]);
  ASSERT_NE(held.clients[1], first.clients[1]);
  EXPECT_EQ(held.clients[1]->locks.at("sim0"), 1U);
  EXPECT_TRUE(first.clients[1]->locks.empty()) << "an entry already taken never changes";

  // Hello changes the quiet session's entry (its name).
  ASSERT_TRUE(f.arbiter.hello(quiet, "Late", 7).ok());
  const auto greeted_late = f.arbiter.status_snapshot();
  ASSERT_NE(greeted_late.clients[0], held.clients[0]);
  EXPECT_EQ(greeted_late.clients[0]->client_name, "Late");
  EXPECT_EQ(greeted_late.clients[1], held.clients[1]);

  f.arbiter.release_exclusive_access(holder, "sim0", [&](Result<std::uint32_t>) { ++answers; });
  f.scheduler.run();
  ASSERT_EQ(answers, 2);
  EXPECT_TRUE(f.arbiter.status_snapshot().clients[1]->locks.empty());
}

TEST(StatusSnapshot, ItsTextIsTheDocumentsByteForByte) {
  testing::DispatchFixture f;
  const auto holder = greeted(f, "Holder");
  greeted(f, "Other", "a \"quoted\" user \xC3\xA9");
  f.arbiter.acquire_exclusive_access(holder, "sim1", {}, [](Result<std::uint32_t>) {});
  f.scheduler.run();
  const proto::ServiceInfo service{"1.2.3", 1, 99, "linux", "/run/x.sock", 12.5, 3};

  const auto snapshot = f.arbiter.status_snapshot();
  const proto::StatusDocument document{f.arbiter.status(), service};
  ASSERT_EQ(document.clients.size(), 2U);
  EXPECT_EQ(proto::status_json(snapshot.drives, snapshot.clients, service),
            proto::status_json(document));
}

}  // namespace
}  // namespace discarbiter::transport
