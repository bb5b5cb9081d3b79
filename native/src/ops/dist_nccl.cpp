// Collectives, the `nccl` backend: NCCL loaded at run time (core/nccl_loader), CUDA tensors, one
// communicator per device, its errors polled by a watchdog thread and raised at the next synchronisation.
#include "dist.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#include "../core/cuda_runtime.h"
#include "../core/half.h"
#include "../core/nccl_loader.h"
#include "../core/stream.h"
#ifdef LLMK_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace llmk::ops::dist {

namespace {

using Clock = std::chrono::steady_clock;

#ifdef LLMK_WITH_CUDA

ncclDataType_t nccl_dtype(DType t) {
  switch (t) {
    case DType::F32: return ncclFloat32;
    case DType::F16: return ncclFloat16;
    case DType::BF16: return ncclBfloat16;
    case DType::I32: return ncclInt32;
    case DType::I64: return ncclInt64;
    case DType::I8: return ncclInt8;
    case DType::U8: return ncclUint8;
  }
  return ncclFloat32;
}

class NcclComm;
// Live NCCL communicators, for the synchronisation check below.
std::mutex g_nccl_mu;
std::vector<std::weak_ptr<NcclComm>> g_nccl_comms;

class NcclComm : public Communicator, public std::enable_shared_from_this<NcclComm> {
 public:
  // Raises (once per communicator) the error of a failed communicator on `device`, so that a plain
  // synchronize() of the device reports ERR_LLMK_NCCL instead of returning after an abort.
  static void sync_check(Device device) {
    std::vector<std::shared_ptr<NcclComm>> live;
    {
      std::lock_guard<std::mutex> l(g_nccl_mu);
      for (auto it = g_nccl_comms.begin(); it != g_nccl_comms.end();) {
        if (auto c = it->lock()) { live.push_back(c); ++it; }
        else it = g_nccl_comms.erase(it);
      }
    }
    for (auto& c : live) {
      if (c->dev_ != device) continue;
      std::lock_guard<std::mutex> l(c->mu_);
      if (!c->err_.empty() && !c->sync_reported_) {
        c->sync_reported_ = true;
        throw Error(ErrCode::Nccl, c->err_, c->err_detail_);
      }
    }
  }

  NcclComm(const std::string& id, int rank, int world, Device dev, int64_t timeout_ms)
      : api_(nccl::api()), rank_(rank), world_(world), dev_(dev), timeout_ms_(timeout_ms) {
    init_ = std::make_shared<InitState>();
    init_->start = Clock::now();
    auto st = init_;
    const nccl::Api* api = &api_;
    ncclUniqueId uid;
    std::memcpy(uid.internal, id.data(), sizeof uid.internal);
    int index = dev.index;
    std::thread([st, api, uid, rank, world, index] {
      ncclComm_t c = nullptr;
      int r = int(cudaSetDevice(index));
      std::string err;
      if (r != 0) {
        err = std::string("cudaSetDevice failed: ") + cudaGetErrorName(cudaError_t(r));
      } else {
        r = api->CommInitRank(&c, world, uid, rank);
        if (r != 0) {
          err = std::string("ncclCommInitRank failed: ") + nccl::result_name(r);
          const char* s = api->GetErrorString(ncclResult_t(r));
          if (s) err += std::string(" (") + s + ")";
          c = nullptr;
        }
      }
      std::lock_guard<std::mutex> l(st->mu);
      if (st->abandoned) {  // the caller gave up (timeout): nobody will use it
        if (c) api->CommAbort(c);
        return;
      }
      st->done = true;
      st->comm = c;
      st->result = r;
      st->error = err;
    }).detach();
  }

  ~NcclComm() override {
    stop_watchdog();
    std::lock_guard<std::mutex> l(mu_);
    abort_locked();
    if (init_) {
      std::lock_guard<std::mutex> li(init_->mu);
      init_->abandoned = true;
      if (init_->comm) {  // initialised but never polled
        api_.CommAbort(init_->comm);
        init_->comm = nullptr;
      }
    }
  }

  const char* backend() const override { return "nccl"; }
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  Device device() const override { return dev_; }

  void check_usable(const char* op) const override {
    std::lock_guard<std::mutex> l(mu_);
    check_usable_locked(op);
  }

  std::string error() const override {
    std::lock_guard<std::mutex> l(mu_);
    return err_;
  }
  std::string error_detail() const override {
    std::lock_guard<std::mutex> l(mu_);
    return err_detail_;
  }

