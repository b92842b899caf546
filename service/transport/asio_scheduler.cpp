#include "transport/asio_scheduler.hpp"

namespace discarbiter::transport {

core::Scheduler::TimerId AsioScheduler::schedule_at(Clock::time_point deadline,
                                                    std::function<void()> fn) {
  const TimerId id = next_++;
  due_.emplace(Key{deadline, id}, std::move(fn));
  deadlines_.emplace(id, deadline);
  if (!armed_for_ || deadline < *armed_for_)
    arm(deadline);
  return id;
}

void AsioScheduler::cancel(TimerId id) {
  // N.B. the timer stays armed: a later deadline would re-arm it, and an
  // expiry that finds nothing due re-arms for what is left.
  const auto it = deadlines_.find(id);
  if (it == deadlines_.end())
    return;  // ran, or cancelled already
  due_.erase(Key{it->second, id});
  deadlines_.erase(it);
}

void AsioScheduler::arm(Clock::time_point deadline) {
  ++arms_;
  armed_for_ = deadline;
  const std::uint64_t generation = ++generation_;
  timer_.expires_at(deadline);  // N.B. cancels the wait in progress, if any
  timer_.async_wait([this, generation](boost::system::error_code ec) {
    // N.B. an aborted wait (re-armed, or the scheduler destroyed) touches
    // nothing; an expiry whose completion was queued before a re-arm could
    // abort it finds a newer generation and leaves the newer wait alone.
    if (ec || generation != generation_)
      return;
    armed_for_.reset();
    on_expiry();
  });
}

void AsioScheduler::on_expiry() {
  const auto now = Clock::now();
  // N.B. only timers made before this expiry run now: one that a fn makes
  // with a deadline already passed waits for the next turn of the reactor,
  // so no chain of them can hold the io thread.
  const TimerId made_before = next_;
  for (auto it = due_.begin(); it != due_.end() && it->first.first <= now;) {
    if (it->first.second >= made_before) {
      ++it;
      continue;
    }
    auto fn = std::move(it->second);
    deadlines_.erase(it->first.second);
    due_.erase(it);
    fn();  // N.B. may schedule and cancel: iterators are taken anew
    it = due_.begin();
  }
  // N.B. a fn may have armed the timer for a deadline of its own, later than
  // one left from before.
  if (!due_.empty() && (!armed_for_ || due_.begin()->first.first < *armed_for_))
    arm(due_.begin()->first.first);
}

}  // namespace discarbiter::transport
