// discarbiter.json: the service's configuration (docs/configuration.md).
// Strict: an unknown or ill-typed key is a start-up error naming the key.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/arbiter.hpp"
#include "discarbiter/proto/result.hpp"
#include "drives/simulated_drive.hpp"
#include "transport/log_limiter.hpp"
#include "transport/options.hpp"

namespace discarbiter::host {

struct Config {
  std::string endpoint;  // empty: the platform default
  std::uint32_t simulate = 0;
  bool discover = true;                  // find the OS's recorders and follow hot-plug
  std::vector<std::string> drive_paths;  // opened explicitly (--drive); failure stops start-up
  std::string log_level = "info";
  std::size_t log_queue = 8192;   // logging.queue: records waiting to be written
  transport::LogLimits warnings;  // logging.warning_burst, logging.warnings_per_minute
  core::ArbiterConfig arbiter;
  transport::ListenerOptions listener;  // limits; endpoint is filled at start
  std::map<std::string, drives::SimulatedFaults> simulated_faults;  // by drive id
  /// simulated_media: by drive id, each over the "*" entry; that entry
  /// (simulated_media_default) for the drives not named.
  std::map<std::string, drives::SimulatedMedium> simulated_media;
  drives::SimulatedMedium simulated_media_default;
};

Result<Config> parse_config(const nlohmann::json& document);
/// Every simulated_faults and simulated_media entry (but "*") must name one
/// of the `simulate` drives; checked after the command line has had its say.
Result<Done> check_simulated_faults(const Config& config);
/// The disc in simulated drive `id` ("sim0").
drives::SimulatedMedium simulated_medium_for(const Config& config, const std::string& id);
Result<Config> load_config(const std::filesystem::path& file);

}  // namespace discarbiter::host
