/* Forced into every translation unit of the prebuilt binaries (-include, scripts/prebuild.sh) so that
 * they need at most glibc 2.28 although they are built against bullseye's 2.31: math functions that got
 * a new symbol version in 2.29 (no SVID errno wrapper; same results) bind to the version before it,
 * and libstdc++'s inline timed waits use pthread_cond_wait/timedwait-based code instead of the 2.30
 * pthread_*_clock* functions (the config header has an include guard, so the #undefs stick). */
#ifndef LLMK_GLIBC_FLOOR_H
#define LLMK_GLIBC_FLOOR_H
#if defined(__cplusplus) && defined(__has_include)
#if __has_include(<bits/c++config.h>)
#include <bits/c++config.h>
#undef _GLIBCXX_USE_PTHREAD_COND_CLOCKWAIT
#undef _GLIBCXX_USE_PTHREAD_MUTEX_CLOCKLOCK
#undef _GLIBCXX_USE_PTHREAD_RWLOCK_CLOCKLOCK
#endif
#endif
#if defined(__linux__) && !defined(__CUDA_ARCH__)
#if defined(__x86_64__)
#define LLMK_GLIBC_BASE "GLIBC_2.2.5"
#elif defined(__aarch64__)
#define LLMK_GLIBC_BASE "GLIBC_2.17"
#endif
#ifdef LLMK_GLIBC_BASE
__asm__(".symver exp,exp@" LLMK_GLIBC_BASE);
__asm__(".symver exp2,exp2@" LLMK_GLIBC_BASE);
__asm__(".symver log,log@" LLMK_GLIBC_BASE);
__asm__(".symver log2,log2@" LLMK_GLIBC_BASE);
__asm__(".symver pow,pow@" LLMK_GLIBC_BASE);
#endif
#endif
#endif
