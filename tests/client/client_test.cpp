#include "discarbiter/client.hpp"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <future>
#include <numeric>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "fixtures.hpp"

namespace discarbiter {
namespace {

using namespace std::chrono_literals;
using test::FakeService;
using test::ServiceProcess;
using Clock = std::chrono::steady_clock;

constexpr std::array<std::uint8_t, 6> kInquiry{0x12, 0, 0, 0, 36, 0};

ConnectOptions options(const std::string& endpoint, std::string name = "ClientTest",
                       std::chrono::milliseconds timeout = 5000ms) {
  return ConnectOptions{endpoint, std::move(name), timeout};
}

/// Runs `f`, which must throw ServiceError; returns it.
template <typename F>
ServiceError thrown(F&& f) {
  try {
    f();
  } catch (const ServiceError& e) {
    return e;
  }
  ADD_FAILURE() << "no ServiceError";
  return ServiceError(Error{errc::ok, "none"});
}

/// A Client connected to a FakeService that answered its hello.
struct FakeSession {
  explicit FakeSession(std::uint32_t max_transfer = 0, std::chrono::milliseconds timeout = 5000ms) {
    auto server = std::async(std::launch::async, [&] { fake.accept_hello(max_transfer); });
    client.emplace(options(fake.endpoint, "Fake", timeout));
    server.get();
  }
  FakeService fake;
  std::optional<Client> client;
};

// ---- against a scripted fake service ------------------------------------------

TEST(ClientThreads, AReplyGoesToTheCallerWithItsIdWhileAnotherWaits) {
  FakeSession s;
  std::array<std::uint8_t, 4> buffer{};
  std::atomic<bool> command_done{false};
  auto command = std::async(std::launch::async, [&] {
    auto r = s.client->send_command_get_data_from_device("sim0", kInquiry, buffer);
    command_done = true;
    return r;
  });
  const auto execute = s.fake.read_frame();
  ASSERT_EQ(execute.json.at("op"), "execute");
  EXPECT_EQ(execute.json.at("data_in_len"), 4);

  // A second thread's request goes out and is answered while the command waits.
  auto status = std::async(std::launch::async, [&] { return s.client->status(); });
  const auto status_request = s.fake.read_frame();
  ASSERT_EQ(status_request.json.at("op"), "status");
  proto::StatusReply status_reply;
  status_reply.status.service.version = "fake-version";
  s.fake.send(proto::encode_reply(FakeService::id_of(status_request), status_reply));
  EXPECT_EQ(status.get().service.version, "fake-version");
  EXPECT_FALSE(command_done);

  proto::ExecuteReply reply;
  reply.data_len = 3;
  s.fake.send(proto::encode_reply(FakeService::id_of(execute), reply, proto::Bytes{7, 8, 9}));
  const auto result = command.get();
  EXPECT_EQ(result.bytes_transferred, 3u);
  EXPECT_EQ(buffer, (std::array<std::uint8_t, 4>{7, 8, 9, 0}));
}

TEST(ClientErrors, AReplyBodyOfTheWrongTypeIsServiceErrorNotAJsonException) {
  FakeSession s;
  auto drives =
      std::async(std::launch::async, [&] { return thrown([&] { (void)s.client->drives(); }); });
  const auto request = s.fake.read_frame();
  s.fake.send(proto::encode_frame(
      {{"id", FakeService::id_of(request)}, {"ok", true}, {"drives", "not an array"}}));
  const auto e = drives.get();
  EXPECT_EQ(e.code_value(), errc::bad_frame) << e.what();
  EXPECT_NE(e.detail().find("list_drives reply"), std::string::npos) << e.detail();

  // The stream is still in step: the session goes on.
  auto owner =
      std::async(std::launch::async, [&] { return s.client->exclusive_access_owner("sim0"); });
  const auto owner_request = s.fake.read_frame();
  s.fake.send(proto::encode_reply(FakeService::id_of(owner_request),
                                  proto::OwnerReply{"sim0", std::nullopt}));
  EXPECT_FALSE(owner.get());
}

TEST(ClientErrors, AStatusOfAThousandSessionsIsReadNotRefused) {
  // Over the service's 64 KiB request limit: a reply that size must not
  // close the session (and end the caller's locks).
  FakeSession s;
  auto status = std::async(std::launch::async, [&] { return s.client->status(); });
  const auto request = s.fake.read_frame();
  proto::StatusReply reply;
  for (std::uint32_t i = 0; i < 1000; ++i) {
    reply.status.clients.push_back(proto::ClientStatus{i,
                                                       fmt::format("Burner {}", i),
                                                       4000 + i,
                                                       "user",
                                                       1000,
                                                       std::nullopt,
                                                       "2026-11-24T10:00:00.000Z",
                                                       {{"sim0", 1}}});
  }
  const auto frame = proto::encode_reply(FakeService::id_of(request), reply);
  ASSERT_GT(frame.size(), 100U * 1024U);
  s.fake.send(frame);
  EXPECT_EQ(status.get().clients.size(), 1000U);
}

TEST(ClientErrors, AReplyWhoseJsonIsOverSixteenMiBIsRefusedBeforeItIsRead) {
  // A broken or hostile server announces 16 MiB + 1 of JSON: the client
  // refuses on the header alone (nothing is allocated or read for it). No
  // id is known yet, so the session closes and every waiter hears why.
  FakeSession s;
  auto status =
      std::async(std::launch::async, [&] { return thrown([&] { (void)s.client->status(); }); });
  (void)s.fake.read_frame();
  constexpr std::uint32_t kAnnounced = 16 * 1024 * 1024 + 1;
  proto::Bytes header(proto::kFrameHeaderSize, 0);
  for (std::size_t i = 0; i < 4; ++i)
    header[i] = static_cast<std::uint8_t>(kAnnounced >> (8 * i));  // json_len, little-endian
  s.fake.send(header);
  const auto e = status.get();
  EXPECT_EQ(e.code_value(), errc::connection_lost) << e.what();
  EXPECT_NE(std::string(e.what()).find("JSON part of 16777217 bytes exceeds the limit of 16777216"),
            std::string::npos)
      << e.what();
  EXPECT_TRUE(s.fake.client_closed());
}

TEST(ClientErrors, APayloadLongerThanTheBufferIsBadFrameAndClosesTheSession) {
  FakeSession s;
  std::array<std::uint8_t, 4> buffer{};
  auto command = std::async(std::launch::async, [&] {
    return thrown(
        [&] { (void)s.client->send_command_get_data_from_device("sim0", kInquiry, buffer); });
  });
  const auto execute = s.fake.read_frame();
  proto::ExecuteReply reply;
  reply.data_len = 8;
  s.fake.send(
      proto::encode_reply(FakeService::id_of(execute), reply, proto::Bytes(8, std::uint8_t{1})));
  const auto e = command.get();
  EXPECT_EQ(e.code_value(), errc::bad_frame) << e.what();
  EXPECT_NE(e.detail().find("8 bytes of data for a buffer of 4"), std::string::npos) << e.detail();
  EXPECT_EQ(buffer, (std::array<std::uint8_t, 4>{}));  // nothing written past or into it
  EXPECT_TRUE(s.fake.client_closed());
  EXPECT_EQ(thrown([&] { (void)s.client->status(); }).code_value(), errc::connection_lost);
}

TEST(ClientErrors, ATimeoutClosesTheSessionAndEveryWaiterGetsConnectionLost) {
  FakeSession s(0, 300ms);
  auto first =
      std::async(std::launch::async, [&] { return thrown([&] { (void)s.client->status(); }); });
  auto second =
      std::async(std::launch::async, [&] { return thrown([&] { (void)s.client->drives(); }); });
  (void)s.fake.read_frame();
  (void)s.fake.read_frame();  // both sent; neither is answered
  EXPECT_EQ(first.get().code_value(), errc::connection_lost);
  EXPECT_EQ(second.get().code_value(), errc::connection_lost);
  EXPECT_TRUE(s.fake.client_closed());
}

TEST(ClientMaxTransfer, AnOversizeTransferIsRefusedBeforeSendingAndTheSessionGoesOn) {
  FakeSession s(4096);
  EXPECT_EQ(s.client->max_transfer(), 4096u);
  const proto::Bytes big(4097, std::uint8_t{0x5A});
  const std::array<std::uint8_t, 10> write10{0x2A, 0, 0, 0, 0, 0, 0, 0, 2, 0};
  auto e = thrown([&] { (void)s.client->send_command_send_data_to_device("sim0", write10, big); });
  EXPECT_EQ(e.code_value(), errc::invalid_arg);
  EXPECT_NE(e.detail().find("4097"), std::string::npos) << e.detail();
  EXPECT_NE(e.detail().find("4096"), std::string::npos) << e.detail();
  std::vector<std::uint8_t> in(4097);
  e = thrown([&] { (void)s.client->send_command_get_data_from_device("sim0", kInquiry, in); });
  EXPECT_EQ(e.code_value(), errc::invalid_arg);

  // Nothing went out: the next frame the service reads is this write, whole
  // (the head and the caller's data gathered in one frame).
  const std::span<const std::uint8_t> fits(big.data(), 4096);
  auto write = std::async(std::launch::async, [&] {
    return s.client->send_command_send_data_to_device("sim0", write10, fits);
  });
  const auto request = s.fake.read_frame();
  ASSERT_EQ(request.json.at("op"), "execute");
  EXPECT_EQ(request.json.at("direction"), "out");
  EXPECT_EQ(request.payload, proto::Bytes(fits.begin(), fits.end()));
  s.fake.send(proto::encode_reply(FakeService::id_of(request), proto::ExecuteReply{}));
  EXPECT_EQ(write.get().bytes_transferred, 4096u);
}

TEST(ClientEvents, EventsAreKeptOnlyAfterSubscribeAndTheOldestBeyondTheBoundAreDropped) {
  FakeSession s;
  auto subscribe = std::async(std::launch::async, [&] { s.client->subscribe(); });
  const auto request = s.fake.read_frame();
  ASSERT_EQ(request.json.at("op"), "subscribe");
  s.fake.send(proto::encode_event(proto::DriveArrived{"before-subscribe"}));
  s.fake.send(proto::encode_reply(FakeService::id_of(request), proto::SubscribeReply{}));
  subscribe.get();

  constexpr std::size_t kExtra = 10;
  auto drives = std::async(std::launch::async, [&] { return s.client->drives(); });
  const auto list = s.fake.read_frame();
  for (std::size_t i = 0; i < Client::kMaxQueuedEvents + kExtra; ++i)
    s.fake.send(proto::encode_event(proto::DriveArrived{fmt::format("d{}", i)}));
  s.fake.send(proto::encode_reply(FakeService::id_of(list), proto::DrivesReply{}));
  EXPECT_TRUE(drives.get().empty());

  EXPECT_EQ(s.client->events_dropped(), kExtra);
  const auto first = s.client->next_event(0ms);
  ASSERT_TRUE(first);
  EXPECT_EQ(std::get<proto::DriveArrived>(*first).drive, fmt::format("d{}", kExtra));
  std::size_t left = 1;
  while (s.client->next_event(0ms))
    ++left;
  EXPECT_EQ(left, Client::kMaxQueuedEvents);
}

TEST(ClientGuards, AFailedReleaseInTheDestructorClosesTheSession) {
  FakeSession s;
  {
    auto acquire = std::async(std::launch::async, [&] { return s.client->acquire("sim0"); });
    const auto request = s.fake.read_frame();
    s.fake.send(proto::encode_reply(FakeService::id_of(request), proto::AcquireReply{"sim0", 1}));
    auto guard = acquire.get();
    auto release = std::async(std::launch::async, [&] {
      const auto r = s.fake.read_frame();
      EXPECT_EQ(r.json.at("op"), "release");
      s.fake.send(proto::encode_error_reply(FakeService::id_of(r),
                                            Error{errc::fail, "the release failed"}));
    });
    { auto dying = std::move(guard); }
    release.get();
  }
  EXPECT_TRUE(s.fake.client_closed());  // so the service frees the lock
  EXPECT_EQ(thrown([&] { (void)s.client->status(); }).code_value(), errc::connection_lost);
}

TEST(ClientErrors, ACallTimesOutEvenWhileThePeerNeverStopsSending) {
  FakeSession s(0, 300ms);
  auto status =
      std::async(std::launch::async, [&] { return thrown([&] { (void)s.client->status(); }); });
  (void)s.fake.read_frame();  // never answered; a flood of events instead
  std::atomic<bool> stop{false};
  auto flood = std::async(std::launch::async, [&] {
    // N.B. many events per send: the socket is never empty when the client looks.
    proto::Bytes events;
    for (int i = 0; i < 4096; ++i) {
      const auto event = proto::encode_event(proto::DriveArrived{"flood"});
      events.insert(events.end(), event.begin(), event.end());
    }
    try {
      while (!stop)
        s.fake.send(events);
    } catch (const std::exception&) {  // the client closed: the flood ends
    }
  });
  const bool ended = status.wait_for(2s) == std::future_status::ready;
  stop = true;
  flood.get();
  ASSERT_TRUE(ended) << "the call outlived its 300 ms deadline by 2 s under a flood";
  EXPECT_EQ(status.get().code_value(), errc::connection_lost);
}

TEST(ClientThreads, DestroyingTheClientUnderAWaitingCallEndsThatCallWithConnectionLost) {
  // N.B. forbidden by the docs (da_disconnect during a call); it must cost
  // that call only, not a use of the freed session.
  FakeSession s;
  auto status =
      std::async(std::launch::async, [&] { return thrown([&] { (void)s.client->status(); }); });
  (void)s.fake.read_frame();  // the call waits for its reply
  s.client.reset();
  EXPECT_EQ(status.get().code_value(), errc::connection_lost);
  EXPECT_TRUE(s.fake.client_closed());
}

// ---- against discarbiterd ------------------------------------------------------

class ClientLive : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // N.B. sim1 answers INQUIRY after 1.5 s: a long command to talk across.
    service_ =
        new ServiceProcess(2, {{"simulated_faults", {{"sim1", {{"delay_ms", {{"0x12", 1500}}}}}}}});
  }
  static void TearDownTestSuite() {
    delete service_;
    service_ = nullptr;
  }
  static ConnectOptions live(std::string name) {
    return options(service_->endpoint, std::move(name));
  }
  static ServiceProcess* service_;
};
ServiceProcess* ClientLive::service_ = nullptr;

