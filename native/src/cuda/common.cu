#include "common.cuh"
#include <mutex>
#include <vector>

namespace llmk::cuda {

int sm_count() {
  static std::mutex mu;
  static std::vector<int> counts;
  int dev = 0;
  cuda_throw_if(int(cudaGetDevice(&dev)), "cudaGetDevice");
  std::lock_guard<std::mutex> l(mu);
  if (int(counts.size()) <= dev) counts.resize(size_t(dev) + 1, 0);
  if (!counts[size_t(dev)]) {
    int n = 0;
    cuda_throw_if(int(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev)), "cudaDeviceGetAttribute");
    counts[size_t(dev)] = n;
  }
  return counts[size_t(dev)];
}

}  // namespace llmk::cuda
