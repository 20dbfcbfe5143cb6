/* The ops a transformer needs, against torch (float32 values and gradients, random inputs;
 * rtol 1e-4, atol 1e-5 unless a case says otherwise): erf, exact and tanh GELU, softplus,
 * log1p, expm1, triu/tril, masked_fill, sort/topk (values, gradients and indices),
 * scaled_dot_product_attention (plain, causal, bool mask with a fully-masked row, additive
 * mask with -inf, scores of +-1e4) and rotary embeddings (both pair conventions). Torch
 * 1.13 has no F.scaled_dot_product_attention: its snippet is the math it is defined by.
 * Then checks against plain C: erf's error in ulps over a dense sweep (float32 <= 2 ulp,
 * float64 <= 2e-15 relative), log1p/expm1 for tiny x (relative 4 ulp), sort with ties and
 * NaN, multinomial's statistics and bit-reproducibility, attention dropout, bad inputs. */
#include "test_functional_ref.h"
#include <float.h>

static const double RT = 1e-4, AT = 1e-5;
#define SDPA_PY(scale, add) "out = torch.softmax((x[0] @ x[1].transpose(-2, -1)) * " scale " + " add ", -1) @ x[2]"

static void torch_cases(void) {
  cg_tensor *x, *y, *q, *k, *v, *m;

  ref_case("erf", RT, AT);
  x = ref_float("4,33", -4.5, 4.5, true);
  ref_out(cg_erf(x), "out = torch.erf(x[0])");
  ref_case("gelu (exact)", RT, AT);
  x = ref_float("4,33", -5, 5, true);
  ref_out(cg_gelu(x), "out = F.gelu(x[0])");
  ref_case("gelu_tanh", RT, AT);
  x = ref_float("4,33", -5, 5, true);
  ref_out(cg_gelu_tanh(x), "out = F.gelu(x[0], approximate='tanh')");
  ref_case("softplus", RT, AT);
  x = ref_float("4,33", -30, 30, true);
  ref_out(cg_softplus(x, 1, 20), "out = F.softplus(x[0])");
  ref_case("softplus beta 2 threshold 5", RT, AT);
  x = ref_float("4,33", -6, 6, true);
  ref_out(cg_softplus(x, 2, 5), "out = F.softplus(x[0], 2, 5)");
  ref_case("log1p", RT, AT);
  x = ref_float("4,33", -0.99, 5, true);
  ref_out(cg_log1p(x), "out = torch.log1p(x[0])");
  ref_case("expm1", RT, AT);
  x = ref_float("4,33", -5, 5, true);
  ref_out(cg_expm1(x), "out = torch.expm1(x[0])");

  ref_case("triu 1 (batched)", RT, AT);
  x = ref_float("2,4,5", -1, 1, true);
  ref_out(cg_triu(x, 1), "out = torch.triu(x[0], 1)");
  ref_case("tril -2", RT, AT);
  x = ref_float("5,3", -1, 1, true);
  ref_out(cg_tril(x, -2), "out = torch.tril(x[0], -2)");
  ref_case("tril 0 (wide)", RT, AT);
  x = ref_float("3,6", -1, 1, true);
  ref_out(cg_tril(x, 0), "out = torch.tril(x[0])");
  ref_case("masked_fill (broadcast mask)", RT, AT);
  x = ref_float("3,4,5", -1, 1, true), m = ref_float("4,1", -1, 1, false);
  ref_out(cg_masked_fill(x, cg_gt(m, cg_scalar(0)), 2.5), "out = x[0].masked_fill(x[1] > 0, 2.5)");

  cg_tensor *vals, *idx;
  ref_case("sort dim 1 ascending", RT, AT);
  x = ref_float("3,7,5", -1, 1, true);
  CHECK(cg_sort(x, 1, false, &vals, &idx) == CG_OK, "sort: %s", cg_last_error());
  ref_out(vals, "out, i = torch.sort(x[0], 1); extra = [i]");
  ref_extra(idx);
  ref_case("sort last dim descending", RT, AT);
  x = ref_float("4,9", -1, 1, true);
  CHECK(cg_sort(x, -1, true, &vals, &idx) == CG_OK, "sort: %s", cg_last_error());
  ref_out(vals, "out, i = torch.sort(x[0], -1, descending=True); extra = [i]");
  ref_extra(idx);
  ref_case("topk 3 largest dim 0", RT, AT);
  x = ref_float("8,6", -1, 1, true);
  CHECK(cg_topk(x, 3, 0, true, true, &vals, &idx) == CG_OK, "topk: %s", cg_last_error());
  ref_out(vals, "out, i = torch.topk(x[0], 3, 0); extra = [i]");
  ref_extra(idx);
  ref_case("topk 2 smallest", RT, AT);
  x = ref_float("2,3,10", -1, 1, true);
  CHECK(cg_topk(x, 2, -1, false, true, &vals, &idx) == CG_OK, "topk: %s", cg_last_error());
  ref_out(vals, "out, i = torch.topk(x[0], 2, -1, largest=False); extra = [i]");
  ref_extra(idx);

  ref_case("sdpa", RT, AT);
  q = ref_float("2,3,5,4", -1, 1, true), k = ref_float("2,3,6,4", -1, 1, true), v = ref_float("2,3,6,5", -1, 1, true);
  ref_out(cg_scaled_dot_product_attention(q, k, v, NULL, 0, false, 0), SDPA_PY("0.5", "0"));
  ref_case("sdpa causal, scale 0.3, broadcast batch", RT, AT);
  q = ref_float("2,2,7,4", -1, 1, true), k = ref_float("1,2,7,4", -1, 1, true), v = ref_float("2,1,7,3", -1, 1, true);
  ref_out(cg_scaled_dot_product_attention(q, k, v, NULL, 0, true, 0.3),
          SDPA_PY("0.3", "torch.zeros(7, 7).masked_fill(~torch.ones(7, 7).bool().tril(), float('-inf'))"));
  ref_case("sdpa bool mask with a fully-masked row", RT, AT);
  q = ref_float("2,6,4", -1, 1, true), k = ref_float("2,5,4", -1, 1, true), v = ref_float("2,5,3", -1, 1, true);
  m = ref_float("6,5", -1, 1, false);
  {
    /* row 2 masked everywhere: m < -1 never holds for m in [-1, 1) */
    cg_tensor *row = cg_from_data((float[]){1, 1, 0, 1, 1, 1}, CG_FLOAT32, (int64_t[]){6, 1}, 2);
    cg_tensor *mask = cg_logical_and(cg_gt(m, cg_scalar(-0.3)), cg_gt(row, cg_scalar(0.5)));
    ref_out(cg_scaled_dot_product_attention(q, k, v, mask, 0, false, 0),
            "M = (x[3] > -0.3) & torch.tensor([1, 1, 0, 1, 1, 1]).bool()[:, None]; "
            "out = torch.where(M.any(-1, keepdim=True), torch.softmax(((x[0] @ x[1].transpose(-2, -1)) * 0.5).masked_fill(~M, -1e9), -1), "
            "torch.zeros(())) @ x[2]");
  }
  ref_case("sdpa additive mask with -inf", RT, AT);
  q = ref_float("3,4,8", -1, 1, true), k = ref_float("3,6,8", -1, 1, true), v = ref_float("3,6,2", -1, 1, true);
  m = ref_float("4,6", -2, 2, false);
  ref_out(cg_scaled_dot_product_attention(q, k, v, cg_masked_fill(m, cg_lt(m, cg_scalar(-1.2)), -INFINITY), 0, false, 0),
          SDPA_PY("8 ** -0.5", "x[3].masked_fill(x[3] < -1.2, float('-inf'))"));
  /* scale 1e4 saturates the softmax: gradients are 1e4 * p(1 - p) of float32-rounded p,
   * so they are compared to 2e-3 absolute (2e-7 of the scale) */
  ref_case("sdpa scores of +-1e4", 1e-4, 2e-3);
  q = ref_float("2,5,4", -1, 1, true), k = ref_float("2,5,4", -1, 1, true), v = ref_float("2,5,3", -1, 1, true);
  ref_out(cg_scaled_dot_product_attention(q, k, v, NULL, 0, false, 1e4), SDPA_PY("1e4", "0"));

  ref_case("rope (rotate half, offset 3)", RT, AT);
  x = ref_float("2,3,5,8", -1, 1, true);
  ref_out(cg_rope(x, 3, 10000, false),
          "T, D = 5, 8; ang = ((torch.arange(T, dtype=torch.float64)[:, None] + 3) * 10000 ** (-2 * torch.arange(D // 2, dtype=torch.float64) / D)).float(); "
          "X = x[0]; out = torch.cat([X[..., :4] * ang.cos() - X[..., 4:] * ang.sin(), X[..., 4:] * ang.cos() + X[..., :4] * ang.sin()], -1)");
  ref_case("rope (interleaved, theta 500)", RT, AT);
  x = ref_float("2,6,4", -1, 1, true);
  ref_out(cg_rope(x, 0, 500, true),
          "T, D = 6, 4; ang = (torch.arange(T, dtype=torch.float64)[:, None] * 500 ** (-2 * torch.arange(D // 2, dtype=torch.float64) / D)).float(); "
          "X = x[0]; out = torch.stack([X[..., 0::2] * ang.cos() - X[..., 1::2] * ang.sin(), X[..., 1::2] * ang.cos() + X[..., 0::2] * ang.sin()], -1).flatten(-2)");
  (void)y;
}