TEST_F(ClientLive, StatusFromAnotherThreadReturnsDuringALongCommand) {
  Client client(live("Burner"));
  auto lock = client.acquire("sim1");
  std::array<std::uint8_t, 36> inquiry{};
  std::promise<void> sending;
  Clock::time_point command_started, command_ended;
  auto command = std::async(std::launch::async, [&] {
    command_started = Clock::now();
    sending.set_value();
    auto r = client.send_command_get_data_from_device("sim1", kInquiry, inquiry);
    command_ended = Clock::now();
    return r;
  });
  sending.get_future().wait();
  const auto doc = client.status();
  const auto status_ended = Clock::now();
  const auto result = command.get();
  EXPECT_EQ(result.bytes_transferred, 36u);
  EXPECT_FALSE(doc.drives.empty());
  EXPECT_LT(status_ended, command_ended);
  EXPECT_GE(command_ended - command_started, 1500ms);
  EXPECT_LT(status_ended - command_started, 1000ms);
}

TEST_F(ClientLive, AGuardReleasesThroughTheSessionAfterItsClientMoved) {
  Client observer(live("Observer"));
  std::optional<Client> moved;
  {
    Client client(live("Mover"));
    auto guard = client.acquire("sim0");
    ASSERT_EQ(observer.exclusive_access_owner("sim0")->client_name, "Mover");
    moved.emplace(std::move(client));
    { auto dying = std::move(guard); }
    EXPECT_FALSE(observer.exclusive_access_owner("sim0"));
  }
  EXPECT_FALSE(moved->exclusive_access_owner("sim0"));  // the moved-to session lives on
}

