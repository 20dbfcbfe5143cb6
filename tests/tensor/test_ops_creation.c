/* Creation ops: from_data (every dtype the tests use, 0-d, size-0), zeros/ones/full,
 * arange, linspace, eye against values computed here; rand/randn/uniform/randint by
 * their contracts — same seed same values, another seed other values, each call advances
 * the counter — and by statistics over 1e5 samples (mean, variance, bounds), never by
 * exact values. */
#include "ref.h"

static char g_msg[256];
#define MSG(...) (snprintf(g_msg, sizeof g_msg, __VA_ARGS__), g_msg)

static void test_from_data_full(void) {
  static const cg_dtype DT[] = {CG_FLOAT32, CG_INT32, CG_BOOL, CG_FLOAT16, CG_BFLOAT16, CG_FLOAT64, CG_INT64, CG_UINT8};
  case_begin("from_data / zeros / ones / full");
  for (size_t d = 0; d < sizeof DT / sizeof DT[0]; d++) {
    cg_dtype dt = DT[d];
    int64_t s[RMAX];
    int nd = rand_shape(s, (int)rng_int(0, 3), 5, true);
    tp a = tp_rand(dt, s, nd, (gen_t){G_UNIF, dt == CG_UINT8 ? 0 : -100, 100});
    ref_check_at(__FILE__, __LINE__, MSG("from_data %s %s", cg_dtype_name(dt), shape_str(s, nd)), a.t, dt, &a.r, TK_EXACT, 1, NULL);
    rnd z = rn_new(dt, s, nd), o = rn_new(dt, s, nd), f = rn_new(dt, s, nd);
    double fv = dt == CG_BOOL ? 1 : dt_is_int(dt) ? 7 : -2.5;
    for (int64_t i = 0; i < rn_numel(&z); i++) o.base[i] = 1, f.base[i] = fv;
    ref_check_at(__FILE__, __LINE__, MSG("zeros %s %s", cg_dtype_name(dt), shape_str(s, nd)), cg_zeros(dt, s, nd), dt, &z, TK_EXACT, 1, NULL);
    ref_check_at(__FILE__, __LINE__, MSG("ones %s %s", cg_dtype_name(dt), shape_str(s, nd)), cg_ones(dt, s, nd), dt, &o, TK_EXACT, 1, NULL);
    ref_check_at(__FILE__, __LINE__, MSG("full(%g) %s %s", fv, cg_dtype_name(dt), shape_str(s, nd)), cg_full(fv, dt, s, nd), dt, &f, TK_EXACT, 1, NULL);
    cg_tensor *e = cg_empty(dt, s, nd);
    CHECK(e && cg_dtype_of(e) == dt && cg_ndim(e) == nd && cg_numel(e) == shape_numel(s, nd), "empty %s %s", cg_dtype_name(dt), shape_str(s, nd));
  }
  /* a constant realized alone is filled on the host (no kernel to compile or run) where a
   * C cast gives the value exactly; other values take the kernel path, as CAST converts */
  {
    static const cg_dtype HD[] = {CG_FLOAT32, CG_FLOAT64, CG_INT32, CG_INT64, CG_BOOL};
    static const double HV[] = {-2.5, 1e300, -7, 1e15, 1};
    int64_t hs[2] = {3, 37};
    for (int d = 0; d < 5; d++) {
      cg_stats s0 = cg_get_stats();
      cg_tensor *t = cg_full(HV[d], HD[d], hs, 2);
      CHECK(t && cg_realize(t) == CG_OK, "full %s: %s", cg_dtype_name(HD[d]), cg_last_error());
      cg_stats s1 = cg_get_stats();
      CHECK(s1.kernels_run == s0.kernels_run && s1.schedules == s0.schedules, "full(%g) %s realized without a kernel", HV[d], cg_dtype_name(HD[d]));
      double got[111];
      cg_tensor *t64 = cg_cast(t, CG_FLOAT64);
      CHECK(cg_read(t64, CG_FLOAT64, got, sizeof got) == CG_OK, "read: %s", cg_last_error());
      cg_free(t64);
      double want = HD[d] == CG_FLOAT32 ? (double)(float)HV[d] : HV[d];
      int bad = 0;
      for (int i = 0; i < 111; i++) bad += got[i] != want;
      CHECK(!bad, "full(%g) %s: %d of 111 values wrong (%g)", HV[d], cg_dtype_name(HD[d]), bad, got[0]);
      cg_free(t);
    }
    cg_tensor *t = cg_full(3.75, CG_INT32, hs, 2); /* converted as CAST converts */
    int32_t iv[111];
    CHECK(t && cg_read(t, CG_INT32, iv, sizeof iv) == CG_OK && iv[0] == 3 && iv[110] == 3, "full(3.75) int32 gives 3: %d", t ? iv[0] : -1);
    cg_free(t);
    cg_tensor *a = cg_full(0.1, CG_FLOAT32, hs, 2), *b = cg_mul(a, cg_scalar(2)); /* realized as part of a graph */
    float fv2[111];
    CHECK(b && cg_read(b, CG_FLOAT32, fv2, sizeof fv2) == CG_OK && fv2[5] == (float)0.1 * 2, "full in a graph still fuses: %g", b ? fv2[5] : 0);
    cg_free(a), cg_free(b);
  }
  /* properties */
  int64_t s[3] = {2, 0, 3};
  cg_tensor *z = cg_zeros(CG_FLOAT16, s, 3);
  CHECK(z && cg_ndim(z) == 3 && cg_shape(z)[1] == 0 && cg_numel(z) == 0 && cg_dtype_of(z) == CG_FLOAT16, "size-0 properties");
  double v = 3.5;
  tp sc = tp_from_values(CG_FLOAT32, s, 0, &v);
  CHECK(sc.t && cg_ndim(sc.t) == 0 && cg_numel(sc.t) == 1 && cg_item(sc.t) == 3.5, "0-d item");
  CHECK(cg_item(cg_scalar(2.25)) == 2.25, "cg_item(cg_scalar(2.25))");
  case_end();
}

