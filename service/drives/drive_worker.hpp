// One thread per drive: a slow or hung drive delays only its own queue, never
// another drive or the service's strand.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "core/drive_channel.hpp"
#include "drives/scsi_device.hpp"

namespace discarbiter::drives {

class DriveWorker final : public core::DriveChannel {
 public:
  /// Hands a completion to the arbiter's strand (asio::post on the service).
  using PostToArbiter = std::function<void(std::function<void()>)>;

  DriveWorker(std::shared_ptr<ScsiDevice> device, PostToArbiter post);
  ~DriveWorker() override;
  DriveWorker(const DriveWorker&) = delete;
  DriveWorker& operator=(const DriveWorker&) = delete;

  const core::DriveDescription& description() const override { return description_; }
  void async_execute(ScsiCommand command, ExecuteHandler handler) override;
  void async_os_lock(std::string client_name, bool force, LockHandler handler) override;
  void async_os_unlock(LockHandler handler) override;
  /// The steps run back to back in ONE job: one wake of this thread, one
  /// post back to the arbiter, however many steps run.
  void async_acquire_steps(core::AcquireSteps steps, AcquireHandler handler) override;
  void async_release_steps(core::ReleaseSteps steps, ReleaseHandler handler) override;
  void cancel_queued(const Error& why) override;

  /// Interrupts the current command, drops queued ones and joins the thread.
  void stop();
  /// The drive is gone (hot-plug): queued work still runs (and fails on the
  /// vanished device), then the device is closed so the OS can let it go and
  /// the thread ends; its last act is to post `finished` to the arbiter. The
  /// owner may drop the worker there: the destructor's join then waits for a
  /// thread with nothing left to do but return. Never blocks: a call stuck
  /// in the device keeps the thread, and delays `finished`, until it returns.
  /// Later calls complete at once with ERROR_DEV_NOT_EXIST.
  void retire(std::function<void()> finished = {});
  /// Whether the thread is done: retired and drained, or stopped. It has
  /// nothing left to do but return.
  bool finished() const;

 private:
  struct Job {
    std::function<void()> run;
    std::function<void(const Error&)> cancel;  // empty: not cancellable
  };
  /// Queues job; false when the worker is stopping or retired.
  bool submit(Job job);
  template <typename Handler, typename Failure>
  void fail_later(Handler handler, Failure failure);
  template <typename Steps, typename Handler>
  void submit_steps(Steps steps, Handler handler);
  void run();
  void finish_retired();

  std::shared_ptr<ScsiDevice> device_;
  core::DriveDescription description_;
  PostToArbiter post_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> jobs_;
  bool stopping_ = false;
  bool retired_ = false;
  bool finished_ = false;
  std::function<void()> on_finished_;  // posted when a retired worker's thread ends
  std::thread thread_;  // N.B. last: it starts in the constructor and uses the members above
};

}  // namespace discarbiter::drives
