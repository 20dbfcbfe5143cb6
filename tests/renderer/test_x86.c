/* The x86-64 machine-code backend (renderer/render_x86.c, DEVICE X86) against a float64
 * reference in plain C and against the C backend (device CPU) on the same inputs:
 * elementwise chains, NaN / inf / -0 through MAX and WHERE, casts, reductions, matmul with
 * vectors, gated loads (padding, convolution), sizes 1, 7, 33, 1000 and primes; EXP2 and
 * LOG2 over a sweep of float32 values, their error in ulp against libm printed and bounded;
 * a refused kernel (float16) runs through the C compiler with the right values.
 * exp2 <= 2 ulp, log2 <= 2.5 ulp against float64 (measured 0.9 / 2.0; libm 0.5 / 0.7). Tolerances: float32 elementwise 2 ulp-ish (1e-6 relative + 1e-30), reductions
 * sqrt(n) * 1e-6 of the scale; MAX / WHERE / casts exact. Skips where the CPU lacks AVX-512. */
#include "check.h"
#include "cgrad.h"
#include "renderer/render.h"
#include "runtime/cpu_features.h"
#include "runtime/device.h"
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

static uint64_t rng_s;
static double urand(void) {
  rng_s = rng_s * 6364136223846793005ull + 1442695040888963407ull;
  return (double)(rng_s >> 11) / 9007199254740992.0;
}

static float *fill(int64_t n, double lo, double hi, bool specials) {
  float *v = malloc(sizeof(float) * (size_t)(n ? n : 1));
  for (int64_t i = 0; i < n; i++) v[i] = (float)(lo + (hi - lo) * urand());
  if (specials && n >= 7) {
    static const float sp[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 1e-40f, -3.0f};
    for (int k = 0; k < 7; k++) v[(int64_t)(urand() * (double)n) % n] = sp[k];
  }
  return v;
}

/* t on device dev: realized and read into out */
static bool read_on(cg_tensor *t, float *out, int64_t n) {
  return t && cg_read(t, CG_FLOAT32, out, sizeof(float) * (size_t)n) == CG_OK;
}

static bool same_bits(float a, float b) { return (isnan(a) && isnan(b)) || !memcmp(&a, &b, 4); }
static bool close_to(double got, double want, double tol) {
  if (isnan(want)) return isnan(got);
  if (isinf(want)) return got == want;
  return fabs(got - want) <= tol;
}