static void test_ranges(void) {
  case_begin("arange");
  static const struct { double start, stop, step; cg_dtype dt; } AR[] = {
    {0, 10, 1, CG_INT32}, {0, 10, 3, CG_INT32}, {-5, 5, 2, CG_FLOAT32}, {0, 1, 0.3, CG_FLOAT32}, {10, 0, -3, CG_INT32},
    {1, 1, 1, CG_FLOAT32}, {5, 0, 1, CG_FLOAT32}, {0.5, 3.75, 0.25, CG_FLOAT32}, {-3, 3, 1, CG_FLOAT16},
  };
  for (size_t i = 0; i < sizeof AR / sizeof AR[0]; i++) {
    double n_ = ceil((AR[i].stop - AR[i].start) / AR[i].step);
    int64_t n = n_ > 0 ? (int64_t)n_ : 0;
    rnd w = rn_new(AR[i].dt, &n, 1);
    for (int64_t k = 0; k < n; k++) w.base[k] = AR[i].start + (double)k * AR[i].step;
    ref_check_at(__FILE__, __LINE__, MSG("arange(%g, %g, %g) %s", AR[i].start, AR[i].stop, AR[i].step, cg_dtype_name(AR[i].dt)),
                 cg_arange(AR[i].start, AR[i].stop, AR[i].step, AR[i].dt), AR[i].dt, &w, TK_BASIC, 1, NULL);
  }
  case_end();
  case_begin("linspace");
  static const struct { double start, stop; int64_t steps; } LS[] = {{0, 1, 5}, {-2, 2, 7}, {3, 3, 4}, {0, 1, 1}, {0, 1, 0}, {5, -5, 11}, {0, 1, 100}};
  for (size_t i = 0; i < sizeof LS / sizeof LS[0]; i++) {
    int64_t n = LS[i].steps;
    rnd w = rn_new(CG_FLOAT32, &n, 1);
    for (int64_t k = 0; k < n; k++) w.base[k] = n == 1 ? LS[i].start : LS[i].start + (LS[i].stop - LS[i].start) * (double)k / (double)(n - 1);
    ref_check_at(__FILE__, __LINE__, MSG("linspace(%g, %g, %lld)", LS[i].start, LS[i].stop, (long long)n), cg_linspace(LS[i].start, LS[i].stop, n, CG_FLOAT32),
                 CG_FLOAT32, &w, TK_BASIC, 1, NULL);
  }
  case_end();
  case_begin("eye");
  for (int64_t n = 0; n <= 5; n++) {
    static const cg_dtype DT[] = {CG_FLOAT32, CG_INT32, CG_BOOL};
    cg_dtype dt = DT[n % 3];
    int64_t s[2] = {n, n};
    rnd w = rn_new(dt, s, 2);
    for (int64_t k = 0; k < n; k++) w.base[k * n + k] = 1;
    ref_check_at(__FILE__, __LINE__, MSG("eye(%lld) %s", (long long)n, cg_dtype_name(dt)), cg_eye(n, dt), dt, &w, TK_EXACT, 1, NULL);
  }
  case_end();
}

