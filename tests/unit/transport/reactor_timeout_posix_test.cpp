#include "transport/reactor_timeout.hpp"

#include <dirent.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <string>

// The reactor's wake-up once a timer is cancelled, read from the kernel: the
// timerfd Asio's epoll reactor sleeps on, as /proc/self/fdinfo shows it
// (it_value: the time left until it fires). Nothing here waits for a time.
namespace discarbiter::transport {
namespace {

using namespace std::chrono_literals;

/// The process's timerfds and the seconds left until each fires (0: disarmed).
std::map<int, double> timerfds() {
  std::map<int, double> out;
  DIR* dir = ::opendir("/proc/self/fd");
  if (!dir)
    return out;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string name = entry->d_name;
    if (name == "." || name == "..")
      continue;
    std::array<char, 64> link{};
    const auto path = "/proc/self/fd/" + name;
    const ssize_t n = ::readlink(path.c_str(), link.data(), link.size() - 1);
    if (n <= 0 || std::string(link.data(), static_cast<std::size_t>(n)) != "anon_inode:[timerfd]")
      continue;
    std::ifstream info("/proc/self/fdinfo/" + name);
    std::string line;
    while (std::getline(info, line)) {
      long long sec = 0;
      long long nsec = 0;
      if (std::sscanf(line.c_str(), "it_value: (%lld, %lld)", &sec, &nsec) == 2)
        out[std::stoi(name)] = static_cast<double>(sec) + static_cast<double>(nsec) / 1e9;
    }
  }
  ::closedir(dir);
  return out;
}

/// The timerfd that appeared since `before`, or -1.
int new_timerfd(const std::map<int, double>& before) {
  for (const auto& [fd, left] : timerfds()) {
    if (!before.contains(fd))
      return fd;
  }
  return -1;
}

// A session's handshake deadline is cancelled once hello succeeds; the idle
// check (or nothing) is what the service must wake for next. Without
// rearm_reactor_timeout the timerfd stays at the cancelled deadline.
TEST(ReactorTimeout, ACancelledDeadlineNoLongerWakesTheReactor) {
  const auto before = timerfds();
  boost::asio::io_context io;
  boost::asio::steady_timer deadline(io);
  boost::asio::steady_timer idle_check(io);
  const int fd = new_timerfd(before);
  if (fd < 0)
    GTEST_SKIP() << "this reactor uses no timerfd (not Linux's epoll reactor)";

  idle_check.expires_after(600s);
  idle_check.async_wait([](const boost::system::error_code&) {});
  deadline.expires_after(20s);
  deadline.async_wait([](const boost::system::error_code&) {});
  ASSERT_LE(timerfds().at(fd), 20.0) << "the reactor wakes at the earliest timer";

  deadline.cancel();
  rearm_reactor_timeout(io.get_executor());
  // N.B. Asio caps a reactor's sleep at 5 minutes: the idle check at 600 s
  // is armed as 300 s.
  EXPECT_GT(timerfds().at(fd), 60.0) << "still armed at the cancelled deadline";

  idle_check.cancel();
  rearm_reactor_timeout(io.get_executor());
  EXPECT_GT(timerfds().at(fd), 60.0) << "no timer left: the reactor's longest sleep";
  io.run();  // the cancelled waits complete
}

}  // namespace
}  // namespace discarbiter::transport
