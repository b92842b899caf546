#include "transport/dispatcher.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "transport/dispatch_fixture.hpp"

// The dispatcher on plain frames, as the session drives it: request bytes go
// through a FrameDecoder into on_decoded, and every frame
// it sends is decoded and checked. Only the frame interface is used, so these
// tests hold however the dispatcher builds its replies.
namespace discarbiter::transport {
namespace {

using nlohmann::json;

/// One connection's dispatcher and the frames it has sent, decoded.
class Peer {
 public:
  /// `frames`: the limits of the connection's decoder, as the session's.
  Peer(ServiceContext& context, std::string user, bool administrator = false,
       proto::FrameLimits frames = {})
      : decoder_(frames) {
    decoder_.set_flat_objects(true);  // as the session reads requests
    core::PeerIdentity peer{4242, std::move(user), 1000, {}, "/usr/bin/burner"};
    peer.administrator = administrator;
    dispatcher_.emplace(context, std::move(peer), frames, [this](proto::OutgoingFrame frame) {
      proto::FrameDecoder decoder;
      decoder.feed(frame.head);
      decoder.feed(frame.payload);
      auto out = decoder.next();
      ASSERT_EQ(out.status, proto::FrameDecoder::Status::frame) << out.error.message;
      EXPECT_EQ(decoder.buffered(), 0U) << "one frame per send";
      payload_addresses_.push_back(frame.payload.data());
      frames_.push_back(std::move(out.frame));
    });
  }

  /// Feeds bytes as the session does: each output of the decoder to
  /// on_decoded. The verdict of the last one.
  Dispatcher::Verdict feed(std::span<const std::uint8_t> bytes) {
    decoder_.feed(bytes);
    for (;;) {
      auto out = decoder_.next();
      if (out.status == proto::FrameDecoder::Status::need_more)
        return Dispatcher::Verdict::keep_open;
      if (dispatcher_->on_decoded(std::move(out)) == Dispatcher::Verdict::close)
        return Dispatcher::Verdict::close;
    }
  }
  Dispatcher::Verdict send(std::uint64_t id, proto::RequestBody body) {
    return feed(proto::encode_request(proto::Request{id, std::move(body)}));
  }
  Dispatcher::Verdict send_json(const json& j) { return feed(proto::encode_frame(j)); }

  /// As the session reads a payload that has begun (`fed` of its bytes came
  /// with its head): straight into the decoder's payload_space(). Returns
  /// where the payload's buffer begins.
  const std::uint8_t* feed_payload_directly(std::size_t fed, std::span<const std::uint8_t> rest) {
    const auto space = decoder_.payload_space();
    EXPECT_EQ(space.size(), rest.size()) << "the payload's own buffer, exactly its rest";
    if (space.size() != rest.size())
      return nullptr;
    std::ranges::copy(rest, space.begin());
    const std::uint8_t* begin = space.data() - fed;
    decoder_.payload_filled(rest.size());
    feed({});
    return begin;
  }

  /// The oldest frame not yet taken; fails the test when there is none.
  proto::Frame take() {
    EXPECT_FALSE(frames_.empty()) << "the dispatcher sent nothing";
    if (frames_.empty())
      return {};
    auto f = std::move(frames_.front());
    frames_.pop_front();
    return f;
  }
  /// Where the payload part of each frame sent was, in the order sent.
  std::deque<const std::uint8_t*>& payload_addresses() { return payload_addresses_; }
  std::size_t pending() const { return frames_.size(); }

  /// Says hello as `client_name`; expects the reply.
  void greet(const std::string& client_name) {
    ASSERT_EQ(send(1, proto::HelloRequest{proto::kProtocolVersion, client_name, 4242}),
              Dispatcher::Verdict::keep_open);
    const auto reply = take().json;
    ASSERT_EQ(reply.value("ok", false), true) << reply.dump();
    frames_.clear();
  }

  Dispatcher& dispatcher() { return *dispatcher_; }
  void hang_up() { dispatcher_.reset(); }

