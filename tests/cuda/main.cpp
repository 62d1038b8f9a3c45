// Entry point of the GPU tests: exits 77 (CTest's "skipped") when no CUDA GPU is present, so CPU-only
// machines report the GPU tests as skipped instead of failed.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>

#include "kernels/cuda/device.h"

int main(int argc, char* argv[]) {
  if (latentserve::kernels::cuda::device_count() == 0) {
    std::printf("no CUDA GPU present: skipping the GPU tests\n");
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
