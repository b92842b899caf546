// discarbiterd: the DiscArbiter service.
#include <CLI/CLI.hpp>
#include <iostream>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "config.hpp"
#include "service_app.hpp"
#include "version.hpp"

int main(int argc, char** argv) {
  using namespace discarbiter;
  CLI::App app{"DiscArbiter service: exclusive access to optical recorder drives", "discarbiterd"};
  app.require_subcommand(1);
  app.set_version_flag("--version", kVersion);

  std::string config_file;
  std::string endpoint;
  std::optional<std::uint32_t> simulate;
  std::string log_level;
  auto* run = app.add_subcommand("run", "run in the foreground (Ctrl-C stops cleanly)");
  run->add_option("--config", config_file, "configuration file (discarbiter.json)")
      ->check(CLI::ExistingFile);
  run->add_option("--endpoint", endpoint, "socket path to listen on");
  run->add_option("--simulate", simulate, "add N simulated drives sim0…");
  run->add_option("--log-level", log_level, "trace, debug, info, warn, error");

  CLI11_PARSE(app, argc, argv);

  host::Config config;
  if (!config_file.empty()) {
    auto loaded = host::load_config(config_file);
    if (!loaded) {
      std::cerr << "discarbiterd: " << loaded.error().message << "\n";
      return 2;
    }
    config = std::move(*loaded);
  }
  if (!endpoint.empty())
    config.endpoint = endpoint;
  if (simulate)
    config.simulate = *simulate;
  if (!log_level.empty())
    config.log_level = log_level;
  if (auto checked = host::check_simulated_faults(config); !checked) {
    std::cerr << "discarbiterd: " << checked.error().message << "\n";
    return 2;
  }
  const auto level = spdlog::level::from_str(config.log_level);
  if (level == spdlog::level::off && config.log_level != "off") {
    std::cerr << "discarbiterd: unknown log level '" << config.log_level << "'\n";
    return 2;
  }
  // N.B. stderr: journald and the console both read it; stdout stays free.
  spdlog::set_default_logger(spdlog::stderr_color_mt("discarbiterd"));
  spdlog::set_level(level);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  try {
    return host::run_service(config);
  } catch (const std::exception& e) {
    spdlog::critical("fatal: {}", e.what());
    return 1;
  }
}
