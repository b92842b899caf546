#include "transport/asio_scheduler.hpp"

namespace discarbiter::transport {

core::Scheduler::TimerId AsioScheduler::schedule_at(Clock::time_point deadline,
                                                    std::function<void()> fn) {
  const TimerId id = next_++;
  auto timer = std::make_shared<boost::asio::steady_timer>(io_, deadline);
  timers_.emplace(id, timer);
  // N.B. the handler holds the timer so cancel() may drop the map's copy.
  timer->async_wait([this, id, timer, fn = std::move(fn)](boost::system::error_code ec) {
    // N.B. the map decides, not ec: a timer that expired has its completion
    // queued with success, and cancel() can no longer abort it; cancel()
    // erases the id, so a cancelled timer's fn never runs.
    if (ec || timers_.erase(id) == 0)
      return;  // cancelled
    fn();
  });
  return id;
}

void AsioScheduler::cancel(TimerId id) {
  const auto it = timers_.find(id);
  if (it == timers_.end())
    return;
  it->second->cancel();
  timers_.erase(it);
}

}  // namespace discarbiter::transport
