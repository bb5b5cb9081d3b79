// Collectives over a communicator (docs/architecture.md §4.4): the `local` backend (ranks are threads of one
// process, CPU tensors) and the `nccl` backend (NCCL opened at run time, CUDA tensors).
//
// Every collective is checked completely on the calling thread, then enqueued on the current stream
// of the tensor's device and returns at once. Failures that only show while the collective runs
// (a peer that never arrives, mismatched collectives, NCCL asynchronous errors, a timeout) raise
// ERR_LLMK_NCCL at the next synchronisation; the communicator then stays failed and every later
// call on it throws that error at once.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include "../core/tensor.h"

namespace llmk::ops::dist {

enum class RedOp : int { Sum = 0, Prod = 1, Max = 2, Min = 3, Avg = 4 };
const char* red_op_name(RedOp op);
RedOp red_op_from_int(int v);  // ERR_LLMK_ARG when out of range

constexpr int kUniqueIdBytes = 128;
// Longer timeouts are clamped to this (2^40 ms, about 35 years): a deadline of now + timeout in
// steady_clock nanoseconds overflows int64 from about 9.2e12 ms on, and an overflowed deadline lies
// in the past, so a "practically infinite" timeout failed every wait at once.
constexpr int64_t kMaxTimeoutMs = int64_t(1) << 40;

// Local-backend unique ids: "LLMKLOC1" + 112 random bytes + 8-byte FNV-1a checksum of the rest.
// Returns "" when the id is valid, else why not.
std::string check_local_id(const std::string& id);
bool is_local_id(const std::string& id);

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual const char* backend() const = 0;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual Device device() const = 0;
  // Throws the communicator's error if it failed (ERR_LLMK_NCCL), or ERR_LLMK_ARG after destroy.
  virtual void check_usable(const char* op) const = 0;

  // The ops below assume contracts were checked (see the free functions); they only enqueue.
  virtual void all_reduce(const Tensor& in, const Tensor& out, RedOp op) = 0;
  virtual void all_gather(const Tensor& in, const Tensor& out) = 0;
  virtual void reduce_scatter(const Tensor& in, const Tensor& out, RedOp op) = 0;
  virtual void broadcast(const Tensor& in, const Tensor& out, int root) = 0;
  virtual void send(const Tensor& t, int peer) = 0;
  virtual void recv(const Tensor& t, int peer) = 0;
  virtual void barrier() = 0;  // enqueues a rendezvous of all ranks; completion shows at sync
  virtual void group_start() = 0;
  virtual void group_end() = 0;
  // Polls initialisation: 1 ready, 0 still in progress; throws the failure.
  virtual int poll_ready() = 0;
  // Graceful end: enqueued after the work already queued; later calls throw ERR_LLMK_ARG.
  virtual void destroy() = 0;
  // Immediate end: fails every rank's pending and future collectives of this communicator.
  virtual void abort(const std::string& why) = 0;
  // "" while healthy; else the error message (for status reporting without throwing).
  virtual std::string error() const = 0;
  // The NCCL result name of that error ("ncclTimeout", ...), "" while healthy.
  virtual std::string error_detail() const = 0;
};

// Local backend: joins (or creates) the group named by `id` at once and enqueues, on the current
// CPU stream, the wait for all `world` ranks (poll_ready() or a synchronisation reports it).
std::shared_ptr<Communicator> init_local(const std::string& id, int rank, int world, int64_t timeout_ms);

// NCCL backend: loads NCCL (ERR_LLMK_UNAVAILABLE), checks the device, and starts
// ncclCommInitRank on a helper thread; poll_ready() reports when it is done.
std::shared_ptr<Communicator> init_nccl(const std::string& id, int rank, int world, Device device,
                                        int64_t timeout_ms);
// ncclGetUniqueId (ERR_LLMK_UNAVAILABLE without NCCL).
std::string nccl_unique_id();

// Contract checks + enqueue. `out` may be undefined (allocated here); the result is returned.
// allReduce: out has in's shape (out == in: in place).
Tensor all_reduce(Communicator& c, const Tensor& in, const Tensor& out, RedOp op);
// allGather: out is [world·d0, ...] of in (a 0-d in gives [world]); in place when
// in is exactly out's chunk `rank`.
Tensor all_gather(Communicator& c, const Tensor& in, const Tensor& out);
// reduceScatter: in.numel % world == 0; out is [d0/world, ...] when d0 % world == 0, else
// [numel/world]; in place when out is exactly in's chunk `rank`.
Tensor reduce_scatter(Communicator& c, const Tensor& in, const Tensor& out, RedOp op);
// broadcast: out has in's shape (out == in: in place); on every rank `in` is the send buffer of root.
Tensor broadcast(Communicator& c, const Tensor& in, const Tensor& out, int root);
void send(Communicator& c, const Tensor& t, int peer);
void recv(Communicator& c, const Tensor& t, int peer);

}  // namespace llmk::ops::dist
