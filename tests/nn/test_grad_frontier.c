/* Autograd's frontier (gradient.c realize_frontier): before a custom backward that
 * realizes (fused attention), the pending gradients are realized, and with them the
 * targets' gradients that are already complete, stored under their reshapes and permutes
 * (a weight read as w.T). A transformer block in float64, fused attention (each key block
 * a realize, blocks of 16 keys) against the unfused one (no frontier): the gradients of
 * the input and of every weight, the MLP's weights among those completed before the
 * attention's backward, within rtol 1e-10. Fresh random inputs (seed printed). */
#include "check.h"
#include "cgrad.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

enum { B = 2, T = 24, C = 16, H = 2, NP = 6 };
static uint64_t rs;
static cg_tensor *rnd(const int64_t *s, int nd, double amp) {
  int64_t n = 1;
  for (int i = 0; i < nd; i++) n *= s[i];
  double *v = malloc(sizeof(double) * (size_t)n);
  for (int64_t i = 0; i < n; i++) {
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    v[i] = amp * ((double)(rs >> 11) * 0x1p-53 * 2 - 1);
  }
  cg_tensor *t = cg_from_data(v, CG_FLOAT64, s, nd);
  free(v);
  return t;
}

/* d(sum(block(x) * r))/d{x, w_qkv, w_proj, w_fc, b_fc, w_out}, each read into g[i]. */
static bool grads(cg_tensor *const *p0, cg_tensor *r, bool fused, double **g) {
  cg_set_config("CG_FLASH_ATTN", fused ? "1" : "0");
  cg_scope_begin();
  cg_tensor *p[NP];
  for (int i = 0; i < NP; i++) p[i] = cg_contiguous(p0[i]), cg_set_requires_grad(p[i], true);
  cg_tensor *qkv = cg_linear_fn(p[0], p[1], NULL), *part[3];
  bool ok = cg_split(qkv, C, 2, part, 3) == 3;
  for (int i = 0; ok && i < 3; i++) part[i] = cg_transpose(cg_reshape(part[i], (int64_t[]){B, T, H, C / H}, 4), 1, 2);
  cg_tensor *y = ok ? cg_scaled_dot_product_attention(part[0], part[1], part[2], NULL, 0, true, 0) : NULL;
  y = cg_add(p[0], cg_linear_fn(cg_reshape(cg_transpose(y, 1, 2), (int64_t[]){B, T, C}, 3), p[2], NULL));
  y = cg_add(y, cg_linear_fn(cg_gelu(cg_linear_fn(y, p[3], p[4])), p[5], NULL));
  ok = y && cg_backward(cg_sum(cg_mul(y, r), NULL, 0, false)) == CG_OK;
  CHECK(ok, "%s block: %s", fused ? "fused" : "unfused", cg_last_error());
  for (int i = 0; ok && i < NP; i++) {
    int64_t n = cg_numel(p[i]);
    g[i] = malloc(sizeof(double) * (size_t)n);
    ok = cg_grad(p[i]) && cg_read(cg_grad(p[i]), CG_FLOAT64, g[i], sizeof(double) * (size_t)n) == CG_OK;
    CHECK(ok, "%s block: gradient %d: %s", fused ? "fused" : "unfused", i, cg_last_error());
  }
  cg_scope_end();
  return ok;
}

int main(void) {
  uint64_t seed = (uint64_t)time(NULL);
  printf("seed %llu\n", (unsigned long long)seed);
  rs = seed * 2654435761ull + 1;
  cg_set_config("CG_FLASH_BLOCK", "16");
  static const char *name[NP] = {"x", "w_qkv", "w_proj", "w_fc", "b_fc", "w_out"};
  cg_tensor *p[NP] = {rnd((int64_t[]){B, T, C}, 3, 1), rnd((int64_t[]){3 * C, C}, 2, 0.3), rnd((int64_t[]){C, C}, 2, 0.3),
                      rnd((int64_t[]){4 * C, C}, 2, 0.3), rnd((int64_t[]){4 * C}, 1, 0.3), rnd((int64_t[]){C, 4 * C}, 2, 0.3)};
  cg_tensor *r = rnd((int64_t[]){B, T, C}, 3, 1);
  {
    double *f[NP] = {0}, *u[NP] = {0};
    if (grads(p, r, true, f) && grads(p, r, false, u))
      for (int i = 0; i < NP; i++) {
        int64_t n = cg_numel(p[i]), bad = -1;
        for (int64_t j = 0; j < n && bad < 0; j++)
          if (!(fabs(f[i][j] - u[i][j]) <= 1e-10 * (1 + fabs(u[i][j])))) bad = j;
        CHECK(bad < 0, "d%s[%lld] fused %.17g, unfused %.17g", name[i], (long long)bad,
              bad < 0 ? 0 : f[i][bad], bad < 0 ? 0 : u[i][bad]);
      }
    for (int i = 0; i < NP; i++) free(f[i]), free(u[i]);
  }
  return test_summary();
}
