// Device-side timing for benchmarks.
#pragma once
#include <functional>
#include "../core/device.h"

namespace llmk::ops {

// Milliseconds per call of `enqueue` (which enqueues work on the current stream of `device`).
// CUDA: events around `iters` calls, or around `iters` replays of a graph captured from one call
// (use_graph; the captured work must free what it allocates). CPU: host clock until the stream drained.
double time_on_device(Device device, int iters, bool use_graph, const std::function<void()>& enqueue);

}  // namespace llmk::ops
