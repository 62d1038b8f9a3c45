#include "engine/text/jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace latentserve::engine::text::jinja {

// ---- TaggedString ----

TaggedString::TaggedString(std::string text, bool tagged) : text_(std::move(text)) {
  if (!text_.empty()) runs_.push_back({text_.size(), tagged});
}

bool TaggedString::any_tagged() const {
  for (const Run& r : runs_) {
    if (r.tagged) return true;
  }
  return false;
}

void TaggedString::append(std::string_view text, bool tagged) {
  if (text.empty()) return;
  text_.append(text);
  if (!runs_.empty() && runs_.back().tagged == tagged) {
    runs_.back().length += text.size();
  } else {
    runs_.push_back({text.size(), tagged});
  }
}

void TaggedString::append(const TaggedString& other) {
  size_t pos = 0;
  for (const Run& r : other.runs_) {
    append(std::string_view(other.text_).substr(pos, r.length), r.tagged);
    pos += r.length;
  }
}

TaggedString TaggedString::substr(size_t begin, size_t end) const {
  TaggedString out;
  end = std::min(end, text_.size());
  size_t pos = 0;
  for (const Run& r : runs_) {
    const size_t lo = std::max(pos, begin);
    const size_t hi = std::min(pos + r.length, end);
    if (lo < hi) out.append(std::string_view(text_).substr(lo, hi - lo), r.tagged);
    pos += r.length;
    if (pos >= end) break;
  }
  return out;
}

// ---- Dict ----

namespace {

// Python hashes 1, 1.0 and True alike, so they share one key.
std::string key_of(const Value& key) {
  switch (key.kind()) {
    case Kind::String: return "s" + key.as_string().text();
    case Kind::Int:
    case Kind::Bool: return "i" + std::to_string(key.as_int());
    case Kind::Float: {
      const double f = key.as_float();
      if (std::floor(f) == f && std::fabs(f) < 9e18) return "i" + std::to_string(static_cast<int64_t>(f));
      return "f" + float_repr(f);
    }
    case Kind::None: return "n";
    default: return "?" + to_repr(key).text();
  }
}

}  // namespace

const Value* Dict::find(const Value& key) const {
  auto it = index_.find(key_of(key));
  return it == index_.end() ? nullptr : &items_[it->second].second;
}

const Value* Dict::find(std::string_view key) const {
  auto it = index_.find("s" + std::string(key));
  return it == index_.end() ? nullptr : &items_[it->second].second;
}

void Dict::set(Value key, Value value) {
  std::string k = key_of(key);
  auto it = index_.find(k);
  if (it != index_.end()) {
    items_[it->second].second = std::move(value);
    return;
  }
  index_.emplace(std::move(k), items_.size());
  items_.emplace_back(std::move(key), std::move(value));
}

// ---- Value ----

Value Value::undefined(std::string hint) {
  Value v;
  if (!hint.empty()) v.s_ = std::make_shared<const TaggedString>(std::move(hint));
  return v;
}

const std::string& Value::undefined_hint() const {
  static const std::string empty;
  return (kind_ == Kind::Undefined && s_) ? s_->text() : empty;
}

Value Value::none() {
  Value v;
  v.kind_ = Kind::None;
  return v;
}

Value Value::boolean(bool b) {
  Value v;
  v.kind_ = Kind::Bool;
  v.b_ = b;
  return v;
}

Value Value::integer(int64_t i) {
  Value v;
  v.kind_ = Kind::Int;
  v.i_ = i;
  return v;
}

Value Value::floating(double f) {
  Value v;
  v.kind_ = Kind::Float;
  v.f_ = f;
  return v;
}

Value Value::string(TaggedString s) {
  Value v;
  v.kind_ = Kind::String;
  v.s_ = std::make_shared<const TaggedString>(std::move(s));
  return v;
}

Value Value::string(std::string s, bool tagged) { return string(TaggedString(std::move(s), tagged)); }

Value Value::list(List items, bool is_tuple) {
  Value v;
  v.kind_ = Kind::List;
  v.is_tuple_ = is_tuple;
  v.l_ = std::make_shared<const List>(std::move(items));
  return v;
}

Value Value::dict(Dict d) {
  Value v;
  v.kind_ = Kind::Dict;
  v.d_ = std::make_shared<Dict>(std::move(d));
  return v;
}

