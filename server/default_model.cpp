#include "server/default_model.h"

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <system_error>

#include "models/make_model.h"

namespace latentserve::server {

namespace fs = std::filesystem;

std::string default_model_dir() {
  if (const char* home = std::getenv("LATENTSERVE_HOME"); home && *home) {
    return std::string(home) + "/models/tiny";
  }
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) {
    return std::string(xdg) + "/latentserve/models/tiny";
  }
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.cache/latentserve/models/tiny";
}

Result<std::string> resolve_model_dir(const std::optional<std::string>& model) {
  if (model) return *model;
  const std::string dir = default_model_dir();
  if (fs::exists(fs::path(dir) / "config.json")) return dir;

  std::cerr << "latentserve: making the built-in default model (tiny preset) in " << dir << "\n";
  // Build in a sibling folder and rename, so an interrupted run never leaves half a model.
  const std::string staging = dir + ".partial";
  std::error_code ec;
  fs::remove_all(staging, ec);
  fs::create_directories(staging, ec);
  if (ec) return make_error("cannot create " + staging + ": " + ec.message());
  models::MakeModelOptions options;
  options.preset = "tiny";
  options.out_dir = staging;
  options.seed = 0;
  options.tokenizer_dir = std::string(LATENTSERVE_ASSETS_DIR) + "/tokenizer/deepseek-v3";
  LS_RETURN_IF_ERROR(models::make_model(options));
  fs::remove_all(dir, ec);
  fs::rename(staging, dir, ec);
  if (ec) return make_error("cannot move " + staging + " to " + dir + ": " + ec.message());
  return dir;
}

}  // namespace latentserve::server
