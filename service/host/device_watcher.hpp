// Hearing recorders come and go while the service runs. One implementation
// per platform: kernel uevents over netlink (Linux), CM_Register_Notification
// for GUID_DEVINTERFACE_CDROM (Windows).
#pragma once

#include <functional>
#include <memory>

#include <boost/asio/io_context.hpp>

#include "discarbiter/proto/result.hpp"
#include "drives/recorder.hpp"

namespace discarbiter::host {

struct DeviceChange {
  enum class Kind { arrived, removed };
  Kind kind;
  drives::RecorderInfo recorder;  // for a removal, only id and path are known
};

class DeviceWatcher {
 public:
  /// Runs on the io_context's thread (the arbiter's strand).
  using Handler = std::function<void(DeviceChange)>;

  virtual ~DeviceWatcher() = default;
  virtual Result<Done> start(Handler handler) = 0;
  virtual void stop() = 0;
};

std::unique_ptr<DeviceWatcher> make_device_watcher(boost::asio::io_context& io);

}  // namespace discarbiter::host
