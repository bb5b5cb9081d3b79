// Collectives: contract checks, the `local` backend (threads of one process) and the NCCL backend.
//
// Local backend. Every rank is a JS thread (worker_thread) of one process with its own CPU stream.
// A collective is a task on that stream; the k-th collective of every rank meets in "slot k" of the
// group. The first rank to arrive records what it called (kind, op, dtype, element count, root);
// any rank that arrives with something else fails the whole group with a message naming both calls
// (no deadlock). When all ranks have arrived, each rank computes its own chunk of the result,
// reading every rank's buffer directly (one address space), then all meet again so that no rank
// reuses its input while another still reads it.
//
// Reduction order (exact and documented): for every element, acc = x[rank 0]; then for
// s = 1 .. p-1, acc = op(acc, x[rank s]); computed once and copied to every rank, so all ranks hold
// bit-identical results. float16/bfloat16/float32 accumulate in float32 (one rounding to the
// storage type at the end; no float64 anywhere); integers wrap in their own width (two's
// complement) for sum and prod; avg = (that sum) / p, in float32 for floating types and truncated
// toward zero for integers; max/min propagate NaN.
//
// Point-to-point is eager: send copies the data into the (src, dst) mailbox and returns; recv waits
// for the next message from its peer and checks its dtype and size. group() is therefore free of
// deadlocks on this backend, as NCCL's group semantics allow.
//
// Waits for peers (to arrive at a collective, to send a message) are bounded by the communicator's
// timeout; a timeout, a mismatch, an abort, or a rank that went away while others wait for it fails
// the group: ERR_LLMK_NCCL (detail ncclTimeout / ncclInvalidUsage / ncclRemoteError) at each rank's
// next synchronisation. Once every rank has arrived at a collective, every rank computes its part
// and waits, without a timeout and whatever happens meanwhile, until all have finished: each rank
// reads and writes the other ranks' buffers, so none may return (and let its buffers be freed)
// while another still uses them. That wait is for bounded work, never for a peer to show up.
#include "dist.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdarg>
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

const char* red_op_name(RedOp op) {
  switch (op) {
    case RedOp::Sum: return "sum";
    case RedOp::Prod: return "prod";
    case RedOp::Max: return "max";
    case RedOp::Min: return "min";
    case RedOp::Avg: return "avg";
  }
  return "?";
}

RedOp red_op_from_int(int v) {
  LLMK_CHECK(v >= 0 && v <= 4, Arg, "dist: unknown reduction op %d (sum, prod, max, min, avg)", v);
  return static_cast<RedOp>(v);
}

namespace {

using Clock = std::chrono::steady_clock;

const char kLocalMagic[8] = {'L', 'L', 'M', 'K', 'L', 'O', 'C', '1'};

uint64_t fnv1a(const unsigned char* p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++) { h ^= p[i]; h *= 0x100000001b3ull; }
  return h;
}

bool overlaps(const Tensor& a, const Tensor& b) {
  if (a.storage() != b.storage()) return false;
  int64_t a0 = a.offset_bytes(), a1 = a0 + a.nbytes(), b0 = b.offset_bytes(), b1 = b0 + b.nbytes();
  return a0 < b1 && b0 < a1;
}
bool same_view(const Tensor& a, const Tensor& b) {
  return a.storage() == b.storage() && a.offset_bytes() == b.offset_bytes() && a.nbytes() == b.nbytes();
}

// ---------------------------------------------------------------------------------------------
// Reductions of the local backend (see the header comment for the order).

constexpr int64_t kBlock = 1024;

void reduce_float(DType dt, RedOp op, const std::vector<const char*>& ins, const std::vector<char*>& outs,
                  int64_t begin, int64_t end) {
  const int p = int(ins.size());
  const int d = int(dt);
  float acc[kBlock];
  for (int64_t b0 = begin; b0 < end; b0 += kBlock) {
    const int64_t n = std::min(kBlock, end - b0);
    for (int64_t i = 0; i < n; i++) acc[i] = load_as_f32(ins[0], b0 + i, d);
    for (int s = 1; s < p; s++) {
      const char* in = ins[size_t(s)];
      switch (op) {
        case RedOp::Sum: case RedOp::Avg:
          for (int64_t i = 0; i < n; i++) acc[i] += load_as_f32(in, b0 + i, d);
          break;
        case RedOp::Prod:
          for (int64_t i = 0; i < n; i++) acc[i] *= load_as_f32(in, b0 + i, d);
          break;
        case RedOp::Max:
          for (int64_t i = 0; i < n; i++) {
            float x = load_as_f32(in, b0 + i, d);
            if (x > acc[i] || x != x) acc[i] = x;
          }
          break;
        case RedOp::Min:
          for (int64_t i = 0; i < n; i++) {
            float x = load_as_f32(in, b0 + i, d);
            if (x < acc[i] || x != x) acc[i] = x;
          }
          break;
      }
    }
    if (op == RedOp::Avg) {
      const float fp = float(p);
      for (int64_t i = 0; i < n; i++) acc[i] /= fp;
    }
    for (char* out : outs)
      for (int64_t i = 0; i < n; i++) store_from_f32(out, b0 + i, d, acc[i]);
  }
}

