#include "server/command_line.h"

#include <charconv>

namespace latentserve::server {

std::optional<std::string> ParsedOptions::get(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

std::string ParsedOptions::get_or(const std::string& name, const std::string& fallback) const {
  return get(name).value_or(fallback);
}

Result<int64_t> ParsedOptions::get_int(const std::string& name, int64_t fallback) const {
  auto v = get(name);
  if (!v) return fallback;
  int64_t out = 0;
  auto [ptr, ec] = std::from_chars(v->data(), v->data() + v->size(), out);
  if (ec != std::errc() || ptr != v->data() + v->size()) {
    return make_error("--" + name + " expects an integer, got '" + *v + "'");
  }
  return out;
}

Result<ParsedOptions> parse_options(const std::vector<std::string>& args,
                                    const std::vector<OptionSpec>& specs) {
  ParsedOptions parsed;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.rfind("--", 0) != 0) return make_error("unexpected argument '" + arg + "'");
    std::string name = arg.substr(2);
    std::optional<std::string> inline_value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    const OptionSpec* spec = nullptr;
    for (const auto& s : specs) {
      if (s.name == name) spec = &s;
    }
    if (!spec) return make_error("unknown option --" + name);
    if (parsed.has(name)) return make_error("option --" + name + " given twice");
    if (!spec->takes_value) {
      if (inline_value) return make_error("option --" + name + " takes no value");
      parsed.values_[name] = "true";
      continue;
    }
    if (inline_value) {
      parsed.values_[name] = *inline_value;
    } else if (i + 1 < args.size()) {
      parsed.values_[name] = args[++i];
    } else {
      return make_error("option --" + name + " needs a value");
    }
  }
  return parsed;
}

std::string describe_options(const std::vector<OptionSpec>& specs) {
  std::string out;
  for (const auto& s : specs) {
    std::string left = "  --" + s.name + (s.takes_value ? " VALUE" : "");
    if (left.size() < 28) left.resize(28, ' ');
    out += left + " " + s.help + "\n";
  }
  return out;
}

}  // namespace latentserve::server
