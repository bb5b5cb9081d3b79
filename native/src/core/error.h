// The one error type of the native layers. Its code becomes LlmkError.code in JavaScript.
#pragma once
#include <cstdio>
#include <stdexcept>
#include <string>

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

// printf-style message builder for checks.
template <typename... A>
std::string fmt(const char* f, A... a) {
  char buf[512];
  std::snprintf(buf, sizeof buf, f, a...);
  return buf;
}
inline std::string fmt(const char* f) { return f; }

#define LLMK_CHECK(cond, code, ...) \
  do { if (!(cond)) throw ::llmk::Error(::llmk::ErrCode::code, ::llmk::fmt(__VA_ARGS__)); } while (0)

}  // namespace llmk
