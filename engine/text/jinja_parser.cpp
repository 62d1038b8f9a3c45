#include "engine/text/jinja_parser.h"

#include <cerrno>
#include <cstdlib>
#include <set>

#include "engine/text/jinja_filters.h"

namespace latentserve::engine::text::jinja {
namespace {

// Deep nesting would overflow the stack of this recursive-descent parser.
constexpr int kMaxNesting = 200;

class Parser {
 public:
  explicit Parser(const std::vector<Token>& tokens) : toks_(tokens) {}

  Result<Body> parse_template() {
    LS_ASSIGN_OR_RETURN(Body body, parse_body({}));
    if (cur().type != TokenType::End) return error("unexpected '" + tag_name_ + "' tag");
    return body;
  }

 private:
  const Token& cur() const { return toks_[pos_]; }
  const Token& peek(size_t n = 1) const { return toks_[std::min(pos_ + n, toks_.size() - 1)]; }
  void advance() {
    if (toks_[pos_].type != TokenType::End) ++pos_;
  }
  bool is_op(const char* op) const { return cur().type == TokenType::Operator && cur().value == op; }
  bool is_name(const char* name) const { return cur().type == TokenType::Name && cur().value == name; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    advance();
    return true;
  }
  bool skip_name(const char* name) {
    if (!is_name(name)) return false;
    advance();
    return true;
  }

  Error error(const std::string& message) const { return error_at(cur(), message); }
  static Error error_at(const Token& t, const std::string& message) {
    return make_error("template line " + std::to_string(t.line) + ", column " + std::to_string(t.column) + ": " + message);
  }
  static std::string describe(const Token& t) {
    switch (t.type) {
      case TokenType::End: return "end of template";
      case TokenType::BlockEnd: return "end of statement block";
      case TokenType::VarEnd: return "end of print statement";
      case TokenType::String: return "string";
      default: return "'" + t.value + "'";
    }
  }
  Status expect_op(const char* op) {
    if (skip_op(op)) return ok_status();
    return error(std::string("expected '") + op + "', got " + describe(cur()));
  }
  Result<std::string> expect_name() {
    if (cur().type != TokenType::Name) return error("expected a name, got " + describe(cur()));
    std::string n = cur().value;
    advance();
    return n;
  }
  Status expect_block_end() {
    if (cur().type == TokenType::BlockEnd) {
      advance();
      return ok_status();
    }
    return error("expected end of statement block, got " + describe(cur()));
  }

  ExprPtr make(Expr::Type type, const Token& at) {
    auto e = std::make_unique<Expr>();
    e->type = type;
    e->line = at.line;
    e->column = at.column;
    return e;
  }

  // ---- statements ----

  // Parses until a block tag whose name is in `end_tags` (left unconsumed; its name in tag_name_).
  Result<Body> parse_body(const std::set<std::string>& end_tags) {
    if (++depth_ > kMaxNesting) return error("template nested too deeply");
    Body body;
    while (cur().type != TokenType::End) {
      const Token& t = cur();
      if (t.type == TokenType::Text) {
        auto n = std::make_unique<Node>();
        n->type = Node::Type::Text;
        n->text = t.value;
        body.push_back(std::move(n));
        advance();
      } else if (t.type == TokenType::VarBegin) {
        advance();
        auto n = std::make_unique<Node>();
        n->type = Node::Type::Output;
        n->line = t.line;
        n->column = t.column;
        LS_ASSIGN_OR_RETURN(n->expr, parse_tuple(true, {}));
        if (cur().type != TokenType::VarEnd) return error("expected end of print statement, got " + describe(cur()));
        advance();
        body.push_back(std::move(n));
      } else if (t.type == TokenType::BlockBegin) {
        const Token& name = peek();
        if (name.type != TokenType::Name) return error_at(name, "expected a tag name, got " + describe(name));
        if (end_tags.count(name.value)) {
          tag_name_ = name.value;
          advance();
          advance();
          --depth_;
          return body;
        }
        advance();
        LS_ASSIGN_OR_RETURN(NodePtr n, parse_statement());
        body.push_back(std::move(n));
      } else {
        return error("unexpected " + describe(t));
      }
    }
    if (!end_tags.empty()) {
      std::string wanted;
      for (const auto& e : end_tags) wanted += (wanted.empty() ? "'" : " or '") + e + "'";
      return error("unexpected end of template, expected " + wanted);
    }
    tag_name_.clear();
    --depth_;
    return body;
  }

