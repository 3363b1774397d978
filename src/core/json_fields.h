// Lenient readers of the JSON answers of providers' APIs (SoftLayer, Nova): a field that is
// missing or of another type reads as empty, so one odd field does not fail a whole listing.
// Numbers written as strings and strings holding numbers read alike, as these APIs mix both.
#pragma once

#include <boost/json.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace bitfusion::internal {

/// `v` as an object; null when it is null or not an object.
inline const boost::json::object* JsonObject(const boost::json::value* v) {
  return v != nullptr && v->is_object() ? &v->as_object() : nullptr;
}

/// The object at `key` of `o`; null when `o` is null or the member is missing or no object.
inline const boost::json::object* JsonObjectAt(const boost::json::object* o, std::string_view key) {
  return o == nullptr ? nullptr : JsonObject(o->if_contains(key));
}

/// The array at `key` of `o`; null when `o` is null or the member is missing or no array.
inline const boost::json::array* JsonArrayAt(const boost::json::object* o, std::string_view key) {
  const boost::json::value* v = o == nullptr ? nullptr : o->if_contains(key);
  return v != nullptr && v->is_array() ? &v->as_array() : nullptr;
}

/// The string at `key` of `o`, or an integer there in decimal; "" for anything else.
inline std::string JsonStringAt(const boost::json::object* o, std::string_view key) {
  const boost::json::value* v = o == nullptr ? nullptr : o->if_contains(key);
  if (v == nullptr) return "";
  if (v->is_string()) return std::string(v->as_string());
  if (v->is_int64()) return std::to_string(v->as_int64());
  if (v->is_uint64()) return std::to_string(v->as_uint64());
  return "";
}

/// JsonStringAt read as a decimal integer (strtoll: 0 when there is none, clamped to int64).
inline std::int64_t JsonIntAt(const boost::json::object* o, std::string_view key) {
  return std::strtoll(JsonStringAt(o, key).c_str(), nullptr, 10);
}

}  // namespace bitfusion::internal
