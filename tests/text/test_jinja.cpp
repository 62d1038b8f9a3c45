// Jinja interpreter: input provenance through every string operation, error locations, and
// the bounds that keep a hostile template from hanging or exhausting memory.
#include <catch2/catch.hpp>

#include <string>

#include "engine/text/jinja_interpreter.h"

namespace jinja = latentserve::engine::text::jinja;

namespace {

using Vars = std::vector<std::pair<std::string, jinja::Value>>;

jinja::TaggedString render(const std::string& source, const Vars& vars, const jinja::RenderLimits& limits = {}) {
  auto t = jinja::Template::parse(source);
  if (!t.ok()) FAIL(t.error().message);
  auto out = t->render(vars, limits);
  if (!out.ok()) FAIL(out.error().message);
  return *out;
}

std::string render_error(const std::string& source, const Vars& vars = {}, const jinja::RenderLimits& limits = {}) {
  auto t = jinja::Template::parse(source);
  if (!t.ok()) return "parse: " + t.error().message;
  auto out = t->render(vars, limits);
  if (out.ok()) FAIL("expected an error, rendered: " << out->text());
  return out.error().message;
}

// The output as text with input-tagged stretches in brackets.
std::string marked(const jinja::TaggedString& s) {
  std::string out;
  size_t pos = 0;
  for (const auto& run : s.runs()) {
    const std::string piece = s.text().substr(pos, run.length);
    out += run.tagged ? "[" + piece + "]" : piece;
    pos += run.length;
  }
  return out;
}

Vars user_vars() {
  return {{"u", jinja::Value::string("Hi <b>", true)},
          {"msg", jinja::Value::from_json(nlohmann::ordered_json::parse(R"({"role":"user","content":"a,b,c"})"), true)},
          {"sep", jinja::Value::string(", ")}};
}

}  // namespace

TEST_CASE("jinja provenance: input strings stay marked through operations", "[jinja]") {
  const Vars v = user_vars();
  CHECK(marked(render("<s>{{ u }}</s>", v)) == "<s>[Hi <b>]</s>");
  CHECK(marked(render("{{ '<' + u + '>' }}", v)) == "<[Hi <b>]>");
  CHECK(marked(render("{{ u ~ 1 }}", v)) == "[Hi <b>]1");
  CHECK(marked(render("{{ u | upper }}|{{ u.lower() }}", v)) == "[HI <B>]|[hi <b>]");
  CHECK(marked(render("{{ u | replace('<b>', '<i>') }}", v)) == "[Hi ]<i>");
  CHECK(marked(render("{{ ('  ' ~ u ~ '  ') | trim }}", v)) == "[Hi <b>]");
  CHECK(marked(render("{{ msg.content.split(',') | join(sep) }}", v)) == "[a], [b], [c]");
  CHECK(marked(render("{{ msg | tojson }}", v)) == "{\"[role]\": \"[user]\", \"[content]\": \"[a,b,c]\"}");
  CHECK(marked(render("{{ u[::-1] }}{{ u[0] }}", v)) == "[>b< iHH]");
  CHECK(marked(render("{{ [u] }}", v)) == "['[Hi <b>]']");
  CHECK(marked(render("{% set ns = namespace(s='') %}{% for c in msg.content %}{% set ns.s = ns.s + c + '|' %}{% endfor %}{{ ns.s }}", v)) ==
        "[a]|[,]|[b]|[,]|[c]|");
  CHECK(marked(render("{% set x %}<{{ u }}>{% endset %}{{ x }}", v)) == "<[Hi <b>]>");
  CHECK(marked(render("{% macro wrap(t) %}({{ t }}){% endmacro %}{{ wrap(u) }}", v)) == "([Hi <b>])");
  CHECK(marked(render("{{ msg.role == 'user' }}{{ u | length }}", v)) == "True6");
}

TEST_CASE("jinja errors: unsupported syntax is rejected at parse time with line and column", "[jinja]") {
  CHECK(render_error("a\n  {% frobnicate %}") == "parse: template line 2, column 6: unknown tag 'frobnicate'");
  CHECK(render_error("{{ x | nope }}") == "parse: template line 1, column 8: unknown filter 'nope'");
  CHECK(render_error("\n\n{% if x is nope %}{% endif %}") == "parse: template line 3, column 12: unknown test 'nope'");
  CHECK(render_error("{% if x %}") == "parse: template line 1, column 11: unexpected end of template, expected 'elif' or 'else' or 'endif'");
  CHECK(render_error("{% include 'x' %}") == "parse: template line 1, column 4: unknown tag 'include'");
  CHECK(render_error("{% for x in y recursive %}{% endfor %}") == "parse: template line 1, column 15: recursive loops are not supported");
  CHECK(render_error("{{ 'é' ~ 'x\n") == "parse: template line 1, column 10: unterminated string literal");
  CHECK(render_error("{{ 'é' ~ x\n") == "parse: template line 1, column 1: unclosed variable tag");
  // Errors only reachable at run time still name where they happened.
  CHECK(render_error("line one\n{{ 1 + none }}") == "template line 2, column 6: unsupported operand type(s) for +: 'int' and 'NoneType'");
  CHECK(render_error("{{ x.y }}") == "template line 1, column 5: 'x' is undefined");
}

TEST_CASE("jinja errors: raise_exception gives the template's message unchanged", "[jinja]") {
  CHECK(render_error("{% if true %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}") ==
        "Only user and assistant roles are supported!");
}

TEST_CASE("jinja limits: hostile templates stop with an error", "[jinja]") {
  jinja::RenderLimits small;
  small.max_output_bytes = 1 << 16;
  small.max_steps = 100000;
  CHECK(render_error("{% for i in range(1000000000) %}x{% endfor %}", {}, small).find("steps") != std::string::npos);
  CHECK(render_error("{% for i in range(1000000000) %}x{% endfor %}").find("range() too large") != std::string::npos);
  CHECK(render_error("{% for i in range(300) %}{% for j in range(300) %}{% for k in range(300) %}{% endfor %}{% endfor %}{% endfor %}",
                     {}, small)
            .find("steps") != std::string::npos);
  CHECK(render_error("{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}", {}, small)
            .find("size limit") != std::string::npos);
  CHECK(render_error("{% for i in range(1000) %}{{ 'x' * 1000 }}{% endfor %}", {}, small).find("output exceeds") != std::string::npos);
  CHECK(render_error("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", {}, small).find("nested too deeply") != std::string::npos);
  CHECK(render_error("{{ " + std::string(500, '(') + "1" + std::string(500, ')') + " }}", {}, small).find("nested too deeply") != std::string::npos);
  CHECK(render_error("{{ " + std::string(500, '[') + std::string(500, ']') + " }}", {}, small).find("nested too deeply") !=
        std::string::npos);
  CHECK(render_error("{{ 'ab' * 100000000000 }}", {}, small).find("too large") != std::string::npos);
}

TEST_CASE("jinja values: floats print like Python", "[jinja]") {
  CHECK(jinja::float_repr(0.1) == "0.1");
  CHECK(jinja::float_repr(1.0) == "1.0");
  CHECK(jinja::float_repr(-2.5e-7) == "-2.5e-07");
  CHECK(jinja::float_repr(1e16) == "1e+16");
  CHECK(jinja::float_repr(123456789012345.0) == "123456789012345.0");
  CHECK(jinja::float_repr(0.0001) == "0.0001");
  CHECK(jinja::float_repr(0.00001) == "1e-05");
  CHECK(jinja::float_repr(1.0 / 0.0) == "inf");
}
