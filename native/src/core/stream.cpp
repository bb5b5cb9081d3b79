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

namespace {
thread_local bool tl_stream_worker = false;
constexpr int64_t kInlineWorkBytes = 64 * 1024;  // about 10 µs of work: less than a hand-off to the worker costs
}  // namespace

bool on_stream_worker() { return tl_stream_worker; }
std::exception_ptr sync_check_errors(Device device);  // the registered sync checks' first error

std::shared_ptr<CpuStream> CpuStream::start() {
  std::shared_ptr<CpuStream> s(new CpuStream());
  s->worker_ = std::thread([self = s] { tl_stream_worker = true; self->run(); });
  return s;
}

void CpuStream::stop() {
  { std::lock_guard<std::mutex> l(mu_); stop_ = true; }
  cv_task_.notify_one();
  if (!worker_.joinable()) return;
  if (on_stream_worker()) worker_.detach();  // the worker owns the queue and ends once it drained it
  else worker_.join();
}

CpuStream::~CpuStream() {
  if (worker_.joinable()) worker_.detach();  // only reached on the worker itself, after stop()
}

void CpuStream::finish_task(std::exception_ptr err) {
  completed_.fetch_add(1);  // seq_cst, with event_waiters_ below: a waiter either is counted or sees it
  if (err) {
    std::lock_guard<std::mutex> l(mu_);
    if (!error_) error_ = err;
  }
  // A stream waiting for this event must wake now, not at the end of the batch: a later task of the
  // batch may itself wait for that stream (cross-stream fences in both directions).
  if (event_waiters_.load() > 0) {
    { std::lock_guard<std::mutex> l(mu_); }
    cv_idle_.notify_all();
  }
}

void CpuStream::enqueue(std::function<void()> task, int64_t work_bytes) {
  enqueued_.fetch_add(1, std::memory_order_relaxed);
  if (work_bytes <= kInlineWorkBytes) {
    std::unique_lock<std::mutex> l(mu_);
    if (queue_.empty() && !busy_) {
      busy_ = true;  // drain() from other threads waits for it like for a queued task
      l.unlock();
      std::exception_ptr err;
      try { task(); } catch (...) { err = std::current_exception(); }
      task = nullptr;
      finish_task(err);
      l.lock();
      end_turn(l);
      return;
    }
  }
  bool wake;
  {
    std::lock_guard<std::mutex> l(mu_);
    queue_.push_back(std::move(task));
    queued_.fetch_add(1, std::memory_order_release);
    wake = sleeping_ && !busy_;  // a busy worker finds the task itself; another runner wakes it at its end
  }
  if (wake) cv_task_.notify_one();
}

void CpuStream::run_batch(std::deque<std::function<void()>>& batch) {
  while (!batch.empty()) {
    std::exception_ptr err;
    try { batch.front()(); } catch (...) { err = std::current_exception(); }
    batch.pop_front();  // releases the task's tensors before the stream reports idle
    finish_task(err);   // per task: a later task (when_done) sees the errors before it
  }
}

bool CpuStream::end_turn(std::unique_lock<std::mutex>& l) {
  busy_ = false;
  const bool waiters = idle_waiters_ > 0, worker = sleeping_ && (stop_ || !queue_.empty());
  l.unlock();
  if (waiters) cv_idle_.notify_all();
  if (worker) cv_task_.notify_one();
  return waiters;
}

