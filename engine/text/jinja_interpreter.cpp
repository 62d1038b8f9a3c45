#include "engine/text/jinja_interpreter.h"

#include <unordered_map>

#include "engine/text/jinja_filters.h"
#include "engine/text/jinja_lexer.h"
#include "engine/text/jinja_operators.h"
#include "engine/text/jinja_parser.h"

namespace latentserve::engine::text::jinja {
namespace {

enum class Flow { Normal, Break, Continue };

using Frame = std::unordered_map<std::string, Value>;

class Interpreter {
 public:
  explicit Interpreter(const RenderLimits& limits) : limits_(limits) {}

  Result<TaggedString> run(const Body& body, const std::vector<std::pair<std::string, Value>>& variables) {
    frames_.emplace_back();
    install_globals(frames_.back());
    for (const auto& [name, value] : variables) frames_.back()[name] = value;
    frames_.emplace_back();
    TaggedString out;
    Result<Flow> r = exec(body, out);
    if (!r.ok()) return r.error();
    return out;
  }

 private:
  // ---- errors and limits ----

  Error located(int line, int column, const Error& e) const {
    if (raised_ || e.message.rfind("template line ", 0) == 0) return e;
    return make_error("template line " + std::to_string(line) + ", column " + std::to_string(column) + ": " + e.message);
  }
  Error located(const Expr& e, const Error& err) const { return located(e.line, e.column, err); }
  Error located(const Expr& e, const std::string& msg) const { return located(e.line, e.column, make_error(msg)); }

  Status step() {
    if (++steps_ > limits_.max_steps) return make_error("template rendering exceeded " + std::to_string(limits_.max_steps) + " steps");
    return ok_status();
  }

  Status check_size(const Value& v) const {
    if (v.is_string() && v.as_string().size() > limits_.max_output_bytes) return make_error("string value exceeds the output size limit");
    if (v.is_list() && v.as_list().size() > limits_.max_list_items) return make_error("list value exceeds the size limit");
    return ok_status();
  }

  Status emit(TaggedString& out, const TaggedString& s) {
    out.append(s);
    written_ += s.size();
    if (written_ > limits_.max_output_bytes) {
      return make_error("template output exceeds " + std::to_string(limits_.max_output_bytes) + " bytes");
    }
    return step();
  }

  // ---- globals ----

  void install_globals(Frame& g) {
    g["range"] = Value::callable({"range", [this](const CallArgs& a) { return call_range(a); }});
    g["namespace"] = Value::callable({"namespace", [](const CallArgs& a) { return make_dict(a, true); }});
    g["dict"] = Value::callable({"dict", [](const CallArgs& a) { return make_dict(a, false); }});
    g["raise_exception"] = Value::callable({"raise_exception", [this](const CallArgs& a) -> Result<Value> {
                                              raised_ = true;
                                              return make_error(a.positional.empty() ? std::string("raise_exception() called")
                                                                                     : to_str(a.positional[0]).text());
                                            }});
  }

  Result<Value> call_range(const CallArgs& a) {
    if (a.positional.empty() || a.positional.size() > 3 || !a.keyword.empty()) return make_error("range() takes 1 to 3 arguments");
    for (const Value& v : a.positional) {
      if (!v.is_integral()) return make_error("range() arguments must be integers, not " + v.type_name());
    }
    int64_t start = 0, stop = 0, stride = 1;
    if (a.positional.size() == 1) {
      stop = a.positional[0].as_int();
    } else {
      start = a.positional[0].as_int();
      stop = a.positional[1].as_int();
      if (a.positional.size() == 3) stride = a.positional[2].as_int();
    }
    if (stride == 0) return make_error("range() step must not be zero");
    List out;
    for (int64_t i = start; stride > 0 ? i < stop : i > stop; i += stride) {
      LS_RETURN_IF_ERROR(step());
      if (out.size() >= limits_.max_list_items) return make_error("range() too large");
      out.push_back(Value::integer(i));
    }
    return Value::list(std::move(out));
  }

