# Warning flags for Waymark's own targets (not for third-party headers).
function(waymark_warnings target)
  # -Wno-missing-field-initializers: frames are aggregates whose optional fields (a relay's
  # `as`, `path`, ...) come last with their defaults, and code names only the fields it sets.
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wno-unused-parameter
                         -Wno-missing-field-initializers)
  # GCC 12 reports std::string's operator+ under -O2 as an overlapping memcpy (a false
  # positive, GCC bug 105329); clang does not know the flag.
  target_compile_options(${target} PRIVATE $<$<CXX_COMPILER_ID:GNU>:-Wno-restrict>)
  # -Wshadow=local is GCC's spelling; em++ (clang) rejects it with a warning of its own.
  target_compile_options(${target} PRIVATE $<$<CXX_COMPILER_ID:GNU>:-Wshadow=local>)
endfunction()