/* ---- plain C references --------------------------------------------------------------- */

static double *read_f64(cg_tensor *t) {
  int64_t n = 0;
  cg_tensor *c = cg_cast(t, CG_FLOAT64);
  double *d = c ? ref_read_tensor(c, &n) : NULL;
  return d;
}

static double ulps32(float got, double want) {
  if (got == want) return 0;
  double sp = want == 0 ? FLT_TRUE_MIN : fabs(nextafterf((float)fabs(want), INFINITY) - (float)fabs(want));
  return fabs((double)got - want) / sp;
}

static void test_erf_ulp(void) {
  enum { N = 60000 };
  float *x = malloc(sizeof(float) * N);
  double *xd = malloc(sizeof(double) * N);
  for (int i = 0; i < N; i++) {
    double r = i < N / 2 ? ref_unif(-6, 6) : ref_unif(-1, 1) * pow(10, -ref_unif(0, 6)); /* dense near 0 too */
    x[i] = (float)r, xd[i] = r;
  }
  x[0] = 0, x[1] = -0.0f, x[2] = INFINITY, x[3] = -INFINITY, x[4] = 0.927734375f, x[5] = 0.9277343f, x[6] = 4, x[7] = 1e-30f;
  x[8] = 1e20f, x[9] = -3e38f; /* the small-|x| polynomial overflows (to NaN) in these lanes: the select drops it */
  cg_scope_begin();
  cg_tensor *t = cg_from_data(x, CG_FLOAT32, (int64_t[]){N}, 1);
  float *got = malloc(sizeof(float) * N);
  CHECK(cg_read(cg_erf(t), CG_FLOAT32, got, sizeof(float) * N) == CG_OK, "erf: %s", cg_last_error());
  double worst = 0;
  int wi = 0;
  for (int i = 0; i < N; i++) {
    double u = ulps32(got[i], erf((double)x[i]));
    if (u > worst) worst = u, wi = i;
  }
  printf("erf float32: max error %.2f ulp (at x = %.9g) over %d points\n", worst, x[wi], N);
  CHECK(worst <= 2, "erf float32: %.2f ulp at x = %.9g (got %.9g, want %.9g)", worst, x[wi], got[wi], erf((double)x[wi]));
  /* float64 */
  double *gd = malloc(sizeof(double) * N);
  cg_tensor *td = cg_from_data(xd, CG_FLOAT64, (int64_t[]){N}, 1);
  CHECK(cg_read(cg_erf(td), CG_FLOAT64, gd, sizeof(double) * N) == CG_OK, "erf f64: %s", cg_last_error());
  double wrel = 0;
  for (int i = 0; i < N; i++) {
    double want = erf(xd[i]), rel = want == 0 ? fabs(gd[i]) : fabs(gd[i] - want) / fabs(want);
    if (rel > wrel) wrel = rel, wi = i;
  }
  printf("erf float64: max relative error %.3g (at x = %.17g)\n", wrel, xd[wi]);
  CHECK(wrel <= 2e-15, "erf float64: relative error %.3g at x = %.17g", wrel, xd[wi]);
  /* bfloat16 and float16: within one unit of the format */
  cg_tensor *tb = cg_erf(cg_cast(t, CG_BFLOAT16)), *th = cg_erf(cg_cast(t, CG_FLOAT16));
  CHECK(tb && cg_dtype_of(tb) == CG_BFLOAT16 && th && cg_dtype_of(th) == CG_FLOAT16, "erf keeps 16-bit dtypes");
  double *gb = read_f64(tb), *gh = read_f64(th), *xb = read_f64(cg_cast(t, CG_BFLOAT16)), *xh = read_f64(cg_cast(t, CG_FLOAT16));
  int bad = 0;
  for (int i = 10; gb && gh && xb && xh && i < N; i++) {
    bad += !(fabs(gb[i] - erf(xb[i])) <= 7.8125e-3 * fabs(erf(xb[i])) + 1e-30);
    bad += !(fabs(gh[i] - erf(xh[i])) <= 9.765625e-4 * fabs(erf(xh[i])) + 6e-8);
  }
  CHECK(gb && gh && bad == 0, "erf bf16/f16: %d values off by more than one unit", bad);
  free(gb), free(gh), free(xb), free(xh);
  cg_scope_end();
  free(x), free(xd), free(got), free(gd);
}

