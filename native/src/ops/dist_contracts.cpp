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

}  // namespace

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