template <typename T>
void reduce_int(RedOp op, const std::vector<const char*>& ins, const std::vector<char*>& outs, int64_t begin,
                int64_t end) {
  using U = std::make_unsigned_t<T>;
  const int p = int(ins.size());
  T acc[kBlock];
  for (int64_t b0 = begin; b0 < end; b0 += kBlock) {
    const int64_t n = std::min(kBlock, end - b0);
    const T* first = reinterpret_cast<const T*>(ins[0]) + b0;
    for (int64_t i = 0; i < n; i++) acc[i] = first[i];
    for (int s = 1; s < p; s++) {
      const T* in = reinterpret_cast<const T*>(ins[size_t(s)]) + b0;
      switch (op) {
        case RedOp::Sum: case RedOp::Avg:
          for (int64_t i = 0; i < n; i++) acc[i] = T(U(U(acc[i]) + U(in[i])));
          break;
        case RedOp::Prod:
          // unsigned multiply of the promoted values, truncated: wraps like the type's own width
          for (int64_t i = 0; i < n; i++) acc[i] = T(U(uint64_t(U(acc[i])) * uint64_t(U(in[i]))));
          break;
        case RedOp::Max:
          for (int64_t i = 0; i < n; i++) acc[i] = in[i] > acc[i] ? in[i] : acc[i];
          break;
        case RedOp::Min:
          for (int64_t i = 0; i < n; i++) acc[i] = in[i] < acc[i] ? in[i] : acc[i];
          break;
      }
    }
    if (op == RedOp::Avg) {
      for (int64_t i = 0; i < n; i++) {
        if constexpr (sizeof(T) < 8) acc[i] = T(int64_t(acc[i]) / int64_t(p));
        else acc[i] = T(acc[i] / T(p));
      }
    }
    for (char* out : outs) {
      T* o = reinterpret_cast<T*>(out) + b0;
      for (int64_t i = 0; i < n; i++) o[i] = acc[i];
    }
  }
}

void reduce_range(DType dt, RedOp op, const std::vector<const char*>& ins, const std::vector<char*>& outs,
                  int64_t begin, int64_t end) {
  if (begin >= end) return;
  switch (dt) {
    case DType::F32: case DType::F16: case DType::BF16: reduce_float(dt, op, ins, outs, begin, end); break;
    case DType::I32: reduce_int<int32_t>(op, ins, outs, begin, end); break;
    case DType::I64: reduce_int<int64_t>(op, ins, outs, begin, end); break;
    case DType::I8: reduce_int<int8_t>(op, ins, outs, begin, end); break;
    case DType::U8: reduce_int<uint8_t>(op, ins, outs, begin, end); break;
  }
}

// ---------------------------------------------------------------------------------------------
// Local groups.

enum class Kind { Init, AllReduce, AllGather, ReduceScatter, Broadcast, Barrier };

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::Init: return "init";
    case Kind::AllReduce: return "allReduce";
    case Kind::AllGather: return "allGather";
    case Kind::ReduceScatter: return "reduceScatter";
    case Kind::Broadcast: return "broadcast";
    case Kind::Barrier: return "barrier";
  }
  return "?";
}