static void test_log1p_expm1_small(void) {
  enum { N = 4000 };
  float x[N];
  for (int i = 0; i < N; i++) x[i] = (float)(ref_unif(-1, 1) * pow(10, -ref_unif(1, 12)));
  cg_scope_begin();
  cg_tensor *t = cg_from_data(x, CG_FLOAT32, (int64_t[]){N}, 1);
  float a[N], b[N];
  CHECK(cg_read(cg_log1p(t), CG_FLOAT32, a, sizeof a) == CG_OK && cg_read(cg_expm1(t), CG_FLOAT32, b, sizeof b) == CG_OK, "%s",
        cg_last_error());
  double wa = 0, wb = 0;
  for (int i = 0; i < N; i++) {
    wa = fmax(wa, ulps32(a[i], log1p((double)x[i])));
    wb = fmax(wb, ulps32(b[i], expm1((double)x[i])));
  }
  printf("log1p / expm1 on |x| in [1e-13, 0.1]: max %.2f / %.2f ulp\n", wa, wb);
  CHECK(wa <= 4 && wb <= 4, "log1p %.2f ulp, expm1 %.2f ulp (want <= 4)", wa, wb);
  /* the far ends stay finite and right */
  float e[4] = {-1, 100, -100, 1e30f}, r[4];
  cg_tensor *te = cg_from_data(e, CG_FLOAT32, (int64_t[]){4}, 1);
  CHECK(cg_read(cg_log1p(te), CG_FLOAT32, r, sizeof r) == CG_OK && r[0] == -INFINITY && fabs(r[1] - log1p(100.0)) < 1e-5 &&
            isnan(r[2]) && fabs(r[3] - log1p(1e30)) < 1e-4 * 69,
        "log1p ends: %g %g %g %g", r[0], r[1], r[2], r[3]);
  CHECK(cg_read(cg_expm1(te), CG_FLOAT32, r, sizeof r) == CG_OK && fabs(r[0] - expm1(-1.0)) < 1e-7 && isinf(r[1]) && r[2] == -1 &&
            isinf(r[3]),
        "expm1 ends: %g %g %g %g", r[0], r[1], r[2], r[3]);
  cg_scope_end();
}

