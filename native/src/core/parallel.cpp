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

// A fixed pool of workers that pull chunk indices of the current job from an atomic counter.
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
    {
      std::lock_guard<std::mutex> l(mu_);
      body_ = &body; chunks_ = chunks; next_.store(0); pending_ = chunks; error_ = nullptr; gen_++;
    }
    cv_.notify_all();
    work();
    std::unique_lock<std::mutex> l(mu_);
    done_cv_.wait(l, [&] { return pending_ == 0; });
    body_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void work() {
    for (;;) {
      int64_t c = next_.fetch_add(1);
      if (c >= chunks_) return;
      try { (*body_)(c); } catch (...) {
        std::lock_guard<std::mutex> l(mu_);
        if (!error_) error_ = std::current_exception();
      }
      std::lock_guard<std::mutex> l(mu_);
      if (--pending_ == 0) done_cv_.notify_all();
    }
  }
  void loop() {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return stop_ || (gen_ != seen && body_ != nullptr); });
        if (stop_) return;
        seen = gen_;
      }
      work();
    }
  }
  std::vector<std::thread> workers_;
  std::mutex mu_, job_mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int64_t)>* body_ = nullptr;
  int64_t chunks_ = 0, pending_ = 0;
  std::atomic<int64_t> next_{0};
  uint64_t gen_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
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
