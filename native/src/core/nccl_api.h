// The part of NCCL's C API that llm-kernels uses, declared here so that nothing includes nccl.h and
// nothing links libnccl: the library is opened at run time (nccl_loader.h). Type layouts and enum
// values are those of NCCL 2.x (checked against nccl.h of NCCL 2.18 through 2.2x): ncclUniqueId is
// 128 opaque bytes, enums are C ints. Only values that have been stable since 2.18 are listed.
#pragma once
#include <cstddef>

extern "C" {

typedef struct ncclComm* ncclComm_t;

#define LLMK_NCCL_UNIQUE_ID_BYTES 128
typedef struct { char internal[LLMK_NCCL_UNIQUE_ID_BYTES]; } ncclUniqueId;

typedef enum {
  ncclSuccess = 0,
  ncclUnhandledCudaError = 1,
  ncclSystemError = 2,
  ncclInternalError = 3,
  ncclInvalidArgument = 4,
  ncclInvalidUsage = 5,
  ncclRemoteError = 6,
  ncclInProgress = 7,
  ncclTimeout = 8  // added by NCCL 2.27; older versions never return it
} ncclResult_t;

typedef enum { ncclSum = 0, ncclProd = 1, ncclMax = 2, ncclMin = 3, ncclAvg = 4 } ncclRedOp_t;

typedef enum {
  ncclInt8 = 0,
  ncclUint8 = 1,
  ncclInt32 = 2,
  ncclUint32 = 3,
  ncclInt64 = 4,
  ncclUint64 = 5,
  ncclFloat16 = 6,
  ncclFloat32 = 7,
  ncclFloat64 = 8,
  ncclBfloat16 = 9
} ncclDataType_t;

// cudaStream_t is `struct CUstream_st*`; declared opaquely so that includers need no CUDA headers.
typedef struct CUstream_st* llmk_cudaStream_t;

// Function pointer types, one per symbol we resolve (signatures as in nccl.h).
typedef ncclResult_t (*ncclGetVersion_fn)(int* version);
typedef ncclResult_t (*ncclGetUniqueId_fn)(ncclUniqueId* id);
typedef ncclResult_t (*ncclCommInitRank_fn)(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank);
typedef ncclResult_t (*ncclCommFinalize_fn)(ncclComm_t comm);
typedef ncclResult_t (*ncclCommDestroy_fn)(ncclComm_t comm);
typedef ncclResult_t (*ncclCommAbort_fn)(ncclComm_t comm);
typedef ncclResult_t (*ncclCommGetAsyncError_fn)(ncclComm_t comm, ncclResult_t* async_error);
typedef ncclResult_t (*ncclCommCount_fn)(const ncclComm_t comm, int* count);
typedef ncclResult_t (*ncclCommUserRank_fn)(const ncclComm_t comm, int* rank);
typedef const char* (*ncclGetErrorString_fn)(ncclResult_t result);
typedef const char* (*ncclGetLastError_fn)(ncclComm_t comm);
typedef ncclResult_t (*ncclAllReduce_fn)(const void* sendbuff, void* recvbuff, size_t count,
                                         ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                                         llmk_cudaStream_t stream);
typedef ncclResult_t (*ncclAllGather_fn)(const void* sendbuff, void* recvbuff, size_t sendcount,
                                         ncclDataType_t datatype, ncclComm_t comm, llmk_cudaStream_t stream);
typedef ncclResult_t (*ncclReduceScatter_fn)(const void* sendbuff, void* recvbuff, size_t recvcount,
                                             ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                                             llmk_cudaStream_t stream);
typedef ncclResult_t (*ncclBroadcast_fn)(const void* sendbuff, void* recvbuff, size_t count,
                                         ncclDataType_t datatype, int root, ncclComm_t comm,
                                         llmk_cudaStream_t stream);
typedef ncclResult_t (*ncclSend_fn)(const void* sendbuff, size_t count, ncclDataType_t datatype, int peer,
                                    ncclComm_t comm, llmk_cudaStream_t stream);
typedef ncclResult_t (*ncclRecv_fn)(void* recvbuff, size_t count, ncclDataType_t datatype, int peer,
                                    ncclComm_t comm, llmk_cudaStream_t stream);
typedef ncclResult_t (*ncclGroupStart_fn)();
typedef ncclResult_t (*ncclGroupEnd_fn)();

}  // extern "C"

// NCCL_VERSION_CODE of 2.x.y (x >= 9) is 2*10000 + x*100 + y; we need at least 2.18.0.
#define LLMK_NCCL_MIN_VERSION 21800
