// The Linux endpoint: a Unix domain socket; callers identified by SO_PEERCRED
// and SO_PEERPIDFD.
#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <pwd.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <filesystem>
#include <optional>
#include <string_view>
#include <vector>

#include "discarbiter/posix/error.hpp"
#include "discarbiter/posix/unique_fd.hpp"
#include "discarbiter/posix/users.hpp"
#include "transport/identity_resolver.hpp"
#include "transport/listener.hpp"

// N.B. Linux 6.5 and later; Debian 12's headers (Linux 6.1) do not name it.
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

namespace discarbiter::transport {
namespace {

using posix::describe;
using posix::describe_uid;
using posix::unique_fd;

// N.B. system calls, not glibc 2.36's <sys/pidfd.h>, whose declarations lack
// extern "C" and so do not link from C++.
int pidfd_open(pid_t pid, unsigned int flags) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, flags));
}
int pidfd_send_signal(int pidfd, int sig) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

namespace asio = boost::asio;
using Socket = asio::local::stream_protocol::socket;

/// With max_pending_connections waiting to be identified, how long a new
/// connection waits for one of their look-ups to finish before it is refused.
constexpr auto kLookupPatience = std::chrono::milliseconds(500);

/// How long accepting waits after an accept failed (out of file descriptors:
/// every accept fails at once until one is freed) before it tries again.
constexpr auto kAcceptRetry = std::chrono::milliseconds(100);

/// How long after sessions close the memory they freed is returned to the
/// system (at most once per this period, never on a request's path).
constexpr auto kTrimDelay = std::chrono::seconds(1);

/// Whether the peer's primary or supplementary groups include `gid`.
bool peer_in_group(Socket& socket, gid_t primary, gid_t gid) {
  if (primary == gid)
    return true;
  std::array<gid_t, 256> groups{};
  socklen_t len = sizeof groups;
  if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) != 0) {
    spdlog::warn("{}", describe("SO_PEERGROUPS", posix::last_error()));
    return false;
  }
  const auto end = groups.begin() + len / sizeof(gid_t);
  return std::find(groups.begin(), end, gid) != end;
}

/// A pidfd for the process that connected (SO_PEERPIDFD, Linux 6.5), or, on
/// an older kernel, for whatever process has its pid now (pidfd_open, Linux
/// 5.3: a pid reused between connect and this call goes unnoticed). Empty
/// when the process is already gone or the kernel has neither (errno says
/// which: ENOSYS for the kernel).
unique_fd peer_pidfd(Socket& socket, pid_t pid) {
  int fd = -1;
  socklen_t len = sizeof fd;
  if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERPIDFD, &fd, &len) == 0)
    return unique_fd(fd);
  if (errno != ENOPROTOOPT)
    return {};  // N.B. EINVAL/ESRCH: the process that connected has exited
  return unique_fd(pidfd_open(pid, 0));
}

/// What the kernel says about the peer, read on the strand as the connection
/// is accepted: SO_PEERCRED, SO_PEERGROUPS and SO_PEERPIDFD (or pidfd_open)
/// ask the kernel about the socket and never wait, and the pidfd must be
/// taken now, while the pid still names the process that connected.
struct PeerCredentials {
  ucred cred{};
  bool administrator = false;
  unique_fd pidfd;
  /// Whether /proc/PID/exe may be read: with a pidfd to check afterwards
  /// that the process still lives, or unchecked on a kernel without pidfds.
  bool exe_readable = false;
};

/// An administrator is uid 0 or a member of the configured admin group. A
/// peer the kernel will not name is refused.
Result<PeerCredentials> peer_credentials(Socket& socket, std::optional<gid_t> admin_gid) {
  PeerCredentials c;
  socklen_t len = sizeof c.cred;
  if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &c.cred, &len) != 0)
    return Error{errc::access_denied, describe("SO_PEERCRED", posix::last_error())};
  c.administrator = c.cred.uid == 0 || (admin_gid && peer_in_group(socket, c.cred.gid, *admin_gid));
  if (c.cred.pid > 0) {  // N.B. 0: the peer is in another pid namespace
    c.pidfd = peer_pidfd(socket, c.cred.pid);
    c.exe_readable = c.pidfd || errno == ENOSYS;
  }
  return c;
}