  int poll_ready() override {
    std::lock_guard<std::mutex> l(mu_);
    if (comm_) return 1;
    if (!err_.empty()) throw Error(ErrCode::Nccl, err_, err_detail_);
    std::lock_guard<std::mutex> li(init_->mu);
    if (!init_->done) {
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - init_->start).count();
      if (ms > timeout_ms_) {
        init_->abandoned = true;
        set_error_locked("dist.init (nccl): ncclCommInitRank did not complete within " + std::to_string(timeout_ms_) +
                             " ms (do all " + std::to_string(world_) + " ranks call init with the same unique id?)",
                         "ncclTimeout");
        throw Error(ErrCode::Nccl, err_, err_detail_);
      }
      return 0;
    }
    if (!init_->comm) {
      set_error_locked("dist.init (nccl): " + init_->error, nccl::result_name(init_->result));
      throw Error(ErrCode::Nccl, err_, err_detail_);
    }
    comm_ = init_->comm;
    init_->comm = nullptr;
    watchdog_ = std::thread([this] { watch(); });
    {
      std::lock_guard<std::mutex> lr(g_nccl_mu);  // order: mu_, then g_nccl_mu
      g_nccl_comms.push_back(weak_from_this());
    }
    return 1;
  }

  void all_reduce(const Tensor& in, const Tensor& out, RedOp op) override {
    enqueue("allReduce", in.device(), [&](cudaStream_t s) {
      return api_.AllReduce(in.data(), out.data(), size_t(in.numel()), nccl_dtype(in.dtype()), ncclRedOp_t(int(op)),
                            comm_, reinterpret_cast<llmk_cudaStream_t>(s));
    });
  }
  void all_gather(const Tensor& in, const Tensor& out) override {
    enqueue("allGather", in.device(), [&](cudaStream_t s) {
      return api_.AllGather(in.data(), out.data(), size_t(in.numel()), nccl_dtype(in.dtype()), comm_,
                            reinterpret_cast<llmk_cudaStream_t>(s));
    });
  }
  void reduce_scatter(const Tensor& in, const Tensor& out, RedOp op) override {
    enqueue("reduceScatter", in.device(), [&](cudaStream_t s) {
      return api_.ReduceScatter(in.data(), out.data(), size_t(out.numel()), nccl_dtype(in.dtype()),
                                ncclRedOp_t(int(op)), comm_, reinterpret_cast<llmk_cudaStream_t>(s));
    });
  }
  void broadcast(const Tensor& in, const Tensor& out, int root) override {
    enqueue("broadcast", in.device(), [&](cudaStream_t s) {
      return api_.Broadcast(in.data(), out.data(), size_t(in.numel()), nccl_dtype(in.dtype()), root, comm_,
                            reinterpret_cast<llmk_cudaStream_t>(s));
    });
  }
  void send(const Tensor& t, int peer) override {
    enqueue("send", t.device(), [&](cudaStream_t s) {
      return api_.Send(t.data(), size_t(t.numel()), nccl_dtype(t.dtype()), peer, comm_,
                       reinterpret_cast<llmk_cudaStream_t>(s));
    });
  }
  void recv(const Tensor& t, int peer) override {
    enqueue("recv", t.device(), [&](cudaStream_t s) {
      return api_.Recv(t.data(), size_t(t.numel()), nccl_dtype(t.dtype()), peer, comm_,
                       reinterpret_cast<llmk_cudaStream_t>(s));
    });
  }
  void barrier() override {
    if (!scratch_.defined()) scratch_ = Tensor::empty({1}, DType::I32, dev_);
    Tensor t = scratch_;
    enqueue("barrier", dev_, [&](cudaStream_t s) {
      return api_.AllReduce(t.data(), t.data(), 1, ncclInt32, ncclSum, comm_, reinterpret_cast<llmk_cudaStream_t>(s));
    });
  }

  void group_start() override {
    std::lock_guard<std::mutex> l(mu_);
    check_usable_locked("group");
    nccl::check(api_.GroupStart(), "ncclGroupStart");
    group_depth_++;
  }
  void group_end() override {
    std::lock_guard<std::mutex> l(mu_);
    LLMK_CHECK(group_depth_ > 0, Arg, "dist: groupEnd without groupStart");
    group_depth_--;
    int r = api_.GroupEnd();
    if (r != 0) {
      set_error_locked(std::string("ncclGroupEnd failed: ") + nccl::result_name(r), nccl::result_name(r));
      nccl::check(r, "ncclGroupEnd", comm_);
    }
    if (group_depth_ == 0) {
      for (void* s : group_streams_) record_locked("group", static_cast<cudaStream_t>(s));
      group_streams_.clear();
    }
  }

