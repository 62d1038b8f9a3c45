#include "engine/text/jinja_filters.h"

#include <algorithm>
#include <cerrno>
#include <cfenv>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>

#include "engine/text/jinja_json.h"
#include "engine/text/jinja_methods.h"

namespace latentserve::engine::text::jinja {
namespace {

using FilterFn = std::function<Result<Value>(const Value&, const CallArgs&)>;
using TestFn = std::function<Result<bool>(const Value&, const CallArgs&)>;

Error filter_error(const std::string& filter, const std::string& what) {
  return make_error("filter '" + filter + "': " + what);
}

// Python's len().
Result<int64_t> length_of(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined: return int64_t{0};
    case Kind::String: return static_cast<int64_t>(utf8_length(v.as_string().text()));
    case Kind::List: return static_cast<int64_t>(v.as_list().size());
    case Kind::Dict: return static_cast<int64_t>(v.as_dict().size());
    default: return make_error("object of type '" + v.type_name() + "' has no len()");
  }
}

// Python's int(str): optional sign, digits with single underscores, surrounding whitespace.
std::optional<int64_t> parse_int(const std::string& text) {
  std::string t = strip_string(TaggedString(text), std::nullopt, true, true).text();
  std::string digits;
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i] == '_' && i > 0 && std::isdigit(static_cast<unsigned char>(t[i - 1])) && i + 1 < t.size() &&
        std::isdigit(static_cast<unsigned char>(t[i + 1]))) {
      continue;
    }
    digits += t[i];
  }
  if (digits.empty()) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(digits.c_str(), &end, 10);
  if (errno || *end != '\0' || !(std::isdigit(static_cast<unsigned char>(digits.back())))) return std::nullopt;
  return v;
}

std::optional<double> parse_float(const std::string& text) {
  std::string t = strip_string(TaggedString(text), std::nullopt, true, true).text();
  if (t.empty()) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(t.c_str(), &end);
  if (*end != '\0') return std::nullopt;
  return v;
}

Result<Value> filter_int(const Value& v, const CallArgs& a) {
  const Value fallback = call_arg(a, 0, "default", Value::integer(0));
  switch (v.kind()) {
    case Kind::Int:
    case Kind::Bool: return Value::integer(v.as_int());
    case Kind::Float:
      if (!std::isfinite(v.as_float())) return fallback;
      return Value::integer(static_cast<int64_t>(std::trunc(v.as_float())));
    case Kind::String: {
      if (auto i = parse_int(v.as_string().text())) return Value::integer(*i);
      if (auto f = parse_float(v.as_string().text()); f && std::isfinite(*f)) return Value::integer(static_cast<int64_t>(*f));
      return fallback;
    }
    case Kind::Undefined: return filter_error("int", "value is undefined");
    default: return fallback;
  }
}

Result<Value> filter_float(const Value& v, const CallArgs& a) {
  const Value fallback = call_arg(a, 0, "default", Value::floating(0.0));
  if (v.is_number()) return Value::floating(v.as_float());
  if (v.is_string()) {
    if (auto f = parse_float(v.as_string().text())) return Value::floating(*f);
  }
  if (v.is_undefined()) return filter_error("float", "value is undefined");
  return fallback;
}

Result<Value> filter_tojson(const Value& v, const CallArgs& a) {
  JsonOptions opt;
  opt.ensure_ascii = call_arg(a, 0, "ensure_ascii", Value::boolean(false)).truthy();
  const Value indent = call_arg(a, 1, "indent", Value::none());
  if (indent.is_integral()) opt.indent = static_cast<int>(std::clamp<int64_t>(indent.as_int(), 0, 64));
  else if (!indent.is_none()) return filter_error("tojson", "indent must be an integer");
  const Value seps = call_arg(a, 2, "separators", Value::none());
  if (seps.is_list() && seps.as_list().size() == 2 && seps.as_list()[0].is_string() && seps.as_list()[1].is_string()) {
    opt.item_separator = seps.as_list()[0].as_string().text();
    opt.key_separator = seps.as_list()[1].as_string().text();
  } else if (!seps.is_none()) {
    return filter_error("tojson", "separators must be a pair of strings");
  }
  opt.sort_keys = call_arg(a, 3, "sort_keys", Value::boolean(false)).truthy();
  LS_ASSIGN_OR_RETURN(TaggedString s, to_json(v, opt));
  return Value::string(std::move(s));
}

