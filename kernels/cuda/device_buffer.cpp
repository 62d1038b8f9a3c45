// Device memory and stream ownership. Allocation failure is reported with the size asked for and
// the memory the device still has, so an out-of-memory at load time reads as a sentence.
#include "kernels/cuda/device_buffer.h"

#include <string>
#include <utility>

#include "kernels/cuda/device.h"

namespace latentserve::kernels::cuda {
namespace {

std::string mib(size_t bytes) {
  return std::to_string((bytes + (size_t(1) << 20) - 1) >> 20) + " MiB";
}

Error allocation_error(size_t bytes, const char* what, cudaError_t err) {
  cudaGetLastError();  // an out-of-memory is not sticky; clear it so later calls start clean
  size_t free_bytes = 0, total_bytes = 0;
  std::string free_note;
  if (cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) {
    free_note = " (" + mib(free_bytes) + " free of " + mib(total_bytes) + ")";
  } else {
    cudaGetLastError();
  }
  return make_error(std::string("allocating ") + what + ": cudaMalloc of " + std::to_string(bytes) +
                    " bytes (" + mib(bytes) + ") failed: " + cudaGetErrorName(err) + ": " +
                    cudaGetErrorString(err) + free_note);
}

}  // namespace

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : ptr_(std::exchange(other.ptr_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    release();
    ptr_ = std::exchange(other.ptr_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

Result<DeviceBuffer> DeviceBuffer::allocate(size_t bytes, const char* what) {
  DeviceBuffer buffer;
  LS_RETURN_IF_ERROR(buffer.reserve(bytes, what));
  return buffer;
}

Status DeviceBuffer::reserve(size_t bytes, const char* what) {
  if (bytes <= bytes_) return ok_status();
  release();
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, bytes);
  if (err != cudaSuccess) return allocation_error(bytes, what, err);
  ptr_ = p;
  bytes_ = bytes;
  return ok_status();
}

void DeviceBuffer::release() {
  // cudaFree only fails on a broken context, and a destructor has no one to tell; the error is
  // cleared so it does not surface in an unrelated later call.
  if (ptr_ != nullptr && cudaFree(ptr_) != cudaSuccess) cudaGetLastError();
  ptr_ = nullptr;
  bytes_ = 0;
}

DeviceStream::~DeviceStream() {
  if (stream_ != nullptr && cudaStreamDestroy(stream_) != cudaSuccess) cudaGetLastError();
}

DeviceStream::DeviceStream(DeviceStream&& other) noexcept
    : stream_(std::exchange(other.stream_, nullptr)) {}

DeviceStream& DeviceStream::operator=(DeviceStream&& other) noexcept {
  if (this != &other) {
    if (stream_ != nullptr && cudaStreamDestroy(stream_) != cudaSuccess) cudaGetLastError();
    stream_ = std::exchange(other.stream_, nullptr);
  }
  return *this;
}

Result<DeviceStream> DeviceStream::create() {
  DeviceStream s;
  LS_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&s.stream_, cudaStreamNonBlocking));
  return s;
}

Status DeviceStream::synchronize() const {
  return LS_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

Status copy_to_device(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return ok_status();
  return LS_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}

Status copy_to_host(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return ok_status();
  return LS_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}

}  // namespace latentserve::kernels::cuda
