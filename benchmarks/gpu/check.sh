#!/usr/bin/env bash
# The GPU check, in one run on a bare GPU machine (CUDA toolkit, CMake >= 3.25, Ninja, a C++20
# compiler with OpenMP; no Debian libraries, no network), in under 8 minutes on one H200:
#   1. configures and builds the GPU targets for sm_90a: tests_cuda and every bench_gpu_* target
#      (benchmarks/gpu/*.cu|*.cpp);
#   2. runs every GPU test (tests_cuda: each CUDA kernel against the CPU reference on random inputs
#      of awkward sizes, the GPU sampler against its CPU reference, and the CUDA model executor
#      against the CPU model on tiny-dsv3, which it reads from ../shared/fixtures or
#      $LATENTSERVE_SHARED_FIXTURES, and on a 2-layer lite model it writes to the temp folder,
#      ~6 GB in BF16 and FP8, for the tensor-core MLA kernel);
#   3. runs bench_gpu_ceilings first (device-to-device copy bandwidth counted as bytes read +
#      written, cuBLASLt BF16 and FP8 GEMMs at 8192^3, then the FP8 block-scaled GEMM target at
#      M=4096 N=7168 K=2048 against BF16), then every other bench_gpu_* benchmark with the measured
#      ceilings in its environment: LATENTSERVE_CEILING_COPY_BYTES_PER_S,
#      LATENTSERVE_CEILING_BF16_TFLOPS, LATENTSERVE_CEILING_FP8_TFLOPS;
#      Among them: bench_gpu_decode_step_bench (a decode step of 4 DeepSeek-V3-shaped FP8 MoE layers,
#      ~50 GB of random weights made on the device, batch 1/8/64 at 4096 cached tokens, eager and
#      CUDA graphs: step time, bytes read vs the copy ceiling, CUPTI idle fraction) and
#      bench_gpu_sampling_bench (GPU sampler vs logits to the host + CPU sampler at batch 256);
#   4. runs the engine on the CUDA executor (bench_engine_* --device cuda) on the 17-layer FP8 lite
#      model (DeepSeek-V2-Lite layer shapes, 16 MoE layers + the MTP layer, ~12 GB, made in the temp
#      folder on first use and shared by both): bench_engine_speculative (MTP speculative decoding,
#      K = 1, drafts forced to agree at a = 0, 0.5, 0.9, 1, batches 1/8/64/256, priced by a
#      roofline from the measured ceilings) and bench_engine_offline_throughput (256 requests at
#      once against one at a time);
#   5. prints last one table made of every line the bench_gpu_* benchmarks print that starts with
#      "| ", and the engine benchmarks' key rows (MTP speedups, equal outputs, batching ratio,
#      engine overhead) (columns: metric | measured | reference | ratio | target).
# Exit status 0 when everything built and every test and benchmark passed.
#
# Time on one H200 (estimated, not yet measured): build ~3-4 min on 16 cores (capped at 330 s),
# tests ~1-2 min (writing the lite models and their CPU forward dominate; capped at 240 s),
# ceilings ~30 s, each other bench_gpu_* benchmark ~10-30 s (capped at 120 s each), then the
# engine benchmarks ~1.5 min: making the 17-layer FP8 model ~25 s (3.2 GB of a 2-layer FP8 lite
# model took 45 s on one core: ~70 MB/s per core, ~170 core-seconds for 12 GB), every engine
# uploading the 12 GB of weights again (~5 s each; 7 engines and 1 executor in the speculative
# benchmark, 2 in the offline one), the runs themselves ~10-20 s (capped at 180 s and 90 s). About
# 8.5 minutes in all; LATENTSERVE_ENGINE_LAYERS=9 halves the engine benchmarks' model.
#
# Header-only dependencies: the build needs nlohmann/json and Catch2 v2 (headers plus their CMake
# package files). Where they are not installed, collect them once on a machine that has them
# (Debian packages nlohmann-json3-dev and catch2) and carry the folder with the working tree:
#     bash benchmarks/gpu/check.sh --collect-deps     # writes build-third-party/ (git-ignored)
# It also copies ../shared/fixtures/tiny-dsv3 there (used when ../shared/fixtures is absent).
# check.sh puts build-third-party/ (or $LATENTSERVE_THIRD_PARTY) on CMAKE_PREFIX_PATH.
#
# Environment: LATENTSERVE_GPU_BUILD (build folder, default build-gpu), LATENTSERVE_CUDA_ARCH
# (default 90a), LATENTSERVE_JOBS (default nproc), LATENTSERVE_ENGINE_LAYERS (layers of the engine
# benchmarks' lite model, default 17), OUT (when set, logs and the table go there too).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
root=$PWD
deps="${LATENTSERVE_THIRD_PARTY:-$root/build-third-party}"

