// Windows: CM_Register_Notification for GUID_DEVINTERFACE_CDROM. Its callbacks
// come on a thread-pool thread and are posted to the service's strand.
#include <windows.h>  // N.B. first: the headers below need its types

#include <winioctl.h>

#include <utility>  // N.B. before Asio (Boost 1.74 + g++ 12)

#include <algorithm>
#include <map>
#include <mutex>

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

#include "discarbiter/win32/cfgmgr.hpp"
#include "discarbiter/win32/wide.hpp"
#include "host/device_watcher.hpp"

namespace discarbiter::host {
namespace {

namespace asio = boost::asio;

std::string lowered(std::string s) {
  std::ranges::transform(s, s.begin(),
                         [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

class CmWatcher final : public DeviceWatcher {
 public:
  explicit CmWatcher(asio::io_context& io) : io_(io) {}
  ~CmWatcher() override { stop(); }

  Result<Done> start(Handler handler) override {
    if (!win32::device_notifications_available()) {
      return Error{errc::fail,
                   "CM_Register_Notification is not implemented here (Wine); restart the service "
                   "to pick up new drives"};
    }
    handler_ = std::move(handler);
    // N.B. removals name the interface path only: remember every drive's
    // (a drive found by probing \\.\CdRomN has none to remember).
    for (const auto& r : drives::find_recorders().recorders) {
      if (!r.twin.empty())
        ids_[lowered(r.twin)] = r.id;
    }
    CM_NOTIFY_FILTER filter{};
    filter.cbSize = sizeof filter;
    filter.FilterType = CM_NOTIFY_FILTER_TYPE_DEVICEINTERFACE;
    filter.u.DeviceInterface.ClassGuid = GUID_DEVINTERFACE_CDROM;
    const CONFIGRET cr =
        ::CM_Register_Notification(&filter, this, &CmWatcher::on_event, &notification_);
    if (cr != CR_SUCCESS) {
      return Error{errc::fail,
                   "CM_Register_Notification(GUID_DEVINTERFACE_CDROM) failed with CONFIGRET " +
                       std::to_string(cr)};
    }
    return Done{};
  }

  void stop() override {
    if (notification_) {
      // N.B. waits for callbacks in flight; none can start afterwards.
      ::CM_Unregister_Notification(std::exchange(notification_, nullptr));
    }
    std::lock_guard lock(mutex_);
    stopped_ = true;
  }

 private:
  static DWORD CALLBACK on_event(HCMNOTIFICATION, PVOID context, CM_NOTIFY_ACTION action,
                                 PCM_NOTIFY_EVENT_DATA data, DWORD) {
    auto* self = static_cast<CmWatcher*>(context);
    if (action != CM_NOTIFY_ACTION_DEVICEINTERFACEARRIVAL &&
        action != CM_NOTIFY_ACTION_DEVICEINTERFACEREMOVAL) {
      return ERROR_SUCCESS;
    }
    const std::string path = win32::to_utf8(data->u.DeviceInterface.SymbolicLink);
    const bool arrived = action == CM_NOTIFY_ACTION_DEVICEINTERFACEARRIVAL;
    std::lock_guard lock(self->mutex_);
    if (self->stopped_)
      return ERROR_SUCCESS;
    asio::post(self->io_, [self, path, arrived] { self->deliver(path, arrived); });
    return ERROR_SUCCESS;
  }

  void deliver(const std::string& path, bool arrived) {
    const auto key = lowered(path);
    if (!arrived) {
      const auto it = ids_.find(key);
      if (it == ids_.end())
        return;
      DeviceChange change{DeviceChange::Kind::removed, {it->second, path, path}};
      ids_.erase(it);
      handler_(std::move(change));
      return;
    }
    auto recorder = drives::recorder_at(path);
    if (!recorder) {
      spdlog::warn("a CD-ROM interface arrived but cannot be used: {}", recorder.error().message);
      return;
    }
    ids_[key] = recorder->id;
    handler_(DeviceChange{DeviceChange::Kind::arrived, std::move(recorder.value())});
  }

  asio::io_context& io_;
  Handler handler_;
  HCMNOTIFICATION notification_ = nullptr;
  std::mutex mutex_;
  bool stopped_ = false;
  std::map<std::string, std::string> ids_;  // interface path (lowered) -> drive id
};

}  // namespace

std::unique_ptr<DeviceWatcher> make_device_watcher(asio::io_context& io) {
  return std::make_unique<CmWatcher>(io);
}

}  // namespace discarbiter::host
