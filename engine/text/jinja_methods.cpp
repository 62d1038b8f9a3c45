#include "engine/text/jinja_methods.h"

#include <cctype>

namespace latentserve::engine::text::jinja {
namespace {

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

Error arg_error(const std::string& method, const std::string& what) {
  return make_error(method + "(): " + what);
}

Result<std::string> string_arg(const CallArgs& args, size_t index, const char* name, const std::string& method) {
  Value v = call_arg(args, index, name);
  if (!v.is_string()) return arg_error(method, std::string("argument '") + name + "' must be a string, not " + v.type_name());
  return v.as_string().text();
}

Result<std::optional<std::string>> optional_string_arg(const CallArgs& args, size_t index, const char* name,
                                                       const std::string& method) {
  Value v = call_arg(args, index, name, Value::none());
  if (v.is_none()) return std::optional<std::string>();
  if (!v.is_string()) return arg_error(method, std::string("argument '") + name + "' must be a string or None");
  return std::optional<std::string>(v.as_string().text());
}

Result<int64_t> int_arg(const CallArgs& args, size_t index, const char* name, int64_t fallback, const std::string& method) {
  Value v = call_arg(args, index, name, Value::integer(fallback));
  if (!v.is_integral()) return arg_error(method, std::string("argument '") + name + "' must be an integer");
  return v.as_int();
}

Result<bool> affix_test(const std::string& s, const Value& affix, bool prefix, const std::string& method) {
  auto one = [&](const std::string& a) {
    if (a.size() > s.size()) return false;
    return prefix ? s.compare(0, a.size(), a) == 0 : s.compare(s.size() - a.size(), a.size(), a) == 0;
  };
  if (affix.is_string()) return one(affix.as_string().text());
  if (affix.is_list()) {
    for (const Value& a : affix.as_list()) {
      if (!a.is_string()) return arg_error(method, "tuple items must be strings");
      if (one(a.as_string().text())) return true;
    }
    return false;
  }
  return arg_error(method, "argument must be a string or a tuple of strings, not " + affix.type_name());
}

Value string_list(std::vector<TaggedString> parts) {
  List items;
  for (auto& p : parts) items.push_back(Value::string(std::move(p)));
  return Value::list(std::move(items));
}

Result<Value> call_string_method(const TaggedString& s, const std::string& name, const CallArgs& args) {
  const std::string& t = s.text();
  if (name == "startswith" || name == "endswith") {
    LS_ASSIGN_OR_RETURN(bool r, affix_test(t, call_arg(args, 0, "prefix"), name == "startswith", name));
    return Value::boolean(r);
  }
  if (name == "split" || name == "rsplit") {
    LS_ASSIGN_OR_RETURN(auto sep, optional_string_arg(args, 0, "sep", name));
    LS_ASSIGN_OR_RETURN(int64_t maxsplit, int_arg(args, 1, "maxsplit", -1, name));
    LS_ASSIGN_OR_RETURN(auto parts, split_string(s, sep, maxsplit, name == "rsplit"));
    return string_list(std::move(parts));
  }
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    LS_ASSIGN_OR_RETURN(auto chars, optional_string_arg(args, 0, "chars", name));
    return Value::string(strip_string(s, chars, name != "rstrip", name != "lstrip"));
  }
  if (name == "replace") {
    LS_ASSIGN_OR_RETURN(std::string old, string_arg(args, 0, "old", name));
    Value repl = call_arg(args, 1, "new");
    if (!repl.is_string()) return arg_error(name, "argument 'new' must be a string");
    LS_ASSIGN_OR_RETURN(int64_t count, int_arg(args, 2, "count", -1, name));
    return Value::string(replace_string(s, old, repl.as_string(), count));
  }
  if (name == "upper") return Value::string(upper_string(s));
  if (name == "lower") return Value::string(lower_string(s));
  if (name == "capitalize") return Value::string(capitalize_string(s));
  if (name == "title") return Value::string(title_string(s));
  if (name == "find" || name == "rfind" || name == "count") {
    LS_ASSIGN_OR_RETURN(std::string sub, string_arg(args, 0, "sub", name));
    if (name == "count") {
      if (sub.empty()) return Value::integer(static_cast<int64_t>(utf8_length(t)) + 1);
      int64_t n = 0;
      for (size_t p = t.find(sub); p != std::string::npos; p = t.find(sub, p + sub.size())) ++n;
      return Value::integer(n);
    }
    const size_t p = name == "find" ? t.find(sub) : t.rfind(sub);
    return Value::integer(p == std::string::npos ? -1 : static_cast<int64_t>(utf8_length(std::string_view(t).substr(0, p))));
  }
  if (name == "join") {
    Value items = call_arg(args, 0, "iterable");
    if (!items.is_list()) return arg_error(name, "argument must be a list of strings");
    TaggedString out;
    for (size_t i = 0; i < items.as_list().size(); ++i) {
      const Value& item = items.as_list()[i];
      if (!item.is_string()) return arg_error(name, "sequence item " + std::to_string(i) + ": expected str, found " + item.type_name());
      if (i) out.append(s);
      out.append(item.as_string());
    }
    return Value::string(std::move(out));
  }
  return make_error("str has no method '" + name + "'");
}

Result<Value> call_dict_method(const Dict& d, const std::string& name, const CallArgs& args) {
  if (name == "get") {
    const Value* v = d.find(call_arg(args, 0, "key"));
    return v ? *v : call_arg(args, 1, "default", Value::none());
  }
  List out;
  for (const auto& [k, v] : d.items()) {
    if (name == "keys") out.push_back(k);
    else if (name == "values") out.push_back(v);
    else out.push_back(Value::list({k, v}, true));
  }
  return Value::list(std::move(out));
}

bool is_string_method(const std::string& n) {
  static const char* const kNames[] = {"startswith", "endswith", "split", "rsplit", "strip", "lstrip", "rstrip",
                                       "replace", "upper", "lower", "capitalize", "title", "find", "rfind",
                                       "count", "join"};
  for (const char* k : kNames) {
    if (n == k) return true;
  }
  return false;
}

}  // namespace

