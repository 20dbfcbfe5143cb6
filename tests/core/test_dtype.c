/* dtypes: the size/name table, and the float32 <-> float16 / bfloat16 / fp8 e4m3 / fp8 e5m2
 * conversions of src/core/fpconv.c.
 *
 * The conversions are checked three ways:
 *   1. every encoding of every format decodes to the value the format's definition gives
 *      (a reference decoder written here with ldexp) and re-encodes to itself;
 *   2. float32 -> small format against an exact-arithmetic reference written here (the
 *      table of every finite value of the format as double, binary search, the midpoint
 *      between neighbours decides, ties to the even encoding, then the format's overflow
 *      rule), on all boundary values and on CG_DTYPE_N (default 2M) random iterations of
 *      two float32 bit patterns each (one uniform, one aimed at the format's range);
 *   3. where the CPU has them, against hardware: F16C for float16 (both directions) and
 *      AVX512-BF16 for bfloat16.
 * CG_DTYPE_EXHAUSTIVE=1 adds a sweep over all 2^32 float32 inputs for every format and
 * both hardware references (about 100 s at -O2, about 10 minutes in a Debug+ASan build). */
#include "cgrad.h"
#include "check.h"
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define HAVE_X86 1
#include <immintrin.h>
#ifdef __clang__
#include <cpuid.h>
#endif
#endif

/* ---- helpers ----------------------------------------------------------------------- */