TEST_F(ClientLive, AGuardDoesNothingOnceItsClientIsDestroyed) {
  std::optional<ExclusiveAccess> guard;
  {
    Client client(live("Gone"));
    guard.emplace(client.acquire("sim0"));
  }
  EXPECT_EQ(thrown([&] { (void)guard->release(); }).code_value(), errc::not_locked);
  guard.reset();
  // The session's end freed the drive: another client gets it.
  Client next(live("Next"));
  EXPECT_EQ(next.acquire_exclusive_access("sim0", {.wait = 5000ms}), 1u);
  EXPECT_EQ(next.release_exclusive_access("sim0"), 0u);
}

TEST_F(ClientLive, A64KiBWriteAndReadGoStraightBetweenTheCallersBuffersAndTheDrive) {
  Client client(live("Copier"));
  auto lock = client.acquire("sim0");
  std::vector<std::uint8_t> out(64 * 1024);
  std::iota(out.begin(), out.end(), std::uint8_t{3});
  const std::array<std::uint8_t, 10> write10{0x2A, 0, 0, 0, 0, 16, 0, 0, 32, 0};
  const auto written = client.send_command_send_data_to_device("sim0", write10, out);
  ASSERT_EQ(written.code, errc::ok);
  EXPECT_EQ(written.bytes_transferred, out.size());
  std::vector<std::uint8_t> in(out.size());
  const std::array<std::uint8_t, 10> read10{0x28, 0, 0, 0, 0, 16, 0, 0, 32, 0};
  const auto read = client.send_command_get_data_from_device("sim0", read10, in);
  ASSERT_EQ(read.code, errc::ok);
  EXPECT_EQ(read.bytes_transferred, in.size());
  EXPECT_EQ(in, out);
}

TEST_F(ClientLive, MaxTransferComesFromTheServiceAndAnOversizeTransferIsRefused) {
  Client client(live("Sizer"));
  const auto service = client.max_transfer();
  EXPECT_GT(service, 0u);
  EXPECT_LE(client.max_transfer("sim0"), service);
  EXPECT_EQ(thrown([&] { (void)client.max_transfer("nope"); }).code_value(), errc::dev_not_exist);
  auto lock = client.acquire("sim0");
  const std::vector<std::uint8_t> big(std::size_t{service} + 1);
  const std::array<std::uint8_t, 10> write10{0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0};
  EXPECT_EQ(thrown([&] {
              (void)client.send_command_send_data_to_device("sim0", write10, big);
            }).code_value(),
            errc::invalid_arg);
  EXPECT_EQ(client.exclusive_access_owner("sim0")->client_name, "Sizer");  // still connected
}

}  // namespace
}  // namespace discarbiter
