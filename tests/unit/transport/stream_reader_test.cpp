#include "transport/stream_reader.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <memory>
#include <string>
#include <vector>

#include "transport/run_until.hpp"
#include "transport/test_stream.hpp"

// How a readiness stream is read: a read after a short one waits for
// readability instead of asking the stream for bytes it most likely lacks
// (a system call that returns EAGAIN per request); a read after one that
// filled the buffer reads first. (stream_reader_socket_test.cpp: the same on
// a real socket.)
namespace discarbiter::transport {
namespace {

namespace asio = boost::asio;
using testing::ReadinessTestStream;
using testing::StreamState;

std::vector<std::uint8_t> bytes(std::string_view text) {
  return {text.begin(), text.end()};
}

std::string text(std::span<const std::uint8_t> b) {
  return {b.begin(), b.end()};
}

/// A reader on a ReadinessTestStream, the test as its peer: `reads` reads
/// in a coroutine, each into `into` (the thread's buffer when empty).
struct Reading {
  explicit Reading(int reads, std::span<std::uint8_t> into = {}) {
    asio::co_spawn(
        io,
        [this, reads, into]() -> asio::awaitable<void> {
          for (int i = 0; i < reads; ++i) {
            boost::system::error_code ec;
            const auto b = co_await reader.read(stream, 1, into, ec);
            if (ec)
              co_return;
            got.push_back(text(b));
          }
        },
        asio::detached);
  }

  asio::io_context io;
  std::shared_ptr<StreamState> state = std::make_shared<StreamState>(io.get_executor());
  ReadinessTestStream stream{state};
  StreamReader<ReadinessTestStream> reader;
  std::vector<std::string> got;
};

TEST(StreamReaderTest, AfterAShortReadTheNextReadWaitsInsteadOfFindingNothing) {
  Reading r(3);
  r.state->peer_write(bytes("hello"));  // shorter than a read takes: a short read
  ASSERT_TRUE(test::run_until(r.io, [&] { return r.got.size() == 1; }));
  ASSERT_TRUE(test::run_until(r.io, [&] { return r.state->waits == 1; }));
  r.state->peer_write(bytes("acquire"));
  ASSERT_TRUE(test::run_until(r.io, [&] { return r.got.size() == 2; }));
  r.state->peer_write(bytes("release"));
  ASSERT_TRUE(test::run_until(r.io, [&] { return r.got.size() == 3; }));
  EXPECT_EQ(r.got, (std::vector<std::string>{"hello", "acquire", "release"}));
  EXPECT_EQ(r.state->empty_reads, 0U) << "a read after a short read asked the stream for nothing";
  EXPECT_EQ(r.state->waits, 2U);
}

TEST(StreamReaderTest, AfterAReadThatFilledTheBufferTheNextReadReadsFirst) {
  std::array<std::uint8_t, 4> into{};  // a payload's buffer: filled by each read
  Reading r(2, into);
  r.state->peer_write(bytes("payload!"));
  ASSERT_TRUE(test::run_until(r.io, [&] { return r.got.size() == 2; }));
  EXPECT_EQ(r.got, (std::vector<std::string>{"payl", "oad!"}));
  EXPECT_EQ(r.state->waits, 0U) << "bytes were there: no wait was needed";
  EXPECT_EQ(r.state->empty_reads, 0U);
}

}  // namespace
}  // namespace discarbiter::transport
