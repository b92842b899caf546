# The design card's dependencies, all from Debian's packages (scripts/setup).
#
# Native builds (Linux, or MSVC with vcpkg: docs/windows.md) find them as
# installed packages. The MinGW-w64 cross build uses the same Debian headers,
# header-only: see "Cross build" below.
find_package(Threads REQUIRED)

if(CMAKE_CROSSCOMPILING AND MINGW)
  # Cross build: Boost.Asio, nlohmann/json, spdlog, fmt and CLI11 are used
  # header-only from /usr/include. N.B. never put /usr/include itself on the
  # include path: its glibc headers would shadow MinGW's. A directory of
  # symlinks to just these libraries is safe.
  set(DISCARBITER_HOST_INCLUDE /usr/include CACHE PATH
    "Where the host's Boost, nlohmann, spdlog, fmt and CLI11 headers are")
  set(cross_include "${CMAKE_BINARY_DIR}/cross-include")
  file(MAKE_DIRECTORY "${cross_include}")
  foreach(dir boost nlohmann spdlog fmt CLI)
    if(NOT EXISTS "${DISCARBITER_HOST_INCLUDE}/${dir}")
      message(FATAL_ERROR "cross build: ${DISCARBITER_HOST_INCLUDE}/${dir} is missing "
        "(run scripts/setup)")
    endif()
    file(CREATE_LINK "${DISCARBITER_HOST_INCLUDE}/${dir}" "${cross_include}/${dir}" SYMBOLIC)
  endforeach()

  function(discarbiter_header_only name)
    add_library(${name} INTERFACE IMPORTED GLOBAL)
    target_include_directories(${name} SYSTEM INTERFACE "${cross_include}")
    target_compile_definitions(${name} INTERFACE ${ARGN})
  endfunction()
  discarbiter_header_only(Boost::headers)
  discarbiter_header_only(nlohmann_json::nlohmann_json)
  discarbiter_header_only(fmt::fmt FMT_HEADER_ONLY)
  discarbiter_header_only(fmt::fmt-header-only FMT_HEADER_ONLY)
  discarbiter_header_only(spdlog::spdlog SPDLOG_HEADER_ONLY SPDLOG_FMT_EXTERNAL FMT_HEADER_ONLY)
  discarbiter_header_only(CLI11::CLI11)
else()
  find_package(Boost 1.74 REQUIRED)
  find_package(nlohmann_json 3.11 REQUIRED)
  find_package(fmt 9 REQUIRED)
  find_package(spdlog 1.10 REQUIRED)
  find_package(CLI11 2.1 REQUIRED)
endif()

# Asio is used header-only; one target carries its settings.
# N.B. on Linux Asio's epoll reactor always sleeps on a timerfd (Boost 1.74
# has no switch to turn it off), and cancelling a timer does not re-arm it:
# see transport/reactor_timeout.hpp for how the service avoids waking at a
# cancelled deadline.
add_library(discarbiter_asio INTERFACE)
target_link_libraries(discarbiter_asio INTERFACE Boost::headers Threads::Threads)
target_compile_definitions(discarbiter_asio INTERFACE
  BOOST_ASIO_NO_DEPRECATED BOOST_ASIO_DISABLE_BOOST_COROUTINE)
if(WIN32)
  # N.B. _WIN32_WINNT before any Windows header: Windows 10 APIs
  # (CM_Register_Notification, PIPE_REJECT_REMOTE_CLIENTS) and Asio's choice
  # of IOCP features both depend on it.
  target_compile_definitions(discarbiter_asio INTERFACE _WIN32_WINNT=0x0A00 WIN32_LEAN_AND_MEAN
    NOMINMAX)
  target_link_libraries(discarbiter_asio INTERFACE ws2_32 mswsock)
endif()

# Win32 helpers shared by the service and the client library (handles,
# errors, UTF-16, the process id): header-only, Windows builds only. Each
# platform's directory may hold a header at the same path as its twin's
# (discarbiter/process.hpp): the target a build links chooses the definition.
if(WIN32)
  add_library(discarbiter_win32 INTERFACE)
  target_include_directories(discarbiter_win32 INTERFACE ${PROJECT_SOURCE_DIR}/support/win32)
  target_compile_definitions(discarbiter_win32 INTERFACE _WIN32_WINNT=0x0A00 WIN32_LEAN_AND_MEAN
    NOMINMAX)
  target_link_libraries(discarbiter_win32 INTERFACE advapi32)
else()
  # Their POSIX twins (file descriptors, errors, naming users, the process
  # id): header-only.
  add_library(discarbiter_posix INTERFACE)
  target_include_directories(discarbiter_posix INTERFACE ${PROJECT_SOURCE_DIR}/support/posix)
endif()
