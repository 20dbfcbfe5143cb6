/* The schedule cache on small-op loops, where host work is the whole cost: each iteration
 * makes a fresh input (cg_from_data), builds a 10-op graph and realizes it; the same loop
 * with CG_SCHED_CACHE=1 and 0 in the same process, rounds alternated, medians of the
 * process CPU time (and wall) per iteration, the ratio printed.
 *   elementwise: ten elementwise ops on 64 floats (one kernel);
 *   softmax-mlp: x @ w + b, relu, a row softmax and its mean (10 ops, several kernels).
 *   usage: bench_sched_cache [iterations per round] [rounds] [on|off: that side only, for a profiler] */
#include "bench_util.h"
#include <string.h>

enum { N = 64, ROWS = 16, IN = 32, OUT = 16 };
static float xs[ROWS * IN], ws[IN * OUT], bs[OUT];

static double graph_elementwise(void) {
  int64_t n = N;
  cg_tensor *x = cg_from_data(xs, CG_FLOAT32, &n, 1), *y = cg_from_data(xs + N, CG_FLOAT32, &n, 1);
  cg_tensor *a = cg_mul(x, cg_scalar(2)), *b = cg_add(a, y), *c = cg_relu(b), *d = cg_mul(c, c), *e = cg_sub(d, x);
  cg_tensor *f = cg_exp(cg_mul(e, cg_scalar(0.1))), *g = cg_div(f, cg_add(cg_mul(y, y), cg_scalar(1)));
  float out[N];
  if (cg_read(g, CG_FLOAT32, out, sizeof out) != CG_OK) die_cg("elementwise");
  return out[3];
}

static double graph_softmax_mlp(void) {
  int64_t sx[2] = {ROWS, IN}, sw[2] = {IN, OUT}, sb[1] = {OUT};
  cg_tensor *x = cg_from_data(xs, CG_FLOAT32, sx, 2), *w = cg_from_data(ws, CG_FLOAT32, sw, 2), *b = cg_from_data(bs, CG_FLOAT32, sb, 1);
  int ax = 1;
  cg_tensor *h = cg_relu(cg_add(cg_matmul(x, w), b));
  cg_tensor *m = cg_mean(cg_softmax(h, 1), &ax, 1, false);
  float out[ROWS];
  if (cg_read(m, CG_FLOAT32, out, sizeof out) != CG_OK) die_cg("softmax-mlp");
  return out[0];
}

static int only = -1; /* 1, 0: run that side only */

static void run(const char *name, double (*graph)(void), int iters, int rounds) {
  double cpu[2][64] = {{0}}, wall[2][64] = {{0}}, sink = 0;
  for (int r = 0; r < rounds; r++)
    for (int on = 1; on >= 0; on--) {
      if (only >= 0 && on != only) continue;
      cg_set_config("CG_SCHED_CACHE", on ? "1" : "0");
      cg_scope_begin();
      sink += graph(); /* programs in the cache (a knob change fetches them again) */
      cg_scope_end();
      double c0 = cpu_now(), w0 = now();
      for (int i = 0; i < iters; i++) {
        cg_scope_begin();
        sink += graph();
        cg_scope_end();
      }
      cpu[on][r] = (cpu_now() - c0) / iters, wall[on][r] = (now() - w0) / iters;
    }
  for (int on = 0; on < 2; on++) qsort(cpu[on], (size_t)rounds, sizeof(double), cmp_double), qsort(wall[on], (size_t)rounds, sizeof(double), cmp_double);
  double c1 = cpu[1][rounds / 2], c0 = cpu[0][rounds / 2], w1 = wall[1][rounds / 2], w0 = wall[0][rounds / 2];
  printf("%-12s cache on %8.1f us CPU (%8.1f wall), off %8.1f us CPU (%8.1f wall) per iteration: %.2fx CPU, %.2fx wall  (%g)\n", name, 1e6 * c1, 1e6 * w1,
         1e6 * c0, 1e6 * w0, c0 / c1, w0 / w1, sink * 0);
}

int main(int argc, char **argv) {
  int iters = argc > 1 ? atoi(argv[1]) : 1000, rounds = argc > 2 ? atoi(argv[2]) : 5;
  if (argc > 3) only = !strcmp(argv[3], "on");
  if (iters < 1 || rounds < 1 || rounds > 64) return fprintf(stderr, "usage: bench_sched_cache [iterations >= 1] [rounds 1..64]\n"), 2;
  for (int i = 0; i < ROWS * IN; i++) xs[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
  for (int i = 0; i < IN * OUT; i++) ws[i] = (float)((i * 53) % 97) / 97.0f - 0.5f;
  for (int i = 0; i < OUT; i++) bs[i] = 0.01f * (float)i;
  FILE *f = fopen("/proc/loadavg", "r");
  char load[64] = "?";
  if (f && fgets(load, sizeof load, f)) load[strcspn(load, "\n")] = 0;
  if (f) fclose(f);
  printf("bench_sched_cache: %d iterations x %d rounds; load average %s\n", iters, rounds, load);
  run("elementwise", graph_elementwise, iters, rounds);
  run("softmax-mlp", graph_softmax_mlp, iters, rounds);
  cg_stats st = cg_get_stats();
  printf("schedules %llu, from the cache %llu\n", (unsigned long long)st.schedules, (unsigned long long)st.schedule_hits);
  return 0;
}