struct Desc {
  Kind kind = Kind::Barrier;
  RedOp op = RedOp::Sum;
  DType dtype = DType::F32;
  int64_t count = 0;  // elements of each rank's input
  int root = 0;
  bool operator==(const Desc& o) const {
    if (kind != o.kind) return false;
    if (kind == Kind::Init || kind == Kind::Barrier) return true;
    if (dtype != o.dtype || count != o.count) return false;
    if ((kind == Kind::AllReduce || kind == Kind::ReduceScatter) && op != o.op) return false;
    if (kind == Kind::Broadcast && root != o.root) return false;
    return true;
  }
  std::string str() const {
    std::string s = kind_name(kind);
    if (kind == Kind::Init || kind == Kind::Barrier) return s;
    s += "(";
    if (kind == Kind::AllReduce || kind == Kind::ReduceScatter) s += std::string(red_op_name(op)) + ", ";
    if (kind == Kind::Broadcast) s += "root " + std::to_string(root) + ", ";
    s += std::to_string(count) + " x " + dtype_name(dtype) + ")";
    return s;
  }
};

struct Part {
  const char* in = nullptr;
  char* out = nullptr;
  bool arrived = false;
};

struct Slot {
  bool has_desc = false;
  Desc desc;
  int desc_rank = -1;
  std::vector<Part> parts;
  int arrived = 0, done = 0, left = 0;
};

struct Msg {
  std::vector<char> data;
  DType dtype;
  int64_t count;
};

enum RankState { kAbsent = 0, kJoined = 1, kGone = 2 };

class LocalGroup {
 public:
  LocalGroup(std::string id, int world)
      : id_(std::move(id)), world_(world), state_(size_t(world), kAbsent),
        activity_(size_t(world), "not joined") {}

  int world() const { return world_; }

  void join(int rank) {
    std::lock_guard<std::mutex> l(mu_);
    LLMK_CHECK(state_[size_t(rank)] == kAbsent, Arg,
               "dist.init: rank %d already joined this local group (each rank must be used once)", rank);
    state_[size_t(rank)] = kJoined;
    activity_[size_t(rank)] = "joined";
    cv_.notify_all();
  }

  // Leaves the group: later waits for this rank fail instead of hanging.
  void leave(int rank, const std::string& why) {
    std::lock_guard<std::mutex> l(mu_);
    state_[size_t(rank)] = kGone;
    activity_[size_t(rank)] = why;
    cv_.notify_all();
  }

  void fail(const std::string& msg, const char* detail) {
    std::lock_guard<std::mutex> l(mu_);
    fail_locked(msg, detail);
  }

  std::string error() const {
    std::lock_guard<std::mutex> l(mu_);
    return failed_ ? msg_ : std::string();
  }
  std::string error_detail() const {
    std::lock_guard<std::mutex> l(mu_);
    return failed_ ? detail_ : std::string();
  }

  void throw_if_failed() const {
    std::lock_guard<std::mutex> l(mu_);
    if (failed_) throw Error(ErrCode::Nccl, msg_, detail_);
  }

  // Runs collective number k of `rank` (called on the rank's CPU stream thread). k counts the
  // rank's collectives in the order they were issued (not run), as NCCL orders them.
  template <typename Compute>
  void collective(int rank, uint64_t k, const Desc& d, const char* in, char* out, int64_t timeout_ms,
                  Compute&& compute) {
    std::unique_lock<std::mutex> l(mu_);
    throw_locked();
    Slot& s = slots_[k];
    if (s.parts.empty()) s.parts.resize(size_t(world_));
    if (!s.has_desc) {
      s.has_desc = true;
      s.desc = d;
      s.desc_rank = rank;
    } else if (!(s.desc == d)) {
      fail_locked(fmt_str("mismatched collectives at collective #%llu of the group: rank %d called %s, rank %d called %s",
                          (unsigned long long)k, s.desc_rank, s.desc.str().c_str(), rank, d.str().c_str()),
                  "ncclInvalidUsage");
      throw_locked();
    }
    s.parts[size_t(rank)] = Part{in, out, true};
    s.arrived++;
    activity_[size_t(rank)] = "waiting in " + d.str() + " (collective #" + std::to_string(k) + ")";
    cv_.notify_all();
    wait(l, timeout_ms, [&] { return s.arrived == world_; }, [&] {
      std::string missing;
      for (int r = 0; r < world_; r++)
        if (!s.parts[size_t(r)].arrived)
          missing += (missing.empty() ? "" : "; ") + ("rank " + std::to_string(r) + ": " + activity_[size_t(r)]);
      return missing;
    }, d, k, rank);
    // Every rank has arrived: from here on each one computes its part and leaves only when all have
    // finished (see the header comment), even if the group fails meanwhile.
    std::vector<Part> parts = s.parts;
    l.unlock();
    std::exception_ptr err;
    try { compute(parts); } catch (...) { err = std::current_exception(); }
    l.lock();
    if (err) fail_locked("a rank failed while computing " + d.str(), "ncclInternalError");
    s.done++;
    activity_[size_t(rank)] = "finishing " + d.str() + " (collective #" + std::to_string(k) + ")";
    cv_.notify_all();
    cv_.wait(l, [&] { return s.done == world_; });
    s.left++;
    activity_[size_t(rank)] = "idle";
    if (s.left == world_) slots_.erase(k);
    if (err) std::rethrow_exception(err);
  }

