# Run by `cmake --install` (edge/CMakeLists.txt sets WAYMARK_SDK_DIST, WAYMARK_DEPLOY_SOURCE_DIR
# and WAYMARK_DEPLOY_BINARY_DIR first): copies the browser SDK when there is one, and writes the
# systemd unit and the example config with the paths of the prefix being installed to.

# The browser SDK, all four files or none (a partial SDK would fail in the browser).
set(_sdk_files waymark.js waymark.d.ts waymark_core.js waymark_core.wasm)
set(_found)
set(_missing)
foreach(_file IN LISTS _sdk_files)
  if(EXISTS "${WAYMARK_SDK_DIST}/${_file}")
    list(APPEND _found "${WAYMARK_SDK_DIST}/${_file}")
  else()
    list(APPEND _missing ${_file})
  endif()
endforeach()
if(_missing)
  list(JOIN _missing ", " _missing)
  message(STATUS "Waymark: not installing the browser SDK (share/waymark/sdk): no ${_missing} in "
                 "${WAYMARK_SDK_DIST}. Build the WASM tree, or configure with -DWAYMARK_SDK_DIST=DIR.")
else()
  file(INSTALL DESTINATION "${CMAKE_INSTALL_PREFIX}/share/waymark/sdk" TYPE FILE FILES ${_found})
endif()

# Where the unit reads its config: /etc/waymark for the prefix /usr, /etc/opt/... for /opt/...
# (as GNUInstallDirs puts sysconfdir), else PREFIX/etc/waymark.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr" OR CMAKE_INSTALL_PREFIX STREQUAL "/")
  set(WAYMARK_CONFIG_DIR "/etc/waymark")
elseif(CMAKE_INSTALL_PREFIX MATCHES "^/opt/(.+)$")
  set(WAYMARK_CONFIG_DIR "/etc/opt/${CMAKE_MATCH_1}/waymark")
else()
  set(WAYMARK_CONFIG_DIR "${CMAKE_INSTALL_PREFIX}/etc/waymark")
endif()
set(WAYMARK_PREFIX "${CMAKE_INSTALL_PREFIX}")
configure_file("${WAYMARK_DEPLOY_SOURCE_DIR}/waymark-edge.service.in"
               "${WAYMARK_DEPLOY_BINARY_DIR}/waymark-edge.service" @ONLY)
configure_file("${WAYMARK_DEPLOY_SOURCE_DIR}/waymark-edge.env.in"
               "${WAYMARK_DEPLOY_BINARY_DIR}/waymark-edge.env" @ONLY)
file(INSTALL DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/systemd/system" TYPE FILE
     FILES "${WAYMARK_DEPLOY_BINARY_DIR}/waymark-edge.service")
file(INSTALL DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/sysusers.d" TYPE FILE
     FILES "${WAYMARK_DEPLOY_SOURCE_DIR}/waymark.conf")
file(INSTALL DESTINATION "${CMAKE_INSTALL_PREFIX}/share/waymark/examples" TYPE FILE
     FILES "${WAYMARK_DEPLOY_BINARY_DIR}/waymark-edge.env")
