#include "engine/text/jinja_lexer.h"

#include <algorithm>
#include <cctype>

namespace latentserve::engine::text::jinja {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

// Jinja2 turns \r\n and \r into \n and drops one trailing newline (keep_trailing_newline=False).
std::string normalize_newlines(const std::string& source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out += source[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

class Lexer {
 public:
  Lexer(std::string source, const LexOptions& options) : src_(std::move(source)), opt_(options) {
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i) {
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
    }
  }

  Result<std::vector<Token>> run() {
    size_t pos = 0;
    bool line_starting = true;
    while (pos < src_.size()) {
      size_t open = find_open(pos);
      if (open == std::string::npos) {
        emit_text(src_.substr(pos), pos);
        break;
      }
      const char kind = src_[open + 1];
      const char sign = open + 2 < src_.size() ? src_[open + 2] : '\0';
      std::string text = src_.substr(pos, open - pos);
      if (sign == '-') {
        size_t end = text.size();
        while (end > 0 && is_space(text[end - 1])) --end;
        text.resize(end);
      } else if (sign != '+' && opt_.lstrip_blocks && kind != '{') {
        const size_t nl = text.rfind('\n');
        const size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
        if ((l_pos > 0 || line_starting) && l_pos < text.size()) {
          bool blank = true;
          for (size_t i = l_pos; i < text.size(); ++i) blank = blank && is_space(text[i]);
          if (blank) text.resize(l_pos);
        }
      }
      emit_text(std::move(text), pos);
      size_t body = open + 2 + ((sign == '-' || sign == '+') ? 1 : 0);
      Result<size_t> next = kind == '#' ? lex_comment(open, body) : lex_tag(open, body, kind == '%');
      if (!next.ok()) return next.error();
      pos = *next;
      line_starting = pos > 0 && src_[pos - 1] == '\n';
    }
    tokens_.push_back({TokenType::End, "", line_of(src_.size()), column_of(src_.size())});
    return std::move(tokens_);
  }

 private:
  size_t find_open(size_t pos) const {
    while (true) {
      size_t p = src_.find('{', pos);
      if (p == std::string::npos || p + 1 >= src_.size()) return std::string::npos;
      const char c = src_[p + 1];
      if (c == '{' || c == '%' || c == '#') return p;
      pos = p + 1;
    }
  }

  void emit_text(std::string text, size_t at) {
    if (!text.empty()) tokens_.push_back({TokenType::Text, std::move(text), line_of(at), column_of(at)});
  }

  // Position after the closing tag's whitespace handling: "-X}" eats all following whitespace,
  // "+X}" nothing, plain "X}" one newline when trim_blocks is on (block tags and comments only).
  size_t after_close(size_t close_start, char sign, bool block_like) const {
    size_t p = close_start + 2;
    if (sign == '-') {
      while (p < src_.size() && is_space(src_[p])) ++p;
    } else if (sign != '+' && block_like && opt_.trim_blocks && p < src_.size() && src_[p] == '\n') {
      ++p;
    }
    return p;
  }

  Result<size_t> lex_comment(size_t open, size_t body) {
    size_t close = src_.find("#}", body);
    if (close == std::string::npos) return error_at(open, "missing end of comment tag");
    char sign = '\0';
    if (close > body && (src_[close - 1] == '-' || src_[close - 1] == '+')) sign = src_[close - 1];
    return after_close(close, sign, true);
  }

  Result<size_t> lex_tag(size_t open, size_t pos, bool block) {
    tokens_.push_back({block ? TokenType::BlockBegin : TokenType::VarBegin, "", line_of(open), column_of(open)});
    std::vector<char> balance;
    const char end_char = block ? '%' : '}';
    while (true) {
      while (pos < src_.size() && is_space(src_[pos])) ++pos;
      if (pos >= src_.size()) return error_at(open, block ? "unclosed block tag" : "unclosed variable tag");
      if (balance.empty()) {
        char sign = '\0';
        size_t close = pos;
        if ((src_[pos] == '-' || src_[pos] == '+') && pos + 2 < src_.size() + 1) {
          sign = src_[pos];
          close = pos + 1;
        }
        if (close + 1 < src_.size() && src_[close] == end_char && src_[close + 1] == '}') {
          tokens_.push_back({block ? TokenType::BlockEnd : TokenType::VarEnd, "", line_of(pos), column_of(pos)});
          return after_close(close, sign, block);
        }
      }
      LS_RETURN_IF_ERROR(lex_expression_token(pos, balance));
    }
  }

  Status lex_expression_token(size_t& pos, std::vector<char>& balance) {
    const size_t start = pos;
    const char c = src_[pos];
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      while (pos < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[pos])) || src_[pos] == '_')) ++pos;
      push(TokenType::Name, src_.substr(start, pos - start), start);
      return ok_status();
    }
    if (std::isdigit(static_cast<unsigned char>(c))) return lex_number(pos);
    if (c == '\'' || c == '"') return lex_string(pos);
    static const char* const kTwo[] = {"//", "**", "==", "!=", "<=", ">="};
    for (const char* op : kTwo) {
      if (src_.compare(pos, 2, op) == 0) {
        push(TokenType::Operator, op, start);
        pos += 2;
        return ok_status();
      }
    }
    if (std::string_view("+-/*%~[](){}<>=.:|,;").find(c) == std::string_view::npos) {
      return error_at(pos, std::string("unexpected character '") + c + "'");
    }
    if (c == '(' || c == '[' || c == '{') balance.push_back(c == '(' ? ')' : (c == '[' ? ']' : '}'));
    if (c == ')' || c == ']' || c == '}') {
      if (balance.empty()) return error_at(pos, std::string("unexpected '") + c + "'");
      if (balance.back() != c) return error_at(pos, std::string("unexpected '") + c + "', expected '" + balance.back() + "'");
      balance.pop_back();
    }
    push(TokenType::Operator, std::string(1, c), start);
    ++pos;
    return ok_status();
  }

  Status lex_number(size_t& pos) {
    const size_t start = pos;
    auto digits = [&] {
      while (pos < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[pos])) || src_[pos] == '_')) ++pos;
    };
    digits();
    bool is_float = false;
    if (pos + 1 < src_.size() && src_[pos] == '.' && std::isdigit(static_cast<unsigned char>(src_[pos + 1]))) {
      is_float = true;
      ++pos;
      digits();
    }
    if (pos < src_.size() && (src_[pos] == 'e' || src_[pos] == 'E')) {
      size_t p = pos + 1;
      if (p < src_.size() && (src_[p] == '+' || src_[p] == '-')) ++p;
      if (p < src_.size() && std::isdigit(static_cast<unsigned char>(src_[p]))) {
        pos = p;
        digits();
        is_float = true;
      }
    }
    std::string text;
    for (size_t i = start; i < pos; ++i) {
      if (src_[i] != '_') text += src_[i];
    }
    push(is_float ? TokenType::Float : TokenType::Integer, text, start);
    return ok_status();
  }

  Status lex_string(size_t& pos) {
    const size_t start = pos;
    const char quote = src_[pos++];
    std::string out;
    while (true) {
      if (pos >= src_.size()) return error_at(start, "unterminated string literal");
      const char c = src_[pos];
      if (c == quote) {
        ++pos;
        break;
      }
      if (c != '\\') {
        out += c;
        ++pos;
        continue;
      }
      if (pos + 1 >= src_.size()) return error_at(start, "unterminated string literal");
      LS_RETURN_IF_ERROR(unescape(pos, out));
    }
    push(TokenType::String, std::move(out), start);
    return ok_status();
  }

  // Python's unicode-escape rules, which Jinja2 applies to string literals.
  Status unescape(size_t& pos, std::string& out) {
    const char e = src_[pos + 1];
    pos += 2;
    switch (e) {
      case '\n': return ok_status();
      case '\\': out += '\\'; return ok_status();
      case '\'': out += '\''; return ok_status();
      case '"': out += '"'; return ok_status();
      case 'n': out += '\n'; return ok_status();
      case 't': out += '\t'; return ok_status();
      case 'r': out += '\r'; return ok_status();
      case 'b': out += '\b'; return ok_status();
      case 'f': out += '\f'; return ok_status();
      case 'v': out += '\v'; return ok_status();
      case 'a': out += '\a'; return ok_status();
      default: break;
    }
    if (e >= '0' && e <= '7') {
      uint32_t cp = static_cast<uint32_t>(e - '0');
      for (int i = 0; i < 2 && pos < src_.size() && src_[pos] >= '0' && src_[pos] <= '7'; ++i) cp = cp * 8 + (src_[pos++] - '0');
      append_utf8(out, cp);
      return ok_status();
    }
    const int width = e == 'x' ? 2 : (e == 'u' ? 4 : (e == 'U' ? 8 : 0));
    if (width == 0) {
      out += '\\';
      out += e;
      return ok_status();
    }
    uint32_t cp = 0;
    for (int i = 0; i < width; ++i) {
      if (pos >= src_.size() || !std::isxdigit(static_cast<unsigned char>(src_[pos]))) {
        return error_at(pos - 2 - i, "truncated \\" + std::string(1, e) + " escape in string literal");
      }
      const char h = src_[pos++];
      cp = cp * 16 + static_cast<uint32_t>(std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
    }
    // A \uD83D\uDE00 pair means one astral character.
    if (cp >= 0xD800 && cp < 0xDC00 && src_.compare(pos, 2, "\\u") == 0 && pos + 6 <= src_.size()) {
      const uint32_t low = static_cast<uint32_t>(std::stoul(src_.substr(pos + 2, 4), nullptr, 16));
      if (low >= 0xDC00 && low < 0xE000) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        pos += 6;
      }
    }
    if (cp > 0x10FFFF) return error_at(pos, "invalid code point in string literal");
    append_utf8(out, cp);
    return ok_status();
  }

  void push(TokenType type, std::string value, size_t at) {
    tokens_.push_back({type, std::move(value), line_of(at), column_of(at)});
  }

  int line_of(size_t at) const {
    return static_cast<int>(std::upper_bound(line_starts_.begin(), line_starts_.end(), at) - line_starts_.begin());
  }

  int column_of(size_t at) const {
    const size_t line_start = line_starts_[static_cast<size_t>(line_of(at) - 1)];
    int col = 1;
    for (size_t i = line_start; i < at && i < src_.size(); ++i) col += (static_cast<unsigned char>(src_[i]) & 0xC0) != 0x80;
    return col;
  }

  Error error_at(size_t at, const std::string& message) const {
    return make_error("template line " + std::to_string(line_of(at)) + ", column " + std::to_string(column_of(at)) + ": " + message);
  }

  std::string src_;
  LexOptions opt_;
  std::vector<Token> tokens_;
  std::vector<size_t> line_starts_;
};

}  // namespace

Result<std::vector<Token>> tokenize(const std::string& source, const LexOptions& options) {
  return Lexer(normalize_newlines(source), options).run();
}

}  // namespace latentserve::engine::text::jinja
