// Streams: every op is enqueued on the current stream of its device and returns at once.
// CPU: an in-order queue served by one worker thread. CUDA: a cudaStream_t.
// "Current" is per JS thread (thread_local), so each worker_thread environment has its own.
#pragma once
#include <atomic>
#include <climits>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include "device.h"

namespace llmk {

class CpuStream {
 public:
  // Starts the worker thread; the worker shares ownership, so stop() never has to wait on itself.
  static std::shared_ptr<CpuStream> start();
  ~CpuStream();
  // work_bytes: about how many bytes the task touches. A tiny task on an idle stream runs at once on the
  // calling thread (handing it to the worker costs more than running it); order and error reporting
  // (at the next synchronize) are the same either way.
  void enqueue(std::function<void()> task, int64_t work_bytes = INT64_MAX);
  // Waits for every queued task; rethrows the first error a task raised since the last sync.
  void synchronize();
  // Blocks the caller until tasks queued so far ran (no rethrow). Tasks the worker has not taken yet run on
  // the calling thread (unless it is a stream worker): a caller that would wait anyway pays no hand-off.
  void drain();
  // Events: record() names the point after the tasks queued so far; query/wait test or wait for it.
  uint64_t record() const { return enqueued_.load(std::memory_order_relaxed); }
  bool query(uint64_t event) const { return completed_.load(std::memory_order_acquire) >= event; }
  void wait(uint64_t event);
  // The first error a task raised since the last synchronisation, cleared (nullptr when none).
  std::exception_ptr take_error();
  // No more tasks: the worker runs what is queued, then ends. Joins it, except on a stream worker
  // thread (a task there may hold the last reference to another stream), where it is detached.
  void stop();

 private:
  CpuStream() = default;
  void run();
  // Runs the tasks of a batch in order, for the worker or a caller in drain(); the runner set busy_ (one runner
  // at a time: those two, or enqueue()'s inline path).
  void run_batch(std::deque<std::function<void()>>& batch);
  // Ends a runner's turn (l holds mu_): clears busy_, wakes drain() waiters and, when tasks are queued or a stop
  // is pending, the worker. Returns whether drain() waiters were there.
  bool end_turn(std::unique_lock<std::mutex>& l);
  void finish_task(std::exception_ptr err);
  std::mutex mu_;
  std::condition_variable cv_task_, cv_idle_;
  std::deque<std::function<void()>> queue_;
  std::atomic<int64_t> queued_{0};  // queue_.size(), readable without the lock (worker's spin)
  std::atomic<uint64_t> enqueued_{0}, completed_{0};  // tasks ever queued / finished (in order)
  bool busy_ = false, stop_ = false, sleeping_ = false;  // busy_: a runner holds the queue's head
  int idle_waiters_ = 0;  // threads in drain()
  std::atomic<int> event_waiters_{0};  // threads in wait(): each finished task wakes them
  std::exception_ptr error_;
  std::thread worker_;
};

class CudaWaiter;

class Stream {
 public:
  static std::shared_ptr<Stream> create(Device device);  // a new, non-default stream
  ~Stream();
  Device device() const { return device_; }
  CpuStream* cpu() const { return cpu_.get(); }
  void* cuda() const { return cuda_; }  // cudaStream_t
  void synchronize();                   // also turns the device error flag into ERR_LLMK_INDEX
  // Makes work queued on this stream from now on wait for the work queued on `other` so far
  // (CPU: a task that waits for the other stream's event; CUDA: cudaStreamWaitEvent). Call on the owning thread.
  void wait_for(const std::shared_ptr<Stream>& other);
  // Runs fn(error) off the calling thread once the work queued so far is done; `error` is what
  // synchronize() would have thrown (consumed), or nullptr. CPU: a task on the stream (run inline when
  // the stream is idle and work_bytes is small); CUDA: this stream's waiter thread. fn must not throw.
  void when_done(std::function<void(std::exception_ptr)> fn, int64_t work_bytes = INT64_MAX);

 private:
  std::exception_ptr take_errors();  // CUDA error flag and the sync checks, after the work is done
  Device device_;
  std::shared_ptr<CpuStream> cpu_;
  void* cuda_ = nullptr;
  std::shared_ptr<CudaWaiter> waiter_;  // CUDA: started by the first when_done()
  std::mutex waiter_mu_;
  friend std::shared_ptr<Stream> default_stream(Device);
};

std::shared_ptr<Stream> default_stream(Device device);  // per thread
std::shared_ptr<Stream> current_stream(Device device);  // per thread
// The current stream if this thread already has one for the device, else nullptr (creates nothing).
std::shared_ptr<Stream> current_stream_if_any(Device device);
void set_current_stream(const std::shared_ptr<Stream>& s);  // nullptr-safe: resets its device to default
// Runs task on the current stream of device (CPU only; CUDA ops launch directly on current_stream).
void enqueue_cpu(std::function<void()> task, int64_t work_bytes = INT64_MAX);
void synchronize_device(Device device);
// True on the worker thread of a CPU stream (where a stream must not be waited for by joining).
bool on_stream_worker();

// Checks run after a stream synchronised, for failures that live outside the stream (dist: a failed
// NCCL communicator becomes ERR_LLMK_NCCL at the next synchronisation). Safe during static initialisation.
#define LLMK_HAVE_SYNC_CHECK 1
using SyncCheck = void (*)(Device device);
void add_sync_check(SyncCheck check);

}  // namespace llmk