# Copies the installed nlohmann/json and Catch2 (headers and CMake package folders, keeping their
# layout under the install prefix so the package files find the headers again) into $deps.
collect_deps() {
  local pkg cfg prefix rel
  for pkg in nlohmann_json Catch2; do
    cfg=$(find /usr/share/cmake /usr/lib/cmake /usr/lib/*/cmake /usr/local/share/cmake \
            /usr/local/lib/cmake -maxdepth 2 -name "${pkg}Config.cmake" 2>/dev/null | head -1)
    [ -n "$cfg" ] || { echo "collect-deps: ${pkg}Config.cmake not found (install it first)"; exit 1; }
    prefix=$(cd "$(dirname "$cfg")/../../.." && pwd)
    rel=${cfg#"$prefix"/}
    mkdir -p "$deps/$(dirname "$rel")"
    cp -r "$(dirname "$cfg")/." "$deps/$(dirname "$rel")/"
    if [ "$pkg" = nlohmann_json ]; then
      mkdir -p "$deps/include" && cp -r "$prefix/include/nlohmann" "$deps/include/"
    else
      mkdir -p "$deps/include" "$deps/lib" && cp -r "$prefix/include/catch2" "$deps/include/"
      # Catch2's package file insists that its (unused here) static main library exists.
      [ -f "$prefix/lib/libCatch2WithMain.a" ] && cp "$prefix/lib/libCatch2WithMain.a" "$deps/lib/"
    fi
  done
  # The GPU tests read tiny-dsv3 from ../shared/fixtures, which a copied working tree lacks.
  if [ -d "$root/../shared/fixtures/tiny-dsv3" ]; then
    mkdir -p "$deps/fixtures" && cp -r "$root/../shared/fixtures/tiny-dsv3" "$deps/fixtures/"
  fi
  echo "collect-deps: wrote $deps ($(du -sh "$deps" | cut -f1)); carry it with the working tree"
}
if [ "${1:-}" = "--collect-deps" ]; then collect_deps; exit 0; fi

build="${LATENTSERVE_GPU_BUILD:-build-gpu}"
arch="${LATENTSERVE_CUDA_ARCH:-90a}"
jobs="${LATENTSERVE_JOBS:-$(nproc)}"
logs="$build/check-logs"
start=$(date +%s)
[ -d /usr/local/cuda/bin ] && export PATH="/usr/local/cuda/bin:$PATH"
mkdir -p "$logs"
elapsed() { echo "$(( $(date +%s) - start ))s"; }
status_rows=()
failed=0
note() { status_rows+=("| $1 | $2 | | | |"); [ "$2" = ok ] || failed=1; }
# Records how a test or benchmark binary ended: 0 ok, 77 skipped (no GPU), anything else failed.
note_exit() {
  case $2 in
    0) note "$1" ok ;;
    77) note "$1" "SKIPPED: no GPU" ;;
    *) note "$1" "FAILED (exit $2)" ;;
  esac
}

echo "== device"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>/dev/null || true
nvcc --version | tail -1

echo "== configure and build ($arch) [$(elapsed)]"
prefix_args=()
[ -d "$deps" ] && prefix_args=("-DCMAKE_PREFIX_PATH=$deps")
# tests_cuda runs the CUDA executor on tiny-dsv3 from ../shared/fixtures unless told otherwise;
# without that folder, the copy --collect-deps put in $deps/fixtures.
if [ -z "${LATENTSERVE_SHARED_FIXTURES:-}" ] && [ ! -d "$root/../shared/fixtures/tiny-dsv3" ] &&
   [ -d "$deps/fixtures/tiny-dsv3" ]; then
  LATENTSERVE_SHARED_FIXTURES="$deps/fixtures"
fi
[ -n "${LATENTSERVE_SHARED_FIXTURES:-}" ] && prefix_args+=("-DLATENTSERVE_SHARED_FIXTURES=$LATENTSERVE_SHARED_FIXTURES")
if ! cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLATENTSERVE_CUDA=ON \
     -DCMAKE_CUDA_ARCHITECTURES="$arch" -DLATENTSERVE_TESTS=ON -DLATENTSERVE_BENCHMARKS=ON \
     "${prefix_args[@]}" > "$logs/configure.log" 2>&1; then
  tail -30 "$logs/configure.log"
  echo "configure failed (nlohmann_json or Catch2 missing? see the header of $0)"
  exit 1
fi
mapfile -t benches < <(ninja -C "$build" -t targets all | sed -n 's/^\(bench_gpu_[A-Za-z0-9_]*\): .*/\1/p' | sort -u)
engine_benches=(bench_engine_speculative bench_engine_offline_throughput)
if ! timeout 330 cmake --build "$build" -j "$jobs" --target tests_cuda "${benches[@]}" "${engine_benches[@]}" \
     > "$logs/build.log" 2>&1; then
  grep -E "error|Error" "$logs/build.log" | head -30
  echo "build failed [$(elapsed)]; full log: $logs/build.log"
  exit 1
fi
echo "built tests_cuda ${benches[*]} ${engine_benches[*]} [$(elapsed)]"

echo "== GPU tests [$(elapsed)]"
timeout 240 "$build/tests/tests_cuda" 2>&1 | tee "$logs/tests_cuda.log"
tests_status=${PIPESTATUS[0]}
note_exit "GPU tests (tests_cuda)" "$tests_status"

echo "== ceilings [$(elapsed)]"
ceilings="$build/gpu-ceilings.txt"
rm -f "$ceilings"
timeout 120 "$build/benchmarks/gpu/bench_gpu_ceilings" "$ceilings" 2>&1 | tee "$logs/bench_gpu_ceilings.log"
note_exit bench_gpu_ceilings "${PIPESTATUS[0]}"
if [ -f "$ceilings" ]; then
  LATENTSERVE_CEILING_COPY_BYTES_PER_S=$(sed -n 's/^copy_bytes_per_s=//p' "$ceilings")
  LATENTSERVE_CEILING_BF16_TFLOPS=$(sed -n 's/^bf16_tflops=//p' "$ceilings")
  LATENTSERVE_CEILING_FP8_TFLOPS=$(sed -n 's/^fp8_tflops=//p' "$ceilings")
  export LATENTSERVE_CEILING_COPY_BYTES_PER_S LATENTSERVE_CEILING_BF16_TFLOPS \
    LATENTSERVE_CEILING_FP8_TFLOPS
fi

for b in "${benches[@]}"; do
  [ "$b" = bench_gpu_ceilings ] && continue
  echo "== $b [$(elapsed)]"
  timeout 120 "$build/benchmarks/gpu/$b" 2>&1 | tee "$logs/$b.log"
  note_exit "$b" "${PIPESTATUS[0]}"
done

# The engine on the CUDA executor. Both benchmarks share one model (made by the first, ~12 GB in
# the temp folder) and read the ceilings above for their roofline; their key rows start with
# "| MTP ", "| offline " or "| engine overhead ".
engine_model=(--device cuda --num-layers "${LATENTSERVE_ENGINE_LAYERS:-17}" --fp8 1)
if [ "$tests_status" = 77 ]; then  # tests_cuda found no GPU: --device cuda would only refuse
  note bench_engine_speculative "SKIPPED: no GPU"
  note bench_engine_offline_throughput "SKIPPED: no GPU"
else
echo "== bench_engine_speculative [$(elapsed)]"
timeout 180 "$build/benchmarks/bench_engine_speculative" "${engine_model[@]}" --batches 1,8,64,256 --k 1 \
  --tokens 16 --prompt-len 4 --anatomy 3 2>&1 | tee "$logs/engine_speculative.log"
note_exit bench_engine_speculative "${PIPESTATUS[0]}"
echo "== bench_engine_offline_throughput [$(elapsed)]"
timeout 90 "$build/benchmarks/bench_engine_offline_throughput" "${engine_model[@]}" --requests 256 \
  --prompt-len 8 --max-tokens 16 --sequential 8 2>&1 | tee "$logs/engine_offline_throughput.log"
note_exit bench_engine_offline_throughput "${PIPESTATUS[0]}"
fi

{
  echo
  echo "== results ($(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1), $(date -u +%Y-%m-%d), total $(elapsed))"
  echo "| metric | measured | reference | ratio | target |"
  echo "|---|---|---|---|---|"
  cat "$logs"/bench_gpu_*.log 2>/dev/null | grep '^| '
  cat "$logs"/engine_*.log 2>/dev/null | grep -E '^\| (MTP |offline |engine overhead )'
  printf '%s\n' "${status_rows[@]}"
} | tee "$logs/table.md"
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then cp -r "$logs" "$OUT/"; fi
exit $failed
