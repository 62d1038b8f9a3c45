#include "models/deepseek_v3/executor.h"

namespace latentserve::models::deepseek_v3 {

Result<Device> parse_device(const std::string& name) {
  if (name == "cpu") return Device::kCpu;
  if (name == "cuda") return Device::kCuda;
  if (name == "auto") return Device::kAuto;
  return make_error("unknown device '" + name + "' (accepted: cpu, cuda, auto)");
}

const char* device_name(Device device) {
  switch (device) {
    case Device::kCpu:
      return "cpu";
    case Device::kCuda:
      return "cuda";
    case Device::kAuto:
      return "auto";
  }
  return "unknown";
}

}  // namespace latentserve::models::deepseek_v3
