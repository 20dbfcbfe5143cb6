/* Winograd against the direct convolution, shape by shape (the measurements behind the
 * WINO default in nn/functional_wino.c): for each shape the forward (relu(conv2d(x, w)):
 * its consumer reads the Winograd result in place), the input gradient (conv_transpose2d
 * of an output gradient with the same w: its weight is (Cin_t, Cout_t, k, k)) and the
 * weight gradient (the backward of conv2d to w alone), each with WINO=0 (direct), 1 (2-d),
 * 2 (rows: along H only) and unset (the default rule), best of R calls after one that
 * compiles. Times are the process's CPU time per call, so that on a shared machine the
 * load inflates both sides alike (use CG_THREADS=1 for that; with more threads CPU time
 * adds up the threads). The weight gradient has no 2-d Winograd form: its WINO=1 column
 * is the direct algorithm again.
 *
 *   CG_THREADS=1 build/bench_wino [R] [first] [last]   (R default 3; shapes first..last of 8) */
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

static double best_ms(const char *wino, int pass, cg_tensor *x, cg_tensor *w, cg_tensor *g, int64_t pad, int reps) {
  double best = 1e30;
  cg_set_config("WINO", wino ? wino : "");
  for (int r = 0; r <= reps; r++) {
    cg_scope_begin();
    const int64_t p[2] = {pad, pad};
    cg_tensor *y;
    double t0;
    if (pass == 2) { /* the graph built first: only the weight gradient's kernels are timed */
      cg_tensor *wr = cg_detach(w);
      if (!wr || cg_set_requires_grad(wr, true) || cg_backward_with(cg_conv2d(x, wr, NULL, NULL, p, NULL, 1), g)) die_cg("weight gradient");
      t0 = cpu_now();
      y = cg_grad(wr);
    } else {
      t0 = cpu_now();
      y = pass ? cg_conv_transpose2d(g, w, NULL, NULL, p, NULL, NULL, 1) : cg_relu(cg_conv2d(x, w, NULL, NULL, p, NULL, 1));
    }
    if (!y || cg_realize(y) != CG_OK) die_cg(pass ? "gradient" : "forward");
    double t = cpu_now() - t0;
    if (r > 0 && t < best) best = t;
    cg_scope_end();
  }
  return best * 1e3;
}

int main(int argc, char **argv) {
  int reps = argc > 1 ? atoi(argv[1]) : 3, first = argc > 2 ? atoi(argv[2]) : 1, last = argc > 3 ? atoi(argv[3]) : 8;
  if (reps < 1 || first < 1 || last < first) return fprintf(stderr, "usage: bench_wino [reps] [first] [last]\n"), 2;
  static const shape S[] = {
      {64, 64, 64, 3, 16, 1, ""},      {64, 64, 64, 3, 18, 0, ""},       {64, 128, 128, 3, 16, 1, ""},
      {64, 128, 128, 5, 20, 0, ""},    {512, 64, 64, 3, 8, 0, "conv4"},   {512, 32, 64, 3, 10, 0, "conv3"},
      {512, 32, 32, 5, 24, 0, "conv2"}, {64, 32, 32, 3, 32, 1, ""},
  };
  static const char *const pass_name[3] = {"forward", "input gradient", "weight gradient"};
  printf("threads %s, best of %d, CPU ms per call\n", getenv("CG_THREADS") ? getenv("CG_THREADS") : "(default)", reps);
  printf("%-34s %-16s %9s %9s %9s %9s\n", "N, Cin->Cout, k, input, pad", "pass", "direct", "2-d", "rows", "default");
  for (int i = first - 1; i < last && i < (int)(sizeof S / sizeof *S); i++) {
    const shape *s = &S[i];
    int64_t o = s->in + 2 * s->pad - s->k + 1;
    cg_scope_begin();
    cg_tensor *x = cg_randn(CG_FLOAT32, (int64_t[]){s->n, s->cin, s->in, s->in}, 4);
    cg_tensor *w = cg_randn(CG_FLOAT32, (int64_t[]){s->cout, s->cin, s->k, s->k}, 4);
    cg_tensor *g = cg_randn(CG_FLOAT32, (int64_t[]){s->n, s->cout, o, o}, 4);
    if (cg_realize(x) || cg_realize(w) || cg_realize(g)) die_cg("inputs");
    char name[64];
    snprintf(name, sizeof name, "%lld, %lld->%lld, %lldx%lld, %lld, p%lld %s", (long long)s->n, (long long)s->cin, (long long)s->cout,
             (long long)s->k, (long long)s->k, (long long)s->in, (long long)s->pad, s->what);
    for (int pass = 0; pass < 3; pass++) {
      double t[4] = {best_ms("0", pass, x, w, g, s->pad, reps), best_ms("1", pass, x, w, g, s->pad, reps), best_ms("2", pass, x, w, g, s->pad, reps),
                     best_ms(NULL, pass, x, w, g, s->pad, reps)};
      printf("%-34s %-16s %9.2f %9.2f %9.2f %9.2f\n", name, pass_name[pass], t[0], t[1], t[2], t[3]);
      fflush(stdout);
    }
    cg_scope_end();
  }
  cg_set_config("WINO", "");
  return 0;
}
