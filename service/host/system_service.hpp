// The platform's service manager: running under it and registering with it.
// One definition per platform (system_service_windows.cpp: the SCM;
// system_service_posix.cpp: systemd starts `discarbiterd run`, see README).
#pragma once

#include <string>
#include <vector>

#include "config.hpp"
#include "discarbiter/proto/result.hpp"

namespace discarbiter::host {

/// The service's names in the service manager (DESIGN.md "Names").
inline constexpr std::string_view kServiceName = "DiscArbiter";
inline constexpr std::string_view kServiceDisplayName = "Disc Arbiter (optical drive access)";
inline constexpr std::string_view kServiceDescription =
    "Arbitrates exclusive access to CD/DVD/BD recorders between burning applications.";

/// Runs as the service the service manager started (discarbiterd with no
/// subcommand). Returns the exit code; 2 with a message when the process was
/// not started by the service manager.
int run_as_system_service(const Config& config);

struct InstallOptions {
  bool start_automatically = true;  // `--start auto` (else demand)
  /// Passed to the service on every start (its binPath), e.g. --simulate 2.
  std::vector<std::string> arguments;
};

/// Registers the service (LocalSystem, recovery actions) and its event source.
Result<Done> install_system_service(const InstallOptions& options);
/// Stops the service if it runs, then removes it.
Result<Done> uninstall_system_service();

/// The configuration file the service reads when --config is not given.
std::string default_config_path();

}  // namespace discarbiter::host