Result<Value> filter_join(const Value& v, const CallArgs& a) {
  LS_ASSIGN_OR_RETURN(List items, iterate(v));
  const Value sep = call_arg(a, 0, "d", Value::string(""));
  const Value attr = call_arg(a, 1, "attribute", Value::none());
  TaggedString out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out.append(to_str(sep));
    out.append(to_str(attr.is_none() ? items[i] : lookup_path(items[i], to_str(attr).text())));
  }
  return Value::string(std::move(out));
}

Result<Value> filter_first_last(const Value& v, bool first) {
  LS_ASSIGN_OR_RETURN(List items, iterate(v));
  if (items.empty()) return Value::undefined("no first item, sequence was empty");
  return first ? items.front() : items.back();
}

Result<Value> filter_replace(const Value& v, const CallArgs& a) {
  const Value count = call_arg(a, 2, "count", Value::none());
  if (!count.is_none() && !count.is_integral()) return filter_error("replace", "count must be an integer");
  return Value::string(replace_string(to_str(v), to_str(call_arg(a, 0, "old")).text(), to_str(call_arg(a, 1, "new")),
                                      count.is_none() ? -1 : count.as_int()));
}

Result<Value> filter_items(const Value& v) {
  if (v.is_undefined()) return Value::list({});
  if (v.kind() != Kind::Dict) return filter_error("items", "can only get item pairs from a mapping");
  List out;
  for (const auto& [k, val] : v.as_dict().items()) out.push_back(Value::list({k, val}, true));
  return Value::list(std::move(out));
}

// selectattr / rejectattr / select / reject.
Result<Value> filter_select(const Value& v, const CallArgs& a, bool by_attr, bool keep_if) {
  LS_ASSIGN_OR_RETURN(List items, iterate(v));
  size_t next = 0;
  std::string attr;
  if (by_attr) attr = to_str(call_arg(a, next++, "attr")).text();
  std::string test;
  CallArgs test_args;
  if (next < a.positional.size()) {
    test = to_str(a.positional[next++]).text();
    if (!is_known_test(test)) return make_error("no test named '" + test + "'");
    test_args.positional.assign(a.positional.begin() + static_cast<std::ptrdiff_t>(next), a.positional.end());
  }
  List out;
  for (const Value& item : items) {
    const Value subject = by_attr ? lookup_path(item, attr) : item;
    bool pass = subject.truthy();
    if (!test.empty()) {
      LS_ASSIGN_OR_RETURN(pass, apply_test(test, subject, test_args));
    }
    if (pass == keep_if) out.push_back(item);
  }
  return Value::list(std::move(out));
}

Result<Value> filter_map(const Value& v, const CallArgs& a) {
  LS_ASSIGN_OR_RETURN(List items, iterate(v));
  List out;
  const Value attr = call_arg(a, 99, "attribute", Value::undefined());
  if (!attr.is_undefined()) {
    const Value fallback = call_arg(a, 99, "default", Value::undefined());
    for (const Value& item : items) {
      Value x = lookup_path(item, to_str(attr).text());
      out.push_back(x.is_undefined() && !fallback.is_undefined() ? fallback : x);
    }
    return Value::list(std::move(out));
  }
  if (a.positional.empty()) return filter_error("map", "needs a filter name or attribute=");
  const std::string filter = to_str(a.positional[0]).text();
  if (!is_known_filter(filter)) return make_error("no filter named '" + filter + "'");
  CallArgs rest;
  rest.positional.assign(a.positional.begin() + 1, a.positional.end());
  for (const Value& item : items) {
    LS_ASSIGN_OR_RETURN(Value x, apply_filter(filter, item, rest));
    out.push_back(std::move(x));
  }
  return Value::list(std::move(out));
}

Value sort_key(const Value& item, const Value& attr, bool case_sensitive) {
  Value k = attr.is_none() ? item : lookup_path(item, to_str(attr).text());
  if (!case_sensitive && k.is_string()) return Value::string(lower_string(k.as_string()));
  return k;
}

Result<Value> filter_sort(const Value& v, const CallArgs& a) {
  LS_ASSIGN_OR_RETURN(List items, iterate(v));
  const bool reverse = call_arg(a, 0, "reverse", Value::boolean(false)).truthy();
  const bool cs = call_arg(a, 1, "case_sensitive", Value::boolean(false)).truthy();
  const Value attr = call_arg(a, 2, "attribute", Value::none());
  std::vector<std::pair<Value, Value>> keyed;
  for (Value& item : items) keyed.emplace_back(sort_key(item, attr, cs), std::move(item));
  std::optional<Error> failure;
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    Result<int> c = reverse ? compare_values(y.first, x.first) : compare_values(x.first, y.first);
    if (!c.ok()) {
      if (!failure) failure = c.error();
      return false;
    }
    return *c < 0;
  });
  if (failure) return filter_error("sort", failure->message);
  List out;
  for (auto& kv : keyed) out.push_back(std::move(kv.second));
  return Value::list(std::move(out));
}