  static Result<Value> make_dict(const CallArgs& a, bool as_namespace) {
    Dict d;
    if (a.positional.size() > 1) return make_error("expected at most one positional argument");
    if (!a.positional.empty()) {
      if (!a.positional[0].is_mapping()) return make_error("positional argument must be a mapping");
      for (const auto& [k, v] : a.positional[0].as_dict().items()) d.set(k, v);
    }
    for (const auto& [k, v] : a.keyword) d.set(Value::string(k), v);
    return as_namespace ? Value::make_namespace(std::move(d)) : Value::dict(std::move(d));
  }

  // ---- variables ----

  Value lookup(const std::string& name) const {
    for (auto it = frames_.rbegin(); it != frames_.rend(); ++it) {
      auto found = it->find(name);
      if (found != it->end()) return found->second;
    }
    return Value::undefined("'" + name + "' is undefined");
  }

  Status assign(const std::vector<std::string>& targets, const Value& v) {
    if (targets.size() == 1) {
      frames_.back()[targets[0]] = v;
      return ok_status();
    }
    LS_ASSIGN_OR_RETURN(List items, iterate(v));
    if (items.size() != targets.size()) {
      return make_error("cannot unpack " + std::to_string(items.size()) + " values into " + std::to_string(targets.size()) + " names");
    }
    for (size_t i = 0; i < targets.size(); ++i) frames_.back()[targets[i]] = items[i];
    return ok_status();
  }

  // ---- statements ----

  Result<Flow> exec(const Body& body, TaggedString& out) {
    for (const NodePtr& n : body) {
      LS_ASSIGN_OR_RETURN(Flow f, exec_node(*n, out));
      if (f != Flow::Normal) return f;
    }
    return Flow::Normal;
  }

  Result<Flow> exec_node(const Node& n, TaggedString& out) {
    switch (n.type) {
      case Node::Type::Text:
        LS_RETURN_IF_ERROR(emit(out, TaggedString(n.text)));
        return Flow::Normal;
      case Node::Type::Output: {
        LS_ASSIGN_OR_RETURN(Value v, eval(*n.expr));
        Status s = emit(out, to_str(v));
        if (!s.ok()) return located(n.line, n.column, s.error());
        return Flow::Normal;
      }
      case Node::Type::If:
        for (size_t i = 0; i < n.conditions.size(); ++i) {
          LS_ASSIGN_OR_RETURN(Value c, eval(*n.conditions[i]));
          if (c.truthy()) return exec(n.bodies[i], out);
        }
        return exec(n.else_body, out);
      case Node::Type::For: return exec_for(n, out);
      case Node::Type::Set: return exec_set(n);
      case Node::Type::SetBlock: {
        TaggedString captured;
        LS_ASSIGN_OR_RETURN(Flow f, exec(n.body, captured));
        frames_.back()[n.targets[0]] = Value::string(std::move(captured));
        return f;
      }
      case Node::Type::Macro: frames_.back()[n.name] = make_macro(n); return Flow::Normal;
      case Node::Type::Break: return Flow::Break;
      case Node::Type::Continue: return Flow::Continue;
    }
    return Flow::Normal;
  }

  Result<Flow> exec_set(const Node& n) {
    LS_ASSIGN_OR_RETURN(Value v, eval(*n.expr));
    if (n.attr.empty()) {
      Status s = assign(n.targets, v);
      if (!s.ok()) return located(n.line, n.column, s.error());
      return Flow::Normal;
    }
    Value target = lookup(n.targets[0]);
    if (target.kind() != Kind::Namespace) {
      return located(n.line, n.column, make_error("cannot assign attribute '" + n.attr + "' on '" + n.targets[0] + "', which is not a namespace"));
    }
    target.namespace_dict().set(Value::string(n.attr), std::move(v));
    return Flow::Normal;
  }

