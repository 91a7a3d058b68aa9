# Header locations for Boost (JSON is used header-only) and Catch2.
# Under em++ the system include dir must never be on the path (its libc headers would shadow
# Emscripten's): we give em++ directories that hold only links to boost/ and catch2/.
set(WAYMARK_SYSTEM_INCLUDE /usr/include CACHE PATH "Where Debian's boost/ and catch2/ headers live")

if(EMSCRIPTEN)
  set(_links ${CMAKE_BINARY_DIR}/third-party-include)
  file(MAKE_DIRECTORY ${_links})
  foreach(_dir boost catch2)
    if(NOT EXISTS ${_links}/${_dir})
      file(CREATE_LINK ${WAYMARK_SYSTEM_INCLUDE}/${_dir} ${_links}/${_dir} SYMBOLIC)
    endif()
  endforeach()
  set(WAYMARK_THIRD_PARTY_INCLUDE ${_links})
else()
  find_path(_boost_json boost/json.hpp PATHS ${WAYMARK_SYSTEM_INCLUDE} REQUIRED)
  set(WAYMARK_THIRD_PARTY_INCLUDE "")
endif()

add_library(waymark_third_party INTERFACE)
if(WAYMARK_THIRD_PARTY_INCLUDE)
  target_include_directories(waymark_third_party SYSTEM INTERFACE ${WAYMARK_THIRD_PARTY_INCLUDE})
endif()
# Boost.JSON header-only: core/src/json_impl.cpp compiles its implementation once.
target_compile_definitions(waymark_third_party INTERFACE BOOST_JSON_NO_LIB BOOST_CONTAINER_NO_LIB)