  // Message k from rank to peer (k counts the sends to that peer in issue order).
  void send(int rank, int peer, uint64_t k, const Tensor& t) {
    std::lock_guard<std::mutex> l(mu_);
    throw_locked();
    Msg m;
    m.data.assign(static_cast<const char*>(t.data()), static_cast<const char*>(t.data()) + t.nbytes());
    m.dtype = t.dtype();
    m.count = t.numel();
    mail_[{rank, peer}][k] = std::move(m);
    cv_.notify_all();
  }

  void recv(int rank, int peer, uint64_t k, const Tensor& t, int64_t timeout_ms) {
    std::unique_lock<std::mutex> l(mu_);
    throw_locked();
    auto& box = mail_[{peer, rank}];
    const std::string what = "recv(from rank " + std::to_string(peer) + ", " + std::to_string(t.numel()) + " x " +
                             dtype_name(t.dtype()) + ")";
    activity_[size_t(rank)] = "waiting in " + what;
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      throw_locked();
      if (box.count(k)) break;
      if (state_[size_t(peer)] == kGone) {
        fail_locked(fmt_str("rank %d waits in %s but rank %d left the group (%s)", rank, what.c_str(), peer,
                            activity_[size_t(peer)].c_str()),
                    "ncclRemoteError");
        throw_locked();
      }
      if (cv_.wait_until(l, deadline) == std::cv_status::timeout && !box.count(k)) {
        fail_locked(fmt_str("rank %d timed out after %lld ms in %s; rank %d is %s", rank, (long long)timeout_ms,
                            what.c_str(), peer, activity_[size_t(peer)].c_str()),
                    "ncclTimeout");
        throw_locked();
      }
    }
    Msg m = std::move(box[k]);
    box.erase(k);
    if (m.dtype != t.dtype() || m.count != t.numel()) {
      fail_locked(fmt_str("mismatched send/recv: rank %d sent %lld x %s to rank %d, which posted %s", peer,
                          (long long)m.count, dtype_name(m.dtype), rank, what.c_str()),
                  "ncclInvalidUsage");
      throw_locked();
    }
    activity_[size_t(rank)] = "idle";
    l.unlock();
    std::memcpy(t.data(), m.data.data(), m.data.size());
  }

 private:
  __attribute__((format(printf, 1, 2))) static std::string fmt_str(const char* f, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, f);
    std::vsnprintf(buf, sizeof buf, f, ap);
    va_end(ap);
    return buf;
  }

  void fail_locked(const std::string& msg, const char* detail) {
    if (!failed_) {
      failed_ = true;
      msg_ = "dist (local backend): " + msg;
      detail_ = detail;
    }
    cv_.notify_all();
  }
  void throw_locked() const {
    if (failed_) throw Error(ErrCode::Nccl, msg_, detail_);
  }

  template <typename Ready, typename Describe>
  void wait(std::unique_lock<std::mutex>& l, int64_t timeout_ms, Ready ready, Describe describe, const Desc& d,
            uint64_t k, int rank) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      if (ready()) return;  // first: once all ranks arrived, every one must take part (no early exit)
      throw_locked();
      Slot& s = slots_[k];
      for (int r = 0; r < world_; r++) {
        if (state_[size_t(r)] == kGone && !s.parts[size_t(r)].arrived) {
          fail_locked(fmt_str("rank %d waits in %s (collective #%llu) but rank %d left the group (%s)", rank,
                              d.str().c_str(), (unsigned long long)k, r, activity_[size_t(r)].c_str()),
                      "ncclRemoteError");
          throw_locked();
        }
      }
      if (cv_.wait_until(l, deadline) == std::cv_status::timeout) {
        if (ready()) return;
        throw_locked();
        fail_locked(fmt_str("rank %d timed out after %lld ms in %s (collective #%llu); not there: %s", rank,
                            (long long)timeout_ms, d.str().c_str(), (unsigned long long)k, describe().c_str()),
                    "ncclTimeout");
        throw_locked();
      }
    }
  }

  std::string id_;
  int world_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int> state_;
  std::vector<std::string> activity_;
  std::map<uint64_t, Slot> slots_;
  std::map<std::pair<int, int>, std::map<uint64_t, Msg>> mail_;
  bool failed_ = false;
  std::string msg_, detail_;
};

