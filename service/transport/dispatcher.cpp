#include "transport/dispatcher.hpp"

#include <cassert>

#include <fmt/format.h>

namespace discarbiter::transport {

Dispatcher::Dispatcher(ServiceContext& context, core::PeerIdentity peer, proto::FrameLimits frames,
                       Send send)
    : context_(context), frames_(frames), send_(std::make_shared<Send>(std::move(send))) {
  std::weak_ptr<Send> weak = send_;
  session_ = context_.arbiter.open_session(std::move(peer), [weak](const proto::Event& event) {
    if (auto sender = weak.lock())
      (*sender)(proto::encode_event(event));
  });
}

Dispatcher::~Dispatcher() {
  send_.reset();
  context_.arbiter.close_session(session_);
}

Dispatcher::Verdict Dispatcher::on_decoded(proto::FrameDecoder::Output out) {
  using Status = proto::FrameDecoder::Status;
  assert(out.status != Status::need_more);
  if (out.status == Status::error) {
    responder(std::nullopt)(out.error);
    return Verdict::close;
  }
  if (out.status == Status::oversize) {
    return on_oversize(std::move(out.frame), out.error);
  }
  return on_frame(std::move(out.frame));
}

Dispatcher::Verdict Dispatcher::on_frame(proto::Frame frame) {
  auto parsed = proto::parse_request(std::move(frame));
  if (!parsed.body) {
    responder(parsed.id)(parsed.body.error());
    return greeted_ ? Verdict::keep_open : Verdict::close;
  }
  return handle(*parsed.id, std::move(*parsed.body));
}

Dispatcher::Verdict Dispatcher::on_oversize(proto::Frame frame, const Error& error) {
  // Only the id is read: the request is refused whatever it says, so that
  // an oversize WRITE changes nothing (its sender keeps its lock).
  const auto id = proto::parse_request(std::move(frame)).id;
  // The frame payload limit is the service's limits.max_transfer_bytes.
  responder(id)(Error{error.code, fmt::format("{} (limits.max_transfer_bytes)", error.message)});
  return greeted_ ? Verdict::keep_open : Verdict::close;
}

void Dispatcher::Responder::operator()(const proto::ReplyBody& body, proto::Bytes payload) const {
  assert(id_);  // only a request that parsed is answered with a reply
  if (auto send = send_.lock())
    (*send)(proto::encode_reply_parts(*id_, body, std::move(payload)));
}

void Dispatcher::Responder::operator()(const Error& error) const {
  if (auto send = send_.lock())
    (*send)(proto::encode_error_reply(id_, error));
}

Dispatcher::Verdict Dispatcher::handle(std::uint64_t id, proto::RequestBody body) {
  auto& arbiter = context_.arbiter;
  // Answers that may come later (acquire waits, drive commands) go through
  // `respond` too: it outlives nothing it should not.
  const Responder respond = responder(id);

  if (!greeted_ && !std::holds_alternative<proto::HelloRequest>(body)) {
    respond(Error{
        errc::hello_required,
        fmt::format("'{}' before hello; the first request must be hello", proto::op_name(body))});
    return Verdict::close;
  }

  return std::visit(
      [&](auto& req) -> Verdict {
        using T = std::decay_t<decltype(req)>;
        if constexpr (std::is_same_v<T, proto::HelloRequest>) {
          if (req.protocol != proto::kProtocolVersion) {
            respond(Error{errc::unsupported_protocol,
                          fmt::format("client speaks protocol {}, service speaks {}", req.protocol,
                                      proto::kProtocolVersion)});
            return Verdict::close;
          }
          auto r = arbiter.hello(session_, req.client_name, req.pid);
          if (!r) {
            respond(r.error());
            return Verdict::close;
          }
          greeted_ = true;
          client_name_ = req.client_name;
          respond(proto::HelloReply{context_.version,
                                    proto::kProtocolVersion,
                                    {"acquire-wait", "execute", "status", "subscribe", "break"},
                                    frames_.max_payload_bytes});
        } else if constexpr (std::is_same_v<T, proto::ListDrivesRequest>) {
          respond(proto::DrivesReply{arbiter.drives()});
        } else if constexpr (std::is_same_v<T, proto::StatusRequest>) {
          // N.B. answered later, from the status writer: a document with a
          // line per session is not written on the io thread.
          if (!context_.status_writer.request(session_, send_, id)) {
            respond(Error{errc::limit_reached,
                          fmt::format("{} status requests of this session are already waiting; "
                                      "read their replies first",
                                      kMaxStatusRequestsPerSession)});
          }
        } else if constexpr (std::is_same_v<T, proto::AcquireRequest>) {
          arbiter.acquire_exclusive_access(
              session_, req.drive,
              core::AcquireOptions{req.force, std::chrono::milliseconds(req.wait_ms)},
              [respond, drive = req.drive](Result<std::uint32_t> r) {
                r ? respond(proto::AcquireReply{drive, *r}) : respond(r.error());
              });
        } else if constexpr (std::is_same_v<T, proto::ReleaseRequest>) {
          arbiter.release_exclusive_access(
              session_, req.drive, [respond, drive = req.drive](Result<std::uint32_t> r) {
                r ? respond(proto::ReleaseReply{drive, *r}) : respond(r.error());
              });
        } else if constexpr (std::is_same_v<T, proto::OwnerRequest>) {
          auto owner = arbiter.exclusive_access_owner(req.drive);
          owner ? respond(proto::OwnerReply{req.drive, *owner}) : respond(owner.error());
        } else if constexpr (std::is_same_v<T, proto::ExecuteRequest>) {
          // N.B. the data moves, never copied: data-out from the decoder's
          // payload buffer to the drive, data-in from the drive into the
          // reply frame's payload part.
          core::ScsiCommand command{
              std::move(req.cdb), req.direction, std::move(req.data_out), req.data_in_len, {}};
          arbiter.execute(
              session_, req.drive, std::move(command), req.timeout_s,
              [respond](Result<core::ScsiResult> r) {
                if (!r) {
                  respond(r.error());
                  return;
                }
                // N.B. the reply first: the data moves out of `r` below.
                const proto::ExecuteReply reply{
                    r->status, r->sense, static_cast<std::uint32_t>(r->data_in.size()),
                    r->status == core::kStatusGood ? errc::ok : errc::command_has_sense_data};
                respond(reply, std::move(r->data_in));
              });
        } else if constexpr (std::is_same_v<T, proto::SubscribeRequest>) {
          arbiter.subscribe(session_);
          respond(proto::SubscribeReply{});
        } else if constexpr (std::is_same_v<T, proto::BreakRequest>) {
          arbiter.break_exclusive_access(
              session_, req.drive, [respond, drive = req.drive](Result<proto::OwnerInfo> r) {
                r ? respond(proto::BreakReply{drive, *r}) : respond(r.error());
              });
        }
        return Verdict::keep_open;
      },
      body);
}

}  // namespace discarbiter::transport
