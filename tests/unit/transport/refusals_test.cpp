#include "transport/refusals.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <memory>
#include <vector>

#include "discarbiter/proto/frame.hpp"
#include "run_until.hpp"

namespace discarbiter::transport {
namespace {

using namespace std::chrono_literals;
using test::run_until;
namespace asio = boost::asio;

/// The client's end, as the test sees it.
struct Peer {
  bool reads = true;  // false: a write never completes until the stream closes
  proto::Bytes received;
  bool closed = false;
};

/// A stream whose writes complete at once, or, for a client that does not
/// read, never until it is closed.
class FakeStream {
 public:
  using executor_type = asio::io_context::executor_type;

  FakeStream(asio::io_context& io, std::shared_ptr<Peer> peer)
      : executor_(io.get_executor()), stalled_(io), peer_(std::move(peer)) {
    stalled_.expires_at(asio::steady_timer::time_point::max());
  }

  executor_type get_executor() { return executor_; }

  template <typename ConstBuffers, typename Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, const ConstBuffers& data) {
          if (!peer_->reads) {
            stalled_.async_wait([h = std::move(handler)](boost::system::error_code) mutable {
              h(asio::error::operation_aborted, 0);
            });
            return;
          }
          const std::size_t size = asio::buffer_size(data);
          const std::size_t old = peer_->received.size();
          peer_->received.resize(old + size);
          asio::buffer_copy(asio::buffer(peer_->received.data() + old, size), data);
          asio::post(executor_, [h = std::move(handler), size]() mutable { h({}, size); });
        },
        token, buffers);
  }

  void close(boost::system::error_code& ec) {
    ec = {};
    peer_->closed = true;
    stalled_.cancel();
  }

 private:
  executor_type executor_;
  asio::steady_timer stalled_;
  std::shared_ptr<Peer> peer_;
};

const Error kFull{errc::limit_reached, "the service has its maximum of 1 sessions"};

TEST(Refusals, WritesTheErrorFrameThenCloses) {
  asio::io_context io;
  Refusals refusals;
  auto peer = std::make_shared<Peer>();
  refusals.refuse(FakeStream(io, peer), kFull);
  ASSERT_TRUE(run_until(io, [&] { return peer->closed; }));
  proto::FrameDecoder decoder;
  decoder.feed(peer->received);
  const auto out = decoder.next();
  ASSERT_EQ(out.status, proto::FrameDecoder::Status::frame);
  EXPECT_EQ(out.frame.json.at("error").at("name"), "DA_E_LIMIT_REACHED") << out.frame.json;
  EXPECT_EQ(out.frame.json.at("error").at("message"), kFull.message);
  EXPECT_EQ(refusals.in_flight(), 0U);
}

TEST(Refusals, AClientThatDoesNotReadDelaysNothingAndIsClosedAtTheDeadline) {
  asio::io_context io;
  Refusals refusals(4, 50ms);
  auto peer = std::make_shared<Peer>();
  peer->reads = false;
  const auto began = std::chrono::steady_clock::now();
  refusals.refuse(FakeStream(io, peer), kFull);  // N.B. returns at once
  EXPECT_EQ(refusals.in_flight(), 1U);
  bool other_work = false;
  asio::post(io, [&] { other_work = true; });
  ASSERT_TRUE(run_until(io, [&] { return other_work; }));
  ASSERT_TRUE(run_until(io, [&] { return peer->closed; }));
  EXPECT_GE(std::chrono::steady_clock::now() - began, 50ms);
  EXPECT_TRUE(peer->received.empty());
  ASSERT_TRUE(run_until(io, [&] { return refusals.in_flight() == 0; }));
}

TEST(Refusals, BeyondTheBoundAConnectionIsClosedWithoutTheFrameAndStopClosesTheRest) {
  asio::io_context io;
  Refusals refusals(1, 10s);
  auto stalled = std::make_shared<Peer>();
  stalled->reads = false;
  refusals.refuse(FakeStream(io, stalled), kFull);
  auto next = std::make_shared<Peer>();
  refusals.refuse(FakeStream(io, next), kFull);
  EXPECT_TRUE(next->closed);
  EXPECT_TRUE(next->received.empty()) << "a refusal beyond the bound was written";
  EXPECT_EQ(refusals.in_flight(), 1U);
  EXPECT_FALSE(stalled->closed);
  refusals.stop();
  EXPECT_TRUE(stalled->closed);
  EXPECT_EQ(refusals.in_flight(), 0U);
  io.poll();  // N.B. the aborted write and timer end without touching `refusals`
}

}  // namespace
}  // namespace discarbiter::transport
