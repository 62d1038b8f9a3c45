// The device's own ceilings, measured in the same run as the targets that are ratios to them:
// device-to-device copy bandwidth (bytes read + written per second), cuBLASLt BF16 and FP8 GEMM
// rates at 8192³; then the FP8 block-scaled GEMM target (M=4096, N=7168, K=2048, ≥ 1.6× BF16).
// Prints "| ..." table rows (benchmarks/gpu/check.sh collects them) and, given a path, writes the
// ceilings there as key=value lines for the benchmarks that run after it.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <string>

#include "benchmarks/gpu/bench_util.cuh"
#include "kernels/cuda/cublaslt.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/matmul.h"
#include "kernels/cuda/quantize.h"

namespace {

using latentserve::Result;
using latentserve::Status;
namespace cuda = latentserve::kernels::cuda;

using latentserve::bench::hash;
using latentserve::bench::ok;

// Random, non-zero inputs: tensor cores draw (and throttle) differently on zeros.
__global__ void fill_bf16(__nv_bfloat16* p, int64_t n, uint32_t seed) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    p[i] = __float2bfloat16(float(hash(uint64_t(i), seed)) * 4.656612873e-10f - 1.0f);
  }
}

__global__ void fill_fp8(uint8_t* p, int64_t n, uint32_t seed) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    // Magnitudes up to 2: exponent field ≤ 8, never the NaN pattern.
    p[i] = uint8_t((hash(uint64_t(i), seed) & 0xbf) | 0x20);
  }
}

__global__ void fill_f32(float* p, int64_t n, float v) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    p[i] = v;
}

__global__ void copy_kernel(const int4* __restrict__ src, int4* __restrict__ dst, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = src[i];
}

constexpr unsigned kFillGrid = 4096, kFillBlock = 256;

// Best per-call time over 5 batches, each batch long enough (≥ 20 ms) for event timing.
Result<double> time_ms(const std::function<Status()>& launch, cudaStream_t stream) {
  for (int i = 0; i < 3; ++i) LS_RETURN_IF_ERROR(launch());
  LS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  cudaEvent_t start, stop;
  LS_CUDA_RETURN_IF_ERROR(cudaEventCreate(&start));
  LS_CUDA_RETURN_IF_ERROR(cudaEventCreate(&stop));
  int iters = 1;
  double best = 1e30;
  for (int batch = 0; batch < 5;) {
    LS_CUDA_RETURN_IF_ERROR(cudaEventRecord(start, stream));
    for (int i = 0; i < iters; ++i) LS_RETURN_IF_ERROR(launch());
    LS_CUDA_RETURN_IF_ERROR(cudaEventRecord(stop, stream));
    LS_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(stop));
    float ms = 0.0f;
    LS_CUDA_RETURN_IF_ERROR(cudaEventElapsedTime(&ms, start, stop));
    if (ms < 20.0f && iters < (1 << 16)) {
      iters *= 2;
      continue;
    }
    best = std::min(best, double(ms) / iters);
    ++batch;
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return best;
}

void row(const std::string& metric, const std::string& measured, const std::string& reference = "",
         const std::string& ratio = "", const std::string& target = "") {
  std::printf("| %-46s | %-16s | %-22s | %-6s | %-8s |\n", metric.c_str(), measured.c_str(),
              reference.c_str(), ratio.c_str(), target.c_str());
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

struct Ceilings {
  double copy_bytes_per_s = 0, bf16_tflops = 0, fp8_tflops = 0;
};

// The larger of cudaMemcpyAsync and a plain 16-byte-vector copy kernel over 2 GiB.
Result<double> copy_bandwidth(cudaStream_t stream) {
  const size_t bytes = size_t(2) << 30;
  LS_ASSIGN_OR_RETURN(auto src, cuda::DeviceBuffer::allocate(bytes, "copy source"));
  LS_ASSIGN_OR_RETURN(auto dst, cuda::DeviceBuffer::allocate(bytes, "copy destination"));
  fill_fp8<<<kFillGrid, kFillBlock, 0, stream>>>(src.as<uint8_t>(), int64_t(bytes), 1);
  LS_ASSIGN_OR_RETURN(const double memcpy_ms,
                      time_ms(
                          [&] {
                            return LS_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), bytes,
                                                                 cudaMemcpyDeviceToDevice, stream));
                          },
                          stream));
  int sms = 0;
  LS_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  LS_ASSIGN_OR_RETURN(const double kernel_ms,
                      time_ms(
                          [&] {
                            copy_kernel<<<unsigned(sms * 8), 512, 0, stream>>>(
                                src.as<int4>(), dst.as<int4>(), int64_t(bytes / 16));
                            return LS_CUDA_CHECK(cudaGetLastError());
                          },
                          stream));
  const double memcpy_bw = 2.0 * double(bytes) / (memcpy_ms * 1e-3);
  const double kernel_bw = 2.0 * double(bytes) / (kernel_ms * 1e-3);
  row("copy D2D 2 GiB, cudaMemcpyAsync (read+write)", fmt("%.0f GB/s", memcpy_bw * 1e-9));
  row("copy D2D 2 GiB, int4 copy kernel (read+write)", fmt("%.0f GB/s", kernel_bw * 1e-9));
  return std::max(memcpy_bw, kernel_bw);
}