Value call_arg(const CallArgs& args, size_t index, const char* name, Value fallback) {
  if (index < args.positional.size()) return args.positional[index];
  for (const auto& [k, v] : args.keyword) {
    if (k == name) return v;
  }
  return fallback;
}

Value bound_method(const Value& receiver, const std::string& name) {
  if (receiver.is_string() && is_string_method(name)) {
    return Value::callable({"str." + name, [receiver, name](const CallArgs& args) {
                              return call_string_method(receiver.as_string(), name, args);
                            }});
  }
  if (receiver.kind() == Kind::Dict && (name == "get" || name == "items" || name == "keys" || name == "values")) {
    return Value::callable({"dict." + name, [receiver, name](const CallArgs& args) {
                              return call_dict_method(receiver.as_dict(), name, args);
                            }});
  }
  return Value::undefined();
}

TaggedString strip_string(const TaggedString& s, const std::optional<std::string>& chars, bool left, bool right) {
  const std::string& t = s.text();
  auto strippable = [&](char c) { return chars ? chars->find(c) != std::string::npos : is_ws(c); };
  size_t b = 0, e = t.size();
  if (left) {
    while (b < e && strippable(t[b])) ++b;
  }
  if (right) {
    while (e > b && strippable(t[e - 1])) --e;
  }
  return s.substr(b, e);
}

