#define PCRE2_CODE_UNIT_WIDTH 8
#include "engine/text/regex.h"

#include <pcre2.h>

namespace latentserve::engine::text {
namespace {

// Unicode White_Space, the set Oniguruma's \s uses: the separators (Z) plus TAB..CR and NEL.
constexpr std::string_view kSpaceItems = "\\t-\\r\\x{85}\\p{Z}";

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof(buffer));
  return reinterpret_cast<const char*>(buffer);
}

// Per-thread matching state: PCRE2 match data and JIT stacks may not be shared between threads.
struct ThreadMatchState {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* stack = nullptr;

  ThreadMatchState() {
    data = pcre2_match_data_create(1, nullptr);
    context = pcre2_match_context_create(nullptr);
    // Long runs of spaces or letters need more than the default 32 KiB of JIT stack.
    stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
    pcre2_jit_stack_assign(context, nullptr, stack);
  }
  ~ThreadMatchState() {
    pcre2_jit_stack_free(stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
};

ThreadMatchState& thread_state() {
  thread_local ThreadMatchState state;
  return state;
}

}  // namespace

struct Regex::Code {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Code() { pcre2_code_free(code); }
};

Result<std::string> oniguruma_to_pcre2(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 32);
  bool in_class = false;
  size_t class_start = 0;  // index just after '[' or '[^', where ']' is still a literal
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char e = p[i + 1];
      ++i;
      if (e == 's') {
        out += in_class ? std::string(kSpaceItems) : "[" + std::string(kSpaceItems) + "]";
      } else if (e == 'S') {
        if (in_class) {
          return make_error("regex '" + std::string(p) + "': \\S inside a character class is not supported");
        }
        out += "[^" + std::string(kSpaceItems) + "]";
      } else {
        out.push_back('\\');
        out.push_back(e);
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out.push_back(c);
      class_start = i + 1;
      if (class_start < p.size() && p[class_start] == '^') {
        out.push_back('^');
        ++i;
        ++class_start;
      }
      continue;
    }
    if (in_class && c == '[' && i + 1 < p.size() && p[i + 1] == ':') {
      const size_t close = p.find(":]", i + 2);
      if (close != std::string_view::npos) {
        out.append(p.substr(i, close + 2 - i));
        i = close + 1;
        continue;
      }
    }
    if (in_class && c == ']' && i != class_start) in_class = false;
    out.push_back(c);
  }
  return out;
}

Result<Regex> Regex::compile(std::string_view pattern, const std::string& where) {
  auto translated = oniguruma_to_pcre2(pattern);
  if (!translated.ok()) return translated.error().with_context(where);
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated->data()), translated->size(),
                                   PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    return make_error(where + ": regex '" + std::string(pattern) + "' does not compile at offset " +
                      std::to_string(error_offset) + ": " + pcre2_message(error_code));
  }
  auto holder = std::make_shared<Code>();
  holder->code = code;
  holder->jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  Regex regex;
  regex.code_ = std::move(holder);
  regex.source_ = std::string(pattern);
  return regex;
}

Status Regex::find_all(std::string_view text, std::vector<Span>& out) const {
  ThreadMatchState& state = thread_state();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  const size_t n = text.size();
  size_t search_from = 0;
  bool have_last = false;
  size_t last_end = 0;
  while (search_from <= n) {
    const int rc = code_->jit ? pcre2_jit_match(code_->code, subject, n, search_from, PCRE2_NO_UTF_CHECK,
                                                state.data, state.context)
                              : pcre2_match(code_->code, subject, n, search_from, PCRE2_NO_UTF_CHECK,
                                            state.data, state.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      return make_error("regex '" + source_ + "' failed at byte " + std::to_string(search_from) + ": " +
                        pcre2_message(rc));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(state.data);
    const size_t s = ov[0];
    const size_t e = ov[1];
    if (s == e && have_last && last_end == e) {
      // Step one character forward so an empty match cannot repeat.
      size_t step = 1;
      while (search_from + step < n && (static_cast<uint8_t>(text[search_from + step]) & 0xC0) == 0x80) ++step;
      search_from += step;
      continue;
    }
    out.push_back(Span{static_cast<uint32_t>(s), static_cast<uint32_t>(e)});
    have_last = true;
    last_end = e;
    search_from = e;
  }
  return ok_status();
}

}  // namespace latentserve::engine::text
