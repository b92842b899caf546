// The drives the service owns: simulated ones, those named with --drive,
// and those discovery finds at start and hears arrive later. Each gets its
// own DriveWorker; a drive that leaves is removed from the arbiter and its
// worker retired, and one that comes back is attached again.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "core/arbiter.hpp"
#include "drives/drive_worker.hpp"
#include "host/config.hpp"
#include "host/device_watcher.hpp"

namespace discarbiter::host {

class DriveSet {
 public:
  DriveSet(boost::asio::io_context& io, core::Arbiter& arbiter, const Config& config);
  ~DriveSet();
  DriveSet(const DriveSet&) = delete;
  DriveSet& operator=(const DriveSet&) = delete;

  /// Attaches every drive; a --drive that cannot be opened is an error (the
  /// service does not start), a discovered one that cannot is a warning.
  Result<Done> start();
  /// Stops hearing changes and stops every worker. Idempotent.
  void stop();

  std::size_t attached() const { return workers_.size(); }

 private:
  Result<Done> attach(std::shared_ptr<drives::ScsiDevice> device);
  void on_change(DeviceChange change);
  void detach(const std::string& id, const std::string& reason);
  void forget_retired(const drives::DriveWorker* worker);

  boost::asio::io_context& io_;
  core::Arbiter& arbiter_;
  const Config& config_;
  std::unique_ptr<DeviceWatcher> watcher_;
  std::map<std::string, std::shared_ptr<drives::DriveWorker>> workers_;  // by drive id
  // Workers of removed drives, until their thread has finished what was
  // queued (a stuck call keeps one here until it returns); then forgotten.
  std::vector<std::shared_ptr<drives::DriveWorker>> retired_;
  // Hot-plug arrivals open off the strand; each is joined and dropped once
  // its result is back on the strand.
  std::map<std::uint64_t, std::jthread> openers_;
  std::uint64_t next_opener_ = 0;
  bool stopped_ = false;
};

}  // namespace discarbiter::host