static uint64_t rng_state = 0x5EED0F0D7E57ull;
static uint64_t splitmix64(void) {
  uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* Like CHECK, but prints only the first 20 failures of the program (counts all of them),
 * since one bug should not print millions of lines, and keeps check.h's int counters from
 * overflowing when CG_DTYPE_N is raised (n_verified has the true count). */
static long n_printed;
static long long n_verified;
#define VERIFY(cond, ...)                                 \
  do {                                                    \
    n_verified++;                                         \
    if (cond) {                                           \
      if (t_pass < INT_MAX) t_pass++;                     \
    } else if (++n_printed <= 20) {                       \
      CHECK(cond, __VA_ARGS__);                           \
    } else if (t_fail < INT_MAX) {                        \
      t_fail++;                                           \
    }                                                     \
  } while (0)

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- the formats and the reference ------------------------------------------------- */

static uint32_t enc_f16(float x) { return cg_f32_to_f16(x); }
static uint32_t enc_bf16(float x) { return cg_f32_to_bf16(x); }
static uint32_t enc_e4m3(float x) { return cg_f32_to_fp8e4m3(x); }
static uint32_t enc_e5m2(float x) { return cg_f32_to_fp8e5m2(x); }
static float dec_f16(uint32_t c) { return cg_f16_to_f32((uint16_t)c); }
static float dec_bf16(uint32_t c) { return cg_bf16_to_f32((uint16_t)c); }
static float dec_e4m3(uint32_t c) { return cg_fp8e4m3_to_f32((uint8_t)c); }
static float dec_e5m2(uint32_t c) { return cg_fp8e5m2_to_f32((uint8_t)c); }

typedef struct {
  const char *name;
  int bits, E, M, bias;
  int ieee; /* 1: all-ones exponent is inf/NaN, overflow -> inf. 0: OCP e4m3fn (saturating) */
  uint32_t (*enc)(float);
  float (*dec)(uint32_t);
  double max_finite, min_sub; /* from the format's specification, to check the table */
  /* derived by build_ref: */
  uint32_t nfin; /* the positive finite encodings are 0 .. nfin-1, in increasing value */
  double *val;   /* val[c]: the value of positive encoding c */
  double *mid;   /* mid[c] = (val[c] + val[c+1]) / 2, exact in double */
  double ovf;    /* ieee: magnitudes >= ovf round to inf (max + half its ulp) */
  uint32_t inf, sign;
} fmt;

static fmt fmts[4] = {
    {"float16", 16, 5, 10, 15, 1, enc_f16, dec_f16, 65504.0, 0x1p-24, 0, 0, 0, 0, 0, 0},
    {"bfloat16", 16, 8, 7, 127, 1, enc_bf16, dec_bf16, 0x1.FEp127, 0x1p-133, 0, 0, 0, 0, 0, 0},
    {"fp8e4m3", 8, 4, 3, 7, 0, enc_e4m3, dec_e4m3, 448.0, 0x1p-9, 0, 0, 0, 0, 0, 0},
    {"fp8e5m2", 8, 5, 2, 15, 1, enc_e5m2, dec_e5m2, 57344.0, 0x1p-16, 0, 0, 0, 0, 0, 0},
};

/* The value of encoding c by the format's definition; *is_nan set for NaN encodings. */
static double ref_decode(const fmt *f, uint32_t c, int *is_nan) {
  uint32_t neg = c >> (f->bits - 1) & 1u;
  uint32_t ef = c >> f->M & ((1u << f->E) - 1u), mf = c & ((1u << f->M) - 1u);
  uint32_t eall = (1u << f->E) - 1u, mall = (1u << f->M) - 1u;
  double v;
  *is_nan = 0;
  if (f->ieee && ef == eall) {
    if (mf) *is_nan = 1;
    v = mf ? NAN : INFINITY;
  } else if (!f->ieee && ef == eall && mf == mall) {
    *is_nan = 1;
    v = NAN;
  } else if (ef == 0) {
    v = ldexp((double)mf, 1 - f->bias - f->M);
  } else {
    v = ldexp((double)((1u << f->M) | mf), (int)ef - f->bias - f->M);
  }
  return neg ? -v : v;
}

static int is_nan_code(const fmt *f, uint32_t c) {
  int n;
  ref_decode(f, c, &n);
  return n;
}

static void build_ref(fmt *f) {
  f->sign = 1u << (f->bits - 1);
  f->inf = f->ieee ? ((1u << f->E) - 1u) << f->M : 0;
  f->nfin = f->ieee ? ((1u << f->E) - 1u) << f->M : f->sign - 1u;
  f->val = malloc(f->nfin * sizeof(double));
  f->mid = malloc(f->nfin * sizeof(double));
  int n;
  for (uint32_t c = 0; c < f->nfin; c++) f->val[c] = ref_decode(f, c, &n);
  for (uint32_t c = 0; c + 1 < f->nfin; c++) f->mid[c] = (f->val[c] + f->val[c + 1]) / 2;
  double top = f->val[f->nfin - 1];
  f->mid[f->nfin - 1] = f->ovf = top + (top - f->val[f->nfin - 2]) / 2;
  /* the table is what the format says it is */
  CHECK(top == f->max_finite, "%s max %a", f->name, top);
  CHECK(f->val[1] == f->min_sub, "%s min subnormal %a", f->name, f->val[1]);
  CHECK(f->val[1u << f->M] == ldexp(1.0, 1 - f->bias), "%s min normal", f->name);
  int sorted = 1;
  for (uint32_t c = 0; c + 1 < f->nfin; c++) sorted &= f->val[c] < f->mid[c] && f->mid[c] < f->val[c + 1];
  CHECK(sorted, "%s values not increasing", f->name);
}

/* The correctly rounded encoding of a non-NaN float32 x. */
static uint32_t ref_encode(const fmt *f, float x) {
  uint32_t s = signbit(x) ? f->sign : 0;
  double a = fabs((double)x);
  uint32_t last = f->nfin - 1;
  if (a > f->val[last]) /* past the largest finite value (inf included) */
    return s | (f->ieee && a >= f->ovf ? f->inf : last);
  uint32_t lo = 0, hi = last; /* val[lo] <= a <= val[hi] */
  while (hi - lo > 1) {
    uint32_t m = lo + (hi - lo) / 2;
    if (f->val[m] <= a)
      lo = m;
    else
      hi = m;
  }
  if (a == f->val[lo]) return s | lo;
  if (a < f->mid[lo]) return s | lo;
  if (a > f->mid[lo]) return s | hi;
  return s | ((lo & 1u) ? hi : lo); /* tie: the even encoding (mantissa LSB 0) */
}

/* ---- hardware references ------------------------------------------------------------ */

static int have_f16c, have_bf16;
#ifdef HAVE_X86
__attribute__((target("f16c"))) static uint16_t hw_f16(float x) {
  return (uint16_t)_mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(x), _MM_FROUND_TO_NEAREST_INT), 0);
}
__attribute__((target("f16c"))) static float hw_f16_to_f32(uint16_t h) {
  return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
}
__attribute__((target("f16c,avx"))) static void hw_f16_x8(const float *x, uint16_t *out) {
  _mm_storeu_si128((__m128i *)out, _mm256_cvtps_ph(_mm256_loadu_ps(x), _MM_FROUND_TO_NEAREST_INT));
}
__attribute__((target("avx512bf16,avx512vl"))) static uint16_t hw_bf16(float x) {
  __m128bh r = _mm_cvtneps_pbh(_mm_set_ss(x));
  uint16_t out[8];
  memcpy(out, &r, sizeof out);
  return out[0];
}
__attribute__((target("avx512bf16,avx512f"))) static void hw_bf16_x16(const float *x, uint16_t *out) {
  __m256bh r = _mm512_cvtneps_pbh(_mm512_loadu_ps(x));
  memcpy(out, &r, 32);
}
#else
static uint16_t hw_f16(float x) { return (uint16_t)x; }
static float hw_f16_to_f32(uint16_t h) { return (float)h; }
static void hw_f16_x8(const float *x, uint16_t *out) { (void)x, (void)out; }
static uint16_t hw_bf16(float x) { return (uint16_t)x; }
static void hw_bf16_x16(const float *x, uint16_t *out) { (void)x, (void)out; }
#endif