  void destroy() override {
    stop_watchdog();
    std::lock_guard<std::mutex> l(mu_);
    if (destroyed_) return;
    destroyed_ = true;
    if (!comm_) return;
    if (!err_.empty()) {
      abort_locked();
      return;
    }
    int r = api_.CommFinalize(comm_);
    int r2 = api_.CommDestroy(comm_);
    comm_ = nullptr;
    release_events();
    nccl::check(r, "ncclCommFinalize");
    nccl::check(r2, "ncclCommDestroy");
  }

  void abort(const std::string& why) override {
    stop_watchdog();
    std::lock_guard<std::mutex> l(mu_);
    if (err_.empty()) set_error_locked("dist: communicator aborted" + (why.empty() ? "" : ": " + why), "ncclRemoteError");
    destroyed_ = true;
    abort_locked();
    if (init_) {
      std::lock_guard<std::mutex> li(init_->mu);
      init_->abandoned = true;
    }
  }

 private:
  struct InitState {
    std::mutex mu;
    Clock::time_point start;
    bool done = false, abandoned = false;
    ncclComm_t comm = nullptr;
    int result = 0;
    std::string error;
  };
  struct Pending {
    cudaEvent_t ev;
    const char* what;
    Clock::time_point t0;
  };

  void check_usable_locked(const char* op) const {
    LLMK_CHECK(!destroyed_, Arg, "dist.%s: the communicator was destroyed", op);
    if (!err_.empty()) throw Error(ErrCode::Nccl, err_, err_detail_);
    LLMK_CHECK(comm_ != nullptr, Arg, "dist.%s: the communicator is not initialised yet (await dist.init)", op);
  }

  void set_error_locked(const std::string& msg, const std::string& detail) {
    if (err_.empty()) {
      err_ = msg;
      err_detail_ = detail;
    }
  }

  template <typename F>
  void enqueue(const char* what, Device dev, F call) {
    std::lock_guard<std::mutex> l(mu_);
    check_usable_locked(what);
    cuda_set_device(dev.index);
    cudaStream_t s = static_cast<cudaStream_t>(current_stream(dev)->cuda());
    int r = call(s);
    if (r != 0) {
      std::string m = std::string("dist.") + what + ": NCCL returned " + nccl::result_name(r);
      const char* es = api_.GetErrorString(ncclResult_t(r));
      if (es) m += std::string(" (") + es + ")";
      const char* le = api_.GetLastError(comm_);
      if (le && *le) m += std::string(": ") + le;
      if (r != ncclInvalidArgument && r != ncclInvalidUsage) set_error_locked(m, nccl::result_name(r));
      throw Error(ErrCode::Nccl, m, nccl::result_name(r));
    }
    if (group_depth_ > 0) {
      if (std::find(group_streams_.begin(), group_streams_.end(), (void*)s) == group_streams_.end())
        group_streams_.push_back(s);
    } else {
      record_locked(what, s);
    }
  }