/* Read a float tensor as doubles (NULL and a failure on error). */
static double *values(cg_tensor *t, int64_t n, const char *what) {
  if (!t) {
    CHECK(t != NULL, "%s: NULL: %s", what, cg_last_error());
    return NULL;
  }
  return read_values(t, cg_dtype_of(t), n, what);
}
static void moments(const double *v, int64_t n, double *mean, double *var, double *lo, double *hi) {
  double s = 0, ss = 0;
  *lo = INFINITY, *hi = -INFINITY;
  for (int64_t i = 0; i < n; i++) {
    s += v[i];
    if (v[i] < *lo) *lo = v[i];
    if (v[i] > *hi) *hi = v[i];
  }
  *mean = s / (double)n;
  for (int64_t i = 0; i < n; i++) ss += (v[i] - *mean) * (v[i] - *mean);
  *var = ss / (double)(n - 1);
}
static bool same_values(const double *a, const double *b, int64_t n) {
  for (int64_t i = 0; i < n; i++) if (a[i] != b[i]) return false;
  return true;
}

static void test_random(void) {
  const int64_t N = 100000;
  int64_t s2[2] = {250, 400};
  case_begin("rand");
  {
    cg_manual_seed(1234);
    double *a = values(cg_rand(CG_FLOAT32, &N, 1), N, "rand seed 1234");
    double *a2 = values(cg_rand(CG_FLOAT32, &N, 1), N, "rand seed 1234, second call");
    cg_manual_seed(1234);
    double *b = values(cg_rand(CG_FLOAT32, &N, 1), N, "rand seed 1234 again");
    cg_manual_seed(4321);
    double *c = values(cg_rand(CG_FLOAT32, &N, 1), N, "rand seed 4321");
    if (a && a2 && b && c) {
      CHECK(same_values(a, b, N), "same seed gives the same values");
      CHECK(!same_values(a, c, N), "another seed gives other values");
      CHECK(!same_values(a, a2, N), "a second call gives other values (the counter advances)");
      double m, v, lo, hi;
      moments(a, N, &m, &v, &lo, &hi);
      /* mean of U[0,1): sd of the estimate 0.00091; var 1/12: sd 0.00024 */
      CHECK(fabs(m - 0.5) < 0.006, "rand mean %g", m);
      CHECK(fabs(v - 1.0 / 12) < 0.0015, "rand var %g, want %g", v, 1.0 / 12);
      CHECK(lo >= 0 && hi < 1, "rand range [%g, %g]", lo, hi);
      CHECK(lo < 0.001 && hi > 0.999, "rand covers [0, 1): [%g, %g]", lo, hi);
      int64_t below = 0;
      for (int64_t i = 0; i < N; i++) below += a[i] < 0.25;
      CHECK(fabs((double)below / (double)N - 0.25) < 0.008, "rand P(x < 0.25) = %g", (double)below / (double)N);
      /* neighbours are not correlated */
      double cov = 0;
      for (int64_t i = 1; i < N; i++) cov += (a[i] - m) * (a[i - 1] - m);
      CHECK(fabs(cov / (double)(N - 1) / v) < 0.02, "rand lag-1 correlation %g", cov / (double)(N - 1) / v);
    }
    /* a 2-d shape and other float dtypes */
    double *h = values(cg_rand(CG_FLOAT16, s2, 2), N, "rand float16");
    if (h) {
      double m, v, lo, hi;
      moments(h, N, &m, &v, &lo, &hi);
      CHECK(lo >= 0 && hi < 1 && fabs(m - 0.5) < 0.006, "rand float16: mean %g range [%g, %g]", m, lo, hi);
    }
    double *bf = values(cg_rand(CG_BFLOAT16, s2, 2), N, "rand bfloat16");
    if (bf) {
      double m, v, lo, hi;
      moments(bf, N, &m, &v, &lo, &hi);
      CHECK(lo >= 0 && hi < 1 && fabs(m - 0.5) < 0.01, "rand bfloat16: mean %g range [%g, %g]", m, lo, hi);
    }
  }
  case_end();

  case_begin("randn");
  {
    cg_manual_seed(7);
    double *a = values(cg_randn(CG_FLOAT32, s2, 2), N, "randn");
    cg_manual_seed(7);
    double *b = values(cg_randn(CG_FLOAT32, s2, 2), N, "randn again");
    if (a && b) {
      CHECK(same_values(a, b, N), "randn: same seed gives the same values");
      double m, v, lo, hi;
      moments(a, N, &m, &v, &lo, &hi);
      /* sd of the mean 0.0032, of the variance 0.0045 */
      CHECK(fabs(m) < 0.02, "randn mean %g", m);
      CHECK(fabs(v - 1) < 0.03, "randn var %g", v);
      int64_t in1 = 0, in2 = 0;
      double m3 = 0, m4 = 0;
      for (int64_t i = 0; i < N; i++) {
        in1 += fabs(a[i]) < 1;
        in2 += fabs(a[i]) < 2;
        m3 += pow(a[i] - m, 3);
        m4 += pow(a[i] - m, 4);
      }
      CHECK(fabs((double)in1 / (double)N - 0.6827) < 0.01, "randn P(|x| < 1) = %g", (double)in1 / (double)N);
      CHECK(fabs((double)in2 / (double)N - 0.9545) < 0.005, "randn P(|x| < 2) = %g", (double)in2 / (double)N);
      CHECK(fabs(m3 / (double)N / pow(v, 1.5)) < 0.05, "randn skewness %g", m3 / (double)N / pow(v, 1.5));
      CHECK(fabs(m4 / (double)N / (v * v) - 3) < 0.12, "randn kurtosis %g", m4 / (double)N / (v * v));
      CHECK(lo > -7 && hi < 7 && lo < -3 && hi > 3, "randn range [%g, %g]", lo, hi);
      bool finite = true;
      for (int64_t i = 0; i < N; i++) finite &= isfinite(a[i]) != 0;
      CHECK(finite, "randn values are finite");
    }
  }
  case_end();

  case_begin("uniform");
  {
    cg_manual_seed(99);
    double *a = values(cg_uniform(-3, 5, CG_FLOAT32, &N, 1), N, "uniform(-3, 5)");
    cg_manual_seed(99);
    double *b = values(cg_uniform(-3, 5, CG_FLOAT32, &N, 1), N, "uniform(-3, 5) again");
    if (a && b) {
      CHECK(same_values(a, b, N), "uniform: same seed gives the same values");
      double m, v, lo, hi;
      moments(a, N, &m, &v, &lo, &hi);
      CHECK(fabs(m - 1) < 0.05, "uniform(-3, 5) mean %g", m);
      CHECK(fabs(v - 64.0 / 12) < 0.1, "uniform(-3, 5) var %g, want %g", v, 64.0 / 12);
      CHECK(lo >= -3 && hi < 5 && lo < -2.99 && hi > 4.99, "uniform(-3, 5) range [%g, %g]", lo, hi);
    }
  }
  case_end();

  case_begin("randint");
  {
    cg_manual_seed(5);
    cg_tensor *t = cg_randint(-3, 4, &N, 1);
    CHECK(t && cg_dtype_of(t) == CG_INT32, "randint dtype is int32");
    double *a = t && cg_dtype_of(t) == CG_INT32 ? values(t, N, "randint(-3, 4)") : NULL;
    cg_manual_seed(5);
    double *b = values(cg_randint(-3, 4, &N, 1), N, "randint again");
    cg_manual_seed(6);
    double *c = values(cg_randint(-3, 4, &N, 1), N, "randint seed 6");
    if (a && b && c) {
      CHECK(same_values(a, b, N), "randint: same seed gives the same values");
      CHECK(!same_values(a, c, N), "randint: another seed gives other values");
      int64_t count[7] = {0};
      bool in = true;
      for (int64_t i = 0; i < N; i++) {
        if (a[i] < -3 || a[i] > 3 || a[i] != floor(a[i])) in = false;
        else count[(int)a[i] + 3]++;
      }
      CHECK(in, "randint values are integers in [-3, 4)");
      for (int k = 0; k < 7; k++)
        CHECK(fabs((double)count[k] / (double)N - 1.0 / 7) < 0.006, "randint value %d has frequency %g, want %g", k - 3, (double)count[k] / (double)N, 1.0 / 7);
    }
    int64_t one = 1000;
    double *d = values(cg_randint(10, 11, &one, 1), one, "randint(10, 11)");
    if (d) {
      bool all10 = true;
      for (int64_t i = 0; i < one; i++) all10 &= d[i] == 10;
      CHECK(all10, "randint(10, 11) is always 10");
    }
  }
  case_end();
}

int main(void) {
  ref_init();
  test_from_data_full();
  test_ranges();
  test_random();
  ref_shutdown();
  return test_summary();
}
