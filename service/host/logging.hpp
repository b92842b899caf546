// The service's log: spdlog's asynchronous logger over the platform's sinks
// (stderr in a console and under systemd; the rotating file and the Event
// Log under the Windows SCM), behind a bounded queue.
//
// N.B. why asynchronous and bounded: a log record is written by one worker
// thread, never by the io thread that serves every client, so a sink that
// stalls (a stderr pipe nobody reads, a slow journald) stalls no request.
// When the queue is full the oldest record is dropped and counted; the count
// is in status ("log_dropped") and in the log itself, as a warning written
// before the next record that gets through.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <spdlog/common.h>

namespace discarbiter::host {

struct LoggingOptions {
  std::string level = "info";
  std::size_t queue = 8192;  // records waiting for the worker; beyond, the oldest is dropped
};

inline constexpr std::size_t kMinLogQueue = 16;
inline constexpr std::size_t kMaxLogQueue = 1 << 20;

/// Makes the default logger an asynchronous logger over `sinks` (replacing
/// any earlier one). The pattern is set by the caller afterwards.
void start_async_logging(std::vector<spdlog::sink_ptr> sinks, const LoggingOptions& options);

/// Records dropped because the queue was full, since start_async_logging.
std::uint64_t log_records_dropped();

/// Waits at most `limit` for every queued record to be written. False when
/// a sink is stalled: the caller then leaves with std::_Exit, because
/// spdlog's own shutdown would wait for the stalled write for ever.
bool drain_logging(std::chrono::milliseconds limit);

}  // namespace discarbiter::host