/* sort with ties (stable: index order) and NaN (largest), on int32 and float32, and k = 0. */
static void test_sort_edges(void) {
  cg_scope_begin();
  float xf[7] = {2, NAN, -1, 2, 0, NAN, -1};
  cg_tensor *t = cg_from_data(xf, CG_FLOAT32, (int64_t[]){7}, 1), *v, *i;
  float got[7];
  int64_t gi[7];
  CHECK(cg_sort(t, 0, false, &v, &i) == CG_OK && cg_read(v, CG_FLOAT32, got, sizeof got) == CG_OK &&
            cg_read(i, CG_INT64, gi, sizeof gi) == CG_OK,
        "sort: %s", cg_last_error());
  const int64_t want_asc[7] = {2, 6, 4, 0, 3, 1, 5};
  bool ok = true;
  for (int j = 0; j < 7; j++) ok &= gi[j] == want_asc[j] && (isnan(xf[want_asc[j]]) ? isnan(got[j]) : got[j] == xf[want_asc[j]]);
  CHECK(ok, "ascending with ties and NaN: indices %lld %lld %lld %lld %lld %lld %lld", (long long)gi[0], (long long)gi[1],
        (long long)gi[2], (long long)gi[3], (long long)gi[4], (long long)gi[5], (long long)gi[6]);
  CHECK(cg_sort(t, 0, true, NULL, &i) == CG_OK && cg_read(i, CG_INT64, gi, sizeof gi) == CG_OK, "sort desc: %s", cg_last_error());
  const int64_t want_desc[7] = {1, 5, 0, 3, 4, 2, 6};
  ok = true;
  for (int j = 0; j < 7; j++) ok &= gi[j] == want_desc[j];
  CHECK(ok, "descending with ties and NaN: first indices %lld %lld %lld", (long long)gi[0], (long long)gi[1], (long long)gi[2]);
  int32_t xi[6] = {5, -3, 9, 0, 5, 7}, gv[3];
  cg_tensor *ti = cg_from_data(xi, CG_INT32, (int64_t[]){2, 3}, 2);
  CHECK(cg_topk(ti, 1, 1, true, true, &v, &i) == CG_OK && cg_dtype_of(v) == CG_INT32 && cg_read(v, CG_INT32, gv, 2 * sizeof(int32_t)) == CG_OK &&
            gv[0] == 9 && gv[1] == 7,
        "topk int32: %s", cg_last_error());
  CHECK(cg_topk(ti, 0, 1, true, true, &v, &i) == CG_OK && cg_numel(v) == 0 && cg_shape(v)[1] == 0, "topk k = 0: %s", cg_last_error());
  CHECK(cg_topk(ti, 4, 1, true, true, &v, &i) != CG_OK && strstr(cg_last_error(), "k in [0, 3]"), "k > n: %s", cg_last_error());
  CHECK(cg_sort(ti, 2, true, &v, &i) != CG_OK, "bad dim must fail");
  CHECK(cg_sort(NULL, 0, true, &v, &i) != CG_OK && v == NULL && i == NULL, "NULL tensor: outputs cleared");
  cg_scope_end();
}

