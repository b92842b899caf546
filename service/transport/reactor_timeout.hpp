// Re-arming the reactor's wake-up after a timer is cancelled.
#pragma once

#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/wait_traits.hpp>
#include <chrono>

namespace discarbiter::transport {

/// Asio's epoll reactor (Boost 1.74 on Linux) sleeps on one timerfd armed at
/// its earliest timer, and re-arms it only when a timer becomes the earliest
/// of its queue or one expires: cancelling a timer leaves the timerfd at the
/// cancelled expiry, and the io thread wakes then for nothing (the handshake
/// deadline of a session that said hello: one wake-up after every burst of
/// sessions). (BOOST_ASIO_DISABLE_TIMERFD does not exist in 1.74: the
/// timerfd is always used on Linux.)
///
/// A timer on a queue of its own (its own wait traits), always empty, is the
/// earliest of that queue as soon as it is scheduled, which makes the
/// reactor compute its wake-up again from every queue; it is cancelled at
/// once, so the wake-up stays at the earliest timer still pending. One
/// timerfd_settime. On other reactors (IOCP, kqueue, or epoll without a
/// timerfd) the next wait is computed from the queues anyway, and this only
/// costs a posted completion.
template <typename Executor>
void rearm_reactor_timeout(const Executor& executor) {
  struct OwnQueue : boost::asio::wait_traits<std::chrono::steady_clock> {};
  boost::asio::basic_waitable_timer<std::chrono::steady_clock, OwnQueue, Executor> nudge(executor);
  // N.B. later than any real deadline, so that it is never the earliest
  // overall (and the reactor caps its wait at 5 minutes in any case).
  nudge.expires_after(std::chrono::hours(1));
  nudge.async_wait([](const boost::system::error_code&) {});
  nudge.cancel();
}

}  // namespace discarbiter::transport