/// The executable of the process that connected, read from /proc/PID/exe and
/// kept only if that process still lives afterwards: while it lives its pid
/// cannot name another process, so the link read was its own.
std::string peer_executable(const PeerCredentials& c, std::string& note) {
  if (!c.exe_readable)
    return {};
  std::array<char, 4096> link{};
  const auto path = fmt::format("/proc/{}/exe", c.cred.pid);
  const ssize_t n = ::readlink(path.c_str(), link.data(), link.size());
  if (n <= 0 || static_cast<std::size_t>(n) == link.size())
    return {};
  // N.B. signal 0 only checks: EPERM (another user's process) still means alive.
  if (c.pidfd && pidfd_send_signal(c.pidfd.get(), 0) != 0 && errno != EPERM) {
    note = fmt::format("pid {} exited while being identified; its executable is not recorded",
                       c.cred.pid);
    return {};
  }
  return std::string(link.data(), static_cast<std::size_t>(n));
}

/// Who the peer is: the user's name (`user`, when a recent look-up gave it,
/// else from getpwuid_r, which may wait on a remote user database: NSS,
/// LDAP, sssd) and the executable (/proc/PID/exe, which waits on nothing:
/// the kernel reads the process's exe_file under RCU, since Linux 4.2).
Identified identify(const PeerCredentials& c, const std::string* user = nullptr) {
  Identified out;
  core::PeerIdentity& peer = out.peer;
  peer.pid = static_cast<std::uint32_t>(c.cred.pid);
  peer.uid = c.cred.uid;
  peer.administrator = c.administrator;
  if (user) {
    peer.user = *user;
  } else {
    passwd pw{};
    passwd* found = nullptr;
    std::array<char, 1024> buf{};
    if (::getpwuid_r(c.cred.uid, &pw, buf.data(), buf.size(), &found) == 0 && found) {
      peer.user = found->pw_name;
      out.user_found = true;
    } else {
      peer.user = std::to_string(c.cred.uid);
    }
  }
  peer.exe = peer_executable(c, out.note);
  return out;
}

/// Has Asio's reactor make `count` descriptor states now, while the heap is
/// small, so that the sockets of sessions find them ready together.
///
/// N.B. the epoll reactor keeps each registered descriptor's state (168
/// bytes) in a pool it never frees. Made one by one as connections come,
/// each sits between the allocations of its own session, and when the
/// sessions close those states (free in the pool, but not in the heap) keep
/// nearly every page the sessions used: malloc_trim returned a fifth of a
/// burst of 1,000 sessions. Best effort: eventfds the file limit refuses
/// are simply fewer states reserved.
void reserve_descriptor_states(asio::io_context& io, std::size_t count) {
  std::vector<asio::posix::stream_descriptor> held;
  held.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    unique_fd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!fd)
      break;
    asio::posix::stream_descriptor descriptor(io);
    boost::system::error_code ec;
    descriptor.assign(fd.get(), ec);
    if (ec)
      break;
    (void)fd.release();  // N.B. the descriptor owns it now
    held.push_back(std::move(descriptor));
  }
}  // N.B. closed here: their states return to the reactor's pool

/// `key` names the configuration key, for the error.
Result<gid_t> group_id(const std::string& name, std::string_view key) {
  group gr{};
  group* found = nullptr;
  std::array<char, 4096> buf{};
  const int rc = ::getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &found);
  if (rc != 0 || !found) {
    return Error{errc::invalid_arg,
                 fmt::format("{} '{}' is not a group on this system", key, name)};
  }
  return found->gr_gid;
}

/// Creates the missing directories of `dir` (mode 0755 less the umask), as
/// `mkdir -p` does.
Result<Done> create_missing_directories(const std::filesystem::path& dir) {
  std::filesystem::path prefix;
  for (const auto& part : dir) {
    prefix /= part;
    if (::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
      const auto error = posix::last_error();
      return Error{errc::fail,
                   describe(fmt::format("create directory {}", prefix.string()), error)};
    }
  }
  return Done{};
}

