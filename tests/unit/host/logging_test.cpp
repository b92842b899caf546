#include "host/logging.hpp"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

namespace discarbiter::host {
namespace {

using namespace std::chrono_literals;

/// A sink that stalls every write until opened (a stderr nobody reads), and
/// records what it was given.
class GateSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  void open() {
    {
      std::lock_guard lock(gate_);
      open_ = true;
    }
    opened_.notify_all();
  }
  std::vector<std::string> lines() {
    std::lock_guard lock(gate_);
    return lines_;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    std::unique_lock lock(gate_);
    opened_.wait(lock, [this] { return open_; });
    lines_.emplace_back(msg.payload.data(), msg.payload.size());
  }
  void flush_() override {}

 private:
  std::mutex gate_;
  std::condition_variable opened_;
  bool open_ = false;
  std::vector<std::string> lines_;
};

TEST(Logging, AStalledSinkStallsNoCallerAndTheDropsAreCountedAndReported) {
  const auto previous = spdlog::default_logger();
  auto gate = std::make_shared<GateSink>();
  start_async_logging({gate}, {.level = "info", .queue = 16});

  const auto began = std::chrono::steady_clock::now();
  for (int i = 0; i < 1000; ++i)
    spdlog::info("record {}", i);
  spdlog::debug("below the level: not queued");
  const auto took = std::chrono::steady_clock::now() - began;
  EXPECT_LT(took, 1s) << "logging waited for the stalled sink";
  // The worker holds one record in the stalled write; the queue keeps 16.
  EXPECT_GE(log_records_dropped(), 1000u - 17u);
  EXPECT_FALSE(drain_logging(50ms)) << "a stalled sink reported as drained";

  gate->open();
  spdlog::info("after the stall");
  EXPECT_TRUE(drain_logging(10s));
  const auto lines = gate->lines();
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.back(), "after the stall");
  // Every dropped record is in one of the reports, which come before the
  // first record written after the drops ("N log records dropped: …").
  std::uint64_t reported = 0;
  std::size_t reports = 0;
  for (const auto& line : lines) {
    if (line.find(" log records dropped") != std::string::npos) {
      reported += std::stoull(line);
      ++reports;
    }
  }
  EXPECT_EQ(reported, log_records_dropped());
  // Each record was either written or dropped.
  EXPECT_EQ(lines.size() - reports, 1000u - log_records_dropped() + 1u);
  spdlog::set_default_logger(previous);
}

}  // namespace
}  // namespace discarbiter::host