double tflops(int64_t m, int64_t n, int64_t k, double ms) {
  return 2.0 * m * n * k / (ms * 1e-3) * 1e-12;
}

// y[m, n] = x[m, k] · W[n, k]ᵀ in BF16 (BF16 out) through the project's matmul context.
Result<double> bf16_gemm_ms(cuda::MatmulContext& ctx, int64_t m, int64_t n, int64_t k,
                            cudaStream_t stream) {
  LS_ASSIGN_OR_RETURN(auto x, cuda::DeviceBuffer::allocate(size_t(m * k) * 2, "x"));
  LS_ASSIGN_OR_RETURN(auto w, cuda::DeviceBuffer::allocate(size_t(n * k) * 2, "w"));
  LS_ASSIGN_OR_RETURN(auto y, cuda::DeviceBuffer::allocate(size_t(m * n) * 2, "y"));
  fill_bf16<<<kFillGrid, kFillBlock, 0, stream>>>(x.as<__nv_bfloat16>(), m * k, 2);
  fill_bf16<<<kFillGrid, kFillBlock, 0, stream>>>(w.as<__nv_bfloat16>(), n * k, 3);
  cuda::MatmulBf16Params p;
  p.x = x.data();
  p.w = w.data();
  p.y = y.data();
  p.m = m;
  p.n = n;
  p.k = k;
  p.ldx = k;
  p.ldy = n;
  return time_ms([&] { return ctx.bf16(p, stream); }, stream);
}

// The same product with an FP8 weight and 128×128 block scales; BF16 activations are quantized
// per token in 1×128 groups inside every call, as the model pays for it.
struct Fp8Timing {
  double total_ms = 0, quantize_ms = 0;
  cuda::Fp8Path path = cuda::Fp8Path::kDequantizedBf16;
};

Result<Fp8Timing> fp8_block_gemm(cuda::MatmulContext& ctx, int64_t m, int64_t n, int64_t k,
                                 cudaStream_t stream) {
  LS_ASSIGN_OR_RETURN(auto x, cuda::DeviceBuffer::allocate(size_t(m * k) * 2, "x"));
  LS_ASSIGN_OR_RETURN(auto w, cuda::DeviceBuffer::allocate(size_t(n * k), "w"));
  const int64_t scale_count = cuda::ceil_div(n, 128) * cuda::weight_scale_ld(k);
  LS_ASSIGN_OR_RETURN(auto ws, cuda::DeviceBuffer::allocate(size_t(scale_count) * 4, "w scales"));
  LS_ASSIGN_OR_RETURN(auto y, cuda::DeviceBuffer::allocate(size_t(m * n) * 2, "y"));
  LS_ASSIGN_OR_RETURN(auto q, cuda::DeviceBuffer::allocate(size_t(m * k), "q"));
  LS_ASSIGN_OR_RETURN(
      auto qs, cuda::DeviceBuffer::allocate(
                   size_t(cuda::ceil_div(k, 128) * cuda::activation_scale_ld(m)) * 4, "q scales"));
  fill_bf16<<<kFillGrid, kFillBlock, 0, stream>>>(x.as<__nv_bfloat16>(), m * k, 4);
  fill_fp8<<<kFillGrid, kFillBlock, 0, stream>>>(w.as<uint8_t>(), n * k, 5);
  fill_f32<<<kFillGrid, kFillBlock, 0, stream>>>(ws.as<float>(), scale_count, 1.0f / 64.0f);
  cuda::MatmulFp8Params p;
  p.x = x.data();
  p.w = cuda::Fp8BlockWeight{w.as<uint8_t>(), ws.as<float>(), n, k};
  p.y = y.data();
  p.m = m;
  p.ldx = k;
  p.ldy = n;
  Fp8Timing t;
  LS_ASSIGN_OR_RETURN(t.total_ms, time_ms([&] { return ctx.fp8(p, stream); }, stream));
  t.path = ctx.last_fp8_path();
  cuda::QuantizeParams qp;
  qp.x = x.data();
  qp.ldx = k;
  qp.q = q.as<uint8_t>();
  qp.ldq = k;
  qp.scales = qs.as<float>();
  qp.scale_ld = cuda::activation_scale_ld(m);
  qp.rows = m;
  qp.cols = k;
  LS_ASSIGN_OR_RETURN(
      t.quantize_ms,
      time_ms([&] { return cuda::quantize_fp8_per_token_group(qp, stream); }, stream));
  return t;
}

