// discarbiterd: the DiscArbiter service.
//
//   discarbiterd run [options]        in the foreground (Ctrl-C stops cleanly)
//   discarbiterd [options]            as started by the service manager (SCM)
//   discarbiterd install [--start auto|demand] [options]
//   discarbiterd uninstall
//   discarbiterd prepare-data           the data directory, protected (Windows)
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "host/config.hpp"
#include "host/logging.hpp"
#include "host/platform.hpp"
#include "host/service_app.hpp"
#include "host/system_service.hpp"
#include "host/version.hpp"

namespace {

using namespace discarbiter;

/// How long the queued log records may take to be written at exit.
constexpr auto kLogDrainLimit = std::chrono::seconds(2);

/// The options every mode shares; they also make up an installed binPath.
struct ServiceOptions {
  std::string config_file;
  std::string endpoint;
  std::optional<std::uint32_t> simulate;
  std::vector<std::string> drives;
  bool no_discover = false;
  std::string log_level;

  std::vector<std::string> as_arguments() const {
    std::vector<std::string> args;
    if (!config_file.empty())
      args.insert(args.end(), {"--config", std::filesystem::absolute(config_file).string()});
    if (!endpoint.empty())
      args.insert(args.end(), {"--endpoint", endpoint});
    if (simulate)
      args.insert(args.end(), {"--simulate", std::to_string(*simulate)});
    for (const auto& d : drives)
      args.insert(args.end(), {"--drive", d});
    if (no_discover)
      args.emplace_back("--no-discover");
    if (!log_level.empty())
      args.insert(args.end(), {"--log-level", log_level});
    return args;
  }
};

/// The configuration the options describe, or why not. As the system
/// service (`as_service`), the default config file is read when no --config
/// is given, and only a file the platform says the service may trust.
Result<host::Config> make_config(const ServiceOptions& options, bool as_service) {
  host::Config config;
  std::string file = options.config_file;
  if (file.empty() && as_service && std::filesystem::exists(host::default_config_path()))
    file = host::default_config_path();
  if (!file.empty()) {
    if (as_service) {
      if (auto trusted = host::check_config_file(file); !trusted)
        return trusted.error();
    }
    auto loaded = host::load_config(file);
    if (!loaded)
      return loaded.error();
    config = std::move(*loaded);
  }
  if (!options.endpoint.empty())
    config.endpoint = options.endpoint;
  if (options.simulate)
    config.simulate = *options.simulate;
  config.drive_paths.insert(config.drive_paths.end(), options.drives.begin(), options.drives.end());
  if (options.no_discover)
    config.discover = false;
  if (!options.log_level.empty())
    config.log_level = options.log_level;
  if (auto checked = host::check_simulated_faults(config); !checked)
    return checked.error();
  const auto level = spdlog::level::from_str(config.log_level);
  if (level == spdlog::level::off && config.log_level != "off")
    return Error{errc::invalid_arg, fmt::format("unknown log level '{}'", config.log_level)};
  return config;
}

int run_in_console(const host::Config& config) {
  // N.B. stderr: journald and the console both read it; stdout stays free.
  host::start_async_logging({std::make_shared<spdlog::sinks::stderr_color_sink_mt>()},
                            {config.log_level, config.log_queue});
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  try {
    return host::run_service(config);
  } catch (const std::exception& e) {
    spdlog::critical("fatal: {}", e.what());
    return 1;
  }
}

int report(const char* what, const Result<Done>& done) {
  if (!done) {
    std::cerr << "discarbiterd: " << what << ": " << done.error().message << "\n";
    return 1;
  }
  std::cout << "discarbiterd: " << what << ": done\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // N.B. first: every thread started from here on inherits the blocked
  // stop signals; run_service lets them reach its io thread alone.
  host::hold_stop_signals();
  CLI::App app{"DiscArbiter service: exclusive access to optical recorder drives", "discarbiterd"};
  app.require_subcommand(0, 1);
  app.set_version_flag("--version", std::string(kVersion));
  app.footer(
      "With no subcommand, discarbiterd runs as the service that the service manager started.\n");

  ServiceOptions options;
  app.add_option("--config", options.config_file, "configuration file (discarbiter.json)")
      ->check(CLI::ExistingFile);
  app.add_option("--endpoint", options.endpoint, "socket path or pipe name to listen on");
  app.add_option("--simulate", options.simulate, "add N simulated drives sim0…");
  app.add_option("--drive", options.drives,
                 "open this recorder as well (/dev/sr0, /dev/sg1, \\\\.\\CdRom0); repeatable");
  app.add_flag("--no-discover", options.no_discover,
               "only the drives named with --drive (and --simulate): no discovery, no hot-plug");
  app.add_option("--log-level", options.log_level, "trace, debug, info, warn, error");

  auto* run = app.add_subcommand("run", "run in the foreground (Ctrl-C stops cleanly)");
  run->fallthrough();
  std::string start = "auto";
  auto* install = app.add_subcommand(
      "install", "register the service (LocalSystem, restart on failure) with the given options");
  install->fallthrough();
  install->add_option("--start", start, "auto or demand")->check(CLI::IsMember({"auto", "demand"}));
  auto* uninstall = app.add_subcommand("uninstall", "stop the service if it runs, and remove it");
  auto* prepare_data = app.add_subcommand(
      "prepare-data",
      "Windows: create %ProgramData%\\DiscArbiter with its protected DACL, or check it (the "
      "MSI runs this)");

  CLI11_PARSE(app, argc, argv);

  if (*install) {
    if (auto config = make_config(options, false); !config) {
      std::cerr << "discarbiterd: " << config.error().message << "\n";
      return 2;
    }
    return report("install", host::install_system_service({.start_automatically = start == "auto",
                                                           .arguments = options.as_arguments()}));
  }
  if (*uninstall)
    return report("uninstall", host::uninstall_system_service());
  if (*prepare_data)
    return report("prepare-data", host::prepare_data_directory());
  int code = 0;
  if (*run) {
    auto config = make_config(options, false);
    if (!config) {
      std::cerr << "discarbiterd: " << config.error().message << "\n";
      return 2;
    }
    code = run_in_console(*config);
  } else {
    // N.B. the service loads its configuration itself, once it has checked
    // the folder the file is in.
    code = host::run_as_system_service([&] { return make_config(options, true); });
  }
  if (!host::drain_logging(kLogDrainLimit)) {
    // N.B. a sink is stalled (nobody reads our stderr): the records still
    // queued are lost either way, and an orderly exit would wait for ever.
    std::_Exit(code);
  }
  return code;
}