void CpuStream::run() {
  std::deque<std::function<void()>> batch;
  bool spin = true;
  for (;;) {
    // Ops usually come in bursts: spin briefly before sleeping so that enqueue rarely pays for a wake-up.
    // Not after a batch that a caller waited for (drain): that caller's next task usually comes with its next
    // wait, and it runs the task itself if the worker sleeps (one wake-up instead of two hand-offs and the
    // spin: an empty task queued and waited for cost 16-17 µs of CPU, now 6-7, on the 2-core Zen 5 VM).
    auto spin_end = std::chrono::steady_clock::now() + std::chrono::microseconds(spin ? 50 : 0);
    while (queued_.load(std::memory_order_acquire) == 0 && std::chrono::steady_clock::now() < spin_end) {
#if defined(__x86_64__)
      _mm_pause();
#endif
    }
    {
      std::unique_lock<std::mutex> l(mu_);
      sleeping_ = true;
      cv_task_.wait(l, [&] { return !busy_ && (stop_ || !queue_.empty()); });
      sleeping_ = false;
      if (queue_.empty()) return;  // stop requested and nothing left
      batch.swap(queue_);  // take every queued task with one lock: fewer hand-offs with the enqueuing thread
      queued_.store(0, std::memory_order_relaxed);
      busy_ = true;
    }
    run_batch(batch);
    std::unique_lock<std::mutex> l(mu_);
    spin = !end_turn(l);
  }
}

void CpuStream::drain() {
  const bool may_run = !on_stream_worker();  // a stream worker only waits (its own stream's order)
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    if (queue_.empty() && !busy_) return;
    if (may_run && !busy_) {  // queued tasks that no one runs yet: run them here instead of waiting for the worker
      std::deque<std::function<void()>> batch;
      batch.swap(queue_);
      queued_.store(0, std::memory_order_relaxed);
      busy_ = true;
      l.unlock();
      // As on the worker: a task that drops the last reference to another stream detaches its worker instead of
      // joining it (that stream may wait for a later task of this batch), and a nested drain() only waits.
      const bool was_worker = tl_stream_worker;
      tl_stream_worker = true;
      run_batch(batch);
      tl_stream_worker = was_worker;
      l.lock();
      end_turn(l);
      l.lock();
      continue;
    }
    idle_waiters_++;
    cv_idle_.wait(l, [&] { return !busy_ && (may_run || queue_.empty()); });
    idle_waiters_--;
  }
}

void CpuStream::wait(uint64_t event) {
  if (query(event)) return;
  std::unique_lock<std::mutex> l(mu_);
  event_waiters_++;
  cv_idle_.wait(l, [&] { return completed_.load() >= event; });  // finish_task wakes it
  event_waiters_--;
}

std::exception_ptr CpuStream::take_error() {
  std::exception_ptr e;
  std::lock_guard<std::mutex> l(mu_);
  std::swap(e, error_);
  return e;
}

void CpuStream::synchronize() {
  drain();
  if (std::exception_ptr e = take_error()) std::rethrow_exception(e);
}

// CUDA: one thread per stream that waits for events recorded on it and runs the completions in order,
// so a wait for one stream never delays another stream's (a collective may depend on it). The thread
// shares ownership of the waiter and uses no Stream, so it can outlive the stream (stop() on a worker).
class CudaWaiter {
 public:
  static std::shared_ptr<CudaWaiter> start(Device device) {
    std::shared_ptr<CudaWaiter> w(new CudaWaiter(device));
    w->thread_ = std::thread([self = w] { tl_stream_worker = true; self->run(); });
    return w;
  }
  ~CudaWaiter() { if (thread_.joinable()) thread_.detach(); }  // only reached on its own thread
  void push(void* event, std::function<void(std::exception_ptr)> fn) {
    { std::lock_guard<std::mutex> l(mu_); jobs_.push_back({event, std::move(fn)}); }
    cv_.notify_one();
  }
  void stop() {  // runs the completions still waiting, then ends
    { std::lock_guard<std::mutex> l(mu_); stop_ = true; }
    cv_.notify_one();
    if (on_stream_worker()) thread_.detach();
    else thread_.join();
  }

 private:
  explicit CudaWaiter(Device device) : device_(device) {}
  struct Job { void* event; std::function<void(std::exception_ptr)> fn; };
  void run();
  Device device_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  bool stop_ = false;
  std::thread thread_;
};

void CudaWaiter::run() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return stop_ || !jobs_.empty(); });
      if (jobs_.empty()) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    std::exception_ptr err;
