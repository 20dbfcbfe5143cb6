/* Attention forward + backward: cgrad's fused attention (src/tensor/flash.c) at one
 * sequence length, timed over a few runs after a warm-up, with the process's peak resident
 * memory above what the inputs take. One length per process so that the peak belongs to
 * it; bench/bench_attention.sh runs the lengths and PyTorch. Also prints the first (cold) run:
 * its time and how many programs it compiled (or loaded from the disk cache), and how many
 * the timed runs did (none: every key block runs the same kernels).
 *   usage: bench_attention T [B H D reps [bf16]]   (causal; float32, or q, k, v cast to bf16:
 *   autocast's attention, its products on the bf16 unit) */
#include <cgrad.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
static double cpu_now(void) { /* the process's CPU time: what a loaded machine does not inflate */
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
static long hwm_kb(void) { /* peak resident memory */
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "VmHWM:", 6)) kb = atol(line + 6);
  if (f) fclose(f);
  return kb;
}

int main(int argc, char **argv) {
  int64_t T = argc > 1 ? atol(argv[1]) : 1024, B = argc > 2 ? atol(argv[2]) : 1, H = argc > 3 ? atol(argv[3]) : 8, D = argc > 4 ? atol(argv[4]) : 64;
  int reps = argc > 5 ? atoi(argv[5]) : 3;
  bool bf = argc > 6 && !strcmp(argv[6], "bf16");
  int64_t s[4] = {B, H, T, D};
  cg_manual_seed(1);
  cg_tensor *q = cg_randn(CG_FLOAT32, s, 4), *k = cg_randn(CG_FLOAT32, s, 4), *v = cg_randn(CG_FLOAT32, s, 4);
  cg_set_requires_grad(q, true), cg_set_requires_grad(k, true), cg_set_requires_grad(v, true);
  long base = hwm_kb();
  double best = 1e30, best_cpu = 1e30, cold = 0;
  cg_stats st0 = cg_get_stats(), st1 = st0;
  for (int r = 0; r <= reps; r++) { /* run 0 compiles */
    cg_scope_begin();
    double t0 = now(), c0 = cpu_now();
    cg_tensor *o = bf ? cg_scaled_dot_product_attention(cg_cast(q, CG_BFLOAT16), cg_cast(k, CG_BFLOAT16), cg_cast(v, CG_BFLOAT16), NULL, 0, true, 0)
                      : cg_scaled_dot_product_attention(q, k, v, NULL, 0, true, 0);
    if (!o || cg_backward(cg_sum(cg_cast(o, CG_FLOAT32), NULL, 0, false)) != CG_OK) {
      fprintf(stderr, "bench_attention: %s\n", cg_last_error());
      return 1;
    }
    cg_tensor *g[3] = {cg_grad(q), cg_grad(k), cg_grad(v)};
    if (cg_realize_many(g, 3) != CG_OK) {
      fprintf(stderr, "bench_attention: %s\n", cg_last_error());
      return 1;
    }
    double dt = now() - t0, dc = cpu_now() - c0;
    if (r == 0) cold = dt, st1 = cg_get_stats();
    if (r > 0 && dt < best) best = dt;
    if (r > 0 && dc < best_cpu) best_cpu = dc;
    cg_zero_grad(q), cg_zero_grad(k), cg_zero_grad(v);
    cg_scope_end();
  }
  double flops = 4.0 * B * H * (double)T * (double)T * D * 0.5 * 3.5; /* causal: half; fwd 2 matmuls, bwd 5 */
  printf("cgrad T=%lld B=%lld H=%lld D=%lld: fwd+bwd %.1f ms (%.1f GFLOP/s useful), cpu %.1f ms, peak RSS +%.1f MB\n", (long long)T, (long long)B,
         (long long)H, (long long)D, 1e3 * best, flops / best * 1e-9, 1e3 * best_cpu, (double)(hwm_kb() - base) / 1024.0);
  cg_stats st2 = cg_get_stats();
  printf("cgrad T=%lld: first run %.1f ms, %llu programs compiled + %llu from the disk cache, %llu kernel launches; timed runs: %llu compiled + %llu cached, %llu of %llu schedules from the schedule cache\n",
         (long long)T, 1e3 * cold, (unsigned long long)(st1.kernels_compiled - st0.kernels_compiled), (unsigned long long)(st1.kernels_cached - st0.kernels_cached),
         (unsigned long long)(st1.kernels_run - st0.kernels_run), (unsigned long long)(st2.kernels_compiled - st1.kernels_compiled),
         (unsigned long long)(st2.kernels_cached - st1.kernels_cached), (unsigned long long)(st2.schedule_hits - st1.schedule_hits), (unsigned long long)(st2.schedules - st1.schedules));
  return 0;
}
