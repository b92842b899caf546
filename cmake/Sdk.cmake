# The installed SDK's CMake package and pkg-config file (docs/client.md
# "Linking"): lib/cmake/DiscArbiter and lib/pkgconfig/discarbiter.pc. The
# libraries and headers are installed by proto/ and client-lib/.
include(CMakePackageConfigHelpers)

set(cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/DiscArbiter)
install(EXPORT DiscArbiterTargets
  NAMESPACE DiscArbiter::
  DESTINATION ${cmake_dir}
  COMPONENT dev)
configure_package_config_file(cmake/DiscArbiterConfig.cmake.in
  ${CMAKE_BINARY_DIR}/DiscArbiterConfig.cmake
  INSTALL_DESTINATION ${cmake_dir})
# N.B. SameMajorVersion: the major is the library's SONAME.
write_basic_package_version_file(${CMAKE_BINARY_DIR}/DiscArbiterConfigVersion.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES
  ${CMAKE_BINARY_DIR}/DiscArbiterConfig.cmake
  ${CMAKE_BINARY_DIR}/DiscArbiterConfigVersion.cmake
  DESTINATION ${cmake_dir}
  COMPONENT dev)

# N.B. written at install time, so prefix= follows `cmake --install --prefix`.
set(pc_in ${CMAKE_CURRENT_LIST_DIR}/discarbiter.pc.in)
install(CODE "
  set(CMAKE_INSTALL_LIBDIR \"${CMAKE_INSTALL_LIBDIR}\")
  set(CMAKE_INSTALL_INCLUDEDIR \"${CMAKE_INSTALL_INCLUDEDIR}\")
  set(PROJECT_VERSION \"${PROJECT_VERSION}\")
  set(pc \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig/discarbiter.pc\")
  configure_file(\"${pc_in}\" \"\${pc}\" @ONLY)
  message(STATUS \"Installing: \${pc}\")
" COMPONENT dev)
