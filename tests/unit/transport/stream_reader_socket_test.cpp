#include "transport/stream_reader.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/write.hpp>
#include <string>
#include <vector>

#include "transport/run_until.hpp"

// The POSIX socket's reads (stream_reader.hpp) through Asio's epoll reactor:
// a read after a short one waits for readability first, which relies on the
// reactor re-arming its edge-triggered registration at each wait.
namespace discarbiter::transport {
namespace {

namespace asio = boost::asio;

std::string text(std::span<const std::uint8_t> b) {
  return {b.begin(), b.end()};
}

// N.B. what waiting first relies on: the bytes that come after a read and
// before the next wait, with the reactor having run in between (so their
// edge was reported while no operation waited), still wake the wait.
TEST(StreamReaderTest, OnASocketBytesThatCameBeforeTheWaitAreRead) {
  using Socket = asio::local::stream_protocol::socket;
  asio::io_context io;
  Socket served(io), peer(io);
  asio::local::connect_pair(served, peer);
  StreamReader<Socket> reader;
  std::vector<std::string> got;
  asio::write(peer, asio::buffer(std::string("hello")));
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        boost::system::error_code ec;
        got.push_back(text(co_await reader.read(served, 1, {}, ec)));  // short: waits next
        asio::write(peer, asio::buffer(std::string("acquire")));
        // N.B. let the reactor run (an epoll_wait) before the wait starts.
        for (int i = 0; i < 4; ++i)
          co_await asio::post(io, asio::use_awaitable);
        got.push_back(text(co_await reader.read(served, 1, {}, ec)));
        if (ec)
          got.push_back(ec.message());
      },
      asio::detached);
  ASSERT_TRUE(test::run_until(io, [&] { return got.size() >= 2; }))
      << "bytes sent before the wait never woke it";
  EXPECT_EQ(got, (std::vector<std::string>{"hello", "acquire"}));
}

}  // namespace
}  // namespace discarbiter::transport
