#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>

#include <fmt/format.h>

#include "connection.hpp"
#include "discarbiter/client.hpp"
#include "discarbiter/posix/error.hpp"
#include "discarbiter/posix/unique_fd.hpp"
#include "discarbiter/posix/users.hpp"

namespace discarbiter {
namespace {

using posix::describe;
using posix::describe_uid;
using posix::last_error;
using posix::unique_fd;

int milliseconds_until(Connection::Deadline deadline) {
  const auto left =
      std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return static_cast<int>(std::clamp<std::int64_t>(left.count(), 0, 1'000'000'000));
}

class SocketConnection final : public Connection {
 public:
  explicit SocketConnection(unique_fd fd) : fd_(std::move(fd)) {}

  void write_all(Buffers buffers, Deadline deadline) override {
    // N.B. one sendmsg gathers the frame's head and the caller's data: no
    // copy into a frame buffer.
    std::array<iovec, 4> iov{};
    std::size_t count = 0;
    for (const auto& b : buffers) {
      if (count == iov.size())
        lost("write: too many buffers");
      if (!b.empty())
        iov[count++] = iovec{const_cast<std::uint8_t*>(b.data()), b.size()};
    }
    std::span<iovec> left(iov.data(), count);
    while (!left.empty()) {
      msghdr msg{};
      msg.msg_iov = left.data();
      msg.msg_iovlen = left.size();
      // N.B. tried first, without waiting; poll only when the socket is full.
      const ssize_t n = ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0) {
        const auto error = last_error();
        if (!retry_later(error))
          lost(describe("write", error));
        if (!wait_for(POLLOUT, deadline))
          lost("write: timed out");
        continue;
      }
      advance(left, static_cast<std::size_t>(n));
    }
  }

  void shutdown() noexcept override {
    // N.B. wakes a thread blocked in poll on this socket (POLLHUP); the
    // descriptor stays open until the destructor, so it cannot be reused
    // under that thread.
    ::shutdown(fd_.get(), SHUT_RDWR);
  }

  bool wait_readable(Deadline deadline) override { return wait_for(POLLIN, deadline); }

  std::size_t read_some(std::span<std::uint8_t> buffer, Deadline deadline) override {
    for (;;) {
      // N.B. tried first, without waiting: a reply's next part is usually
      // there already, and poll only when it is not saves a call per read.
      const ssize_t n = ::recv(fd_.get(), buffer.data(), buffer.size(), MSG_DONTWAIT);
      if (n > 0)
        return static_cast<std::size_t>(n);
      if (n == 0)
        lost("the service closed the connection");
      if (const auto error = last_error(); !retry_later(error))
        lost(describe("read", error));
      if (!wait_for(POLLIN, deadline))
        return 0;
    }
  }

 private:
  bool wait_for(short events, Deadline deadline) {
    for (;;) {
      pollfd p{fd_.get(), events, 0};
      const int r = ::poll(&p, 1, milliseconds_until(deadline));
      if (r > 0)
        return true;
      if (r == 0)
        return false;
      if (const auto error = last_error(); error != std::errc::interrupted)
        lost(describe("poll", error));
    }
  }
  /// Interrupted by a signal, or the non-blocking socket is not ready yet.
  static bool retry_later(std::error_code error) {
    return error == std::errc::interrupted || error == std::errc::resource_unavailable_try_again;
  }
  [[noreturn]] static void lost(const std::string& what) {
    throw ServiceError(Error{errc::connection_lost, what});
  }

  /// Drops `n` written bytes from the front of `iov`.
  static void advance(std::span<iovec>& iov, std::size_t n) {
    while (!iov.empty() && n >= iov.front().iov_len) {
      n -= iov.front().iov_len;
      iov = iov.subspan(1);
    }
    if (!iov.empty()) {
      iov.front().iov_base = static_cast<std::uint8_t*>(iov.front().iov_base) + n;
      iov.front().iov_len -= n;
    }
  }

  unique_fd fd_;
};

/// Refuses a server that is neither root nor this process's own user: anyone
/// else serving the endpoint (a socket planted while the service was down, a
/// directory another user can write) must not learn what this client sends
/// nor answer for the service. The kernel records the server's credentials
/// when it calls listen(), so they cannot be faked.
void check_server_is_trusted(int fd, const std::string& endpoint) {
  ucred server{};
  socklen_t len = sizeof server;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &server, &len) != 0) {
    throw ServiceError(
        Error{errc::access_denied, fmt::format("cannot tell who serves {} ({}); not talking to it",
                                               endpoint, describe("SO_PEERCRED", last_error()))});
  }
  const uid_t me = ::geteuid();
  if (server.uid == 0 || server.uid == me)
    return;
  throw ServiceError(
      Error{errc::access_denied,
            fmt::format("{} is served by {}, pid {}, which is neither root nor this user ({}); not "
                        "talking to it: it may be impersonating the service",
                        endpoint, describe_uid(server.uid), server.pid, describe_uid(me))});
}

}  // namespace

std::unique_ptr<Connection> connect_to_service(const std::string& endpoint, Connection::Deadline) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (endpoint.size() >= sizeof addr.sun_path) {
    throw ServiceError(
        Error{errc::invalid_arg, fmt::format("endpoint path too long: {}", endpoint)});
  }
  std::memcpy(addr.sun_path, endpoint.c_str(), endpoint.size() + 1);
  unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    throw ServiceError(Error{errc::fail, describe("socket", last_error())});
  }
  // N.B. a local connect does not block for long: it succeeds, or fails at
  // once when nothing listens (ECONNREFUSED/ENOENT).
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    const auto error = last_error();
    const std::string failed = describe(fmt::format("cannot connect to {}", endpoint), error);
    if (error == std::errc::permission_denied) {
      throw ServiceError(
          Error{errc::access_denied,
                failed + "; the service lets in root and the members of its socket_group"});
    }
    throw ServiceError(Error{errc::service_unavailable, failed + "; is discarbiterd running?"});
  }
  check_server_is_trusted(fd.get(), endpoint);
  return std::make_unique<SocketConnection>(std::move(fd));
}

std::string platform_default_endpoint() {
  return "/run/discarbiter/discarbiter.sock";
}

}  // namespace discarbiter