  Result<NodePtr> parse_statement() {
    const Token& t = cur();
    auto n = std::make_unique<Node>();
    n->line = t.line;
    n->column = t.column;
    const std::string tag = t.value;
    advance();
    if (tag == "if") return parse_if(std::move(n));
    if (tag == "for") return parse_for(std::move(n));
    if (tag == "set") return parse_set(std::move(n));
    if (tag == "macro") return parse_macro(std::move(n));
    if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) return error_at(t, "'" + tag + "' outside of a loop");
      n->type = tag == "break" ? Node::Type::Break : Node::Type::Continue;
      LS_RETURN_IF_ERROR(expect_block_end());
      return n;
    }
    if (tag.rfind("end", 0) == 0 || tag == "else" || tag == "elif") return error_at(t, "unexpected '" + tag + "' tag");
    return error_at(t, "unknown tag '" + tag + "'");
  }

  Result<NodePtr> parse_if(NodePtr n) {
    n->type = Node::Type::If;
    while (true) {
      LS_ASSIGN_OR_RETURN(ExprPtr cond, parse_tuple(false, {}));
      LS_RETURN_IF_ERROR(expect_block_end());
      LS_ASSIGN_OR_RETURN(Body body, parse_body({"elif", "else", "endif"}));
      n->conditions.push_back(std::move(cond));
      n->bodies.push_back(std::move(body));
      if (tag_name_ == "elif") continue;
      if (tag_name_ == "else") {
        LS_RETURN_IF_ERROR(expect_block_end());
        LS_ASSIGN_OR_RETURN(n->else_body, parse_body({"endif"}));
      }
      LS_RETURN_IF_ERROR(expect_block_end());
      return n;
    }
  }

  Result<NodePtr> parse_for(NodePtr n) {
    n->type = Node::Type::For;
    LS_ASSIGN_OR_RETURN(n->targets, parse_targets());
    if (!skip_name("in")) return error("expected 'in', got " + describe(cur()));
    LS_ASSIGN_OR_RETURN(n->expr, parse_tuple(false, {"recursive"}));
    if (skip_name("if")) {
      LS_ASSIGN_OR_RETURN(n->filter, parse_expression(true));
    }
    if (is_name("recursive")) return error("recursive loops are not supported");
    LS_RETURN_IF_ERROR(expect_block_end());
    ++loop_depth_;
    LS_ASSIGN_OR_RETURN(n->body, parse_body({"endfor", "else"}));
    --loop_depth_;
    if (tag_name_ == "else") {
      LS_RETURN_IF_ERROR(expect_block_end());
      const int saved = loop_depth_;
      loop_depth_ = 0;
      LS_ASSIGN_OR_RETURN(n->else_body, parse_body({"endfor"}));
      loop_depth_ = saved;
    }
    LS_RETURN_IF_ERROR(expect_block_end());
    return n;
  }

  Result<std::vector<std::string>> parse_targets() {
    std::vector<std::string> targets;
    const bool paren = skip_op("(");
    do {
      if (paren && is_op(")")) break;
      LS_ASSIGN_OR_RETURN(std::string name, expect_name());
      targets.push_back(std::move(name));
    } while (skip_op(","));
    if (paren) LS_RETURN_IF_ERROR(expect_op(")"));
    return targets;
  }

  Result<NodePtr> parse_set(NodePtr n) {
    if (cur().type == TokenType::Name && peek().type == TokenType::Operator && peek().value == ".") {
      n->targets.push_back(cur().value);
      advance();
      advance();
      LS_ASSIGN_OR_RETURN(n->attr, expect_name());
    } else {
      LS_ASSIGN_OR_RETURN(n->targets, parse_targets());
    }
    if (skip_op("=")) {
      n->type = Node::Type::Set;
      LS_ASSIGN_OR_RETURN(n->expr, parse_tuple(true, {}));
      LS_RETURN_IF_ERROR(expect_block_end());
      return n;
    }
    if (!n->attr.empty() || n->targets.size() != 1) return error("expected '=' in set");
    if (is_op("|")) return error("filters on block set are not supported");
    n->type = Node::Type::SetBlock;
    LS_RETURN_IF_ERROR(expect_block_end());
    LS_ASSIGN_OR_RETURN(n->body, parse_body({"endset"}));
    LS_RETURN_IF_ERROR(expect_block_end());
    return n;
  }

