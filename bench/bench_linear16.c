/* Autocast linears, forward + backward, on the GPT's shapes (N = batch 8 x T 256 rows;
 * the 6-layer d-384 model's qkv, proj, fc, fc2 and head): float32 cg_linear_fn against
 *   f16 old: cg_linear_fn(f32(f16(x)), f32(f16(w)), b)  (the fp16 path before cg_linear_f16:
 *            the rounding inside each product)
 *   f16:     cg_linear_f16 (float32 GEMMs of the operands' f16 roundings, g rounded too)
 *   bf16:    cg_linear_bf16 (bf16 copies, the TC opt where the CPU has a bf16 unit)
 * Each rep builds the graph inside a scope and realizes y, dx and dw together (db too);
 * the variants run round robin, so the load shifts them alike; medians of the wall time
 * and of the process CPU time (all threads: under load it counts the work, not the time
 * others held the cores), GFLOP/s = 6 N in out / wall, and each variant's CPU time over
 * float32's in the same run.
 *
 *   CG_THREADS=2 build/release/bench_linear16 [reps]      (default 7) */
#include "bench_util.h"
#include "cgrad.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { NV = 4 };
static const char *names[NV] = {"float32", "f16 old", "f16", "bf16"};

static cg_tensor *low16(cg_tensor *t) { return cg_cast(cg_cast(t, CG_FLOAT16), CG_FLOAT32); }

static double step(int v, cg_tensor *X, cg_tensor *W, cg_tensor *B, cg_tensor *G, double *cpu) {
  cg_scope_begin();
  double t0 = now(), c0 = cpu_now();
  cg_tensor *x = cg_detach(X), *w = cg_detach(W);
  cg_set_requires_grad(x, true), cg_set_requires_grad(w, true);
  cg_tensor *y = v == 0 ? cg_linear_fn(x, w, B) : v == 1 ? cg_linear_fn(low16(x), low16(w), B) : v == 2 ? cg_linear_f16(x, w, B) : cg_linear_bf16(x, w, B);
  if (!y || cg_backward_with(y, G) != CG_OK) die_cg(names[v]);
  cg_tensor *out[3] = {y, cg_grad(x), cg_grad(w)};
  if (cg_realize_many(out, 3) != CG_OK) die_cg(names[v]);
  double t = now() - t0;
  *cpu = cpu_now() - c0;
  cg_scope_end();
  return t;
}

int main(int argc, char **argv) {
  int reps = argc > 1 ? atoi(argv[1]) : 7;
  if (reps < 1) reps = 1;
  const int64_t N = 2048, shapes[][2] = {{384, 1152}, {384, 384}, {384, 1536}, {1536, 384}, {384, 96}};
  const char *what[] = {"qkv", "proj", "fc", "fc2", "head"};
  printf("autocast linear forward + backward, N = %lld rows, median of %d, CG_THREADS=%s\n", (long long)N, reps, getenv("CG_THREADS") ? getenv("CG_THREADS") : "(all)");
  printf("%-5s %5s %5s", "", "in", "out");
  for (int v = 0; v < NV; v++) printf(" | %-8s ms cpu ms GFLOP/s ratio", names[v]);
  printf("\n");
  double tot[NV] = {0}, ctot[NV] = {0};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    int64_t in = shapes[s][0], out = shapes[s][1];
    cg_scope_begin();
    cg_tensor *X = cg_rand(CG_FLOAT32, (int64_t[]){N, in}, 2), *W = cg_rand(CG_FLOAT32, (int64_t[]){out, in}, 2);
    cg_tensor *B = cg_rand(CG_FLOAT32, (int64_t[]){out}, 1), *G = cg_rand(CG_FLOAT32, (int64_t[]){N, out}, 2);
    cg_tensor *all[4] = {X, W, B, G};
    if (cg_realize_many(all, 4) != CG_OK) die_cg("inputs");
    double *t[NV], *c[NV], dummy;
    for (int v = 0; v < NV; v++) {
      t[v] = malloc(sizeof(double) * (size_t)reps), c[v] = malloc(sizeof(double) * (size_t)reps);
      step(v, X, W, B, G, &dummy), step(v, X, W, B, G, &dummy); /* warm-up: compiles, schedule cache */
    }
    for (int r = 0; r < reps; r++)
      for (int v = 0; v < NV; v++) t[v][r] = step(v, X, W, B, G, &c[v][r]);
    double flop = 6.0 * (double)N * (double)in * (double)out, med[NV], cmed[NV];
    printf("%-5s %5lld %5lld", what[s], (long long)in, (long long)out);
    for (int v = 0; v < NV; v++) {
      qsort(t[v], (size_t)reps, sizeof(double), cmp_double), qsort(c[v], (size_t)reps, sizeof(double), cmp_double);
      med[v] = t[v][reps / 2], tot[v] += med[v], cmed[v] = c[v][reps / 2], ctot[v] += cmed[v];
      printf(" | %8.2f %6.2f %7.1f %4.2fx", med[v] * 1e3, cmed[v] * 1e3, flop / med[v] * 1e-9, cmed[v] / cmed[0]);
      free(t[v]), free(c[v]);
    }
    printf("\n");
    cg_scope_end();
  }
  printf("%-17s", "all five");
  for (int v = 0; v < NV; v++) printf(" | %8.2f %6.2f %7s %4.2fx", tot[v] * 1e3, ctot[v] * 1e3, "", ctot[v] / ctot[0]);
  printf("\n");
  return 0;
}
