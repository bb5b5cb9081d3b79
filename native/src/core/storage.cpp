#include "storage.h"
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <vector>
#include "cuda_runtime.h"
#include "error.h"
#include "stream.h"
#ifdef LLMK_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace llmk {
namespace {
struct Counters { std::atomic<int64_t> bytes{0}, blocks{0}, allocs{0}; };
Counters& counters(DeviceKind k) {
  static Counters c[2];
  return c[int(k)];
}
// Caching CPU allocator: freed blocks are kept by size class and handed out again, because fresh
// large blocks cost a page fault per 4 KiB on first touch (very slow in sandboxed VMs) and every op
// allocates its output. Size classes waste at most 25%; LLMK_CPU_CACHE_MB caps what is kept (default 1024).
class CpuCache {
 public:
  static size_t size_class(size_t n) {
    if (n <= 4096) return (n + 63) & ~size_t(63);
    size_t p = size_t(1) << (63 - __builtin_clzll(n - 1));  // largest power of two below n
    size_t step = p / 4;
    return (n + step - 1) / step * step;
  }
  void* get(size_t cls) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = free_.find(cls);
    if (it == free_.end() || it->second.empty()) return nullptr;
    void* p = it->second.back();
    it->second.pop_back();
    cached_ -= cls;
    return p;
  }
  void put(void* p, size_t cls) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (cached_ + cls <= limit_) { free_[cls].push_back(p); cached_ += cls; return; }
    }
    std::free(p);
  }
 private:
  std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_;
  size_t cached_ = 0;
  size_t limit_ = [] {
    const char* e = std::getenv("LLMK_CPU_CACHE_MB");
    long mb = e ? std::atol(e) : 1024;
    return size_t(mb < 0 ? 0 : mb) << 20;
  }();
};
CpuCache& cpu_cache() {
  static CpuCache* c = new CpuCache();  // leaked on purpose: blocks may be freed during static destruction
  return *c;
}

}  // namespace

std::shared_ptr<Storage> Storage::allocate(int64_t nbytes, Device device) {
  int64_t n = nbytes > 0 ? nbytes : 1;  // zero-size tensors still get a distinct pointer
  void* p = nullptr;
  std::shared_ptr<Stream> stream;
  if (device.is_cpu()) {
    size_t cls = CpuCache::size_class(size_t(n));  // a multiple of 64, as aligned_alloc wants
    p = cpu_cache().get(cls);
    if (!p) p = std::aligned_alloc(64, cls);
    if (!p) throw Error(ErrCode::OOM, fmt("out of CPU memory allocating %lld bytes", (long long)nbytes));
  } else {
#ifdef LLMK_WITH_CUDA
    cuda_set_device(device.index);
    stream = current_stream(device);
    cudaError_t e = cudaMallocAsync(&p, size_t(n), static_cast<cudaStream_t>(stream->cuda()));
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      throw Error(ErrCode::OOM, fmt("out of CUDA memory on %s allocating %lld bytes", device.str().c_str(), (long long)nbytes));
    }
    cuda_throw_if(int(e), "cudaMallocAsync");
#else
    throw Error(ErrCode::Unavailable, "this build has no CUDA support");
#endif
  }
  Counters& c = counters(device.kind);
  c.bytes += nbytes; c.blocks++; c.allocs++;
  // The allocating op writes it on the current stream (none on a stream worker: scratch inside a task).
  std::shared_ptr<Stream> writer = device.is_cpu() ? current_stream_if_any(device) : stream;
  auto st = std::shared_ptr<Storage>(new Storage(p, nbytes, device, std::move(stream)));
  if (writer) { st->last_ = writer; st->last_raw_ = writer.get(); }
  return st;
}

Storage::Storage(void* data, int64_t nbytes, Device device, std::shared_ptr<Stream> stream)
    : data_(data), nbytes_(nbytes), device_(device), alloc_stream_(std::move(stream)) {}

void Storage::order_after_last_use(const std::shared_ptr<Stream>& s) {
  if (std::shared_ptr<Stream> prev = last_.lock()) s->wait_for(prev);
  last_ = s;
  last_raw_ = s.get();
}

void Storage::note_use() const {
  if (device_.is_cpu()) return;
  // A thread without streams on the device (a libuv worker copying to the host on an explicit stream)
  // enqueues nothing on a current stream.
  std::shared_ptr<Stream> s = current_stream_if_any(device_);
  if (!s || s == alloc_stream_) return;
  std::lock_guard<std::mutex> l(use_mu_);
  for (const auto& w : used_on_)
    if (w.lock() == s) return;
  used_on_.push_back(s);
}

Storage::~Storage() {
  Counters& c = counters(device_.kind);
  c.bytes -= nbytes_; c.blocks--;
  if (device_.is_cpu()) { cpu_cache().put(data_, CpuCache::size_class(size_t(nbytes_ > 0 ? nbytes_ : 1))); return; }
#ifdef LLMK_WITH_CUDA
  cudaSetDevice(device_.index);
  auto alloc = static_cast<cudaStream_t>(alloc_stream_->cuda());
  for (const auto& w : used_on_) {
    std::shared_ptr<Stream> s = w.lock();
    if (!s) continue;  // destroyed streams were synchronised first
    cudaEvent_t ev;
    if (cudaEventCreateWithFlags(&ev, cudaEventDisableTiming) == cudaSuccess) {
      cudaEventRecord(ev, static_cast<cudaStream_t>(s->cuda()));
      cudaStreamWaitEvent(alloc, ev, 0);
      cudaEventDestroy(ev);  // released once the wait is done
    } else {
      cudaGetLastError();
      cudaStreamSynchronize(static_cast<cudaStream_t>(s->cuda()));
    }
  }
  cudaFreeAsync(data_, alloc);  // stream-ordered: after work queued on alloc and, through the events, elsewhere
#endif
}

AllocatorStats allocator_stats(DeviceKind kind) {
  Counters& c = counters(kind);
  return AllocatorStats{c.bytes.load(), c.blocks.load(), c.allocs.load()};
}

}  // namespace llmk
