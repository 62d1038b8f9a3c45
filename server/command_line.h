// A small parser for `latentserve <command> --option value --flag ...`: every command declares
// its options, and anything unknown, repeated or missing its value is an error naming it.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace latentserve::server {

struct OptionSpec {
  std::string name;  // without the leading "--"
  bool takes_value = true;
  std::string help;
};

class ParsedOptions {
 public:
  bool has(const std::string& name) const { return values_.count(name) != 0; }
  std::optional<std::string> get(const std::string& name) const;
  std::string get_or(const std::string& name, const std::string& fallback) const;
  Result<int64_t> get_int(const std::string& name, int64_t fallback) const;

  std::map<std::string, std::string> values_;
};

Result<ParsedOptions> parse_options(const std::vector<std::string>& args,
                                    const std::vector<OptionSpec>& specs);

// "  --name VALUE   help" lines for a usage message.
std::string describe_options(const std::vector<OptionSpec>& specs);

}  // namespace latentserve::server
