/* The C backend's float32 EXP2, LOG2 and SIN (renderer/vmath.c: polynomials in GCC vector
 * types) against float64 libm, over ~10^7 inputs spread over the whole float range (every
 * 430th bit pattern from a random start: all exponents, signs, denormals, NaN payloads)
 * plus the edges where each function changes behaviour (overflow, the denormal results,
 * -0, inf, NaN, log2 of denormals and near 1, sin near multiples of pi/2 and around the
 * libm fallback bound). Checked:
 *   - the error of every result is within the bound vmath.h states (CG_VM_*_ULP: ulps of
 *     the float32 result, subnormal ulps below FLT_MIN; an overflow must be inf, a NaN
 *     NaN), run as the heuristic vectorizes it (f32x16 lanes) and with NOOPT=1 (scalar
 *     C: lane 0 of the f32x4 form);
 *   - the two agree bit for bit (a vector body and its scalar tails give the same bits);
 *   - the INTERP device (libm's float functions, uop/alu.c) is within the same bound on a
 *     tenth of the inputs, so the backends differ by at most twice the bound.
 * CG_TEST_SEED=n repeats a run's inputs. */
#include "check.h"
#include "cgrad.h"
#include "renderer/vmath.h"
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>


/* |y - ref| in ulps of ref rounded to float32 (2^-149 below FLT_MIN); 1e9 for a wrong
 * class (NaN where a number was due, a number where inf was due, ...) */
static double ulp_err(float y, double ref) {
  if (isnan(ref)) return isnan(y) ? 0 : 1e9;
  if (isnan(y)) return 1e9;
  float rf = (float)ref;
  if (isinf(rf)) return y == rf ? 0 : 1e9;
  if (isinf(y)) return 1e9;
  int e;
  frexp(ref, &e);
  if (e - 1 < -126) e = -125;
  return fabs((double)y - ref) / ldexp(1, e - 1 - 23);
}

typedef struct {
  const char *name;
  cg_tensor *(*fn)(cg_tensor *);
  double (*ref)(double);
  double bound;
} fn_t;

static uint64_t rng;
static uint32_t rnd(void) { /* splitmix64 */
  uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return (uint32_t)((z ^ (z >> 31)) >> 16);
}

/* the whole range at a stride, from a random start, then the function's edges */
static int64_t make_inputs(float *x, int64_t cap, int which) {
  int64_t n = 0;
  uint32_t start = rnd() % 430;
  for (uint64_t b = start; b < (1ull << 32) && n < cap; b += 430) x[n++] = bits_f32((uint32_t)b);
  const float common[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, -NAN, bits_f32(0x7f800001), bits_f32(0xffc00001), FLT_MIN, -FLT_MIN,
                          FLT_MAX, -FLT_MAX, bits_f32(1), bits_f32(0x80000001), bits_f32(0x007fffff), bits_f32(0x807fffff), 1.0f, -1.0f, 0.5f};
  for (size_t i = 0; i < sizeof common / sizeof common[0]; i++) x[n++] = common[i];
  if (which == 0) { /* exp2: around the overflow and every denormal exponent, integers, tiny x */
    const float e[] = {127.0f, 128.0f, 129.0f, -126.0f, -127.0f, -149.0f, -150.0f, -151.0f, -152.0f};
    for (size_t i = 0; i < sizeof e / sizeof e[0]; i++)
      for (int k = -300; k <= 300; k++) x[n++] = bits_f32(f32_bits(e[i]) + (uint32_t)k);
    for (int k = -151; k <= 129; k++) x[n++] = (float)k, x[n++] = (float)k + 0.5f, x[n++] = (float)k - 0x1p-10f;
    for (int i = 0; i < 200000; i++) x[n++] = -151.0f + 280.0f * (float)(rnd() % 1000003) / 1000003.0f;
  } else if (which == 1) { /* log2: near 1, near the interval ends sqrt(1/2) and sqrt(2), all denormals */
    const float c[] = {1.0f, 0.70710677f, 1.4142135f, 2.0f, 0.5f};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
      for (int k = -3000; k <= 3000; k++) x[n++] = bits_f32(f32_bits(c[i]) + (uint32_t)k);
    for (uint32_t k = 1; k < 0x800000; k += 37) x[n++] = bits_f32(k);
    for (int i = 0; i < 200000; i++) x[n++] = 0.5f + (float)(rnd() % 1000003) / 1000003.0f;
  } else { /* sin: the floats nearest k*pi/2 (the worst cancellation), the fallback bound */
    for (int k = -20000; k <= 20000; k += 7) {
      float f = (float)(k * M_PI_2 * (1 + (double)(rnd() % 1000) / 1000 * (k > 12000 || k < -12000 ? 2.0 : 1.0)));
      for (int d = -2; d <= 2; d++) x[n++] = bits_f32(f32_bits(f) + (uint32_t)d);
    }
    for (int k = 0; k < 60000; k++) {
      float f = (float)(k * M_PI_2);
      x[n++] = f, x[n++] = bits_f32(f32_bits(f) + 1), x[n++] = bits_f32(f32_bits(f) - 1);
    }
    for (int k = -200; k <= 200; k++) x[n++] = bits_f32(f32_bits(CG_VM_SIN_MAX) + (uint32_t)k), x[n++] = -bits_f32(f32_bits(CG_VM_SIN_MAX) + (uint32_t)k);
    for (int i = 0; i < 200000; i++) x[n++] = -10.0f + 20.0f * (float)(rnd() % 1000003) / 1000003.0f;
  }
  return n;
}

