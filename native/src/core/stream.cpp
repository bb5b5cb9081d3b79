#include "stream.h"
#include <chrono>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <map>
#include <vector>
#include "cuda_runtime.h"
#include "error.h"
#ifdef LLMK_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace llmk {

CpuStream::CpuStream() : worker_([this] { run(); }) {}

CpuStream::~CpuStream() {
  { std::lock_guard<std::mutex> l(mu_); stop_ = true; }
  cv_task_.notify_one();
  worker_.join();
}

namespace {
constexpr int64_t kInlineWorkBytes = 64 * 1024;  // about 10 µs of work: less than a hand-off to the worker costs
}  // namespace

void CpuStream::enqueue(std::function<void()> task, int64_t work_bytes) {
  if (work_bytes <= kInlineWorkBytes) {
    std::unique_lock<std::mutex> l(mu_);
    if (queue_.empty() && !busy_) {
      busy_ = true;  // drain() from other threads waits for it like for a queued task
      l.unlock();
      std::exception_ptr err;
      try { task(); } catch (...) { err = std::current_exception(); }
      task = nullptr;
      l.lock();
      if (err && !error_) error_ = err;
      busy_ = false;
      bool notify = idle_waiters_ > 0;
      l.unlock();
      if (notify) cv_idle_.notify_all();
      return;
    }
  }
  bool wake;
  {
    std::lock_guard<std::mutex> l(mu_);
    queue_.push_back(std::move(task));
    queued_.fetch_add(1, std::memory_order_release);
    wake = sleeping_;  // a busy worker finds the task itself: skip the wake-up system call
  }
  if (wake) cv_task_.notify_one();
}

void CpuStream::run() {
  std::deque<std::function<void()>> batch;
  for (;;) {
    // Ops usually come in bursts: spin briefly before sleeping so that enqueue rarely pays for a wake-up.
    auto spin_end = std::chrono::steady_clock::now() + std::chrono::microseconds(50);
    while (queued_.load(std::memory_order_acquire) == 0 && std::chrono::steady_clock::now() < spin_end) {
#if defined(__x86_64__)
      _mm_pause();
#endif
    }
    {
      std::unique_lock<std::mutex> l(mu_);
      sleeping_ = true;
      cv_task_.wait(l, [&] { return stop_ || !queue_.empty(); });
      sleeping_ = false;
      if (queue_.empty()) return;  // stop requested and nothing left
      batch.swap(queue_);  // take every queued task with one lock: fewer hand-offs with the enqueuing thread
      queued_.store(0, std::memory_order_relaxed);
      busy_ = true;
    }
    std::exception_ptr err;
    while (!batch.empty()) {
      try { batch.front()(); } catch (...) { if (!err) err = std::current_exception(); }
      batch.pop_front();  // releases the task's tensors before the stream reports idle
    }
    bool notify;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (err && !error_) error_ = err;
      busy_ = false;
      notify = idle_waiters_ > 0;
    }
    if (notify) cv_idle_.notify_all();
  }
}

void CpuStream::drain() {
  std::unique_lock<std::mutex> l(mu_);
  idle_waiters_++;
  cv_idle_.wait(l, [&] { return queue_.empty() && !busy_; });
  idle_waiters_--;
}

void CpuStream::synchronize() {
  drain();
  std::exception_ptr e;
  { std::lock_guard<std::mutex> l(mu_); std::swap(e, error_); }
  if (e) std::rethrow_exception(e);
}

std::shared_ptr<Stream> Stream::create(Device device) {
  auto s = std::shared_ptr<Stream>(new Stream());
  s->device_ = device;
  if (device.is_cpu()) {
    s->cpu_ = std::make_unique<CpuStream>();
  } else {
#ifdef LLMK_WITH_CUDA
    cuda_set_device(device.index);
    cudaStream_t cs;
    cuda_throw_if(int(cudaStreamCreateWithFlags(&cs, cudaStreamNonBlocking)), "cudaStreamCreate");
    s->cuda_ = cs;
#else
    throw Error(ErrCode::Unavailable, "this build has no CUDA support");
#endif
  }
  return s;
}

Stream::~Stream() {
#ifdef LLMK_WITH_CUDA
  if (cuda_) {
    cudaSetDevice(device_.index);
    cudaStreamSynchronize(static_cast<cudaStream_t>(cuda_));
    cudaStreamDestroy(static_cast<cudaStream_t>(cuda_));
  }
#endif
}

namespace {
std::mutex& sync_checks_mu() { static std::mutex m; return m; }
std::vector<SyncCheck>& sync_checks() { static std::vector<SyncCheck> v; return v; }
}  // namespace

void add_sync_check(SyncCheck check) {
  std::lock_guard<std::mutex> l(sync_checks_mu());
  sync_checks().push_back(check);
}

void Stream::synchronize() {
  if (cpu_) {
    cpu_->synchronize();
  } else {
#ifdef LLMK_WITH_CUDA
    cuda_set_device(device_.index);
    cuda_throw_if(int(cudaStreamSynchronize(static_cast<cudaStream_t>(cuda_))), "cudaStreamSynchronize");
    cuda_check_error_flag(device_.index, cuda_);
#endif
  }
  std::vector<SyncCheck> checks;
  { std::lock_guard<std::mutex> l(sync_checks_mu()); checks = sync_checks(); }
  for (SyncCheck f : checks) f(device_);
}

namespace {
struct ThreadStreams {
  std::map<int, std::shared_ptr<Stream>> defaults, current;  // key: -1 = cpu, N = cuda:N
};
ThreadStreams& thread_streams() {
  thread_local ThreadStreams ts;
  return ts;
}
int key(Device d) { return d.is_cpu() ? -1 : d.index; }
}  // namespace

std::shared_ptr<Stream> default_stream(Device device) {
  auto& m = thread_streams().defaults;
  auto it = m.find(key(device));
  if (it != m.end()) return it->second;
  auto s = Stream::create(device);
  m[key(device)] = s;
  return s;
}

std::shared_ptr<Stream> current_stream(Device device) {
  auto& m = thread_streams().current;
  auto it = m.find(key(device));
  if (it != m.end() && it->second) return it->second;
  return default_stream(device);
}

std::shared_ptr<Stream> current_stream_if_any(Device device) {
  auto& ts = thread_streams();
  auto it = ts.current.find(key(device));
  if (it != ts.current.end() && it->second) return it->second;
  auto d = ts.defaults.find(key(device));
  return d != ts.defaults.end() ? d->second : nullptr;
}

void set_current_stream(const std::shared_ptr<Stream>& s) {
  if (s) thread_streams().current[key(s->device())] = s;
}

void enqueue_cpu(std::function<void()> task, int64_t work_bytes) {
  current_stream(Device{})->cpu()->enqueue(std::move(task), work_bytes);
}

void synchronize_device(Device device) {
  // Every stream this thread knows of on the device: the default one and the current one.
  auto& ts = thread_streams();
  std::shared_ptr<Stream> a = default_stream(device);
  auto it = ts.current.find(key(device));
  std::shared_ptr<Stream> b = it != ts.current.end() ? it->second : nullptr;
  a->synchronize();
  if (b && b != a) b->synchronize();
}

}  // namespace llmk
