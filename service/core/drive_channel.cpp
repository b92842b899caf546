#include "core/drive_channel.hpp"

#include <utility>

#include "core/overloaded.hpp"

namespace discarbiter::core {

// ---- the steps' rules ------------------------------------------------------------

void DriveSteps::fail_rest(const Error& why) {
  answer_rest(why, &ScsiResult::failed);
}

void DriveSteps::take_back(const Error& why) {
  answer_rest(why, &ScsiResult::not_sent);
}

void DriveSteps::answer_rest(const Error& why, ScsiResult (*command_answer)(errc, std::string)) {
  while (const auto call = next()) {
    if (std::holds_alternative<const ScsiCommand*>(*call))
      record(command_answer(why.code, why.message));
    else
      record(Result<Done>(why));
  }
}

std::optional<DriveSteps::Call> AcquireSteps::next() const {
  if (!tur_answer)
    return &test_unit_ready;
  // N.B. any SCSI answer will do (an empty drive says NOT READY and may
  // still be locked); no answer ends the acquire.
  if (!tur_answer->answered())
    return std::nullopt;
  const bool gone = fate->abandoned();
  if (!os_locked)
    return gone ? std::nullopt : std::optional<Call>(OsLockCall{&client_name, force});
  if (!*os_locked || rolled_back)
    return std::nullopt;
  if (prevent && !prevented && !gone)
    return &*prevent;
  const bool prevent_failed = prevented && !prevented->good();
  // N.B. the last word: kept, unless abandoned first (AcquireFate), so a
  // lock the caller gave up on is never left held behind its back.
  if (!prevent_failed && !gone && fate->keep())
    return std::nullopt;
  // The OS lock is taken: undone when nobody will hold it, an abandoned
  // acquire's good PREVENT first.
  if (!prevent_failed && prevented && !allowed_back)
    return &allow;
  return OsUnlockCall{};
}

void AcquireSteps::record(Answer answer) {
  if (auto* r = std::get_if<ScsiResult>(&answer)) {
    // N.B. by what ran, not by the fate, which may change meanwhile.
    auto& slot = !tur_answer ? tur_answer : (prevent && !prevented) ? prevented : allowed_back;
    slot = std::move(*r);
  } else {
    (os_locked ? rolled_back : os_locked) = std::get<Result<Done>>(std::move(answer));
  }
}

void AcquireSteps::each_command(const CommandVisitor& fn) const {
  if (tur_answer)
    fn(test_unit_ready, *tur_answer);
  if (prevent && prevented)
    fn(*prevent, *prevented);
  if (allowed_back)
    fn(allow, *allowed_back);
}

std::chrono::seconds AcquireSteps::limit(std::chrono::seconds os_call) const {
  // TUR, the OS lock, PREVENT and the ALLOW that may undo it, and the OS
  // unlock that may roll the lock back.
  const std::chrono::seconds commands =
      test_unit_ready.timeout +
      (prevent ? prevent->timeout + allow.timeout : std::chrono::seconds{0});
  return commands + 2 * os_call;
}

std::optional<DriveSteps::Call> ReleaseSteps::next() const {
  if (allowed.size() < allows.size())
    return &allows[allowed.size()];
  if (os_unlock && !unlocked)
    return OsUnlockCall{};
  // N.B. an acquire abandoned before its first step is skipped whole (the
  // waiter left, or the watchdog answered); once begun, it ends by its rules.
  if (then && (then->tur_answer || !then->fate->abandoned()))
    return then->next();
  return std::nullopt;
}

void ReleaseSteps::record(Answer answer) {
  if (!releasing()) {
    then->record(std::move(answer));
  } else if (auto* r = std::get_if<ScsiResult>(&answer)) {
    allowed.push_back(std::move(*r));
  } else {
    unlocked = std::get<Result<Done>>(std::move(answer));
  }
}

void ReleaseSteps::each_command(const CommandVisitor& fn) const {
  for (std::size_t i = 0; i < allowed.size(); ++i)
    fn(allows[i], allowed[i]);
  if (then)
    then->each_command(fn);
}

std::chrono::seconds ReleaseSteps::limit(std::chrono::seconds os_call) const {
  std::chrono::seconds sum = os_unlock ? os_call : std::chrono::seconds{0};
  for (const auto& allow : allows)
    sum += allow.timeout;
  if (then)
    sum += then->limit(os_call);
  return sum;
}

// ---- the default: one call per step ------------------------------------------

void DriveChannel::async_acquire_steps(AcquireSteps steps, AcquireHandler handler) {
  auto shared = std::make_shared<AcquireSteps>(std::move(steps));
  chain_steps(shared, [shared, handler = std::move(handler)] { handler(std::move(*shared)); });
}

void DriveChannel::async_release_steps(ReleaseSteps steps, ReleaseHandler handler) {
  auto shared = std::make_shared<ReleaseSteps>(std::move(steps));
  chain_steps(shared, [shared, handler = std::move(handler)] { handler(std::move(*shared)); });
}

void DriveChannel::chain_steps(std::shared_ptr<DriveSteps> steps, std::function<void()> done) {
  const auto call = steps->next();
  if (!call) {
    // N.B. only ever after a step has answered (every sequence has a first
    // step), so the call still never completes inside itself.
    done();
    return;
  }
  auto on_answer = [this, steps, done](auto answer) mutable {
    steps->record(std::move(answer));
    chain_steps(std::move(steps), std::move(done));
  };
  std::visit(Overloaded{
                 [&](const ScsiCommand* command) { async_execute(*command, on_answer); },
                 [&](const DriveSteps::OsLockCall& lock) {
                   async_os_lock(*lock.client_name, lock.force, on_answer);
                 },
                 [&](DriveSteps::OsUnlockCall) { async_os_unlock(on_answer); },
             },
             *call);
}

}  // namespace discarbiter::core
