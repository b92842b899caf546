# The design card's dependencies, all from Debian's packages (scripts/setup).
find_package(Threads REQUIRED)
find_package(Boost 1.74 REQUIRED)
find_package(nlohmann_json 3.11 REQUIRED)
find_package(fmt 9 REQUIRED)
find_package(spdlog 1.10 REQUIRED)
find_package(CLI11 2.1 REQUIRED)

# Asio is used header-only; one target carries its settings.
add_library(discarbiter_asio INTERFACE)
target_link_libraries(discarbiter_asio INTERFACE Boost::headers Threads::Threads)
target_compile_definitions(discarbiter_asio INTERFACE
  BOOST_ASIO_NO_DEPRECATED BOOST_ASIO_DISABLE_BOOST_COROUTINE)
