// Bindings for quant (ops/int4.h): unwrap the arguments, call the op, wrap the results with their shapes.
// A checked weight (ops::Int4Weight) lives in a tagged Napi::External that ts/quant.ts's Int4Weight holds:
// made once by `weight`, used by every later call, emptied by `release` (dispose) or the GC.
#include <memory>
#include <string>
#include "common.h"
#include "../core/storage.h"
#include "../core/stream.h"
#include "../ops/int4.h"

namespace llmk::napi {
namespace {

constexpr int64_t kMaxDim = 2147483647;  // products of two dims stay far from int64 overflow

struct WeightBox {
  std::unique_ptr<ops::Int4Weight> w;  // null after release
};
using WeightExternal = Napi::External<WeightBox>;

// Tags our externals, so an external made elsewhere is refused instead of reinterpreted.
const napi_type_tag kWeightTag = {0x6c6c6d6b2d696e34ULL, 0x4a8e1f0c93d2b775ULL};

WeightBox* weight_box(const Napi::CallbackInfo& info, size_t i, const char* op) {
  Napi::Value v = i < info.Length() ? info[i] : info.Env().Undefined();
  bool tagged = false;
  if (v.IsExternal() && napi_check_object_type_tag(info.Env(), v, &kWeightTag, &tagged) != napi_ok) tagged = false;
  if (!tagged)
    throw_js(info.Env(), llmk::Error(ErrCode::Arg, std::string(op) + ": w must be an Int4Weight (from quant.quantize, an importer or quant.prepare)"));
  return v.As<WeightExternal>().Data();
}

// Argument i as a live checked weight that the op about to be queued reads: like arg_tensor, orders the
// current stream after the last use of each of its tensors (the stream contract, core/storage.h).
const ops::Int4Weight& arg_weight(const Napi::CallbackInfo& info, size_t i, const char* op) {
  WeightBox* box = weight_box(info, i, op);
  if (!box->w) throw_js(info.Env(), llmk::Error(ErrCode::Disposed, std::string(op) + ": the Int4Weight was used after dispose()"));
  const ops::Int4Weight& w = *box->w;
  guarded(info.Env(), [&] {
    for (const llmk::Tensor* t : {&w.qweight, &w.scales, &w.zeros, &w.perm, &w.inv_perm})
      if (t->defined()) t->storage()->use_on(current_stream(t->device()));
  });
  return w;
}

// weight(qweight, scales, zeros?, perm?, invPerm?, n | null, k | null, groupSize | null, prepared, op?)
//   -> [weight, n, k, groupSize, tunedLayout]. op: the public op named in messages (quant.fromCanonical, ...).
Napi::Value weight(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string op = info.Length() > 9 && info[9].IsString() ? info[9].As<Napi::String>().Utf8Value()
                                                                  : std::string("quant.Int4Weight");
  const std::string pre = op + ": ";
  const llmk::Tensor& q = peek_tensor(info, 0, (pre + "qweight").c_str());
  const llmk::Tensor& s = peek_tensor(info, 1, (pre + "scales").c_str());
  llmk::Tensor z = arg_opt_tensor(info, 2, (pre + "zeros").c_str());
  llmk::Tensor perm = arg_opt_tensor(info, 3, (pre + "perm").c_str());
  llmk::Tensor inv = arg_opt_tensor(info, 4, (pre + "invPerm").c_str());
  // n, k, groupSize: null = unknown (the op reads them from the canonical shapes).
  auto dim = [&](size_t i, const char* name, int64_t lo) {
    return i < info.Length() && info[i].IsNull() ? int64_t(-1) : arg_int(info, i, (pre + name).c_str(), lo, kMaxDim);
  };
  const int64_t n = dim(5, "n", 0), k = dim(6, "k", 0), g = dim(7, "groupSize", 1);
  const bool prepared = info[8].ToBoolean();
  return guarded(env, [&] {
    auto box = std::make_unique<WeightBox>();
    box->w = std::make_unique<ops::Int4Weight>(ops::int4_weight(q, s, z, perm, inv, n, k, g, prepared, op.c_str()));
    const ops::Int4Weight& w = *box->w;
    Napi::Array r = Napi::Array::New(env, 5);
    r.Set(1u, double(w.N));
    r.Set(2u, double(w.K));
    r.Set(3u, double(w.group));
    r.Set(4u, w.tuned);
    auto e = WeightExternal::New(env, box.release(), [](Napi::Env, WeightBox* b) { delete b; });
    NAPI_THROW_IF_FAILED(env, napi_type_tag_object(env, e, &kWeightTag), Napi::Value());
    r.Set(0u, e);
    return Napi::Value(r);
  });
}

// release(weight): drops the weight's references to its tensors now (dispose), not at garbage collection.
Napi::Value release(const Napi::CallbackInfo& info) {
  weight_box(info, 0, "Int4Weight.dispose")->w.reset();
  return info.Env().Undefined();
}

// quantize(w, group, symmetric, scaleDtypeId) -> [qweight, scales, zeros | null] as results
Napi::Value quantize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const llmk::Tensor& w = arg_tensor(info, 0, "quant.quantize: w");
  const int64_t group = arg_int(info, 1, "quant.quantize: groupSize", 1, kMaxDim);
  const bool sym = info[2].ToBoolean();
  const DType sdt = arg_dtype(info, 3);
  return guarded(env, [&] {
    const ops::Int4Parts p = ops::int4_quantize(w, group, sym, sdt);
    return wrap_results(env, {p.qweight, p.scales, p.zeros});
  });
}

// dequantize(weight, outDtypeId) -> result
Napi::Value dequantize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const ops::Int4Weight& w = arg_weight(info, 0, "quant.dequantize");
  const DType odt = arg_dtype(info, 1);
  return guarded(env, [&] { return wrap_result(env, ops::int4_dequantize(w, odt)); });
}