/* Multinomial: the same seed gives the same samples, frequencies match the weights
 * (chi-square below its 99.9% point), weight-0 categories never appear (with
 * replacement) or come last (without), and draws without replacement are distinct. */
static void test_multinomial(void) {
  cg_scope_begin();
  const float p[2][5] = {{0.1f, 0, 0.3f, 0.6f, 0}, {2, 2, 0, 4, 0}};
  cg_tensor *pt = cg_from_data(p, CG_FLOAT32, (int64_t[]){2, 5}, 2);
  enum { S = 20000 };
  int64_t *a = malloc(sizeof(int64_t) * 2 * S), *b = malloc(sizeof(int64_t) * 2 * S);
  cg_tensor *s1 = cg_multinomial(pt, S, true, 42), *s2 = cg_multinomial(pt, S, true, 42), *s3 = cg_multinomial(pt, S, true, 43);
  CHECK(s1 && cg_dtype_of(s1) == CG_INT64 && cg_ndim(s1) == 2 && cg_shape(s1)[1] == S, "multinomial shape: %s", cg_last_error());
  CHECK(cg_read(s1, CG_INT64, a, sizeof(int64_t) * 2 * S) == CG_OK && cg_read(s2, CG_INT64, b, sizeof(int64_t) * 2 * S) == CG_OK,
        "%s", cg_last_error());
  CHECK(!memcmp(a, b, sizeof(int64_t) * 2 * S), "same seed, different samples");
  CHECK(cg_read(s3, CG_INT64, b, sizeof(int64_t) * 2 * S) == CG_OK && memcmp(a, b, sizeof(int64_t) * 2 * S), "another seed, same samples");
  for (int r = 0; r < 2; r++) {
    double cnt[5] = {0}, tot = 0, chi = 0;
    for (int s = 0; s < S; s++) cnt[a[r * S + s] >= 0 && a[r * S + s] < 5 ? a[r * S + s] : 0] += 1;
    for (int c = 0; c < 5; c++) tot += p[r][c];
    int df = -1;
    for (int c = 0; c < 5; c++) {
      if (p[r][c] == 0) {
        CHECK(cnt[c] == 0, "row %d: category %d of weight 0 drawn %g times", r, c, cnt[c]);
        continue;
      }
      double e = S * p[r][c] / tot;
      chi += (cnt[c] - e) * (cnt[c] - e) / e, df++;
    }
    CHECK(chi < (df == 2 ? 13.8 : 16.3), "row %d: chi-square %.2f with %d dof", r, chi, df);
  }
  /* without replacement: all distinct, zero weights last, first draw follows the weights */
  const float w[6] = {1, 0, 3, 2, 0, 4};
  cg_tensor *wt = cg_from_data(w, CG_FLOAT32, (int64_t[]){6}, 1);
  int first[6] = {0};
  bool distinct = true, zeros_last = true;
  for (uint64_t seed = 0; seed < 300; seed++) {
    int64_t o[6];
    cg_scope_begin();
    cg_tensor *d = cg_multinomial(wt, 6, false, seed);
    bool rd = d && cg_ndim(d) == 1 && cg_read(d, CG_INT64, o, sizeof o) == CG_OK;
    cg_scope_end();
    if (!rd) {
      CHECK(rd, "without replacement: %s", cg_last_error());
      break;
    }
    int seen = 0;
    for (int j = 0; j < 6; j++) seen |= 1 << o[j];
    distinct &= seen == 63;
    zeros_last &= (o[4] == 1 || o[4] == 4) && (o[5] == 1 || o[5] == 4);
    first[o[0]]++;
  }
  CHECK(distinct && zeros_last, "without replacement: distinct %d, zero weights last %d", distinct, zeros_last);
  double chi = 0;
  for (int c = 0; c < 6; c++)
    if (w[c] > 0) chi += (first[c] - 300 * w[c] / 10) * (first[c] - 300 * w[c] / 10) / (300 * w[c] / 10);
  CHECK(chi < 16.3, "first draw without replacement: chi-square %.2f (3 dof)", chi);
  CHECK(!cg_multinomial(wt, 7, false, 1) && strstr(cg_last_error(), "num_samples"), "too many samples: %s", cg_last_error());
  CHECK(!cg_multinomial(cg_reshape(wt, (int64_t[]){1, 2, 3}, 3), 1, true, 1), "3-d probs must fail");
  free(a), free(b);
  cg_scope_end();
}

