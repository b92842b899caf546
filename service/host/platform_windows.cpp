#include "host/platform.hpp"

namespace discarbiter::host {

std::string_view platform_name() {
  return "windows";
}

}  // namespace discarbiter::host
