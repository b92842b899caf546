#include "drives/drive_worker.hpp"

#include "core/overloaded.hpp"

namespace discarbiter::drives {

DriveWorker::DriveWorker(std::shared_ptr<ScsiDevice> device, PostToArbiter post)
    : device_(std::move(device)),
      description_(device_->describe()),
      post_(std::move(post)),
      thread_([this] { run(); }) {}

DriveWorker::~DriveWorker() {
  stop();
}

void DriveWorker::stop() {
  std::shared_ptr<ScsiDevice> device;
  {
    // N.B. every step is idempotent: the destructor stops again after an
    // explicit stop().
    std::lock_guard lock(mutex_);
    stopping_ = true;
    jobs_.clear();
    device = device_;
  }
  if (device)
    device->cancel();
  wake_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) {
    thread_.join();
    std::lock_guard lock(mutex_);
    device_.reset();  // N.B. closes the device now, not when the last channel user lets go
  }
}

void DriveWorker::retire(std::function<void()> finished) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || retired_)
      return;
    retired_ = true;
    on_finished_ = std::move(finished);
  }
  wake_.notify_one();
}

bool DriveWorker::finished() const {
  std::lock_guard lock(mutex_);
  return finished_;
}

bool DriveWorker::submit(Job job) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_)
      return true;  // the service is going away; nobody awaits the answer
    if (retired_)
      return false;
    jobs_.emplace_back(std::move(job));
  }
  wake_.notify_one();
  return true;
}

template <typename Handler, typename Failure>
void DriveWorker::fail_later(Handler handler, Failure failure) {
  post_([handler = std::move(handler), failure = std::move(failure)]() mutable {
    handler(std::move(failure));
  });
}

namespace {
std::string gone_message(const core::DriveDescription& d) {
  return d.path + " has been removed";
}
}  // namespace

void DriveWorker::cancel_queued(const Error& why) {
  std::deque<Job> cancelled;
  {
    std::lock_guard lock(mutex_);
    std::deque<Job> kept;
    for (auto& job : jobs_)
      (job.cancel ? cancelled : kept).push_back(std::move(job));
    jobs_ = std::move(kept);
  }
  for (auto& job : cancelled)
    job.cancel(why);
}

void DriveWorker::async_execute(ScsiCommand command, ExecuteHandler handler) {
  Job job{[this, command = std::move(command), handler]() mutable {
            auto result = device_->execute(command);
            post_([handler = std::move(handler), result = std::move(result)]() mutable {
              handler(std::move(result));
            });
          },
          [this, handler](const Error& why) {
            fail_later(handler, ScsiResult::not_sent(why.code, why.message));
          }};
  if (!submit(std::move(job)))
    fail_later(std::move(handler),
               ScsiResult::failed(errc::dev_not_exist, gone_message(description_)));
}

void DriveWorker::async_os_lock(std::string client_name, bool force, LockHandler handler) {
  Job job{[this, client_name = std::move(client_name), force, handler]() mutable {
            auto result = device_->lock_exclusive(client_name, force);
            post_([handler = std::move(handler), result = std::move(result)]() mutable {
              handler(std::move(result));
            });
          },
          [this, handler](const Error& why) { fail_later(handler, Result<Done>(why)); }};
  if (!submit(std::move(job)))
    fail_later(std::move(handler),
               Result<Done>(Error{errc::dev_not_exist, gone_message(description_)}));
}

void DriveWorker::async_os_unlock(LockHandler handler) {
  Job job{[this, handler]() mutable {
            auto result = device_->unlock_exclusive();
            post_([handler = std::move(handler), result = std::move(result)]() mutable {
              handler(std::move(result));
            });
          },
          [this, handler](const Error& why) { fail_later(handler, Result<Done>(why)); }};
  if (!submit(std::move(job)))
    fail_later(std::move(handler),
               Result<Done>(Error{errc::dev_not_exist, gone_message(description_)}));
}

namespace {

using core::Overloaded;

/// Runs the steps on the device until they have none left.
void run_steps(core::DriveSteps& steps, ScsiDevice& device) {
  while (const auto call = steps.next()) {
    steps.record(
        std::visit(Overloaded{
                       [&](const ScsiCommand* command) -> core::DriveSteps::Answer {
                         return device.execute(*command);
                       },
                       [&](const core::DriveSteps::OsLockCall& lock) -> core::DriveSteps::Answer {
                         return device.lock_exclusive(*lock.client_name, lock.force);
                       },
                       [&](core::DriveSteps::OsUnlockCall) -> core::DriveSteps::Answer {
                         return device.unlock_exclusive();
                       },
                   },
                   *call));
  }
}
}  // namespace

template <typename Steps, typename Handler>
void DriveWorker::submit_steps(Steps steps, Handler handler) {
  // N.B. one object for the job and its cancellation: whichever runs takes it.
  auto shared = std::make_shared<Steps>(std::move(steps));
  Job job{
      [this, shared, handler]() mutable {
        run_steps(*shared, *device_);
        post_([handler = std::move(handler), shared]() mutable { handler(std::move(*shared)); });
      },
      [this, shared, handler](const Error& why) {
        shared->take_back(why);
        fail_later(handler, std::move(*shared));
      }};
  if (!submit(std::move(job))) {
    shared->fail_rest(Error{errc::dev_not_exist, gone_message(description_)});
    fail_later(std::move(handler), std::move(*shared));
  }
}

void DriveWorker::async_acquire_steps(core::AcquireSteps steps, AcquireHandler handler) {
  submit_steps(std::move(steps), std::move(handler));
}

void DriveWorker::async_release_steps(core::ReleaseSteps steps, ReleaseHandler handler) {
  submit_steps(std::move(steps), std::move(handler));
}

void DriveWorker::run() {
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || retired_ || !jobs_.empty(); });
      if (stopping_) {
        finished_ = true;
        return;
      }
      if (jobs_.empty())
        break;  // retired, and everything queued before has run
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job.run();
  }
  finish_retired();
}

void DriveWorker::finish_retired() {
  std::function<void()> finished;
  {
    std::lock_guard lock(mutex_);  // N.B. stop() reads device_ too
    device_.reset();
    finished_ = true;
    finished = std::move(on_finished_);
  }
  // N.B. the thread's last act: once the owner hears it, joining is instant.
  if (finished)
    post_(std::move(finished));
}

}  // namespace discarbiter::drives
