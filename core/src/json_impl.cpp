// Boost.JSON's implementation, compiled once into the core (header-only mode, so the same
// code builds with g++ and em++ without a prebuilt libboost_json).
#include <boost/config.hpp>

#ifdef BOOST_NO_EXCEPTIONS
// Built without exceptions (the browser SDK, wasm/CMakeLists.txt): a Boost throw stops the
// module (bindings.cpp). Boost.JSON's own throw helpers (detail/impl/except.ipp) would build
// the exception before that, with system_error's text (error_code::what(), the source
// location) that nobody reads: 1,300 bytes of the SDK's wasm. Skipping that file and stopping
// here directly changes nothing a caller can see: it aborts either way.
#define BOOST_JSON_DETAIL_IMPL_EXCEPT_IPP
#endif

#include <boost/json/src.hpp>

#ifdef BOOST_NO_EXCEPTIONS
#include <cstdlib>

namespace boost::json::detail {
void throw_bad_alloc(source_location const&) { std::abort(); }
void throw_invalid_argument(char const*, source_location const&) { std::abort(); }
void throw_length_error(char const*, source_location const&) { std::abort(); }
void throw_out_of_range(source_location const&) { std::abort(); }
void throw_system_error(error_code const&, source_location const&) { std::abort(); }
}  // namespace boost::json::detail
#endif
