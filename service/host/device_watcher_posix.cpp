// Linux: the kernel's own uevents (netlink group 1), so no udev daemon is
// needed. A drive is ready once its last node exists: the sg twin when the
// sg driver is loaded (it appears after sr), else the sr node.
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <utility>  // N.B. before Asio (Boost 1.74 + g++ 12)

#include <array>
#include <filesystem>

#include <spdlog/spdlog.h>
#include <boost/asio/posix/stream_descriptor.hpp>

#include "discarbiter/posix/error.hpp"
#include "discarbiter/posix/unique_fd.hpp"
#include "host/device_watcher.hpp"
#include "host/uevent.hpp"

namespace discarbiter::host {
namespace {

namespace asio = boost::asio;

bool sg_driver_loaded() {
  std::error_code ec;
  return std::filesystem::exists("/sys/class/scsi_generic", ec);
}

/// The change a uevent means for the service, if any.
std::optional<DeviceChange> change_for(const Uevent& e) {
  const bool block_sr = e.subsystem == "block" && e.devname.starts_with("sr");
  const bool generic_sg = e.subsystem == "scsi_generic" && e.devname.starts_with("sg");
  if (!block_sr && !generic_sg)
    return std::nullopt;
  const std::string path = "/dev/" + e.devname;
  if (e.action == "remove") {
    // N.B. sr's removal names the drive; an sg-only drive is known by its sg name.
    const std::string id = block_sr ? "cdrom" + e.devname.substr(2) : e.devname;
    return DeviceChange{DeviceChange::Kind::removed, {id, path, {}}};
  }
  if (e.action != "add" || (block_sr && sg_driver_loaded()))
    return std::nullopt;  // N.B. with sg loaded, the sg twin's arrival comes last
  auto recorder = drives::recorder_at(path);
  if (!recorder) {
    spdlog::debug("ignoring {} {}: {}", e.action, path, recorder.error().message);
    return std::nullopt;
  }
  return DeviceChange{DeviceChange::Kind::arrived, std::move(recorder.value())};
}

class NetlinkWatcher final : public DeviceWatcher {
 public:
  explicit NetlinkWatcher(asio::io_context& io) : socket_(io) {}

  Result<Done> start(Handler handler) override {
    posix::unique_fd fd(
        ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_KOBJECT_UEVENT));
    if (!fd)
      return Error{errc::fail, posix::describe("netlink uevent socket", posix::last_error())};
    sockaddr_nl address{};
    address.nl_family = AF_NETLINK;
    address.nl_groups = 1;  // the kernel's broadcast
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0)
      return Error{errc::fail, posix::describe("netlink uevent bind", posix::last_error())};
    socket_.assign(fd.release());
    handler_ = std::move(handler);
    wait();
    return Done{};
  }

  void stop() override {
    boost::system::error_code ignored;
    socket_.close(ignored);
  }

 private:
  void wait() {
    socket_.async_wait(asio::posix::stream_descriptor::wait_read,
                       [this](boost::system::error_code ec) {
                         if (ec)
                           return;  // closed: the service is stopping
                         drain();
                         wait();
                       });
  }

  void drain() {
    for (;;) {
      const ssize_t n = ::recv(socket_.native_handle(), buffer_.data(), buffer_.size(), 0);
      if (n < 0) {
        // N.B. EAGAIN: drained. ENOBUFS: the kernel dropped events for us.
        if (const auto error = posix::last_error(); error == std::errc::no_buffer_space)
          spdlog::warn("device events were lost ({}); a drive change may be missed",
                       posix::describe("netlink recv", error));
        return;
      }
      if (n == 0)
        return;
      const auto event = parse_uevent({buffer_.data(), static_cast<std::size_t>(n)});
      if (!event)
        continue;
      if (auto change = change_for(*event))
        handler_(std::move(*change));
    }
  }

  asio::posix::stream_descriptor socket_;
  Handler handler_;
  std::array<char, 8192> buffer_{};
};

}  // namespace

std::unique_ptr<DeviceWatcher> make_device_watcher(asio::io_context& io) {
  return std::make_unique<NetlinkWatcher>(io);
}

}  // namespace discarbiter::host
