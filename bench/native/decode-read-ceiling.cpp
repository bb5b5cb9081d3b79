// Why CPU paged decode sits where it does against its goal (≥ 0.7 of copy bandwidth): in one process, on one
// core, after the same cache flush each, the decode kernel (attention_core, paged, B = 1, GQA 32/8, D 128,
// page 16, pages shuffled, 128 MiB of K/V) against plain reads of the same bytes — the pages in the same
// scattered order one at a time or 4 at once (interleaved, as decode's tiles read them), and in address order —
// and a memmove of the same bytes (read + write counted, as the bench). Also what decode's arithmetic alone
// allows: the same call with every page id 0 (K/V in L2, nothing from DRAM), and the FMA ceiling (one core's
// measured FMA rate at the kernel's vector width; GQA decode does Hq·D FMAs for the scores and Hq·D for P·V per
// key, which reads 2·Hkv·D·4 bytes: here 1 byte per FMA).
// Build and run: bench/native/decode-read-ceiling.sh (LLMK_CPU_ATTN_ISA=avx2 forces the AVX2 kernel).
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cpu/attention_core.h"

namespace {

constexpr size_t PAGE_KEYS = 16, HKV = 8, HQ = 32, D = 128, NPAGES = 1024;
constexpr size_t PAGE_BYTES = PAGE_KEYS * HKV * D * 4;  // 64 KiB of K (and of V) per page

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Sum of every float of the K and V pages in `order`, 256-bit loads, 8 accumulators: `ways` consecutive pages of
// the order at a time (their K pages, then their V pages), read interleaved in 256-byte steps.
__attribute__((target("avx2"), noinline)) float read_pages(const char* k, const char* v, const std::vector<int32_t>& order,
                                                          size_t ways = 1) {
  __m256 acc[8] = {};
  for (size_t i = 0; i + ways <= order.size(); i += ways)
    for (const char* cache : {k, v})
      for (size_t b = 0; b < PAGE_BYTES; b += 256)
        for (size_t w = 0; w < ways; w++) {
          const char* base = cache + order[i + w] * PAGE_BYTES;
          for (int u = 0; u < 8; u++) acc[u] = _mm256_add_ps(acc[u], _mm256_load_ps(reinterpret_cast<const float*>(base + b + 32 * u)));
        }
  float out[8], s = 0;
  for (int u = 1; u < 8; u++) acc[0] = _mm256_add_ps(acc[0], acc[u]);
  _mm256_storeu_ps(out, acc[0]);
  for (float x : out) s += x;
  return s;
}

// Scalar FMAs per second of one core: 12 independent chains (more than FMA latency × pipes) of W-lane
// multiply-adds (GCC vector types, contracted to FMAs at -O3 in the callers' target regions).
typedef float F32x16 __attribute__((vector_size(64)));
typedef float F32x8 __attribute__((vector_size(32)));
template <class Vec, int W>
__attribute__((always_inline)) inline double fma_rate() {
  Vec acc[12], one = Vec{} + 1.f, tiny = Vec{} + 1e-7f;
  for (auto& x : acc) x = tiny;
  const long n = 50'000'000;
  const double t0 = now();
  for (long i = 0; i < n; i++)
#pragma GCC unroll 12
    for (auto& x : acc) x = x * one + tiny;
  const double t = now() - t0;
  for (int i = 1; i < 12; i++) acc[0] += acc[i];
  return double(n) * 12 * W / t * (acc[0][0] == 12345.f ? 2 : 1);  // keeps the chains
}
__attribute__((target("avx512f"), noinline)) double fma_rate_avx512() { return fma_rate<F32x16, 16>(); }
__attribute__((target("avx2,fma"), noinline)) double fma_rate_avx2() { return fma_rate<F32x8, 8>(); }

void decode(const float* q, float* out, const float* k, const float* v, const int32_t* pages) {
  llmk::cpu::AttnSeq seq;
  seq.nq = 1;
  seq.nk = NPAGES * PAGE_KEYS;
  seq.pages = pages;
  llmk::cpu::AttnCoreArgs a;
  a.Hq = HQ; a.Hkv = HKV; a.D = D; a.q = q; a.out = out; a.k = k; a.v = v;
  a.page_size = PAGE_KEYS; a.num_pages = NPAGES; a.seqs = &seq; a.nseq = 1; a.causal = true;
  a.scale = 1.f / std::sqrt(float(D));
  llmk::cpu::attention_core(a);
}

}  // namespace