Result<Value> filter_unique(const Value& v, const CallArgs& a) {
  LS_ASSIGN_OR_RETURN(List items, iterate(v));
  const bool cs = call_arg(a, 0, "case_sensitive", Value::boolean(false)).truthy();
  const Value attr = call_arg(a, 1, "attribute", Value::none());
  List out, seen;
  for (const Value& item : items) {
    Value k = sort_key(item, attr, cs);
    if (std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return values_equal(s, k); })) continue;
    seen.push_back(k);
    out.push_back(item);
  }
  return Value::list(std::move(out));
}

Result<Value> filter_reverse(const Value& v) {
  if (v.is_string()) {
    const TaggedString& s = v.as_string();
    const std::vector<size_t> offs = utf8_offsets(s.text());
    TaggedString out;
    for (size_t i = offs.size() - 1; i > 0; --i) out.append(s.substr(offs[i - 1], offs[i]));
    return Value::string(std::move(out));
  }
  LS_ASSIGN_OR_RETURN(List items, iterate(v));
  std::reverse(items.begin(), items.end());
  return Value::list(std::move(items));
}

Result<Value> filter_round(const Value& v, const CallArgs& a) {
  if (!v.is_number()) return filter_error("round", "needs a number, not " + v.type_name());
  const int64_t precision = call_arg(a, 0, "precision", Value::integer(0)).as_int();
  const std::string method = to_str(call_arg(a, 1, "method", Value::string("common"))).text();
  const double scale = std::pow(10.0, static_cast<double>(precision));
  const double x = v.as_float() * scale;
  double r;
  if (method == "common") {
    std::fesetround(FE_TONEAREST);
    r = std::nearbyint(x);
  } else if (method == "ceil") {
    r = std::ceil(x);
  } else if (method == "floor") {
    r = std::floor(x);
  } else {
    return filter_error("round", "method must be common, ceil or floor");
  }
  return Value::floating(r / scale);
}

Result<Value> filter_indent(const Value& v, const CallArgs& a) {
  const Value width = call_arg(a, 0, "width", Value::integer(4));
  const std::string pad = width.is_string() ? width.as_string().text()
                                            : std::string(static_cast<size_t>(std::clamp<int64_t>(width.as_int(), 0, 256)), ' ');
  const bool first = call_arg(a, 1, "first", Value::boolean(false)).truthy();
  const bool blank = call_arg(a, 2, "blank", Value::boolean(false)).truthy();
  TaggedString s = to_str(v);
  LS_ASSIGN_OR_RETURN(auto lines, split_string(s, std::string("\n"), -1, false));
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  TaggedString out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i) out.append("\n", false);
    if ((i > 0 || first) && (blank || !lines[i].empty())) out.append(pad, false);
    out.append(lines[i]);
  }
  return Value::string(std::move(out));
}