  Result<NodePtr> parse_macro(NodePtr n) {
    n->type = Node::Type::Macro;
    LS_ASSIGN_OR_RETURN(n->name, expect_name());
    LS_RETURN_IF_ERROR(expect_op("("));
    while (!is_op(")")) {
      if (!n->params.empty()) LS_RETURN_IF_ERROR(expect_op(","));
      LS_ASSIGN_OR_RETURN(std::string param, expect_name());
      ExprPtr def;
      if (skip_op("=")) {
        LS_ASSIGN_OR_RETURN(def, parse_expression(true));
      } else if (!n->params.empty() && n->params.back().second) {
        return error("non-default argument follows default argument");
      }
      n->params.emplace_back(std::move(param), std::move(def));
    }
    advance();
    LS_RETURN_IF_ERROR(expect_block_end());
    const int saved = loop_depth_;
    loop_depth_ = 0;
    LS_ASSIGN_OR_RETURN(n->body, parse_body({"endmacro"}));
    loop_depth_ = saved;
    LS_RETURN_IF_ERROR(expect_block_end());
    return n;
  }

  // ---- expressions ----

  bool at_expression_end(const std::set<std::string>& extra_end) const {
    const Token& t = cur();
    if (t.type == TokenType::VarEnd || t.type == TokenType::BlockEnd || t.type == TokenType::End) return true;
    if (t.type == TokenType::Operator && t.value == ")") return true;
    return t.type == TokenType::Name && extra_end.count(t.value);
  }