  Result<List> loop_items(const Node& n) {
    LS_ASSIGN_OR_RETURN(Value seq, eval(*n.expr));
    Result<List> items = iterate(seq);
    if (!items.ok()) return located(*n.expr, items.error());
    if (!n.filter) return items;
    List kept;
    for (Value& item : *items) {
      frames_.emplace_back();
      Status s = assign(n.targets, item);
      Result<Value> keep = s.ok() ? eval(*n.filter) : Result<Value>(s.error());
      frames_.pop_back();
      if (!keep.ok()) return located(n.line, n.column, keep.error());
      if (keep->truthy()) kept.push_back(std::move(item));
    }
    return kept;
  }

  static Value loop_object(const List& items, size_t i) {
    const int64_t len = static_cast<int64_t>(items.size()), idx = static_cast<int64_t>(i);
    Dict d;
    d.set(Value::string("index"), Value::integer(idx + 1));
    d.set(Value::string("index0"), Value::integer(idx));
    d.set(Value::string("revindex"), Value::integer(len - idx));
    d.set(Value::string("revindex0"), Value::integer(len - idx - 1));
    d.set(Value::string("first"), Value::boolean(i == 0));
    d.set(Value::string("last"), Value::boolean(idx == len - 1));
    d.set(Value::string("length"), Value::integer(len));
    d.set(Value::string("depth"), Value::integer(1));
    d.set(Value::string("depth0"), Value::integer(0));
    if (i > 0) d.set(Value::string("previtem"), items[i - 1]);
    if (idx + 1 < len) d.set(Value::string("nextitem"), items[i + 1]);
    d.set(Value::string("cycle"), Value::callable({"loop.cycle", [idx](const CallArgs& a) -> Result<Value> {
                                                     if (a.positional.empty()) return make_error("loop.cycle() needs arguments");
                                                     return a.positional[static_cast<size_t>(idx) % a.positional.size()];
                                                   }}));
    return Value::dict(std::move(d));
  }

  Result<Flow> exec_for(const Node& n, TaggedString& out) {
    LS_ASSIGN_OR_RETURN(List items, loop_items(n));
    if (items.empty()) return exec(n.else_body, out);
    for (size_t i = 0; i < items.size(); ++i) {
      Status s = step();
      if (!s.ok()) return located(n.line, n.column, s.error());
      frames_.emplace_back();
      frames_.back()["loop"] = loop_object(items, i);
      s = assign(n.targets, items[i]);
      if (!s.ok()) return located(n.line, n.column, s.error());
      Result<Flow> f = exec(n.body, out);
      frames_.pop_back();
      if (!f.ok()) return f.error();
      if (*f == Flow::Break) break;
    }
    return Flow::Normal;
  }

  Value make_macro(const Node& n) {
    const Node* node = &n;
    return Value::callable({n.name, [this, node](const CallArgs& a) { return call_macro(*node, a); }});
  }

  Result<Value> call_macro(const Node& n, const CallArgs& a) {
    if (a.positional.size() > n.params.size()) return make_error("macro '" + n.name + "' takes " + std::to_string(n.params.size()) + " arguments");
    if (++call_depth_ > limits_.max_call_depth) return make_error("macro calls nested too deeply");
    Frame frame;
    for (size_t i = 0; i < n.params.size(); ++i) {
      const std::string& p = n.params[i].first;
      Value v = i < a.positional.size() ? a.positional[i] : Value::undefined("'" + p + "' is undefined");
      for (const auto& [k, kv] : a.keyword) {
        if (k == p) v = kv;
      }
      if (v.is_undefined() && n.params[i].second && i >= a.positional.size()) {
        bool given = false;
        for (const auto& kw : a.keyword) given = given || kw.first == p;
        if (!given) {
          LS_ASSIGN_OR_RETURN(v, eval(*n.params[i].second));
        }
      }
      frame[p] = v;
    }
    for (const auto& kw : a.keyword) {
      if (!frame.count(kw.first)) return make_error("macro '" + n.name + "' has no argument '" + kw.first + "'");
    }
    frames_.push_back(std::move(frame));
    TaggedString out;
    Result<Flow> f = exec(n.body, out);
    frames_.pop_back();
    --call_depth_;
    if (!f.ok()) return f.error();
    return Value::string(std::move(out));
  }

