// The Linux endpoint: a Unix domain socket; callers identified by SO_PEERCRED.
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/local/stream_protocol.hpp>
#include <filesystem>

#include "listener.hpp"

namespace discarbiter::transport {
namespace {

namespace asio = boost::asio;
using Socket = asio::local::stream_protocol::socket;

core::PeerIdentity peer_identity(Socket& socket) {
  core::PeerIdentity peer;
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    spdlog::warn("SO_PEERCRED failed: {}",
                 std::error_code(errno, std::system_category()).message());
    return peer;
  }
  peer.pid = static_cast<std::uint32_t>(cred.pid);
  peer.uid = cred.uid;
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
        core::PeerIdentity peer = peer_identity(socket);
        admit_connection(sessions_, std::move(socket), context_, std::move(peer), options_.session);
      }
      accept();
    });
  }

  asio::io_context& io_;
  ServiceContext& context_;
  ListenerOptions options_;
  asio::local::stream_protocol::acceptor acceptor_;
  SessionRegistry sessions_;
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
