#include "kernels/cpu/cpu_features.h"

#include <cstdlib>

namespace latentserve::kernels::cpu {

std::string_view isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::Scalar: return "scalar";
    case CpuIsa::Avx2: return "avx2";
    case CpuIsa::Avx512: return "avx512";
  }
  return "?";
}

CpuIsa detected_isa() {
  static const CpuIsa isa = [] {
    __builtin_cpu_init();
    bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                __builtin_cpu_supports("f16c");
    bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    return avx512 ? CpuIsa::Avx512 : avx2 ? CpuIsa::Avx2 : CpuIsa::Scalar;
  }();
  return isa;
}

bool isa_supported(CpuIsa isa) { return static_cast<int>(isa) <= static_cast<int>(detected_isa()); }

CpuIsa selected_isa() {
  CpuIsa best = detected_isa();
  const char* forced = std::getenv("LATENTSERVE_CPU_ISA");
  if (forced == nullptr) return best;
  std::string_view name(forced);
  for (CpuIsa isa : {CpuIsa::Scalar, CpuIsa::Avx2, CpuIsa::Avx512}) {
    if (name == isa_name(isa) && isa_supported(isa)) return isa;
  }
  return best;  // unknown or unsupported names fall back to the best available path
}

}  // namespace latentserve::kernels::cpu
