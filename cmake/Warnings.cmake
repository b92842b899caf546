# discarbiter_warnings(target): the project's warning set, as errors unless
# DISCARBITER_WARNINGS_AS_ERRORS is OFF.
add_library(discarbiter_warnings INTERFACE)
if(MSVC)
  # docs/windows.md "MSVC with vcpkg".
  target_compile_options(discarbiter_warnings INTERFACE /W4 /permissive- /utf-8)
  if(DISCARBITER_WARNINGS_AS_ERRORS)
    target_compile_options(discarbiter_warnings INTERFACE /WX)
  endif()
  return()
endif()
target_compile_options(discarbiter_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
  -Wnon-virtual-dtor -Wold-style-cast -Woverloaded-virtual
  -Wimplicit-fallthrough)
if(DISCARBITER_WARNINGS_AS_ERRORS)
  target_compile_options(discarbiter_warnings INTERFACE -Werror)
endif()