int main() {
  const size_t bytes = NPAGES * PAGE_BYTES;
  std::vector<float> kc(bytes / 4, 0.5f), vc(bytes / 4, 0.25f), q(HQ * D, 0.01f), out(HQ * D);
  std::vector<char> src(2 * bytes, 1), dst(2 * bytes, 2), flush(256u << 20, 3);
  std::vector<int32_t> scattered(NPAGES), in_order(NPAGES), page0(NPAGES, 0);
  for (size_t i = 0; i < NPAGES; i++) scattered[i] = in_order[i] = int32_t(i);
  std::shuffle(scattered.begin(), scattered.end(), std::mt19937(1));
  const char* k = reinterpret_cast<const char*>(kc.data());
  const char* v = reinterpret_cast<const char*>(vc.data());
  auto timed = [&](auto&& fn) {  // one call after evicting the caches (a memmove through 256 MiB)
    std::memmove(flush.data(), flush.data() + 64, flush.size() - 64);
    const double t0 = now();
    fn();
    return now() - t0;
  };
  float sink = 0;
  const std::string isa = llmk::cpu::attention_core_isa();
  std::printf("ISA %s, 1 thread (LLMK_NUM_THREADS), 2 x %zu MiB of K/V; GB/s of K/V read (copy: read + write)\n",
              isa.c_str(), bytes >> 20);
  if (isa == "avx512" || isa == "avx2") {
    std::vector<double> arith, fmas;
    for (int rep = 0; rep < 5; rep++) {
      decode(q.data(), out.data(), kc.data(), vc.data(), page0.data());  // page 0 into L2
      const double t0 = now();
      decode(q.data(), out.data(), kc.data(), vc.data(), page0.data());
      arith.push_back(2.0 * bytes / 1e9 / (now() - t0));
      fmas.push_back((isa == "avx512" ? fma_rate_avx512() : fma_rate_avx2()) * (2.0 * HKV * D * 4) / (2.0 * HQ * D) / 1e9);
    }
    std::sort(arith.begin(), arith.end());
    std::sort(fmas.begin(), fmas.end());
    std::printf("decode's arithmetic alone (every page id 0: K/V in L2) %.1f GB/s; FMA ceiling %.1f GB/s (%.0f G FMA/s); "
                "medians of 5\n", arith[2], fmas[2], fmas[2] * (2.0 * HQ * D) / (2.0 * HKV * D * 4));
  }
  std::vector<double> dec_copy, read_copy, read4_copy;
  const int reps = 12;
  for (int rep = 0; rep < reps; rep++) {
    const double td = timed([&] { decode(q.data(), out.data(), kc.data(), vc.data(), scattered.data()); });
    const double ts = timed([&] { sink += read_pages(k, v, scattered); });
    const double t4 = timed([&] { sink += read_pages(k, v, scattered, 4); });
    const double ta = timed([&] { sink += read_pages(k, v, in_order); });
    const double tc = timed([&] { std::memmove(dst.data(), src.data(), src.size()); });
    if (rep < 2) continue;  // warm-up: thread pool, work buffers, page faults
    const double b = 2.0 * bytes / 1e9;
    std::printf("decode %5.1f | read, same page order %5.1f, 4 pages at once %5.1f | read, pages in address order %5.1f | "
                "copy %5.1f | decode/copy %.2f, read/copy %.2f, 4 at once/copy %.2f\n", b / td, b / ts, b / t4, b / ta,
                2 * b / tc, tc / (2 * td), tc / (2 * ts), tc / (2 * t4));
    dec_copy.push_back(tc / (2 * td));
    read_copy.push_back(tc / (2 * ts));
    read4_copy.push_back(tc / (2 * t4));
  }
  auto median = [](std::vector<double> x) { std::sort(x.begin(), x.end()); return x[x.size() / 2]; };
  std::printf("medians of %zu rounds: decode/copy %.2f, read in the same page order/copy %.2f, 4 pages at once/copy %.2f\n",
              dec_copy.size(), median(dec_copy), median(read_copy), median(read4_copy));
  return sink == 12345.f;  // keep the reads
}
