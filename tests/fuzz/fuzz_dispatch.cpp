// libFuzzer: request parsing and dispatch, as the service runs them, against
// an arbiter with two simulated drives. Three sessions (the first an
// administrator) get bytes in any interleaving, end at any time, stop and
// resume reading, and the clock moves; after the input every session ends.
// Checks: no crash; at the end of the input the arbiter knows exactly the
// sessions that are open; and once they have ended every drive is free again
// with no waiter left (no lock outlives its session).
//
// Each session's replies and events go to a bounded outbox, as in
// transport::Session: a session that reads has it written out on the next
// turn of the strand; one that does not read lets it fill, and past its
// bound it stops reading, drops what else comes and is closed on a later
// turn, never inside the send (issue 11, finding 1).
//
// Input: records of [control u8][length u8][length bytes]. control % 3 picks
// the session; control / 3 % 5: 0-1 feed the bytes to it, 2 end it (a new
// one opens on its next bytes), 3 move the clock by length * 100 ms, 4 stop
// it reading, its outbox now bounded at (length + 1) * 64 bytes (or let it
// read again, bounded at kMaxOutbox).
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <span>

#include "transport/dispatch_fixture.hpp"

namespace {

using namespace discarbiter;

/// A reading session's bound: more than any one turn's replies and events.
constexpr std::size_t kMaxOutbox = 16 * 1024;
/// The sessions' frame limits: the payload limit is config.max_transfer_bytes.
constexpr proto::FrameLimits kFrames{4096, 64 * 1024};

struct Connection {
  proto::FrameDecoder decoder{kFrames};
  std::optional<transport::Dispatcher> dispatcher;
  std::uint64_t generation = 0;  // posted work for an earlier session finds it changed
  std::size_t outbox_bytes = 0;  // queued, not yet written
  std::size_t max_outbox = kMaxOutbox;
  bool reading = true;
  bool write_posted = false;
  bool closing = false;  // overflowed: reads nothing, queues nothing, closes on a later turn
};

void require(bool ok) {
  if (!ok)
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  core::ArbiterConfig config;
  config.max_waits_per_drive = 4;
  config.max_waits_per_session = 2;
  config.max_transfer_bytes = kFrames.max_payload_bytes;
  // N.B. small, so that pipelined commands and deferred requests hit them.
  config.max_commands_per_session = 3;
  config.max_commands_per_drive = 4;
  config.max_payload_bytes_per_session = 2 * 64 * 1024;
  config.max_deferred_per_session = 2;
  testing::DispatchFixture fixture(config);
  auto& scheduler = fixture.scheduler;
  auto& arbiter = fixture.arbiter;
  auto& context = fixture.context;

  std::array<Connection, 3> sessions;
  auto close = [&](Connection& c) {
    ++c.generation;
    c.dispatcher.reset();
    c.outbox_bytes = 0;
    c.write_posted = false;
    c.closing = false;
  };
  auto post_write = [&](Connection& c) {
    if (c.write_posted || !c.reading || c.outbox_bytes == 0)
      return;
    c.write_posted = true;
    scheduler.post([&c, generation = c.generation] {
      if (c.generation != generation)
        return;
      c.write_posted = false;
      if (c.reading && !c.closing)
        c.outbox_bytes = 0;  // the peer read it all
    });
  };
  // As transport::Session::send: queue, and past the bound mark the session
  // for closing and close it later, on the strand.
  auto send = [&](Connection& c, std::uint64_t generation, const proto::OutgoingFrame& frame) {
    if (c.generation != generation || c.closing)
      return;
    c.outbox_bytes += frame.size();
    if (c.outbox_bytes > c.max_outbox) {
      c.closing = true;
      scheduler.post([&c, generation, &close] {
        if (c.generation == generation)
          close(c);
      });
      return;
    }
    post_write(c);
  };
  auto open = [&](std::size_t i) {
    Connection& c = sessions[i];
    core::PeerIdentity peer{static_cast<std::uint32_t>(100 + i),
                            "user" + std::to_string(i),
                            static_cast<std::uint32_t>(1000 + i),
                            {},
                            "/fuzz"};
    peer.administrator = i == 0;
    close(c);
    c.decoder = proto::FrameDecoder{kFrames};
    c.decoder.set_flat_objects(true);  // as transport::Session reads requests
    c.dispatcher.emplace(context, std::move(peer), kFrames,
                         [&c, generation = c.generation, &send](proto::OutgoingFrame frame) {
                           send(c, generation, frame);
                         });
  };
  auto open_sessions = [&] {
    return static_cast<std::size_t>(std::ranges::count_if(
        sessions, [](const Connection& c) { return c.dispatcher.has_value(); }));
  };

  std::span<const std::uint8_t> in(data, size);
  while (in.size() >= 2) {
    const std::uint8_t control = in[0];
    const std::size_t length = std::min<std::size_t>(in[1], in.size() - 2);
    const auto bytes = in.subspan(2, length);
    in = in.subspan(2 + length);
    Connection& c = sessions[control % 3];
    switch (control / 3 % 5) {
      case 0:
      case 1: {
        if (c.closing)
          break;  // it reads no more
        if (!c.dispatcher)
          open(static_cast<std::size_t>(&c - sessions.data()));
        c.decoder.feed(bytes);
        for (;;) {
          auto out = c.decoder.next();
          if (out.status == proto::FrameDecoder::Status::need_more)
            break;
          // A framing error closes the session, as Session does.
          if (c.dispatcher->on_decoded(std::move(out)) == transport::Dispatcher::Verdict::close) {
            close(c);
            break;
          }
          if (c.closing)
            break;  // its outbox overflowed: it reads no more
        }
        break;
      }
      case 2:
        close(c);
        break;
      case 3:
        scheduler.advance(std::chrono::milliseconds(100 * length));
        break;
      default:
        c.reading = !c.reading;
        // N.B. a small bound, chosen by the input, overflows in a few events.
        c.max_outbox = c.reading ? kMaxOutbox : (length + 1) * 64;
        post_write(c);
        break;
    }
    scheduler.run();
  }
  // N.B. once per input, not per record: status() is costly.
  require(arbiter.status().clients.size() == open_sessions());
  for (auto& c : sessions)
    close(c);
  scheduler.advance(std::chrono::hours(2));

  const auto status = arbiter.status();
  for (const auto& drive : status.drives) {
    require(drive.lock_state == "free");
    require(!drive.owner);
    require(drive.waiters.empty());
  }
  require(status.clients.empty());
  return 0;
}
