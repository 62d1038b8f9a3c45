#include "models/checkpoint.h"

#include <filesystem>
#include <set>

#include "models/json_util.h"
#include "models/safetensors_header.h"

namespace latentserve::models {

namespace fs = std::filesystem;
using nlohmann::json;

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorInfo::shape_string() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

Checkpoint::Checkpoint() = default;
Checkpoint::~Checkpoint() = default;
Checkpoint::Checkpoint(Checkpoint&&) noexcept = default;
Checkpoint& Checkpoint::operator=(Checkpoint&&) noexcept = default;

const TensorInfo* Checkpoint::find(std::string_view name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

namespace {

struct OpenedShard {
  std::unique_ptr<CheckpointFile> file;
  std::vector<TensorInfo> tensors;
};

Result<OpenedShard> open_shard(const std::string& path, const std::string& display_name, WeightLoad load) {
  OpenedShard shard;
  LS_ASSIGN_OR_RETURN(shard.file, CheckpointFile::open(path, load));
  LS_ASSIGN_OR_RETURN(SafetensorsHeader header,
                      parse_safetensors_header(shard.file->data(), shard.file->size(), path));
  for (auto& e : header.entries) {
    TensorInfo t;
    t.name = std::move(e.name);
    t.dtype = e.dtype;
    t.shape = std::move(e.shape);
    t.data = shard.file->data() + header.data_start + e.begin;
    t.nbytes = size_t(e.end - e.begin);
    t.file = display_name;
    shard.tensors.push_back(std::move(t));
  }
  return shard;
}

// Index shard names must stay inside the checkpoint folder.
bool is_plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find('/') == std::string::npos && name.find('\\') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

Result<std::map<std::string, std::string>> read_weight_map(const std::string& index_path) {
  LS_ASSIGN_OR_RETURN(std::string text, read_text_file(index_path, kMaxSafetensorsHeaderBytes));
  LS_ASSIGN_OR_RETURN(json index, parse_json(text, index_path));
  if (!index.is_object()) return make_error(index_path + ": expected a JSON object");
  auto it = index.find("weight_map");
  if (it == index.end() || !it->is_object()) {
    return make_error(index_path + ": 'weight_map' missing or not an object");
  }
  std::map<std::string, std::string> weight_map;
  for (const auto& [tensor, shard] : it->items()) {
    if (!shard.is_string() || !is_plain_file_name(shard.get<std::string>())) {
      return make_error(index_path + ": weight_map entry '" + tensor +
                        "' must name a shard file in the same folder, got " + shard.dump());
    }
    weight_map.emplace(tensor, shard.get<std::string>());
  }
  if (weight_map.empty()) return make_error(index_path + ": weight_map is empty");
  return weight_map;
}

}  // namespace

Result<Checkpoint> Checkpoint::open_file(const std::string& path, WeightLoad load) {
  LS_ASSIGN_OR_RETURN(OpenedShard shard, open_shard(path, fs::path(path).filename().string(), load));
  Checkpoint ckpt;
  for (auto& t : shard.tensors) {
    std::string name = t.name;
    if (!ckpt.tensors_.emplace(std::move(name), std::move(t)).second) {
      return make_error(path + ": tensor '" + name + "' appears twice");
    }
  }
  ckpt.files_.push_back(std::move(shard.file));
  return ckpt;
}

Result<Checkpoint> Checkpoint::open(const std::string& model_dir, WeightLoad load) {
  std::error_code ec;
  if (!fs::is_directory(model_dir, ec)) return make_error(model_dir + ": not a directory");
  const fs::path dir(model_dir);
  const fs::path index = dir / "model.safetensors.index.json";
  if (fs::exists(index, ec)) return open_sharded(model_dir, index.string(), load);
  if (fs::exists(dir / "model.safetensors", ec)) return open_file((dir / "model.safetensors").string(), load);
  std::vector<fs::path> candidates;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".safetensors") candidates.push_back(entry.path());
  }
  if (candidates.size() == 1) return open_file(candidates[0].string(), load);
  if (candidates.empty()) return make_error(model_dir + ": no *.safetensors file");
  return make_error(model_dir + ": several *.safetensors files but no model.safetensors.index.json");
}

// The index is the authority: every tensor it lists must be in the shard it names, every shard
// it names must exist, and a tensor found in a shard without being listed there is an error
// (a stale or hand-edited index; which copy is meant would be a guess).
Result<Checkpoint> Checkpoint::open_sharded(const std::string& model_dir,
                                            const std::string& index_path, WeightLoad load) {
  LS_ASSIGN_OR_RETURN(auto weight_map, read_weight_map(index_path));
  std::set<std::string> shard_names;
  for (const auto& [tensor, shard] : weight_map) shard_names.insert(shard);
  Checkpoint ckpt;
  std::set<std::string> found;
  for (const std::string& shard_name : shard_names) {
    const std::string path = (fs::path(model_dir) / shard_name).string();
    auto shard = open_shard(path, shard_name, load);
    if (!shard.ok()) {
      return shard.error().with_context(index_path + " names shard '" + shard_name + "'");
    }
    for (auto& t : shard->tensors) {
      auto listed = weight_map.find(t.name);
      if (listed == weight_map.end() || listed->second != shard_name) {
        return make_error(path + ": tensor '" + t.name + "' is not listed for this shard in " +
                          index_path);
      }
      found.insert(t.name);
      std::string name = t.name;
      ckpt.tensors_.emplace(std::move(name), std::move(t));
    }
    ckpt.files_.push_back(std::move(shard->file));
  }
  for (const auto& [tensor, shard] : weight_map) {
    if (!found.count(tensor)) {
      return make_error(index_path + ": tensor '" + tensor + "' is listed in shard '" + shard +
                        "' but that shard does not contain it");
    }
  }
  return ckpt;
}

}  // namespace latentserve::models
