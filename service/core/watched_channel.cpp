#include "core/watched_channel.hpp"

#include <utility>
#include <vector>

#include <fmt/format.h>

#include "core/overloaded.hpp"

namespace discarbiter::core {

WatchedChannel::WatchedChannel(Scheduler& scheduler, Timing timing,
                               std::shared_ptr<DriveChannel> channel, NoticeHandler notices)
    : scheduler_(scheduler),
      timing_(timing),
      channel_(std::move(channel)),
      notices_(std::move(notices)) {}

WatchedChannel::~WatchedChannel() {
  *alive_ = false;
  for (auto& [ticket, call] : in_backend_calls_) {
    scheduler_.cancel(call.watchdog);
  }
}

void WatchedChannel::attach(std::shared_ptr<DriveChannel> channel) {
  channel_ = std::move(channel);
  call_in_flight_ = 0;  // N.B. a call stuck on the old channel answers there, not here
  in_backend_ = 0;
  ++attachment_;
  error_.reset();
}

// ---- the calls ----------------------------------------------------------------

void WatchedChannel::send(ScsiCommand command, ScsiHandler handler, CallOwner owner,
                          std::function<void()> returned) {
  Call call;
  call.owner = owner;
  call.opcode = command.opcode();
  call.limit = command.timeout;
  call.request = std::move(command);
  call.handler = std::move(handler);
  call.returned = std::move(returned);
  enqueue(std::move(call));
}

// The arbiter's own calls (owner 0).
template <typename Request, typename OnAnswer>
void WatchedChannel::enqueue_own(Request request, std::chrono::seconds limit, OnAnswer handler) {
  Call call;
  call.request = std::move(request);
  call.limit = limit;
  call.handler = std::move(handler);
  enqueue(std::move(call));
}

void WatchedChannel::os_lock(std::string client_name, bool force, LockHandler handler) {
  enqueue_own(OsLock{std::move(client_name), force}, timing_.os_call, std::move(handler));
}

void WatchedChannel::os_unlock(LockHandler handler) {
  enqueue_own(OsUnlock{}, timing_.os_call, std::move(handler));
}

void WatchedChannel::acquire_steps(AcquireSteps steps, AcquireHandler handler) {
  const auto limit = steps.limit(timing_.os_call);
  enqueue_own(std::move(steps), limit, std::move(handler));
}

void WatchedChannel::release_steps(ReleaseSteps steps, ReleaseHandler handler) {
  const auto limit = steps.limit(timing_.os_call);
  enqueue_own(std::move(steps), limit, std::move(handler));
}

void WatchedChannel::enqueue(Call call) {
  queued_.push_back(std::move(call));
  hand_next_call();
}

void WatchedChannel::hand_next_call() {
  if (call_in_flight_ != 0 || queued_.empty())
    return;
  // N.B. while a watchdog-answered call still holds the backend, at most one
  // further call goes to it (so a release's ALLOW or a TUR can still be
  // tried); the rest wait here, in order, where they stay counted against
  // their bounds and a departing owner's can be dropped. A drive whose
  // backend never returns thus holds them (and a release behind them) until
  // it does: nothing is run, or freed, behind the backend's back.
  // The arbiter's own calls (TUR, OS lock, PREVENT, ALLOW, OS unlock) are
  // exempt: their number is bounded by the lock state machine, and each
  // needs its watchdog running, or an acquire or a release behind a stuck
  // backend would wait unanswered for ever.
  if (in_backend_ > 1 && queued_.front().owner != 0)
    return;
  Call call = std::move(queued_.front());
  queued_.pop_front();
  call.ticket = call_in_flight_ = next_ticket_++;
  call.attachment = attachment_;
  ++in_backend_;
  call.watchdog =
      scheduler_.schedule_at(scheduler_.now() + call.limit + timing_.grace,
                             [this, alive = std::weak_ptr(alive_), ticket = call.ticket] {
                               if (!alive.expired())
                                 on_watchdog(ticket);
                             });
  // N.B. a re-attached drive has a new channel; the call answers on this one.
  const std::shared_ptr<DriveChannel> channel = channel_;
  Call& handed = in_backend_calls_.emplace(call.ticket, std::move(call)).first->second;
  // N.B. a channel never completes inside the call, so this cannot re-enter.
  issue(*channel, handed);
}

void WatchedChannel::issue(DriveChannel& channel, Call& call) {
  auto on_return = [this, alive = std::weak_ptr(alive_), ticket = call.ticket](auto result) {
    if (!alive.expired())
      on_backend_returned(ticket, std::move(result));
  };
  std::visit(
      Overloaded{
          [&](ScsiCommand& command) { channel.async_execute(std::move(command), on_return); },
          [&](OsLock& lock) {
            channel.async_os_lock(std::move(lock.client_name), lock.force, on_return);
          },
          [&](OsUnlock) { channel.async_os_unlock(on_return); },
          // N.B. copies: the watchdog's answer is built from the steps.
          [&](const AcquireSteps& steps) { channel.async_acquire_steps(steps, on_return); },
          [&](const ReleaseSteps& steps) { channel.async_release_steps(steps, on_return); },
      },
      call.request);
}

void WatchedChannel::on_backend_returned(std::uint64_t ticket, Answer result) {
  const auto it = in_backend_calls_.find(ticket);
  if (it == in_backend_calls_.end())
    return;
  Call call = std::move(it->second);
  in_backend_calls_.erase(it);
  if (call.attachment == attachment_)
    --in_backend_;
  if (call.returned)
    call.returned();
  if (!call.answered) {
    scheduler_.cancel(call.watchdog);
    answer(call.ticket, call.opcode, std::move(call.handler), std::move(result));
  }
  hand_next_call();  // N.B. after an overrun, the return is what frees the slot
}

void WatchedChannel::on_watchdog(std::uint64_t ticket) {
  const auto it = in_backend_calls_.find(ticket);
  if (it == in_backend_calls_.end() || it->second.answered)
    return;
  Call& call = it->second;
  // N.B. before the answer: the backend reads it between steps, so an
  // acquire still running starts nothing more and undoes what it took (in
  // the same call, before the backend starts the next, which may be the
  // next owner's), instead of leaving it to a lock nobody owns.
  if (AcquireFate* fate = fate_of(call); fate && !fate->abandon()) {
    // The steps ran to their end in time and kept the lock: their return
    // is already posted, and it is the answer (a late one dropped here
    // would leave the OS lock and the PREVENT held for nobody).
    return;
  }
  // N.B. the call stays in the backend (and counted) until it returns.
  call.answered = true;
  answer(ticket, call.opcode, std::exchange(call.handler, {}), overrun_answer(call));
}

AcquireFate* WatchedChannel::fate_of(const Call& call) {
  if (const auto* steps = std::get_if<AcquireSteps>(&call.request))
    return steps->fate.get();
  if (const auto* steps = std::get_if<ReleaseSteps>(&call.request))
    return steps->acquire_fate();
  return nullptr;
}

bool WatchedChannel::abandon_acquire() {
  bool abandoned = true;
  auto abandon = [&](const Call& call) {
    if (AcquireFate* fate = fate_of(call))
      abandoned = fate->abandon() && abandoned;
  };
  for (const auto& call : queued_)
    abandon(call);
  for (const auto& [ticket, call] : in_backend_calls_)
    abandon(call);
  return abandoned;
}

void WatchedChannel::answer(std::uint64_t ticket, std::uint8_t opcode, Handler handler,
                            Answer result) {
  // N.B. after a watchdog answer the backend may still be stuck on the call;
  // hand_next_call hands it one more at most (see there). The drive is in
  // "error" by then.
  if (call_in_flight_ == ticket)
    call_in_flight_ = 0;
  // N.B. every SCSI step counts, as if sent alone, before its answer is heard.
  std::visit(Overloaded{
                 [&](const ScsiResult& r) { note_command_result(opcode, r); },
                 [&](const Result<Done>&) {},
                 [&](const DriveSteps& steps) {
                   steps.each_command([this](const ScsiCommand& command, const ScsiResult& r) {
                     note_command_result(command.opcode(), r);
                   });
                 },
             },
             result);
  deliver(handler, std::move(result));
  hand_next_call();
}

void WatchedChannel::deliver(Handler& handler, Answer result) {
  std::visit(Overloaded{
                 [&](ScsiHandler& h) { h(std::get<ScsiResult>(std::move(result))); },
                 [&](LockHandler& h) { h(std::get<Result<Done>>(std::move(result))); },
                 [&](AcquireHandler& h) { h(std::get<AcquireSteps>(std::move(result))); },
                 [&](ReleaseHandler& h) { h(std::get<ReleaseSteps>(std::move(result))); },
             },
             handler);
}

WatchedChannel::Answer WatchedChannel::overrun_answer(const Call& call) const {
  if (std::holds_alternative<ScsiCommand>(call.request) ||
      std::holds_alternative<AcquireSteps>(call.request) ||
      std::holds_alternative<ReleaseSteps>(call.request)) {
    return failure(call, Error{errc::recorder_command_timeout,
                               fmt::format("the drive's backend did not return within the {} s "
                                           "timeout (plus grace); the command may still be stuck",
                                           call.limit.count())});
  }
  const std::string_view what = std::holds_alternative<OsLock>(call.request) ? "lock" : "unlock";
  return Result<Done>{Error{
      errc::recorder_command_timeout,
      fmt::format("the OS exclusive {} did not return within {} s", what, call.limit.count())}};
}

WatchedChannel::Answer WatchedChannel::failure(const Call& call, const Error& why) {
  return std::visit(
      Overloaded{
          [&](const ScsiCommand&) -> Answer { return ScsiResult::failed(why.code, why.message); },
          [&](const AcquireSteps& steps) -> Answer {
            AcquireSteps failed = steps;
            failed.fail_rest(why);
            return failed;
          },
          [&](const ReleaseSteps& steps) -> Answer {
            ReleaseSteps failed = steps;
            failed.fail_rest(why);
            return failed;
          },
          [&](const auto&) -> Answer { return Result<Done>(why); },
      },
      call.request);
}

void WatchedChannel::drop_queued(std::optional<CallOwner> owner, const Error& why) {
  std::deque<Call> kept;
  std::vector<Call> dropped;
  for (auto& call : queued_) {
    const bool drop = call.owner != 0 && (!owner || call.owner == *owner);
    (drop ? dropped.emplace_back(std::move(call)) : kept.emplace_back(std::move(call)));
  }
  queued_ = std::move(kept);
  // N.B. answered after the queue is settled: a handler may queue again.
  for (auto& call : dropped) {
    if (call.returned)
      call.returned();
    // N.B. not counted: the drive never saw it.
    deliver(call.handler, failure(call, why));
  }
}

// ---- the drive's health -------------------------------------------------------

void WatchedChannel::note_command_result(std::uint8_t op, const ScsiResult& r) {
  if (!r.sent)
    return;  // N.B. like a command dropped from the queue: the drive never saw it
  ++stats_.commands;
  if (r.transport == errc::recorder_command_timeout) {
    ++stats_.timeouts;
    tell(ChannelNotice::Kind::command_timed_out,
         fmt::format("opcode 0x{:02X}: {}", op, r.transport_message));
    if (!error_) {
      error_ = fmt::format("opcode 0x{:02X} timed out: {}", op, r.transport_message);
      tell(ChannelNotice::Kind::error_entered, *error_);
    }
    return;
  }
  if (!r.answered()) {
    ++stats_.errors;
    if (r.transport == errc::dev_not_exist)
      tell(ChannelNotice::Kind::device_gone, r.transport_message);
    return;
  }
  if (op == opcode::test_unit_ready && error_) {
    // Any answer will do: an empty drive's NOT READY is a working drive.
    tell(ChannelNotice::Kind::error_left, *std::exchange(error_, std::nullopt));
  }
}

void WatchedChannel::tell(ChannelNotice::Kind kind, std::string detail) {
  if (notices_)
    notices_(ChannelNotice{kind, std::move(detail)});
}

}  // namespace discarbiter::core
