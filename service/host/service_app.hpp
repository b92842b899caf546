// The service assembled: io_context (the arbiter's strand), drives on their
// workers, the listener, and an orderly stop that releases every lock.
#pragma once

#include <functional>
#include <string>

#include "host/config.hpp"

namespace discarbiter::host {

/// Asks the running service for an orderly stop (every lock released first).
/// Safe to call from any thread, any number of times.
using RequestStop = std::function<void(std::string reason)>;

/// How a host (the console, the Windows SCM) follows and controls the service.
struct RunHooks {
  /// Once the endpoint is listening; receives the way to stop the service,
  /// which stays valid until run_service returns.
  std::function<void(RequestStop)> on_ready;
  /// When the orderly stop begins (the SCM hears STOP_PENDING).
  std::function<void(const std::string& reason)> on_stopping;
};

/// Runs until a stop is requested: SIGINT/SIGTERM (Ctrl-C in a console), or
/// through RunHooks::on_ready's RequestStop. Returns the exit code.
int run_service(const Config& config, const RunHooks& hooks = {});

}  // namespace discarbiter::host
