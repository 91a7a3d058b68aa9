// Boost.JSON's implementation, compiled once into the core (header-only mode, so the same
// code builds with g++ and em++ without a prebuilt libboost_json).
#include <boost/json/src.hpp>
