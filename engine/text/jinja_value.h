// Values of the chat-template interpreter: Python-like dynamic values (as Jinja sees them) whose
// strings remember which bytes came from request input, so a rendered prompt can tell template
// text from message content and the tokenizer never turns user-typed text into control tokens.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace latentserve::engine::text::jinja {

// Bytes plus runs saying, for each stretch, whether it came from input ("tagged").
class TaggedString {
 public:
  struct Run {
    size_t length;
    bool tagged;
  };

  TaggedString() = default;
  explicit TaggedString(std::string text, bool tagged = false);

  const std::string& text() const { return text_; }
  const std::vector<Run>& runs() const { return runs_; }
  size_t size() const { return text_.size(); }
  bool empty() const { return text_.empty(); }
  bool any_tagged() const;

  void append(const TaggedString& other);
  void append(std::string_view text, bool tagged);
  // Bytes [begin, end) with their tags.
  TaggedString substr(size_t begin, size_t end) const;

 private:
  std::string text_;
  std::vector<Run> runs_;
};

enum class Kind { Undefined, None, Bool, Int, Float, String, List, Dict, Namespace, Callable };

class Value;
using List = std::vector<Value>;

// Insertion-ordered mapping like a Python dict; keys are strings, numbers, bools or none.
class Dict {
 public:
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  void set(Value key, Value value);
  const std::vector<std::pair<Value, Value>>& items() const { return items_; }
  size_t size() const { return items_.size(); }

 private:
  std::vector<std::pair<Value, Value>> items_;
  std::unordered_map<std::string, size_t> index_;
};

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

// A function a template can call: a global (range, namespace, raise_exception), a bound method
// of a string or dict, or a macro.
struct Callable {
  std::string name;
  std::function<Result<Value>(const CallArgs&)> call;
};

class Value {
 public:
  Value() = default;  // undefined
  static Value undefined(std::string hint = {});
  static Value none();
  static Value boolean(bool b);
  static Value integer(int64_t i);
  static Value floating(double f);
  static Value string(TaggedString s);
  static Value string(std::string s, bool tagged = false);
  static Value list(List items, bool is_tuple = false);
  static Value dict(Dict d);
  // A namespace() object: the one mutable value, shared by reference.
  static Value make_namespace(Dict d);
  static Value callable(Callable c);
  // Converts JSON; every string (keys included) is tagged when `tagged`. Use ordered_json to
  // keep object keys in their input order, as Python dicts do (tojson output depends on it).
  static Value from_json(const nlohmann::json& j, bool tagged);
  static Value from_json(const nlohmann::ordered_json& j, bool tagged);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::Undefined; }
  bool is_none() const { return kind_ == Kind::None; }
  bool is_string() const { return kind_ == Kind::String; }
  bool is_list() const { return kind_ == Kind::List; }
  bool is_tuple() const { return kind_ == Kind::List && is_tuple_; }
  bool is_mapping() const { return kind_ == Kind::Dict || kind_ == Kind::Namespace; }
  // Python numbers: bools count, as isinstance(True, int) does.
  bool is_number() const { return kind_ == Kind::Int || kind_ == Kind::Float || kind_ == Kind::Bool; }
  bool is_integral() const { return kind_ == Kind::Int || kind_ == Kind::Bool; }

  bool as_bool() const { return b_; }
  int64_t as_int() const { return kind_ == Kind::Bool ? (b_ ? 1 : 0) : i_; }
  double as_float() const { return kind_ == Kind::Float ? f_ : static_cast<double>(as_int()); }
  const TaggedString& as_string() const { return *s_; }
  const List& as_list() const { return *l_; }
  const Dict& as_dict() const { return *d_; }
  Dict& namespace_dict() const { return *d_; }
  const Callable& as_callable() const { return *c_; }
  // For undefined values: what was looked up, for error messages ("'x' is undefined").
  const std::string& undefined_hint() const;

  bool truthy() const;
  // Python's type name, for error messages.
  std::string type_name() const;

 private:
  Kind kind_ = Kind::Undefined;
  bool b_ = false;
  bool is_tuple_ = false;
  int64_t i_ = 0;
  double f_ = 0.0;
  std::shared_ptr<const TaggedString> s_;
  std::shared_ptr<const List> l_;
  std::shared_ptr<Dict> d_;
  std::shared_ptr<const Callable> c_;
};

// Python str(): strings as they are; others as Python prints them (None, True, 1.5, ['a']).
TaggedString to_str(const Value& v);
// Python repr(): strings quoted, containers with repr of their items.
TaggedString to_repr(const Value& v);
// Python's repr of a float (shortest round-trip form, "1.0", "1e-05", "inf").
std::string float_repr(double f);

// Python ==, with 1 == 1.0 == True; undefined equals only undefined.
bool values_equal(const Value& a, const Value& b);
// Python <, <=, ... as a three-way result; an error for types Python cannot order.
Result<int> compare_values(const Value& a, const Value& b);

// Number of Unicode code points in UTF-8 text (Python's len of a str).
size_t utf8_length(std::string_view s);
// Byte offsets of every code point start, plus s.size() at the end.
std::vector<size_t> utf8_offsets(std::string_view s);

}  // namespace latentserve::engine::text::jinja
