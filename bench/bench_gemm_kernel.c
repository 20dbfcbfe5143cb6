/* The GEMM kernel alone, on one thread, timed in thread CPU time: for comparing opt lists
 * (and the layout step) on a machine other people load, where wall-clock figures are
 * noise. Per-thread CPU time still drops when an SMT sibling is busy, but it does not
 * count time spent waiting for a core.
 *
 * The product: C = A @ B of two cg_rand float32 inputs (M x K, K x N), scheduled; every
 * kernel before the last (B's packing copy, when matmul packs) runs once with the
 * heuristic's opts; the last kernel (the GEMM) runs with each opt list given, the best of 3
 * timed runs after a warm-up. "H" means the heuristic's list. PACK=0 in the environment
 * reads B unpacked; BF16=1 rounds A and B to realized bfloat16 buffers and multiplies their
 * float32 casts (the TC opt's kernel, as autocast and bench_matmul_bf16 make it). TA=1
 * makes A the transposed view of a realized K x M tensor (a weight gradient's g^T @ x).
 *
 *   build/release/bench_gemm_kernel M K N H "UPCAST(1,16) UPCAST(1,2) UPCAST(0,8) TILE(1,8) THREAD(0)" ...
 *
 * CG_BENCH_THREADS=t (default 1) runs the kernel on t threads and times it in the process's
 * CPU time (all threads, their spin-waits included): the work the opts cost on t threads,
 * shared caches and all, which other processes on the cores change less than wall time;
 * "GFLOP/s" is then per t CPU-seconds (what t threads would reach if nothing else ran). The
 * kernel's accounting of a thread running on another core lags by up to a scheduler tick
 * (4 ms), so a kernel of a few tens of ms is compared by the wall time printed beside it
 * too (the fastest run: meaningful on a quiet machine only).
 *
 * Compare with OpenBLAS on one thread the same way (numpy is linked to the same library):
 *   OPENBLAS_NUM_THREADS=1 /usr/bin/python3 -c "import numpy as np, time; ..." with
 *   time.thread_time() around a @ b. */
#define _GNU_SOURCE
#include "cgrad.h"
#include "engine/run_kernel.h"
#include "tensor/tensor.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static clockid_t cpu_clock = CLOCK_THREAD_CPUTIME_ID;
static double thread_now(void) {
  struct timespec t;
  clock_gettime(cpu_clock, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* "KIND(axis,amount) ..." as printed by opts_str; -1 on a word it does not know. */
static int parse_opts(const char *s, opt *o) {
  int n = 0;
  char buf[512];
  snprintf(buf, sizeof buf, "%s", s);
  for (char *save = NULL, *w = strtok_r(buf, " ", &save); w && n < MAX_OPTS; w = strtok_r(NULL, " ", &save)) {
    char k[16];
    int a = 0, b = 0, kind = -1;
    if (sscanf(w, "%15[A-Z](%d,%d)", k, &a, &b) < 2) return -1;
    for (int i = 0; i < OPT_NKINDS; i++)
      if (!strcmp(opt_name(i), k)) kind = i;
    if (kind < 0) return -1;
    o[n++] = (opt){(uint8_t)kind, (int16_t)a, b};
  }
  return n;
}

int main(int argc, char **argv) {
  if (argc < 5) return fprintf(stderr, "usage: bench_gemm_kernel M K N (H | \"OPTS\")...\n"), 2;
  const char *bt = getenv("CG_BENCH_THREADS");
  int threads = bt && atoi(bt) > 1 ? atoi(bt) : 1;
  char tn[16];
  snprintf(tn, sizeof tn, "%d", threads);
  cg_set_config("CG_THREADS", tn);
  if (threads > 1) cpu_clock = CLOCK_PROCESS_CPUTIME_ID;
  int64_t m = atoll(argv[1]), k = atoll(argv[2]), n = atoll(argv[3]);
  bool ta = getenv("TA") && atoi(getenv("TA")); /* A a transposed view (a weight gradient's g^T) */
  cg_tensor *a = ta ? cg_rand(CG_FLOAT32, (int64_t[]){k, m}, 2) : cg_rand(CG_FLOAT32, (int64_t[]){m, k}, 2), *b = cg_rand(CG_FLOAT32, (int64_t[]){k, n}, 2);
  bool bf16 = getenv("BF16") && atoi(getenv("BF16"));
  if (bf16) a = cg_contiguous(cg_cast(a, CG_BFLOAT16)), b = cg_contiguous(cg_cast(b, CG_BFLOAT16));
  if (!a || !b || cg_realize(a) || cg_realize(b)) return fprintf(stderr, "inputs: %s\n", cg_last_error()), 1;
  if (ta) a = cg_transpose(a, 0, 1);
  cg_tensor *c = bf16 ? cg_matmul(cg_cast(a, CG_FLOAT32), cg_cast(b, CG_FLOAT32)) : cg_matmul(a, b);
  uop_pool_push();
  schedule s;
  if (!c || !sched_build(&c->u, 1, &s)) return fprintf(stderr, "schedule: %s\n", cg_last_error()), 1;
  for (int i = 0; i < s.n - 1; i++)
    if (kernel_run_with_opts(&s.k[i], NULL, 0, NULL)) return fprintf(stderr, "kernel %d: %s\n", i, cg_last_error()), 1;
  printf("%lldx%lldx%lld, %d kernel%s (the last timed), %d thread%s, %s CPU time%s\n", (long long)m, (long long)k, (long long)n, s.n, s.n == 1 ? "" : "s", threads,
         threads == 1 ? "" : "s", threads == 1 ? "thread" : "process", bf16 ? ", bf16 operands" : "");
  for (int l = 4; l < argc; l++) {
    opt o[MAX_OPTS];
    int no = !strcmp(argv[l], "H") ? opt_heuristic(lower_kernel(s.k[s.n - 1].ast), o) : parse_opts(argv[l], o);
    if (no < 0) {
      fprintf(stderr, "cannot read opts '%s'\n", argv[l]);
      continue;
    }
    double best = 1e30, wbest = 1e30;
    bool ok = true;
    for (int r = 0; r < 4 && ok; r++) {
      struct timespec w0, w1;
      clock_gettime(CLOCK_MONOTONIC, &w0);
      double t = thread_now();
      ok = kernel_run_with_opts(&s.k[s.n - 1], o, no, NULL) == CG_OK;
      t = thread_now() - t;
      clock_gettime(CLOCK_MONOTONIC, &w1);
      double w = (double)(w1.tv_sec - w0.tv_sec) + 1e-9 * (double)(w1.tv_nsec - w0.tv_nsec);
      if (r && t < best) best = t;
      if (r && w < wbest) wbest = w;
    }
    char d[256];
    opts_str(o, no, d, sizeof d);
    if (!ok) printf("%-72s refused: %s\n", d, cg_last_error());
    else if (threads == 1) printf("%-72s %9.2f ms %8.1f GFLOP/s\n", d, best * 1e3, 2.0 * (double)m * (double)k * (double)n / best * 1e-9);
    else
      printf("%-72s %9.2f ms %8.1f GFLOP/s  (wall: fastest %.2f ms, %.1f GFLOP/s)\n", d, best * 1e3 / threads, 2.0 * (double)m * (double)k * (double)n / best * threads * 1e-9,
             wbest * 1e3, 2.0 * (double)m * (double)k * (double)n / wbest * 1e-9);
  }
  sched_free(&s);
  uop_pool_pop();
  return 0;
}