/* AVX512-BF16's VCVTNEPS2BF16 always treats float32 denormal inputs as zero (whatever
 * MXCSR says), so those inputs are not compared with it. Its NaN rule (quiet bit set,
 * payload's top 7 bits kept) is the one fpconv.c follows, so NaNs are compared exactly,
 * like everything else. */
static int bf16_hw_comparable(uint32_t u) { return (u & 0x7F800000u) != 0 || (u & 0x7FFFFFu) == 0; }

/* ---- one float32 against every reference --------------------------------------------- */

static void check_value(float x) {
  uint32_t u = f32_bits(x);
  for (int i = 0; i < 4; i++) {
    const fmt *f = &fmts[i];
    uint32_t got = f->enc(x);
    if (isnan(x)) {
      VERIFY(is_nan_code(f, got) && (got & f->sign) == (signbit(x) ? f->sign : 0),
             "%s(NaN 0x%08x) = 0x%x: not a NaN of that sign", f->name, (unsigned)u, (unsigned)got);
    } else {
      uint32_t want = ref_encode(f, x);
      VERIFY(got == want, "%s(%a [0x%08x]) = 0x%x, want 0x%x", f->name, (double)x, (unsigned)u, (unsigned)got,
             (unsigned)want);
    }
  }
  if (have_f16c) {
    uint16_t got = cg_f32_to_f16(x), hw = hw_f16(x);
    VERIFY(got == hw, "f16(%a [0x%08x]) = 0x%04x, F16C 0x%04x", (double)x, (unsigned)u, got, hw);
  }
  if (have_bf16 && bf16_hw_comparable(u)) {
    uint16_t got = cg_f32_to_bf16(x), hw = hw_bf16(x);
    VERIFY(got == hw, "bf16(%a [0x%08x]) = 0x%04x, AVX512-BF16 0x%04x", (double)x, (unsigned)u, got, hw);
  }
}
static void check_both_signs(float x) {
  check_value(x);
  check_value(-x);
}

/* ---- the tests ---------------------------------------------------------------------- */

