// The `latentserve` command: dispatches to one subcommand per file in server/.
#include <iostream>
#include <string>
#include <vector>

#include "server/generate_command.h"
#include "server/make_model_command.h"
#include "server/serve_command.h"
#include "server/tokenize_command.h"

namespace {

struct Command {
  const char* name;
  int (*run)(const std::vector<std::string>&);
  const char* help;
};

const Command kCommands[] = {
    {"serve", latentserve::server::serve_command, "serve a model over HTTP (OpenAI API) and gRPC"},
    {"generate", latentserve::server::generate_command, "offline generation from a JSONL file"},
    {"make-model", latentserve::server::make_model_command, "write a random-weight checkpoint from a preset"},
    {"tokenize", latentserve::server::tokenize_command, "text or chat messages to token ids"},
};

void usage() {
  std::cerr << "usage: latentserve <command> [options]\n\ncommands:\n";
  for (const auto& c : kCommands) std::cerr << "  " << c.name << "\t" << c.help << "\n";
  std::cerr << "\n`latentserve <command> --help` lists a command's options.\n";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage();
    return 2;
  }
  const std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    usage();
    return 0;
  }
  std::vector<std::string> args(argv + 2, argv + argc);
  for (const auto& c : kCommands) {
    if (name == c.name) return c.run(args);
  }
  std::cerr << "latentserve: unknown command '" << name << "'\n";
  usage();
  return 2;
}