Value Value::make_namespace(Dict d) {
  Value v = dict(std::move(d));
  v.kind_ = Kind::Namespace;
  return v;
}

Value Value::callable(Callable c) {
  Value v;
  v.kind_ = Kind::Callable;
  v.c_ = std::make_shared<const Callable>(std::move(c));
  return v;
}

template <class Json>
Value value_from_json(const Json& j, bool tagged) {
  switch (j.type()) {
    case Json::value_t::null: return Value::none();
    case Json::value_t::boolean: return Value::boolean(j.template get<bool>());
    case Json::value_t::number_integer: return Value::integer(j.template get<int64_t>());
    case Json::value_t::number_unsigned: {
      const uint64_t u = j.template get<uint64_t>();
      if (u <= static_cast<uint64_t>(INT64_MAX)) return Value::integer(static_cast<int64_t>(u));
      return Value::floating(static_cast<double>(u));
    }
    case Json::value_t::number_float: return Value::floating(j.template get<double>());
    case Json::value_t::string: return Value::string(j.template get<std::string>(), tagged);
    case Json::value_t::array: {
      List items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(value_from_json(e, tagged));
      return Value::list(std::move(items));
    }
    case Json::value_t::object: {
      Dict d;
      for (auto it = j.begin(); it != j.end(); ++it) d.set(Value::string(it.key(), tagged), value_from_json(it.value(), tagged));
      return Value::dict(std::move(d));
    }
    default: return Value::none();
  }
}

Value Value::from_json(const nlohmann::json& j, bool tagged) { return value_from_json(j, tagged); }
Value Value::from_json(const nlohmann::ordered_json& j, bool tagged) { return value_from_json(j, tagged); }

bool Value::truthy() const {
  switch (kind_) {
    case Kind::Undefined:
    case Kind::None: return false;
    case Kind::Bool: return b_;
    case Kind::Int: return i_ != 0;
    case Kind::Float: return f_ != 0.0;
    case Kind::String: return !s_->empty();
    case Kind::List: return !l_->empty();
    case Kind::Dict: return d_->size() != 0;
    case Kind::Namespace:
    case Kind::Callable: return true;
  }
  return false;
}

std::string Value::type_name() const {
  switch (kind_) {
    case Kind::Undefined: return "Undefined";
    case Kind::None: return "NoneType";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::String: return "str";
    case Kind::List: return is_tuple_ ? "tuple" : "list";
    case Kind::Dict: return "dict";
    case Kind::Namespace: return "Namespace";
    case Kind::Callable: return "function";
  }
  return "?";
}

// ---- printing ----

