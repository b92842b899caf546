// The client library's test peers: a real discarbiterd on a temporary socket
// (ServiceProcess), and a scripted fake service that speaks the frames a test
// writes (FakeService), for replies the real one never sends.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "discarbiter/posix/unique_fd.hpp"
#include "discarbiter/proto/frame.hpp"
#include "discarbiter/proto/wire.hpp"

namespace discarbiter::test {

using namespace std::chrono_literals;

/// A private temporary directory, removed with its contents.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "discarbiter-client-XXXXXX");
    if (!::mkdtemp(pattern.data()))
      throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

/// Waits until `fd` is readable; false at the deadline.
inline bool wait_readable(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(timeout.count())) > 0;
}

/// discarbiterd run with simulated drives and an optional config document.
class ServiceProcess {
 public:
  explicit ServiceProcess(int simulate, const nlohmann::json& config = nlohmann::json::object()) {
    endpoint = (dir_.path() / "discarbiter.sock").string();
    const auto config_path = (dir_.path() / "discarbiter.json").string();
    std::ofstream(config_path) << config.dump();
    int err[2];
    if (::pipe2(err, O_CLOEXEC) != 0)
      throw std::runtime_error("pipe2 failed");
    stderr_ = posix::unique_fd(err[0]);
    posix::unique_fd write_end(err[1]);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, write_end.get(), 2);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    const std::string count = std::to_string(simulate);
    std::vector<std::string> args{DISCARBITERD_PATH, "run",    "--simulate",    count,
                                  "--endpoint",      endpoint, "--no-discover", "--config",
                                  config_path};
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    const int spawned =
        ::posix_spawn(&pid_, DISCARBITERD_PATH, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (spawned != 0)
      throw std::runtime_error("cannot start " DISCARBITERD_PATH);
    wait_for_log("listening on");
  }
  ~ServiceProcess() {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  ServiceProcess(const ServiceProcess&) = delete;
  ServiceProcess& operator=(const ServiceProcess&) = delete;

  void wait_for_log(const std::string& needle, std::chrono::seconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (log_.find(needle) != std::string::npos)
        return;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left <= 0ms || !wait_readable(stderr_.get(), left))
        throw std::runtime_error("discarbiterd never logged '" + needle + "': " + log_);
      char buffer[4096];
      const ssize_t n = ::read(stderr_.get(), buffer, sizeof buffer);
      if (n <= 0)
        throw std::runtime_error("discarbiterd exited: " + log_);
      log_.append(buffer, static_cast<std::size_t>(n));
    }
  }

  std::string endpoint;

 private:
  TempDir dir_;
  pid_t pid_ = -1;
  posix::unique_fd stderr_;
  std::string log_;
};

/// A service played by the test: accepts one client and reads and writes the
/// frames the test asks for.
class FakeService {
 public:
  FakeService() {
    endpoint = (dir_.path() / "fake.sock").string();
    listener_ = posix::unique_fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, endpoint.c_str(), sizeof addr.sun_path - 1);
    if (::bind(listener_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listener_.get(), 4) != 0) {
      throw std::runtime_error("cannot listen on " + endpoint);
    }
  }

  /// Accepts the client and answers its hello (with `max_transfer`).
  void accept_hello(std::uint32_t max_transfer = 0) {
    if (!wait_readable(listener_.get(), 10s))
      throw std::runtime_error("no client connected");
    peer_ = posix::unique_fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    const auto hello = read_frame();
    proto::HelloReply reply{"fake", proto::kProtocolVersion, {}, max_transfer};
    send(proto::encode_reply(id_of(hello), reply));
  }

  /// The next frame the client sent; throws at EOF or after 10 s.
  proto::Frame read_frame() {
    for (;;) {
      auto out = decoder_.next();
      if (out.status == proto::FrameDecoder::Status::frame)
        return std::move(out.frame);
      if (out.status == proto::FrameDecoder::Status::error)
        throw std::runtime_error(out.error.message);
      if (!wait_readable(peer_.get(), 10s))
        throw std::runtime_error("the client sent nothing for 10 s");
      std::uint8_t buffer[64 * 1024];
      const ssize_t n = ::read(peer_.get(), buffer, sizeof buffer);
      if (n <= 0)
        throw std::runtime_error("the client closed the connection");
      decoder_.feed({buffer, static_cast<std::size_t>(n)});
    }
  }

  /// True when the client closed its end (within 10 s).
  bool client_closed() {
    if (!wait_readable(peer_.get(), 10s))
      return false;
    std::uint8_t byte;
    return ::read(peer_.get(), &byte, 1) == 0;
  }

  void send(const proto::Bytes& bytes) {
    std::size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::send(peer_.get(), bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (n <= 0)
        throw std::runtime_error("send to the client failed");
      done += static_cast<std::size_t>(n);
    }
  }

  static std::uint64_t id_of(const proto::Frame& frame) { return frame.json.at("id"); }

  std::string endpoint;

 private:
  TempDir dir_;
  posix::unique_fd listener_;
  posix::unique_fd peer_;
  proto::FrameDecoder decoder_{proto::FrameLimits{proto::kDefaultMaxJsonBytes, 16 << 20}};
};

}  // namespace discarbiter::test