/* ---- elementwise, MAX / WHERE semantics ----------------------------------------------- */
static void check_elementwise(int64_t n) {
  float *a = fill(n, -4, 4, true), *b = fill(n, -4, 4, true), *c = fill(n, -2, 2, false);
  float *x86 = malloc(sizeof(float) * (size_t)n * 4), *cpu = malloc(sizeof(float) * (size_t)n * 4);
  const char *devs[2] = {"X86", "CPU"};
  for (int d = 0; d < 2; d++) {
    cg_set_device(devs[d]);
    cg_scope_begin();
    int64_t sh[1] = {n};
    cg_tensor *A = cg_from_data(a, CG_FLOAT32, sh, 1), *B = cg_from_data(b, CG_FLOAT32, sh, 1), *C = cg_from_data(c, CG_FLOAT32, sh, 1);
    cg_tensor *e1 = cg_sub(cg_mul(cg_relu(cg_add(cg_mul(A, B), C)), cg_full(0.5, CG_FLOAT32, NULL, 0)), A);
    cg_tensor *e2 = cg_maximum(A, B);
    cg_tensor *e3 = cg_where(cg_lt(A, B), A, cg_neg(B));
    cg_tensor *e4 = cg_add(cg_sqrt(cg_abs(A)), cg_reciprocal(B));
    float *o = d ? cpu : x86;
    CHECK(read_on(e1, o, n) && read_on(e2, o + n, n) && read_on(e3, o + 2 * n, n) && read_on(e4, o + 3 * n, n), "n=%lld on %s: %s", (long long)n, devs[d], cg_last_error());
    cg_scope_end();
  }
  cg_set_device(NULL);
  int bad[4] = {0};
  for (int64_t i = 0; i < n; i++) {
    double A = a[i], B = b[i], C = c[i];
    double r1 = (A * B + C > 0 ? A * B + C : 0) * 0.5 - A; /* cgrad's relu: x > 0 ? x : 0 (NaN -> 0) */
    double r2 = isnan(A) || isnan(B) ? NAN : A > B ? A : B > A ? B : (signbit(A) ? B : A); /* +0 over -0 */
    double r3 = A < B ? A : -B;
    double r4 = sqrt(fabs(A)) + 1.0 / B;
    bad[0] += !close_to(x86[i], r1, isnan(A * B) ? 1e-6 * fabs(A) : 1e-6 * (fabs(A * B) + fabs(C) + fabs(A)) + 1e-30);
    bad[1] += !same_bits(x86[n + i], (float)r2) || !same_bits(x86[n + i], cpu[n + i]);
    bad[2] += !same_bits(x86[2 * n + i], (float)r3) || !same_bits(x86[2 * n + i], cpu[2 * n + i]);
    if (getenv("X86_TEST_VERBOSE") && (!same_bits(x86[n + i], (float)r2) || !same_bits(x86[3 * n + i], cpu[3 * n + i]) || !close_to(x86[3 * n + i], r4, 1e-6 * (sqrt(fabs(A)) + fabs(1 / B)) + 1e-30)))
      printf("i=%lld a=%a b=%a c=%a: e1 %a (ref %a, C %a) max %a (ref %a C %a) e4 %a (C %a)\n", (long long)i, A, B, C, (double)x86[i], r1, (double)cpu[i], (double)x86[n + i], r2, (double)cpu[n + i], (double)x86[3 * n + i], (double)cpu[3 * n + i]);
    bad[3] += !same_bits(x86[3 * n + i], cpu[3 * n + i]) || (isfinite(A) && isfinite(B) && fabs(B) > 1e-30 && !close_to(x86[3 * n + i], r4, 1e-6 * (sqrt(fabs(A)) + fabs(1 / B)) + 1e-30));
  }
  CHECK(!bad[0], "n=%lld: relu(a*b+c)*0.5-a: %d elements off the float64 reference", (long long)n, bad[0]);
  CHECK(!bad[1], "n=%lld: maximum (NaN wins, +0 over -0): %d elements differ from the reference or the C backend", (long long)n, bad[1]);
  CHECK(!bad[2], "n=%lld: where(a<b, a, -b): %d elements differ", (long long)n, bad[2]);
  CHECK(!bad[3], "n=%lld: sqrt(|a|) + 1/b: %d elements differ (correctly rounded: equal to C)", (long long)n, bad[3]);
  free(a), free(b), free(c), free(x86), free(cpu);
}

/* ---- casts: saturating, NaN -> 0 ---------------------------------------------------------- */
static void check_casts(int64_t n) {
  float *a = fill(n, -5e9, 5e9, true);
  int32_t *got = malloc(sizeof(int32_t) * (size_t)n);
  cg_set_device("X86");
  cg_scope_begin();
  cg_tensor *t = cg_cast(cg_from_data(a, CG_FLOAT32, (int64_t[]){n}, 1), CG_INT32);
  CHECK(t && cg_read(t, CG_INT32, got, sizeof(int32_t) * (size_t)n) == CG_OK, "%s", cg_last_error());
  cg_scope_end();
  cg_set_device(NULL);
  int bad = 0;
  for (int64_t i = 0; i < n; i++) {
    double v = a[i];
    int32_t want = isnan(v) ? 0 : v >= 2147483648.0 ? INT32_MAX : v < -2147483648.0 ? INT32_MIN : (int32_t)v;
    bad += got[i] != want;
  }
  CHECK(!bad, "n=%lld: float32 -> int32 (saturating, NaN -> 0): %d wrong", (long long)n, bad);
  free(a), free(got);
}

