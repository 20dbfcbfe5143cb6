/* The Fashion-MNIST CNN's four convolutions at batch B (default 512): forward, input
 * gradient and weight gradient, each timed alone (median of timed runs after one warm-up
 * that compiles). bench/bench_conv.sh runs this and PyTorch on the same shapes and prints
 * the ratios.
 *
 *   forward          y  = conv2d(x, w)                         (N, Cout, OH, OW)
 *   input gradient   dx = conv_transpose2d(g, w)               what conv2d's backward runs
 *   weight gradient  dw = grad of w for backward_with(conv2d(x, w), g)   (x, g realized)
 *
 * Output: one line per layer and pass, "conv<i> <pass> <ms> <GFLOP/s> <cpu ms>" (2*N*Cout*Cin*K*K*OH*OW
 * FLOPs for every pass; cpu ms: the median of the process's CPU time per run, all threads,
 * which under load still counts the work and not the waits), then a checksum line per
 * layer so two builds can be compared.
 *
 *   CG_THREADS=2 build/bench_conv [B] [runs] [wide]     (runs default 5)
 *
 * CONV_LAYERS=3,4 runs only those layers (1-based; bench_conv.sh passes it to PyTorch too).
 *
 * wide = 1 adds two layers with more channels, where Winograd convolution pays (WINO):
 * conv5 64->64 3x3 on 18x18 and conv6 128->128 5x5 on 20x20 (both 16x16 outputs). */
#include "bench_util.h"
#include "cgrad.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


typedef struct {
  int64_t cin, cout, k, in;
} layer;

/* one pass: 0 forward, 1 input gradient, 2 weight gradient; returns the realized result */
static cg_tensor *run(int pass, cg_tensor *x, cg_tensor *w, cg_tensor *g) {
  if (pass == 0) return cg_conv2d(x, w, NULL, NULL, NULL, NULL, 1);
  if (pass == 1) return cg_conv_transpose2d(g, w, NULL, NULL, NULL, NULL, NULL, 1);
  cg_zero_grad(w);
  if (cg_backward_with(cg_conv2d(x, w, NULL, NULL, NULL, NULL, 1), g) != CG_OK) die_cg("backward");
  return cg_grad(w);
}

int main(int argc, char **argv) {
  int64_t B = argc > 1 ? atoll(argv[1]) : 512;
  int runs = argc > 2 ? atoi(argv[2]) : 5;
  int nl = argc > 3 && atoi(argv[3]) ? 6 : 4;
  if (B < 1 || runs < 1) return fprintf(stderr, "usage: bench_conv [batch] [runs] [wide]\n"), 2;
  static const layer L[6] = {{1, 32, 5, 28}, {32, 32, 5, 24}, {32, 64, 3, 10}, {64, 64, 3, 8}, {64, 64, 3, 18}, {128, 128, 5, 20}};
  static const char *pass_name[3] = {"forward", "input_grad", "weight_grad"};
  printf("batch %lld, %d runs, threads %s\n", (long long)B, runs, getenv("CG_THREADS") ? getenv("CG_THREADS") : "(default)");
  const char *only = getenv("CONV_LAYERS");
  for (int l = 0; l < nl; l++) {
    if (only && *only && !strchr(only, '1' + l)) continue;
    int64_t o = L[l].in - L[l].k + 1;
    double flops = 2.0 * (double)B * (double)L[l].cout * (double)L[l].cin * (double)(L[l].k * L[l].k) * (double)(o * o);
    cg_scope_begin();
    cg_tensor *x = cg_randn(CG_FLOAT32, (int64_t[]){B, L[l].cin, L[l].in, L[l].in}, 4);
    cg_tensor *w = cg_randn(CG_FLOAT32, (int64_t[]){L[l].cout, L[l].cin, L[l].k, L[l].k}, 4);
    cg_tensor *g = cg_randn(CG_FLOAT32, (int64_t[]){B, L[l].cout, o, o}, 4);
    if (cg_realize(x) || cg_realize(g) || cg_set_requires_grad(w, true)) die_cg("inputs");
    double sums[3] = {0};
    for (int p = 0; p < 3; p++) {
      if (l == 0 && p == 1) continue; /* the first layer's input needs no gradient */
      double t[64], c[64];
      int n = runs < 64 ? runs : 64;
      for (int r = -1; r < n; r++) {
        cg_scope_begin();
        double t0 = now(), c0 = cpu_now();
        cg_tensor *y = run(p, x, w, g);
        if (!y || cg_realize(y) != CG_OK) die_cg(pass_name[p]);
        double dt = now() - t0, dc = cpu_now() - c0;
        if (r >= 0) t[r] = dt, c[r] = dc;
        if (r == n - 1) sums[p] = cg_item(cg_sum(y, NULL, 0, false));
        cg_scope_end();
      }
      qsort(t, (size_t)n, sizeof *t, cmp_double);
      qsort(c, (size_t)n, sizeof *c, cmp_double);
      double med = t[n / 2];
      printf("conv%d %s %.3f %.1f %.3f\n", l + 1, pass_name[p], med * 1e3, flops / med * 1e-9, c[n / 2] * 1e3);
      fflush(stdout);
    }
    printf("conv%d checksums %.6g %.6g %.6g\n", l + 1, sums[0], sums[1], sums[2]);
    cg_scope_end();
  }
  return 0;
}