/* run fn over x on the current device and config; NULL on failure */
static float *run(const fn_t *f, const float *x, int64_t n) {
  int64_t sh[1] = {n};
  cg_tensor *t = cg_from_data(x, CG_FLOAT32, sh, 1), *y = f->fn(t);
  float *out = malloc((size_t)n * 4);
  if (!out || !y || cg_realize(y) || cg_read(y, CG_FLOAT32, out, (size_t)n * 4)) {
    fprintf(stderr, "%s: %s\n", f->name, cg_last_error());
    free(out);
    out = NULL;
  }
  cg_free(y), cg_free(t);
  return out;
}

/* max error of out over x; counts results past the bound (prints the first few) */
static double check_bound(const fn_t *f, const char *how, const float *x, const float *out, int64_t n, int64_t *bad) {
  double mx = 0;
  *bad = 0;
  for (int64_t i = 0; i < n; i++) {
    double e = ulp_err(out[i], f->ref((double)x[i]));
    if (e > mx) mx = e;
    if (e > f->bound && (*bad)++ < 5)
      fprintf(stderr, "  %s %s(%a = 0x%08x) = %a, float64 %a: %.3g ulp > %.2f\n", how, f->name, x[i], f32_bits(x[i]), out[i], f->ref((double)x[i]), e, f->bound);
  }
  return mx;
}

static void test_fn(const fn_t *f, int which) {
  const int64_t cap = 10100000 + 1200000;
  float *x = malloc((size_t)cap * 4);
  if (!x) return;
  int64_t n = make_inputs(x, 10000000, which);
  n -= n % 64; /* vector lanes with no tail (the heuristic upcasts this length): NOOPT is the scalar path */
  int64_t bad;
  cg_set_config("NOOPT", "0");
  float *vec = run(f, x, n);
  cg_set_config("NOOPT", "1");
  float *sca = run(f, x, n);
  cg_set_config("NOOPT", "0");
  CHECK(vec && sca, "%s ran", f->name);
  if (vec && sca) {
    double mv = check_bound(f, "vector", x, vec, n, &bad);
    CHECK(bad == 0, "%s: %lld of %lld vector results past %.2f ulp", f->name, (long long)bad, (long long)n, f->bound);
    double ms = check_bound(f, "scalar", x, sca, n, &bad);
    CHECK(bad == 0, "%s: %lld of %lld scalar results past %.2f ulp", f->name, (long long)bad, (long long)n, f->bound);
    int64_t differ = 0;
    for (int64_t i = 0; i < n; i++)
      if (f32_bits(vec[i]) != f32_bits(sca[i]) && !(isnan(vec[i]) && isnan(sca[i])) && differ++ < 5)
        fprintf(stderr, "  %s(%a): vector %a, scalar %a\n", f->name, x[i], vec[i], sca[i]);
    CHECK(differ == 0, "%s: %lld results differ between the vector and scalar forms", f->name, (long long)differ);
    printf("%s: %lld inputs, max error %.4f ulp (vector), %.4f (scalar); bound %.2f\n", f->name, (long long)n, mv, ms, f->bound);
  }
  /* the interpreter (libm) on every 10th input */
  int64_t m = 0;
  for (int64_t i = 0; i < n; i += 10) x[m++] = x[i];
  cg_set_device("INTERP");
  float *in = run(f, x, m);
  cg_set_device(NULL);
  CHECK(in != NULL, "%s ran on INTERP", f->name);
  if (in) {
    double mi = check_bound(f, "INTERP", x, in, m, &bad);
    CHECK(bad == 0, "%s: %lld of %lld INTERP results past %.2f ulp", f->name, (long long)bad, (long long)m, f->bound);
    printf("%s: INTERP %lld inputs, max error %.4f ulp\n", f->name, (long long)m, mi);
  }
  free(in), free(vec), free(sca), free(x);
}

int main(void) {
  long seed = test_env_long("CG_TEST_SEED", (long)time(NULL));
  rng = (uint64_t)seed;
  printf("seed %ld (CG_TEST_SEED=%ld repeats it)\n", seed, seed);
  const fn_t fns[3] = {{"exp2", cg_exp2, exp2, CG_VM_EXP2_ULP}, {"log2", cg_log2, log2, CG_VM_LOG2_ULP}, {"sin", cg_sin, sin, CG_VM_SIN_ULP}};
  for (int i = 0; i < 3; i++) test_fn(&fns[i], i);
  return test_summary();
}