/* ---- reductions and matmul ---------------------------------------------------------------- */
static void check_reduce(int64_t r, int64_t c) {
  float *a = fill(r * c, -1, 1, false);
  float *s = malloc(sizeof(float) * (size_t)(r + c)), *m = malloc(sizeof(float) * (size_t)r);
  cg_set_device("X86");
  cg_scope_begin();
  cg_tensor *A = cg_from_data(a, CG_FLOAT32, (int64_t[]){r, c}, 2);
  CHECK(read_on(cg_sum(A, (int[]){1}, 1, false), s, r) && read_on(cg_sum(A, (int[]){0}, 1, false), s + r, c) &&
            read_on(cg_max(A, (int[]){1}, 1, false), m, r), "%s", cg_last_error());
  cg_scope_end();
  cg_set_device(NULL);
  int bad = 0;
  for (int64_t i = 0; i < r; i++) {
    double sum = 0, mx = -INFINITY;
    for (int64_t j = 0; j < c; j++) sum += a[i * c + j], mx = fmax(mx, a[i * c + j]);
    bad += !close_to(s[i], sum, sqrt((double)c) * 1e-6 * c + 1e-6) || m[i] != (float)mx;
  }
  for (int64_t j = 0; j < c; j++) {
    double sum = 0;
    for (int64_t i = 0; i < r; i++) sum += a[i * c + j];
    bad += !close_to(s[r + j], sum, sqrt((double)r) * 1e-6 * r + 1e-6);
  }
  CHECK(!bad, "%lldx%lld: sums over rows / columns and row max: %d wrong", (long long)r, (long long)c, bad);
  free(a), free(s), free(m);
}

static void check_matmul(int64_t m, int64_t k, int64_t n) {
  float *a = fill(m * k, -1, 1, false), *b = fill(k * n, -1, 1, false), *got = malloc(sizeof(float) * (size_t)(m * n));
  cg_set_device("X86");
  cg_scope_begin();
  cg_tensor *t = cg_matmul(cg_from_data(a, CG_FLOAT32, (int64_t[]){m, k}, 2), cg_from_data(b, CG_FLOAT32, (int64_t[]){k, n}, 2));
  CHECK(read_on(t, got, m * n), "%s", cg_last_error());
  cg_scope_end();
  cg_set_device(NULL);
  int bad = 0;
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      double s = 0;
      for (int64_t q = 0; q < k; q++) s += (double)a[i * k + q] * b[q * n + j];
      bad += !close_to(got[i * n + j], s, sqrt((double)k) * 2e-6 * k / 4 + 1e-6);
    }
  CHECK(!bad, "matmul %lldx%lld @ %lldx%lld: %d of %lld wrong", (long long)m, (long long)k, (long long)k, (long long)n, bad, (long long)(m * n));
  free(a), free(b), free(got);
}