  // ---- expressions ----

  Result<Value> eval(const Expr& e) {
    Result<Value> r = eval_inner(e);
    if (!r.ok()) return located(e, r.error());
    Status s = check_size(*r);
    if (!s.ok()) return located(e, s.error());
    return r;
  }

  Result<CallArgs> eval_args(const Expr& e) {
    CallArgs args;
    for (size_t i = 1; i < e.args.size(); ++i) {
      LS_ASSIGN_OR_RETURN(Value v, eval(*e.args[i]));
      args.positional.push_back(std::move(v));
    }
    for (const auto& [k, x] : e.kwargs) {
      LS_ASSIGN_OR_RETURN(Value v, eval(*x));
      args.keyword.emplace_back(k, std::move(v));
    }
    return args;
  }

  Result<Value> eval_inner(const Expr& e) {
    switch (e.type) {
      case Expr::Type::Literal: return e.literal;
      case Expr::Type::Name: return lookup(e.name);
      case Expr::Type::List:
      case Expr::Type::Tuple: {
        List items;
        for (const ExprPtr& x : e.args) {
          LS_ASSIGN_OR_RETURN(Value v, eval(*x));
          items.push_back(std::move(v));
        }
        return Value::list(std::move(items), e.type == Expr::Type::Tuple);
      }
      case Expr::Type::Dict: return eval_dict(e);
      case Expr::Type::Attr: {
        LS_ASSIGN_OR_RETURN(Value obj, eval(*e.args[0]));
        return get_attr(obj, e.name);
      }
      case Expr::Type::Item: {
        LS_ASSIGN_OR_RETURN(Value obj, eval(*e.args[0]));
        LS_ASSIGN_OR_RETURN(Value key, eval(*e.args[1]));
        return get_item(obj, key);
      }
      case Expr::Type::Slice: {
        LS_ASSIGN_OR_RETURN(Value obj, eval(*e.args[0]));
        Value parts[3];
        for (int i = 0; i < 3; ++i) {
          if (!e.args[static_cast<size_t>(i) + 1]) continue;
          LS_ASSIGN_OR_RETURN(parts[i], eval(*e.args[static_cast<size_t>(i) + 1]));
        }
        return get_slice(obj, parts[0], parts[1], parts[2]);
      }
      case Expr::Type::Call: return eval_call(e);
      case Expr::Type::Filter: {
        LS_ASSIGN_OR_RETURN(Value input, eval(*e.args[0]));
        LS_ASSIGN_OR_RETURN(CallArgs args, eval_args(e));
        LS_RETURN_IF_ERROR(step());
        return apply_filter(e.name, input, args);
      }
      case Expr::Type::Test: {
        LS_ASSIGN_OR_RETURN(Value input, eval(*e.args[0]));
        LS_ASSIGN_OR_RETURN(CallArgs args, eval_args(e));
        LS_ASSIGN_OR_RETURN(bool r, apply_test(e.name, input, args));
        return Value::boolean(r != e.negated);
      }
      case Expr::Type::Not: {
        LS_ASSIGN_OR_RETURN(Value v, eval(*e.args[0]));
        return Value::boolean(!v.truthy());
      }
      case Expr::Type::Negate: {
        LS_ASSIGN_OR_RETURN(Value v, eval(*e.args[0]));
        return unary_minus(v);
      }
      case Expr::Type::Plus: {
        LS_ASSIGN_OR_RETURN(Value v, eval(*e.args[0]));
        if (!v.is_number()) return make_error("bad operand type for unary +: '" + v.type_name() + "'");
        return v;
      }
      case Expr::Type::Binary: return eval_binary(e);
      case Expr::Type::Compare: return eval_compare(e);
      case Expr::Type::Cond: {
        LS_ASSIGN_OR_RETURN(Value c, eval(*e.args[0]));
        if (c.truthy()) return eval(*e.args[1]);
        if (!e.args[2]) return Value::undefined("the inline if-expression evaluated to false and no else section was defined");
        return eval(*e.args[2]);
      }
    }
    return make_error("unsupported expression");
  }

