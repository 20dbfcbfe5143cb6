/* Row max and min over a contiguous last dim (attention's row max over 128 keys): the C
 * backend keeps a vector accumulator along the rows and combines its lanes at the end by
 * halving the vector (expand.c's reduce_lane), the interpreter and the x86 backend run the
 * same UOps. Every backend must give torch's max bit for bit (reference: plain C): NaN if
 * the row has one, +0 over -0, -inf for a row of -inf, over fresh random rows of several
 * lengths (16, 128, 200: one, eight and a ragged count of 16-lane vectors). */
#include "check.h"
#include "cgrad.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t rs;
static double unif(void) {
  rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
  return (double)(rs >> 11) * 0x1p-53;
}
static float ref_max(const float *x, int n) {
  float m = -INFINITY;
  for (int i = 0; i < n; i++) {
    if (isnan(x[i])) return NAN;
    if (x[i] > m || (x[i] == 0 && m == 0 && !signbit(x[i]))) m = x[i];
  }
  return m;
}
static bool same(float a, float b) { return isnan(a) ? isnan(b) : memcmp(&a, &b, 4) == 0; }

int main(void) {
  const char *seed = getenv("CG_TEST_SEED");
  uint64_t sd = seed && *seed ? strtoull(seed, NULL, 10) : (uint64_t)time(NULL);
  rs = sd * 2654435761ull + 1;
  printf("test_max_lanes: CG_TEST_SEED=%llu\n", (unsigned long long)sd);
  const char *dev[] = {"CPU", "INTERP", "X86"};
  const int lens[] = {16, 128, 200};
  enum { R = 40 };
  for (int li = 0; li < 3; li++) {
    int C = lens[li];
    float *x = malloc(sizeof(float) * R * C), *nx = malloc(sizeof(float) * R * C), got[R], want[R], gmin[R], wmin[R];
    for (int r = 0; r < R; r++)
      for (int c = 0; c < C; c++) {
        float v = (float)(unif() * 200 - 100);
        int kind = r % 8; /* 0: plain; 1: a NaN somewhere; 2: -0 and +0 only; 3: -inf only; 4: -0 only; 5: max at the last lane */
        if (kind == 1 && c == (int)(unif() * C)) v = NAN;
        if (kind == 2) v = unif() < 0.5 ? -0.0f : 0.0f;
        if (kind == 3) v = -INFINITY;
        if (kind == 4) v = -0.0f;
        if (kind == 5 && c == C - 1) v = 1000;
        x[r * C + c] = v, nx[r * C + c] = -v;
      }
    for (int r = 0; r < R; r++) want[r] = ref_max(x + r * C, C), wmin[r] = -ref_max(nx + r * C, C);
    for (int d = 0; d < 3; d++) {
      cg_set_config("DEVICE", dev[d]);
      cg_scope_begin();
      int64_t sh[2] = {R, C};
      int last = -1;
      cg_tensor *t = cg_from_data(x, CG_FLOAT32, sh, 2);
      /* computed rows (x * 1 + 0 would fold away: a product by a power of two is exact) */
      cg_tensor *y = cg_mul(cg_mul(t, cg_scalar(2)), cg_scalar(0.5));
      cg_tensor *mx = cg_max(y, &last, 1, false), *mn = cg_min(y, &last, 1, false);
      bool ok = mx && mn && cg_read(mx, CG_FLOAT32, got, sizeof got) == CG_OK && cg_read(mn, CG_FLOAT32, gmin, sizeof gmin) == CG_OK;
      CHECK(ok, "%s: row max of %d: %s", dev[d], C, cg_last_error());
      int bad = 0, first = -1;
      for (int r = 0; ok && r < R; r++)
        if (!same(got[r], want[r]) || !same(gmin[r], wmin[r])) bad++, first = first < 0 ? r : first;
      CHECK(bad == 0, "%s: row max / min over %d: %d of %d rows wrong (first row %d: max %a want %a, min %a want %a)", dev[d], C, bad, R, first,
            first >= 0 ? (double)got[first] : 0.0, first >= 0 ? (double)want[first] : 0.0, first >= 0 ? (double)gmin[first] : 0.0,
            first >= 0 ? (double)wmin[first] : 0.0);
      cg_scope_end();
    }
    free(x), free(nx);
  }
  cg_set_config("DEVICE", "CPU");
  return test_summary();
}
