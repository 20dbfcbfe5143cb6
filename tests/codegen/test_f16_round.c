/* float16 conversions on every backend, bit for bit against plain C on the bits. The C
 * backend makes them vector ops (expand.c: an f16 load's value, a float32 rounded to f16
 * bits for a store, the round trip f32 -> f16 -> f32; the prelude's vcvtph2ps / vcvtps2ph
 * where the kernel's target has F16C / AVX-512F, else lane by lane), the interpreter runs
 * them lane by lane with the library's conversions, the x86 backend hands f16 kernels to
 * the C compiler. Checked:
 *   - every one of the 65536 f16 codes read as float32 (NaN: quiet, payload kept), as a
 *     contiguous load and through a transposed copy (the in-register transpose of bits),
 *     and a transposed f16 -> f16 copy (the bits; a signalling NaN may come out quiet
 *     where a backend copies lane by lane through float32, as the interpreter does);
 *   - a computed float32 (a product by a power of two: exact, so the rounding is the only
 *     one) stored to an f16 buffer and rounded to f16 and back, over the edge values
 *     (ties both ways, the largest finite value and the first that overflows, ±0,
 *     f16 and f32 denormals, ±inf, NaN with payloads, signalling NaN) and fresh random
 *     bits of every exponent, on rows of 256, 58 (PADTO: masked 16-bit vector stores), 8,
 *     4 and 2 (vectors of those widths). The NaN bits must match too: the f16 of a NaN is its sign,
 *     the quiet bit and the payload's top 9 bits (x86's vcvtps2ph, and the scalar casts). */
#include "check.h"
#include "cgrad.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t rs;
static uint32_t next32(void) {
  rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
  return (uint32_t)(rs >> 32);
}

/* IEEE binary16 from float32, round to nearest even, on the bits */
static uint16_t ref_f16(float x) {
  uint32_t u = f32_bits(x), mag = u & 0x7fffffffu;
  uint16_t s = (uint16_t)(u >> 16 & 0x8000u);
  if (mag > 0x7f800000u) return (uint16_t)(s | 0x7e00u | (mag >> 13 & 0x3ffu));
  if (mag >= 0x477ff000u) return (uint16_t)(s | 0x7c00u); /* >= 65520 (and inf): overflows */
  if (mag < 0x38800000u) return (uint16_t)(s | (uint16_t)rint(fabs((double)x) * 0x1p24)); /* below 2^-14: units of 2^-24 */
  uint32_t r = (((mag >> 23) - 112) << 10) | (mag >> 13 & 0x3ffu), rem = mag & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1))) r++;
  return (uint16_t)(s | r);
}
/* float32 of binary16 bits (exact) */
static float ref_f32(uint16_t h) {
  uint32_t s = (uint32_t)(h & 0x8000u) << 16, e = h >> 10 & 0x1fu, m = h & 0x3ffu;
  if (e == 31) return bits_f32(s | (m ? 0x7fc00000u | m << 13 : 0x7f800000u));
  float v = e ? ldexpf((float)(1024 + m), (int)e - 25) : ldexpf((float)m, -24);
  return s ? -v : v;
}

enum { R = 256, C = 256, N = R * C };

static int count_bad(const uint32_t *got, const uint32_t *want, int n, int *first) {
  int bad = 0;
  *first = -1;
  for (int i = 0; i < n; i++)
    if (got[i] != want[i]) bad++, *first = *first < 0 ? i : *first;
  return bad;
}