static void test_dtype_table(void) {
  static const struct {
    cg_dtype dt;
    const char *name;
    size_t size;
  } want[] = {
      {CG_BOOL, "bool", 1},       {CG_INT8, "int8", 1},         {CG_INT16, "int16", 2},
      {CG_INT32, "int32", 4},     {CG_INT64, "int64", 8},       {CG_UINT8, "uint8", 1},
      {CG_UINT16, "uint16", 2},   {CG_UINT32, "uint32", 4},     {CG_UINT64, "uint64", 8},
      {CG_FLOAT16, "float16", 2}, {CG_BFLOAT16, "bfloat16", 2}, {CG_FLOAT32, "float32", 4},
      {CG_FLOAT64, "float64", 8}, {CG_FP8E4M3, "fp8e4m3", 1},   {CG_FP8E5M2, "fp8e5m2", 1},
  };
  CHECK(sizeof want / sizeof want[0] == CG_NUM_DTYPES, "the table here misses a dtype");
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    CHECK(cg_dtype_size(want[i].dt) == want[i].size, "size of %s: %zu", want[i].name,
          cg_dtype_size(want[i].dt));
    CHECK(!strcmp(cg_dtype_name(want[i].dt), want[i].name), "name %s: %s", want[i].name,
          cg_dtype_name(want[i].dt));
  }
  /* the X-macro's lower-case names are the names */
  static const char *xnames[] = {
#define X_(N, n) #n,
      CG_DTYPES(X_)
#undef X_
  };
  for (int i = 0; i < CG_NUM_DTYPES; i++)
    CHECK(!strcmp(cg_dtype_name((cg_dtype)i), xnames[i]), "name of %d: %s, want %s", i,
          cg_dtype_name((cg_dtype)i), xnames[i]);
  /* invalid dtypes */
  cg_dtype bad[] = {CG_NUM_DTYPES, (cg_dtype)(CG_NUM_DTYPES + 1), (cg_dtype)100, (cg_dtype)-1};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CHECK(cg_dtype_size(bad[i]) == 0, "size of invalid dtype %d", (int)bad[i]);
    CHECK(!strcmp(cg_dtype_name(bad[i]), "invalid"), "name of invalid dtype %d: %s", (int)bad[i],
          cg_dtype_name(bad[i]));
  }
}

/* Every encoding: decodes to the reference value (exactly, sign of zero included) and
 * re-encodes to itself; a NaN decodes to a NaN of its sign and re-encodes to a NaN. */
static void test_all_encodings(void) {
  for (int i = 0; i < 4; i++) {
    const fmt *f = &fmts[i];
    uint32_t n = 1u << f->bits;
    for (uint32_t c = 0; c < n; c++) {
      int is_nan;
      double want = ref_decode(f, c, &is_nan);
      float got = f->dec(c);
      uint32_t back = f->enc(got);
      if (is_nan) {
        VERIFY(isnan(got) && !!signbit(got) == !!(c & f->sign), "%s decode 0x%x = %a", f->name, (unsigned)c,
               (double)got);
        VERIFY(is_nan_code(f, back) && (back & f->sign) == (c & f->sign), "%s NaN 0x%x -> 0x%x", f->name,
               (unsigned)c, (unsigned)back);
      } else {
        VERIFY((double)got == want && !!signbit(got) == !!signbit(want), "%s decode 0x%x = %a, want %a",
               f->name, (unsigned)c, (double)got, want);
        VERIFY(back == c, "%s round trip 0x%x -> %a -> 0x%x", f->name, (unsigned)c, (double)got,
               (unsigned)back);
      }
    }
  }
  if (have_f16c)
    for (uint32_t h = 0; h < 65536; h++) {
      uint32_t got = f32_bits(cg_f16_to_f32((uint16_t)h)), hw = f32_bits(hw_f16_to_f32((uint16_t)h));
      VERIFY(got == hw, "f16 decode 0x%04x = 0x%08x, F16C 0x%08x", (unsigned)h, (unsigned)got, (unsigned)hw);
    }
  /* the decoders quiet a NaN and keep the sign */
  CHECK(f32_bits(cg_f16_to_f32(0x7C01)) == 0x7FC02000u, "f16 sNaN -> 0x%08x",
        (unsigned)f32_bits(cg_f16_to_f32(0x7C01)));
  CHECK(f32_bits(cg_bf16_to_f32(0xFF81)) == 0xFFC10000u, "bf16 sNaN -> 0x%08x",
        (unsigned)f32_bits(cg_bf16_to_f32(0xFF81)));
  CHECK(f32_bits(cg_fp8e4m3_to_f32(0xFF)) == 0xFFC00000u, "e4m3 -NaN");
  CHECK(f32_bits(cg_fp8e5m2_to_f32(0x7D)) == 0x7FE00000u, "e5m2 sNaN -> 0x%08x",
        (unsigned)f32_bits(cg_fp8e5m2_to_f32(0x7D)));
}

