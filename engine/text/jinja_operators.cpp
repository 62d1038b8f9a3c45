#include "engine/text/jinja_operators.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/text/jinja_methods.h"

namespace latentserve::engine::text::jinja {
namespace {

Error unsupported(const std::string& op, const Value& a, const Value& b) {
  return make_error("unsupported operand type(s) for " + op + ": '" + a.type_name() + "' and '" + b.type_name() + "'");
}

Result<Value> repeat(const Value& seq, int64_t n) {
  if (n > 0 && seq.is_string() && seq.as_string().size() * static_cast<uint64_t>(n) > (size_t{1} << 30)) {
    return make_error("repeated string too large");
  }
  if (n > 0 && seq.is_list() && seq.as_list().size() * static_cast<uint64_t>(n) > (size_t{1} << 24)) {
    return make_error("repeated list too large");
  }
  if (seq.is_string()) {
    TaggedString out;
    for (int64_t i = 0; i < n; ++i) out.append(seq.as_string());
    return Value::string(std::move(out));
  }
  List out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), seq.as_list().begin(), seq.as_list().end());
  return Value::list(std::move(out), seq.is_tuple());
}

Result<Value> int_arith(char op, int64_t x, int64_t y) {
  int64_t r = 0;
  bool overflow = false;
  switch (op) {
    case '+': overflow = __builtin_add_overflow(x, y, &r); break;
    case '-': overflow = __builtin_sub_overflow(x, y, &r); break;
    case '*': overflow = __builtin_mul_overflow(x, y, &r); break;
    case '/':  // floor division
    case '%': {
      if (y == 0) return make_error("integer division or modulo by zero");
      if (x == std::numeric_limits<int64_t>::min() && y == -1) return make_error("integer overflow");
      int64_t q = x / y, m = x % y;
      if (m != 0 && ((m < 0) != (y < 0))) {
        q -= 1;
        m += y;
      }
      r = op == '/' ? q : m;
      break;
    }
    default: break;
  }
  if (overflow) return make_error("integer overflow");
  return Value::integer(r);
}

Result<Value> power(const Value& a, const Value& b) {
  if (a.is_integral() && b.is_integral() && b.as_int() >= 0) {
    int64_t result = 1, base = a.as_int(), e = b.as_int();
    while (e > 0) {
      if (e & 1) {
        if (__builtin_mul_overflow(result, base, &result)) return make_error("integer overflow");
      }
      e >>= 1;
      if (e > 0 && __builtin_mul_overflow(base, base, &base)) return make_error("integer overflow");
    }
    return Value::integer(result);
  }
  if (a.as_float() == 0.0 && b.as_float() < 0) return make_error("zero to a negative power");
  return Value::floating(std::pow(a.as_float(), b.as_float()));
}

Result<Value> arithmetic(const std::string& op, const Value& a, const Value& b) {
  if (op == "**") return power(a, b);
  if (a.is_integral() && b.is_integral()) {
    if (op == "/") {
      if (b.as_int() == 0) return make_error("division by zero");
      return Value::floating(static_cast<double>(a.as_int()) / static_cast<double>(b.as_int()));
    }
    return int_arith(op == "//" ? '/' : op[0], a.as_int(), b.as_int());
  }
  const double x = a.as_float(), y = b.as_float();
  if (op == "+") return Value::floating(x + y);
  if (op == "-") return Value::floating(x - y);
  if (op == "*") return Value::floating(x * y);
  if (y == 0.0) return make_error("float division by zero");
  if (op == "/") return Value::floating(x / y);
  // Python's float_floor_div / float_rem.
  double mod = std::fmod(x, y);
  double div = (x - mod) / y;
  if (mod != 0.0 && ((y < 0) != (mod < 0))) {
    mod += y;
    div -= 1.0;
  }
  if (op == "%") return Value::floating(mod == 0.0 ? std::copysign(0.0, y) : mod);
  double floordiv = std::copysign(0.0, x / y);
  if (div != 0.0) {
    floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
  }
  return Value::floating(floordiv);
}

// Python's slice.indices(): clamps start/stop for a sequence of length n.
Status slice_indices(int64_t n, const Value& start, const Value& stop, const Value& step, int64_t& b, int64_t& e, int64_t& s) {
  for (const Value* v : {&start, &stop, &step}) {
    if (!v->is_none() && !v->is_undefined() && !v->is_integral()) return make_error("slice indices must be integers or None");
  }
  s = (step.is_none() || step.is_undefined()) ? 1 : step.as_int();
  if (s == 0) return make_error("slice step cannot be zero");
  auto clamp = [&](const Value& v, int64_t fallback) {
    if (v.is_none() || v.is_undefined()) return fallback;
    int64_t i = v.as_int();
    if (i < 0) i += n;
    if (s > 0) return std::clamp<int64_t>(i, 0, n);
    return std::clamp<int64_t>(i, -1, n - 1);
  };
  b = clamp(start, s > 0 ? 0 : n - 1);
  e = clamp(stop, s > 0 ? n : -1);
  return ok_status();
}

}  // namespace

