// Owning handles for device resources: DeviceBuffer (cudaMalloc/cudaFree) and DeviceStream
// (a non-blocking CUDA stream). Creation failures, out-of-memory included, come back as a Status.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "common/result.h"

namespace latentserve::kernels::cuda {

// Device memory freed on destruction; move-only. An empty buffer holds no memory.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer() { release(); }
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  // Allocates `bytes` on the current device (0 bytes gives an empty buffer). `what` names the
  // buffer in the error message, e.g. "latent cache (layer 3)".
  static Result<DeviceBuffer> allocate(size_t bytes, const char* what = "device buffer");

  // Makes the buffer at least `bytes` long. Contents are not kept when it grows, and growing
  // frees the old memory first, so callers must not have work in flight on it (or be capturing a
  // CUDA graph that uses it).
  Status reserve(size_t bytes, const char* what = "device buffer");

  void* data() const { return ptr_; }
  template <class T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  size_t size() const { return bytes_; }
  bool empty() const { return ptr_ == nullptr; }

  // Frees the memory now; the buffer becomes empty.
  void release();

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// A CUDA stream that does not synchronize with the legacy default stream; destroyed with it.
class DeviceStream {
 public:
  DeviceStream() = default;
  ~DeviceStream();
  DeviceStream(DeviceStream&& other) noexcept;
  DeviceStream& operator=(DeviceStream&& other) noexcept;
  DeviceStream(const DeviceStream&) = delete;
  DeviceStream& operator=(const DeviceStream&) = delete;

  static Result<DeviceStream> create();

  cudaStream_t get() const { return stream_; }
  // Waits for all work queued so far; a failed kernel's error surfaces here.
  Status synchronize() const;

 private:
  cudaStream_t stream_ = nullptr;
};

// Copies between host and device, naming both sides in the error.
Status copy_to_device(void* dst, const void* src, size_t bytes);
Status copy_to_host(void* dst, const void* src, size_t bytes);

}  // namespace latentserve::kernels::cuda
