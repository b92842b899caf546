#include "transport/session.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/sinks/ringbuffer_sink.h>

#include "transport/dispatch_fixture.hpp"
#include "transport/test_stream.hpp"

// A Session over an in-memory stream (test_stream.hpp) that fails on its Nth
// operation, N raised from 0 until a whole conversation runs without a
// failure (Beast's fail_count pattern). However the session ends, it ends
// once, the arbiter keeps nothing of it, and nothing of it runs afterwards
// (ASan and TSan run these tests too: `scripts/dev sanitize`).
namespace discarbiter::transport {
namespace {

using nlohmann::json;
using testing::FailCount;
using testing::StreamState;
using testing::TestStream;

/// Records what the service logs, for the duration of a test.
class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1024)) {
    sink_->set_pattern("%v");
    auto logger = std::make_shared<spdlog::logger>("capture", sink_);
    logger->set_level(spdlog::level::debug);
    previous_ = spdlog::default_logger();
    spdlog::set_default_logger(logger);
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  /// The records that contain `text`.
  std::vector<std::string> matching(std::string_view text) const {
    std::vector<std::string> out;
    for (auto& line : sink_->last_formatted()) {
      if (line.find(text) != std::string::npos)
        out.push_back(line);
    }
    return out;
  }

 private:
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
  std::shared_ptr<spdlog::logger> previous_;
};

/// One session on a fresh arbiter and io_context, the test as its peer.
class Connection {
 public:
  explicit Connection(FailCount fails, SessionLimits limits = quiet_limits(),
                      std::string user = "alice") {
    // N.B. the arbiter numbers sessions in order: this probe learns the
    // number the session's will follow.
    const auto probe = fixture.arbiter.open_session({}, {});
    fixture.arbiter.close_session(probe);
    session_id = probe + 1;

    stream = std::make_shared<StreamState>(io.get_executor(), fails);
    auto session = std::make_shared<Session<TestStream>>(
        TestStream(stream), fixture.context,
        core::PeerIdentity{4242, std::move(user), 1000, {}, "/usr/bin/burner"}, limits,
        [this](SessionHandle*) {
          ++closed;
          strong.reset();  // as the registry does: the session's last owner outside itself
        });
    weak = session;
    strong = session;
    session->start();
  }

  /// Never a timer: the handshake deadline is far, the idle close is off.
  static SessionLimits quiet_limits() {
    SessionLimits limits;
    limits.handshake = std::chrono::hours(1);
    limits.idle = std::chrono::seconds(0);
    return limits;
  }

  /// Runs the session and the drives until neither has anything ready.
  void settle() {
    for (;;) {
      fixture.scheduler.run();
      io.restart();
      if (io.poll() == 0)
        break;
    }
  }

  /// Sends a request and settles; the frames the session wrote meanwhile.
  std::vector<proto::Frame> exchange(std::uint64_t id, proto::RequestBody body) {
    stream->peer_write(proto::encode_request(proto::Request{id, std::move(body)}));
    settle();
    return take_frames();
  }

  std::vector<proto::Frame> take_frames() {
    decoder.feed(stream->peer_read());
    std::vector<proto::Frame> frames;
    for (;;) {
      auto out = decoder.next();
      if (out.status != proto::FrameDecoder::Status::frame) {
        EXPECT_NE(out.status, proto::FrameDecoder::Status::error) << out.error.message;
        return frames;
      }
      frames.push_back(std::move(out.frame));
    }
  }

  /// The arbiter holds nothing of the session: no lock (in the arbiter, in
  /// the OS, on the tray), no subscription.
  void expect_arbiter_holds_nothing() {
    for (const char* drive : {"sim0", "sim1"}) {
      const auto owner = fixture.arbiter.exclusive_access_owner(drive);
      ASSERT_TRUE(owner.ok());
      EXPECT_FALSE(*owner) << drive << " is still held by " << (*owner)->client_name;
    }
    EXPECT_FALSE(fixture.arbiter.holds_anything(session_id));
    EXPECT_EQ(fixture.channels[0]->drive().exclusive_owner(), std::nullopt);
    EXPECT_FALSE(fixture.channels[0]->drive().tray_locked());
  }

