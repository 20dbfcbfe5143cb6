/* A computed float32 rounded to bfloat16 and back (autocast's operands: flash attention's
 * p and ds, the gradients of bf16 q, k, v) on every backend: the C backend makes it a
 * vector op (expand.c: CAST f32 of CAST bf16 of a float32 vector), the interpreter and the
 * x86 backend run it lane by lane. Each result must be the round-to-nearest-even bf16 of
 * the float32 product, bit for bit (reference: plain C on the bits), NaN for NaN, over
 * fresh random values and the edge cases: ties both ways, ±0, denormals, the largest
 * finite values (rounding up to inf), ±inf, NaN. */
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
/* float32 -> bf16 -> float32, round to nearest even on the bits */
static float ref_round(float x) {
  uint32_t u = f32_bits(x);
  if (isnan(x)) return x;
  u += 0x7fffu + ((u >> 16) & 1u);
  return bits_f32(u & 0xffff0000u);
}

int main(void) {
  const char *seed = getenv("CG_TEST_SEED");
  uint64_t sd = seed && *seed ? strtoull(seed, NULL, 10) : (uint64_t)time(NULL);
  rs = sd * 2654435761ull + 1;
  printf("test_bf16_round: CG_TEST_SEED=%llu\n", (unsigned long long)sd);
  enum { R = 48, C = 64, N = R * C };
  float *a = malloc(sizeof(float) * N), *b = malloc(sizeof(float) * N), *got = malloc(sizeof(float) * N);
  /* b: powers of two, so a * b is exact and the rounding is the only one; a: random bits
   * (every exponent, NaN and inf among them) and the edge cases first */
  const float edge[] = {0x1.008p0f, 0x1.018p0f, -0x1.008p0f, 0x1.00ffp0f, 0x1.0081p0f, 0.0f, -0.0f, 0x1p-140f, -0x1.8p-133f, 0x1.fffffep127f,
                        -0x1.fffp127f, INFINITY, -INFINITY, NAN, 0x1.7fp-126f, 1.0f};
  int ne = (int)(sizeof edge / sizeof edge[0]);
  for (int i = 0; i < N; i++) {
    a[i] = i < ne ? edge[i] : bits_f32(next32());
    b[i] = i < ne ? 1.0f : ldexpf(1.0f, (int)(next32() % 9) - 4);
  }
  const char *dev[] = {"CPU", "INTERP", "X86"};
  for (int d = 0; d < 3; d++) {
    cg_set_config("DEVICE", dev[d]);
    cg_scope_begin();
    int64_t sh[2] = {R, C};
    cg_tensor *x = cg_mul(cg_from_data(a, CG_FLOAT32, sh, 2), cg_from_data(b, CG_FLOAT32, sh, 2));
    cg_tensor *y = cg_cast(cg_cast(x, CG_BFLOAT16), CG_FLOAT32);
    bool ok = y && cg_read(y, CG_FLOAT32, got, sizeof(float) * N) == CG_OK;
    CHECK(ok, "%s: rounding a product to bf16 and back: %s", dev[d], cg_last_error());
    int bad = 0, first = -1;
    for (int i = 0; ok && i < N; i++) {
      float want = ref_round(a[i] * b[i]);
      bool same = isnan(want) ? isnan(got[i]) : f32_bits(got[i]) == f32_bits(want);
      if (!same && first < 0) first = i;
      bad += !same;
    }
    CHECK(bad == 0, "%s: %d of %d values not the bf16 rounding (first at %d: %a * %a gave %a, want %a)", dev[d], bad, N, first,
          first >= 0 ? (double)a[first] : 0.0, first >= 0 ? (double)b[first] : 0.0, first >= 0 ? (double)got[first] : 0.0,
          first >= 0 ? (double)ref_round(a[first] * b[first]) : 0.0);
    cg_scope_end();
  }
  cg_set_config("DEVICE", "CPU");
  free(a), free(b), free(got);
  return test_summary();
}