int main(void) {
  const char *seed = getenv("CG_TEST_SEED");
  uint64_t sd = seed && *seed ? strtoull(seed, NULL, 10) : (uint64_t)time(NULL);
  rs = sd * 2654435761ull + 1;
  printf("test_f16_round: CG_TEST_SEED=%llu\n", (unsigned long long)sd);
  /* the reference functions themselves, on values that pin them */
  CHECK(ref_f16(65504.0f) == 0x7bffu && ref_f16(65519.99f) == 0x7bffu && ref_f16(65520.0f) == 0x7c00u && ref_f16(0x1p-24f) == 1 &&
            ref_f16(0x1p-25f) == 0 && ref_f16(0x1.8p-25f) == 1 && ref_f16(0x1.ff8p-15f) == 0x3ffu && ref_f16(0x1.ffcp-15f) == 0x400u &&
            ref_f16(1.0f + 0x1p-11f) == 0x3c00u && ref_f16(1.0f + 0x1.8p-10f) == 0x3c02u && ref_f16(-0.0f) == 0x8000u,
        "the reference rounding");
  uint16_t *codes = malloc(sizeof(uint16_t) * N), *codes_t = malloc(sizeof(uint16_t) * N), *h = malloc(sizeof(uint16_t) * N);
  uint32_t *got = malloc(sizeof(uint32_t) * N), *want = malloc(sizeof(uint32_t) * N), *want_t = malloc(sizeof(uint32_t) * N);
  float *a = malloc(sizeof(float) * N), *b = malloc(sizeof(float) * N), *f = malloc(sizeof(float) * N);
  uint16_t *wc = malloc(sizeof(uint16_t) * 2 * N);
  float *wa = malloc(sizeof(float) * 2 * N), *wb = malloc(sizeof(float) * 2 * N);
  for (int i = 0; i < N; i++) codes[i] = (uint16_t)i, want[i] = f32_bits(ref_f32((uint16_t)i));
  for (int i = 0; i < R; i++)
    for (int j = 0; j < C; j++) codes_t[j * R + i] = codes[i * C + j], want_t[j * R + i] = want[i * C + j];
  /* products: b powers of two (the product exact), a the edge values first, then random bits */
  const float edge[] = {65504.0f, 65519.996f, 65520.0f, -65520.0f, 0x1.ffep15f, 1.0f + 0x1p-11f, 1.0f + 0x1.8p-11f, -(1.0f + 0x1.8p-10f),
                        0x1.0p-24f, 0x1p-25f, 0x1.000002p-25f, 0x1.8p-24f, 0x1.4p-23f, 0x1.ffep-15f, 0x1.ffcp-15f, 0x1p-14f,
                        0.0f, -0.0f, 0x1p-140f, -0x1p-149f, INFINITY, -INFINITY, NAN, -NAN, bits_f32(0x7f800001u), bits_f32(0xffa5a5a5u),
                        bits_f32(0x7fc12345u), bits_f32(0x7fbfe000u), 0x1.fffffep127f, 3.14159265f, 1e-5f, -2.5e-8f};
  int ne = (int)(sizeof edge / sizeof edge[0]);
  for (int i = 0; i < N; i++) {
    a[i] = i < ne ? edge[i] : i < N / 2 ? bits_f32(next32()) : ldexpf((float)(next32() & 0xffffff) * 0x1p-24f, (int)(next32() % 40) - 28);
    b[i] = i < ne ? 1.0f : ldexpf(1.0f, (int)(next32() % 9) - 4);
  }
  /* the C backend also with F16C and AVX-512 off (the prelude's lane by lane forms; the
   * scalar casts then libgcc's), and on rows of 8, 4 and 2 (vectors of those widths) */
  const char *dev[] = {"CPU", "INTERP", "X86", "CPU"}, *flags[] = {"", "", "", "-mno-avx512f -mno-f16c"};
  const char *flags0 = getenv("CG_CFLAGS_ADD") ? getenv("CG_CFLAGS_ADD") : "";
  for (int d = 0; d < 4; d++) {
    char fl[256];
    snprintf(fl, sizeof fl, "%s %s", flags0, flags[d]);
    cg_set_config("DEVICE", dev[d]);
    cg_set_config("CG_CFLAGS_ADD", fl);
    static const int64_t widths[] = {C, 58, 8, 4, 2};
    for (int wi = 0; wi < 5; wi++) {
      int64_t cols = widths[wi];
      if (cols != C && !strcmp(dev[d], "INTERP")) break;
      /* rows of fewer than 16: the left half of rows twice as long (else the kernel's one
       * dim is all 65536 and its vectors 16 wide); rows of 58 of rows of 64 (PADTO 16: the
       * tail a masked load and store of 16-bit lanes). n elements checked */
      int64_t wide = cols == C ? C : cols == 58 ? 64 : 2 * cols, nr = N / wide * (cols == C || cols == 58 ? 1 : 2), n = nr * cols;
      int64_t sh[2] = {nr, cols}, shw[2] = {nr, wide};
      for (int64_t i = 0; i < n && cols != C; i++) {
        int64_t row = (i / cols) * wide, w = row + i % cols;
        wc[w] = codes[i], wa[w] = a[i], wb[w] = b[i];
        for (int64_t j = row + cols; j < row + wide && i % cols == 0; j++) wc[j] = (uint16_t)next32(), wa[j] = wb[j] = NAN; /* the rest of the row */
      }
      cg_scope_begin();
      int first, bad;
      /* every code as float32: a contiguous load, then a transposed copy's */
      cg_tensor *t16 = cols == C ? cg_from_data(codes, CG_FLOAT16, sh, 2) : cg_slice(cg_from_data(wc, CG_FLOAT16, shw, 2), 1, 0, cols, 1);
      bool ok = t16 && cg_read(cg_cast(t16, CG_FLOAT32), CG_FLOAT32, got, sizeof(float) * n) == CG_OK;
      CHECK(ok, "%s%s, rows of %d: f16 codes as float32: %s", dev[d], flags[d], (int)cols, cg_last_error());
      bad = ok ? count_bad(got, want, (int)n, &first) : 0;
      CHECK(bad == 0, "%s%s, rows of %d: %d of %d f16 codes read wrong as float32 (first 0x%04x: 0x%08x, want 0x%08x)", dev[d], flags[d], (int)cols, bad, (int)n,
            first, first >= 0 ? got[first] : 0, first >= 0 ? want[first] : 0);
      if (cols == C) {
        ok = t16 && cg_read(cg_contiguous(cg_cast(cg_transpose(t16, 0, 1), CG_FLOAT32)), CG_FLOAT32, got, sizeof(float) * N) == CG_OK;
        CHECK(ok, "%s%s: transposed f16 codes as float32: %s", dev[d], flags[d], cg_last_error());
        bad = ok ? count_bad(got, want_t, N, &first) : 0;
        CHECK(bad == 0, "%s%s: %d of 65536 transposed f16 codes read wrong (first at %d)", dev[d], flags[d], bad, first);
        ok = t16 && cg_read(cg_contiguous(cg_transpose(t16, 0, 1)), CG_FLOAT16, h, sizeof(uint16_t) * N) == CG_OK;
        /* a copy moves the bits (the C backend's vectors); lane by lane (the interpreter, a
         * scalar C copy) a value goes through float32, which quiets a signalling NaN */
        bad = 0, first = -1;
        for (int i = 0; ok && i < N; i++) {
          bool snan = (codes_t[i] & 0x7c00u) == 0x7c00u && (codes_t[i] & 0x3ffu) && !(codes_t[i] & 0x200u);
          if (h[i] != codes_t[i] && !(snan && h[i] == (codes_t[i] | 0x200u))) bad++, first = first < 0 ? i : first;
        }
        CHECK(ok && bad == 0, "%s%s: an f16 transposed copy moves the bits: %s (%d differ, first code 0x%04x gave 0x%04x)", dev[d], flags[d],
              ok ? "differs" : cg_last_error(), bad, first >= 0 ? codes_t[first] : 0, first >= 0 ? h[first] : 0);
      }

      /* a computed float32 stored as f16 bits, and rounded to f16 and back */
      cg_tensor *x = cols == C ? cg_mul(cg_from_data(a, CG_FLOAT32, sh, 2), cg_from_data(b, CG_FLOAT32, sh, 2))
                               : cg_slice(cg_mul(cg_from_data(wa, CG_FLOAT32, shw, 2), cg_from_data(wb, CG_FLOAT32, shw, 2)), 1, 0, cols, 1);
      ok = x && cg_read(cg_cast(x, CG_FLOAT16), CG_FLOAT16, h, sizeof(uint16_t) * n) == CG_OK;
      CHECK(ok, "%s%s, rows of %d: a product stored as f16: %s", dev[d], flags[d], (int)cols, cg_last_error());
      bad = 0, first = -1;
      for (int i = 0; ok && i < n; i++)
        if (h[i] != ref_f16(a[i] * b[i])) bad++, first = first < 0 ? i : first;
      CHECK(bad == 0, "%s%s, rows of %d: %d of %d products stored as the wrong f16 (first at %d: %a * %a gave 0x%04x, want 0x%04x)", dev[d], flags[d],
            (int)cols, bad, (int)n, first, first >= 0 ? (double)a[first] : 0.0, first >= 0 ? (double)b[first] : 0.0, first >= 0 ? h[first] : 0,
            first >= 0 ? ref_f16(a[first] * b[first]) : 0);
      ok = x && cg_read(cg_cast(cg_cast(x, CG_FLOAT16), CG_FLOAT32), CG_FLOAT32, f, sizeof(float) * n) == CG_OK;
      CHECK(ok, "%s%s, rows of %d: a product rounded to f16 and back: %s", dev[d], flags[d], (int)cols, cg_last_error());
      bad = 0, first = -1;
      for (int i = 0; ok && i < n; i++)
        if (f32_bits(f[i]) != f32_bits(ref_f32(ref_f16(a[i] * b[i])))) bad++, first = first < 0 ? i : first;
      CHECK(bad == 0, "%s%s, rows of %d: %d of %d products rounded to f16 and back wrong (first at %d: %a * %a gave %a, want %a)", dev[d], flags[d],
            (int)cols, bad, (int)n, first, first >= 0 ? (double)a[first] : 0.0, first >= 0 ? (double)b[first] : 0.0, first >= 0 ? (double)f[first] : 0.0,
            first >= 0 ? (double)ref_f32(ref_f16(a[first] * b[first])) : 0.0);
      cg_scope_end();
    }
  }
  cg_set_config("CG_CFLAGS_ADD", flags0);
  cg_set_config("DEVICE", "CPU");
  free(codes), free(codes_t), free(h), free(got), free(want), free(want_t), free(a), free(b), free(f), free(wc), free(wa), free(wb);
  return test_summary();
}