/* Boundary values: for every pair of neighbouring encodings of every format, both values,
 * the float32 next to each, the exact midpoint and the float32 on either side of it; the
 * overflow thresholds; float32's own extremes; every power of two; zeros, infinities and
 * NaNs. Every one with both signs, against every reference. */
static void test_boundaries(void) {
  for (int i = 0; i < 4; i++) {
    const fmt *f = &fmts[i];
    for (uint32_t c = 0; c < f->nfin; c++) {
      float v = (float)f->val[c], m = (float)f->mid[c]; /* mid[nfin-1] is the overflow threshold */
      VERIFY((double)v == f->val[c] && (double)m == f->mid[c], "%s: 0x%x or its midpoint is no float32",
             f->name, (unsigned)c);
      float xs[] = {v, nextafterf(v, 0), nextafterf(v, INFINITY),
                    m, nextafterf(m, 0), nextafterf(m, INFINITY)};
      for (size_t k = 0; k < sizeof xs / sizeof xs[0]; k++) check_both_signs(xs[k]);
    }
  }
  /* the named cases, spelled out (the loop above covers them too) */
  CHECK(cg_f32_to_f16(65504.0f) == 0x7BFF && cg_f32_to_f16(65519.996f) == 0x7BFF &&
            cg_f32_to_f16(65520.0f) == 0x7C00,
        "f16 overflow threshold");
  CHECK(cg_f32_to_f16(0x1p-25f) == 0x0000 && cg_f32_to_f16(nextafterf(0x1p-25f, 1)) == 0x0001 &&
            cg_f32_to_f16(0x1.8p-24f) == 0x0002 && cg_f32_to_f16(-0x1p-24f) == 0x8001,
        "f16 subnormal rounding");
  CHECK(cg_f32_to_f16(0x1.ffcp-15f) == 0x0400, "f16 max subnormal + half ulp -> min normal");
  CHECK(cg_f32_to_fp8e4m3(448.0f) == 0x7E && cg_f32_to_fp8e4m3(464.0f) == 0x7E &&
            cg_f32_to_fp8e4m3(480.0f) == 0x7E && cg_f32_to_fp8e4m3(1e30f) == 0x7E &&
            cg_f32_to_fp8e4m3(-INFINITY) == 0xFE && cg_f32_to_fp8e4m3(INFINITY) == 0x7E,
        "e4m3 saturates");
  CHECK(cg_f32_to_fp8e4m3(NAN) == 0x7F && cg_f32_to_fp8e4m3(-NAN) == 0xFF, "e4m3 NaN");
  CHECK(cg_f32_to_fp8e5m2(57344.0f) == 0x7B && cg_f32_to_fp8e5m2(nextafterf(61440.0f, 0)) == 0x7B &&
            cg_f32_to_fp8e5m2(61440.0f) == 0x7C && cg_f32_to_fp8e5m2(-INFINITY) == 0xFC,
        "e5m2 overflow");
  CHECK(cg_f32_to_bf16(0x1.fep127f) == 0x7F7F && cg_f32_to_bf16(0x1.ffp127f) == 0x7F80 &&
            cg_f32_to_bf16(nextafterf(0x1.ffp127f, 0)) == 0x7F7F,
        "bf16 overflow");
  CHECK(cg_f32_to_bf16(0x1p-149f) == 0x0000 && cg_f32_to_bf16(0x1p-133f) == 0x0001 &&
            cg_f32_to_bf16(0x1p-134f) == 0x0000 && cg_f32_to_bf16(0x1.8p-133f) == 0x0002,
        "bf16 subnormals");
  CHECK(cg_f32_to_f16(-0.0f) == 0x8000 && cg_f32_to_bf16(-0.0f) == 0x8000 &&
            cg_f32_to_fp8e4m3(-0.0f) == 0x80 && cg_f32_to_fp8e5m2(-0.0f) == 0x80,
        "-0 keeps its sign");
  CHECK(cg_f32_to_f16(-1e-30f) == 0x8000 && cg_f32_to_fp8e4m3(-1e-30f) == 0x80, "underflow to -0");
  CHECK(f32_bits(cg_f16_to_f32(0x8000)) == 0x80000000u && f32_bits(cg_fp8e4m3_to_f32(0x80)) == 0x80000000u,
        "-0 decodes");

  /* float32 extremes, every power of two and its neighbours, zeros, infinities */
  float specials[] = {0.0f, 0x1p-149f, 0x1.fffffcp-127f, 0x1p-126f, 0x1.fffffep127f, INFINITY};
  for (size_t k = 0; k < sizeof specials / sizeof specials[0]; k++) check_both_signs(specials[k]);
  for (int e = -149; e <= 127; e++) {
    float p = ldexpf(1.0f, e);
    check_both_signs(p);
    check_both_signs(nextafterf(p, 0));
    check_both_signs(nextafterf(p, INFINITY));
  }
  /* NaNs: quiet and signaling, payload at the top, the bottom, everywhere */
  uint32_t nans[] = {0x7FC00000u, 0x7F800001u, 0x7FBFFFFFu, 0x7FFFFFFFu, 0x7FA00000u, 0x7F802000u,
                     0x7F810000u, 0x7FE00000u, 0x7F900000u, 0x7FD55555u, 0x7F8AAAAAu};
  for (size_t k = 0; k < sizeof nans / sizeof nans[0]; k++) {
    check_value(bits_f32(nans[k]));
    check_value(bits_f32(nans[k] | 0x80000000u));
  }
  CHECK(cg_f32_to_f16(bits_f32(0xFF800001u)) == 0xFE00, "f16 -sNaN quieted: 0x%04x",
        cg_f32_to_f16(bits_f32(0xFF800001u)));
  CHECK(cg_f32_to_bf16(bits_f32(0x7F800001u)) == 0x7FC0, "bf16 sNaN quieted");
  CHECK(cg_f32_to_bf16(bits_f32(0x7F810000u)) == 0x7FC1, "bf16 sNaN payload kept");
  CHECK(cg_f32_to_fp8e5m2(bits_f32(0x7F800001u)) == 0x7E && cg_f32_to_fp8e5m2(bits_f32(0xFFC00000u)) == 0xFE,
        "e5m2 NaN");
}

