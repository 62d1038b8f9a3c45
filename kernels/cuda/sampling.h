// Token sampling on the GPU, one CUDA block per row: temperature, min_p, top_k, top_p and a draw
// with a given uniform, by the rule of the engine's CPU sampler, so logits never leave the device.
// sample_row_reference is the plain sort-based CPU twin the tests compare with.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/result.h"

namespace latentserve::kernels::cuda {

// Temperatures below this are greedy (the engine's kGreedyTemperature).
inline constexpr float kSamplingGreedyTemperature = 1e-5f;

// One row's truncation, with the engine's SamplingParams meanings.
struct SamplingRowParams {
  float temperature = 1.0f;  // < kSamplingGreedyTemperature: argmax (lowest id among equal maxima)
  int32_t top_k = 0;         // <= 0 or >= vocab: off
  float top_p = 1.0f;        // (0, 1]; 1: off
  float min_p = 0.0f;        // [0, 1]; 0: off
};

struct SampleRowsParams {
  const float* logits = nullptr;                  // [rows, ld] F32 raw model output (not modified)
  int64_t ld = 0;
  int64_t rows = 0;
  int64_t vocab = 0;
  const SamplingRowParams* row_params = nullptr;  // [rows] on the device
  const double* uniforms = nullptr;               // [rows] on the device, each in [0, 1)
  int32_t* tokens = nullptr;                      // [rows] on the device: the sampled ids
};

// Per row: w = logit / temperature; min_p keeps w >= max + log(min_p); top_k keeps w >= the k-th
// largest; top_p keeps the shortest w-ordered prefix holding top_p of the kept mass; every cut
// keeps all tokens tied with its last one. The draw walks the kept tokens in id order and takes
// the first whose running weight exp(w - max) exceeds u · total. A row whose every w is -inf
// gives its raw argmax. Weights are float exps summed in double, so a token can differ from the
// reference only when u · total or a top_p target lies within ~1e-6 (relative) of a running sum.
// NaN logits are not supported. Enqueues on `stream`; checks the parameters and the launch.
Status sample_rows(const SampleRowsParams& p, cudaStream_t stream);

struct SampleRowReference {
  int32_t token = -1;
  // The smallest distance, relative to the total it is compared with, between a running sum and
  // the target it was tested against (top_p's target and the draw's u · total): where it is
  // tiny, a different summation order may legitimately pick the neighbouring token.
  double boundary = 1.0;
};

// The CPU twin on one host row: a full sort, exps and sums in double.
SampleRowReference sample_row_reference(const float* logits, int64_t vocab, const SamplingRowParams& p,
                                        double u);

}  // namespace latentserve::kernels::cuda