const std::map<std::string, FilterFn>& filters() {
  static const std::map<std::string, FilterFn> table = [] {
    std::map<std::string, FilterFn> m;
    m["tojson"] = filter_tojson;
    m["trim"] = [](const Value& v, const CallArgs& a) -> Result<Value> {
      const Value chars = call_arg(a, 0, "chars", Value::none());
      std::optional<std::string> c;
      if (!chars.is_none()) c = to_str(chars).text();
      return Value::string(strip_string(to_str(v), c, true, true));
    };
    m["length"] = m["count"] = [](const Value& v, const CallArgs&) -> Result<Value> {
      LS_ASSIGN_OR_RETURN(int64_t n, length_of(v));
      return Value::integer(n);
    };
    m["default"] = m["d"] = [](const Value& v, const CallArgs& a) -> Result<Value> {
      const bool boolean = call_arg(a, 1, "boolean", Value::boolean(false)).truthy();
      if (v.is_undefined() || (boolean && !v.truthy())) return call_arg(a, 0, "default_value", Value::string(""));
      return v;
    };
    m["upper"] = [](const Value& v, const CallArgs&) -> Result<Value> { return Value::string(upper_string(to_str(v))); };
    m["lower"] = [](const Value& v, const CallArgs&) -> Result<Value> { return Value::string(lower_string(to_str(v))); };
    m["capitalize"] = [](const Value& v, const CallArgs&) -> Result<Value> { return Value::string(capitalize_string(to_str(v))); };
    m["title"] = [](const Value& v, const CallArgs&) -> Result<Value> { return Value::string(title_string(to_str(v))); };
    m["string"] = [](const Value& v, const CallArgs&) -> Result<Value> { return Value::string(to_str(v)); };
    m["safe"] = [](const Value& v, const CallArgs&) -> Result<Value> { return v; };
    m["replace"] = filter_replace;
    m["join"] = filter_join;
    m["first"] = [](const Value& v, const CallArgs&) { return filter_first_last(v, true); };
    m["last"] = [](const Value& v, const CallArgs&) { return filter_first_last(v, false); };
    m["list"] = [](const Value& v, const CallArgs&) -> Result<Value> {
      LS_ASSIGN_OR_RETURN(List items, iterate(v));
      return Value::list(std::move(items));
    };
    m["items"] = [](const Value& v, const CallArgs&) { return filter_items(v); };
    m["int"] = filter_int;
    m["float"] = filter_float;
    m["abs"] = [](const Value& v, const CallArgs&) -> Result<Value> {
      if (v.is_integral()) return Value::integer(std::llabs(v.as_int()));
      if (v.kind() == Kind::Float) return Value::floating(std::fabs(v.as_float()));
      return filter_error("abs", "needs a number, not " + v.type_name());
    };
    m["round"] = filter_round;
    m["selectattr"] = [](const Value& v, const CallArgs& a) { return filter_select(v, a, true, true); };
    m["rejectattr"] = [](const Value& v, const CallArgs& a) { return filter_select(v, a, true, false); };
    m["select"] = [](const Value& v, const CallArgs& a) { return filter_select(v, a, false, true); };
    m["reject"] = [](const Value& v, const CallArgs& a) { return filter_select(v, a, false, false); };
    m["map"] = filter_map;
    m["sort"] = filter_sort;
    m["unique"] = filter_unique;
    m["reverse"] = [](const Value& v, const CallArgs&) { return filter_reverse(v); };
    m["indent"] = filter_indent;
    return m;
  }();
  return table;
}

Result<bool> compare_test(const Value& v, const CallArgs& a, const std::function<bool(int)>& pred) {
  LS_ASSIGN_OR_RETURN(int c, compare_values(v, call_arg(a, 0, "other")));
  return pred(c);
}

