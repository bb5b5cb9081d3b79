// The one error type of the native layers. Its code becomes LlmkError.code in JavaScript.
#pragma once
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace llmk {

enum class ErrCode {
  Arg, Shape, DType, Device, Disposed, OOM, Index, Cuda, Nccl, Unavailable, Internal
};

inline const char* err_code_name(ErrCode c) {
  switch (c) {
    case ErrCode::Arg: return "ERR_LLMK_ARG";
    case ErrCode::Shape: return "ERR_LLMK_SHAPE";
    case ErrCode::DType: return "ERR_LLMK_DTYPE";
    case ErrCode::Device: return "ERR_LLMK_DEVICE";
    case ErrCode::Disposed: return "ERR_LLMK_DISPOSED";
    case ErrCode::OOM: return "ERR_LLMK_OOM";
    case ErrCode::Index: return "ERR_LLMK_INDEX";
    case ErrCode::Cuda: return "ERR_LLMK_CUDA";
    case ErrCode::Nccl: return "ERR_LLMK_NCCL";
    case ErrCode::Unavailable: return "ERR_LLMK_UNAVAILABLE";
    case ErrCode::Internal: return "ERR_LLMK_INTERNAL";
  }
  return "ERR_LLMK_INTERNAL";
}

class Error : public std::runtime_error {
 public:
  Error(ErrCode code, const std::string& msg, std::string detail = {})
      : std::runtime_error(msg), code(code), detail(std::move(detail)) {}
  ErrCode code;
  std::string detail;  // cudaError / ncclResult name for ERR_LLMK_CUDA / ERR_LLMK_NCCL
};

// Message builder for checks: fmt(format, args...). The format's % conversions (%s %d %lld %llu %g ...)
// each take the next argument and print it by its C++ type, so no cast is needed (an int64_t under %d
// prints whole) and a wrong one cannot misread the stack; precision/width on a floating argument are
// honoured. Arguments beyond the conversions are appended in order, so fmt("k = ", k, ", got ", n) works
// too. "%%" prints % (a format without arguments is taken as is). Any length: nothing is cut.
namespace detail {
inline void fmt_piece(std::string& out, const std::string& spec, const char* v) { (void)spec; out += v ? v : "(null)"; }
inline void fmt_piece(std::string& out, const std::string& spec, const std::string& v) { (void)spec; out += v; }
inline void fmt_piece(std::string& out, const std::string& spec, char v) { (void)spec; out += v; }
inline void fmt_piece(std::string& out, const std::string& spec, bool v) { (void)spec; out += v ? "true" : "false"; }
inline void fmt_piece(std::string& out, const std::string& spec, const void* v) {
  (void)spec;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%p", v);
  out += buf;
}
template <typename T>
std::enable_if_t<std::is_integral_v<T> || std::is_enum_v<T>> fmt_piece(std::string& out, const std::string& spec, T v) {
  (void)spec;
  if constexpr (std::is_enum_v<T>) out += std::to_string(static_cast<std::underlying_type_t<T>>(v));
  else out += std::to_string(v);
}
template <typename T>
std::enable_if_t<std::is_floating_point_v<T>> fmt_piece(std::string& out, const std::string& spec, T v) {
  std::string f = spec;  // "%[flags][width][.prec]<conv>"; length modifiers dropped, conversion forced to floating
  char conv = f.empty() ? 'g' : f.back();
  if (!std::strchr("eEfFgGaA", conv)) conv = 'g';
  std::string g = "%";
  for (size_t i = 1; i + 1 < f.size(); i++)
    if (!std::strchr("hlLqjzt", f[i])) g += f[i];
  g += conv;
  const int n = std::snprintf(nullptr, 0, g.c_str(), double(v));
  std::string buf(size_t(n > 0 ? n : 0) + 1, '\0');
  std::snprintf(&buf[0], buf.size(), g.c_str(), double(v));
  buf.resize(size_t(n > 0 ? n : 0));
  out += buf;
}
template <typename T>
std::enable_if_t<std::is_pointer_v<T> && !std::is_same_v<std::decay_t<std::remove_pointer_t<T>>, char>> fmt_piece(
    std::string& out, const std::string& spec, T v) {
  fmt_piece(out, spec, static_cast<const void*>(v));
}

// Copies f up to its next conversion (handling %%) and returns that conversion's spec, or "" at the end.
inline std::string fmt_next(std::string& out, const char*& f) {
  while (*f) {
    if (*f != '%') { out += *f++; continue; }
    if (f[1] == '%') { out += '%'; f += 2; continue; }
    const char* s = f++;
    while (*f && std::strchr("-+ #0123456789.*hlLqjzt", *f)) f++;
    if (*f) f++;
    return std::string(s, size_t(f - s));
  }
  return {};
}
inline void fmt_rest(std::string& out, const char*& f) {  // conversions left without an argument stay as text
  for (std::string spec; !(spec = fmt_next(out, f)).empty();) out += spec;
}
template <typename A, typename... R>
void fmt_rest(std::string& out, const char*& f, const A& a, const R&... r) {
  fmt_piece(out, fmt_next(out, f), a);  // past the end of the format: appended as is
  fmt_rest(out, f, r...);
}
}  // namespace detail

template <typename... A>
std::string fmt(const char* f, const A&... a) {
  std::string out;
  detail::fmt_rest(out, f, a...);
  return out;
}
inline std::string fmt(const char* f) { return f; }  // no arguments: the text as is

// Throws llmk::Error(ErrCode::<code>, fmt(...)) when cond is false, e.g.
//   LLMK_CHECK(k <= E, Arg, "%s: k must be in [1, %d], got %d", op, E, k);   (int64_t prints whole)
//   LLMK_CHECK(ok, Shape, op, ": x must be 2-D, got ", shape_str(x.shape()));
#define LLMK_CHECK(cond, code, ...) \
  do { if (!(cond)) throw ::llmk::Error(::llmk::ErrCode::code, ::llmk::fmt(__VA_ARGS__)); } while (0)

}  // namespace llmk
