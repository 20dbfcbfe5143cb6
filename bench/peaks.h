/* Peak rates of this CPU's arithmetic units, measured (the benchmarks print their figures
 * as shares of them): fma_peak, float32 FMAs (16 lanes, GCC vector types: the including
 * file builds with -march=native); dpbf16_peak, vdpbf16ps (0 without AVX512-BF16). Both in
 * GFLOP/s over `threads` threads, one per core; a loaded machine reads lower. */
#ifndef CG_BENCH_PEAKS_H
#define CG_BENCH_PEAKS_H
#include "bench_util.h"
#include <pthread.h>
#include <stdbool.h>
#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

/* ---- the FMA peak: 12 independent accumulator chains per thread (latency 4 x 2 ports
 * needs 8), kept in registers ---------------------------------------------------------- */
typedef float v16 __attribute__((vector_size(64)));
static inline void *fma_loop(void *arg) {
  long iters = *(long *)arg;
  v16 x, y, a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11;
  for (int i = 0; i < 16; i++) x[i] = 1.0f - 1e-7f * (float)i, y[i] = 1e-7f;
  a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = a8 = a9 = a10 = a11 = y;
  for (long it = 0; it < iters; it++) {
    a0 = a0 * x + y, a1 = a1 * x + y, a2 = a2 * x + y, a3 = a3 * x + y, a4 = a4 * x + y, a5 = a5 * x + y;
    a6 = a6 * x + y, a7 = a7 * x + y, a8 = a8 * x + y, a9 = a9 * x + y, a10 = a10 * x + y, a11 = a11 * x + y;
    __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5), "+v"(a6), "+v"(a7), "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11));
  }
  v16 s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
  *(long *)arg = s[0] > 1e30f; /* keep the result alive */
  return NULL;
}
static inline double fma_peak(int threads) {
  long iters = 20000000;
  pthread_t t[64];
  long args[64];
  double best = 0;
  for (int rep = 0; rep < 3; rep++) {
    double t0 = now();
    for (int i = 0; i < threads; i++) args[i] = iters, pthread_create(&t[i], NULL, fma_loop, &args[i]);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    double g = (double)threads * (double)iters * 12 * 16 * 2 / (now() - t0) * 1e-9;
    if (g > best) best = g;
  }
  return best;
}

/* ---- the bf16 unit's peak: vdpbf16ps into 24 accumulators (its latency needs 16 or more) ---- */
#if defined(__x86_64__)
#define PEAK_ITERS 4000000L
/* The 24 accumulators are named registers, not an array indexed in a loop: GCC at -O2 kept
 * such an array in memory (a load, vdpbf16ps and store per step: one step per
 * store-forwarding round trip, ~120 instead of ~550 GFLOP/s per core). */
__attribute__((target("avx512f,avx512bf16"))) static inline void *peak_thread(void *arg) {
#define Z(i) __m512 a##i = _mm512_set1_ps((float)i); /* distinct, or GCC merges them */
  Z(0) Z(1) Z(2) Z(3) Z(4) Z(5) Z(6) Z(7) Z(8) Z(9) Z(10) Z(11) Z(12) Z(13) Z(14) Z(15) Z(16) Z(17) Z(18) Z(19) Z(20) Z(21) Z(22) Z(23)
#undef Z
  __m512bh x = (__m512bh)_mm512_set1_epi32(0x3f803f80), y = (__m512bh)_mm512_set1_epi32(0x00010001);
  for (long n = 0; n < PEAK_ITERS; n++) {
#define D(i) a##i = _mm512_dpbf16_ps(a##i, x, y);
    D(0) D(1) D(2) D(3) D(4) D(5) D(6) D(7) D(8) D(9) D(10) D(11) D(12) D(13) D(14) D(15) D(16) D(17) D(18) D(19) D(20) D(21) D(22) D(23)
#undef D
    __asm__ volatile("" : "+v"(x), "+v"(y)); /* x and y unknown to the compiler: every step runs */
  }
#define S(i) + _mm512_reduce_add_ps(a##i)
  *(float *)arg = 0 S(0) S(1) S(2) S(3) S(4) S(5) S(6) S(7) S(8) S(9) S(10) S(11) S(12) S(13) S(14) S(15) S(16) S(17) S(18) S(19) S(20) S(21) S(22) S(23);
#undef S
  return NULL;
}
static inline bool has_avx512bf16(void) {
  unsigned a, b, c, d;
  if (__get_cpuid_max(0, NULL) < 7) return false;
  __cpuid_count(7, 1, a, b, c, d);
  return a & (1u << 5);
}
/* GFLOP/s of `threads` threads each running the loop; 0 without the unit */
static inline double dpbf16_peak(int threads) {
  if (!has_avx512bf16()) return 0;
  pthread_t th[64];
  float sink[64];
  double t0 = now();
  for (int i = 0; i < threads; i++) pthread_create(&th[i], NULL, peak_thread, &sink[i]);
  for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
  return threads * 24.0 * 64.0 * PEAK_ITERS / (now() - t0) * 1e-9;
}
#else
static inline double dpbf16_peak(int threads) { (void)threads; return 0; }
#endif

#endif
