// The platform's service manager: running under it and registering with it.
// One definition per platform (system_service_windows.cpp: the SCM;
// system_service_posix.cpp: systemd starts `discarbiterd run`, see README).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "discarbiter/proto/result.hpp"
#include "host/config.hpp"

namespace discarbiter::host {

/// The service's names in the service manager (DESIGN.md "Names").
inline constexpr std::string_view kServiceName = "DiscArbiter";
inline constexpr std::string_view kServiceDisplayName = "Disc Arbiter (optical drive access)";
inline constexpr std::string_view kServiceDescription =
    "Arbitrates exclusive access to CD/DVD/BD recorders between burning applications.";

/// Makes the service's configuration (the command line and the config file).
using ConfigLoader = std::function<Result<Config>()>;

/// Runs as the service the service manager started (discarbiterd with no
/// subcommand). The configuration is loaded only once the service trusts its
/// data directory (Windows: %ProgramData%\DiscArbiter, see
/// data_directory_windows.hpp). Returns the exit code; 2 with a message when
/// the process was not started by the service manager.
int run_as_system_service(const ConfigLoader& load_config);

/// Windows: creates %ProgramData%\DiscArbiter and its logs\ with their
/// protected DACL, or checks the ones that exist (a folder someone else could
/// change is refused, never repaired). `discarbiterd install`, the MSI
/// (`discarbiterd prepare-data`) and the service at every start do this.
/// POSIX: nothing to do.
Result<Done> prepare_data_directory();

/// Exit code of a service that refuses its data directory or configuration
/// file because someone other than SYSTEM or Administrators could change it.
inline constexpr int kUntrustedDataExitCode = 3;

/// Whether the service may read this configuration file. Windows: it, and
/// the folder it is in, can be changed only by SYSTEM and Administrators
/// (check_trusted_path). POSIX: not checked here (the unit's file under
/// /etc belongs to root).
Result<Done> check_config_file(const std::string& path);

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
