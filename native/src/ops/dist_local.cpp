// Collectives, the `local` backend (ranks are threads of one process, CPU tensors).
//
//
// Every rank is a JS thread (worker_thread) of one process with its own CPU stream.
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
#include "../core/stream.h"

namespace llmk::ops::dist {

namespace {

using Clock = std::chrono::steady_clock;

const char kLocalMagic[8] = {'L', 'L', 'M', 'K', 'L', 'O', 'C', '1'};

uint64_t fnv1a(const unsigned char* p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++) { h ^= p[i]; h *= 0x100000001b3ull; }
  return h;
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
      fail_locked(fmt("mismatched collectives at collective #%llu of the group: rank %d called %s, rank %d called %s",
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
        fail_locked(fmt("rank %d waits in %s but rank %d left the group (%s)", rank, what.c_str(), peer,
                            activity_[size_t(peer)].c_str()),
                    "ncclRemoteError");
        throw_locked();
      }
      if (cv_.wait_until(l, deadline) == std::cv_status::timeout && !box.count(k)) {
        fail_locked(fmt("rank %d timed out after %lld ms in %s; rank %d is %s", rank, (long long)timeout_ms,
                            what.c_str(), peer, activity_[size_t(peer)].c_str()),
                    "ncclTimeout");
        throw_locked();
      }
    }
    Msg m = std::move(box[k]);
    box.erase(k);
    if (m.dtype != t.dtype() || m.count != t.numel()) {
      fail_locked(fmt("mismatched send/recv: rank %d sent %lld x %s to rank %d, which posted %s", peer,
                          (long long)m.count, dtype_name(m.dtype), rank, what.c_str()),
                  "ncclInvalidUsage");
      throw_locked();
    }
    activity_[size_t(rank)] = "idle";
    l.unlock();
    std::memcpy(t.data(), m.data.data(), m.data.size());
  }

 private:
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
          fail_locked(fmt("rank %d waits in %s (collective #%llu) but rank %d left the group (%s)", rank,
                              d.str().c_str(), (unsigned long long)k, r, activity_[size_t(r)].c_str()),
                      "ncclRemoteError");
          throw_locked();
        }
      }
      if (cv_.wait_until(l, deadline) == std::cv_status::timeout) {
        if (ready()) return;
        throw_locked();
        fail_locked(fmt("rank %d timed out after %lld ms in %s (collective #%llu); not there: %s", rank,
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
}  // namespace llmk::ops::dist
