#include <iostream>

#include "host/system_service.hpp"

namespace discarbiter::host {

int run_as_system_service(const ConfigLoader&) {
  std::cerr << "discarbiterd: say what to do: `discarbiterd run` runs the service (systemd's unit "
               "runs exactly that); see --help\n";
  return 2;
}

Result<Done> install_system_service(const InstallOptions&) {
  return Error{errc::fail,
               "on Linux the service is installed as a systemd unit, not by discarbiterd "
               "(run `discarbiterd run` from a unit)"};
}

Result<Done> uninstall_system_service() {
  return install_system_service({});
}

Result<Done> prepare_data_directory() {
  return Done{};
}

Result<Done> check_config_file(const std::string&) {
  return Done{};
}

std::string default_config_path() {
  return "/etc/discarbiter/discarbiter.json";
}

}  // namespace discarbiter::host
