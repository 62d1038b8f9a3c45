// Python semantics of the template operators: arithmetic, concatenation, attribute and item
// access, slicing. Strings keep their input tags through every operation.
#pragma once

#include <string>

#include "common/result.h"
#include "engine/text/jinja_value.h"

namespace latentserve::engine::text::jinja {

// op is one of + - * / // % ** ~
Result<Value> binary_op(const std::string& op, const Value& a, const Value& b);
Result<Value> unary_minus(const Value& v);

// obj.name: dict keys, bound str/dict methods; missing ones are undefined. Undefined obj: error.
Result<Value> get_attr(const Value& obj, const std::string& name);
// obj[key]: dict keys, list/str indexes (negative from the end); missing ones are undefined.
Result<Value> get_item(const Value& obj, const Value& key);
// obj[start:stop:step] on lists and strings (by code point); absent parts are none.
Result<Value> get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step);

// "'x' is undefined" or "'dict object' has no attribute 'y'".
std::string undefined_message(const Value& v);

}  // namespace latentserve::engine::text::jinja
