#include "engine/text/jinja_json.h"

#include <algorithm>
#include <cstdio>
#include <vector>

namespace latentserve::engine::text::jinja {
namespace {

constexpr int kMaxDepth = 512;

uint32_t decode_utf8(const std::string& s, size_t& i) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  int extra = c >= 0xF0 ? 3 : (c >= 0xE0 ? 2 : (c >= 0xC0 ? 1 : 0));
  uint32_t cp = extra == 0 ? c : (c & (0x3F >> extra));
  for (int k = 0; k < extra && i + 1 < s.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[++i]) & 0x3F);
  return cp;
}

void append_escaped(std::string& out, const std::string& s, size_t begin, size_t end, bool ensure_ascii) {
  char buf[16];
  for (size_t i = begin; i < end; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      case '\b': out += "\\b"; continue;
      case '\f': out += "\\f"; continue;
      default: break;
    }
    if (c < 0x20) {
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else if (c >= 0x80 && ensure_ascii) {
      uint32_t cp = decode_utf8(s, i);
      if (cp >= 0x10000) {
        cp -= 0x10000;
        std::snprintf(buf, sizeof(buf), "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
      } else {
        std::snprintf(buf, sizeof(buf), "\\u%04x", cp);
      }
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
}

class Writer {
 public:
  explicit Writer(const JsonOptions& o) : opt_(o) {
    item_sep_ = !o.item_separator.empty() ? o.item_separator : (o.indent >= 0 ? "," : ", ");
    key_sep_ = !o.key_separator.empty() ? o.key_separator : ": ";
  }

  Status write(const Value& v, int depth) {
    if (depth > kMaxDepth) return make_error("tojson: value nested too deeply");
    switch (v.kind()) {
      case Kind::None: out_.append("null", false); return ok_status();
      case Kind::Bool: out_.append(v.as_bool() ? "true" : "false", false); return ok_status();
      case Kind::Int: out_.append(std::to_string(v.as_int()), false); return ok_status();
      case Kind::Float: out_.append(float_json(v.as_float()), false); return ok_status();
      case Kind::String: write_string(v.as_string()); return ok_status();
      case Kind::List: return write_list(v.as_list(), depth);
      case Kind::Dict: return write_dict(v.as_dict(), depth);
      default: return make_error("tojson: object of type '" + v.type_name() + "' is not JSON serializable");
    }
  }

  TaggedString take() { return std::move(out_); }

 private:
  static std::string float_json(double f) {
    const std::string r = float_repr(f);
    if (r == "nan") return "NaN";
    if (r == "inf") return "Infinity";
    if (r == "-inf") return "-Infinity";
    return r;
  }

  void write_string(const TaggedString& s) {
    out_.append("\"", false);
    size_t pos = 0;
    for (const TaggedString::Run& run : s.runs()) {
      std::string escaped;
      append_escaped(escaped, s.text(), pos, pos + run.length, opt_.ensure_ascii);
      out_.append(escaped, run.tagged);
      pos += run.length;
    }
    out_.append("\"", false);
  }

  void newline(int depth) {
    if (opt_.indent < 0) return;
    out_.append("\n" + std::string(static_cast<size_t>(opt_.indent) * static_cast<size_t>(depth), ' '), false);
  }

  Status write_list(const List& items, int depth) {
    if (items.empty()) {
      out_.append("[]", false);
      return ok_status();
    }
    out_.append("[", false);
    for (size_t i = 0; i < items.size(); ++i) {
      if (i) out_.append(item_sep_, false);
      newline(depth + 1);
      LS_RETURN_IF_ERROR(write(items[i], depth + 1));
    }
    newline(depth);
    out_.append("]", false);
    return ok_status();
  }

  Status write_key(const Value& k) {
    switch (k.kind()) {
      case Kind::String: write_string(k.as_string()); return ok_status();
      case Kind::None: out_.append("\"null\"", false); return ok_status();
      case Kind::Bool: out_.append(k.as_bool() ? "\"true\"" : "\"false\"", false); return ok_status();
      case Kind::Int: out_.append("\"" + std::to_string(k.as_int()) + "\"", false); return ok_status();
      case Kind::Float: out_.append("\"" + float_json(k.as_float()) + "\"", false); return ok_status();
      default: return make_error("tojson: keys must be str, int, float, bool or None, not " + k.type_name());
    }
  }

  Status write_dict(const Dict& d, int depth) {
    if (d.size() == 0) {
      out_.append("{}", false);
      return ok_status();
    }
    std::vector<const std::pair<Value, Value>*> items;
    for (const auto& item : d.items()) items.push_back(&item);
    if (opt_.sort_keys) {
      for (const auto* item : items) {
        if (!item->first.is_string()) return make_error("tojson: sort_keys needs string keys");
      }
      std::stable_sort(items.begin(), items.end(), [](const auto* a, const auto* b) {
        return a->first.as_string().text() < b->first.as_string().text();
      });
    }
    out_.append("{", false);
    for (size_t i = 0; i < items.size(); ++i) {
      if (i) out_.append(item_sep_, false);
      newline(depth + 1);
      LS_RETURN_IF_ERROR(write_key(items[i]->first));
      out_.append(key_sep_, false);
      LS_RETURN_IF_ERROR(write(items[i]->second, depth + 1));
    }
    newline(depth);
    out_.append("}", false);
    return ok_status();
  }

  const JsonOptions& opt_;
  std::string item_sep_;
  std::string key_sep_;
  TaggedString out_;
};

}  // namespace

Result<TaggedString> to_json(const Value& value, const JsonOptions& options) {
  Writer w(options);
  LS_RETURN_IF_ERROR(w.write(value, 0));
  return w.take();
}

}  // namespace latentserve::engine::text::jinja