  // Called with mu_ held. Events come from a pool (creating one per call costs more than the call).
  void record_locked(const char* what, cudaStream_t s) {
    cudaEvent_t ev = nullptr;
    {
      std::lock_guard<std::mutex> lp(pend_mu_);
      if (!free_events_.empty()) {
        ev = free_events_.back();
        free_events_.pop_back();
      }
    }
    if (!ev) cuda_throw_if(int(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming)), "cudaEventCreate");
    cuda_throw_if(int(cudaEventRecord(ev, s)), "cudaEventRecord");
    std::lock_guard<std::mutex> lp(pend_mu_);
    pending_.push_back(Pending{ev, what, Clock::now()});
  }

  // Watchdog: asynchronous NCCL errors and operations that take longer than the timeout abort the
  // communicator (which also unblocks its kernels); the error is reported by the next call or sync.
  // Completed operations are retired under pend_mu_ only, one at a time, so that enqueueing never
  // waits long for the watchdog.
  void watch() {
    cudaSetDevice(dev_.index);
    for (;;) {
      {
        std::unique_lock<std::mutex> l(wd_mu_);
        wd_cv_.wait_for(l, std::chrono::milliseconds(5), [&] { return wd_stop_; });
        if (wd_stop_) return;
      }
      {
        std::lock_guard<std::mutex> l(mu_);
        if (!comm_) continue;
        ncclResult_t ae = ncclSuccess;
        int r = api_.CommGetAsyncError(comm_, &ae);
        if (r == 0 && ae != ncclSuccess && ae != ncclInProgress) {
          std::string m = std::string("dist (nccl): asynchronous NCCL error ") + nccl::result_name(ae);
          const char* le = api_.GetLastError(comm_);
          if (le && *le) m += std::string(": ") + le;
          set_error_locked(m, nccl::result_name(ae));
          abort_locked();
          continue;
        }
      }
      std::string fail, detail;
      for (;;) {
        std::lock_guard<std::mutex> lp(pend_mu_);
        if (pending_.empty()) break;
        const Pending p = pending_.front();
        cudaError_t q = cudaEventQuery(p.ev);
        if (q == cudaSuccess) {
          free_events_.push_back(p.ev);
          pending_.pop_front();
          continue;
        }
        if (q != cudaErrorNotReady) {
          fail = std::string("dist (nccl): ") + p.what + " failed on the device: " + cudaGetErrorName(q);
          detail = "ncclUnhandledCudaError";
        } else if (std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - p.t0).count() > timeout_ms_) {
          fail = std::string("dist (nccl): ") + p.what + " did not complete within " + std::to_string(timeout_ms_) +
                 " ms (a peer is gone or did not call it); communicator aborted";
          detail = "ncclTimeout";
        }
        break;
      }
      if (!fail.empty()) {
        std::lock_guard<std::mutex> l(mu_);
        set_error_locked(fail, detail);
        abort_locked();
      }
    }
  }

  void abort_locked() {
    if (comm_) {
      api_.CommAbort(comm_);
      comm_ = nullptr;
    }
    release_events();
  }

  void release_events() {
    std::lock_guard<std::mutex> lp(pend_mu_);
    for (auto& p : pending_) cudaEventDestroy(p.ev);
    pending_.clear();
    for (auto e : free_events_) cudaEventDestroy(e);
    free_events_.clear();
  }

  void stop_watchdog() {
    {
      std::lock_guard<std::mutex> l(wd_mu_);
      wd_stop_ = true;
    }
    wd_cv_.notify_all();
    if (watchdog_.joinable()) watchdog_.join();
  }

  const nccl::Api& api_;
  int rank_, world_;
  Device dev_;
  int64_t timeout_ms_;
  mutable std::mutex mu_;
  ncclComm_t comm_ = nullptr;
  bool destroyed_ = false;
  int group_depth_ = 0;
  std::vector<void*> group_streams_;
  std::mutex pend_mu_;  // guards pending_ and free_events_ (taken after mu_, never before it)
  std::deque<Pending> pending_;
  std::vector<cudaEvent_t> free_events_;
  std::string err_, err_detail_;
  bool sync_reported_ = false;
  std::shared_ptr<InitState> init_;
  Tensor scratch_;
  std::thread watchdog_;
  std::mutex wd_mu_;
  std::condition_variable wd_cv_;
  bool wd_stop_ = false;
};

#if defined(LLMK_HAVE_SYNC_CHECK)
// core/stream.h runs registered checks after a device's streams synchronised.
const bool g_nccl_sync_check_registered = [] {
  add_sync_check(&NcclComm::sync_check);
  return true;
}();
#endif

#endif  // LLMK_WITH_CUDA

}  // namespace

std::shared_ptr<Communicator> init_nccl(const std::string& id, int rank, int world, Device device,
                                        int64_t timeout_ms) {
  LLMK_CHECK(world >= 1, Arg, "dist.init: worldSize must be >= 1, got %d", world);
  LLMK_CHECK(rank >= 0 && rank < world, Arg, "dist.init: rank %d is out of range for worldSize %d", rank, world);
  LLMK_CHECK(timeout_ms > 0, Arg, "dist.init: timeoutMs must be positive");
  timeout_ms = std::min(timeout_ms, kMaxTimeoutMs);
  LLMK_CHECK(id.size() == size_t(kUniqueIdBytes), Arg, "dist.init: a unique id has %d bytes, this one has %d",
             kUniqueIdBytes, int(id.size()));
  LLMK_CHECK(!is_local_id(id), Arg, "dist.init: this unique id was made for the local backend, not for nccl");
  LLMK_CHECK(device.is_cuda(), Device, "dist.init: the nccl backend needs a CUDA device, got %s",
             device.str().c_str());
#ifdef LLMK_WITH_CUDA
  nccl::api();  // ERR_LLMK_UNAVAILABLE with the places searched
  return std::make_shared<NcclComm>(id, rank, world, device, timeout_ms);
#else
  nccl::api();
  throw Error(ErrCode::Unavailable, "dist.init: this build of llm-kernels has no CUDA support (the nccl backend needs it)");
#endif
}

std::string nccl_unique_id() {
  const nccl::Api& a = nccl::api();
  ncclUniqueId uid;
  nccl::check(a.GetUniqueId(&uid), "ncclGetUniqueId");
  return std::string(uid.internal, sizeof uid.internal);
}
}  // namespace llmk::ops::dist