std::mutex g_registry_mu;
std::map<std::string, std::weak_ptr<LocalGroup>> g_registry;

std::shared_ptr<LocalGroup> local_group(const std::string& id, int world) {
  std::lock_guard<std::mutex> l(g_registry_mu);
  for (auto it = g_registry.begin(); it != g_registry.end();) {
    if (it->second.expired()) it = g_registry.erase(it);
    else ++it;
  }
  auto it = g_registry.find(id);
  if (it != g_registry.end()) {
    auto g = it->second.lock();
    LLMK_CHECK(g->world() == world, Arg,
               "dist.init: worldSize %d differs from the worldSize %d the other ranks of this unique id gave", world,
               g->world());
    return g;
  }
  auto g = std::make_shared<LocalGroup>(id, world);
  g_registry[id] = g;
  return g;
}

class LocalComm : public Communicator, public std::enable_shared_from_this<LocalComm> {
 public:
  LocalComm(std::shared_ptr<LocalGroup> g, int rank, int64_t timeout_ms)
      : g_(std::move(g)), rank_(rank), timeout_ms_(timeout_ms), send_seq_(size_t(g_->world()), 0),
        recv_seq_(size_t(g_->world()), 0) {}
  ~LocalComm() override {
    if (!destroyed_) {
      if (pending_->load() > 0) {
        g_->fail("rank " + std::to_string(rank_) + " went away (its communicator was released) with " +
                     std::to_string(pending_->load()) + " operation(s) pending",
                 "ncclRemoteError");
      }
      g_->leave(rank_, "gone (communicator released without destroy)");
    }
  }

  const char* backend() const override { return "local"; }
  int rank() const override { return rank_; }
  int world_size() const override { return g_->world(); }
  Device device() const override { return Device{}; }

  void check_usable(const char* op) const override {
    LLMK_CHECK(!destroyed_, Arg, "dist.%s: the communicator was destroyed", op);
    g_->throw_if_failed();
  }

  void start() {
    g_->join(rank_);
    next_coll_ = 1;  // collective #0 is the init rendezvous
    auto g = g_;
    auto st = init_;
    int rank = rank_;
    int64_t tmo = timeout_ms_;
    run([g, st, rank, tmo] {
      try {
        Desc d;
        d.kind = Kind::Init;
        g->collective(rank, 0, d, nullptr, nullptr, tmo, [](const std::vector<Part>&) {});
        std::lock_guard<std::mutex> l(st->mu);
        st->done = true;
      } catch (const Error& e) {
        std::lock_guard<std::mutex> l(st->mu);
        st->done = true;
        st->error = std::make_unique<Error>(e);
      }
    });
  }

  int poll_ready() override {
    std::lock_guard<std::mutex> l(init_->mu);
    if (!init_->done) return 0;
    if (init_->error) throw *init_->error;
    return 1;
  }

  void all_reduce(const Tensor& in, const Tensor& out, RedOp op) override {
    Desc d{Kind::AllReduce, op, in.dtype(), in.numel(), 0};
    collective(d, in, out, [d](int rank, int p, const std::vector<Part>& parts) {
      // rank's chunk of [0, n): n/p elements, one more for the first n%p ranks (no overflow for any n)
      const int64_t n = d.count, q = n / p, rem = n % p;
      const int64_t b = rank * q + std::min<int64_t>(rank, rem), e = b + q + (rank < rem ? 1 : 0);
      std::vector<const char*> ins;
      std::vector<char*> outs;
      for (auto& pt : parts) { ins.push_back(pt.in); outs.push_back(pt.out); }
      reduce_range(d.dtype, d.op, ins, outs, b, e);
    });
  }

