/* grad_ops.h — the differentiable public ops under test, one table shared by
 * test_grad_fd.c (against float64 central finite differences) and test_grad_torch.c
 * (against torch.autograd). Each entry: a name, its inputs' shapes, the op built through
 * cgrad, the same op as a Python expression over the list x of torch tensors, the range
 * the random inputs are drawn from, and the points (kinks) they keep away from.
 *
 * Header-only; each test program includes it once. */
#ifndef CG_TEST_GRAD_OPS_H
#define CG_TEST_GRAD_OPS_H
#include "cgrad.h"
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef cg_tensor *(*gop_fn)(cg_tensor *const *x);
typedef struct {
  const char *name;
  const char *shapes; /* inputs' shapes: "3,4|4" (an empty shape "" is a scalar) */
  gop_fn fn;
  const char *torch;  /* Python expression over x (list of tensors) and torch / F */
  double lo, hi;      /* inputs drawn from U[lo, hi] */
  const char *kinks;  /* "0,0.5": values inputs keep at least 0.05 away from */
} gop;

/* ---- seeded random numbers (splitmix64) -------------------------------------------- */
static uint64_t gr_state;
static inline uint64_t gr_u64(void) {
  uint64_t z = (gr_state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static inline double gr_unif(double lo, double hi) { return lo + (hi - lo) * ((double)(gr_u64() >> 11) * 0x1p-53); }
static inline uint64_t gr_seed_from_env(void) {
  const char *s = getenv("CG_TEST_SEED");
  return s && *s ? strtoull(s, NULL, 10) : 20240611u;
}

/* ---- shapes -------------------------------------------------------------------------- */
#define GMAX_IN 3
typedef struct {
  int nin;
  int ndim[GMAX_IN];
  int64_t shape[GMAX_IN][8];
  int64_t numel[GMAX_IN];
} gshapes;
static inline gshapes gparse_shapes(const char *s) {
  gshapes g = {0};
  const char *p = s;
  for (;;) {
    int k = g.nin++;
    g.numel[k] = 1;
    while (*p && *p != '|') {
      char *end;
      long v = strtol(p, &end, 10);
      g.shape[k][g.ndim[k]++] = v;
      g.numel[k] *= v;
      p = *end == ',' ? end + 1 : end;
    }
    if (!*p) break;
    p++;
  }
  return g;
}
/* Random inputs away from the kinks. */
static inline void gfill(const gop *op, double *x, int64_t n) {
  double k[8];
  int nk = 0;
  for (const char *p = op->kinks; p && *p && nk < 8;) {
    char *end;
    k[nk++] = strtod(p, &end);
    p = *end == ',' ? end + 1 : end;
  }
  for (int64_t i = 0; i < n; i++) {
    bool ok;
    do {
      x[i] = gr_unif(op->lo, op->hi);
      ok = true;
      for (int j = 0; j < nk; j++) ok &= fabs(x[i] - k[j]) >= 0.05;
    } while (!ok);
  }
}

/* ---- the ops --------------------------------------------------------------------------- */
#define A x[0]
#define B x[1]
#define I64(...) ((const int64_t[]){__VA_ARGS__})
#define INTS(...) ((const int[]){__VA_ARGS__})

static cg_tensor *f_neg(cg_tensor *const *x) { return cg_neg(A); }
static cg_tensor *f_abs(cg_tensor *const *x) { return cg_abs(A); }
static cg_tensor *f_exp(cg_tensor *const *x) { return cg_exp(A); }
static cg_tensor *f_log(cg_tensor *const *x) { return cg_log(A); }
static cg_tensor *f_exp2(cg_tensor *const *x) { return cg_exp2(A); }
static cg_tensor *f_log2(cg_tensor *const *x) { return cg_log2(A); }
static cg_tensor *f_sqrt(cg_tensor *const *x) { return cg_sqrt(A); }
static cg_tensor *f_rsqrt(cg_tensor *const *x) { return cg_rsqrt(A); }
static cg_tensor *f_recip(cg_tensor *const *x) { return cg_reciprocal(A); }
static cg_tensor *f_sin(cg_tensor *const *x) { return cg_sin(A); }
static cg_tensor *f_cos(cg_tensor *const *x) { return cg_cos(A); }
static cg_tensor *f_tan(cg_tensor *const *x) { return cg_tan(A); }
static cg_tensor *f_tanh(cg_tensor *const *x) { return cg_tanh(A); }
static cg_tensor *f_sigmoid(cg_tensor *const *x) { return cg_sigmoid(A); }
static cg_tensor *f_relu(cg_tensor *const *x) { return cg_relu(A); }
static cg_tensor *f_gelu(cg_tensor *const *x) { return cg_gelu(A); }
static cg_tensor *f_gelu_tanh(cg_tensor *const *x) { return cg_gelu_tanh(A); }
static cg_tensor *f_erf(cg_tensor *const *x) { return cg_erf(A); }
static cg_tensor *f_log1p(cg_tensor *const *x) { return cg_log1p(A); }
static cg_tensor *f_expm1(cg_tensor *const *x) { return cg_expm1(A); }
static cg_tensor *f_softplus(cg_tensor *const *x) { return cg_softplus(A, 1, 20); }
static cg_tensor *f_softplus_b(cg_tensor *const *x) { return cg_softplus(A, 2, 1); }
static cg_tensor *f_triu(cg_tensor *const *x) { return cg_triu(A, 1); }
static cg_tensor *f_tril(cg_tensor *const *x) { return cg_tril(A, -1); }
static cg_tensor *f_masked_fill(cg_tensor *const *x) {
  static const uint8_t m[4] = {1, 0, 0, 1};
  return cg_masked_fill(A, cg_from_data(m, CG_BOOL, I64(4), 1), -0.5);
}
static cg_tensor *f_sort(cg_tensor *const *x) {
  cg_tensor *v = NULL;
  return cg_sort(A, 1, true, &v, NULL) == CG_OK ? v : NULL;
}
static cg_tensor *f_topk(cg_tensor *const *x) {
  cg_tensor *v = NULL;
  return cg_topk(A, 2, 0, false, true, &v, NULL) == CG_OK ? v : NULL;
}
static cg_tensor *f_sdpa(cg_tensor *const *x) { return cg_scaled_dot_product_attention(A, B, x[2], NULL, 0, false, 0); }
static cg_tensor *f_sdpa_causal(cg_tensor *const *x) { return cg_scaled_dot_product_attention(A, B, x[2], NULL, 0, true, 0.7); }
static cg_tensor *f_sdpa_mask(cg_tensor *const *x) { /* row 1 fully masked: zeros, zero gradient */
  static const uint8_t m[12] = {1, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0};
  return cg_scaled_dot_product_attention(A, B, x[2], cg_from_data(m, CG_BOOL, I64(3, 4), 2), 0, false, 0);
}
static cg_tensor *f_rope(cg_tensor *const *x) { return cg_rope(A, 3, 10000, false); }
static cg_tensor *f_rope_il(cg_tensor *const *x) { return cg_rope(A, 0, 100, true); }
static cg_tensor *f_silu(cg_tensor *const *x) { return cg_silu(A); }
static cg_tensor *f_floor(cg_tensor *const *x) { return cg_floor(A); }
static cg_tensor *f_ceil(cg_tensor *const *x) { return cg_ceil(A); }
static cg_tensor *f_round(cg_tensor *const *x) { return cg_round(A); }
static cg_tensor *f_sign(cg_tensor *const *x) { return cg_sign(A); }
static cg_tensor *f_clamp(cg_tensor *const *x) { return cg_clamp(A, -0.5, 0.5); }
static cg_tensor *f_add(cg_tensor *const *x) { return cg_add(A, B); }
static cg_tensor *f_sub(cg_tensor *const *x) { return cg_sub(A, B); }
static cg_tensor *f_mul(cg_tensor *const *x) { return cg_mul(A, B); }
static cg_tensor *f_div(cg_tensor *const *x) { return cg_div(A, B); }
static cg_tensor *f_pow(cg_tensor *const *x) { return cg_pow(A, B); }
static cg_tensor *f_pow2(cg_tensor *const *x) { return cg_pow(A, cg_scalar(2)); }
static cg_tensor *f_maximum(cg_tensor *const *x) { return cg_maximum(A, B); }
static cg_tensor *f_minimum(cg_tensor *const *x) { return cg_minimum(A, B); }
static cg_tensor *f_scalar_mix(cg_tensor *const *x) { return cg_sub(cg_mul(A, cg_scalar(3)), cg_div(cg_scalar(2), A)); }
static const uint8_t WHERE_MASK[12] = {1, 0, 0, 1, 1, 1, 0, 0, 1, 0, 1, 0};
static cg_tensor *f_where(cg_tensor *const *x) {
  cg_tensor *c = cg_from_data(WHERE_MASK, CG_BOOL, I64(3, 4), 2);
  return cg_where(c, A, B);
}
/* movement */
static cg_tensor *f_reshape(cg_tensor *const *x) { return cg_reshape(A, I64(2, -1, 2), 3); }
static cg_tensor *f_permute(cg_tensor *const *x) { return cg_permute(A, INTS(2, 0, 1), 3); }
static cg_tensor *f_transpose(cg_tensor *const *x) { return cg_transpose(A, 0, 1); }
static cg_tensor *f_expand(cg_tensor *const *x) { return cg_expand(A, I64(2, 3, 4), 3); }
static cg_tensor *f_pad(cg_tensor *const *x) { return cg_pad(A, I64(1, 0, 2, 1), 0); }
static cg_tensor *f_padv(cg_tensor *const *x) { return cg_pad(A, I64(0, 2, 1, 1), 1.5); }
static cg_tensor *f_shrink(cg_tensor *const *x) { return cg_shrink(A, I64(1, 3, 0, 3)); }
static cg_tensor *f_slice2(cg_tensor *const *x) { return cg_slice(A, 1, 1, 5, 2); }
static cg_tensor *f_sliceneg(cg_tensor *const *x) { return cg_slice(A, 1, 4, 0, -2); }
static cg_tensor *f_flip(cg_tensor *const *x) { return cg_flip(A, INTS(0, 1), 2); }
static cg_tensor *f_cat(cg_tensor *const *x) { return cg_cat(x, 2, 0); }
static cg_tensor *f_cat1(cg_tensor *const *x) { return cg_cat(x, 3, 1); }
static cg_tensor *f_stack(cg_tensor *const *x) { return cg_stack(x, 2, 1); }
static cg_tensor *f_unsqueeze(cg_tensor *const *x) { return cg_squeeze(cg_unsqueeze(A, 1), 0); }
static cg_tensor *f_flatten(cg_tensor *const *x) { return cg_flatten(A, 0, 1); }
static cg_tensor *f_repeat(cg_tensor *const *x) { return cg_repeat(A, I64(2, 1, 2), 3); }
static cg_tensor *f_split(cg_tensor *const *x) {
  cg_tensor *p[3];
  int n = cg_split(A, 2, 1, p, 3);
  return n == 3 ? cg_mul(p[1], p[2]) : NULL;
}
static cg_tensor *f_contig(cg_tensor *const *x) { return cg_contiguous(cg_transpose(A, 0, 1)); }
/* reductions */
static cg_tensor *f_sum(cg_tensor *const *x) { return cg_sum(A, INTS(1), 1, false); }
static cg_tensor *f_sumall(cg_tensor *const *x) { return cg_sum(A, NULL, 0, false); }
static cg_tensor *f_mean(cg_tensor *const *x) { return cg_mean(A, INTS(0, 2), 2, true); }
static cg_tensor *f_max(cg_tensor *const *x) { return cg_max(A, INTS(1), 1, false); }
static cg_tensor *f_maxall(cg_tensor *const *x) { return cg_max(A, NULL, 0, false); }
static cg_tensor *f_min(cg_tensor *const *x) { return cg_min(A, INTS(0), 1, true); }
static cg_tensor *f_minall(cg_tensor *const *x) { return cg_min(A, NULL, 0, false); }
static cg_tensor *f_prod(cg_tensor *const *x) { return cg_prod(A, INTS(1), 1, false); }
static cg_tensor *f_var(cg_tensor *const *x) { return cg_var(A, INTS(1), 1, 1, false); }
static cg_tensor *f_std(cg_tensor *const *x) { return cg_std(A, INTS(0), 1, 1, false); }
static cg_tensor *f_lse(cg_tensor *const *x) { return cg_logsumexp(A, INTS(1), 1, false); }
static cg_tensor *f_softmax(cg_tensor *const *x) { return cg_softmax(A, 1); }
static cg_tensor *f_logsoftmax(cg_tensor *const *x) { return cg_log_softmax(A, 0); }
static cg_tensor *f_cumsum(cg_tensor *const *x) { return cg_cumsum(A, 1); }
/* linear algebra and indexing */
static cg_tensor *f_matmul(cg_tensor *const *x) { return cg_matmul(A, B); }
static cg_tensor *f_matmul_wt(cg_tensor *const *x) { return cg_matmul(A, cg_transpose(B, 0, 1)); } /* x @ w.T: w's gradient as g^T @ x */
static cg_tensor *f_dot(cg_tensor *const *x) { return cg_dot(A, B); }
static const int32_t GATHER_IDX[6] = {0, 3, 1, 1, 2, 0};
static cg_tensor *f_gather(cg_tensor *const *x) { return cg_gather(A, 1, cg_from_data(GATHER_IDX, CG_INT32, I64(3, 2), 2)); }
static const int32_t SEL_IDX[4] = {2, 0, 2, 1};
static cg_tensor *f_index_select(cg_tensor *const *x) { return cg_index_select(A, 0, cg_from_data(SEL_IDX, CG_INT32, I64(4), 1)); }
static const int32_t CE_Y[3] = {1, 3, 0};
static cg_tensor *f_xent(cg_tensor *const *x) { /* cross entropy: -mean(log_softmax(x)[i, y_i]) */
  cg_tensor *y = cg_from_data(CE_Y, CG_INT32, I64(3, 1), 2);
  return cg_neg(cg_mean(cg_gather(cg_log_softmax(A, 1), 1, y), NULL, 0, false));
}
static cg_tensor *f_mlp(cg_tensor *const *x) { /* a small network: relu(x @ w1) @ w2, tanh */
  return cg_tanh(cg_matmul(cg_relu(cg_matmul(A, B)), cg_transpose(x[2], 0, 1)));
}

#define U(name, f, torch, lo, hi, kinks) {name, "3,4", f, torch, lo, hi, kinks}
static const gop GRAD_OPS[] = {
  /* unary */
  U("neg", f_neg, "-x[0]", -2, 2, ""),
  U("abs", f_abs, "torch.abs(x[0])", -2, 2, "0"),
  U("exp", f_exp, "torch.exp(x[0])", -2, 2, ""),
  U("log", f_log, "torch.log(x[0])", 0.2, 3, ""),
  U("exp2", f_exp2, "torch.exp2(x[0])", -2, 2, ""),
  U("log2", f_log2, "torch.log2(x[0])", 0.2, 3, ""),
  U("sqrt", f_sqrt, "torch.sqrt(x[0])", 0.2, 3, ""),
  U("rsqrt", f_rsqrt, "torch.rsqrt(x[0])", 0.2, 3, ""),
  U("reciprocal", f_recip, "torch.reciprocal(x[0])", 0.3, 3, ""),
  U("sin", f_sin, "torch.sin(x[0])", -3, 3, ""),
  U("cos", f_cos, "torch.cos(x[0])", -3, 3, ""),
  U("tan", f_tan, "torch.tan(x[0])", -1.2, 1.2, ""),
  U("tanh", f_tanh, "torch.tanh(x[0])", -2, 2, ""),
  U("sigmoid", f_sigmoid, "torch.sigmoid(x[0])", -3, 3, ""),
  U("relu", f_relu, "torch.relu(x[0])", -2, 2, "0"),
  U("gelu", f_gelu, "F.gelu(x[0])", -3, 3, ""),
  U("gelu_tanh", f_gelu_tanh, "F.gelu(x[0], approximate='tanh')", -3, 3, ""),
  U("erf", f_erf, "torch.erf(x[0])", -3, 3, ""),
  {"erf_wide", "2,5", f_erf, "torch.erf(x[0])", -6, 6, "-0.9277,0.9277,-2,2"},
  U("log1p", f_log1p, "torch.log1p(x[0])", -0.9, 2, "-0.5,0.5"),
  {"log1p_small", "2,3", f_log1p, "torch.log1p(x[0])", -0.01, 0.01, ""},
  U("expm1", f_expm1, "torch.expm1(x[0])", -2, 2, "-0.5,0.5"),
  {"expm1_small", "2,3", f_expm1, "torch.expm1(x[0])", -0.01, 0.01, ""},
  U("softplus", f_softplus, "F.softplus(x[0])", -3, 3, ""),
  U("softplus_beta", f_softplus_b, "F.softplus(x[0], 2, 1)", -2, 2, "0.5"),
  U("triu", f_triu, "torch.triu(x[0], 1)", -2, 2, ""),
  {"tril_batch", "2,3,4", f_tril, "torch.tril(x[0], -1)", -2, 2, ""},
  U("masked_fill", f_masked_fill, "x[0].masked_fill(torch.tensor([1, 0, 0, 1]).bool(), -0.5)", -2, 2, ""),
  U("sort", f_sort, "torch.sort(x[0], 1, descending=True)[0]", -2, 2, ""),
  U("topk", f_topk, "torch.topk(x[0], 2, 0, largest=False)[0]", -2, 2, ""),
  U("silu", f_silu, "F.silu(x[0])", -3, 3, ""),
  U("floor", f_floor, "torch.floor(x[0])", -2, 2, "-2,-1,0,1,2"),
  U("ceil", f_ceil, "torch.ceil(x[0])", -2, 2, "-2,-1,0,1,2"),
  U("round", f_round, "torch.round(x[0])", -2, 2, "-1.5,-0.5,0.5,1.5"),
  U("sign", f_sign, "torch.sign(x[0])", -2, 2, "0"),
  U("clamp", f_clamp, "torch.clamp(x[0], -0.5, 0.5)", -1, 1, "-0.5,0.5"),
  /* binary, with broadcasting and weak scalars */
  {"add", "3,4|3,4", f_add, "x[0] + x[1]", -2, 2, ""},
  {"add_bcast", "3,4|4", f_add, "x[0] + x[1]", -2, 2, ""},
  {"sub_bcast", "3,1|1,4", f_sub, "x[0] - x[1]", -2, 2, ""},
  {"mul", "3,4|3,4", f_mul, "x[0] * x[1]", -2, 2, ""},
  {"mul_bcast", "2,3,4|3,1", f_mul, "x[0] * x[1]", -2, 2, ""},
  {"div", "3,4|3,4", f_div, "x[0] / x[1]", 0.5, 2, ""},
  {"div_bcast", "4|3,4", f_div, "x[0] / x[1]", 0.5, 2, ""},
  {"pow", "3,4|3,4", f_pow, "torch.pow(x[0], x[1])", 0.5, 2, ""},
  {"pow_scalar", "3,4", f_pow2, "x[0] ** 2", -2, 2, ""},
  {"scalar_mix", "3,4", f_scalar_mix, "x[0] * 3 - 2 / x[0]", 0.5, 2, ""},
  {"maximum", "3,4|3,4", f_maximum, "torch.maximum(x[0], x[1])", -2, 2, ""},
  {"maximum_bcast", "3,4|1,4", f_maximum, "torch.maximum(x[0], x[1])", -2, 2, ""},
  {"minimum", "3,4|3,4", f_minimum, "torch.minimum(x[0], x[1])", -2, 2, ""},
  {"where", "3,4|4", f_where, "torch.where(torch.tensor([1,0,0,1,1,1,0,0,1,0,1,0]).bool().reshape(3,4), x[0], x[1])", -2, 2, ""},
  /* movement */
  {"reshape", "2,3,4", f_reshape, "x[0].reshape(2, -1, 2)", -2, 2, ""},
  {"permute", "2,3,4", f_permute, "x[0].permute(2, 0, 1)", -2, 2, ""},
  U("transpose", f_transpose, "x[0].transpose(0, 1)", -2, 2, ""),
  {"expand", "3,1", f_expand, "x[0].expand(2, 3, 4)", -2, 2, ""},
  U("pad", f_pad, "F.pad(x[0], (2, 1, 1, 0))", -2, 2, ""),
  U("pad_value", f_padv, "F.pad(x[0], (1, 1, 0, 2), value=1.5)", -2, 2, ""),
  U("shrink", f_shrink, "x[0][1:3, 0:3]", -2, 2, ""),
  {"slice_step", "3,5", f_slice2, "x[0][:, 1:5:2]", -2, 2, ""},
  {"slice_neg", "3,5", f_sliceneg, "x[0].flip(1)[:, 0:4:2]", -2, 2, ""},
  U("flip", f_flip, "x[0].flip(0, 1)", -2, 2, ""),
  {"cat", "2,4|3,4", f_cat, "torch.cat([x[0], x[1]], 0)", -2, 2, ""},
  {"cat3", "3,1|3,2|3,3", f_cat1, "torch.cat([x[0], x[1], x[2]], 1)", -2, 2, ""},
  {"stack", "3,4|3,4", f_stack, "torch.stack([x[0], x[1]], 1)", -2, 2, ""},
  {"squeeze", "3,4", f_unsqueeze, "x[0].unsqueeze(1).squeeze(0)", -2, 2, ""},
  {"flatten", "2,3,4", f_flatten, "x[0].flatten(0, 1)", -2, 2, ""},
  {"repeat", "3,2", f_repeat, "x[0].repeat(2, 1, 2)", -2, 2, ""},
  {"split", "3,5", f_split, "x[0][:, 2:4] * x[0][:, 4:5]", -2, 2, ""},
  U("contiguous", f_contig, "x[0].transpose(0, 1).contiguous()", -2, 2, ""),
  /* reductions */
  U("sum", f_sum, "x[0].sum(1)", -2, 2, ""),
  U("sum_all", f_sumall, "x[0].sum()", -2, 2, ""),
  {"mean", "2,3,4", f_mean, "x[0].mean((0, 2), keepdim=True)", -2, 2, ""},
  U("max", f_max, "torch.amax(x[0], 1)", -2, 2, ""),
  U("max_all", f_maxall, "torch.amax(x[0])", -2, 2, ""),
  U("min", f_min, "torch.amin(x[0], 0, keepdim=True)", -2, 2, ""),
  U("min_all", f_minall, "torch.amin(x[0])", -2, 2, ""),
  U("prod", f_prod, "torch.prod(x[0], 1)", -2, 2, "0"),
  U("var", f_var, "torch.var(x[0], 1)", -2, 2, ""),
  U("std", f_std, "torch.std(x[0], 0)", -2, 2, ""),
  U("logsumexp", f_lse, "torch.logsumexp(x[0], 1)", -2, 2, ""),
  U("softmax", f_softmax, "torch.softmax(x[0], 1)", -2, 2, ""),
  U("log_softmax", f_logsoftmax, "torch.log_softmax(x[0], 0)", -2, 2, ""),
  U("cumsum", f_cumsum, "torch.cumsum(x[0], 1)", -2, 2, ""),
  /* linear algebra, indexing, composites */
  {"matmul", "3,4|4,2", f_matmul, "x[0] @ x[1]", -2, 2, ""},
  {"matmul_batch", "2,1,2,3|3,3,2", f_matmul, "x[0] @ x[1]", -2, 2, ""},
  {"matmul_vec", "3|3,2", f_matmul, "x[0] @ x[1]", -2, 2, ""},
  /* the custom backward's two shapes (a linear layer's batched rows @ a 2-d weight; equal batches) */
  {"matmul_rows", "2,3,4|4,5", f_matmul, "x[0] @ x[1]", -2, 2, ""},
  {"matmul_bmm", "2,3,4|2,4,5", f_matmul, "x[0] @ x[1]", -2, 2, ""},
  {"matmul_rows_wt", "2,3,4|5,4", f_matmul_wt, "x[0] @ x[1].T", -2, 2, ""},
  {"matmul_wt", "3,4|5,4", f_matmul_wt, "x[0] @ x[1].T", -2, 2, ""},
  {"dot", "4|4", f_dot, "torch.dot(x[0], x[1])", -2, 2, ""},
  U("gather", f_gather, "torch.gather(x[0], 1, torch.tensor([[0, 3], [1, 1], [2, 0]]))", -2, 2, ""),
  U("index_select", f_index_select, "torch.index_select(x[0], 0, torch.tensor([2, 0, 2, 1]))", -2, 2, ""),
  U("cross_entropy", f_xent, "F.cross_entropy(x[0], torch.tensor([1, 3, 0]))", -2, 2, ""),
  {"sdpa", "2,3,4|2,5,4|2,5,3", f_sdpa, "(torch.softmax((x[0] @ x[1].transpose(-2, -1)) * 0.5 + 0, -1) @ x[2])", -1.5, 1.5, ""},
  {"sdpa_causal", "2,1,4,3|2,2,4,3|2,2,4,2", f_sdpa_causal, "(torch.softmax((x[0] @ x[1].transpose(-2, -1)) * 0.7 + torch.zeros(4, 4).masked_fill(~torch.ones(4, 4).bool().tril(), float('-inf')).to(x[0].dtype), -1) @ x[2])", -1.5, 1.5, ""},
  {"sdpa_masked_row", "3,2|4,2|4,3", f_sdpa_mask, "(lambda M: torch.where(M.any(-1, keepdim=True), torch.softmax(((x[0] @ x[1].transpose(-2, -1)) * 2 ** -0.5).masked_fill(~M, -1e9), -1), torch.zeros(())) @ x[2])(torch.tensor([[1, 0, 1, 1], [0, 0, 0, 0], [0, 1, 1, 0]]).bool())", -1.5, 1.5, ""},
  {"rope", "2,5,6", f_rope, "(lambda X, off, th: (lambda T, D: (lambda ang: torch.cat([X[..., :D//2] * ang.cos() - X[..., D//2:] * ang.sin(), X[..., D//2:] * ang.cos() + X[..., :D//2] * ang.sin()], -1))((torch.arange(T, dtype=torch.float64)[:, None] + off) * th ** (-2 * torch.arange(D // 2, dtype=torch.float64) / D)).to(X.dtype))(X.shape[-2], X.shape[-1]))(x[0], 3, 10000)", -2, 2, ""},
  {"rope_interleaved", "1,2,3,4", f_rope_il, "(lambda X, off, th: (lambda T, D: (lambda ang: torch.stack([X[..., 0::2] * ang.cos() - X[..., 1::2] * ang.sin(), X[..., 1::2] * ang.cos() + X[..., 0::2] * ang.sin()], -1).flatten(-2))((torch.arange(T, dtype=torch.float64)[:, None] + off) * th ** (-2 * torch.arange(D // 2, dtype=torch.float64) / D)).to(X.dtype))(X.shape[-2], X.shape[-1]))(x[0], 0, 100)", -2, 2, ""},
  {"mlp", "2,3|3,4|2,4", f_mlp, "torch.tanh(torch.relu(x[0] @ x[1]) @ x[2].transpose(0, 1))", -1, 1, ""},
};
#define N_GRAD_OPS ((int)(sizeof GRAD_OPS / sizeof GRAD_OPS[0]))
#undef U

#endif
