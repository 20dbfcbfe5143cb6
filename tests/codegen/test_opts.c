/* Opts as data: each opt kind alone and in combinations, on matmul, convolution and
 * reduction kernels of awkward sizes (1, 7, 13, 33, 1000, 1023 and primes), gives the
 * results of the kernel with no opts (NOOPT); an opt that does not divide its axis or
 * names no axis of the kernel is refused with a message; the same kernel realized twice
 * is compiled once (the program cache is keyed by the kernel's structure). White-box: the
 * scheduler's kernels run through the engine with chosen opts. */
#include "check.h"
#include "engine/run_kernel.h"
#include "runtime/buffer.h"
#include "tensor/tensor.h"
#include <math.h>
#include <string.h>

static uint64_t rng = 11;
static float frand(void) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((rng >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}
static cg_tensor *rand_t(const int64_t *shape, int nd) {
  int64_t n = 1;
  for (int i = 0; i < nd; i++) n *= shape[i];
  float *h = malloc(sizeof(float) * (size_t)(n ? n : 1));
  for (int64_t i = 0; i < n; i++) h[i] = frand();
  cg_tensor *t = cg_from_data(h, CG_FLOAT32, shape, nd);
  free(h);
  return t;
}

/* The output of t's last kernel run with opts o (o NULL: the heuristic's), into out. */
static cg_status run_last(cg_tensor *t, const opt *o, int n, float *out, int64_t count) {
  uop_pool_push();
  schedule s;
  cg_status st = sched_build(&t->u, 1, &s) ? CG_OK : cg_last_status();
  for (int i = 0; st == CG_OK && i < s.n; i++) {
    bool last = i == s.n - 1;
    st = kernel_run_with_opts(&s.k[i], last ? o : NULL, last ? n : 0, NULL);
  }
  if (st == CG_OK) {
    cg_buffer *b = buffer_of(s.k[s.n - 1].bufs[0]);
    memcpy(out, b->ptr, sizeof(float) * (size_t)count);
  }
  if (s.k) sched_free(&s);
  uop_pool_pop();
  return st;
}

static int nchecked;
/* Compare t's last kernel under each opt list with its NOOPT result, within tol
 * (relative, plus absolute): an unrolled reduction adds in another order, so tol grows
 * with the length of the reduction (a wrong index is off by O(1)). */
static void check_opts(const char *what, cg_tensor *t, const opt *lists, const int *lens, int nlists, float tol) {
  int64_t count = cg_numel(t);
  float *ref = malloc(sizeof(float) * (size_t)count), *got = malloc(sizeof(float) * (size_t)count);
  opt none[1];
  CHECK(run_last(t, none, 0, ref, count) == CG_OK, "%s: NOOPT run: %s", what, cg_last_error());
  for (int l = 0, at = 0; l < nlists; at += lens[l++]) {
    char d[128];
    opts_str(lists + at, lens[l], d, sizeof d);
    cg_status st = run_last(t, lists + at, lens[l], got, count);
    CHECK(st == CG_OK, "%s with %s: %s", what, d, cg_last_error());
    if (st != CG_OK) continue;
    int64_t bad = -1;
    for (int64_t i = 0; i < count && bad < 0; i++)
      if (!(fabsf(got[i] - ref[i]) <= tol * (1 + fabsf(ref[i])))) bad = i;
    CHECK(bad < 0, "%s with %s: element %lld is %g, NOOPT gives %g", what, d, (long long)bad, bad < 0 ? 0 : got[bad], bad < 0 ? 0 : ref[bad]);
    nchecked++;
  }
  free(ref), free(got);
}

/* Every opt that applies to a kernel with output axes of these sizes and one reduce axis
 * (id 100) of size k: each alone, then all compatible ones together. */
static void matmul_case(int64_t m, int64_t k, int64_t n) {
  cg_tensor *a = rand_t((int64_t[]){m, k}, 2), *b = rand_t((int64_t[]){k, n}, 2);
  cg_realize(a), cg_realize(b);
  cg_tensor *c = cg_matmul(a, b);
  opt lists[64];
  int lens[32], nl = 0, at = 0;
  int64_t out[2] = {m, n};
  opt combo[MAX_OPTS];
  int nc = 0;
  static const int amounts[] = {16, 8, 4, 3, 2};
  for (int ax = 0; ax < 2; ax++) {
    bool first = true;
    for (int i = 0; i < 5; i++)
      if (out[ax] % amounts[i] == 0 && out[ax] > amounts[i]) {
        lists[at++] = (opt){OPT_UPCAST, (int16_t)ax, amounts[i]}, lens[nl++] = 1;
        if (first) combo[nc++] = lists[at - 1], first = false;
      }
    if (out[ax] > 1) lists[at++] = (opt){OPT_THREAD, (int16_t)ax, 0}, lens[nl++] = 1;
  }
  for (int i = 0; i < 5; i++)
    if (k % amounts[i] == 0 && k > amounts[i]) {
      lists[at++] = (opt){OPT_UNROLL, 100, amounts[i]}, lens[nl++] = 1;
      if (nc < MAX_OPTS - 1 && i >= 2) combo[nc++] = lists[at - 1], i = 5;
    }
  if (m > 1) combo[nc++] = (opt){OPT_THREAD, 0, 0};
  if (nc > 1) {
    memcpy(lists + at, combo, sizeof(opt) * (size_t)nc);
    at += nc, lens[nl++] = nc;
  }
  char what[64];
  snprintf(what, sizeof what, "matmul %lldx%lldx%lld", (long long)m, (long long)k, (long long)n);
  check_opts(what, c, lists, lens, nl, 1e-6f + 4e-7f * (float)k);
}

int main(void) {
  cg_scope_begin();
  /* matmuls: sizes 1, 7, 13, 33, 1000, 1023 and primes */
  matmul_case(1, 1, 1);
  matmul_case(7, 13, 33);
  matmul_case(64, 1000, 48);
  matmul_case(33, 17, 1023);
  matmul_case(12, 8, 20);
  { /* a convolution: output (N, Cout, OH, OW) = (2, 4, 7, 7), reduced over (Cin, KH, KW) */
    cg_tensor *x = rand_t((int64_t[]){2, 3, 9, 9}, 4), *w = rand_t((int64_t[]){4, 3, 3, 3}, 4);
    cg_realize(x), cg_realize(w);
    cg_tensor *y = cg_conv2d(x, w, NULL, NULL, NULL, NULL, 1);
    opt lists[] = {
        {OPT_UPCAST, 1, 4},
        {OPT_UPCAST, 3, 7},
        {OPT_THREAD, 0, 0},
        {OPT_UPCAST, 1, 4}, {OPT_UPCAST, 3, 7}, {OPT_THREAD, 2, 0},
        {OPT_UPCAST, 1, 2}, {OPT_UPCAST, 0, 2}, {OPT_THREAD, 3, 0},
    };
    int lens[] = {1, 1, 1, 3, 3};
    check_opts("conv2d (2,3,9,9) * (4,3,3,3)", y, lists, lens, 5, 2e-5f);
  }
  { /* a convolution over weights laid out with the output channels innermost
     * (nn/functional_conv.c): a vector along the output channels, stored lane by lane
     * into the NCHW output (expand.c), alone and tiled; output (3, 16, 5, 5) */
    cg_tensor *x = rand_t((int64_t[]){3, 8, 7, 7}, 4), *w = rand_t((int64_t[]){16, 8, 3, 3}, 4);
    cg_realize(x), cg_realize(w);
    cg_tensor *y = cg_conv2d(x, w, NULL, NULL, NULL, NULL, 1);
    opt lists[] = {
        {OPT_UPCAST, 1, 16},
        {OPT_UPCAST, 1, 8}, {OPT_UPCAST, 0, 3}, {OPT_THREAD, 2, 0},
        {OPT_UPCAST, 1, 16}, {OPT_UPCAST, 3, 5}, {OPT_UNROLL, 102, 3},
    };
    int lens[] = {1, 3, 3};
    check_opts("conv2d (3,8,7,7) * (16,8,3,3), channels-inner weights", y, lists, lens, 3, 2e-5f);
    /* the heuristic picks that vector where there are enough outputs (opt_vector.c) */
    cg_tensor *x2 = rand_t((int64_t[]){2, 16, 12, 10}, 4), *w2 = rand_t((int64_t[]){32, 16, 3, 3}, 4);
    cg_realize(x2), cg_realize(w2);
    cg_tensor *y2 = cg_conv2d(x2, w2, NULL, NULL, (const int64_t[]){1, 1}, NULL, 1);
    uop_pool_push();
    schedule s;
    CHECK(sched_build(&y2->u, 1, &s), "schedule: %s", cg_last_error());
    opt h[MAX_OPTS];
    int nh = s.n ? opt_heuristic(lower_kernel(s.k[s.n - 1].ast), h) : 0;
    char d[128];
    opts_str(h, nh, d, sizeof d);
    CHECK(nh >= 1 && h[0].kind == OPT_UPCAST && h[0].axis == 1 && h[0].amount == 16,
          "conv2d (2,16,12,10) * (32,16,3,3): the heuristic's first opt is UPCAST(1,16), got %s", d);
    if (s.k) sched_free(&s);
    uop_pool_pop();
    check_opts("conv2d (2,16,12,10) * (32,16,3,3) p1 with the heuristic's opts", y2, h, &nh, 1, 2e-5f);
  }
  { /* reductions over the batch axis and over the last axis */
    cg_tensor *x = rand_t((int64_t[]){1000, 33}, 2);
    cg_realize(x);
    cg_tensor *s0 = cg_sum(x, (int[]){0}, 1, true), *s1 = cg_max(x, (int[]){1}, 1, true);
    opt l0[] = {{OPT_UPCAST, 1, 3}, {OPT_UNROLL, 100, 8}, {OPT_UPCAST, 1, 11}, {OPT_UNROLL, 100, 4}, {OPT_THREAD, 1, 0}};
    int n0[] = {1, 1, 3};
    check_opts("sum over 1000 rows", s0, l0, n0, 3, 4e-4f);
    opt l1[] = {{OPT_UPCAST, 0, 8}, {OPT_UNROLL, 100, 3}, {OPT_UPCAST, 0, 4}, {OPT_UNROLL, 100, 11}, {OPT_THREAD, 0, 0}};
    int n1[] = {1, 1, 3};
    check_opts("max over 33 columns", s1, l1, n1, 3, 0);
  }
  CHECK(nchecked >= 40, "only %d opt lists checked", nchecked);
  { /* refusals name the opt and the problem */
    cg_tensor *a = rand_t((int64_t[]){16, 12}, 2), *b = rand_t((int64_t[]){12, 10}, 2);
    cg_realize(a), cg_realize(b);
    cg_tensor *c = cg_matmul(a, b);
    float out[160];
    opt bad1[] = {{OPT_UPCAST, 1, 4}}, bad2[] = {{OPT_UPCAST, 7, 2}}, bad3[] = {{OPT_UNROLL, 0, 2}}, bad4[] = {{OPT_UNROLL, 100, 5}};
    CHECK(run_last(c, bad1, 1, out, 160) == CG_ERR_INVALID && strstr(cg_last_error(), "UPCAST(1,4)") && strstr(cg_last_error(), "does not divide"),
          "got: %s", cg_last_error());
    CHECK(run_last(c, bad2, 1, out, 160) == CG_ERR_INVALID && strstr(cg_last_error(), "no output range with axis id 7"), "got: %s", cg_last_error());
    CHECK(run_last(c, bad3, 1, out, 160) == CG_ERR_INVALID && strstr(cg_last_error(), "no reduce range"), "got: %s", cg_last_error());
    CHECK(run_last(c, bad4, 1, out, 160) == CG_ERR_INVALID && strstr(cg_last_error(), "size 12"), "got: %s", cg_last_error());
  }
  { /* the program cache: a kernel of the same structure over other buffers compiles nothing */
    cg_tensor *x = rand_t((int64_t[]){5, 6}, 2), *y = rand_t((int64_t[]){5, 6}, 2);
    cg_tensor *r1 = cg_sum(cg_relu(cg_mul(x, x)), (int[]){1}, 1, false);
    CHECK(cg_realize(r1) == CG_OK);
    uint64_t c0 = cg_get_stats().kernels_compiled + cg_get_stats().kernels_cached;
    cg_tensor *r2 = cg_sum(cg_relu(cg_mul(y, y)), (int[]){1}, 1, false);
    CHECK(cg_realize(r2) == CG_OK);
    CHECK(cg_get_stats().kernels_compiled + cg_get_stats().kernels_cached == c0, "a second kernel of the same structure was compiled again");
  }
  cg_scope_end();
  return test_summary();
}