/* Dropout on the weights: each weight is dropped or scaled by 1/(1-p); with v = I the
 * output is the weight matrix itself. Fully masked rows and huge scores give no NaN. */
static void test_attention_edges(void) {
  cg_scope_begin();
  int64_t L = 4, S = 6;
  cg_tensor *q = cg_randn(CG_FLOAT32, (int64_t[]){L, 3}, 2), *k = cg_randn(CG_FLOAT32, (int64_t[]){S, 3}, 2), *v = cg_eye(S, CG_FLOAT32);
  cg_manual_seed(7);
  float pd[24], p0[24];
  CHECK(cg_read(cg_scaled_dot_product_attention(q, k, v, NULL, 0.5, false, 0), CG_FLOAT32, pd, sizeof pd) == CG_OK &&
            cg_read(cg_scaled_dot_product_attention(q, k, v, NULL, 0, false, 0), CG_FLOAT32, p0, sizeof p0) == CG_OK,
        "%s", cg_last_error());
  int dropped = 0, bad = 0;
  for (int i = 0; i < 24; i++) {
    if (pd[i] == 0) dropped++;
    else bad += fabsf(pd[i] - 2 * p0[i]) > 1e-5f;
  }
  CHECK(bad == 0 && dropped > 3 && dropped < 21, "dropout: %d dropped of 24, %d kept but not scaled by 2", dropped, bad);
  /* every key masked, and scores of 1e30 */
  cg_tensor *none = cg_zeros(CG_BOOL, (int64_t[]){L, S}, 2);
  cg_set_requires_grad(q, true);
  cg_tensor *o = cg_scaled_dot_product_attention(q, k, v, none, 0, false, 0);
  CHECK(cg_backward(cg_sum(o, NULL, 0, false)) == CG_OK, "%s", cg_last_error());
  double *od = read_f64(o), *gd = read_f64(cg_grad(q));
  bool zero = od && gd;
  for (int i = 0; zero && i < L * S; i++) zero &= od[i] == 0;
  for (int i = 0; zero && i < L * 3; i++) zero &= gd[i] == 0;
  CHECK(zero, "all keys masked: output and gradient must be zeros");
  free(od), free(gd);
  double *hd = read_f64(cg_scaled_dot_product_attention(q, k, v, NULL, 0, false, 1e30));
  bool finite = hd != NULL;
  for (int i = 0; finite && i < L * S; i++) finite &= isfinite(hd[i]);
  CHECK(finite, "scores of 1e30 must stay finite");
  free(hd);
  /* bad input */
  CHECK(!cg_scaled_dot_product_attention(q, cg_randn(CG_FLOAT32, (int64_t[]){S, 4}, 2), v, NULL, 0, false, 0) &&
            strstr(cg_last_error(), "k (..., S, 3)"),
        "E mismatch: %s", cg_last_error());
  CHECK(!cg_scaled_dot_product_attention(q, k, v, none, 0, true, 0), "mask and is_causal together must fail");
  CHECK(!cg_scaled_dot_product_attention(q, k, v, NULL, 1, false, 0), "dropout 1 must fail");
  CHECK(!cg_rope(cg_randn(CG_FLOAT32, (int64_t[]){2, 5}, 2), 0, 10000, false) && strstr(cg_last_error(), "D even"), "odd D: %s",
        cg_last_error());
  CHECK(!cg_triu(cg_randn(CG_FLOAT32, (int64_t[]){5}, 1), 0), "triu of 1-d must fail");
  CHECK(!cg_masked_fill(q, cg_zeros(CG_BOOL, (int64_t[]){5}, 1), 0) && strstr(cg_last_error(), "does not broadcast"), "mask shape: %s",
        cg_last_error());
  CHECK(!cg_softplus(q, 0, 20), "softplus beta 0 must fail");
  CHECK(!cg_erf(NULL) && !cg_gelu(NULL) && !cg_log1p(NULL), "NULL input");
  cg_scope_end();
}

int main(void) {
  ref_init();
  torch_cases();
  test_erf_ulp();
  test_log1p_expm1_small();
  test_sort_edges();
  test_multinomial();
  test_attention_edges();
  ref_finish();
  return test_summary();
}
