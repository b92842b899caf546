#include "host/drive_set.hpp"

#include <utility>  // N.B. before Asio (Boost 1.74 + g++ 12)

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

#include "drives/recorder.hpp"
#include "drives/simulated_drive.hpp"

namespace discarbiter::host {
namespace {

namespace asio = boost::asio;

std::chrono::seconds inquiry_timeout(const Config& config) {
  return config.arbiter.timeouts.timeout_for(core::opcode::inquiry);
}

}  // namespace

DriveSet::DriveSet(asio::io_context& io, core::Arbiter& arbiter, const Config& config)
    : io_(io), arbiter_(arbiter), config_(config) {}

DriveSet::~DriveSet() {
  stop();
}

Result<Done> DriveSet::start() {
  for (std::uint32_t i = 0; i < config_.simulate; ++i) {
    const std::string id = fmt::format("sim{}", i);
    const auto faults = config_.simulated_faults.find(id);
    auto simulated = std::make_shared<drives::SimulatedDrive>(
        i, faults == config_.simulated_faults.end() ? drives::SimulatedFaults{} : faults->second,
        simulated_medium_for(config_, id));
    // N.B. what reaches the simulated device, in order: tests read it from the
    // debug log (issue 11: nothing of a departed session after its lock is freed).
    simulated->set_command_observer([id](const auto& command) {
      spdlog::debug("simulated drive {} runs {}", id, drives::describe(command));
    });
    auto attached = attach(std::move(simulated));
    if (!attached)
      return attached;
  }
  for (const auto& path : config_.drive_paths) {
    auto recorder = drives::recorder_at(path);
    if (!recorder)
      return recorder.error();
    auto device = drives::open_recorder(*recorder, inquiry_timeout(config_));
    if (!device)
      return Error{device.error().code,
                   fmt::format("--drive {}: {}", path, device.error().message)};
    if (auto attached = attach(std::move(device.value())); !attached)
      return attached;
  }
  if (!config_.discover)
    return Done{};
  const auto discovery = drives::find_recorders();
  if (discovery.problem)
    spdlog::warn("drive discovery: {}; {} instead", discovery.problem->message, discovery.method);
  spdlog::info("drive discovery: {} found {} candidate(s)", discovery.method,
               discovery.recorders.size());
  for (const auto& recorder : discovery.recorders) {
    if (workers_.contains(recorder.id))
      continue;  // named with --drive as well
    auto device = drives::open_recorder(recorder, inquiry_timeout(config_));
    if (!device) {
      spdlog::warn("drive {} ({}) left alone: {}", recorder.id, recorder.path,
                   device.error().message);
      continue;
    }
    (void)attach(std::move(device.value()));
  }
  watcher_ = make_device_watcher(io_);
  if (auto watching = watcher_->start([this](DeviceChange c) { on_change(std::move(c)); });
      !watching) {
    spdlog::warn("drive arrival and removal will not be noticed: {}", watching.error().message);
    watcher_.reset();
  }
  return Done{};
}

void DriveSet::stop() {
  if (std::exchange(stopped_, true))
    return;
  if (watcher_)
    watcher_->stop();
  openers_.clear();  // N.B. jthread joins: an opener still reading INQUIRY finishes first
  for (auto& [id, worker] : workers_)
    worker->stop();
  for (auto& worker : retired_)
    worker->stop();
}

Result<Done> DriveSet::attach(std::shared_ptr<drives::ScsiDevice> device) {
  auto worker = std::make_shared<drives::DriveWorker>(
      std::move(device), [this](std::function<void()> fn) { asio::post(io_, std::move(fn)); });
  const auto& d = worker->description();
  if (auto added = arbiter_.add_drive(worker); !added) {
    worker->stop();
    return added;
  }
  spdlog::info("drive {}: {} {} {} ({}, {})", d.id, d.vendor, d.product, d.revision, d.backend,
               d.path);
  workers_[d.id] = std::move(worker);
  return Done{};
}

void DriveSet::detach(const std::string& id, const std::string& reason) {
  const auto it = workers_.find(id);
  if (it == workers_.end())
    return;
  arbiter_.remove_drive(id, reason);
  // N.B. never joined here: a call stuck in the vanished device would hang
  // the strand. The worker says when its thread is done, through post.
  it->second->retire([this, worker = it->second.get()] { forget_retired(worker); });
  retired_.push_back(std::move(it->second));
  workers_.erase(it);
}

void DriveSet::forget_retired(const drives::DriveWorker* worker) {
  if (stopped_)
    return;  // stop() stops and keeps them all
  // N.B. dropping the last reference joins a thread that has nothing left to
  // do but return (the arbiter may still hold one; its drop joins as fast).
  std::erase_if(retired_, [worker](const auto& w) { return w.get() == worker; });
}

void DriveSet::on_change(DeviceChange change) {
  if (stopped_)
    return;
  if (change.kind == DeviceChange::Kind::removed) {
    spdlog::info("drive {} ({}) removed", change.recorder.id, change.recorder.path);
    detach(change.recorder.id, change.recorder.path + " was removed");
    return;
  }
  spdlog::info("drive {} ({}) arrived", change.recorder.id, change.recorder.path);
  // N.B. opening sends INQUIRY: off the strand, so a slow drive delays nobody.
  const std::uint64_t opener = next_opener_++;
  openers_.emplace(
      opener, [this, opener, recorder = change.recorder, timeout = inquiry_timeout(config_)] {
        auto device = drives::open_recorder(recorder, timeout);
        asio::post(io_, [this, opener, recorder, device = std::move(device)]() mutable {
          if (stopped_)
            return;
          // N.B. joins a thread that has nothing left to do but return.
          openers_.erase(opener);
          if (!device) {
            // N.B. our own exclusive open of a drive we still hold fails too:
            // that is a repeated arrival, not a new drive.
            if (!workers_.contains(recorder.id))
              spdlog::warn("drive {} ({}) left alone: {}", recorder.id, recorder.path,
                           device.error().message);
            return;
          }
          // A drive we still hold under this id is stale (its removal went unheard).
          detach(recorder.id, "replaced by a new arrival at " + recorder.path);
          if (auto attached = attach(std::move(device.value())); !attached)
            spdlog::warn("drive {}: {}", recorder.id, attached.error().message);
        });
      });
}

}  // namespace discarbiter::host
