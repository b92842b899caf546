#include "transport/identity_resolver.hpp"

#include <boost/asio/post.hpp>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

namespace discarbiter::transport {

struct IdentityResolver::Shared {
  explicit Shared(boost::asio::any_io_executor s) : strand(std::move(s)) {}

  struct Job {
    std::uint64_t id;
    Lookup lookup;
  };

  /// The worker: one look-up at a time, each result posted to the strand.
  /// N.B. detached, and the only owner of `shared` once the resolver is
  /// gone: a look-up that never returns must not stop the service from
  /// stopping (a thread_pool would join it).
  static void work(const std::shared_ptr<Shared>& shared) {
    std::unique_lock lock(shared->mutex);
    for (;;) {
      shared->wake.wait(lock, [&] { return shared->stopped || !shared->jobs.empty(); });
      if (shared->stopped)
        return;
      Job job = std::move(shared->jobs.front());
      shared->jobs.pop_front();
      lock.unlock();
      Identified result = job.lookup();  // N.B. may wait as long as the user database does
      job.lookup = nullptr;
      lock.lock();
      // N.B. posted under the lock: stop() either comes first (nothing is
      // posted to an io_context that may be gone) or finds it posted.
      if (shared->stopped)
        return;
      boost::asio::post(shared->strand,
                        [shared, id = job.id, result = std::move(result)]() mutable {
                          shared->deliver(id, std::move(result));
                        });
    }
  }

  /// On the strand.
  void deliver(std::uint64_t id, Identified result) {
    const auto it = waiting.find(id);
    if (it == waiting.end())
      return;  // stopped meanwhile
    auto on_identified = std::move(it->second);
    waiting.erase(it);
    on_identified(std::move(result));
  }

  const boost::asio::any_io_executor strand;
  std::map<std::uint64_t, OnIdentified> waiting;  // on the strand only

  std::mutex mutex;  // guards what follows
  std::condition_variable wake;
  std::deque<Job> jobs;
  bool stopped = false;
};

IdentityResolver::IdentityResolver(boost::asio::any_io_executor strand, std::size_t max_pending)
    : shared_(std::make_shared<Shared>(std::move(strand))), max_pending_(max_pending) {
  std::thread([shared = shared_] { Shared::work(shared); }).detach();
}

IdentityResolver::~IdentityResolver() {
  stop();
}

void IdentityResolver::submit(Lookup lookup, OnIdentified on_identified) {
  const std::uint64_t id = ++next_id_;
  shared_->waiting.emplace(id, std::move(on_identified));
  {
    const std::lock_guard lock(shared_->mutex);
    shared_->jobs.push_back({id, std::move(lookup)});
  }
  shared_->wake.notify_one();
}

std::size_t IdentityResolver::pending() const {
  return shared_->waiting.size();
}

void IdentityResolver::stop() {
  std::deque<Shared::Job> dropped;
  {
    const std::lock_guard lock(shared_->mutex);
    shared_->stopped = true;
    dropped.swap(shared_->jobs);
  }
  shared_->wake.notify_one();
  shared_->waiting.clear();
}

}  // namespace discarbiter::transport
