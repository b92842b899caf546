// Status replies written off the io thread. The document lists every session
// (135 KB for 1,000 of them); written on the io thread it would hold every
// other request, a waiter's grant among them, behind it. So the io thread
// only takes the snapshot (one consistent view of the arbiter: a pointer per
// session to its shared entry, made again only when the session changed), a
// worker writes its text and the reply frames, and the io thread queues the
// frames to their sessions (a session writes a large frame a bounded piece
// per turn: session.hpp).
//
//   request ──> waiting ──(nothing being written)──> snapshot on the io thread
//                                                      │
//   frames queued on the io thread <── written on the worker
//
// Bounds (a client may pipeline status requests without end): one document
// is written at a time for the whole service, and the requests that come
// meanwhile share the next snapshot (taken once that write ends, so after
// each of them arrived); a session has at most kMaxStatusRequestsPerSession
// waiting or being written, and is refused with DA_E_LIMIT_REACHED beyond.
// The frames of one document go to their sessions a turn of the io thread
// each (and each session writes a piece of at most 64 KiB per turn).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "core/arbiter.hpp"
#include "discarbiter/proto/frame.hpp"
#include "discarbiter/proto/messages.hpp"

namespace discarbiter::transport {

/// How a connection sends a frame (Dispatcher::Send).
using SendFrame = std::function<void(proto::OutgoingFrame frame)>;

inline constexpr std::size_t kMaxStatusRequestsPerSession = 4;

/// What the io thread hands the worker: the arbiter's part (its client
/// entries shared, core::StatusSnapshot) and the service's.
struct StatusSnapshot {
  core::StatusSnapshot arbitration;
  proto::ServiceInfo service;
};

class StatusWriter {
 public:
  using Job = std::function<void()>;
  using Post = std::function<void(Job)>;
  using Snapshot = std::function<StatusSnapshot()>;

  /// `snapshot` runs on the io thread; `to_worker` runs a job off it (the
  /// service's status thread; a test may hold the job); `to_io` brings the
  /// job's frames back to the io thread.
  StatusWriter(Snapshot snapshot, Post to_worker, Post to_io);
  StatusWriter(const StatusWriter&) = delete;
  StatusWriter& operator=(const StatusWriter&) = delete;

  /// On the io thread: answers request `id` of `session` through `send`
  /// later (or never, if `send` has gone by then). False, and nothing
  /// queued, when the session already has kMaxStatusRequestsPerSession.
  [[nodiscard]] bool request(core::SessionId session, std::weak_ptr<SendFrame> send,
                             std::uint64_t id);

  /// Requests waiting for the next snapshot, and whether a document is being
  /// written (tests).
  std::size_t waiting() const { return state_->waiting.size(); }
  bool writing() const { return state_->writing; }

 private:
  struct Requester {
    core::SessionId session = 0;
    std::weak_ptr<SendFrame> send;
    std::uint64_t id = 0;
  };
  struct State {
    Snapshot snapshot;
    Post to_worker;
    Post to_io;
    bool writing = false;
    std::vector<Requester> waiting;
    std::vector<Requester> being_written;
    std::map<core::SessionId, std::size_t> per_session;  // waiting + being written
  };
  static void write_next(const std::shared_ptr<State>& state);
  static void deliver(const std::shared_ptr<State>& state, std::vector<proto::Bytes> frames);

  // N.B. shared: a job finishing on the worker after the service's last
  // request reaches it through a weak_ptr, on the io thread.
  std::shared_ptr<State> state_;
};

}  // namespace discarbiter::transport
