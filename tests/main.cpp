// The Catch2 runner shared by the test binaries.
#define CATCH_CONFIG_MAIN
#define CATCH_CONFIG_NO_POSIX_SIGNALS  // none under WebAssembly; identical behaviour natively
#include <catch2/catch.hpp>
