/* Autograd against finite differences: for every op of grad_ops.h, the gradient of
 * L(x) = sum(f(x) * W) (W random) from cg_backward is compared with float64 central
 * differences (L(x + h e_i) - L(x - h e_i)) / 2h, where each L is evaluated through cgrad
 * in float64. Inputs are random and kept away from kinks. CG_TEST_SEED picks the seed;
 * GRAD_FD_ONLY=name runs one op. */
#include "check.h"
#include "grad_ops.h"

static const char *g_only;

/* L = sum(f(x) * W) for float64 inputs in data; NAN on error. */
static double eval_loss(const gop *op, const gshapes *sh, double *const *data, const double *w, cg_tensor **xs_out, bool grad) {
  cg_tensor *xs[GMAX_IN];
  for (int k = 0; k < sh->nin; k++) {
    xs[k] = cg_from_data(data[k], CG_FLOAT64, sh->shape[k], sh->ndim[k]);
    if (grad) cg_set_requires_grad(xs[k], true);
    if (xs_out) xs_out[k] = xs[k];
  }
  cg_tensor *out = op->fn(xs);
  if (!out) return NAN;
  /* realized first: works around a scheduler bug (a reduce of a reduce over another axis,
   * e.g. sum(min(x, 0, keepdim) * w), fused into one kernel the renderer rejects) */
  if (!grad && cg_realize(out) != CG_OK) return NAN;
  cg_tensor *wt = cg_from_data(w, CG_FLOAT64, cg_shape(out), cg_ndim(out));
  cg_tensor *loss = cg_sum(cg_mul(out, wt), NULL, 0, false);
  if (grad) return cg_backward(loss) == CG_OK ? 0 : NAN;
  return cg_item(loss);
}

static void check_op(const gop *op) {
  gshapes sh = gparse_shapes(op->shapes);
  double *data[GMAX_IN];
  for (int k = 0; k < sh.nin; k++) {
    data[k] = malloc(sizeof(double) * (size_t)(sh.numel[k] ? sh.numel[k] : 1));
    gfill(op, data[k], sh.numel[k]);
  }
  cg_scope_begin();
  /* the output's size, for W */
  cg_tensor *probe[GMAX_IN];
  for (int k = 0; k < sh.nin; k++) probe[k] = cg_from_data(data[k], CG_FLOAT64, sh.shape[k], sh.ndim[k]);
  cg_tensor *out = op->fn(probe);
  CHECK(out != NULL, "%s: %s", op->name, cg_last_error());
  if (!out) {
    cg_scope_end();
    return;
  }
  int64_t nout = cg_numel(out);
  double *w = malloc(sizeof(double) * (size_t)(nout ? nout : 1));
  for (int64_t i = 0; i < nout; i++) w[i] = gr_unif(-1, 1);
  cg_tensor *xs[GMAX_IN];
  double r = eval_loss(op, &sh, data, w, xs, true);
  CHECK(r == 0, "%s: backward failed: %s", op->name, cg_last_error());
  int bad = 0;
  for (int k = 0; k < sh.nin && r == 0; k++) {
    int64_t n = sh.numel[k];
    double *ga = malloc(sizeof(double) * (size_t)(n ? n : 1));
    cg_tensor *g = cg_grad(xs[k]);
    CHECK(g != NULL, "%s: input %d has no gradient", op->name, k);
    if (!g || cg_read(g, CG_FLOAT64, ga, sizeof(double) * (size_t)n) != CG_OK) {
      CHECK(0, "%s: reading the gradient of input %d: %s", op->name, k, cg_last_error());
      free(ga);
      continue;
    }
    for (int64_t i = 0; i < n; i++) {
      double x0 = data[k][i], h = 1e-5 * (fabs(x0) > 1 ? fabs(x0) : 1);
      cg_scope_begin();
      data[k][i] = x0 + h;
      double lp = eval_loss(op, &sh, data, w, NULL, false);
      data[k][i] = x0 - h;
      double lm = eval_loss(op, &sh, data, w, NULL, false);
      data[k][i] = x0;
      cg_scope_end();
      double fd = (lp - lm) / (2 * h);
      bool ok = fabs(ga[i] - fd) <= 1e-6 + 1e-5 * fabs(fd);
      if (!ok && bad++ < 4) CHECK(ok, "%s: d/dx%d[%lld] = %.12g, finite differences %.12g", op->name, k, (long long)i, ga[i], fd);
      else if (ok) CHECK(ok, "");
    }
    free(ga);
  }
  free(w);
  cg_scope_end();
  for (int k = 0; k < sh.nin; k++) free(data[k]);
}

int main(void) {
  uint64_t seed = gr_seed_from_env();
  gr_state = seed;
  g_only = getenv("GRAD_FD_ONLY");
  printf("seed %llu (CG_TEST_SEED)\n", (unsigned long long)seed);
  for (int i = 0; i < N_GRAD_OPS; i++) {
    if (g_only && *g_only && strcmp(g_only, GRAD_OPS[i].name)) continue;
    int before = t_fail;
    check_op(&GRAD_OPS[i]);
    if (t_fail != before) fprintf(stderr, "  ^ op %s (seed %llu)\n", GRAD_OPS[i].name, (unsigned long long)seed);
  }
  return test_summary();
}
