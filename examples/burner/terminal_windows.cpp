#include "terminal.hpp"

#include <io.h>
#include <stdio.h>

namespace burner {

bool stdout_is_terminal() {
  return _isatty(_fileno(stdout)) != 0;
}

}  // namespace burner