std::string float_repr(double f) {
  if (std::isnan(f)) return "nan";
  if (std::isinf(f)) return f > 0 ? "inf" : "-inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), f, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  const bool negative = sci[0] == '-';
  if (negative) sci.erase(0, 1);
  const size_t epos = sci.find('e');
  std::string digits = sci.substr(0, epos);
  const int exponent = std::stoi(sci.substr(epos + 1));
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  std::string out = negative ? "-" : "";
  if (exponent >= -4 && exponent < 16) {
    if (exponent < 0) {
      out += "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + digits;
    } else if (static_cast<size_t>(exponent) + 1 >= digits.size()) {
      out += digits + std::string(static_cast<size_t>(exponent) + 1 - digits.size(), '0') + ".0";
    } else {
      out += digits.substr(0, static_cast<size_t>(exponent) + 1) + "." + digits.substr(static_cast<size_t>(exponent) + 1);
    }
    return out;
  }
  out += digits.substr(0, 1);
  if (digits.size() > 1) out += "." + digits.substr(1);
  char ebuf[16];
  std::snprintf(ebuf, sizeof(ebuf), "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
  return out + ebuf;
}

namespace {

void append_repr_string(TaggedString& out, const TaggedString& s) {
  const std::string& t = s.text();
  const char quote = (t.find('\'') != std::string::npos && t.find('"') == std::string::npos) ? '"' : '\'';
  out.append(std::string_view(&quote, 1), false);
  size_t pos = 0;
  for (const TaggedString::Run& run : s.runs()) {
    std::string escaped;
    for (size_t i = pos; i < pos + run.length; ++i) {
      const unsigned char c = static_cast<unsigned char>(t[i]);
      if (c == '\\') escaped += "\\\\";
      else if (c == static_cast<unsigned char>(quote)) escaped += std::string("\\") + quote;
      else if (c == '\n') escaped += "\\n";
      else if (c == '\r') escaped += "\\r";
      else if (c == '\t') escaped += "\\t";
      else if (c < 0x20 || c == 0x7f) {
        char buf[8];
        std::snprintf(buf, sizeof(buf), "\\x%02x", c);
        escaped += buf;
      } else {
        escaped += static_cast<char>(c);
      }
    }
    out.append(escaped, run.tagged);
    pos += run.length;
  }
  out.append(std::string_view(&quote, 1), false);
}

void append_printed(TaggedString& out, const Value& v, bool repr) {
  switch (v.kind()) {
    case Kind::Undefined: return;
    case Kind::None: out.append("None", false); return;
    case Kind::Bool: out.append(v.as_bool() ? "True" : "False", false); return;
    case Kind::Int: out.append(std::to_string(v.as_int()), false); return;
    case Kind::Float: out.append(float_repr(v.as_float()), false); return;
    case Kind::String:
      if (repr) append_repr_string(out, v.as_string());
      else out.append(v.as_string());
      return;
    case Kind::List: {
      out.append(v.is_tuple() ? "(" : "[", false);
      const List& items = v.as_list();
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out.append(", ", false);
        append_printed(out, items[i], true);
      }
      if (v.is_tuple() && items.size() == 1) out.append(",", false);
      out.append(v.is_tuple() ? ")" : "]", false);
      return;
    }
    case Kind::Dict:
    case Kind::Namespace: {
      out.append(v.kind() == Kind::Namespace ? "<Namespace {" : "{", false);
      bool first = true;
      for (const auto& [k, val] : v.as_dict().items()) {
        if (!first) out.append(", ", false);
        first = false;
        append_printed(out, k, true);
        out.append(": ", false);
        append_printed(out, val, true);
      }
      out.append(v.kind() == Kind::Namespace ? "}>" : "}", false);
      return;
    }
    case Kind::Callable: out.append("<function " + v.as_callable().name + ">", false); return;
  }
}

}  // namespace

TaggedString to_str(const Value& v) {
  if (v.is_string()) return v.as_string();
  TaggedString out;
  append_printed(out, v, false);
  return out;
}

TaggedString to_repr(const Value& v) {
  TaggedString out;
  append_printed(out, v, true);
  return out;
}

// ---- comparison ----

bool values_equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral()) return a.as_int() == b.as_int();
    return a.as_float() == b.as_float();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Kind::Undefined:
    case Kind::None: return true;
    case Kind::String: return a.as_string().text() == b.as_string().text();
    case Kind::List: {
      if (a.is_tuple() != b.is_tuple() || a.as_list().size() != b.as_list().size()) return false;
      for (size_t i = 0; i < a.as_list().size(); ++i) {
        if (!values_equal(a.as_list()[i], b.as_list()[i])) return false;
      }
      return true;
    }
    case Kind::Dict: {
      if (a.as_dict().size() != b.as_dict().size()) return false;
      for (const auto& [k, v] : a.as_dict().items()) {
        const Value* other = b.as_dict().find(k);
        if (!other || !values_equal(v, *other)) return false;
      }
      return true;
    }
    case Kind::Namespace: return &a.namespace_dict() == &b.namespace_dict();
    case Kind::Callable: return &a.as_callable() == &b.as_callable();
    default: return false;
  }
}

Result<int> compare_values(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral()) return a.as_int() < b.as_int() ? -1 : (a.as_int() > b.as_int() ? 1 : 0);
    const double x = a.as_float(), y = b.as_float();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    const int c = a.as_string().text().compare(b.as_string().text());
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
    const List& x = a.as_list();
    const List& y = b.as_list();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (values_equal(x[i], y[i])) continue;
      return compare_values(x[i], y[i]);
    }
    return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
  }
  return make_error("cannot order values of type '" + a.type_name() + "' and '" + b.type_name() + "'");
}

// ---- UTF-8 ----

size_t utf8_length(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::vector<size_t> utf8_offsets(std::string_view s) {
  std::vector<size_t> offsets;
  offsets.reserve(s.size() + 1);
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) offsets.push_back(i);
  }
  offsets.push_back(s.size());
  return offsets;
}

}  // namespace latentserve::engine::text::jinja