/// The endpoint's directory, opened without following a symlink, created
/// when missing, and refused unless it is owned by root or by this service's
/// user and nobody else may write to it: whoever may write there could
/// replace the socket (clients would talk to an impostor) or plant a symlink
/// where the service sets the socket's mode and group.
Result<unique_fd> open_endpoint_directory(const std::filesystem::path& dir) {
  if (::access(dir.c_str(), F_OK) != 0 && errno == ENOENT) {
    if (auto created = create_missing_directories(dir); !created)
      return created.error();
  }
  unique_fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    const auto error = posix::last_error();
    return Error{errc::fail,
                 error.value() == ELOOP || error.value() == ENOTDIR
                     ? fmt::format("endpoint directory {} is a symbolic link or not "
                                   "a directory; refusing it",
                                   dir.string())
                     : describe(fmt::format("open endpoint directory {}", dir.string()), error)};
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    const auto error = posix::last_error();
    return Error{errc::fail, describe(fmt::format("stat {}", dir.string()), error)};
  }
  if (st.st_uid != 0 && st.st_uid != ::geteuid()) {
    return Error{errc::access_denied,
                 fmt::format("endpoint directory {} is owned by {}, not by root or by this "
                             "service's user ({}); refusing it: its owner could replace the "
                             "socket. Use a directory of the service's own, such as "
                             "/run/discarbiter",
                             dir.string(), describe_uid(st.st_uid), describe_uid(::geteuid()))};
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return Error{errc::access_denied,
                 fmt::format("endpoint directory {} is writable by {} (mode {:04o}); refusing it: "
                             "they could replace the socket. Make it 0755, or use a directory of "
                             "the service's own, such as /run/discarbiter",
                             dir.string(), (st.st_mode & S_IWOTH) ? "every user" : "its group",
                             st.st_mode & 07777)};
  }
  return fd;
}

/// The path that names `name` inside the directory open as `dirfd`, for
/// bind(): through /proc, so the socket is created in the very directory that
/// was checked even if a parent directory is renamed meanwhile; the plain
/// path where /proc is not mounted or the name would not fit.
std::string path_in(int dirfd, const std::string& name, const std::string& plain) {
  const auto via_proc = fmt::format("/proc/self/fd/{}/{}", dirfd, name);
  if (via_proc.size() < sizeof(sockaddr_un::sun_path) && ::access("/proc/self/fd", F_OK) == 0)
    return via_proc;
  return plain;
}

class SocketListener final : public Listener {
 public:
  SocketListener(asio::io_context& io, ServiceContext& context, ListenerOptions options)
      : io_(io),
        context_(context),
        options_(std::move(options)),
        acceptor_(io),
        sessions_(options_.max_sessions, options_.max_sessions_per_user,
                  options_.admin_reserved_sessions),
        identities_(io.get_executor(), options_.max_pending_connections),
        patience_(io),
        accept_retry_(io),
        trim_(io) {
    sessions_.on_removed([this] { return_freed_memory(); });
  }

