#include "transport/dispatcher.hpp"

#include <fmt/format.h>

namespace discarbiter::transport {

using nlohmann::json;

Dispatcher::Dispatcher(ServiceContext& context, core::PeerIdentity peer, Send send)
    : context_(context), send_(std::make_shared<Send>(std::move(send))) {
  std::weak_ptr<Send> weak = send_;
  session_ = context_.arbiter.open_session(std::move(peer), [weak](const json& event) {
    if (auto sender = weak.lock())
      (*sender)(proto::encode_frame(event));
  });
}

Dispatcher::~Dispatcher() {
  send_.reset();
  context_.arbiter.close_session(session_);
}

Dispatcher::Verdict Dispatcher::on_frame(proto::Frame frame) {
  auto parsed = proto::parse_request(std::move(frame));
  if (!parsed.body) {
    reply_error(parsed.id, parsed.body.error());
    return greeted_ ? Verdict::keep_open : Verdict::close;
  }
  return handle(*parsed.id, std::move(*parsed.body));
}

void Dispatcher::on_decode_error(const Error& error) {
  reply_error(std::nullopt, error);
}

std::function<void(json, proto::Bytes)> Dispatcher::deferred_sender() {
  return [weak = std::weak_ptr<Send>(send_)](json j, proto::Bytes payload) {
    if (auto send = weak.lock())
      (*send)(proto::encode_frame(j, payload));
  };
}

void Dispatcher::reply(std::uint64_t id, json fields, proto::Bytes payload) {
  (*send_)(proto::encode_frame(proto::make_reply(id, std::move(fields)), payload));
}

void Dispatcher::reply_error(std::optional<std::uint64_t> id, const Error& error) {
  (*send_)(proto::encode_frame(proto::make_error_reply(id, error)));
}

Dispatcher::Verdict Dispatcher::handle(std::uint64_t id, proto::RequestBody body) {
  auto& arbiter = context_.arbiter;
  auto send = deferred_sender();
  // Answers that may come later (acquire waits, drive commands) reply
  // through `send`, which outlives nothing it should not.
  auto count_reply = [send, id](std::string drive) {
    return [send, id, drive = std::move(drive)](Result<std::uint32_t> r) {
      send(r ? proto::make_reply(id, {{"drive", drive}, {"lock_count", *r}})
             : proto::make_error_reply(id, r.error()),
           {});
    };
  };

  if (!greeted_ && !std::holds_alternative<proto::HelloRequest>(body)) {
    reply_error(id, Error{errc::hello_required,
                          fmt::format("'{}' before hello; the first request must be hello",
                                      proto::op_name(body))});
    return Verdict::close;
  }

  return std::visit(
      [&](auto& req) -> Verdict {
        using T = std::decay_t<decltype(req)>;
        if constexpr (std::is_same_v<T, proto::HelloRequest>) {
          if (req.protocol != proto::kProtocolVersion) {
            reply_error(id, Error{errc::unsupported_protocol,
                                  fmt::format("client speaks protocol {}, service speaks {}",
                                              req.protocol, proto::kProtocolVersion)});
            return Verdict::close;
          }
          auto r = arbiter.hello(session_, req.client_name, req.pid);
          if (!r) {
            reply_error(id, r.error());
            return Verdict::close;
          }
          greeted_ = true;
          client_name_ = req.client_name;
          reply(id, proto::HelloReply{context_.version,
                                      proto::kProtocolVersion,
                                      {"acquire-wait", "execute", "status", "subscribe", "break"}});
        } else if constexpr (std::is_same_v<T, proto::ListDrivesRequest>) {
          reply(id, {{"drives", arbiter.drives()}});
        } else if constexpr (std::is_same_v<T, proto::StatusRequest>) {
          json status = arbiter.status();
          status["service"] = context_.describe_service();
          reply(id, {{"status", std::move(status)}});
        } else if constexpr (std::is_same_v<T, proto::AcquireRequest>) {
          arbiter.acquire_exclusive_access(
              session_, req.drive,
              core::AcquireOptions{req.force, std::chrono::milliseconds(req.wait_ms)},
              count_reply(req.drive));
        } else if constexpr (std::is_same_v<T, proto::ReleaseRequest>) {
          arbiter.release_exclusive_access(session_, req.drive, count_reply(req.drive));
        } else if constexpr (std::is_same_v<T, proto::OwnerRequest>) {
          auto owner = arbiter.exclusive_access_owner(req.drive);
          if (!owner) {
            reply_error(id, owner.error());
          } else {
            reply(id, {{"drive", req.drive}, {"owner", *owner ? json(**owner) : json(nullptr)}});
          }
        } else if constexpr (std::is_same_v<T, proto::ExecuteRequest>) {
          core::ScsiCommand command{
              std::move(req.cdb), req.direction, std::move(req.data_out), req.data_in_len, {}};
          arbiter.execute(session_, req.drive, std::move(command), req.timeout_s,
                          [send, id](Result<core::ScsiResult> r) {
                            if (!r) {
                              send(proto::make_error_reply(id, r.error()), {});
                              return;
                            }
                            const errc code = r->status == core::kStatusGood
                                                  ? errc::ok
                                                  : errc::command_has_sense_data;
                            json fields = proto::ExecuteReply{
                                r->status, r->sense, static_cast<std::uint32_t>(r->data_in.size())};
                            fields["code"] = hresult(code);
                            fields["name"] = error_name(code);
                            send(proto::make_reply(id, std::move(fields)), std::move(r->data_in));
                          });
        } else if constexpr (std::is_same_v<T, proto::SubscribeRequest>) {
          arbiter.subscribe(session_);
          reply(id, nullptr);
        } else if constexpr (std::is_same_v<T, proto::BreakRequest>) {
          arbiter.break_exclusive_access(
              session_, req.drive, [send, id, drive = req.drive](Result<proto::OwnerInfo> r) {
                send(r ? proto::make_reply(id, {{"drive", drive}, {"broken_owner", *r}})
                       : proto::make_error_reply(id, r.error()),
                     {});
              });
        }
        return Verdict::keep_open;
      },
      body);
}

}  // namespace discarbiter::transport