  void reduce_scatter(const Tensor& in, const Tensor& out, RedOp op) override {
    Desc d{Kind::ReduceScatter, op, in.dtype(), in.numel(), 0};
    collective(d, in, out, [d](int rank, int p, const std::vector<Part>& parts) {
      const int64_t m = d.count / p, es = int64_t(dtype_size(d.dtype));
      std::vector<const char*> ins;
      for (auto& pt : parts) ins.push_back(pt.in + rank * m * es);
      std::vector<char*> outs{parts[size_t(rank)].out};
      reduce_range(d.dtype, d.op, ins, outs, 0, m);
    });
  }

  void all_gather(const Tensor& in, const Tensor& out) override {
    Desc d{Kind::AllGather, RedOp::Sum, in.dtype(), in.numel(), 0};
    collective(d, in, out, [d](int rank, int p, const std::vector<Part>& parts) {
      const int64_t nb = d.count * int64_t(dtype_size(d.dtype));
      char* o = parts[size_t(rank)].out;
      for (int s = 0; s < p; s++) {
        char* dst = o + s * nb;
        if (dst != parts[size_t(s)].in && nb) std::memcpy(dst, parts[size_t(s)].in, size_t(nb));
      }
    });
  }

  void broadcast(const Tensor& in, const Tensor& out, int root) override {
    Desc d{Kind::Broadcast, RedOp::Sum, in.dtype(), in.numel(), root};
    collective(d, in, out, [d](int rank, int, const std::vector<Part>& parts) {
      const int64_t nb = d.count * int64_t(dtype_size(d.dtype));
      const char* src = parts[size_t(d.root)].in;
      char* dst = parts[size_t(rank)].out;
      if (dst != src && nb) std::memcpy(dst, src, size_t(nb));
    });
  }

  void barrier() override {
    Desc d{Kind::Barrier, RedOp::Sum, DType::U8, 0, 0};
    collective(d, Tensor(), Tensor(), [](int, int, const std::vector<Part>&) {});
  }

  void send(const Tensor& t, int peer) override {
    auto g = g_;
    int rank = rank_;
    const uint64_t k = send_seq_[size_t(peer)]++;
    run([g, t, rank, peer, k] { g->send(rank, peer, k, t); });
  }

  void recv(const Tensor& t, int peer) override {
    auto g = g_;
    int rank = rank_;
    int64_t tmo = timeout_ms_;
    const uint64_t k = recv_seq_[size_t(peer)]++;
    run([g, t, rank, peer, k, tmo] { g->recv(rank, peer, k, t, tmo); });
  }

  void group_start() override { group_depth_++; }
  void group_end() override {
    LLMK_CHECK(group_depth_ > 0, Arg, "dist: groupEnd without groupStart");
    group_depth_--;
  }

  void destroy() override {
    if (destroyed_) return;
    destroyed_ = true;
    auto g = g_;
    int rank = rank_;
    run([g, rank] { g->leave(rank, "destroyed its communicator"); });
  }

  void abort(const std::string& why) override {
    g_->fail("rank " + std::to_string(rank_) + " aborted the communicator" + (why.empty() ? "" : ": " + why),
             "ncclRemoteError");
    if (!destroyed_) {
      destroyed_ = true;
      g_->leave(rank_, "aborted");
    }
  }

  std::string error() const override { return g_->error(); }
  std::string error_detail() const override { return g_->error_detail(); }

 private:
  struct InitState {
    std::mutex mu;
    bool done = false;
    std::unique_ptr<Error> error;
  };

  // Enqueues fn on the current CPU stream, counting it as pending until it ran.
  void run(std::function<void()> fn) {
    auto pending = pending_;
    pending->fetch_add(1);
    enqueue_cpu([fn = std::move(fn), pending] {
      struct Done { std::shared_ptr<std::atomic<int64_t>> p; ~Done() { p->fetch_sub(1); } } done{pending};
      fn();
    });
  }

  template <typename F>
  void collective(const Desc& d, const Tensor& in, const Tensor& out, F compute) {
    auto g = g_;
    int rank = rank_;
    int64_t tmo = timeout_ms_;
    const uint64_t k = next_coll_++;
    // in/out are captured by value: their storage lives until the task ran.
    run([g, d, in, out, rank, k, tmo, compute] {
      const char* ip = in.defined() ? static_cast<const char*>(in.data()) : nullptr;
      char* op = out.defined() ? static_cast<char*>(out.data()) : nullptr;
      const int p = g->world();
      g->collective(rank, k, d, ip, op, tmo, [&](const std::vector<Part>& parts) { compute(rank, p, parts); });
    });
  }

