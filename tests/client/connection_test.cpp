#include "connection.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <numeric>
#include <vector>

// Connection::read (client-lib/src/connection.hpp): how many reads of the
// stream a reply costs. A reply's header and JSON come in one read, after
// one wait for readability; what was read ahead is handed out first, and a
// large part (a payload) is read straight into its own buffer.
namespace discarbiter {
namespace {

using Bytes = std::vector<std::uint8_t>;

/// A stream that hands out scripted chunks, one per read_some, and counts.
class ScriptedConnection final : public Connection {
 public:
  explicit ScriptedConnection(std::deque<Bytes> chunks) : chunks_(std::move(chunks)) {}

  void write_all(Buffers, Deadline) override {}
  void shutdown() noexcept override {}
  bool wait_readable(Deadline) override {
    ++waits;
    return !chunks_.empty();
  }
  std::size_t read_some(std::span<std::uint8_t> buffer, Deadline) override {
    ++reads;
    read_sizes.push_back(buffer.size());
    if (chunks_.empty())
      return 0;
    Bytes& chunk = chunks_.front();
    const std::size_t n = std::min(buffer.size(), chunk.size());
    std::copy_n(chunk.begin(), n, buffer.begin());
    chunk.erase(chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(n));
    if (chunk.empty())
      chunks_.pop_front();
    return n;
  }

  int waits = 0;
  int reads = 0;
  std::vector<std::size_t> read_sizes;

 private:
  std::deque<Bytes> chunks_;
};

Bytes sequence(std::size_t n, std::uint8_t first) {
  Bytes b(n);
  std::iota(b.begin(), b.end(), first);
  return b;
}

Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts)
    out.insert(out.end(), p.begin(), p.end());
  return out;
}

const Connection::Deadline kLater = std::chrono::steady_clock::now() + std::chrono::hours(1);

TEST(ConnectionReadTest, AReplysHeaderAndJsonComeInOneReadAfterOneWait) {
  const Bytes header = sequence(8, 0), json = sequence(60, 8), next = sequence(8, 100);
  ScriptedConnection c({concat({header, json, next})});
  Bytes h(8), j(60), n(8);
  ASSERT_EQ(c.read(h, kLater, /*wait_first=*/true), 8U);
  ASSERT_TRUE(c.read_exact(j, kLater));
  EXPECT_EQ(h, header);
  EXPECT_EQ(j, json);
  EXPECT_EQ(c.waits, 1);
  EXPECT_EQ(c.reads, 1) << "the JSON part cost a read of its own";
  // The next frame's header was read ahead: no wait, no read.
  ASSERT_EQ(c.read(n, kLater, /*wait_first=*/true), 8U);
  EXPECT_EQ(n, next);
  EXPECT_EQ(c.waits, 1);
  EXPECT_EQ(c.reads, 1);
}

TEST(ConnectionReadTest, WhatWasReadAheadGoesFirstThenALargePartIsReadStraightIntoItsBuffer) {
  const Bytes header = sequence(8, 0), json = sequence(20, 8), payload = sequence(4096, 7);
  const Bytes first(payload.begin(), payload.begin() + 100),
      rest(payload.begin() + 100, payload.end());
  ScriptedConnection c({concat({header, json, first}), rest});
  Bytes h(8), j(20), p(4096);
  ASSERT_EQ(c.read(h, kLater, true), 8U);
  ASSERT_TRUE(c.read_exact(j, kLater));
  ASSERT_TRUE(c.read_exact(p, kLater));
  EXPECT_EQ(p, payload);
  ASSERT_EQ(c.reads, 2);
  EXPECT_EQ(c.read_sizes[1], 4096U - 100U) << "the payload's rest went through the read-ahead";
}

TEST(ConnectionReadTest, NothingByTheDeadlineReadsNothing) {
  ScriptedConnection c({});
  Bytes h(8);
  EXPECT_EQ(c.read(h, kLater, true), 0U);
  EXPECT_EQ(c.reads, 0);
}

}  // namespace
}  // namespace discarbiter
