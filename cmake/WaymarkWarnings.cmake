# Warning flags for Waymark's own targets (not for third-party headers).
function(waymark_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wno-unused-parameter)
  # -Wshadow=local is GCC's spelling; em++ (clang) rejects it with a warning of its own.
  target_compile_options(${target} PRIVATE $<$<CXX_COMPILER_ID:GNU>:-Wshadow=local>)
endfunction()
