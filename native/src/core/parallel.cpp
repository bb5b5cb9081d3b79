#include "parallel.h"
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace llmk {
namespace {

// A fixed pool of workers. Each parallel_for is a Job living on the caller's stack; workers join it under
// the lock (counted in active_) and the caller returns only when every chunk ran and every worker that
// joined has left, so no worker can touch a finished job (or start on the next one with a stale index).
class Pool {
 public:
  explicit Pool(int n) {
    for (int i = 0; i < n - 1; i++) workers_.emplace_back([this] { loop(); });
  }
  ~Pool() {
    { std::lock_guard<std::mutex> l(mu_); stop_ = true; }
    cv_.notify_all();
    for (auto& w : workers_) w.join();
  }
  int size() const { return int(workers_.size()) + 1; }

  void run(int64_t chunks, const std::function<void(int64_t)>& body) {
    std::lock_guard<std::mutex> job_lock(job_mu_);  // one job at a time (callers from several streams)
    Job job{&body, chunks, {0}, chunks, nullptr};
    {
      std::lock_guard<std::mutex> l(mu_);
      job_ = &job;
      gen_++;
    }
    cv_.notify_all();
    work(job);
    std::unique_lock<std::mutex> l(mu_);
    done_cv_.wait(l, [&] { return job.pending == 0 && active_ == 0; });
    job_ = nullptr;
    if (job.error) std::rethrow_exception(job.error);
  }

 private:
  struct Job {
    const std::function<void(int64_t)>* body;
    int64_t chunks;
    std::atomic<int64_t> next;
    int64_t pending;  // guarded by mu_
    std::exception_ptr error;  // guarded by mu_
  };

  void work(Job& job) {
    for (;;) {
      int64_t c = job.next.fetch_add(1);
      if (c >= job.chunks) return;
      std::exception_ptr err;
      try { (*job.body)(c); } catch (...) { err = std::current_exception(); }
      std::lock_guard<std::mutex> l(mu_);
      if (err && !job.error) job.error = err;
      if (--job.pending == 0) done_cv_.notify_all();
    }
  }
  void loop() {
    uint64_t seen = 0;
    for (;;) {
      Job* job;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return stop_ || (gen_ != seen && job_ != nullptr); });
        if (stop_) return;
        seen = gen_;
        job = job_;
        active_++;
      }
      work(*job);
      std::lock_guard<std::mutex> l(mu_);
      if (--active_ == 0) done_cv_.notify_all();
    }
  }
  std::vector<std::thread> workers_;
  std::mutex mu_, job_mu_;
  std::condition_variable cv_, done_cv_;
  Job* job_ = nullptr;
  int active_ = 0;
  uint64_t gen_ = 0;
  bool stop_ = false;
};

int configured_threads() {
  const char* e = std::getenv("LLMK_NUM_THREADS");
  int n = e ? std::atoi(e) : 0;
  if (n <= 0) n = int(std::max(1u, std::thread::hardware_concurrency()));
  return std::min(n, 256);
}

Pool& pool() {
  static Pool* p = new Pool(configured_threads());  // leaked on purpose: no join at static destruction
  return *p;
}

thread_local bool in_parallel = false;

}  // namespace

int num_threads() { return pool().size(); }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  int threads = num_threads();
  int64_t chunks = std::min<int64_t>((n + grain - 1) / grain, int64_t(threads) * 4);
  if (chunks <= 1 || threads == 1 || in_parallel) { fn(0, n); return; }
  int64_t per = (n + chunks - 1) / chunks;
  chunks = (n + per - 1) / per;
  std::function<void(int64_t)> body = [&](int64_t c) {
    bool was = in_parallel; in_parallel = true;
    struct Reset { bool w; ~Reset() { in_parallel = w; } } reset{was};
    int64_t b = c * per, e = std::min(n, b + per);
    fn(b, e);
  };
  pool().run(chunks, body);
}

}  // namespace llmk