  // A comma-separated list becomes a tuple; a single expression stays itself.
  Result<ExprPtr> parse_tuple(bool with_condexpr, const std::set<std::string>& extra_end) {
    const Token& start = cur();
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) {
        if (!skip_op(",")) break;
        is_tuple = true;
        if (at_expression_end(extra_end)) break;
      }
      LS_ASSIGN_OR_RETURN(ExprPtr e, parse_expression(with_condexpr));
      items.push_back(std::move(e));
    }
    if (!is_tuple) return std::move(items[0]);
    ExprPtr t = make(Expr::Type::Tuple, start);
    t->args = std::move(items);
    return t;
  }

  Result<ExprPtr> parse_expression(bool with_condexpr) {
    if (++depth_ > kMaxNesting) return error("expression nested too deeply");
    Result<ExprPtr> r = with_condexpr ? parse_condexpr() : parse_or();
    --depth_;
    return r;
  }

  Result<ExprPtr> parse_condexpr() {
    LS_ASSIGN_OR_RETURN(ExprPtr expr, parse_or());
    while (is_name("if")) {
      const Token& at = cur();
      advance();
      LS_ASSIGN_OR_RETURN(ExprPtr cond, parse_or());
      ExprPtr otherwise;
      if (skip_name("else")) {
        LS_ASSIGN_OR_RETURN(otherwise, parse_expression(true));
      }
      ExprPtr c = make(Expr::Type::Cond, at);
      c->args.push_back(std::move(cond));
      c->args.push_back(std::move(expr));
      c->args.push_back(std::move(otherwise));
      expr = std::move(c);
    }
    return expr;
  }

  Result<ExprPtr> binary(const Token& at, const std::string& op, ExprPtr l, ExprPtr r) {
    ExprPtr b = make(Expr::Type::Binary, at);
    b->name = op;
    b->args.push_back(std::move(l));
    b->args.push_back(std::move(r));
    return b;
  }

  Result<ExprPtr> parse_or() {
    LS_ASSIGN_OR_RETURN(ExprPtr left, parse_and());
    while (is_name("or")) {
      const Token& at = cur();
      advance();
      LS_ASSIGN_OR_RETURN(ExprPtr right, parse_and());
      LS_ASSIGN_OR_RETURN(left, binary(at, "or", std::move(left), std::move(right)));
    }
    return left;
  }

  Result<ExprPtr> parse_and() {
    LS_ASSIGN_OR_RETURN(ExprPtr left, parse_not());
    while (is_name("and")) {
      const Token& at = cur();
      advance();
      LS_ASSIGN_OR_RETURN(ExprPtr right, parse_not());
      LS_ASSIGN_OR_RETURN(left, binary(at, "and", std::move(left), std::move(right)));
    }
    return left;
  }

  Result<ExprPtr> parse_not() {
    if (is_name("not")) {
      const Token& at = cur();
      advance();
      if (++depth_ > kMaxNesting) return error("expression nested too deeply");
      LS_ASSIGN_OR_RETURN(ExprPtr operand, parse_not());
      --depth_;
      ExprPtr n = make(Expr::Type::Not, at);
      n->args.push_back(std::move(operand));
      return n;
    }
    return parse_compare();
  }

  Result<ExprPtr> parse_compare() {
    const Token& start = cur();
    LS_ASSIGN_OR_RETURN(ExprPtr first, parse_math1());
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (cur().type == TokenType::Operator &&
          (cur().value == "==" || cur().value == "!=" || cur().value == "<" || cur().value == "<=" ||
           cur().value == ">" || cur().value == ">=")) {
        op = cur().value;
        advance();
      } else if (is_name("in")) {
        op = "in";
        advance();
      } else if (is_name("not") && peek().type == TokenType::Name && peek().value == "in") {
        op = "notin";
        advance();
        advance();
      } else {
        break;
      }
      if (!cmp) {
        cmp = make(Expr::Type::Compare, start);
        cmp->args.push_back(std::move(first));
      }
      LS_ASSIGN_OR_RETURN(ExprPtr right, parse_math1());
      cmp->ops.push_back(op);
      cmp->args.push_back(std::move(right));
    }
    return cmp ? std::move(cmp) : std::move(first);
  }

  Result<ExprPtr> parse_math1() {
    LS_ASSIGN_OR_RETURN(ExprPtr left, parse_concat());
    while (is_op("+") || is_op("-")) {
      const Token& at = cur();
      advance();
      LS_ASSIGN_OR_RETURN(ExprPtr right, parse_concat());
      LS_ASSIGN_OR_RETURN(left, binary(at, at.value, std::move(left), std::move(right)));
    }
    return left;
  }

  Result<ExprPtr> parse_concat() {
    LS_ASSIGN_OR_RETURN(ExprPtr left, parse_math2());
    while (is_op("~")) {
      const Token& at = cur();
      advance();
      LS_ASSIGN_OR_RETURN(ExprPtr right, parse_math2());
      LS_ASSIGN_OR_RETURN(left, binary(at, "~", std::move(left), std::move(right)));
    }
    return left;
  }

  Result<ExprPtr> parse_math2() {
    LS_ASSIGN_OR_RETURN(ExprPtr left, parse_pow());
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& at = cur();
      advance();
      LS_ASSIGN_OR_RETURN(ExprPtr right, parse_pow());
      LS_ASSIGN_OR_RETURN(left, binary(at, at.value, std::move(left), std::move(right)));
    }
    return left;
  }

  Result<ExprPtr> parse_pow() {
    LS_ASSIGN_OR_RETURN(ExprPtr left, parse_unary(true));
    while (is_op("**")) {
      const Token& at = cur();
      advance();
      LS_ASSIGN_OR_RETURN(ExprPtr right, parse_unary(true));
      LS_ASSIGN_OR_RETURN(left, binary(at, "**", std::move(left), std::move(right)));
    }
    return left;
  }

  Result<ExprPtr> parse_unary(bool with_filter) {
    if (++depth_ > kMaxNesting) return error("expression nested too deeply");
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      const Token& at = cur();
      advance();
      LS_ASSIGN_OR_RETURN(ExprPtr operand, parse_unary(false));
      node = make(at.value == "-" ? Expr::Type::Negate : Expr::Type::Plus, at);
      node->args.push_back(std::move(operand));
    } else {
      LS_ASSIGN_OR_RETURN(node, parse_primary());
    }
    LS_ASSIGN_OR_RETURN(node, parse_postfix(std::move(node)));
    if (with_filter) {
      LS_ASSIGN_OR_RETURN(node, parse_filter_expr(std::move(node)));
    }
    --depth_;
    return node;
  }

  Result<ExprPtr> parse_primary() {
    const Token& t = cur();
    if (t.type == TokenType::Name) {
      advance();
      ExprPtr e = make(Expr::Type::Literal, t);
      if (t.value == "true" || t.value == "True") e->literal = Value::boolean(true);
      else if (t.value == "false" || t.value == "False") e->literal = Value::boolean(false);
      else if (t.value == "none" || t.value == "None") e->literal = Value::none();
      else {
        e->type = Expr::Type::Name;
        e->name = t.value;
      }
      return e;
    }
    if (t.type == TokenType::String) {
      std::string s;
      while (cur().type == TokenType::String) {
        s += cur().value;
        advance();
      }
      ExprPtr e = make(Expr::Type::Literal, t);
      e->literal = Value::string(std::move(s));
      return e;
    }
    if (t.type == TokenType::Integer || t.type == TokenType::Float) {
      advance();
      ExprPtr e = make(Expr::Type::Literal, t);
      if (t.type == TokenType::Float) {
        e->literal = Value::floating(std::strtod(t.value.c_str(), nullptr));
      } else {
        errno = 0;
        const long long v = std::strtoll(t.value.c_str(), nullptr, 10);
        if (errno == ERANGE) return error_at(t, "integer literal out of range");
        e->literal = Value::integer(v);
      }
      return e;
    }
    if (skip_op("(")) {
      if (is_op(")")) {
        advance();
        ExprPtr e = make(Expr::Type::Tuple, t);
        return e;
      }
      LS_ASSIGN_OR_RETURN(ExprPtr inner, parse_tuple(true, {}));
      LS_RETURN_IF_ERROR(expect_op(")"));
      return inner;
    }
    if (is_op("[")) return parse_list();
    if (is_op("{")) return parse_dict();
    return error("unexpected " + describe(t));
  }

  Result<ExprPtr> parse_list() {
    ExprPtr e = make(Expr::Type::List, cur());
    advance();
    while (!is_op("]")) {
      if (!e->args.empty()) {
        LS_RETURN_IF_ERROR(expect_op(","));
        if (is_op("]")) break;
      }
      LS_ASSIGN_OR_RETURN(ExprPtr item, parse_expression(true));
      e->args.push_back(std::move(item));
    }
    advance();
    return e;
  }

  Result<ExprPtr> parse_dict() {
    ExprPtr e = make(Expr::Type::Dict, cur());
    advance();
    while (!is_op("}")) {
      if (!e->args.empty()) {
        LS_RETURN_IF_ERROR(expect_op(","));
        if (is_op("}")) break;
      }
      LS_ASSIGN_OR_RETURN(ExprPtr key, parse_expression(true));
      LS_RETURN_IF_ERROR(expect_op(":"));
      LS_ASSIGN_OR_RETURN(ExprPtr value, parse_expression(true));
      e->args.push_back(std::move(key));
      e->args.push_back(std::move(value));
    }
    advance();
    return e;
  }

  Result<ExprPtr> parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(".") || is_op("[")) {
        LS_ASSIGN_OR_RETURN(node, parse_subscript(std::move(node)));
      } else if (is_op("(")) {
        LS_ASSIGN_OR_RETURN(node, parse_call(std::move(node), Expr::Type::Call, ""));
      } else {
        return node;
      }
    }
  }

  Result<ExprPtr> parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op("|")) {
        LS_ASSIGN_OR_RETURN(node, parse_filter(std::move(node)));
      } else if (is_name("is")) {
        LS_ASSIGN_OR_RETURN(node, parse_test(std::move(node)));
      } else if (is_op("(")) {
        LS_ASSIGN_OR_RETURN(node, parse_call(std::move(node), Expr::Type::Call, ""));
      } else {
        return node;
      }
    }
  }

  Result<ExprPtr> parse_subscript(ExprPtr node) {
    const Token& at = cur();
    if (skip_op(".")) {
      if (cur().type == TokenType::Integer) {
        ExprPtr item = make(Expr::Type::Item, at);
        ExprPtr index = make(Expr::Type::Literal, cur());
        index->literal = Value::integer(std::strtoll(cur().value.c_str(), nullptr, 10));
        advance();
        item->args.push_back(std::move(node));
        item->args.push_back(std::move(index));
        return item;
      }
      ExprPtr attr = make(Expr::Type::Attr, at);
      LS_ASSIGN_OR_RETURN(attr->name, expect_name());
      attr->args.push_back(std::move(node));
      return attr;
    }
    advance();  // '['
    ExprPtr parts[3];
    int colons = 0;
    while (!is_op("]")) {
      if (skip_op(":")) {
        if (++colons > 2) return error("too many ':' in slice");
        continue;
      }
      if (parts[colons]) return error("expected ']' or ':', got " + describe(cur()));
      LS_ASSIGN_OR_RETURN(parts[colons], parse_expression(true));
      if (colons == 0 && is_op(",")) return error("tuple subscripts are not supported");
    }
    advance();
    if (colons == 0) {
      if (!parts[0]) return error_at(at, "empty subscript");
      ExprPtr item = make(Expr::Type::Item, at);
      item->args.push_back(std::move(node));
      item->args.push_back(std::move(parts[0]));
      return item;
    }
    ExprPtr slice = make(Expr::Type::Slice, at);
    slice->args.push_back(std::move(node));
    for (auto& p : parts) slice->args.push_back(std::move(p));
    return slice;
  }

  // Parses "(args, name=value)" into e->args (after any already there) and e->kwargs.
  Status parse_call_args(Expr& e) {
    LS_RETURN_IF_ERROR(expect_op("("));
    bool first = true;
    while (!is_op(")")) {
      if (!first) {
        LS_RETURN_IF_ERROR(expect_op(","));
        if (is_op(")")) break;
      }
      first = false;
      if (is_op("*") || is_op("**")) return error("*args and **kwargs in calls are not supported");
      if (cur().type == TokenType::Name && peek().type == TokenType::Operator && peek().value == "=") {
        std::string key = cur().value;
        advance();
        advance();
        LS_ASSIGN_OR_RETURN(ExprPtr value, parse_expression(true));
        e.kwargs.emplace_back(std::move(key), std::move(value));
      } else {
        if (!e.kwargs.empty()) return error("positional argument follows keyword argument");
        LS_ASSIGN_OR_RETURN(ExprPtr value, parse_expression(true));
        e.args.push_back(std::move(value));
      }
    }
    advance();
    return ok_status();
  }

  Result<ExprPtr> parse_call(ExprPtr node, Expr::Type type, const std::string& name) {
    ExprPtr call = make(type, cur());
    call->name = name;
    call->args.push_back(std::move(node));
    LS_RETURN_IF_ERROR(parse_call_args(*call));
    return call;
  }

  Result<ExprPtr> parse_filter(ExprPtr node) {
    while (skip_op("|")) {
      const Token& at = cur();
      LS_ASSIGN_OR_RETURN(std::string name, expect_name());
      if (!is_known_filter(name)) return error_at(at, "unknown filter '" + name + "'");
      if (is_op("(")) {
        LS_ASSIGN_OR_RETURN(node, parse_call(std::move(node), Expr::Type::Filter, name));
        node->line = at.line;
        node->column = at.column;
      } else {
        ExprPtr f = make(Expr::Type::Filter, at);
        f->name = name;
        f->args.push_back(std::move(node));
        node = std::move(f);
      }
    }
    return node;
  }

  Result<ExprPtr> parse_test(ExprPtr node) {
    advance();  // 'is'
    const bool negated = skip_name("not");
    const Token& at = cur();
    LS_ASSIGN_OR_RETURN(std::string name, expect_name());
    if (!is_known_test(name)) return error_at(at, "unknown test '" + name + "'");
    ExprPtr test = make(Expr::Type::Test, at);
    test->name = name;
    test->negated = negated;
    test->args.push_back(std::move(node));
    if (is_op("(")) {
      LS_RETURN_IF_ERROR(parse_call_args(*test));
    } else if ((cur().type == TokenType::Name || cur().type == TokenType::String || cur().type == TokenType::Integer ||
                cur().type == TokenType::Float || is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and") && !is_name("if") && !is_name("in") &&
               !is_name("not")) {
      if (is_name("is")) return error("cannot chain multiple tests with 'is'");
      LS_ASSIGN_OR_RETURN(ExprPtr arg, parse_primary());
      LS_ASSIGN_OR_RETURN(arg, parse_postfix(std::move(arg)));
      test->args.push_back(std::move(arg));
    }
    return test;
  }

  const std::vector<Token>& toks_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
  std::string tag_name_;
};

}  // namespace

Result<Body> parse(const std::vector<Token>& tokens) { return Parser(tokens).parse_template(); }

}  // namespace latentserve::engine::text::jinja