  testing::DispatchFixture fixture;
  boost::asio::io_context io;
  std::shared_ptr<StreamState> stream;
  core::SessionId session_id = 0;
  std::shared_ptr<SessionHandle> strong;
  std::weak_ptr<SessionHandle> weak;
  int closed = 0;
  proto::FrameDecoder decoder;
};

/// The scripted conversation's requests, each answered before the next.
std::vector<proto::RequestBody> script() {
  return {
      proto::HelloRequest{proto::kProtocolVersion, "Burner", 4242},
      proto::SubscribeRequest{},
      proto::AcquireRequest{"sim0", false, 0},
      proto::ExecuteRequest{"sim0", {0x12, 0, 0, 0, 96, 0}, proto::Direction::in, 96, {}, {}},
      proto::OwnerRequest{"sim0"},
      proto::AcquireRequest{"sim0", false, 0},
      proto::ReleaseRequest{"sim0"},
  };
}

/// Runs the conversation, then the peer hangs up with the lock still held
/// once. Returns how many replies came; stops early when the session ends.
std::size_t converse(Connection& c) {
  const auto requests = script();
  std::size_t replies = 0;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const std::uint64_t id = i + 1;
    for (auto& frame : c.exchange(id, requests[i])) {
      if (frame.json.contains("event"))
        continue;  // the subscription's: acquired, …
      EXPECT_EQ(frame.json.value("ok", false), true) << frame.json.dump();
      EXPECT_EQ(frame.json.value("id", std::uint64_t{0}), id) << frame.json.dump();
      ++replies;
    }
    if (c.closed)
      return replies;
    EXPECT_EQ(replies, id) << "the session neither answered request " << id << " nor ended";
  }
  const auto owner = c.fixture.arbiter.exclusive_access_owner("sim0");
  EXPECT_TRUE(owner.ok() && *owner && (*owner)->lock_count == 1) << "the peer leaves holding it";
  c.stream->peer_close();
  c.settle();
  return replies;
}

TEST(SessionTest, EveryFailurePointEndsTheSessionOnceAndFreesItsLock) {
  LogCapture log;
  constexpr std::size_t kLimit = 10000;  // far more operations than the script takes
  std::size_t n = 0;
  std::size_t failures = 0;
  for (; n < kLimit; ++n) {
    SCOPED_TRACE(::testing::Message() << "failing operation " << n);
    Connection c{FailCount(n)};
    const std::size_t replies = converse(c);
    EXPECT_EQ(c.closed, 1) << "on_closed once";
    EXPECT_TRUE(c.weak.expired()) << "the session, its coroutines and timers are gone";
    EXPECT_EQ(c.stream->closes, 1U) << "the stream closed once";
    c.expect_arbiter_holds_nothing();
    // Nothing of the session is left to run.
    c.io.restart();
    EXPECT_EQ(c.io.poll(), 0U);
    if (!c.stream->fail_count.reached()) {
      // A whole conversation without reaching operation n: every operation
      // before it has failed once, each in its own run.
      EXPECT_EQ(replies, script().size());
      EXPECT_EQ(c.stream->fail_count.operations(), n) << "the clean run took n operations";
      EXPECT_FALSE(log.matching("closed: client disconnected").empty());
      break;
    }
    ++failures;
  }
  ASSERT_LT(n, kLimit) << "the conversation never completed";
  EXPECT_EQ(failures, n);
  EXPECT_GT(failures, 20U) << "frames split over reads and writes: many failure points";
  const auto read_failures = log.matching("closed: read: ").size();
  const auto write_failures = log.matching("closed: write: ").size();
  EXPECT_GT(read_failures, 0U);
  EXPECT_GT(write_failures, 0U);
  std::cout << "[          ] " << failures << " failure points visited (" << read_failures
            << " in a read, " << write_failures << " in a write), then one clean run\n";
}

