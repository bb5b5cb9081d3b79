// Run-time loading of NCCL (dlopen, never linked). Nothing here runs when the addon loads: the
// library is searched the first time something asks for it, and a machine without NCCL only sees
// ERR_LLMK_UNAVAILABLE from the calls that need it.
//
// Search order:
//   1. LLMK_NCCL_PATH (a file, or a folder holding libnccl.so.2). When it is set, nothing else is
//      tried, so that an explicit choice is never silently replaced by another NCCL.
//   2. "libnccl.so.2" through the dynamic loader (LD_LIBRARY_PATH, ld.so.cache, ...).
//   3. The NCCL of Python's nvidia-nccl-cu12 / nvidia-nccl-cu13 wheels: <site-packages>/nvidia/nccl/lib,
//      nvidia/cu13/lib, nvidia/cu12/lib, for the site-packages folders that `python3` reports
//      (skipped when LLMK_NCCL_NO_PYTHON=1) and the usual places ($VIRTUAL_ENV, $CONDA_PREFIX,
//      /usr/local/lib/python3.*, /usr/lib/python3*, ~/.local/lib/python3.*).
// Every required symbol is resolved with dlsym and checked; versions before 2.18 are refused.
#pragma once
#include <string>
#include <vector>
#include "nccl_api.h"

namespace llmk::nccl {

struct Api {
  ncclGetVersion_fn GetVersion = nullptr;
  ncclGetUniqueId_fn GetUniqueId = nullptr;
  ncclCommInitRank_fn CommInitRank = nullptr;
  ncclCommFinalize_fn CommFinalize = nullptr;
  ncclCommDestroy_fn CommDestroy = nullptr;
  ncclCommAbort_fn CommAbort = nullptr;
  ncclCommGetAsyncError_fn CommGetAsyncError = nullptr;
  ncclCommCount_fn CommCount = nullptr;
  ncclCommUserRank_fn CommUserRank = nullptr;
  ncclGetErrorString_fn GetErrorString = nullptr;
  ncclGetLastError_fn GetLastError = nullptr;
  ncclAllReduce_fn AllReduce = nullptr;
  ncclAllGather_fn AllGather = nullptr;
  ncclReduceScatter_fn ReduceScatter = nullptr;
  ncclBroadcast_fn Broadcast = nullptr;
  ncclSend_fn Send = nullptr;
  ncclRecv_fn Recv = nullptr;
  ncclGroupStart_fn GroupStart = nullptr;
  ncclGroupEnd_fn GroupEnd = nullptr;
};

struct LoadInfo {
  bool ok = false;
  int version = 0;               // NCCL_VERSION_CODE, e.g. 22105 for 2.21.5
  std::string version_str;       // "2.21.5"
  std::string path;              // the file that was loaded (or the last one tried)
  std::string error;             // why it is unavailable (empty when ok)
  std::vector<std::string> searched;  // every candidate tried, in order, with its outcome
};

// The candidates of the search order above, in order (files and loader names).
std::vector<std::string> candidates();

// Tries the candidates in order; fills *api and keeps the library open on success.
// Never throws. Does not cache: use for diagnostics and tests (probe a given path).
LoadInfo load(const std::vector<std::string>& candidates, Api* api);

// The process-wide NCCL, loaded once on first use (thread-safe). Throws ERR_LLMK_UNAVAILABLE with
// the reason and the places searched when it cannot be loaded.
const Api& api();
// The process-wide load result (loads on first call); never throws.
const LoadInfo& info();

// "ncclSystemError" etc. for a result code.
const char* result_name(int result);
// Throws ERR_LLMK_NCCL (detail = result name) when r != ncclSuccess; the message names `what`,
// NCCL's error string and, when comm is given, ncclGetLastError.
void check(int r, const char* what, ncclComm_t comm = nullptr);

// "2.21.5" from 22105.
std::string version_string(int code);

}  // namespace llmk::nccl