  Result<Done> open() override {
    namespace fs = std::filesystem;
    if (!options_.admin_group.empty()) {
      auto gid = group_id(options_.admin_group, "admin_group");
      if (!gid)
        return gid.error();
      admin_gid_ = *gid;
    }
    std::optional<gid_t> socket_gid;
    if (!options_.socket_group.empty()) {
      auto gid = group_id(options_.socket_group, "socket_group");
      if (!gid)
        return gid.error();
      socket_gid = *gid;
    }
    const fs::path path(options_.endpoint);
    name_ = path.filename().string();
    if (name_.empty() || name_ == "." || name_ == "..")
      return Error{errc::invalid_arg,
                   fmt::format("endpoint {} names no socket file", path.string())};
    auto dir = open_endpoint_directory(path.has_parent_path() ? path.parent_path() : fs::path("."));
    if (!dir)
      return dir.error();
    directory_ = std::move(*dir);

    struct stat st {};
    if (::fstatat(directory_.get(), name_.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
      if (!S_ISSOCK(st.st_mode)) {
        return Error{errc::fail,
                     fmt::format("{} exists and is not a socket{}; refusing to replace "
                                 "it",
                                 path.string(), S_ISLNK(st.st_mode) ? " (a symbolic link)" : "")};
      }
      // A socket file left by a previous run; if something answers on it,
      // another service owns it and we must not steal the endpoint.
      Socket probe(io_);
      boost::system::error_code connect_ec;
      probe.connect(asio::local::stream_protocol::endpoint(path.string()), connect_ec);
      if (!connect_ec) {
        return Error{errc::fail,
                     fmt::format("another service is already listening on {}", path.string())};
      }
      if (::unlinkat(directory_.get(), name_.c_str(), 0) != 0 && errno != ENOENT) {
        const auto error = posix::last_error();
        return Error{errc::fail,
                     describe(fmt::format("remove the stale socket {}", path.string()), error)};
      }
    }
    boost::system::error_code bec;
    const asio::local::stream_protocol::endpoint endpoint(
        path_in(directory_.get(), name_, path.string()));
    acceptor_.open(endpoint.protocol(), bec);
    if (!bec)
      acceptor_.bind(endpoint, bec);
    if (bec) {
      return Error{errc::fail, fmt::format("bind {}: {}", path.string(), bec.message())};
    }
    // N.B. by name in the checked directory, never following a symlink: the
    // node must be the socket this service just made.
    if (::fstatat(directory_.get(), name_.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISSOCK(st.st_mode) || st.st_uid != ::geteuid()) {
      return Error{errc::fail, fmt::format("{} is not the socket just bound (replaced?); refusing "
                                           "to set its mode",
                                           path.string())};
    }
    // N.B. group before mode: the socket is never open to a group it was not meant for.
    if (socket_gid && ::fchownat(directory_.get(), name_.c_str(), static_cast<uid_t>(-1),
                                 *socket_gid, AT_SYMLINK_NOFOLLOW) != 0) {
      const auto error = posix::last_error();
      return Error{
          errc::fail,
          describe(fmt::format("chgrp {} {}", options_.socket_group, path.string()), error)};
    }
    if (::fchmodat(directory_.get(), name_.c_str(), static_cast<mode_t>(options_.socket_mode),
                   AT_SYMLINK_NOFOLLOW) != 0) {
      const auto error = posix::last_error();
      return Error{
          errc::fail,
          describe(fmt::format("chmod {:o} {}", options_.socket_mode, path.string()), error)};
    }
    acceptor_.listen(asio::socket_base::max_listen_connections, bec);
    if (bec) {
      return Error{errc::fail, fmt::format("listen {}: {}", path.string(), bec.message())};
    }
    return Done{};
  }

  void start() override {
    reserve_descriptor_states(io_, std::size_t{options_.max_sessions} +
                                       options_.max_pending_connections + kMaxRefusalsInFlight);
    accept();
  }

  void stop() override {
    stopped_ = true;
    patience_.cancel();
    accept_retry_.cancel();
    trim_.cancel();
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    if (directory_ && !name_.empty())
      ::unlinkat(directory_.get(), name_.c_str(), 0);
    identities_.stop();  // N.B. never waits for a look-up that is stuck
    refusals_.stop();
    sessions_.close_all("service stopping");
  }

  std::size_t session_count() const override { return sessions_.size(); }

 private:
  /// Accepts the next connection, unless max_pending_connections wait to be
  /// identified. While the look-ups keep finishing, the next connection
  /// waits in the socket's backlog, as every one did when the look-ups ran
  /// on the strand: a burst of clients is served, not refused. Only once
  /// none has finished for kLookupPatience (a user database that does not
  /// answer) are connections accepted again, and refused while it lasts.
  void accept() {
    if (stopped_)
      return;
    if (identities_.full() && !lookups_stuck_) {
      paused_ = true;
      patience_.expires_after(kLookupPatience);
      patience_.async_wait([this](boost::system::error_code ec) {
        // N.B. a wait that had already expired when a look-up finished.
        if (ec || !paused_ || std::chrono::steady_clock::now() < patience_.expiry())
          return;
        paused_ = false;
        lookups_stuck_ = true;
        accept();
      });
      return;
    }
    acceptor_.async_accept([this](boost::system::error_code ec, Socket socket) {
      if (ec == asio::error::operation_aborted)
        return;
      if (ec) {
        // N.B. a failure that lasts (EMFILE, ENFILE) fails every accept at
        // once: trying again at once spins the io thread and floods the log.
        // Once per episode, then again after kAcceptRetry; the connections
        // wait in the listen backlog meanwhile.
        if (!std::exchange(accept_failing_, true)) {
          spdlog::error("accept on {}: {} (trying again every {} ms)", options_.endpoint,
                        ec.message(), kAcceptRetry.count());
        }
        accept_retry_.expires_after(kAcceptRetry);
        accept_retry_.async_wait([this](boost::system::error_code wait_ec) {
          if (!wait_ec)
            accept();
        });
        return;
      }
      if (std::exchange(accept_failing_, false))
        spdlog::info("accepting on {} again", options_.endpoint);
      identify_then_admit(std::move(socket));
      accept();
    });
  }

  /// Reads what the kernel says about the peer now, looks up the rest off
  /// the strand, then admits it back on the strand. At most
  /// max_pending_connections wait so: until it is identified a connection
  /// is nobody's, so no per-user limit can hold it.
  void identify_then_admit(Socket socket) {
    if (identities_.full()) {
      const Error full{errc::limit_reached,
                       fmt::format("{} connections are already waiting to be identified "
                                   "(limits.max_pending_connections)",
                                   identities_.pending())};
      // N.B. once per episode: a flood must not flood the log as well.
      if (!pending_full_)
        spdlog::warn("refusing connections on {}: {}", options_.endpoint, full.message);
      pending_full_ = true;
      refusals_.refuse(std::move(socket), full);
      return;
    }
    pending_full_ = false;
    auto credentials = peer_credentials(socket, admin_gid_);
    if (!credentials) {
      spdlog::warn("refusing connection on {}: {}", options_.endpoint, credentials.error().message);
      refusals_.refuse(std::move(socket), credentials.error());
      return;
    }
    if (const std::string* user = user_names_.find(credentials->cred.uid)) {
      // N.B. on the strand: nothing left to look up waits.
      admit(std::move(socket), identify(*credentials, user));
      return;
    }
    // N.B. shared: std::function copies, and a socket and a pidfd do not.
    auto lookup = [c = std::make_shared<PeerCredentials>(std::move(*credentials))] {
      return identify(*c);
    };
    auto on_identified =
        [this, connection = std::make_shared<Socket>(std::move(socket))](Identified identified) {
          if (identified.user_found && identified.peer.uid)
            user_names_.remember(*identified.peer.uid, identified.peer.user);
          admit(std::move(*connection), std::move(identified));
          on_lookup_finished();
        };
    identities_.submit(std::move(lookup), std::move(on_identified));
  }

  void admit(Socket socket, Identified identified) {
    if (!identified.note.empty())
      spdlog::debug("{}", identified.note);
    admit_connection(sessions_, refusals_, std::move(socket), context_, std::move(identified.peer),
                     options_.session);
  }

  /// glibc keeps what is freed for the process's later use: once sessions
  /// have closed, hand the free pages back, so that the memory a burst of
  /// sessions took is returned. Once per kTrimDelay at most, from a timer.
  void return_freed_memory() {
    if (stopped_ || trim_pending_)
      return;
    trim_pending_ = true;
    trim_.expires_after(kTrimDelay);
    trim_.async_wait([this](boost::system::error_code ec) {
      trim_pending_ = false;
      if (!ec)
        ::malloc_trim(0);
    });
  }

  /// A slot is free: accept again if accepting was paused for one.
  void on_lookup_finished() {
    lookups_stuck_ = false;
    if (!paused_)
      return;
    paused_ = false;
    patience_.cancel();
    accept();
  }

  asio::io_context& io_;
  ServiceContext& context_;
  ListenerOptions options_;
  asio::local::stream_protocol::acceptor acceptor_;
  SessionRegistry sessions_;
  Refusals refusals_;
  // N.B. after what its look-ups' completions use, so destroyed (stopped) first.
  IdentityResolver identities_;
  bool pending_full_ = false;        // max_pending_connections reached; logged once
  asio::steady_timer patience_;      // how long accepting waits for a free slot
  bool paused_ = false;              // accepting waits for a look-up to finish
  bool lookups_stuck_ = false;       // none finished within kLookupPatience
  asio::steady_timer accept_retry_;  // after an accept failed
  bool accept_failing_ = false;      // logged once per episode
  RecentUserNames<uid_t> user_names_;
  asio::steady_timer trim_;  // returns freed memory after sessions close
  bool trim_pending_ = false;
  bool stopped_ = false;
  std::optional<gid_t> admin_gid_;
  unique_fd directory_;  // the endpoint's directory, checked at open()
  std::string name_;     // the socket's name in it
};

}  // namespace

std::unique_ptr<Listener> make_listener(asio::io_context& io, ServiceContext& context,
                                        ListenerOptions options) {
  return std::make_unique<SocketListener>(io, context, std::move(options));
}

std::string default_endpoint() {
  return "/run/discarbiter/discarbiter.sock";
}

}  // namespace discarbiter::transport
