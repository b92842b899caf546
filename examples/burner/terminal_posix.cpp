#include "terminal.hpp"

#include <unistd.h>

namespace burner {

bool stdout_is_terminal() {
  return isatty(STDOUT_FILENO) == 1;
}

}  // namespace burner