#ifdef LLMK_WITH_CUDA
    cudaSetDevice(device_.index);
    auto ev = static_cast<cudaEvent_t>(job.event);
    cudaError_t e = cudaEventSynchronize(ev);
    cudaEventDestroy(ev);
    try {
      cuda_throw_if(int(e), "cudaEventSynchronize");
      cuda_check_error_flag(device_.index, nullptr);  // the work is done: read the flag on the null stream
    } catch (...) {
      err = std::current_exception();
    }
    if (!err) err = sync_check_errors(device_);
#endif
    job.fn(err);
  }
}

std::shared_ptr<Stream> Stream::create(Device device) {
  auto s = std::shared_ptr<Stream>(new Stream());
  s->device_ = device;
  if (device.is_cpu()) {
    s->cpu_ = CpuStream::start();
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
  if (cpu_) cpu_->stop();
  if (waiter_) waiter_->stop();  // runs the completions still waiting
#ifdef LLMK_WITH_CUDA
  if (cuda_) {
    cudaSetDevice(device_.index);
    cudaStreamSynchronize(static_cast<cudaStream_t>(cuda_));
    cudaStreamDestroy(static_cast<cudaStream_t>(cuda_));
  }
#endif
}

void Stream::wait_for(const std::shared_ptr<Stream>& other) {
  if (!other || other.get() == this) return;
  if (cpu_) {
    CpuStream* o = other->cpu();
    uint64_t ev = o->record();
    if (o->query(ev)) return;  // its work is done: nothing to wait for
    cpu_->enqueue([other, ev] { other->cpu()->wait(ev); });
    return;
  }
#ifdef LLMK_WITH_CUDA
  cudaEvent_t ev;
  cuda_set_device(device_.index);
  cuda_throw_if(int(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming)), "cudaEventCreate");
  cudaError_t e = cudaEventRecord(ev, static_cast<cudaStream_t>(other->cuda()));
  if (e == cudaSuccess) e = cudaStreamWaitEvent(static_cast<cudaStream_t>(cuda_), ev, 0);
  cudaEventDestroy(ev);  // released once the wait is done
  cuda_throw_if(int(e), "cudaStreamWaitEvent");
#endif
}

void Stream::when_done(std::function<void(std::exception_ptr)> fn, int64_t work_bytes) {
  if (cpu_) {
    CpuStream* c = cpu_.get();  // the task runs on this stream: it must not own the stream
    cpu_->enqueue([c, fn = std::move(fn), dev = device_] {
      std::exception_ptr err = c->take_error();
      if (!err) err = sync_check_errors(dev);
      fn(err);
    }, work_bytes);
    return;
  }
#ifdef LLMK_WITH_CUDA
  cuda_set_device(device_.index);
  cudaEvent_t ev;
  cuda_throw_if(int(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming)), "cudaEventCreate");
  cudaError_t e = cudaEventRecord(ev, static_cast<cudaStream_t>(cuda_));
  if (e != cudaSuccess) { cudaEventDestroy(ev); cuda_throw_if(int(e), "cudaEventRecord"); }
  std::lock_guard<std::mutex> l(waiter_mu_);
  if (!waiter_) waiter_ = CudaWaiter::start(device_);
  waiter_->push(ev, std::move(fn));
#else
  (void)work_bytes;
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
#endif
  }
  if (std::exception_ptr e = take_errors()) std::rethrow_exception(e);
}

std::exception_ptr sync_check_errors(Device device) {
  try {
    std::vector<SyncCheck> checks;
    { std::lock_guard<std::mutex> l(sync_checks_mu()); checks = sync_checks(); }
    for (SyncCheck f : checks) f(device);
  } catch (...) {
    return std::current_exception();
  }
  return nullptr;
}

std::exception_ptr Stream::take_errors() {
#ifdef LLMK_WITH_CUDA
  if (cuda_) {
    try { cuda_check_error_flag(device_.index, cuda_); } catch (...) { return std::current_exception(); }
  }
#endif
  return sync_check_errors(device_);
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