  Result<Value> eval_dict(const Expr& e) {
    Dict d;
    for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
      LS_ASSIGN_OR_RETURN(Value k, eval(*e.args[i]));
      LS_ASSIGN_OR_RETURN(Value v, eval(*e.args[i + 1]));
      if (!(k.is_string() || k.is_number() || k.is_none())) return located(*e.args[i], "unhashable dict key of type '" + k.type_name() + "'");
      d.set(std::move(k), std::move(v));
    }
    return Value::dict(std::move(d));
  }

  Result<Value> eval_call(const Expr& e) {
    LS_ASSIGN_OR_RETURN(Value callee, eval(*e.args[0]));
    LS_ASSIGN_OR_RETURN(CallArgs args, eval_args(e));
    if (callee.is_undefined()) return make_error(undefined_message(callee));
    if (callee.kind() != Kind::Callable) return make_error("'" + callee.type_name() + "' object is not callable");
    LS_RETURN_IF_ERROR(step());
    return callee.as_callable().call(args);
  }

  Result<Value> eval_binary(const Expr& e) {
    LS_ASSIGN_OR_RETURN(Value left, eval(*e.args[0]));
    if (e.name == "and") return left.truthy() ? eval(*e.args[1]) : left;
    if (e.name == "or") return left.truthy() ? left : eval(*e.args[1]);
    LS_ASSIGN_OR_RETURN(Value right, eval(*e.args[1]));
    return binary_op(e.name, left, right);
  }

  Result<Value> eval_compare(const Expr& e) {
    LS_ASSIGN_OR_RETURN(Value left, eval(*e.args[0]));
    for (size_t i = 0; i < e.ops.size(); ++i) {
      LS_ASSIGN_OR_RETURN(Value right, eval(*e.args[i + 1]));
      const std::string& op = e.ops[i];
      bool r;
      if (op == "==" || op == "!=") {
        r = values_equal(left, right) == (op == "==");
      } else if (op == "in" || op == "notin") {
        LS_ASSIGN_OR_RETURN(bool c, contains(right, left));
        r = c == (op == "in");
      } else {
        if (left.is_undefined()) return make_error(undefined_message(left));
        if (right.is_undefined()) return make_error(undefined_message(right));
        LS_ASSIGN_OR_RETURN(int c, compare_values(left, right));
        r = op == "<" ? c < 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c >= 0;
      }
      if (!r) return Value::boolean(false);
      left = std::move(right);
    }
    return Value::boolean(true);
  }

  const RenderLimits& limits_;
  std::vector<Frame> frames_;
  uint64_t steps_ = 0;
  size_t written_ = 0;
  int call_depth_ = 0;
  bool raised_ = false;
};

}  // namespace

Result<Template> Template::parse(const std::string& source) {
  LS_ASSIGN_OR_RETURN(std::vector<Token> tokens, tokenize(source));
  LS_ASSIGN_OR_RETURN(Body body, jinja::parse(tokens));
  Template t;
  t.body_ = std::make_shared<const Body>(std::move(body));
  return t;
}

Result<TaggedString> Template::render(const std::vector<std::pair<std::string, Value>>& variables,
                                      const RenderLimits& limits) const {
  Interpreter interp(limits);
  return interp.run(*body_, variables);
}

}  // namespace latentserve::engine::text::jinja
