/* Kernel counts pinned (ARCHITECTURE §5), each result checked against plain C too:
 *   relu(a*b+c).sum(1) is 1 kernel; matmul as broadcast-multiply-sum is 1 kernel; 20
 *   elementwise ops over views are 1 kernel; softmax over the last axis is 2 kernels; a sum
 *   over 10M elements runs on every thread; a product's producer stays out of a reader
 *   with its own product (attention's backward: p and ds are two kernels, not one); a
 *   costly elementwise value (GELU's backward) read by three kernels is stored once, a
 *   cheap one (a*b+c) is computed in each reader. */
#include "cgrad.h"
#include "check.h"
#include <math.h>
#include <string.h>
#include <unistd.h>

static uint64_t rng = 7;
static float frand(void) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((rng >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}
static cg_tensor *rand_t(float *host, int64_t n0, int64_t n1) {
  for (int64_t i = 0; i < n0 * n1; i++) host[i] = frand();
  return cg_from_data(host, CG_FLOAT32, (int64_t[]){n0, n1}, 2);
}
/* kernels launched by realizing t */
static uint64_t kernels_for(cg_tensor *t) {
  uint64_t k0 = cg_get_stats().kernels_run;
  CHECK(cg_realize(t) == CG_OK, "realize failed: %s", cg_last_error());
  return cg_get_stats().kernels_run - k0;
}
static bool close_to(const float *got, const double *want, int64_t n, double tol) {
  for (int64_t i = 0; i < n; i++)
    if (!(fabs(got[i] - want[i]) <= tol * (1 + fabs(want[i])))) {
      fprintf(stderr, "  [%lld] got %g want %g\n", (long long)i, got[i], want[i]);
      return false;
    }
  return true;
}

int main(void) {
  enum { N = 37, M = 23, K = 19 };
  static float a[N * M], b[N * M], c[N * M], out[N * N];
  static double ref[N * N];

  cg_scope_begin();
  { /* relu(a*b+c).sum(1) */
    cg_tensor *ta = rand_t(a, N, M), *tb = rand_t(b, N, M), *tc = rand_t(c, N, M);
    int ax = 1;
    cg_tensor *r = cg_sum(cg_relu(cg_add(cg_mul(ta, tb), tc)), &ax, 1, false);
    CHECK(kernels_for(r) == 1, "relu(a*b+c).sum(1) is one kernel");
    for (int i = 0; i < N; i++) {
      ref[i] = 0;
      for (int j = 0; j < M; j++) {
        double v = (double)a[i * M + j] * b[i * M + j] + c[i * M + j];
        ref[i] += v > 0 ? v : 0;
      }
    }
    CHECK(cg_read(r, CG_FLOAT32, out, N * sizeof(float)) == CG_OK);
    CHECK(close_to(out, ref, N, 1e-5), "relu(a*b+c).sum(1) values");
  }
  { /* matmul written as broadcast-multiply-sum: (N,1,K) * (1,M,K) summed over K */
    static float x[N * K], y[M * K];
    cg_tensor *tx = rand_t(x, N, K), *ty = rand_t(y, M, K);
    cg_tensor *x3 = cg_reshape(tx, (int64_t[]){N, 1, K}, 3), *y3 = cg_reshape(ty, (int64_t[]){1, M, K}, 3);
    int ax = 2;
    cg_tensor *r = cg_sum(cg_mul(x3, y3), &ax, 1, false);
    CHECK(kernels_for(r) == 1, "broadcast-multiply-sum matmul is one kernel");
    for (int i = 0; i < N; i++)
      for (int j = 0; j < M; j++) {
        double s = 0;
        for (int k = 0; k < K; k++) s += (double)x[i * K + k] * y[j * K + k];
        ref[i * M + j] = s;
      }
    CHECK(cg_read(r, CG_FLOAT32, out, N * M * sizeof(float)) == CG_OK);
    CHECK(close_to(out, ref, N * M, 1e-5), "matmul values");
    cg_tensor *mm = cg_matmul(tx, cg_transpose(ty, 0, 1));
    CHECK(kernels_for(mm) == 1, "cg_matmul is one kernel");
    CHECK(cg_read(mm, CG_FLOAT32, out, N * M * sizeof(float)) == CG_OK);
    CHECK(close_to(out, ref, N * M, 1e-5), "cg_matmul values");
  }
  { /* 20 elementwise ops over views: permuted, flipped, padded, sliced inputs */
    cg_tensor *ta = rand_t(a, N, M), *tb = rand_t(b, M, N);
    cg_tensor *v1 = cg_transpose(tb, 0, 1);                                    /* (N, M) */
    cg_tensor *v2 = cg_flip(ta, (int[]){1}, 1);                                /* (N, M) */
    cg_tensor *v3 = cg_slice(cg_pad(ta, (int64_t[]){1, 1, 0, 0}, 0.5), 0, 1, N + 1, 1); /* (N, M) */
    cg_tensor *x = cg_add(v1, v2);
    for (int i = 0; i < 18; i++) x = (i % 3 == 0) ? cg_mul(x, v3) : (i % 3 == 1) ? cg_add(x, v1) : cg_sub(x, v2);
    CHECK(kernels_for(x) == 1, "20 elementwise ops over views are one kernel");
    for (int i = 0; i < N; i++)
      for (int j = 0; j < M; j++) {
        double w1 = b[j * N + i], w2 = a[i * M + (M - 1 - j)], w3 = a[i * M + j], v = w1 + w2;
        for (int k = 0; k < 18; k++) v = (k % 3 == 0) ? v * w3 : (k % 3 == 1) ? v + w1 : v - w2;
        ref[i * M + j] = v;
      }
    CHECK(cg_read(x, CG_FLOAT32, out, N * M * sizeof(float)) == CG_OK);
    CHECK(close_to(out, ref, N * M, 1e-4), "elementwise chain values");
  }
  { /* softmax over the last axis: max and sum in one kernel, the division in another */
    cg_tensor *ta = rand_t(a, N, M);
    cg_tensor *r = cg_softmax(ta, -1);
    CHECK(kernels_for(r) == 2, "softmax over the last axis is two kernels");
    for (int i = 0; i < N; i++) {
      double m = -INFINITY, s = 0;
      for (int j = 0; j < M; j++) m = fmax(m, a[i * M + j]);
      for (int j = 0; j < M; j++) s += exp(a[i * M + j] - m);
      for (int j = 0; j < M; j++) ref[i * M + j] = exp(a[i * M + j] - m) / s;
    }
    CHECK(cg_read(r, CG_FLOAT32, out, N * M * sizeof(float)) == CG_OK);
    CHECK(close_to(out, ref, N * M, 1e-5), "softmax values");
  }
  { /* attention's backward: p = exp(A B^T), ds = p (C D^T - d), realized dq = ds B,
     * dk = ds^T A, dv = p^T E. p and ds are each read by two products, so both are
     * stored; p is not computed inside ds's kernel (two products in one kernel get no
     * GEMM recipe): p, ds, dq, dk, dv are five kernels */
    static float A[N * K], B[M * K], C[N * K], D[M * K], E[N * K], dd[N], got[N * K];
    static double pr[N * M], dsr[N * M], want[N * K];
    cg_tensor *tA = rand_t(A, N, K), *tB = rand_t(B, M, K), *tC = rand_t(C, N, K), *tD = rand_t(D, M, K), *tE = rand_t(E, N, K);
    cg_tensor *td = rand_t(dd, N, 1);
    cg_tensor *p = cg_exp(cg_matmul(tA, cg_transpose(tB, 0, 1)));
    cg_tensor *ds = cg_mul(p, cg_sub(cg_matmul(tC, cg_transpose(tD, 0, 1)), td));
    cg_tensor *outs[3] = {cg_matmul(ds, tB), cg_matmul(cg_transpose(ds, 0, 1), tA), cg_matmul(cg_transpose(p, 0, 1), tE)};
    uint64_t k0 = cg_get_stats().kernels_run;
    CHECK(cg_realize_many(outs, 3) == CG_OK, "realize failed: %s", cg_last_error());
    uint64_t nk = cg_get_stats().kernels_run - k0;
    CHECK(nk == 5, "p, ds, dq, dk, dv are five kernels (got %llu)", (unsigned long long)nk);
    for (int i = 0; i < N; i++)
      for (int j = 0; j < M; j++) {
        double s1 = 0, s2 = 0;
        for (int k = 0; k < K; k++) s1 += (double)A[i * K + k] * B[j * K + k], s2 += (double)C[i * K + k] * D[j * K + k];
        pr[i * M + j] = exp(s1), dsr[i * M + j] = exp(s1) * (s2 - dd[i]);
      }
    for (int o = 0; o < 3; o++) { /* dq (N, K), dk (M, K), dv (M, K) */
      int64_t R = o == 0 ? N : M, I = o == 0 ? M : N;
      for (int64_t r = 0; r < R; r++)
        for (int k = 0; k < K; k++) {
          double s = 0;
          for (int64_t i = 0; i < I; i++)
            s += o == 0 ? dsr[r * M + i] * B[i * K + k] : o == 1 ? dsr[i * M + r] * A[i * K + k] : pr[i * M + r] * E[i * K + k];
          want[r * K + k] = s;
        }
      CHECK(cg_read(outs[o], CG_FLOAT32, got, (size_t)(R * K) * sizeof(float)) == CG_OK);
      CHECK(close_to(got, want, R * K, 1e-4), "attention backward's product %d values", o);
    }
  }
  { /* GELU's backward dh = g (Phi(h) + h phi(h)), two exp2 and two polynomials an element,
     * read by a transposed copy, a column sum and a row sum (a transformer MLP's: the bf16
     * casts for both products and the bias gradient): stored by one kernel and read by
     * three, not computed three times; a*b+c read the same way is computed in each */
    static float h[N * M], g[N * M], got[N * M];
    static double dref[N * M];
    for (int i = 0; i < N * M; i++) h[i] = 3 * frand(), g[i] = frand(); /* both of erf's pieces */
    cg_tensor *th = cg_from_data(h, CG_FLOAT32, (int64_t[]){N, M}, 2), *tg = cg_from_data(g, CG_FLOAT32, (int64_t[]){N, M}, 2);
    CHECK(cg_set_requires_grad(th, true) == CG_OK);
    CHECK(cg_backward_with(cg_gelu(th), tg) == CG_OK, "backward: %s", cg_last_error());
    cg_tensor *dh = cg_grad(th);
    int a0 = 0, a1 = 1;
    cg_tensor *outs[3] = {cg_contiguous(cg_transpose(dh, 0, 1)), cg_sum(dh, &a0, 1, false), cg_sum(dh, &a1, 1, false)};
    uint64_t k0 = cg_get_stats().kernels_run;
    CHECK(cg_realize_many(outs, 3) == CG_OK, "realize failed: %s", cg_last_error());
    uint64_t nk = cg_get_stats().kernels_run - k0;
    CHECK(nk == 4, "GELU's backward stored once and read by three kernels: 4 kernels (got %llu)", (unsigned long long)nk);
    for (int i = 0; i < N * M; i++) {
      double x = h[i];
      dref[i] = g[i] * (0.5 * (1 + erf(x / sqrt(2.0))) + x * exp(-0.5 * x * x) / sqrt(2 * M_PI));
    }
    static double tr[N * M], cs[M], rs[N];
    memset(cs, 0, sizeof cs), memset(rs, 0, sizeof rs);
    for (int i = 0; i < N; i++)
      for (int j = 0; j < M; j++) tr[j * N + i] = dref[i * M + j], cs[j] += dref[i * M + j], rs[i] += dref[i * M + j];
    CHECK(cg_read(outs[0], CG_FLOAT32, got, N * M * sizeof(float)) == CG_OK);
    CHECK(close_to(got, tr, N * M, 1e-5), "GELU backward values (transposed)");
    CHECK(cg_read(outs[1], CG_FLOAT32, got, M * sizeof(float)) == CG_OK);
    CHECK(close_to(got, cs, M, 1e-5), "GELU backward column sums");
    CHECK(cg_read(outs[2], CG_FLOAT32, got, N * sizeof(float)) == CG_OK);
    CHECK(close_to(got, rs, N, 1e-5), "GELU backward row sums");
    cg_tensor *e = cg_add(cg_mul(th, tg), tg);
    cg_tensor *outs2[2] = {cg_contiguous(cg_transpose(e, 0, 1)), cg_sum(e, &a0, 1, false)};
    k0 = cg_get_stats().kernels_run;
    CHECK(cg_realize_many(outs2, 2) == CG_OK, "realize failed: %s", cg_last_error());
    nk = cg_get_stats().kernels_run - k0;
    CHECK(nk == 2, "a*b+c read by two kernels is computed in each: 2 kernels (got %llu)", (unsigned long long)nk);
    memset(cs, 0, sizeof cs);
    for (int i = 0; i < N; i++)
      for (int j = 0; j < M; j++) cs[j] += (double)h[i * M + j] * g[i * M + j] + g[i * M + j];
    CHECK(cg_read(outs2[1], CG_FLOAT32, got, M * sizeof(float)) == CG_OK);
    CHECK(close_to(got, cs, M, 1e-5), "a*b+c column sums");
  }
  { /* a sum over 10M elements is split so every thread works */
    int64_t n = 10 * 1000 * 1000;
    cg_tensor *ones = cg_full(0.5, CG_FLOAT32, (int64_t[]){n}, 1);
    cg_tensor *s = cg_sum(cg_contiguous(ones), NULL, 0, false);
    CHECK(cg_realize(s) == CG_OK);
    double v = cg_item(s);
    CHECK(fabs(v - 5e6) < 1.0, "sum of 10M halves is %g", v);
    cg_tensor *s2 = cg_sum(cg_mul(cg_contiguous(ones), cg_scalar(2)), NULL, 0, false);
    CHECK(cg_realize(s2) == CG_OK);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    const char *threads = cg_get_config("CG_THREADS");
    long want = threads ? atol(threads) : cores;
    CHECK(cg_get_stats().last_threads >= (uint64_t)(want < 2 ? 1 : 2), "the 10M sum ran on %llu threads",
          (unsigned long long)cg_get_stats().last_threads);
    CHECK(fabs(cg_item(s2) - 1e7) < 2.0, "sum of 10M ones");
  }
  cg_scope_end();
  return test_summary();
}