TEST(SessionTest, APeerThatStopsReadingIsClosedWhenTheOutboxIsFull) {
  LogCapture log;
  auto limits = Connection::quiet_limits();
  limits.max_outbox_bytes = 1024;
  Connection c(FailCount(), limits, "slow-reader");
  c.stream->stall_writes = true;  // the first write never completes

  ASSERT_TRUE(c.exchange(1, proto::HelloRequest{proto::kProtocolVersion, "Slow", 1}).empty());
  ASSERT_TRUE(c.exchange(2, proto::AcquireRequest{"sim1", false, 0}).empty());
  EXPECT_EQ(c.closed, 0);
  // Pipelined requests, their replies queued behind the stalled write.
  proto::Bytes requests;
  for (std::uint64_t id = 3; id < 200; ++id) {
    const auto frame = proto::encode_request(proto::Request{id, proto::OwnerRequest{"sim1"}});
    requests.insert(requests.end(), frame.begin(), frame.end());
  }
  c.stream->peer_write(requests);
  c.settle();

  EXPECT_EQ(c.closed, 1);
  EXPECT_TRUE(c.weak.expired()) << "the stalled write was aborted and the session is gone";
  EXPECT_TRUE(c.take_frames().empty()) << "nothing was written";
  EXPECT_FALSE(c.stream->inbound.empty()) << "it stopped reading";
  c.expect_arbiter_holds_nothing();

  const auto warned = log.matching("closing: client is not reading: ");
  ASSERT_EQ(warned.size(), 1U);
  const auto at = warned[0].find("reading: ") + 9;
  EXPECT_GT(std::stoul(warned[0].substr(at)), limits.max_outbox_bytes) << warned[0];
  EXPECT_EQ(log.matching("closed: client is not reading: ").size(), 1U);
}

TEST(SessionTest, AnOversizeWriteIsAnsweredWithItsIdAndTheSessionKeepsItsLock) {
  LogCapture log;
  auto limits = Connection::quiet_limits();
  limits.frames.max_payload_bytes = 64 * 1024;
  Connection c(FailCount(), limits);
  ASSERT_EQ(c.exchange(1, proto::HelloRequest{proto::kProtocolVersion, "Burner", 1}).size(), 1U);
  ASSERT_EQ(c.exchange(2, proto::AcquireRequest{"sim0", false, 0}).size(), 1U);

  // 1 MiB over a 64 KiB limit: the session reads it 16 KiB at a time.
  const proto::ExecuteRequest write{"sim0",
                                    {0x2A, 0, 0, 0, 0, 0, 0, 0x02, 0, 0},  // WRITE(10), 512 blocks
                                    proto::Direction::out,
                                    0,
                                    {},
                                    proto::Bytes(1024 * 1024, 0x5A)};
  const auto refused = c.exchange(3, write);
  ASSERT_EQ(refused.size(), 1U);
  EXPECT_EQ(refused[0].json.at("id"), 3) << refused[0].json.dump();
  EXPECT_EQ(refused[0].json.at("error").at("name"), "DA_E_FRAME_TOO_LARGE");
  EXPECT_EQ(refused[0].json.at("error").at("message"),
            "payload of 1048576 bytes is over the limit of 65536 (limits.max_transfer_bytes)");
  EXPECT_EQ(c.closed, 0) << "the session goes on";
  EXPECT_EQ(log.matching("refused: payload of 1048576 bytes").size(), 1U);

  const auto owner = c.exchange(4, proto::OwnerRequest{"sim0"});
  ASSERT_EQ(owner.size(), 1U);
  EXPECT_EQ(owner[0].json.at("owner").at("session"), c.session_id) << owner[0].json.dump();
  EXPECT_EQ(owner[0].json.at("owner").at("lock_count"), 1);
}

}  // namespace
}  // namespace discarbiter::transport
