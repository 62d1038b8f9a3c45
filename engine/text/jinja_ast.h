// Syntax tree of a parsed chat template: expressions and statements, each with the line and
// column it starts at so render errors can point into the template.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/text/jinja_value.h"

namespace latentserve::engine::text::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Type {
    Literal,   // literal
    Name,      // name
    List,      // args = items
    Tuple,     // args = items
    Dict,      // args = key0, value0, key1, value1, ...
    Attr,      // args[0].name
    Item,      // args[0][args[1]]
    Slice,     // args[0][args[1]:args[2]:args[3]], absent parts null
    Call,      // args[0](args[1:], kwargs)
    Filter,    // args[0] | name(args[1:], kwargs)
    Test,      // args[0] is [not] name(args[1:])
    Not,       // not args[0]
    Negate,    // -args[0]
    Plus,      // +args[0]
    Binary,    // args[0] name args[1]; name in or and + - * / // % ** ~
    Compare,   // args[0] ops[0] args[1] ops[1] args[2] ...; ops in == != < <= > >= in notin
    Cond,      // args[1] if args[0] else args[2] (args[2] null: undefined)
  };

  Type type;
  int line = 0;
  int column = 0;
  Value literal;
  std::string name;
  std::vector<std::string> ops;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  bool negated = false;
};

struct Node;
using NodePtr = std::unique_ptr<Node>;
using Body = std::vector<NodePtr>;

struct Node {
  enum class Type {
    Text,      // text
    Output,    // {{ expr }}
    If,        // conditions[i] -> bodies[i]; else_body
    For,       // for targets in expr [if filter] body [else else_body]
    Set,       // set targets[0][.attr] = expr, or set a, b = expr
    SetBlock,  // set targets[0] %} body {% endset
    Macro,     // macro name(params) body
    Break,
    Continue,
  };

  Type type;
  int line = 0;
  int column = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr filter;
  std::vector<ExprPtr> conditions;
  std::vector<Body> bodies;
  Body body;
  Body else_body;
  std::vector<std::string> targets;
  std::string attr;                                   // set ns.attr = ...
  std::string name;                                   // macro name
  std::vector<std::pair<std::string, ExprPtr>> params;  // macro parameters with defaults (null: none)
};

}  // namespace latentserve::engine::text::jinja
