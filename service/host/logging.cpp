#include "host/logging.hpp"

#include "host/platform.hpp"

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>

#include <spdlog/async.h>
#include <spdlog/async_logger.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

namespace discarbiter::host {
namespace {

using spdlog::details::log_msg;

/// The async logger's one sink, run by its worker thread: hands each record
/// to the real sinks, first saying how many records were dropped since the
/// last one written, and flushes them whenever the queue runs empty.
class DeliverySink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  DeliverySink(std::vector<spdlog::sink_ptr> sinks,
               std::weak_ptr<spdlog::details::thread_pool> pool, std::size_t queue)
      : sinks_(std::move(sinks)), pool_(std::move(pool)), queue_(queue) {}

  /// Whether the worker is inside a sink (possibly stalled in a write).
  bool busy() const { return busy_.load(); }

 protected:
  void sink_it_(const log_msg& msg) override {
    busy_.store(true);
    const auto pool = pool_.lock();
    const std::uint64_t dropped = pool ? pool->overrun_counter() : 0;
    if (dropped > reported_) {
      const auto text = fmt::format(
          "{} log records dropped: the log could not keep up (queue of {}; "
          "{} dropped since start)",
          dropped - reported_, queue_, dropped);
      reported_ = dropped;
      deliver(log_msg(msg.time, {}, msg.logger_name, spdlog::level::warn, text));
    }
    deliver(msg);
    // N.B. flush once the burst is written, not after every record.
    if (pool && pool->queue_size() == 0)
      flush_();
    busy_.store(false);
  }

  void flush_() override {
    for (const auto& s : sinks_)
      s->flush();
  }
  void set_pattern_(const std::string& pattern) override {
    for (const auto& s : sinks_)
      s->set_pattern(pattern);
  }
  void set_formatter_(std::unique_ptr<spdlog::formatter> formatter) override {
    for (const auto& s : sinks_)
      s->set_formatter(formatter->clone());
  }

 private:
  void deliver(const log_msg& msg) {
    for (const auto& s : sinks_) {
      if (s->should_log(msg.level))
        s->log(msg);
    }
  }

  std::vector<spdlog::sink_ptr> sinks_;
  std::weak_ptr<spdlog::details::thread_pool> pool_;
  std::size_t queue_;
  std::uint64_t reported_ = 0;
  std::atomic<bool> busy_{false};
};

// N.B. constant-initialized, so destroyed after spdlog's registry: the
// worker is joined once no logger can post to it.
std::shared_ptr<spdlog::details::thread_pool> g_pool;
std::shared_ptr<DeliverySink> g_delivery;

}  // namespace

void start_async_logging(std::vector<spdlog::sink_ptr> sinks, const LoggingOptions& options) {
  // N.B. one worker: records are written in the order they were logged.
  // Below the io thread's priority: queuing a record costs the io thread a
  // wake-up of the worker, never the write itself.
  auto pool = std::make_shared<spdlog::details::thread_pool>(options.queue, 1,
                                                             lower_current_thread_priority);
  auto delivery = std::make_shared<DeliverySink>(std::move(sinks), pool, options.queue);
  auto logger = std::make_shared<spdlog::async_logger>(
      "discarbiterd", delivery, pool, spdlog::async_overflow_policy::overrun_oldest);
  logger->set_level(spdlog::level::from_str(options.level));
  spdlog::set_default_logger(logger);
  g_delivery = std::move(delivery);
  g_pool = std::move(pool);
}

std::uint64_t log_records_dropped() {
  return g_pool ? g_pool->overrun_counter() : 0;
}

bool drain_logging(std::chrono::milliseconds limit) {
  if (!g_pool)
    return true;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int quiet = 0;
  // N.B. polls: spdlog's queue has no "empty" notification, and this runs
  // once, at exit. Two quiet looks in a row: the worker may have taken the
  // last record and not yet entered the sink.
  while (quiet < 2) {
    quiet = g_pool->queue_size() == 0 && !g_delivery->busy() ? quiet + 1 : 0;
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

}  // namespace discarbiter::host
