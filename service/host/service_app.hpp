// The service assembled: io_context (the arbiter's strand), drives on their
// workers, the listener, and an orderly stop that releases every lock.
#pragma once

#include <functional>

#include "config.hpp"

namespace discarbiter::host {

/// Runs until stop is requested (SIGINT/SIGTERM here; the SCM on Windows).
/// on_ready runs once the endpoint is listening. Returns the exit code.
int run_service(const Config& config, const std::function<void()>& on_ready = {});

}  // namespace discarbiter::host
