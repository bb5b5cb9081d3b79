// CPU thread pool shared by all CPU kernels. Size: LLMK_NUM_THREADS, default = hardware cores.
#pragma once
#include <cstdint>
#include <functional>

namespace llmk {

int num_threads();

// Runs fn(begin, end) over [0, n) split into chunks of at least `grain` items, on the pool plus
// the calling thread. Exceptions thrown by fn are rethrown on the caller after all chunks end.
// Nested calls run serially on the calling thread.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace llmk