/* Random float32 bit patterns: one uniform (mostly huge, tiny or NaN for the small
 * formats) and one whose exponent lies in or around format k's range (k cycles). */
static void test_random(long n) {
  for (long i = 0; i < n; i++) {
    uint64_t r = splitmix64();
    check_value(bits_f32((uint32_t)r));
    const fmt *f = &fmts[i & 3];
    int lo = 127 + 1 - f->bias - f->M - 3, hi = 127 + (int)ilogb(f->max_finite) + 3;
    if (lo < 0) lo = 0;
    if (hi > 255) hi = 255;
    uint32_t e = (uint32_t)lo + (uint32_t)((r >> 32 & 0xFFFF) % (uint64_t)(hi - lo + 1));
    uint32_t u = (uint32_t)(r >> 63) << 31 | e << 23 | (uint32_t)(r >> 40 & 0x7FFFFF);
    if (r >> 48 & 1) u &= ~0xFFFFu; /* half of them with few mantissa bits: ties and near-ties */
    check_value(bits_f32(u));
  }
}

/* All 2^32 float32 inputs (opt-in). The expected encoding of the positive inputs, walked
 * in increasing order, moves up one step each time the input passes a midpoint. */
static void test_exhaustive(void) {
  for (int i = 0; i < 4; i++) {
    const fmt *f = &fmts[i];
    long bad = 0;
    uint32_t c = 0, last = f->nfin - 1;
    for (uint32_t u = 0;; u++) {
      double a = (double)bits_f32(u);
      while (c < last && (a > f->mid[c] || (a == f->mid[c] && (c & 1u)))) c++;
      uint32_t want = c == last && f->ieee && a >= f->ovf ? f->inf : c;
      uint32_t gp = f->enc(bits_f32(u)), gn = f->enc(bits_f32(u | 0x80000000u));
      if (gp != want || gn != (want | f->sign)) {
        if (++bad <= 5)
          fprintf(stderr, "%s(0x%08x) = 0x%x, -x: 0x%x, want 0x%x\n", f->name, (unsigned)u, (unsigned)gp,
                  (unsigned)gn, (unsigned)want);
      }
      if (u == 0x7F800000u) break;
    }
    for (uint32_t u = 0x7F800001u;; u++) { /* NaNs */
      uint32_t gp = f->enc(bits_f32(u)), gn = f->enc(bits_f32(u | 0x80000000u));
      if (!is_nan_code(f, gp) || (gp & f->sign) || !is_nan_code(f, gn) || !(gn & f->sign)) bad++;
      if (u == 0x7FFFFFFFu) break;
    }
    CHECK(bad == 0, "%s: %ld of 2^32 inputs wrong", f->name, bad);
  }
  if (have_f16c) {
    long bad = 0;
    for (uint64_t base = 0; base < (1ull << 32); base += 8) {
      float x[8];
      uint16_t hw[8];
      for (int k = 0; k < 8; k++) x[k] = bits_f32((uint32_t)base + (uint32_t)k);
      hw_f16_x8(x, hw);
      for (int k = 0; k < 8; k++) bad += cg_f32_to_f16(x[k]) != hw[k];
    }
    CHECK(bad == 0, "f16 vs F16C: %ld of 2^32 inputs differ", bad);
  }
  if (have_bf16) {
    long bad = 0;
    for (uint64_t base = 0; base < (1ull << 32); base += 16) {
      float x[16];
      uint16_t hw[16];
      for (int k = 0; k < 16; k++) x[k] = bits_f32((uint32_t)base + (uint32_t)k);
      hw_bf16_x16(x, hw);
      for (int k = 0; k < 16; k++)
        if (bf16_hw_comparable((uint32_t)base + (uint32_t)k)) bad += cg_f32_to_bf16(x[k]) != hw[k];
    }
    CHECK(bad == 0, "bf16 vs AVX512-BF16: %ld of 2^32 inputs differ", bad);
  }
}