/* gated loads: a padded view and a padded convolution, against the C backend (same sums) */
static void check_gated(void) {
  int64_t N = 2, C = 3, H = 11, W = 13;
  float *x = fill(N * C * H * W, -1, 1, false), *w = fill(5 * C * 3 * 3, -1, 1, false);
  int64_t no = N * 5 * H * W, np = N * C * (H + 3) * (W + 1);
  float *o[2], *p[2];
  const char *devs[2] = {"X86", "CPU"};
  for (int d = 0; d < 2; d++) {
    o[d] = malloc(sizeof(float) * (size_t)no), p[d] = malloc(sizeof(float) * (size_t)np);
    cg_set_device(devs[d]);
    cg_scope_begin();
    cg_tensor *X = cg_from_data(x, CG_FLOAT32, (int64_t[]){N, C, H, W}, 4), *Wt = cg_from_data(w, CG_FLOAT32, (int64_t[]){5, C, 3, 3}, 4);
    cg_tensor *y = cg_conv2d(X, Wt, NULL, (int64_t[]){1, 1}, (int64_t[]){1, 1}, (int64_t[]){1, 1}, 1);
    cg_tensor *pd = cg_add(cg_pad(X, (int64_t[]){0, 0, 0, 0, 1, 2, 0, 1}, 0.0), cg_full(1.0, CG_FLOAT32, NULL, 0));
    CHECK(read_on(y, o[d], no) && read_on(pd, p[d], np), "%s: %s", devs[d], cg_last_error());
    cg_scope_end();
  }
  cg_set_device(NULL);
  int bad = 0, badp = 0;
  for (int64_t i = 0; i < no; i++) bad += !close_to(o[0][i], o[1][i], 1e-5);
  for (int64_t i = 0; i < np; i++) badp += !same_bits(p[0][i], p[1][i]);
  CHECK(!bad, "conv2d 3x3 pad 1 (gated loads): %d of %lld differ from the C backend by more than 1e-5", bad, (long long)no);
  CHECK(!badp, "pad + 1: %d of %lld differ", badp, (long long)np);
  for (int d = 0; d < 2; d++) free(o[d]), free(p[d]);
  free(x), free(w);
}

/* ---- EXP2 / LOG2: ulp error against libm over a sweep --------------------------------------- */
static double ulp_err(float got, double want) {
  if (isnan(want)) return isnan(got) ? 0 : INFINITY;
  if (isinf(want) || want == 0) return (double)got == want ? 0 : INFINITY;
  float w = (float)want;
  if (isinf(w)) return isinf(got) && (got > 0) == (want > 0) ? 0 : INFINITY;
  double u = fabs(w) < 1.1754944e-38f ? ldexp(1, -149) : ldexp(1, ilogb(w) - 23);
  return fabs((double)got - want) / u;
}

static void check_transcendental(void) {
  const int64_t n = 1 << 18;
  float *a = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n), *e = malloc(sizeof(float) * n), *l = malloc(sizeof(float) * n);
  for (int64_t i = 0; i < n; i++) {
    a[i] = (float)(-160 + 300 * urand());       /* exp2: underflow, denormals, overflow */
    uint32_t bits = (uint32_t)(urand() * 2139095040.0); /* log2: every positive finite float32 */
    memcpy(&b[i], &bits, 4);
  }
  static const float sp[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, -1.0f, 1.0f, 1e-45f, 128.0f, -149.0f, -150.0f};
  for (int k = 0; k < 11; k++) a[k] = b[k] = sp[k];
  cg_set_device("X86");
  cg_scope_begin();
  CHECK(read_on(cg_exp2(cg_from_data(a, CG_FLOAT32, (int64_t[]){n}, 1)), e, n) && read_on(cg_log2(cg_from_data(b, CG_FLOAT32, (int64_t[]){n}, 1)), l, n), "%s",
        cg_last_error());
  cg_scope_end();
  cg_set_device(NULL);
  double me = 0, ml = 0, me_libm = 0, ml_libm = 0;
  for (int64_t i = 0; i < n; i++) {
    me = fmax(me, ulp_err(e[i], exp2((double)a[i]))), ml = fmax(ml, ulp_err(l[i], log2((double)b[i])));
    me_libm = fmax(me_libm, ulp_err(exp2f(a[i]), exp2((double)a[i]))), ml_libm = fmax(ml_libm, ulp_err(log2f(b[i]), log2((double)b[i])));
  }
  printf("exp2: max error %.2f ulp (libm exp2f %.2f); log2: %.2f ulp (libm log2f %.2f) against float64, %lld values each\n", me, me_libm, ml, ml_libm,
         (long long)n);
  CHECK(me <= 2.0, "exp2: %.2f ulp", me);
  CHECK(ml <= 2.5, "log2: %.2f ulp", ml);
  free(a), free(b), free(e), free(l);
}