 private:
  proto::FrameDecoder decoder_;
  std::deque<proto::Frame> frames_;
  std::deque<const std::uint8_t*> payload_addresses_;
  std::optional<Dispatcher> dispatcher_;
};

/// The error object of an error reply, after checking the reply's shape.
json error_of(const json& reply, std::optional<std::uint64_t> id) {
  EXPECT_EQ(reply.at("ok"), false) << reply.dump();
  EXPECT_EQ(reply.at("id"), id ? json(*id) : json(nullptr)) << reply.dump();
  return reply.at("error");
}

void expect_error(const json& reply, std::optional<std::uint64_t> id, errc code,
                  const std::string& message) {
  const json e = error_of(reply, id);
  EXPECT_EQ(e.at("code"), hresult(code)) << reply.dump();
  EXPECT_EQ(e.at("name"), error_name(code)) << reply.dump();
  EXPECT_EQ(e.at("message"), message) << reply.dump();
}

class DispatcherTest : public ::testing::Test {
 protected:
  /// Lets the simulated drives answer.
  void run() { fixture.scheduler.run(); }
  drives::SimulatedDrive& drive(unsigned i) { return fixture.channels.at(i)->drive(); }
  std::size_t commands(unsigned i) { return drive(i).command_log().size(); }
  /// `p` acquires `drive` and is answered; the reply.
  json acquire(Peer& p, std::uint64_t id, const std::string& drive) {
    p.send(id, proto::AcquireRequest{drive, false, 0});
    run();
    return p.take().json;
  }
  static proto::ExecuteRequest inquiry(const std::string& drive) {
    return {drive, {0x12, 0, 0, 0, 96, 0}, proto::Direction::in, 96, {}, {}};
  }
  std::optional<proto::OwnerInfo> owner(const std::string& id) {
    auto r = fixture.arbiter.exclusive_access_owner(id);
    EXPECT_TRUE(r.ok());
    return r ? *r : std::nullopt;
  }

