/* fp8 in kernels, bit for bit the library's reference conversions (core/fpconv.c), on the
 * C backend (CPU), the interpreter (INTERP) and the machine-code device (X86: it sends fp8
 * kernels to the C compiler). Inputs: every code of both formats decoded, the midpoints
 * between neighbouring codes (ties) and the floats next to them, the saturation edges (448,
 * 464, 480 for e4m3; 57344, 61440, 65536 for e5m2), fp8 subnormals and float32 ones, zeros
 * of both signs, infinities, NaNs with payloads and signs, and random bit patterns of every
 * exponent. Each is checked as
 *   - the round trip float32 -> fp8 -> float32 (kernels of 16-lane vectors: the prelude's
 *     e4m3_round_f32x16, and of an odd length: the scalar e4m3_round),
 *   - the stored code (float32 -> fp8 buffer, read as bytes) and the load of every code,
 *   - the fp8 linears' quantized copy, float32 -> fp8 -> float32 -> bfloat16 bits. */
#include "check.h"
#include "cgrad.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rs = 0x9E3779B97F4A7C15ull;
static uint32_t rnd32(void) {
  rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
  return (uint32_t)(rs >> 32);
}

typedef struct {
  const char *name;
  cg_dtype dt;
  uint8_t (*enc)(float);
  float (*dec)(uint8_t);
} fmt;

enum { MAXV = 4096 };
static float vals[MAXV];
static int nv;
static void add(float v) {
  if (nv < MAXV) vals[nv++] = v;
}

static void inputs(const fmt *f) {
  nv = 0;
  for (int c = 0; c < 256; c++) {
    float v = f->dec((uint8_t)c), w = f->dec((uint8_t)(c + 1 < 256 ? c + 1 : c));
    add(v);
    if (isfinite(v) && isfinite(w) && (c & 0x7F) != 0x7F) { /* neighbours of one sign: the tie and around it */
      float mid = (float)(((double)v + (double)w) / 2);
      add(mid), add(nextafterf(mid, INFINITY)), add(nextafterf(mid, -INFINITY));
      add(nextafterf(v, INFINITY)), add(nextafterf(v, -INFINITY));
    }
  }
  const float edges[] = {448, 464, nextafterf(464, 0), nextafterf(464, 1e9f), 480, 1e30f, 57344, 61440, nextafterf(61440, 0), 65536, 1e38f,
                         0x1p-9f, 0x1p-10f, nextafterf(0x1p-10f, 1), 0x1p-16f, 0x1p-17f, nextafterf(0x1p-17f, 1), 0x1p-6f, 0x1p-14f,
                         0x1p-149f, 0x1p-127f, 0x1p-126f, 0.0f, -0.0f, INFINITY, -INFINITY};
  for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) add(edges[i]), add(-edges[i]);
  const uint32_t nans[] = {0x7FC00000u, 0xFFC00000u, 0x7F800001u, 0x7FA00000u, 0xFFE00000u, 0x7FE00000u, 0x7FB00000u, 0xFF9FFFFFu, 0x7FFFFFFFu};
  for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++) add(bits_f32(nans[i]));
  while (nv < MAXV) add(bits_f32(rnd32())); /* every exponent, NaNs among them */
}

/* out = fn(x) on dev, read as n 32-bit (4), 16-bit (2) or 8-bit (1) words */
static bool run(const char *dev, cg_tensor *(*fn)(cg_tensor *, cg_dtype), cg_dtype dt, const void *in, cg_dtype in_dt, int n, void *out, int bytes) {
  cg_scope_begin();
  cg_tensor *x = cg_to(cg_from_data(in, in_dt, (int64_t[]){n}, 1), dev), *y = x ? fn(x, dt) : NULL;
  /* read in y's own dtype: the stored bits (a bitcast would be part of the kernel) */
  bool ok = y && cg_dtype_of(y) == (bytes == 4 ? CG_FLOAT32 : bytes == 2 ? CG_BFLOAT16 : dt) && cg_read(y, cg_dtype_of(y), out, (size_t)n * (size_t)bytes) == CG_OK;
  if (!ok) fprintf(stderr, "  %s: %s\n", dev, cg_last_error());
  cg_scope_end();
  return ok;
}
static cg_tensor *round_trip(cg_tensor *x, cg_dtype dt) { return cg_cast(cg_cast(x, dt), CG_FLOAT32); }
static cg_tensor *store(cg_tensor *x, cg_dtype dt) { return cg_cast(x, dt); }
static cg_tensor *load(cg_tensor *c, cg_dtype dt) { return cg_cast(cg_bitcast(c, dt), CG_FLOAT32); }
static cg_tensor *to_bf16(cg_tensor *x, cg_dtype dt) { return cg_cast(cg_cast(cg_cast(x, dt), CG_FLOAT32), CG_BFLOAT16); }

