// JSON text to a Boost.JSON value, with every number that has a fraction or an exponent read
// exactly. Boost.JSON 1.81's own parser is not correctly rounded: about one double in ten that
// json::serialize writes (the shortest text that means it) reads back one or two units in the last
// place off. The state file, the control protocol and the fleet's desired state carry doubles
// (rollout ratios, p99 figures) that must read back as written; later Boost.JSON releases offer
// this as parse_options::numbers = precise.
#pragma once

#include <boost/json/value.hpp>
#include <boost/system/error_code.hpp>

#include <string_view>

namespace proxyd {

// As json::parse(text, ec): one JSON text, nothing after it but whitespace, nesting up to 32.
boost::json::value parse_json(std::string_view text, boost::system::error_code& ec);

}  // namespace proxyd
