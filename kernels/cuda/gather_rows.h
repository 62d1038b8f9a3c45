// Row gather on the GPU with a dtype change on the way: the embedding lookup (BF16 table rows to
// the F32 residual stream), the rows that need logits, and latent-cache slots copied by index.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/dtype.h"
#include "common/result.h"

namespace latentserve::kernels::cuda {

struct GatherRowsParams {
  const void* src = nullptr;  // [num_src_rows, cols] src_dtype (F32 or BF16), row stride ld_src
  DType src_dtype = DType::BF16;
  int64_t ld_src = 0;
  int64_t num_src_rows = 0;  // an index outside [0, num_src_rows) yields a row of zeros
  // [rows]: the source row of each output row; exactly one of the two is set.
  const int32_t* index32 = nullptr;
  const int64_t* index64 = nullptr;
  void* dst = nullptr;  // [rows, cols] dst_dtype (F32 or BF16), row stride ld_dst
  DType dst_dtype = DType::F32;
  int64_t ld_dst = 0;
  int64_t rows = 0;
  int64_t cols = 0;
};

// dst[r] = src[index[r]] converted (BF16 rounded to nearest even). Enqueues on `stream`; checks
// the parameters and the launch, not completion.
Status gather_rows(const GatherRowsParams& p, cudaStream_t stream);

}  // namespace latentserve::kernels::cuda
