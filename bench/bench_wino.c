/* Winograd against the direct convolution, shape by shape (the measurements behind the
 * WINO default in nn/functional_wino.c): for each shape the forward (relu(conv2d(x, w)):
 * its consumer reads the Winograd result in place) and the input gradient
 * (conv_transpose2d of an output gradient with the same w: its weight is (Cin_t, Cout_t, k, k)), WINO=0 then WINO=1, best of R calls after one
 * that compiles. Times are the process's CPU time per call, so that on a shared machine
 * the load inflates both sides alike (use CG_THREADS=1 for that; with more threads CPU
 * time adds up the threads); the last column is what the default (WINO unset) picks.
 *
 *   CG_THREADS=1 build/bench_wino [R]      (R default 3) */
#include "bench_util.h"
#include "cgrad.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
  int64_t n, cin, cout, k, in, pad;
  const char *what;
} shape;

static double best_ms(const char *wino, int bwd, cg_tensor *x, cg_tensor *w, cg_tensor *g, int64_t pad, int reps) {
  double best = 1e30;
  if (wino) cg_set_config("WINO", wino);
  else cg_set_config("WINO", "");
  for (int r = 0; r <= reps; r++) {
    cg_scope_begin();
    double t0 = cpu_now();
    const int64_t p[2] = {pad, pad};
    cg_tensor *y = bwd ? cg_conv_transpose2d(g, w, NULL, NULL, p, NULL, NULL, 1) : cg_relu(cg_conv2d(x, w, NULL, NULL, p, NULL, 1));
    if (!y || cg_realize(y) != CG_OK) die_cg(bwd ? "input gradient" : "forward");
    double t = cpu_now() - t0;
    if (r > 0 && t < best) best = t;
    cg_scope_end();
  }
  return best * 1e3;
}

int main(int argc, char **argv) {
  int reps = argc > 1 ? atoi(argv[1]) : 3;
  if (reps < 1) return fprintf(stderr, "usage: bench_wino [reps]\n"), 2;
  static const shape S[] = {
      {64, 64, 64, 3, 16, 1, ""},      {64, 64, 64, 3, 18, 0, ""},       {64, 128, 128, 3, 16, 1, ""},
      {64, 128, 128, 5, 20, 0, ""},    {512, 64, 64, 3, 8, 0, "conv4"},   {512, 32, 64, 3, 10, 0, "conv3"},
      {512, 32, 32, 5, 24, 0, "conv2"}, {64, 32, 32, 3, 32, 1, ""},
  };
  printf("threads %s, best of %d, CPU ms per call\n", getenv("CG_THREADS") ? getenv("CG_THREADS") : "(default)", reps);
  printf("%-34s %9s %9s %8s %9s %9s %8s\n", "N, Cin->Cout, k, input, pad", "fwd dir", "fwd wino", "default", "igr dir", "igr wino", "default");
  for (size_t i = 0; i < sizeof S / sizeof *S; i++) {
    const shape *s = &S[i];
    int64_t o = s->in + 2 * s->pad - s->k + 1;
    cg_scope_begin();
    cg_tensor *x = cg_randn(CG_FLOAT32, (int64_t[]){s->n, s->cin, s->in, s->in}, 4);
    cg_tensor *w = cg_randn(CG_FLOAT32, (int64_t[]){s->cout, s->cin, s->k, s->k}, 4);
    cg_tensor *g = cg_randn(CG_FLOAT32, (int64_t[]){s->n, s->cout, o, o}, 4);
    if (cg_realize(x) || cg_realize(w) || cg_realize(g)) die_cg("inputs");
    double t[6];
    for (int bwd = 0; bwd < 2; bwd++) {
      t[3 * bwd] = best_ms("0", bwd, x, w, g, s->pad, reps);
      t[3 * bwd + 1] = best_ms("1", bwd, x, w, g, s->pad, reps);
      t[3 * bwd + 2] = best_ms(NULL, bwd, x, w, g, s->pad, reps);
    }
    char name[64];
    snprintf(name, sizeof name, "%lld, %lld->%lld, %lldx%lld, %lld, p%lld %s", (long long)s->n, (long long)s->cin, (long long)s->cout,
             (long long)s->k, (long long)s->k, (long long)s->in, (long long)s->pad, s->what);
    printf("%-34s %9.2f %9.2f %8.2f %9.2f %9.2f %8.2f\n", name, t[0], t[1], t[2], t[3], t[4], t[5]);
    fflush(stdout);
    cg_scope_end();
  }
  cg_set_config("WINO", "");
  return 0;
}