const std::map<std::string, TestFn>& tests() {
  static const std::map<std::string, TestFn> table = [] {
    std::map<std::string, TestFn> m;
    auto simple = [&m](const char* name, std::function<bool(const Value&)> f) {
      m[name] = [f](const Value& v, const CallArgs&) -> Result<bool> { return f(v); };
    };
    simple("defined", [](const Value& v) { return !v.is_undefined(); });
    simple("undefined", [](const Value& v) { return v.is_undefined(); });
    simple("none", [](const Value& v) { return v.is_none(); });
    simple("boolean", [](const Value& v) { return v.kind() == Kind::Bool; });
    simple("true", [](const Value& v) { return v.kind() == Kind::Bool && v.as_bool(); });
    simple("false", [](const Value& v) { return v.kind() == Kind::Bool && !v.as_bool(); });
    simple("integer", [](const Value& v) { return v.kind() == Kind::Int; });
    simple("float", [](const Value& v) { return v.kind() == Kind::Float; });
    simple("number", [](const Value& v) { return v.is_number(); });
    simple("string", [](const Value& v) { return v.is_string(); });
    simple("mapping", [](const Value& v) { return v.kind() == Kind::Dict; });
    simple("iterable", [](const Value& v) { return v.is_undefined() || v.is_string() || v.is_list() || v.kind() == Kind::Dict; });
    simple("sequence", [](const Value& v) { return v.is_undefined() || v.is_string() || v.is_list() || v.kind() == Kind::Dict; });
    simple("callable", [](const Value& v) { return v.kind() == Kind::Callable; });
    simple("lower", [](const Value& v) { const std::string s = to_str(v).text(); return lower_string(TaggedString(s)).text() == s; });
    simple("upper", [](const Value& v) { const std::string s = to_str(v).text(); return upper_string(TaggedString(s)).text() == s; });
    m["odd"] = [](const Value& v, const CallArgs&) -> Result<bool> {
      if (!v.is_integral()) return make_error("test 'odd' needs an integer");
      return (v.as_int() % 2) != 0;
    };
    m["even"] = [](const Value& v, const CallArgs&) -> Result<bool> {
      if (!v.is_integral()) return make_error("test 'even' needs an integer");
      return (v.as_int() % 2) == 0;
    };
    m["divisibleby"] = [](const Value& v, const CallArgs& a) -> Result<bool> {
      const Value n = call_arg(a, 0, "num");
      if (!v.is_integral() || !n.is_integral() || n.as_int() == 0) return make_error("test 'divisibleby' needs non-zero integers");
      return v.as_int() % n.as_int() == 0;
    };
    m["eq"] = m["equalto"] = m["=="] = [](const Value& v, const CallArgs& a) -> Result<bool> {
      return values_equal(v, call_arg(a, 0, "other"));
    };
    m["ne"] = m["!="] = [](const Value& v, const CallArgs& a) -> Result<bool> { return !values_equal(v, call_arg(a, 0, "other")); };
    m["lt"] = m["lessthan"] = m["<"] = [](const Value& v, const CallArgs& a) { return compare_test(v, a, [](int c) { return c < 0; }); };
    m["le"] = m["<="] = [](const Value& v, const CallArgs& a) { return compare_test(v, a, [](int c) { return c <= 0; }); };
    m["gt"] = m["greaterthan"] = m[">"] = [](const Value& v, const CallArgs& a) { return compare_test(v, a, [](int c) { return c > 0; }); };
    m["ge"] = m[">="] = [](const Value& v, const CallArgs& a) { return compare_test(v, a, [](int c) { return c >= 0; }); };
    m["in"] = [](const Value& v, const CallArgs& a) { return contains(call_arg(a, 0, "seq"), v); };
    m["sameas"] = [](const Value& v, const CallArgs& a) -> Result<bool> {
      const Value o = call_arg(a, 0, "other");
      if (v.kind() != o.kind()) return false;
      if (v.is_none() || v.kind() == Kind::Bool || v.kind() == Kind::Int) return values_equal(v, o);
      return v.kind() == Kind::Namespace && values_equal(v, o);
    };
    return m;
  }();
  return table;
}

}  // namespace

bool is_known_filter(const std::string& name) { return filters().count(name) != 0; }
bool is_known_test(const std::string& name) { return tests().count(name) != 0; }

Result<Value> apply_filter(const std::string& name, const Value& input, const CallArgs& args) {
  auto it = filters().find(name);
  if (it == filters().end()) return make_error("unknown filter '" + name + "'");
  return it->second(input, args);
}

Result<bool> apply_test(const std::string& name, const Value& input, const CallArgs& args) {
  auto it = tests().find(name);
  if (it == tests().end()) return make_error("unknown test '" + name + "'");
  return it->second(input, args);
}

Result<List> iterate(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined: return List{};
    case Kind::List: return v.as_list();
    case Kind::Dict: {
      List keys;
      for (const auto& kv : v.as_dict().items()) keys.push_back(kv.first);
      return keys;
    }
    case Kind::String: {
      const TaggedString& s = v.as_string();
      const std::vector<size_t> offs = utf8_offsets(s.text());
      List chars;
      for (size_t i = 0; i + 1 < offs.size(); ++i) chars.push_back(Value::string(s.substr(offs[i], offs[i + 1])));
      return chars;
    }
    default: return make_error("'" + v.type_name() + "' object is not iterable");
  }
}

Result<bool> contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Kind::Undefined: return false;
    case Kind::String:
      if (!item.is_string()) return make_error("'in <string>' requires string as left operand, not " + item.type_name());
      return container.as_string().text().find(item.as_string().text()) != std::string::npos;
    case Kind::List:
      return std::any_of(container.as_list().begin(), container.as_list().end(),
                         [&](const Value& x) { return values_equal(x, item); });
    case Kind::Dict: return container.as_dict().find(item) != nullptr;
    default: return make_error("argument of type '" + container.type_name() + "' is not iterable");
  }
}

Value lookup_path(const Value& v, const std::string& path) {
  Value cur = v;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (cur.is_mapping()) {
      const Value* x = cur.as_dict().find(part);
      cur = x ? *x : Value::undefined();
    } else if (cur.is_list() && !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit)) {
      const size_t i = std::stoul(part);
      cur = i < cur.as_list().size() ? cur.as_list()[i] : Value::undefined();
    } else {
      return Value::undefined();
    }
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return cur;
}

}  // namespace latentserve::engine::text::jinja
