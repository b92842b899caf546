// The Linux endpoint: a Unix domain socket; callers identified by SO_PEERCRED.
#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/local/stream_protocol.hpp>
#include <filesystem>
#include <optional>
#include <string_view>

#include "listener.hpp"

namespace discarbiter::transport {
namespace {

namespace asio = boost::asio;
using Socket = asio::local::stream_protocol::socket;

/// Whether the peer's primary or supplementary groups include `gid`.
bool peer_in_group(Socket& socket, gid_t primary, gid_t gid) {
  if (primary == gid)
    return true;
  std::array<gid_t, 256> groups{};
  socklen_t len = sizeof groups;
  if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) != 0) {
    spdlog::warn("SO_PEERGROUPS failed: {}",
                 std::error_code(errno, std::system_category()).message());
    return false;
  }
  const auto end = groups.begin() + len / sizeof(gid_t);
  return std::find(groups.begin(), end, gid) != end;
}

/// Who the peer is, from SO_PEERCRED; an administrator is uid 0 or a member
/// of the configured admin group. A peer the kernel will not name is refused.
Result<core::PeerIdentity> peer_identity(Socket& socket, std::optional<gid_t> admin_gid) {
  core::PeerIdentity peer;
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return Error{errc::access_denied,
                 fmt::format("SO_PEERCRED failed: {}",
                             std::error_code(errno, std::system_category()).message())};
  }
  peer.pid = static_cast<std::uint32_t>(cred.pid);
  peer.uid = cred.uid;
  peer.administrator = cred.uid == 0 || (admin_gid && peer_in_group(socket, cred.gid, *admin_gid));
  passwd pw{};
  passwd* found = nullptr;
  std::array<char, 1024> buf{};
  if (::getpwuid_r(cred.uid, &pw, buf.data(), buf.size(), &found) == 0 && found) {
    peer.user = found->pw_name;
  } else {
    peer.user = std::to_string(cred.uid);
  }
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink(fmt::format("/proc/{}/exe", cred.pid), ec);
  if (!ec)
    peer.exe = exe.string();
  return peer;
}

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

class SocketListener final : public Listener {
 public:
  SocketListener(asio::io_context& io, ServiceContext& context, ListenerOptions options)
      : io_(io),
        context_(context),
        options_(std::move(options)),
        acceptor_(io),
        sessions_(options_.max_sessions, options_.max_sessions_per_user) {}

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
    std::error_code ec;
    if (path.has_parent_path()) {
      fs::create_directories(path.parent_path(), ec);
      if (ec) {
        return Error{errc::fail, fmt::format("create directory {}: {}", path.parent_path().string(),
                                             ec.message())};
      }
    }
    if (fs::is_socket(path, ec)) {
      // A socket file left by a previous run; if something answers on it,
      // another service owns it and we must not steal the endpoint.
      Socket probe(io_);
      boost::system::error_code connect_ec;
      probe.connect(asio::local::stream_protocol::endpoint(path.string()), connect_ec);
      if (!connect_ec) {
        return Error{errc::fail,
                     fmt::format("another service is already listening on {}", path.string())};
      }
      fs::remove(path, ec);
    }
    boost::system::error_code bec;
    const asio::local::stream_protocol::endpoint endpoint(path.string());
    acceptor_.open(endpoint.protocol(), bec);
    if (!bec)
      acceptor_.bind(endpoint, bec);
    if (bec) {
      return Error{errc::fail, fmt::format("bind {}: {}", path.string(), bec.message())};
    }
    // N.B. group before mode: the socket is never open to a group it was not meant for.
    if (socket_gid && ::chown(path.c_str(), static_cast<uid_t>(-1), *socket_gid) != 0) {
      return Error{errc::fail,
                   fmt::format("chgrp {} {}: {}", options_.socket_group, path.string(),
                               std::error_code(errno, std::system_category()).message())};
    }
    if (::chmod(path.c_str(), static_cast<mode_t>(options_.socket_mode)) != 0) {
      return Error{errc::fail,
                   fmt::format("chmod {:o} {}: {}", options_.socket_mode, path.string(),
                               std::error_code(errno, std::system_category()).message())};
    }
    acceptor_.listen(asio::socket_base::max_listen_connections, bec);
    if (bec) {
      return Error{errc::fail, fmt::format("listen {}: {}", path.string(), bec.message())};
    }
    return Done{};
  }

  void start() override { accept(); }

  void stop() override {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    std::error_code not_there;
    std::filesystem::remove(options_.endpoint, not_there);
    sessions_.close_all("service stopping");
  }

  std::size_t session_count() const override { return sessions_.size(); }

 private:
  void accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, Socket socket) {
      if (ec == asio::error::operation_aborted)
        return;
      if (ec) {
        spdlog::error("accept on {}: {}", options_.endpoint, ec.message());
      } else {
        if (auto peer = peer_identity(socket, admin_gid_)) {
          admit_connection(sessions_, std::move(socket), context_, std::move(*peer),
                           options_.session);
        } else {
          spdlog::warn("refusing connection on {}: {}", options_.endpoint, peer.error().message);
          refuse_connection(socket, peer.error());
        }
      }
      accept();
    });
  }

  asio::io_context& io_;
  ServiceContext& context_;
  ListenerOptions options_;
  asio::local::stream_protocol::acceptor acceptor_;
  SessionRegistry sessions_;
  std::optional<gid_t> admin_gid_;
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
