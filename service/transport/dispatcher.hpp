// One connection's requests, turned into arbiter calls and reply frames. No
// I/O: the session feeds it frames and gives it a way to send.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "core/arbiter.hpp"
#include "discarbiter/proto/frame.hpp"
#include "discarbiter/proto/wire.hpp"
#include "transport/status_writer.hpp"

namespace discarbiter::transport {

/// What every connection shares: the arbiter and facts about the service.
struct ServiceContext {
  core::Arbiter& arbiter;
  std::string version;
  /// Answers status requests: the snapshot here, the writing off the io
  /// thread.
  StatusWriter& status_writer;
};

class Dispatcher {
 public:
  /// Queues one frame; an execute's data-in is its payload part, moved.
  using Send = SendFrame;
  enum class Verdict { keep_open, close };

  /// `frames`: the limits this connection's decoder applies (hello tells the
  /// client its payload limit as `max_transfer`).
  Dispatcher(ServiceContext& context, core::PeerIdentity peer, proto::FrameLimits frames,
             Send send);
  ~Dispatcher();  // ends the arbiter session: its locks die, its waits go
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  /// One output of the connection's FrameDecoder (not need_more): a frame is
  /// a request to answer; an oversize frame (its payload skipped) is refused
  /// with DA_E_FRAME_TOO_LARGE and its id, changing nothing else; a framing
  /// error is answered with `"id": null` and closes the connection. Any of
  /// them closes the connection before a successful hello.
  Verdict on_decoded(proto::FrameDecoder::Output out);

  bool greeted() const { return greeted_; }
  /// A lock, a queued wait, a transition in progress or a subscription:
  /// reasons to keep a quiet session open.
  bool holds_anything() const { return context_.arbiter.holds_anything(session_); }
  core::SessionId session() const { return session_; }
  const std::string& client_name() const { return client_name_; }

 private:
  /// Answers one request, now or later: every reply and error frame is
  /// encoded here. A handler may outlive the dispatcher (an acquire's wait, a
  /// drive command); its answer then goes nowhere.
  class Responder {
   public:
    Responder(std::weak_ptr<Send> send, std::optional<std::uint64_t> id)
        : send_(std::move(send)), id_(id) {}
    void operator()(const proto::ReplyBody& body, proto::Bytes payload = {}) const;
    void operator()(const Error& error) const;

   private:
    std::weak_ptr<Send> send_;
    std::optional<std::uint64_t> id_;
  };
  Responder responder(std::optional<std::uint64_t> id) const { return {send_, id}; }

  Verdict on_frame(proto::Frame frame);
  Verdict on_oversize(proto::Frame frame, const Error& error);
  Verdict handle(std::uint64_t id, proto::RequestBody body);

  ServiceContext& context_;
  proto::FrameLimits frames_;
  core::SessionId session_;
  std::shared_ptr<Send> send_;  // handlers of late answers hold a weak_ptr
  bool greeted_ = false;
  std::string client_name_;
};

}  // namespace discarbiter::transport
