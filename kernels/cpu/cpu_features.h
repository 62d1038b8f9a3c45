// Which SIMD instruction set the CPU kernels run with, chosen once per call at run time.
// LATENTSERVE_CPU_ISA=scalar|avx2|avx512 forces a path (never one the CPU lacks), so tests and
// benchmarks can exercise every path a machine supports.
#pragma once

#include <string_view>

namespace latentserve::kernels::cpu {

// Ordered: each level implies the ones before it.
enum class CpuIsa { Scalar = 0, Avx2 = 1, Avx512 = 2 };

std::string_view isa_name(CpuIsa isa);

// The best level this CPU runs: Avx2 needs AVX2+FMA+F16C, Avx512 needs F/BW/VL/DQ as well.
CpuIsa detected_isa();

bool isa_supported(CpuIsa isa);

// detected_isa(), lowered to LATENTSERVE_CPU_ISA when that names a supported level. Read on every
// call (cheap next to any kernel) so a test can switch paths with setenv.
CpuIsa selected_isa();

}  // namespace latentserve::kernels::cpu
