/* The heuristic's opts for the CNN's convolution kernels at batch 512 (bench/bench_conv.c's
 * shapes: forward, input gradient, weight gradient of its four layers), pinned: a change to
 * the heuristic that moves them shows here and is measured (bench/bench_conv.sh) before the
 * pins move. The kernel pinned per pass is the one with the most multiply-adds (the
 * convolution; the layout copies and the sum of the weight gradient's partials are other
 * kernels), named by its outputs. Only scheduled and optimized here, never run. */
#include "check.h"
#include "cgrad.h"
#include "codegen/codegen.h"
#include "schedule/schedule.h"
#include "tensor/tensor.h"
#include "uop/uopset.h"
#include <string.h>

static void sizes(uop *u, uopset *seen, int64_t *outs, int64_t *red) {
  if (uopset_add(seen, u) <= 0 || u->op == OP_DEFINE_GLOBAL) return;
  if (u->op == OP_RANGE) *(u->arg.v[1] == RANGE_REDUCE ? red : outs) *= u->src[0]->arg.i;
  for (uint32_t i = 0; i < u->nsrc; i++) sizes(u->src[i], seen, outs, red);
}

/* The opts of t's biggest reduction kernel into got, its outputs into *outs. */
static void biggest(cg_tensor *t, char *got, size_t n, int64_t *outs) {
  uop_pool_push();
  schedule s;
  bool ok = sched_build(&t->u, 1, &s);
  CHECK(ok, "schedule: %s", cg_last_error());
  double best = 0;
  snprintf(got, n, "(no reduction)");
  for (int i = 0; ok && i < s.n; i++) {
    uop *low = lower_kernel(s.k[i].ast);
    int64_t o = 1, r = 1;
    uopset seen = {0};
    if (low) sizes(low, &seen, &o, &r);
    uopset_free(&seen);
    if (!low || r == 1 || (double)o * (double)r <= best) continue;
    best = (double)o * (double)r, *outs = o;
    opt op[MAX_OPTS];
    opts_str(op, opt_heuristic(low, op), got, n);
  }
  if (ok) sched_free(&s);
  uop_pool_pop();
}

typedef struct {
  int layer, pass;
  int64_t outs;
  const char *opts;
} pin;

int main(void) {
  static const int64_t L[4][4] = {{1, 32, 5, 28}, {32, 32, 5, 24}, {32, 64, 3, 10}, {64, 64, 3, 8}}; /* cin, cout, k, in */
  static const char *const pass_name[3] = {"forward", "input gradient", "weight gradient"};
  static const pin pins[] = {
      {1, 0, 9437184, "UPCAST(3,8) UPCAST(3,3) UPCAST(1,4) THREAD(0)"},
      {1, 2, 800, "UPCAST(0,4) UNROLL(102,8) UPCAST(2,5) THREAD(0)"}, /* UPCAST(2,5): opt_small.c (stepk) */
      {2, 0, 13107200, "UPCAST(2,16) UPCAST(2,2) UPCAST(0,8) THREAD(0)"}, /* Winograd rows: the grouped 1x5 product (functional_wino.c) */
      {2, 1, 18874368, "UPCAST(2,16) UPCAST(2,2) UPCAST(0,8) THREAD(0)"}, /* Winograd rows, as the forward */
      {2, 2, 5242880, "UPCAST(4,16) UPCAST(4,2) UPCAST(2,8) THREAD(0)"}, /* Winograd rows: partials of M per chunk of tile rows */
      {3, 0, 3145728, "UPCAST(2,16) UPCAST(2,2) UPCAST(0,8) THREAD(0)"}, /* Winograd rows F(4,3): the grouped 1x3 product */
      {3, 1, 1638400, "UPCAST(1,16) UPCAST(1,2) UPCAST(0,8) THREAD(0)"},
      {3, 2, 1179648, "UPCAST(4,16) UPCAST(4,2) UPCAST(2,8) THREAD(0)"}, /* Winograd rows: partials of M */
      {4, 0, 1966080, "UPCAST(2,16) UPCAST(2,2) UPCAST(0,8) THREAD(0)"}, /* Winograd rows F(3,3): the grouped 1x3 product */
      {4, 1, 2097152, "UPCAST(1,16) UPCAST(1,2) UPCAST(0,8) THREAD(0)"},
      {4, 2, 1966080, "UPCAST(4,16) UPCAST(4,2) UPCAST(2,8) THREAD(0)"}, /* Winograd rows: partials of M */
  };
  const int64_t B = 512;
  for (size_t i = 0; i < sizeof pins / sizeof pins[0]; i++) {
    const pin *p = &pins[i];
    const int64_t *l = L[p->layer - 1];
    int64_t o = l[3] - l[2] + 1;
    cg_scope_begin();
    cg_tensor *x = cg_empty(CG_FLOAT32, (int64_t[]){B, l[0], l[3], l[3]}, 4), *w = cg_empty(CG_FLOAT32, (int64_t[]){l[1], l[0], l[2], l[2]}, 4);
    cg_tensor *g = cg_empty(CG_FLOAT32, (int64_t[]){B, l[1], o, o}, 4), *t = NULL;
    if (p->pass == 0) t = cg_conv2d(x, w, NULL, NULL, NULL, NULL, 1);
    else if (p->pass == 1) t = cg_conv_transpose2d(g, w, NULL, NULL, NULL, NULL, NULL, 1);
    else {
      CHECK(cg_set_requires_grad(w, true) == CG_OK && cg_backward_with(cg_conv2d(x, w, NULL, NULL, NULL, NULL, 1), g) == CG_OK, "%s", cg_last_error());
      t = cg_grad(w);
    }
    char got[256] = "";
    int64_t outs = 0;
    CHECK(t != NULL, "conv%d %s: %s", p->layer, pass_name[p->pass], cg_last_error());
    if (t) biggest(t, got, sizeof got, &outs);
    CHECK(outs == p->outs && !strcmp(got, p->opts), "conv%d %s: the kernel of %lld outputs has %s; pinned: %lld outputs, %s", p->layer, pass_name[p->pass],
          (long long)outs, got, (long long)p->outs, p->opts);
    cg_scope_end();
  }
  return test_summary();
}