  std::shared_ptr<LocalGroup> g_;
  int rank_;
  int64_t timeout_ms_;
  bool destroyed_ = false;
  int group_depth_ = 0;
  uint64_t next_coll_ = 0;                      // issue order of collectives (JS thread only)
  std::vector<uint64_t> send_seq_, recv_seq_;   // issue order of sends / recvs per peer
  std::shared_ptr<InitState> init_ = std::make_shared<InitState>();
  std::shared_ptr<std::atomic<int64_t>> pending_ = std::make_shared<std::atomic<int64_t>>(0);
};

// ---------------------------------------------------------------------------------------------
// NCCL backend.

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

void check_comm_tensor(const Communicator& c, const Tensor& t, const char* op, const char* name) {
  LLMK_CHECK(t.defined(), Arg, "dist.%s: %s is not a tensor", op, name);
  LLMK_CHECK(t.device() == c.device(), Device, "dist.%s: %s is on %s but the communicator (%s backend) uses %s", op,
             name, t.device().str().c_str(), c.backend(), c.device().str().c_str());
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::string check_local_id(const std::string& id) {
  if (id.size() != size_t(kUniqueIdBytes))
    return "a unique id has " + std::to_string(kUniqueIdBytes) + " bytes, this one has " + std::to_string(id.size());
  if (std::memcmp(id.data(), kLocalMagic, 8) != 0)
    return "this unique id was not made for the local backend (use dist.uniqueId({ backend: 'local' }))";
  const auto* p = reinterpret_cast<const unsigned char*>(id.data());
  uint64_t h = fnv1a(p, 120), stored = 0;
  for (int i = 0; i < 8; i++) stored |= uint64_t(p[120 + i]) << (8 * i);
  if (h != stored) return "this unique id is corrupted (its checksum does not match)";
  return "";
}

bool is_local_id(const std::string& id) {
  return id.size() == size_t(kUniqueIdBytes) && std::memcmp(id.data(), kLocalMagic, 8) == 0;
}

std::shared_ptr<Communicator> init_local(const std::string& id, int rank, int world, int64_t timeout_ms) {
  LLMK_CHECK(world >= 1 && world <= 4096, Arg, "dist.init: worldSize must be in [1, 4096], got %d", world);
  LLMK_CHECK(rank >= 0 && rank < world, Arg, "dist.init: rank %d is out of range for worldSize %d", rank, world);
  LLMK_CHECK(timeout_ms > 0, Arg, "dist.init: timeoutMs must be positive");
  timeout_ms = std::min(timeout_ms, kMaxTimeoutMs);
  std::string why = check_local_id(id);
  LLMK_CHECK(why.empty(), Arg, "dist.init: bad unique id: %s", why.c_str());
  auto g = local_group(id, world);
  auto c = std::make_shared<LocalComm>(g, rank, timeout_ms);
  c->start();
  return c;
}

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

Tensor all_reduce(Communicator& c, const Tensor& in, const Tensor& out_arg, RedOp op) {
  c.check_usable("allReduce");
  check_comm_tensor(c, in, "allReduce", "the input");
  Tensor out = out_arg;
  if (out.defined()) {
    check_comm_tensor(c, out, "allReduce", "out");
    LLMK_CHECK(out.dtype() == in.dtype(), DType, "dist.allReduce: out is %s, the input %s", dtype_name(out.dtype()),
               dtype_name(in.dtype()));
    LLMK_CHECK(out.numel() == in.numel(), Shape, "dist.allReduce: out has %lld elements, the input %lld",
               (long long)out.numel(), (long long)in.numel());
    LLMK_CHECK(same_view(in, out) || !overlaps(in, out), Arg,
               "dist.allReduce: out overlaps the input without being the same tensor");
  } else {
    out = in;
  }
  c.all_reduce(in, out, op);
  return out;
}

Tensor all_gather(Communicator& c, const Tensor& in, const Tensor& out_arg) {
  c.check_usable("allGather");
  check_comm_tensor(c, in, "allGather", "the input");
  const int p = c.world_size();
  Tensor out = out_arg;
  LLMK_CHECK(in.numel() <= INT64_MAX / p, Shape, "dist.allGather: the output would be too large");
  if (out.defined()) {
    check_comm_tensor(c, out, "allGather", "out");
    LLMK_CHECK(out.dtype() == in.dtype(), DType, "dist.allGather: out is %s, the input %s", dtype_name(out.dtype()),
               dtype_name(in.dtype()));
    LLMK_CHECK(out.numel() == in.numel() * p, Shape, "dist.allGather: out must have %lld elements (worldSize x input), has %lld",
               (long long)(in.numel() * p), (long long)out.numel());
    if (overlaps(in, out)) {
      const bool in_place = in.storage() == out.storage() &&
                            in.offset_bytes() == out.offset_bytes() + c.rank() * in.nbytes();
      LLMK_CHECK(in_place, Arg,
                 "dist.allGather: the input overlaps out; in place, the input must be exactly chunk %d (this rank) of out",
                 c.rank());
    }
  } else {
    Shape s = in.shape();
    if (s.empty()) s = {int64_t(p)};
    else s[0] *= p;
    out = Tensor::empty(s, in.dtype(), in.device());
  }
  c.all_gather(in, out);
  return out;
}

Tensor reduce_scatter(Communicator& c, const Tensor& in, const Tensor& out_arg, RedOp op) {
  c.check_usable("reduceScatter");
  check_comm_tensor(c, in, "reduceScatter", "the input");
  const int p = c.world_size();
  LLMK_CHECK(in.numel() % p == 0, Shape, "dist.reduceScatter: the input has %lld elements, not a multiple of worldSize %d",
             (long long)in.numel(), p);
  const int64_t m = in.numel() / p;
  Tensor out = out_arg;
  if (out.defined()) {
    check_comm_tensor(c, out, "reduceScatter", "out");
    LLMK_CHECK(out.dtype() == in.dtype(), DType, "dist.reduceScatter: out is %s, the input %s",
               dtype_name(out.dtype()), dtype_name(in.dtype()));
    LLMK_CHECK(out.numel() == m, Shape, "dist.reduceScatter: out must have %lld elements (input / worldSize), has %lld",
               (long long)m, (long long)out.numel());
    if (overlaps(in, out)) {
      const bool in_place = in.storage() == out.storage() &&
                            out.offset_bytes() == in.offset_bytes() + c.rank() * out.nbytes();
      LLMK_CHECK(in_place, Arg,
                 "dist.reduceScatter: out overlaps the input; in place, out must be exactly chunk %d (this rank) of the input",
                 c.rank());
    }
  } else {
    Shape s = in.shape();
    if (!s.empty() && s[0] % p == 0) s[0] /= p;
    else s = {m};
    out = Tensor::empty(s, in.dtype(), in.device());
  }
  c.reduce_scatter(in, out, op);
  return out;
}

Tensor broadcast(Communicator& c, const Tensor& in, const Tensor& out_arg, int root) {
  c.check_usable("broadcast");
  check_comm_tensor(c, in, "broadcast", "the input");
  LLMK_CHECK(root >= 0 && root < c.world_size(), Arg, "dist.broadcast: root %d is out of range for worldSize %d", root,
             c.world_size());
  Tensor out = out_arg;
  if (out.defined()) {
    check_comm_tensor(c, out, "broadcast", "out");
    LLMK_CHECK(out.dtype() == in.dtype(), DType, "dist.broadcast: out is %s, the input %s", dtype_name(out.dtype()),
               dtype_name(in.dtype()));
    LLMK_CHECK(out.numel() == in.numel(), Shape, "dist.broadcast: out has %lld elements, the input %lld",
               (long long)out.numel(), (long long)in.numel());
    LLMK_CHECK(same_view(in, out) || !overlaps(in, out), Arg,
               "dist.broadcast: out overlaps the input without being the same tensor");
  } else {
    out = in;
  }
  c.broadcast(in, out, root);
  return out;
}

void send(Communicator& c, const Tensor& t, int peer) {
  c.check_usable("send");
  check_comm_tensor(c, t, "send", "the tensor");
  LLMK_CHECK(peer >= 0 && peer < c.world_size(), Arg, "dist.send: peer %d is out of range for worldSize %d", peer,
             c.world_size());
  c.send(t, peer);
}

void recv(Communicator& c, const Tensor& t, int peer) {
  c.check_usable("recv");
  check_comm_tensor(c, t, "recv", "the tensor");
  LLMK_CHECK(peer >= 0 && peer < c.world_size(), Arg, "dist.recv: peer %d is out of range for worldSize %d", peer,
             c.world_size());
  c.recv(t, peer);
}

}  // namespace llmk::ops::dist