// prepare(weight, deviceKind, deviceIndex) -> [qweight, scales, zeros, perm, invPerm] as results (null where none)
Napi::Value prepare(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const ops::Int4Weight& w = arg_weight(info, 0, "quant.prepare");
  const llmk::Device dev = arg_device(info, 1);
  return guarded(env, [&] {
    const std::vector<llmk::Tensor> p = ops::int4_prepare(w, dev);
    return wrap_results(env, {p[0], p[1], p[2], p[3], p[4]});
  });
}

// toCanonical(weight) -> [qweight, scales, zeros | null] as results
Napi::Value to_canonical(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const ops::Int4Weight& w = arg_weight(info, 0, "Int4Weight.toCanonical");
  return guarded(env, [&] {
    const ops::Int4Parts p = ops::int4_to_canonical(w);
    return wrap_results(env, {p.qweight, p.scales, p.zeros});
  });
}

// matmul(x, weight, bias?, int8) -> result. The hot call: the weight was checked when it was made.
Napi::Value matmul(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const llmk::Tensor& x = arg_tensor(info, 0, "quant.matmul: x");
  const ops::Int4Weight& w = arg_weight(info, 1, "quant.matmul");
  llmk::Tensor bias = arg_opt_tensor(info, 2, "quant.matmul: bias");
  const bool int8 = info[3].ToBoolean();
  return guarded(env, [&] { return wrap_result(env, ops::int4_matmul(x, w, bias, int8)); });
}

// matmulPath(x, weight) -> string
Napi::Value matmul_path(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const llmk::Tensor& x = peek_tensor(info, 0, "quant.matmulPath: x");
  WeightBox* box = weight_box(info, 1, "quant.matmulPath");
  if (!box->w) throw_js(env, llmk::Error(ErrCode::Disposed, "quant.matmulPath: the Int4Weight was used after dispose()"));
  return guarded(env, [&] { return Napi::Value(Napi::String::New(env, ops::int4_matmul_path(x, *box->w))); });
}

Napi::Value dims(Napi::Env env, const ops::Int4Dims& d) {
  Napi::Array r = Napi::Array::New(env, 3);
  r.Set(0u, double(d.N));
  r.Set(1u, double(d.K));
  r.Set(2u, double(d.group));
  return r;
}

// gptqDims(qweight, qzeros, scales, gIdx?) -> [n, k, groupSize]
Napi::Value gptq_dims(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const llmk::Tensor& q = peek_tensor(info, 0, "quant.fromGptq: qweight");
  const llmk::Tensor& z = peek_tensor(info, 1, "quant.fromGptq: qzeros");
  const llmk::Tensor& s = peek_tensor(info, 2, "quant.fromGptq: scales");
  llmk::Tensor g = arg_opt_tensor(info, 3, "quant.fromGptq: gIdx");
  return guarded(env, [&] { return dims(env, ops::int4_gptq_dims(q, z, s, g)); });
}

// awqDims(qweight, qzeros, scales) -> [n, k, groupSize]
Napi::Value awq_dims(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const llmk::Tensor& q = peek_tensor(info, 0, "quant.fromAwq: qweight");
  const llmk::Tensor& z = peek_tensor(info, 1, "quant.fromAwq: qzeros");
  const llmk::Tensor& s = peek_tensor(info, 2, "quant.fromAwq: scales");
  return guarded(env, [&] { return dims(env, ops::int4_awq_dims(q, z, s)); });
}

// matmulNBitsDims(b, scales, zeroPoints?, k, n, blockSize, bits) -> [n, k, groupSize]
Napi::Value matmul_nbits_dims(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const llmk::Tensor& b = peek_tensor(info, 0, "quant.fromMatMulNBits: b");
  const llmk::Tensor& s = peek_tensor(info, 1, "quant.fromMatMulNBits: scales");
  llmk::Tensor zp = arg_opt_tensor(info, 2, "quant.fromMatMulNBits: zeroPoints");
  const int64_t k = arg_int(info, 3, "quant.fromMatMulNBits: k", 1, kMaxDim);
  const int64_t n = arg_int(info, 4, "quant.fromMatMulNBits: n", 0, kMaxDim);
  const int64_t block = arg_int(info, 5, "quant.fromMatMulNBits: blockSize", 1, kMaxDim);
  const int64_t bits = arg_int(info, 6, "quant.fromMatMulNBits: bits", 1, 64);
  return guarded(env, [&] { return dims(env, ops::int4_matmul_nbits_dims(b, s, zp, k, n, block, bits)); });
}

}  // namespace

void init_int4_binding(Napi::Env env, Napi::Object exports) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("weight", Napi::Function::New(env, weight));
  o.Set("release", Napi::Function::New(env, release));
  o.Set("quantize", Napi::Function::New(env, quantize));
  o.Set("dequantize", Napi::Function::New(env, dequantize));
  o.Set("prepare", Napi::Function::New(env, prepare));
  o.Set("toCanonical", Napi::Function::New(env, to_canonical));
  o.Set("matmul", Napi::Function::New(env, matmul));
  o.Set("matmulPath", Napi::Function::New(env, matmul_path));
  o.Set("gptqDims", Napi::Function::New(env, gptq_dims));
  o.Set("awqDims", Napi::Function::New(env, awq_dims));
  o.Set("matmulNBitsDims", Napi::Function::New(env, matmul_nbits_dims));
  exports.Set("int4", o);
}

}  // namespace llmk::napi
