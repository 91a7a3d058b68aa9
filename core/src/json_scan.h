// The raw text of values inside JSON text that a parser has already accepted, so that a message
// body is kept exactly as its sender wrote it (JsonText) while its frame is read from the DOM.
// Private to the core. Pure functions; any thread.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

namespace waymark::json_scan {

// The text of member `key` of the JSON object `object_text` (the last one when the key is
// repeated, as boost::json keeps the last), or nullopt when there is none. Keys are compared
// after unescaping ("b\u006fdy" is "body").
// REQUIRES: object_text is valid JSON; on anything else the result is nullopt or a part of it,
// and nothing is read past its end.
std::optional<std::string_view> raw_member(std::string_view object_text, std::string_view key);

// The texts of the elements of the JSON array `array_text`, in order (empty for anything
// that is not an array). REQUIRES: as raw_member.
std::vector<std::string_view> raw_elements(std::string_view array_text);

}  // namespace waymark::json_scan