// Plain FP8 E4M3 GEMM with unit per-tensor scales, straight through cuBLASLt: the FP8 peak.
Result<double> fp8_tensorwise_ms(int64_t m, int64_t n, int64_t k, cudaStream_t stream) {
  cuda::LtHandle handle;
  LS_CUBLAS_RETURN_IF_ERROR(cublasLtCreate(handle.out()));
  LS_ASSIGN_OR_RETURN(auto workspace, cuda::DeviceBuffer::allocate(size_t(32) << 20, "workspace"));
  LS_ASSIGN_OR_RETURN(auto a, cuda::DeviceBuffer::allocate(size_t(n * k), "a"));
  LS_ASSIGN_OR_RETURN(auto b, cuda::DeviceBuffer::allocate(size_t(m * k), "b"));
  LS_ASSIGN_OR_RETURN(auto d, cuda::DeviceBuffer::allocate(size_t(m * n) * 2, "d"));
  fill_fp8<<<kFillGrid, kFillBlock, 0, stream>>>(a.as<uint8_t>(), n * k, 6);
  fill_fp8<<<kFillGrid, kFillBlock, 0, stream>>>(b.as<uint8_t>(), m * k, 7);
  cuda::LtMatmulDesc desc;
  LS_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescCreate(desc.out(), CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t op_t = CUBLAS_OP_T, op_n = CUBLAS_OP_N;
  LS_RETURN_IF_ERROR(cuda::set_desc_attribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, op_t, "TRANSA"));
  LS_RETURN_IF_ERROR(cuda::set_desc_attribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, op_n, "TRANSB"));
  LS_ASSIGN_OR_RETURN(auto la, cuda::make_layout(CUDA_R_8F_E4M3, uint64_t(k), uint64_t(n), k));
  LS_ASSIGN_OR_RETURN(auto lb, cuda::make_layout(CUDA_R_8F_E4M3, uint64_t(k), uint64_t(m), k));
  LS_ASSIGN_OR_RETURN(auto ld, cuda::make_layout(CUDA_R_16BF, uint64_t(n), uint64_t(m), n));
  cuda::LtPreference pref;
  LS_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulPreferenceCreate(pref.out()));
  const uint64_t ws = workspace.size();
  LS_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulPreferenceSetAttribute(
      pref.get(), CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
  cublasLtMatmulHeuristicResult_t result{};
  int returned = 0;
  LS_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulAlgoGetHeuristic(handle.get(), desc.get(), la.get(),
                                                           lb.get(), ld.get(), ld.get(), pref.get(),
                                                           1, &result, &returned));
  if (returned == 0)
    return latentserve::make_error("cuBLASLt offers no tensor-wise FP8 algorithm here");
  const float alpha = 1.0f, beta = 0.0f;
  return time_ms(
      [&] {
        return LS_CUBLAS_CHECK(cublasLtMatmul(
            handle.get(), desc.get(), &alpha, a.data(), la.get(), b.data(), lb.get(), &beta,
            d.data(), ld.get(), d.data(), ld.get(), &result.algo, workspace.data(), ws, stream));
      },
      stream);
}

