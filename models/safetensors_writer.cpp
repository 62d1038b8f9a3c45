#include "models/safetensors_writer.h"

#include <nlohmann/json.hpp>

namespace latentserve::models {

uint64_t TensorSpec::nbytes() const {
  uint64_t n = dtype_size(dtype);
  for (int64_t d : shape) n *= uint64_t(d);
  return n;
}

Result<SafetensorsWriter> SafetensorsWriter::create(
    const std::string& path, std::vector<TensorSpec> tensors,
    const std::map<std::string, std::string>& metadata) {
  SafetensorsWriter w;
  w.path_ = path;
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const TensorSpec& t : tensors) {
    for (int64_t d : t.shape) {
      if (d < 0) return make_error(path + ": tensor '" + t.name + "' has a negative dimension");
    }
    if (t.name == "__metadata__" || !w.slots_.emplace(t.name, Slot{offset, t.nbytes(), 0}).second) {
      return make_error(path + ": tensor name '" + t.name + "' used twice or reserved");
    }
    header[t.name] = {{"dtype", std::string(dtype_name(t.dtype))},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  w.out_.open(path, std::ios::binary | std::ios::trunc);
  if (!w.out_) return make_error(path + ": cannot create");
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(text.size()) >> (8 * i));
  w.out_.write(reinterpret_cast<const char*>(len), 8);
  w.out_.write(text.data(), std::streamsize(text.size()));
  w.data_start_ = 8 + text.size();
  if (!w.out_) return make_error(path + ": write failed");
  return w;
}

Status SafetensorsWriter::write(std::string_view name, uint64_t offset, const void* data,
                                uint64_t nbytes) {
  auto it = slots_.find(name);
  if (it == slots_.end()) return make_error(path_ + ": no tensor '" + std::string(name) + "'");
  Slot& slot = it->second;
  if (offset > slot.nbytes || nbytes > slot.nbytes - offset) {
    return make_error(path_ + ": write past the end of tensor '" + std::string(name) + "'");
  }
  out_.seekp(std::streamoff(data_start_ + slot.begin + offset));
  out_.write(static_cast<const char*>(data), std::streamsize(nbytes));
  if (!out_) return make_error(path_ + ": write failed");
  slot.written += nbytes;
  return ok_status();
}

Status SafetensorsWriter::finish() {
  for (const auto& [name, slot] : slots_) {
    if (slot.written != slot.nbytes) {
      return make_error(path_ + ": tensor '" + name + "' got " + std::to_string(slot.written) +
                        " of its " + std::to_string(slot.nbytes) + " bytes");
    }
  }
  out_.close();
  if (!out_) return make_error(path_ + ": closing failed");
  return ok_status();
}

Status write_safetensors(const std::string& path, const std::vector<TensorBytes>& tensors) {
  std::vector<TensorSpec> specs;
  for (const TensorBytes& t : tensors) specs.push_back(t.spec);
  LS_ASSIGN_OR_RETURN(SafetensorsWriter writer, SafetensorsWriter::create(path, specs));
  for (const TensorBytes& t : tensors) {
    if (t.bytes.size() != t.spec.nbytes()) {
      return make_error(path + ": tensor '" + t.spec.name + "' has " +
                        std::to_string(t.bytes.size()) + " bytes, its shape needs " +
                        std::to_string(t.spec.nbytes()));
    }
    LS_RETURN_IF_ERROR(writer.write(t.spec.name, 0, t.bytes.data(), t.bytes.size()));
  }
  return writer.finish();
}

}  // namespace latentserve::models