TaggedString replace_string(const TaggedString& s, const std::string& old, const TaggedString& replacement, int64_t count) {
  const std::string& t = s.text();
  TaggedString out;
  if (old.empty()) {
    // Python inserts the replacement before every character and at the end.
    const std::vector<size_t> offs = utf8_offsets(t);
    for (size_t i = 0; i + 1 < offs.size(); ++i) {
      if (count < 0 || static_cast<int64_t>(i) < count) out.append(replacement);
      out.append(s.substr(offs[i], offs[i + 1]));
    }
    if (count < 0 || static_cast<int64_t>(offs.size()) - 1 < count) out.append(replacement);
    return out;
  }
  size_t pos = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    const size_t hit = t.find(old, pos);
    if (hit == std::string::npos) break;
    out.append(s.substr(pos, hit));
    out.append(replacement);
    pos = hit + old.size();
    ++done;
  }
  out.append(s.substr(pos, t.size()));
  return out;
}

Result<std::vector<TaggedString>> split_string(const TaggedString& s, const std::optional<std::string>& sep,
                                               int64_t maxsplit, bool from_right) {
  const std::string& t = s.text();
  std::vector<TaggedString> parts;
  if (sep && sep->empty()) return make_error("split(): empty separator");
  if (sep) {
    if (!from_right) {
      size_t pos = 0;
      for (size_t hit = t.find(*sep); hit != std::string::npos && (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit);
           hit = t.find(*sep, pos)) {
        parts.push_back(s.substr(pos, hit));
        pos = hit + sep->size();
      }
      parts.push_back(s.substr(pos, t.size()));
      return parts;
    }
    size_t end = t.size();
    while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
      if (end < sep->size()) break;
      const size_t hit = t.rfind(*sep, end - sep->size());
      if (hit == std::string::npos) break;
      parts.insert(parts.begin(), s.substr(hit + sep->size(), end));
      end = hit;
    }
    parts.insert(parts.begin(), s.substr(0, end));
    return parts;
  }
  if (!from_right) {
    size_t i = 0;
    while (true) {
      while (i < t.size() && is_ws(t[i])) ++i;
      if (i >= t.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
        parts.push_back(s.substr(i, t.size()));
        break;
      }
      size_t j = i;
      while (j < t.size() && !is_ws(t[j])) ++j;
      parts.push_back(s.substr(i, j));
      i = j;
    }
    return parts;
  }
  size_t e = t.size();
  while (true) {
    while (e > 0 && is_ws(t[e - 1])) --e;
    if (e == 0) break;
    if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
      parts.insert(parts.begin(), s.substr(0, e));
      break;
    }
    size_t b = e;
    while (b > 0 && !is_ws(t[b - 1])) --b;
    parts.insert(parts.begin(), s.substr(b, e));
    e = b;
  }
  return parts;
}

namespace {

template <class F>
TaggedString map_bytes(const TaggedString& s, F f) {
  TaggedString out;
  size_t pos = 0;
  for (const TaggedString::Run& run : s.runs()) {
    std::string piece = s.text().substr(pos, run.length);
    for (size_t i = 0; i < piece.size(); ++i) piece[i] = f(piece[i], pos + i);
    out.append(piece, run.tagged);
    pos += run.length;
  }
  return out;
}

char to_upper(char c) { return static_cast<char>(std::toupper(static_cast<unsigned char>(c))); }
char to_lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

}  // namespace

TaggedString upper_string(const TaggedString& s) {
  return map_bytes(s, [](char c, size_t) { return to_upper(c); });
}

TaggedString lower_string(const TaggedString& s) {
  return map_bytes(s, [](char c, size_t) { return to_lower(c); });
}

TaggedString capitalize_string(const TaggedString& s) {
  return map_bytes(s, [](char c, size_t i) { return i == 0 ? to_upper(c) : to_lower(c); });
}

TaggedString title_string(const TaggedString& s) {
  const std::string& t = s.text();
  return map_bytes(s, [&t](char c, size_t i) {
    const bool after_letter = i > 0 && std::isalpha(static_cast<unsigned char>(t[i - 1]));
    return after_letter ? to_lower(c) : to_upper(c);
  });
}

}  // namespace latentserve::engine::text::jinja