/* ---- a refused kernel goes to the C compiler ------------------------------------------------ */
static void check_refused(void) {
  long long e0, r0, e1, r1;
  render_x86_counts(&e0, &r0);
  cg_set_device("X86");
  cg_scope_begin();
  float a[5] = {1, 2.5f, -3, 65504, 0.125f}, got[5];
  cg_tensor *h = cg_cast(cg_from_data(a, CG_FLOAT32, (int64_t[]){5}, 1), CG_FLOAT16);
  cg_tensor *t = cg_cast(cg_add(h, h), CG_FLOAT32);
  CHECK(read_on(t, got, 5), "%s", cg_last_error());
  for (int i = 0; i < 5; i++) CHECK(got[i] == (i == 3 ? INFINITY : 2 * a[i]), "float16 a+a [%d] = %g", i, (double)got[i]);
  cg_scope_end();
  cg_set_device(NULL);
  render_x86_counts(&e1, &r1);
  CHECK(r1 > r0, "a float16 kernel was refused (refused %lld -> %lld)", r0, r1);
}

/* ---- tiering: machine code first, gcc's function swapped in when it is compiled ---------- */
static void check_tier(void) {
  char dir[] = "/tmp/cg_x86_tier_XXXXXX";
  CHECK(mkdtemp(dir) != NULL, "mkdtemp");
  cg_set_config("CG_CACHE_DIR", dir);
  cg_set_config("CG_TIER", "1");
  int64_t c0 = rt_get_stats()->compiled;
  float a[37], got[37];
  for (int i = 0; i < 37; i++) a[i] = (float)(i - 18) / 7;
  cg_set_device("X86");
  for (int round = 0; round < 2; round++) { /* machine code, then (after the wait) gcc's */
    cg_scope_begin();
    cg_tensor *t = cg_add(cg_mul(cg_from_data(a, CG_FLOAT32, (int64_t[]){37}, 1), cg_full(3.0, CG_FLOAT32, NULL, 0)), cg_full(0.25, CG_FLOAT32, NULL, 0));
    CHECK(read_on(t, got, 37), "%s", cg_last_error());
    int bad = 0;
    for (int i = 0; i < 37; i++) bad += !close_to(got[i], a[i] * 3.0 + 0.25, 1e-6 * (fabs(a[i] * 3.0) + 0.25));
    CHECK(!bad, "tiering round %d: %d wrong", round, bad);
    cg_scope_end();
    if (!round) rt_x86_tier_wait();
  }
  CHECK(rt_get_stats()->compiled > c0, "the background compiler built the kernel (compiled %lld -> %lld)", (long long)c0, (long long)rt_get_stats()->compiled);
  cg_set_device(NULL);
  cg_set_config("CG_TIER", "0");
  cg_set_config("CG_CACHE_DIR", NULL);
  char cmd[64];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  CHECK(system(cmd) == 0, "%s", cmd);
}

int main(void) {
  rng_s = (uint64_t)time(NULL);
  if (getenv("CG_TEST_SEED")) rng_s = strtoull(getenv("CG_TEST_SEED"), NULL, 10);
  printf("seed %llu\n", (unsigned long long)rng_s);
  if (!rt_cpu_avx512()) {
    printf("skipped: this CPU lacks AVX-512 F/BW/DQ/VL (every kernel goes to the C compiler)\n");
    check_refused();
    return test_summary();
  }
  static const int64_t sizes[] = {1, 7, 33, 1000, 997, 4099};
  for (int i = 0; i < 6; i++) check_elementwise(sizes[i]), check_casts(sizes[i]);
  check_reduce(1, 1), check_reduce(7, 33), check_reduce(33, 1000), check_reduce(997, 13);
  check_matmul(1, 1, 1), check_matmul(7, 33, 5), check_matmul(64, 128, 64), check_matmul(33, 97, 130);
  check_matmul(9, 64, 31), check_matmul(33, 17, 1023); /* PADTO tails: a constant gate, a scalar gate on a vector store */
  check_gated();
  check_transcendental();
  check_refused();
  check_tier();
  return test_summary();
}
