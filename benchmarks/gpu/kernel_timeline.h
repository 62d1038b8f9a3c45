// The GPU's busy intervals (kernels, copies, memsets) from CUPTI activity records, to measure how
// much of a model step the GPU spends idle between its kernels. Without CUPTI (LATENTSERVE_WITH_CUPTI
// unset) start() reports that nothing is measured.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

#ifdef LATENTSERVE_WITH_CUPTI
#include <cupti.h>
#endif

namespace latentserve::bench {

struct Interval {
  uint64_t start = 0, end = 0;  // ns, CUPTI's clock
  bool graph = false;           // a kernel launched from a CUDA graph
};

class KernelTimeline {
 public:
  // Starts recording; false (with a message) when CUPTI is missing or refuses. Recording slows
  // kernel launches a little, so timings are taken with it stopped.
  static bool start();
  // Stops recording and returns every record since start().
  static std::vector<Interval> stop();
  static uint64_t now();  // CUPTI's clock, to bracket steps

  // Over [from, to]: busy time (union of intervals), and the span from the first interval's
  // start to the last one's end inside the window.
  static std::pair<double, double> busy_and_span(const std::vector<Interval>& all, uint64_t from, uint64_t to) {
    std::vector<Interval> in;
    for (const Interval& i : all) {
      if (i.start >= from && i.end <= to && i.end > i.start) in.push_back(i);
    }
    if (in.empty()) return {0.0, 0.0};
    std::sort(in.begin(), in.end(), [](const Interval& a, const Interval& b) { return a.start < b.start; });
    double busy = 0;
    uint64_t cur_s = in[0].start, cur_e = in[0].end, last = in[0].end;
    for (const Interval& i : in) {
      last = std::max(last, i.end);
      if (i.start > cur_e) {
        busy += double(cur_e - cur_s);
        cur_s = i.start;
        cur_e = i.end;
      } else {
        cur_e = std::max(cur_e, i.end);
      }
    }
    busy += double(cur_e - cur_s);
    return {busy, double(last - in[0].start)};
  }

 private:
  static std::vector<Interval>& records() {
    static std::vector<Interval> r;
    return r;
  }
#ifdef LATENTSERVE_WITH_CUPTI
  static void CUPTIAPI requested(uint8_t** buffer, size_t* size, size_t* max_records) {
    *size = size_t(8) << 20;
    *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, *size));
    *max_records = 0;
  }
  static void CUPTIAPI completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
    CUpti_Activity* record = nullptr;
    while (cuptiActivityGetNextRecord(buffer, valid, &record) == CUPTI_SUCCESS) {
      if (record->kind == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL || record->kind == CUPTI_ACTIVITY_KIND_KERNEL) {
        const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(record);
        records().push_back({k->start, k->end, k->graphId != 0});
      } else if (record->kind == CUPTI_ACTIVITY_KIND_MEMCPY) {
        const auto* m = reinterpret_cast<const CUpti_ActivityMemcpy6*>(record);
        records().push_back({m->start, m->end, false});
      } else if (record->kind == CUPTI_ACTIVITY_KIND_MEMSET) {
        const auto* m = reinterpret_cast<const CUpti_ActivityMemset4*>(record);
        records().push_back({m->start, m->end, false});
      }
    }
    std::free(buffer);
  }
#endif
};

#ifdef LATENTSERVE_WITH_CUPTI
inline bool KernelTimeline::start() {
  records().clear();
  static const bool registered = cuptiActivityRegisterCallbacks(requested, completed) == CUPTI_SUCCESS;
  if (!registered) {
    std::printf("kernel timeline: CUPTI refused its callbacks; idle fraction not measured\n");
    return false;
  }
  for (CUpti_ActivityKind kind : {CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL, CUPTI_ACTIVITY_KIND_MEMCPY,
                                  CUPTI_ACTIVITY_KIND_MEMSET}) {
    if (cuptiActivityEnable(kind) != CUPTI_SUCCESS) {
      std::printf("kernel timeline: CUPTI activity kind %d refused; idle fraction not measured\n", int(kind));
      return false;
    }
  }
  return true;
}
inline std::vector<Interval> KernelTimeline::stop() {
  cuptiActivityFlushAll(1);
  for (CUpti_ActivityKind kind : {CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL, CUPTI_ACTIVITY_KIND_MEMCPY,
                                  CUPTI_ACTIVITY_KIND_MEMSET}) {
    cuptiActivityDisable(kind);
  }
  return std::move(records());
}
inline uint64_t KernelTimeline::now() {
  uint64_t t = 0;
  cuptiGetTimestamp(&t);
  return t;
}
#else
inline bool KernelTimeline::start() {
  std::printf("kernel timeline: built without CUPTI; idle fraction not measured\n");
  return false;
}
inline std::vector<Interval> KernelTimeline::stop() { return {}; }
inline uint64_t KernelTimeline::now() { return 0; }
#endif

}  // namespace latentserve::bench