std::string undefined_message(const Value& v) {
  const std::string& hint = v.undefined_hint();
  return hint.empty() ? "value is undefined" : hint;
}

Result<Value> binary_op(const std::string& op, const Value& a, const Value& b) {
  if (op == "~") {
    TaggedString s = to_str(a);
    s.append(to_str(b));
    return Value::string(std::move(s));
  }
  if (a.is_undefined()) return make_error(undefined_message(a));
  if (b.is_undefined()) return make_error(undefined_message(b));
  if (a.is_number() && b.is_number()) return arithmetic(op, a, b);
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      TaggedString s = a.as_string();
      s.append(b.as_string());
      return Value::string(std::move(s));
    }
    if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
      List items = a.as_list();
      items.insert(items.end(), b.as_list().begin(), b.as_list().end());
      return Value::list(std::move(items), a.is_tuple());
    }
  }
  if (op == "*") {
    if ((a.is_string() || a.is_list()) && b.is_integral()) return repeat(a, b.as_int());
    if ((b.is_string() || b.is_list()) && a.is_integral()) return repeat(b, a.as_int());
  }
  return unsupported(op, a, b);
}

Result<Value> unary_minus(const Value& v) {
  if (v.is_integral()) {
    if (v.as_int() == std::numeric_limits<int64_t>::min()) return make_error("integer overflow");
    return Value::integer(-v.as_int());
  }
  if (v.kind() == Kind::Float) return Value::floating(-v.as_float());
  if (v.is_undefined()) return make_error(undefined_message(v));
  return make_error("bad operand type for unary -: '" + v.type_name() + "'");
}

Result<Value> get_attr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) return make_error(undefined_message(obj));
  Value method = bound_method(obj, name);
  if (!method.is_undefined()) return method;
  if (obj.is_mapping()) {
    if (const Value* v = obj.as_dict().find(name)) return *v;
  }
  return Value::undefined("'" + obj.type_name() + " object' has no attribute '" + name + "'");
}

Result<Value> get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) return make_error(undefined_message(obj));
  if (obj.is_mapping()) {
    if (const Value* v = obj.as_dict().find(key)) return *v;
  } else if ((obj.is_list() || obj.is_string()) && key.is_integral()) {
    if (obj.is_list()) {
      const int64_t n = static_cast<int64_t>(obj.as_list().size());
      const int64_t i = key.as_int() < 0 ? key.as_int() + n : key.as_int();
      if (i >= 0 && i < n) return obj.as_list()[static_cast<size_t>(i)];
    } else {
      const std::vector<size_t> offs = utf8_offsets(obj.as_string().text());
      const int64_t n = static_cast<int64_t>(offs.size()) - 1;
      const int64_t i = key.as_int() < 0 ? key.as_int() + n : key.as_int();
      if (i >= 0 && i < n) return Value::string(obj.as_string().substr(offs[static_cast<size_t>(i)], offs[static_cast<size_t>(i) + 1]));
    }
    return Value::undefined("'" + obj.type_name() + " object' has no element " + to_str(key).text());
  }
  if (key.is_string()) {
    Value method = bound_method(obj, key.as_string().text());
    if (!method.is_undefined()) return method;
  }
  return Value::undefined("'" + obj.type_name() + " object' has no attribute " + to_repr(key).text());
}

Result<Value> get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  if (obj.is_undefined()) return make_error(undefined_message(obj));
  int64_t b = 0, e = 0, s = 1;
  if (obj.is_list()) {
    LS_RETURN_IF_ERROR(slice_indices(static_cast<int64_t>(obj.as_list().size()), start, stop, step, b, e, s));
    List out;
    for (int64_t i = b; s > 0 ? i < e : i > e; i += s) out.push_back(obj.as_list()[static_cast<size_t>(i)]);
    return Value::list(std::move(out), obj.is_tuple());
  }
  if (obj.is_string()) {
    const TaggedString& str = obj.as_string();
    const std::vector<size_t> offs = utf8_offsets(str.text());
    LS_RETURN_IF_ERROR(slice_indices(static_cast<int64_t>(offs.size()) - 1, start, stop, step, b, e, s));
    if (s == 1) return Value::string(str.substr(offs[static_cast<size_t>(b)], offs[static_cast<size_t>(std::max(b, e))]));
    TaggedString out;
    for (int64_t i = b; s > 0 ? i < e : i > e; i += s) out.append(str.substr(offs[static_cast<size_t>(i)], offs[static_cast<size_t>(i) + 1]));
    return Value::string(std::move(out));
  }
  return make_error("'" + obj.type_name() + "' object is not subscriptable");
}

}  // namespace latentserve::engine::text::jinja
