// Collectives, the backend-independent part: reduction-op names and the contract checks of every
// collective (devices, dtypes, sizes, aliasing), done on the calling thread before a backend enqueues.
#include "dist.h"

#include <cstdint>

#include "../core/error.h"

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

bool overlaps(const Tensor& a, const Tensor& b) {
  if (a.storage() != b.storage()) return false;
  int64_t a0 = a.offset_bytes(), a1 = a0 + a.nbytes(), b0 = b.offset_bytes(), b1 = b0 + b.nbytes();
  return a0 < b1 && b0 < a1;
}
bool same_view(const Tensor& a, const Tensor& b) {
  return a.storage() == b.storage() && a.offset_bytes() == b.offset_bytes() && a.nbytes() == b.nbytes();
}

void check_comm_tensor(const Communicator& c, const Tensor& t, const char* op, const char* name) {
  LLMK_CHECK(t.defined(), Arg, "dist.%s: %s is not a tensor", op, name);
  LLMK_CHECK(t.device() == c.device(), Device, "dist.%s: %s is on %s but the communicator (%s backend) uses %s", op,
             name, t.device().str().c_str(), c.backend(), c.device().str().c_str());
}

// A given `out`: on the communicator's device, with the input's dtype.
void check_out(const Communicator& c, const Tensor& in, const Tensor& out, const char* op) {
  check_comm_tensor(c, out, op, "out");
  LLMK_CHECK(out.dtype() == in.dtype(), DType, "dist.%s: out is %s, the input %s", op, dtype_name(out.dtype()),
             dtype_name(in.dtype()));
}

// The `out` of an elementwise collective (allReduce, broadcast): in's dtype and size, and either in
// itself (in place) or a tensor that does not overlap it. Undefined: in place.
Tensor same_size_out(const Communicator& c, const Tensor& in, const Tensor& out, const char* op) {
  if (!out.defined()) return in;
  check_out(c, in, out, op);
  LLMK_CHECK(out.numel() == in.numel(), Shape, "dist.%s: out has %lld elements, the input %lld", op, out.numel(),
             in.numel());
  LLMK_CHECK(same_view(in, out) || !overlaps(in, out), Arg,
             "dist.%s: out overlaps the input without being the same tensor", op);
  return out;
}

// allGather / reduceScatter in place: when `chunk` overlaps `whole`, it must be exactly this rank's
// chunk of it.
void check_chunk_alias(const Communicator& c, const Tensor& whole, const char* whole_name, const Tensor& chunk,
                       const char* chunk_name, const char* op) {
  if (!overlaps(whole, chunk)) return;
  const bool in_place = whole.storage() == chunk.storage() &&
                        chunk.offset_bytes() == whole.offset_bytes() + c.rank() * chunk.nbytes();
  LLMK_CHECK(in_place, Arg, "dist.%s: %s overlaps %s; in place, %s must be exactly chunk %d (this rank) of %s", op,
             chunk_name, whole_name, chunk_name, c.rank(), whole_name);
}

}  // namespace

Tensor all_reduce(Communicator& c, const Tensor& in, const Tensor& out_arg, RedOp op) {
  c.check_usable("allReduce");
  check_comm_tensor(c, in, "allReduce", "the input");
  const Tensor out = same_size_out(c, in, out_arg, "allReduce");
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
    check_out(c, in, out, "allGather");
    LLMK_CHECK(out.numel() == in.numel() * p, Shape, "dist.allGather: out must have %lld elements (worldSize x input), has %lld",
               (long long)(in.numel() * p), (long long)out.numel());
    check_chunk_alias(c, out, "out", in, "the input", "allGather");
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
    check_out(c, in, out, "reduceScatter");
    LLMK_CHECK(out.numel() == m, Shape, "dist.reduceScatter: out must have %lld elements (input / worldSize), has %lld",
               (long long)m, (long long)out.numel());
    check_chunk_alias(c, in, "the input", out, "out", "reduceScatter");
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
  const Tensor out = same_size_out(c, in, out_arg, "broadcast");
  c.broadcast(in, out, root);
  return out;
}

namespace {
// The contract of send and recv: a tensor on the communicator's device and a peer rank in range.
void check_p2p(Communicator& c, const Tensor& t, int peer, const char* op) {
  c.check_usable(op);
  check_comm_tensor(c, t, op, "the tensor");
  LLMK_CHECK(peer >= 0 && peer < c.world_size(), Arg, "dist.%s: peer %d is out of range for worldSize %d", op, peer,
             c.world_size());
}
}  // namespace

void send(Communicator& c, const Tensor& t, int peer) {
  check_p2p(c, t, peer, "send");
  c.send(t, peer);
}

void recv(Communicator& c, const Tensor& t, int peer) {
  check_p2p(c, t, peer, "recv");
  c.recv(t, peer);
}

}  // namespace llmk::ops::dist
