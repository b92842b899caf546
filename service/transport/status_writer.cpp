#include "transport/status_writer.hpp"

#include <string>
#include <utility>

#include "discarbiter/proto/wire.hpp"

namespace discarbiter::transport {

StatusWriter::StatusWriter(Snapshot snapshot, Post to_worker, Post to_io)
    : state_(std::make_shared<State>(
          State{std::move(snapshot), std::move(to_worker), std::move(to_io), false, {}, {}, {}})) {}

bool StatusWriter::request(core::SessionId session, std::weak_ptr<SendFrame> send,
                           std::uint64_t id) {
  auto& count = state_->per_session[session];
  if (count >= kMaxStatusRequestsPerSession)
    return false;
  ++count;
  state_->waiting.push_back({session, std::move(send), id});
  if (!state_->writing)
    write_next(state_);
  return true;
}

void StatusWriter::write_next(const std::shared_ptr<State>& state) {
  // N.B. the snapshot is taken here, on the io thread, after every waiting
  // request arrived: each of them sees the arbiter as it was at least as
  // late as its request.
  state->writing = true;
  state->being_written = std::exchange(state->waiting, {});
  std::vector<std::uint64_t> ids;
  ids.reserve(state->being_written.size());
  for (const auto& r : state->being_written)
    ids.push_back(r.id);
  state->to_worker([snapshot = state->snapshot(), ids = std::move(ids),
                    weak = std::weak_ptr<State>(state), to_io = state->to_io]() mutable {
    const std::string text = proto::status_json(snapshot.arbitration.drives,
                                                snapshot.arbitration.clients, snapshot.service);
    std::vector<proto::Bytes> frames;
    frames.reserve(ids.size());
    for (const auto id : ids)
      frames.push_back(proto::encode_status_reply(id, text));
    to_io([weak = std::move(weak), frames = std::move(frames)]() mutable {
      if (auto s = weak.lock())
        deliver(s, std::move(frames));
    });
  });
}

void StatusWriter::deliver(const std::shared_ptr<State>& state, std::vector<proto::Bytes> frames) {
  auto done = std::exchange(state->being_written, {});
  state->writing = false;
  for (std::size_t i = 0; i < done.size(); ++i) {
    if (const auto it = state->per_session.find(done[i].session);
        it != state->per_session.end() && --it->second == 0) {
      state->per_session.erase(it);
    }
    // N.B. each frame is queued in a turn of its own: 32 requests sharing a
    // document would otherwise copy 32 documents to their sockets in this
    // one turn, and a grant ready meanwhile would wait behind them all.
    state->to_io([send = std::move(done[i].send), frame = std::move(frames[i])]() mutable {
      if (auto s = send.lock())
        (*s)(std::move(frame));
    });
  }
  if (!state->waiting.empty())
    write_next(state);
}

}  // namespace discarbiter::transport