Result<Ceilings> measure_ceilings(cuda::MatmulContext& ctx, cudaStream_t stream) {
  Ceilings c;
  LS_ASSIGN_OR_RETURN(c.copy_bytes_per_s, copy_bandwidth(stream));
  const int64_t s = 8192;
  LS_ASSIGN_OR_RETURN(const double bf16_ms, bf16_gemm_ms(ctx, s, s, s, stream));
  c.bf16_tflops = tflops(s, s, s, bf16_ms);
  row("cuBLASLt BF16 GEMM 8192^3 (FP32 accumulate)", fmt("%.0f TFLOP/s", c.bf16_tflops));
  LS_ASSIGN_OR_RETURN(const double fp8_ms, fp8_tensorwise_ms(s, s, s, stream));
  c.fp8_tflops = tflops(s, s, s, fp8_ms);
  row("cuBLASLt FP8 GEMM 8192^3 (per-tensor scale)", fmt("%.0f TFLOP/s", c.fp8_tflops));
  LS_ASSIGN_OR_RETURN(const Fp8Timing blk, fp8_block_gemm(ctx, s, s, s, stream));
  const double blk_tflops = tflops(s, s, s, blk.total_ms);
  row(std::string("FP8 block-scaled 8192^3 incl. quant [") + cuda::fp8_path_name(blk.path) + "]",
      fmt("%.0f TFLOP/s", blk_tflops), fmt("FP8 %.0f TFLOP/s", c.fp8_tflops),
      fmt("%.2f", blk_tflops / c.fp8_tflops));
  return c;
}

bool fp8_target(cuda::MatmulContext& ctx, cudaStream_t stream) {
  const int64_t m = 4096, n = 7168, k = 2048;
  auto bf16_ms = bf16_gemm_ms(ctx, m, n, k, stream);
  if (!ok(bf16_ms.ok() ? Status() : Status(bf16_ms.error()), "BF16 GEMM 4096x7168x2048"))
    return false;
  auto fp8 = fp8_block_gemm(ctx, m, n, k, stream);
  if (!ok(fp8.ok() ? Status() : Status(fp8.error()), "FP8 GEMM 4096x7168x2048")) return false;
  const double bf16_rate = tflops(m, n, k, *bf16_ms), fp8_rate = tflops(m, n, k, fp8->total_ms);
  const double gemm_only = tflops(m, n, k, fp8->total_ms - fp8->quantize_ms);
  row("BF16 GEMM M=4096 N=7168 K=2048", fmt("%.0f TFLOP/s", bf16_rate));
  row(std::string("FP8 block GEMM 4096x7168x2048 [") + cuda::fp8_path_name(fp8->path) + "]",
      fmt("%.0f TFLOP/s", fp8_rate), fmt("BF16 %.0f TFLOP/s", bf16_rate),
      fmt("%.2f", fp8_rate / bf16_rate), fp8_rate / bf16_rate >= 1.6 ? ">=1.6 ok" : ">=1.6 MISS");
  row("  same, minus activation quantization", fmt("%.0f TFLOP/s", gemm_only),
      fmt("BF16 %.0f TFLOP/s", bf16_rate), fmt("%.2f", gemm_only / bf16_rate));
  row("  activation quantization 4096x2048 BF16", fmt("%.1f us", fp8->quantize_ms * 1e3),
      fmt("%.0f GB/s moved", double(m * k) * 3.0 / (fp8->quantize_ms * 1e-3) * 1e-9));
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (cuda::device_count() == 0) {
    std::printf("no CUDA GPU present: nothing to measure\n");
    return 77;
  }
  cudaDeviceProp prop{};
  if (!ok(LS_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0)), "cudaGetDeviceProperties")) return 1;
  std::printf("device 0: %s, compute capability %d.%d, %d SMs, %.1f GiB\n", prop.name, prop.major,
              prop.minor, prop.multiProcessorCount, double(prop.totalGlobalMem) / double(1 << 30));
  auto stream = cuda::DeviceStream::create();
  auto ctx = cuda::MatmulContext::create();
  if (!ok(stream.ok() ? Status() : Status(stream.error()), "stream")) return 1;
  if (!ok(ctx.ok() ? Status() : Status(ctx.error()), "matmul context")) return 1;
  auto ceilings = measure_ceilings(**ctx, stream->get());
  if (!ok(ceilings.ok() ? Status() : Status(ceilings.error()), "ceilings")) return 1;
  if (argc > 1) {
    std::ofstream out(argv[1]);
    out << "copy_bytes_per_s=" << ceilings->copy_bytes_per_s
        << "\nbf16_tflops=" << ceilings->bf16_tflops << "\nfp8_tflops=" << ceilings->fp8_tflops
        << "\n";
  }
  return fp8_target(**ctx, stream->get()) ? 0 : 1;
}