int main(void) {
#ifdef HAVE_X86
  __builtin_cpu_init();
#ifdef __clang__
  /* clang (14 at least) does not know "f16c" here: CPUID.1:ECX[29], with the OS's AVX state */
  unsigned a, b, c, d;
  have_f16c = __builtin_cpu_supports("avx") && __get_cpuid(1, &a, &b, &c, &d) && (c >> 29 & 1u);
#else
  have_f16c = __builtin_cpu_supports("f16c");
#endif
  have_bf16 = __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512vl");
#endif
  printf("hardware references: F16C %s, AVX512-BF16 %s\n", have_f16c ? "yes" : "no (skipped)",
         have_bf16 ? "yes" : "no (skipped)");
  for (int i = 0; i < 4; i++) build_ref(&fmts[i]);

  double t0 = now_s();
  test_dtype_table();
  test_all_encodings();
  double t1 = now_s();
  test_boundaries();
  double t2 = now_s();
  long n = test_env_long("CG_DTYPE_N", 2000000);
  test_random(n);
  double t3 = now_s();
  printf("encodings %.2fs, boundaries %.2fs, random %ld x 2 patterns %.2fs; %lld value checks\n", t1 - t0,
         t2 - t1, n, t3 - t2, n_verified);
  if (test_env_long("CG_DTYPE_EXHAUSTIVE", 0)) {
    test_exhaustive();
    printf("exhaustive %.2fs\n", now_s() - t3);
  }
  for (int i = 0; i < 4; i++) {
    free(fmts[i].val);
    free(fmts[i].mid);
  }
  return test_summary();
}