int main(void) {
  const fmt fmts[2] = {{"e4m3", CG_FP8E4M3, cg_f32_to_fp8e4m3, cg_fp8e4m3_to_f32}, {"e5m2", CG_FP8E5M2, cg_f32_to_fp8e5m2, cg_fp8e5m2_to_f32}};
  const char *devs[3] = {"CPU", "INTERP", "X86"};
  static uint32_t got[MAXV];
  static uint16_t got16[MAXV];
  static uint8_t got8[MAXV], codes[256];
  for (int c = 0; c < 256; c++) codes[c] = (uint8_t)c;
  for (int fi = 0; fi < 2; fi++) {
    const fmt *f = &fmts[fi];
    inputs(f);
    for (int d = 0; d < 3; d++) {
      const char *dev = devs[d];
      /* MAXV: 16-lane vectors; 1021 (prime): lanes of their own, the scalar functions */
      int sizes[2] = {MAXV, 1021};
      for (int si = 0; si < 2; si++) {
        int n = sizes[si], bad = 0, first = -1;
        if (run(dev, round_trip, f->dt, vals, CG_FLOAT32, n, got, 4))
          for (int i = 0; i < n; i++)
            if (got[i] != f32_bits(f->dec(f->enc(vals[i])))) bad++, first = first < 0 ? i : first;
        CHECK(bad == 0, "%s %s round trip (n %d): %d of %d differ, first %a (0x%08x): got 0x%08x, want 0x%08x", dev, f->name, n, bad, n,
              first >= 0 ? vals[first] : 0, first >= 0 ? f32_bits(vals[first]) : 0, first >= 0 ? got[first] : 0,
              first >= 0 ? f32_bits(f->dec(f->enc(vals[first]))) : 0);
        bad = 0, first = -1;
        if (run(dev, store, f->dt, vals, CG_FLOAT32, n, got8, 1))
          for (int i = 0; i < n; i++)
            if (got8[i] != f->enc(vals[i])) bad++, first = first < 0 ? i : first;
        CHECK(bad == 0, "%s %s store (n %d): %d differ, first %a: got 0x%02x, want 0x%02x", dev, f->name, n, bad, first >= 0 ? vals[first] : 0,
              first >= 0 ? got8[first] : 0, first >= 0 ? f->enc(vals[first]) : 0);
        bad = 0, first = -1;
        if (run(dev, to_bf16, f->dt, vals, CG_FLOAT32, n, got16, 2))
          for (int i = 0; i < n; i++)
            if (got16[i] != cg_f32_to_bf16(f->dec(f->enc(vals[i])))) bad++, first = first < 0 ? i : first;
        CHECK(bad == 0, "%s %s to bf16 (n %d): %d differ, first %a: got 0x%04x", dev, f->name, n, bad, first >= 0 ? vals[first] : 0,
              first >= 0 ? got16[first] : 0);
      }
      int bad = 0, first = -1;
      if (run(dev, load, f->dt, codes, CG_UINT8, 256, got, 4))
        for (int c = 0; c < 256; c++)
          if (got[c] != f32_bits(f->dec((uint8_t)c))) bad++, first = first < 0 ? c : first;
      CHECK(bad == 0, "%s %s load of every code: %d differ, first 0x%02x: got 0x%08x", dev, f->name, bad, first, first >= 0 ? got[first] : 0);
    }
  }
  return test_summary();
}
