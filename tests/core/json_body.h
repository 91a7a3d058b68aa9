// Test helper: a message body written as a boost::json value, turned into the JsonText a
// sender would send (compact, as JSON.stringify writes it).
#pragma once

#include <boost/json.hpp>

#include "waymark/frames.h"

namespace waymark::testing {

inline JsonText body_of(const boost::json::value& value) { return {boost::json::serialize(value)}; }

}  // namespace waymark::testing
