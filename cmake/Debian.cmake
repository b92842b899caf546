# The Debian packages (`cpack -G DEB` in build/linux; tests/sdk/test_deb.py):
#   discarbiter_<version>_amd64.deb      service, CLI, systemd unit, config,
#                                        the shared library, docs
#   discarbiter-dev_<version>_amd64.deb  headers, CMake package, pkg-config
#                                        file, static library, the .so link
# Split by install component (runtime, dev). Installed under /usr, the
# configuration under /etc (installer/linux/CMakeLists.txt).
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME discarbiter)
set(CPACK_PACKAGE_VENDOR "DiscArbiter")
set(CPACK_PACKAGE_CONTACT "DiscArbiter maintainers <maintainers@users.noreply.r-seed-030e39f5.example>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_INSTALL_PREFIX /usr)
# N.B. DESTDIR, so paths written at install time (the unit's ExecStart, the
# .pc's prefix) say /usr, not CPack's staging directory.
set(CPACK_SET_DESTDIR ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL runtime dev)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # name_version_arch.deb
set(CPACK_DEBIAN_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# The runtime package's shlibs file.
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY "=")

set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME discarbiter)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_RUNTIME_DESCRIPTION "exclusive access to optical recorders for burning applications
DiscArbiter is a system service that owns every optical recorder on the
machine and grants exclusive access to one burning application at a time,
with the semantics of Windows' IMAPI2 (AcquireExclusiveAccess,
ReleaseExclusiveAccess, SendCommand...).

This package holds the service (discarbiterd) with its systemd unit and
configuration, the command-line client (discarb) and the client library
(libdiscarbiter.so.0).")
# N.B. the first line of each description is the package's synopsis.
# The configuration is a conffile; the library's ldconfig runs by the
# trigger (lintian wants it so) rather than in postinst/postrm, which CPack
# would otherwise write: ours are empty.
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_EXTRA
  ${CMAKE_CURRENT_LIST_DIR}/debian/conffiles
  ${CMAKE_CURRENT_LIST_DIR}/debian/triggers
  ${CMAKE_CURRENT_LIST_DIR}/debian/postinst
  ${CMAKE_CURRENT_LIST_DIR}/debian/postrm)

set(CPACK_DEBIAN_DEV_PACKAGE_NAME discarbiter-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "discarbiter (= ${PROJECT_VERSION})")
set(CPACK_DEBIAN_DEV_DESCRIPTION "development files of the DiscArbiter client library
DiscArbiter is a system service that owns every optical recorder on the
machine and grants exclusive access to one burning application at a time.

This package holds the client library's headers (C ABI and C++20 API), its
static library, the CMake package (find_package(DiscArbiter)) and the
pkg-config file (discarbiter.pc).")

# Each package's copyright and (native package) changelog.gz.
configure_file(${CMAKE_CURRENT_LIST_DIR}/debian/changelog.in ${CMAKE_BINARY_DIR}/debian/changelog
  @ONLY)
execute_process(COMMAND gzip -n -9 -c ${CMAKE_BINARY_DIR}/debian/changelog
  OUTPUT_FILE ${CMAKE_BINARY_DIR}/debian/changelog.gz COMMAND_ERROR_IS_FATAL ANY)
foreach(component runtime dev)
  set(package discarbiter)
  if(component STREQUAL dev)
    set(package discarbiter-dev)
  endif()
  install(FILES ${CMAKE_CURRENT_LIST_DIR}/debian/copyright ${CMAKE_BINARY_DIR}/debian/changelog.gz
    DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/${package} COMPONENT ${component})
endforeach()

include(CPack)
