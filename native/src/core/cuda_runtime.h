// CUDA availability and helpers usable from plain C++ (no CUDA headers needed by includers).
#pragma once
#include <string>
#include "error.h"

namespace llmk {

bool cuda_compiled();
// True when a driver and at least one device are present; otherwise *why says why not.
bool cuda_available(std::string* why);
int cuda_device_count();
void cuda_set_device(int index);
// Device memory int that kernels set to nonzero on an out-of-range index (ERR_LLMK_INDEX).
int* cuda_error_flag(int device);
// Reads and clears the flag (synchronous); throws ERR_LLMK_INDEX when it was set.
void cuda_check_error_flag(int device, void* stream);
// Throws ERR_LLMK_CUDA with the error's name when code != 0.
void cuda_throw_if(int code, const char* what);
// Copy helpers (kind chosen from devices); blocking on the given stream.
void cuda_memcpy(void* dst, const void* src, int64_t nbytes, int kind /*cudaMemcpyKind*/, void* stream);
// Synchronous copy outside any stream (for data whose writers are known to be done).
void cuda_memcpy_sync(void* dst, const void* src, int64_t nbytes, int kind);
// Stream-ordered copy that returns at once (device-to-device).
void cuda_memcpy_async(void* dst, const void* src, int64_t nbytes, int kind, void* stream);

}  // namespace llmk
