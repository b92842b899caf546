#include "drive_worker.hpp"

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
  {
    // N.B. every step is idempotent: the destructor stops again after an
    // explicit stop().
    std::lock_guard lock(mutex_);
    stopping_ = true;
    jobs_.clear();
  }
  device_->cancel();
  wake_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) {
    thread_.join();
  }
}

template <typename Job>
void DriveWorker::submit(Job job) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_)
      return;  // the service is going away; nobody awaits the answer
    jobs_.emplace_back(std::move(job));
  }
  wake_.notify_one();
}

void DriveWorker::async_execute(ScsiCommand command, ExecuteHandler handler) {
  submit([this, command = std::move(command), handler = std::move(handler)]() mutable {
    auto result = device_->execute(command);
    post_([handler = std::move(handler), result = std::move(result)]() mutable {
      handler(std::move(result));
    });
  });
}

void DriveWorker::async_os_lock(std::string client_name, bool force, LockHandler handler) {
  submit(
      [this, client_name = std::move(client_name), force, handler = std::move(handler)]() mutable {
        auto result = device_->lock_exclusive(client_name, force);
        post_([handler = std::move(handler), result = std::move(result)]() mutable {
          handler(std::move(result));
        });
      });
}

void DriveWorker::async_os_unlock(LockHandler handler) {
  submit([this, handler = std::move(handler)]() mutable {
    auto result = device_->unlock_exclusive();
    post_([handler = std::move(handler), result = std::move(result)]() mutable {
      handler(std::move(result));
    });
  });
}

void DriveWorker::run() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (stopping_)
        return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();
  }
}

}  // namespace discarbiter::drives