  testing::DispatchFixture fixture;
};

// ---- hello ------------------------------------------------------------------

TEST_F(DispatcherTest, AnyRequestBeforeHelloIsRefusedAndClosesTheConnection) {
  const auto before = commands(0);
  Peer p(fixture.context, "alice");
  EXPECT_EQ(p.send(7, proto::AcquireRequest{"sim0", false, 0}), Dispatcher::Verdict::close);
  run();
  expect_error(p.take().json, 7, errc::hello_required,
               "'acquire' before hello; the first request must be hello");
  EXPECT_EQ(p.pending(), 0U);
  EXPECT_FALSE(p.dispatcher().greeted());
  EXPECT_FALSE(owner("sim0")) << "nothing was acquired";
  EXPECT_EQ(commands(0), before) << "nothing reached the drive";
}

TEST_F(DispatcherTest, AMalformedRequestBeforeHelloClosesTheConnection) {
  Peer p(fixture.context, "alice");
  EXPECT_EQ(p.send_json({{"id", 3}, {"op", "hello"}, {"client_name", 5}, {"protocol", 1}}),
            Dispatcher::Verdict::close);
  expect_error(p.take().json, 3, errc::invalid_arg, "field 'client_name' must be a string");
  EXPECT_FALSE(p.dispatcher().greeted());
}

TEST_F(DispatcherTest, HelloWithAnotherProtocolIsRefused) {
  Peer p(fixture.context, "alice");
  EXPECT_EQ(p.send(1, proto::HelloRequest{proto::kProtocolVersion + 1, "Burner", 1}),
            Dispatcher::Verdict::close);
  expect_error(p.take().json, 1, errc::unsupported_protocol,
               fmt::format("client speaks protocol {}, service speaks {}",
                           proto::kProtocolVersion + 1, proto::kProtocolVersion));
  EXPECT_FALSE(p.dispatcher().greeted());
}

TEST_F(DispatcherTest, HelloIsAnsweredWithTheServiceVersionAndCapabilities) {
  Peer p(fixture.context, "alice");
  EXPECT_EQ(p.send(1, proto::HelloRequest{proto::kProtocolVersion, "Burner", 4242}),
            Dispatcher::Verdict::keep_open);
  const json reply = p.take().json;
  EXPECT_EQ(reply.at("ok"), true);
  EXPECT_EQ(reply.at("id"), 1);
  const auto hello = reply.get<proto::HelloReply>();
  EXPECT_EQ(hello.server_version, "test");
  EXPECT_EQ(hello.protocol, proto::kProtocolVersion);
  EXPECT_EQ(hello.capabilities,
            (std::vector<std::string>{"acquire-wait", "execute", "status", "subscribe", "break"}));
  EXPECT_EQ(hello.max_transfer, proto::kDefaultMaxPayloadBytes);
  EXPECT_TRUE(p.dispatcher().greeted());
  EXPECT_EQ(p.dispatcher().client_name(), "Burner");
}

TEST_F(DispatcherTest, HelloTellsTheConnectionsPayloadLimitAsMaxTransfer) {
  Peer p(fixture.context, "alice", false, proto::FrameLimits{4096, 12345});
  p.send(1, proto::HelloRequest{proto::kProtocolVersion, "Burner", 4242});
  EXPECT_EQ(p.take().json.get<proto::HelloReply>().max_transfer, 12345U);
}

TEST_F(DispatcherTest, DrivesAndStatusShowEachDrivesMaxTransfer) {
  // The simulated drives' own limit is 1 MiB, the service's by default too;
  // a service limit of 32 KiB is below it. (The arbiter's tests cover a
  // drive's limit below the service's.)
  core::ArbiterConfig config;
  config.max_transfer_bytes = 32 * 1024;
  testing::DispatchFixture small(config, 1);
  for (auto* context : {&fixture.context, &small.context}) {
    Peer p(*context, "alice");
    p.greet("Burner");
    p.send(2, proto::ListDrivesRequest{});
    p.send(3, proto::StatusRequest{});
    const auto drives = p.take().json.get<proto::DrivesReply>().drives;
    const auto status = p.take().json.at("status").at("drives");
    const std::uint32_t expected = context == &fixture.context ? 1024 * 1024 : 32 * 1024;
    ASSERT_FALSE(drives.empty());
    for (const auto& d : drives)
      EXPECT_EQ(d.max_transfer, expected) << d.id;
    for (const auto& d : status)
      EXPECT_EQ(d.at("max_transfer"), expected) << d.dump();
  }
}

// ---- bad requests: an error reply naming the problem, nothing else ----------

TEST_F(DispatcherTest, BadRequestsAreAnsweredWithTheProblemAndChangeNothing) {
  Peer p(fixture.context, "alice");
  p.greet("Burner");
  const auto before = commands(0);
  struct Case {
    json request;
    std::optional<std::uint64_t> id;
    errc code;
    std::string message;
  };
  const std::vector<Case> cases{
      {{{"id", 2}, {"op", "frobnicate"}},
       2,
       errc::unknown_request,
       "unknown request op 'frobnicate'"},
      {{{"op", "acquire"}, {"drive", "sim0"}},
       std::nullopt,
       errc::invalid_arg,
       "field 'id' is required"},
      {{{"id", "two"}, {"op", "acquire"}, {"drive", "sim0"}},
       std::nullopt,
       errc::invalid_arg,
       "field 'id' must be an unsigned integer"},
      {{{"id", 3}, {"op", 7}}, 3, errc::invalid_arg, "field 'op' is required and must be a string"},
      {{{"id", 4}, {"op", "acquire"}, {"drive", 0}},
       4,
       errc::invalid_arg,
       "field 'drive' must be a string"},
      {{{"id", 5}, {"op", "acquire"}}, 5, errc::invalid_arg, "field 'drive' is required"},
      {{{"id", 6}, {"op", "acquire"}, {"drive", "sim0"}, {"wait_ms", -1}},
       6,
       errc::invalid_arg,
       "field 'wait_ms' must be an unsigned integer"},
      {{{"id", 7}, {"op", "acquire"}, {"drive", "sim0"}, {"force", "yes"}},
       7,
       errc::invalid_arg,
       "field 'force' must be true or false"},
      {{{"id", 8}, {"op", "execute"}, {"drive", "sim0"}, {"cdb", "zz"}},
       8,
       errc::invalid_arg,
       "field 'cdb' must be hexadecimal bytes"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.request.dump());
    EXPECT_EQ(p.send_json(c.request), Dispatcher::Verdict::keep_open) << "a greeted peer stays";
    run();
    expect_error(p.take().json, c.id, c.code, c.message);
    EXPECT_EQ(p.pending(), 0U) << "one reply and nothing else";
  }
  EXPECT_FALSE(owner("sim0"));
  EXPECT_EQ(commands(0), before) << "nothing reached the drive";
  EXPECT_FALSE(p.dispatcher().holds_anything());

  // And the connection still works.
  EXPECT_EQ(acquire(p, 9, "sim0").at("lock_count"), 1);
}

TEST_F(DispatcherTest, AFrameWhoseJsonDoesNotParseIsAnsweredWithoutAnId) {
  Peer p(fixture.context, "alice");
  p.greet("Burner");
  const std::string text = "{\"id\": 1, \"op\": ";
  proto::Bytes bytes{static_cast<std::uint8_t>(text.size()), 0, 0, 0, 0, 0, 0, 0};
  bytes.insert(bytes.end(), text.begin(), text.end());
  EXPECT_EQ(p.feed(bytes), Dispatcher::Verdict::close);
  expect_error(p.take().json, std::nullopt, errc::bad_frame, "frame's JSON part does not parse");
  EXPECT_EQ(p.pending(), 0U);
  EXPECT_FALSE(owner("sim0"));
}

// ---- an oversize frame: refused with its id, the session goes on ------------

TEST_F(DispatcherTest, AnOversizeExecuteIsRefusedWithItsIdAndTheLockSurvives) {
  Peer p(fixture.context, "alice", false, proto::FrameLimits{4096, 8192});
  p.greet("Burner");
  ASSERT_EQ(acquire(p, 2, "sim0").at("lock_count"), 1);
  const auto before = commands(0);
  const proto::ExecuteRequest write{"sim0",
                                    {0x2A, 0, 0, 0, 0, 0, 0, 0, 8, 0},  // WRITE(10), 8 blocks
                                    proto::Direction::out,
                                    0,
                                    {},
                                    proto::Bytes(16384, 0x5A)};
  EXPECT_EQ(p.send(3, write), Dispatcher::Verdict::keep_open);
  run();
  expect_error(p.take().json, 3, errc::frame_too_large,
               "payload of 16384 bytes is over the limit of 8192 (limits.max_transfer_bytes)");
  EXPECT_EQ(p.pending(), 0U) << "one reply and nothing else";
  EXPECT_EQ(commands(0), before) << "nothing reached the drive";
  const auto held = owner("sim0");
  ASSERT_TRUE(held) << "the lock survives";
  EXPECT_EQ(held->session, p.dispatcher().session());
  EXPECT_EQ(held->lock_count, 1U);

  // The session goes on: its next request works.
  p.send(4, inquiry("sim0"));
  run();
  const json reply = p.take().json;
  EXPECT_EQ(reply.at("ok"), true) << reply.dump();
  EXPECT_EQ(reply.at("id"), 4);
}

TEST_F(DispatcherTest, AnOversizeFrameBeforeHelloClosesTheConnection) {
  Peer p(fixture.context, "alice", false, proto::FrameLimits{4096, 8});
  const proto::Bytes frame = proto::encode_frame(
      {{"id", 1}, {"op", "hello"}, {"protocol", 1}, {"client_name", "Burner"}, {"pid", 1}},
      proto::Bytes(9, 0));
  EXPECT_EQ(p.feed(frame), Dispatcher::Verdict::close);
  expect_error(p.take().json, 1, errc::frame_too_large,
               "payload of 9 bytes is over the limit of 8 (limits.max_transfer_bytes)");
  EXPECT_FALSE(p.dispatcher().greeted());
}

// ---- round trips against the simulated drives -------------------------------

TEST_F(DispatcherTest, AcquireOwnerReleaseRoundTrip) {
  Peer p(fixture.context, "alice");
  p.greet("Burner");

  json reply = acquire(p, 2, "sim0");
  EXPECT_EQ(reply.at("ok"), true) << reply.dump();
  EXPECT_EQ(reply.at("id"), 2);
  EXPECT_EQ(reply.at("drive"), "sim0");
  EXPECT_EQ(reply.at("lock_count"), 1);
  EXPECT_EQ(drive(0).exclusive_owner(), "Burner") << "the OS-level lock is taken";

  EXPECT_EQ(acquire(p, 3, "sim0").at("lock_count"), 2);

  p.send(4, proto::OwnerRequest{"sim0"});
  reply = p.take().json;
  EXPECT_EQ(reply.at("drive"), "sim0");
  const auto info = reply.at("owner").get<proto::OwnerInfo>();
  EXPECT_EQ(info.client_name, "Burner");
  EXPECT_EQ(info.user, "alice");
  EXPECT_EQ(info.pid, 4242U);
  EXPECT_EQ(info.lock_count, 2U);
  EXPECT_EQ(info.session, p.dispatcher().session());

  // Another client is told who holds it.
  Peer other(fixture.context, "bob");
  other.greet("Other");
  reply = acquire(other, 2, "sim0");
  EXPECT_EQ(error_of(reply, 2).at("code"), hresult(errc::recorder_locked)) << reply.dump();

  p.send(5, proto::ReleaseRequest{"sim0"});
  run();
  EXPECT_EQ(p.take().json.at("lock_count"), 1);
  p.send(6, proto::ReleaseRequest{"sim0"});
  run();
  reply = p.take().json;
  EXPECT_EQ(reply.at("id"), 6);
  EXPECT_EQ(reply.at("lock_count"), 0);
  EXPECT_EQ(drive(0).exclusive_owner(), std::nullopt) << "the OS-level lock is gone";

  p.send(7, proto::OwnerRequest{"sim0"});
  EXPECT_TRUE(p.take().json.at("owner").is_null());
  EXPECT_EQ(p.pending(), 0U);

  p.send(8, proto::OwnerRequest{"nope"});
  expect_error(p.take().json, 8, errc::dev_not_exist, "no drive named 'nope'");
}

TEST_F(DispatcherTest, ExecuteDataIsMovedNotCopiedBetweenTheStreamAndTheDrive) {
  Peer p(fixture.context, "alice");
  p.greet("Burner");
  ASSERT_EQ(acquire(p, 2, "sim0").at("lock_count"), 1);
  p.payload_addresses().clear();

  // WRITE(10) of 16 blocks at LBA 0: the head and the payload's first bytes
  // come in one read, the rest is read straight into the payload's buffer.
  proto::Bytes data(16 * 2048);
  for (std::size_t i = 0; i < data.size(); ++i)
    data[i] = static_cast<std::uint8_t>(i * 7);
  const proto::Bytes request = proto::encode_request(proto::Request{
      3, proto::ExecuteRequest{
             "sim0", {0x2A, 0, 0, 0, 0, 0, 0, 0, 16, 0}, proto::Direction::out, 0, {}, data}});
  const std::size_t first_read = request.size() - data.size() + 100;
  p.feed(std::span(request).first(first_read));
  const std::uint8_t* read_into =
      p.feed_payload_directly(100, std::span(request).subspan(first_read));
  ASSERT_NE(read_into, nullptr);
  run();
  EXPECT_EQ(p.take().json.at("code"), hresult(errc::ok));
  EXPECT_EQ(fixture.channels[0]->last_data_out, read_into)
      << "the drive got the very buffer the payload was read into";

  // READ(10) of the same blocks: the reply's payload part is the drive's buffer.
  p.send(4, proto::ExecuteRequest{"sim0",
                                  {0x28, 0, 0, 0, 0, 0, 0, 0, 16, 0},
                                  proto::Direction::in,
                                  static_cast<std::uint32_t>(data.size()),
                                  {},
                                  {}});
  run();
  const auto frame = p.take();
  EXPECT_EQ(frame.json.at("code"), hresult(errc::ok)) << frame.json.dump();
  EXPECT_EQ(frame.payload, data);
  ASSERT_EQ(p.payload_addresses().size(), 2U);
  EXPECT_EQ(p.payload_addresses().back(), fixture.channels[0]->last_data_in)
      << "the reply frame's payload is the drive's data-in buffer, moved";
}

TEST_F(DispatcherTest, ExecuteCarriesDataInAsThePayloadAndSenseWithItsCode) {
  Peer p(fixture.context, "alice");
  p.greet("Burner");
  ASSERT_EQ(acquire(p, 2, "sim0").at("lock_count"), 1);

  p.send(3, inquiry("sim0"));
  run();
  auto frame = p.take();
  EXPECT_EQ(frame.json.at("ok"), true) << frame.json.dump();
  EXPECT_EQ(frame.json.at("id"), 3);
  EXPECT_EQ(frame.json.at("code"), hresult(errc::ok));
  const auto answer = frame.json.get<proto::ExecuteReply>();
  EXPECT_EQ(answer.scsi_status, 0);
  EXPECT_EQ(answer.data_len, frame.payload.size());
  ASSERT_GE(frame.payload.size(), 36U);
  EXPECT_EQ(frame.payload[0] & 0x1F, 0x05) << "an MMC device";

  // READ(10) past the end of the default disc (2,295,104 blocks): CHECK CONDITION, 5/21/00.
  proto::ExecuteRequest beyond{
      "sim0", {0x28, 0, 0x00, 0x23, 0x05, 0x40, 0, 0, 1, 0}, proto::Direction::in, 2048, {}, {}};
  p.send(4, beyond);
  run();
  frame = p.take();
  EXPECT_EQ(frame.json.at("ok"), true) << frame.json.dump();
  EXPECT_EQ(frame.json.at("code"), hresult(errc::command_has_sense_data));
  EXPECT_EQ(frame.json.at("name"), error_name(errc::command_has_sense_data));
  const auto refused = frame.json.get<proto::ExecuteReply>();
  EXPECT_EQ(refused.scsi_status, 2);
  ASSERT_GE(refused.sense.size(), 14U);
  EXPECT_EQ(refused.sense[2] & 0x0F, 0x05);
  EXPECT_EQ(refused.sense[12], 0x21);
  EXPECT_TRUE(frame.payload.empty());

  // Without the lock: refused by the arbiter, the drive never sees it.
  Peer other(fixture.context, "bob");
  other.greet("Other");
  const auto before = commands(0);
  other.send(2, inquiry("sim0"));
  run();
  EXPECT_EQ(error_of(other.take().json, 2).at("code"), hresult(errc::recorder_locked));
  EXPECT_EQ(commands(0), before);
}

TEST_F(DispatcherTest, ASubscriberHearsAnotherClientsAcquireAndRelease) {
  Peer watcher(fixture.context, "carol");
  watcher.greet("Watcher");
  watcher.send(2, proto::SubscribeRequest{});
  json reply = watcher.take().json;
  EXPECT_EQ(reply.at("ok"), true);
  EXPECT_EQ(reply.at("id"), 2);
  EXPECT_TRUE(watcher.dispatcher().holds_anything()) << "a subscription keeps a session";

  Peer p(fixture.context, "alice");
  p.greet("Burner");
  EXPECT_EQ(acquire(p, 2, "sim1").at("lock_count"), 1);
  p.send(3, proto::ReleaseRequest{"sim1"});
  run();
  EXPECT_EQ(p.take().json.at("lock_count"), 0);

  const json acquired = watcher.take().json;
  EXPECT_EQ(acquired.at("event"), "acquired") << acquired.dump();
  EXPECT_EQ(acquired.at("drive"), "sim1");
  EXPECT_EQ(acquired.at("owner").at("client_name"), "Burner");
  const json released = watcher.take().json;
  EXPECT_EQ(released.at("event"), "released") << released.dump();
  EXPECT_EQ(released.at("drive"), "sim1");
  EXPECT_EQ(released.at("client_name"), "Burner");
  EXPECT_EQ(watcher.pending(), 0U);
}

TEST_F(DispatcherTest, ADispatcherGoneBeforeItsAnswersSendsNothingAndFreesItsLock) {
  Peer p(fixture.context, "alice");
  p.greet("Burner");
  ASSERT_EQ(acquire(p, 2, "sim0").at("lock_count"), 1);
  // A command in flight when the connection goes: its answer has no one to go to.
  p.send(3, inquiry("sim0"));
  const core::SessionId session = p.dispatcher().session();
  p.hang_up();
  run();
  EXPECT_EQ(p.pending(), 0U) << "nothing was sent after the dispatcher was gone";
  EXPECT_FALSE(owner("sim0"));
  EXPECT_FALSE(fixture.arbiter.holds_anything(session));
  EXPECT_EQ(drive(0).exclusive_owner(), std::nullopt);
}

// ---- status: written off the io thread, bounded -----------------------------
// The fixture's status "thread" holds each write job until the test runs it,
// as the service's status thread may not have run yet.

TEST_F(DispatcherTest, AGrantIsNotHeldBehindAStatusBeingWritten) {
  fixture.hold_status_writes = true;
  Peer holder(fixture.context, "alice"), waiter(fixture.context, "bob"),
      watcher(fixture.context, "carol");
  holder.greet("Holder");
  waiter.greet("Waiter");
  watcher.greet("Watcher");
  ASSERT_EQ(acquire(holder, 2, "sim0").value("ok", false), true);
  waiter.send(3, proto::AcquireRequest{"sim0", false, 60000});
  run();
  ASSERT_EQ(waiter.pending(), 0U) << "the waiter waits";

  watcher.send(4, proto::StatusRequest{});
  ASSERT_EQ(fixture.held_status_writes.size(), 1U) << "the document is written off the io thread";
  holder.send(5, proto::ReleaseRequest{"sim0"});
  run();
  // N.B. the status document is still being written (its job is held): the
  // hand-off did not wait for it.
  EXPECT_EQ(holder.take().json.get<proto::ReleaseReply>().lock_count, 0U);
  const json grant = waiter.take().json;
  EXPECT_EQ(grant.value("ok", false), true) << grant.dump();
  EXPECT_EQ(grant.get<proto::AcquireReply>().lock_count, 1U);
  EXPECT_EQ(watcher.pending(), 0U);

  std::exchange(fixture.held_status_writes, {}).front()();
  // One snapshot, as the arbiter was when the request came: alice holding,
  // bob queued.
  const json reply = watcher.take().json;
  EXPECT_EQ(reply.at("id"), 4);
  const auto status = reply.at("status").get<proto::StatusDocument>();
  ASSERT_FALSE(status.drives.empty());
  EXPECT_EQ(status.drives[0].lock_state, "owned");
  ASSERT_TRUE(status.drives[0].owner);
  EXPECT_EQ(status.drives[0].owner->client_name, "Holder");
  ASSERT_EQ(status.drives[0].waiters.size(), 1U);
  EXPECT_EQ(status.drives[0].waiters[0].client_name, "Waiter");
  EXPECT_EQ(status.clients.size(), 3U);
}

TEST_F(DispatcherTest, PipelinedStatusRequestsAreBoundedAndWrittenOneDocumentAtATime) {
  fixture.hold_status_writes = true;
  Peer flood(fixture.context, "mallory"), other(fixture.context, "alice");
  flood.greet("Flood");
  other.greet("Other");
  constexpr std::uint64_t kSent = 3 * kMaxStatusRequestsPerSession;
  for (std::uint64_t id = 10; id < 10 + kSent; ++id)
    EXPECT_EQ(flood.send(id, proto::StatusRequest{}), Dispatcher::Verdict::keep_open);
  other.send(2, proto::StatusRequest{});

  // One document being written for the whole service; the session's
  // requests past the bound are refused at once, the others wait.
  EXPECT_EQ(fixture.held_status_writes.size(), 1U);
  EXPECT_EQ(fixture.status_writer.waiting(), kMaxStatusRequestsPerSession - 1 + 1);
  ASSERT_EQ(flood.pending(), kSent - kMaxStatusRequestsPerSession);
  for (std::uint64_t id = 10 + kMaxStatusRequestsPerSession; id < 10 + kSent; ++id) {
    expect_error(flood.take().json, id, errc::limit_reached,
                 fmt::format("{} status requests of this session are already waiting; read their "
                             "replies first",
                             kMaxStatusRequestsPerSession));
  }

  // The first write answers the first request; the next snapshot, taken
  // when it ends, serves every request that waited meanwhile in one write.
  std::exchange(fixture.held_status_writes, {}).front()();
  EXPECT_EQ(flood.take().json.at("id"), 10);
  EXPECT_EQ(fixture.held_status_writes.size(), 1U);
  EXPECT_EQ(fixture.status_writer.waiting(), 0U);
  std::exchange(fixture.held_status_writes, {}).front()();
  EXPECT_TRUE(fixture.held_status_writes.empty());
  EXPECT_FALSE(fixture.status_writer.writing());
  for (std::uint64_t id = 11; id < 10 + kMaxStatusRequestsPerSession; ++id)
    EXPECT_EQ(flood.take().json.at("id"), id);
  EXPECT_EQ(flood.pending(), 0U);
  EXPECT_EQ(other.take().json.at("id"), 2);

  // Answered, the session may ask again.
  flood.send(40, proto::StatusRequest{});
  std::exchange(fixture.held_status_writes, {}).front()();
  EXPECT_EQ(flood.take().json.at("id"), 40);
}

TEST_F(DispatcherTest, AStatusForASessionThatHasGoneIsWrittenForNobody) {
  fixture.hold_status_writes = true;
  Peer gone(fixture.context, "alice"), stays(fixture.context, "bob");
  gone.greet("Gone");
  stays.greet("Stays");
  gone.send(2, proto::StatusRequest{});
  gone.hang_up();
  stays.send(3, proto::StatusRequest{});
  std::exchange(fixture.held_status_writes, {}).front()();
  std::exchange(fixture.held_status_writes, {}).front()();
  EXPECT_EQ(stays.take().json.at("status").at("clients").size(), 1U)
      << "the snapshot after it went";
  EXPECT_FALSE(fixture.status_writer.writing());
}

}  // namespace
}  // namespace discarbiter::transport
