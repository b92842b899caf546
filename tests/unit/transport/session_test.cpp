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
using testing::ReadinessTestStream;
using testing::StreamState;
using testing::TestStream;

/// WRITE(10) of 32 blocks (64 KiB) at LBA 0.
proto::ExecuteRequest write10_64k() {
  return {"sim0", {0x2A, 0, 0, 0, 0, 0, 0, 0, 32, 0}, proto::Direction::out, 0,
          {},     proto::Bytes(64 * 1024, 0x5A)};
}

/// Pipelined `owner` requests, ids first to last - 1, as one write.
proto::Bytes owner_requests(std::uint64_t first, std::uint64_t last, const std::string& drive) {
  proto::Bytes requests;
  for (std::uint64_t id = first; id < last; ++id) {
    const auto frame = proto::encode_request(proto::Request{id, proto::OwnerRequest{drive}});
    requests.insert(requests.end(), frame.begin(), frame.end());
  }
  return requests;
}

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
template <typename Stream>
class BasicConnection {
 public:
  explicit BasicConnection(FailCount fails, SessionLimits limits = quiet_limits(),
                           std::string user = "alice") {
    // N.B. the arbiter numbers sessions in order: this probe learns the
    // number the session's will follow.
    const auto probe = fixture.arbiter.open_session({}, {});
    fixture.arbiter.close_session(probe);
    session_id = probe + 1;

    stream = std::make_shared<StreamState>(io.get_executor(), fails);
    auto session = std::make_shared<Session<Stream>>(
        Stream(stream), fixture.context,
        core::PeerIdentity{4242, std::move(user), 1000, {}, "/usr/bin/burner"}, limits,
        [this](SessionHandle*) {
          ++closed;
          strong.reset();  // as the registry does: the session's last owner outside itself
        });
    weak = session;
    strong = session;
    live = session.get();
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
  Session<Stream>* live = nullptr;  // while `weak` has not expired
  int closed = 0;
  proto::FrameDecoder decoder;
};

using Connection = BasicConnection<TestStream>;

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
template <typename Stream>
std::size_t converse(BasicConnection<Stream>& c) {
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

/// Both ways a session reads (stream_reader.hpp): into a buffer of its own
/// while the read is pending (the Windows pipe), and after a wait for
/// readability into the io thread's buffer (the POSIX socket).
template <typename Stream>
class EveryStreamTest : public ::testing::Test {};
using Streams = ::testing::Types<TestStream, ReadinessTestStream>;
TYPED_TEST_SUITE(EveryStreamTest, Streams);

TYPED_TEST(EveryStreamTest, EveryFailurePointEndsTheSessionOnceAndFreesItsLock) {
  LogCapture log;
  constexpr std::size_t kLimit = 10000;  // far more operations than the script takes
  std::size_t n = 0;
  std::size_t failures = 0;
  for (; n < kLimit; ++n) {
    SCOPED_TRACE(::testing::Message() << "failing operation " << n);
    BasicConnection<TypeParam> c{FailCount(n)};
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

// The handshake deadline is a timer: once hello has succeeded it must not
// stay armed, or the service wakes for nothing when it expires (one wake-up
// per session, 2 s after its hello). What stays is the idle check, when
// limits.idle is set: by design, once per idle period.
TYPED_TEST(EveryStreamTest, AfterHelloNoTimerIsLeftArmedButTheIdleCheck) {
  for (const auto idle : {std::chrono::seconds(0), std::chrono::seconds(600)}) {
    SCOPED_TRACE(::testing::Message() << "limits.idle " << idle.count() << " s");
    auto limits = BasicConnection<TypeParam>::quiet_limits();
    limits.idle = idle;
    BasicConnection<TypeParam> c(FailCount(), limits);
    c.settle();
    const std::size_t idle_check = idle.count() ? 1 : 0;
    EXPECT_EQ(c.live->timers_armed(), 1 + idle_check) << "the handshake deadline, until hello";
    ASSERT_EQ(c.exchange(1, proto::HelloRequest{proto::kProtocolVersion, "Burner", 1}).size(), 1U);
    EXPECT_EQ(c.live->timers_armed(), idle_check) << "hello met the handshake deadline";
    // A later request changes nothing.
    ASSERT_EQ(c.exchange(2, proto::OwnerRequest{"sim0"}).size(), 1U);
    EXPECT_EQ(c.live->timers_armed(), idle_check);
    c.stream->peer_close();
    c.settle();
    EXPECT_EQ(c.closed, 1);
    EXPECT_TRUE(c.weak.expired());
  }
}

// An idle session holds no read buffer on a readiness stream (the POSIX
// socket: it waits for readability, then reads into the io thread's one
// buffer), and a small one on a completion stream (the Windows pipe, whose
// pending read needs one), larger only while a large frame arrives.
TEST(SessionTest, AnIdleSessionHoldsNoReadBufferOnASocketAndASmallOneOnAPipe) {
  const proto::ExecuteRequest write = write10_64k();
  {
    BasicConnection<ReadinessTestStream> c{FailCount()};
    c.stream->max_read = 1024;
    ASSERT_EQ(c.exchange(1, proto::HelloRequest{proto::kProtocolVersion, "Burner", 1}).size(), 1U);
    EXPECT_TRUE(c.stream->waiting_read) << "a wait for readability is pending";
    EXPECT_EQ(c.stream->pending_read_buffer, 0U);
    ASSERT_EQ(c.exchange(2, proto::AcquireRequest{"sim0", false, 0}).size(), 1U);
    ASSERT_EQ(c.exchange(3, write).size(), 1U);
    EXPECT_EQ(c.stream->pending_read_buffer, 0U);
    c.stream->peer_close();
    c.settle();
  }
  {
    Connection c{FailCount()};
    c.stream->max_read = 1024;
    ASSERT_EQ(c.exchange(1, proto::HelloRequest{proto::kProtocolVersion, "Burner", 1}).size(), 1U);
    EXPECT_TRUE(c.stream->waiting_read);
    EXPECT_EQ(c.stream->pending_read_buffer, kPendingReadBuffer);
    ASSERT_EQ(c.exchange(2, proto::AcquireRequest{"sim0", false, 0}).size(), 1U);
    // Half a large frame: the read pending meanwhile goes straight into the
    // payload's own buffer (FrameDecoder::payload_space), the rest of it.
    auto bytes = proto::encode_request(proto::Request{3, write});
    const auto half = static_cast<std::ptrdiff_t>(bytes.size() / 2);
    c.stream->peer_write({bytes.begin(), bytes.begin() + half});
    c.settle();
    EXPECT_EQ(c.stream->pending_read_buffer, bytes.size() - static_cast<std::size_t>(half));
    c.stream->peer_write({bytes.begin() + half, bytes.end()});
    c.settle();
    EXPECT_EQ(c.take_frames().size(), 1U);
    EXPECT_EQ(c.stream->pending_read_buffer, kPendingReadBuffer) << "back to the small one";
    c.stream->peer_close();
    c.settle();
  }
}

TEST(SessionTest, AWritesPayloadPassesThroughTheIoThreadsBufferOnlyInItsFirstSmallRead) {
  // The whole frame is there at once, as a client's one sendmsg puts it: the
  // read between frames takes kPendingReadBuffer bytes (the head and the
  // payload's start, which the decoder copies), the rest of the payload is
  // read straight into its own buffer.
  BasicConnection<ReadinessTestStream> c{FailCount()};
  c.stream->max_read = 1024 * 1024;
  ASSERT_EQ(c.exchange(1, proto::HelloRequest{proto::kProtocolVersion, "Burner", 1}).size(), 1U);
  ASSERT_EQ(c.exchange(2, proto::AcquireRequest{"sim0", false, 0}).size(), 1U);
  const proto::ExecuteRequest write = write10_64k();
  const auto bytes = proto::encode_request(proto::Request{3, write});
  c.stream->read_sizes.clear();
  c.stream->peer_write(bytes);
  c.settle();
  const auto frames = c.take_frames();
  ASSERT_EQ(frames.size(), 1U);
  EXPECT_EQ(frames[0].json.at("code"), 0) << frames[0].json.dump();
  ASSERT_EQ(c.stream->read_sizes.size(), 2U);
  EXPECT_EQ(c.stream->read_sizes[0], kPendingReadBuffer) << "a small first read";
  EXPECT_EQ(c.stream->read_sizes[1], bytes.size() - kPendingReadBuffer)
      << "the rest, straight into the payload's buffer";
  c.stream->peer_close();
  c.settle();
}

TYPED_TEST(EveryStreamTest, APeerThatStopsReadingIsClosedWhenTheOutboxIsFull) {
  LogCapture log;
  auto limits = BasicConnection<TypeParam>::quiet_limits();
  limits.max_outbox_bytes = 1024;
  BasicConnection<TypeParam> c(FailCount(), limits, "slow-reader");
  c.stream->stall_writes = true;  // the first write never completes

  ASSERT_TRUE(c.exchange(1, proto::HelloRequest{proto::kProtocolVersion, "Slow", 1}).empty());
  ASSERT_TRUE(c.exchange(2, proto::AcquireRequest{"sim1", false, 0}).empty());
  EXPECT_EQ(c.closed, 0);
  // Pipelined requests, their replies queued behind the stalled write.
  c.stream->peer_write(owner_requests(3, 200, "sim1"));
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

// On a socket a reply is written as it is made, while nothing is queued
// before it: it leaves before the session reads again, and the writer is
// woken only for what the socket did not take (in order, after it).
TEST(SessionTest, OnASocketAReplyIsWrittenAtOnceAndTheWriterSendsOnlyWhatTheSocketDidNotTake) {
  BasicConnection<ReadinessTestStream> c{FailCount()};
  c.stream->max_write = 1 << 20;
  ASSERT_EQ(c.exchange(1, proto::HelloRequest{proto::kProtocolVersion, "Burner", 4242}).size(), 1U);
  const auto acquired = c.exchange(2, proto::AcquireRequest{"sim0", false, 0});
  ASSERT_EQ(acquired.size(), 1U);
  EXPECT_EQ(acquired[0].json.value("id", std::uint64_t{0}), 2U);
  EXPECT_EQ(c.stream->immediate_writes, 2U) << "both replies written by send, none by the writer";

  // A socket that takes 16 bytes at a time: the first 16 at once, the rest
  // from the writer, the frames whole and in order.
  c.stream->max_write = 16;
  c.stream->peer_write(owner_requests(3, 6, "sim0"));
  c.settle();
  const auto owners = c.take_frames();
  ASSERT_EQ(owners.size(), 3U);
  for (std::uint64_t i = 0; i < owners.size(); ++i)
    EXPECT_EQ(owners[i].json.value("id", std::uint64_t{0}), i + 3) << owners[i].json.dump();
  EXPECT_EQ(c.stream->immediate_writes, 3U) << "only the first owner reply found the outbox empty";
  c.stream->peer_close();
  c.settle();
}

// A frame larger than kMaxWritePerTurn (a status document with many
// sessions) goes a piece per turn of the io thread, even to a socket that
// would take it whole: what else is ready (another session's reply, a
// waiter's grant) runs between its pieces instead of after the whole copy.
TEST(SessionTest, ALargeFrameIsWrittenAPiecePerTurnAndWhatElseIsReadyRunsBetween) {
  BasicConnection<ReadinessTestStream> c{FailCount()};
  c.stream->max_write = 4 << 20;  // a socket that would take any frame whole
  ASSERT_EQ(c.exchange(1, proto::HelloRequest{proto::kProtocolVersion, "Burner", 4242}).size(), 1U);
  // Enough sessions for a document of more than two pieces.
  for (int i = 0; i < 1500; ++i) {
    const auto id = c.fixture.arbiter.open_session(
        core::PeerIdentity{static_cast<std::uint32_t>(10000 + i), "idle-user", 1000, {}, "/x"}, {});
    ASSERT_TRUE(c.fixture.arbiter.hello(id, "idle-client-with-a-name", 10000).ok());
  }
  c.fixture.hold_status_writes = true;
  c.stream->peer_write(proto::encode_request(proto::Request{2, proto::StatusRequest{}}));
  c.settle();
  ASSERT_EQ(c.fixture.held_status_writes.size(), 1U);
  const std::size_t before = c.stream->write_requests.size();

  // The document comes back to the io thread; a grant is made ready just
  // after it (the probe stands for it: what the io thread would run next).
  std::exchange(c.fixture.held_status_writes, {}).front()();
  std::optional<std::size_t> written_when_probed;
  boost::asio::post(c.io, [&] { written_when_probed = c.stream->outbound.size(); });
  c.settle();

  const std::size_t frame_bytes = c.stream->outbound.size();
  c.decoder = proto::FrameDecoder(proto::FrameLimits{.max_json_bytes = 1 << 20});  // the client's
  const auto frames = c.take_frames();
  ASSERT_EQ(frames.size(), 1U);
  ASSERT_TRUE(frames[0].json.at("ok").get<bool>()) << frames[0].json.dump().substr(0, 300);
  EXPECT_EQ(frames[0].json.at("status").at("clients").size(), 1501U);
  ASSERT_GT(frame_bytes, 2 * kMaxWritePerTurn) << "the document is too small for this test";
  const std::vector<std::size_t> pieces(
      c.stream->write_requests.begin() + static_cast<std::ptrdiff_t>(before),
      c.stream->write_requests.end());
  ASSERT_EQ(pieces.size(), (frame_bytes + kMaxWritePerTurn - 1) / kMaxWritePerTurn);
  for (const std::size_t piece : pieces)
    EXPECT_LE(piece, kMaxWritePerTurn);
  ASSERT_TRUE(written_when_probed);
  EXPECT_LT(*written_when_probed, frame_bytes)
      << "the probe ran only after the whole frame was written";
  EXPECT_GT(*written_when_probed, 0U) << "the first piece is written as the frame is queued";
  c.stream->peer_close();
  c.settle();
}

// A subscriber that falls behind keeps its events in a few buffers, not an
// allocation each (the io thread freed ~80,000 frames per never-reading
// subscriber as it was cut): the count stays within its bytes over
// kCoalescedBytes, and every event still comes whole and in order.
TEST(SessionTest, ASubscriberBehindKeepsItsEventsInAFewBuffersAndGetsThemAllInOrder) {
  BasicConnection<ReadinessTestStream> c{FailCount()};
  ASSERT_EQ(c.exchange(1, proto::HelloRequest{proto::kProtocolVersion, "Watcher", 4242}).size(),
            1U);
  ASSERT_EQ(c.exchange(2, proto::SubscribeRequest{}).size(), 1U);
  c.stream->max_write = 16;  // a socket that takes 16 bytes at a time

  // Another client locks and frees sim0 again and again while the
  // subscriber's session does not run (no turn of the io thread).
  const auto other =
      c.fixture.arbiter.open_session(core::PeerIdentity{7, "bob", 1001, {}, "/y"}, {});
  ASSERT_TRUE(c.fixture.arbiter.hello(other, "Other", 7).ok());
  constexpr int kRounds = 1500;
  int answers = 0;
  for (int i = 0; i < kRounds; ++i) {
    c.fixture.arbiter.acquire_exclusive_access(other, "sim0", {},
                                               [&](Result<std::uint32_t>) { ++answers; });
    c.fixture.scheduler.run();
    c.fixture.arbiter.release_exclusive_access(other, "sim0",
                                               [&](Result<std::uint32_t>) { ++answers; });
    c.fixture.scheduler.run();
  }
  ASSERT_EQ(answers, 2 * kRounds);
  ASSERT_GT(c.live->outbox_bytes(), 4 * kCoalescedBytes) << "too few events for this test";
  EXPECT_LE(c.live->outbox_frames(), 2 + c.live->outbox_bytes() / (kCoalescedBytes / 2))
      << c.live->outbox_bytes() << " bytes queued";

  c.settle();
  const auto events = c.take_frames();
  ASSERT_EQ(events.size(), 2U * kRounds);
  for (std::size_t i = 0; i < events.size(); ++i) {
    ASSERT_EQ(events[i].json.value("event", ""), i % 2 == 0 ? "acquired" : "released")
        << i << ": " << events[i].json.dump();
  }
  EXPECT_EQ(c.live->outbox_frames(), 0U);
  c.stream->peer_close();
  c.settle();
}

TEST(SessionTest, AnOversizeWriteIsAnsweredWithItsIdAndTheSessionKeepsItsLock) {
  LogCapture log;
  auto limits = Connection::quiet_limits();
  limits.frames.max_payload_bytes = 8 * 1024;
  Connection c(FailCount(), limits);
  c.stream->max_read = 1000;  // the payload ends mid-read, the next frame follows in it
  ASSERT_EQ(c.exchange(1, proto::HelloRequest{proto::kProtocolVersion, "Burner", 1}).size(), 1U);
  ASSERT_EQ(c.exchange(2, proto::AcquireRequest{"sim0", false, 0}).size(), 1U);

  // 64 KiB over an 8 KiB limit, and a request right behind it.
  const proto::ExecuteRequest write = write10_64k();
  auto bytes = proto::encode_request(proto::Request{3, write});
  const auto next = proto::encode_request(proto::Request{4, proto::OwnerRequest{"sim0"}});
  bytes.insert(bytes.end(), next.begin(), next.end());
  c.stream->peer_write(bytes);
  c.settle();
  const auto replies = c.take_frames();
  ASSERT_EQ(replies.size(), 2U);
  const auto& refused = replies[0];
  EXPECT_EQ(refused.json.at("id"), 3) << refused.json.dump();
  EXPECT_EQ(refused.json.at("error").at("name"), "DA_E_FRAME_TOO_LARGE");
  EXPECT_EQ(refused.json.at("error").at("message"),
            "payload of 65536 bytes is over the limit of 8192 (limits.max_transfer_bytes)");
  EXPECT_EQ(c.closed, 0) << "the session goes on";
  EXPECT_EQ(log.matching("refused: payload of 65536 bytes").size(), 1U);

  const auto& owner = replies[1];
  EXPECT_EQ(owner.json.at("id"), 4) << owner.json.dump();
  EXPECT_EQ(owner.json.at("owner").at("session"), c.session_id) << owner.json.dump();
  EXPECT_EQ(owner.json.at("owner").at("lock_count"), 1);

  // N.B. the peer hangs up before the test ends: Windows' io_context waits
  // at its destruction for the stream's read still pending.
  c.stream->peer_close();
  c.settle();
  EXPECT_EQ(c.closed, 1);
  c.expect_arbiter_holds_nothing();
}

}  // namespace
}  // namespace discarbiter::transport
