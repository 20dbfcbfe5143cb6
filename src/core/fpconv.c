/* Correctly rounded conversions between float32 and the small float formats: IEEE
 * float16, bfloat16, and the OCP FP8 formats e4m3 ("e4m3fn": no infinity, NaN only at
 * S.1111.111, saturating) and e5m2 (IEEE-like, with infinities).
 *
 * Pure bit manipulation, portable C: the result does not depend on the host's FPU modes
 * (flush-to-zero, denormals-are-zero) or on any instruction set extension.
 *
 *   f32 -> small: round to nearest, ties to even, subnormals exact. NaN -> quiet NaN of
 *                 the same sign, keeping the payload's top bits (as F16C and AVX512-BF16
 *                 do); e4m3 has one NaN per sign (0x7F / 0xFF).
 *                 Overflow: float16, bfloat16, e5m2 -> ±inf (IEEE: a value that rounds past
 *                 the largest finite one); e4m3 saturates, every finite value above 448 in
 *                 magnitude and ±inf become ±448.
 *   small -> f32: exact (every value of these formats is a float32); NaN -> quiet NaN of
 *                 the same sign. */
#include "cgrad.h"
#include <string.h>

static uint32_t f32_bits(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  return u;
}
static float bits_f32(uint32_t u) {
  float x;
  memcpy(&x, &u, sizeof x);
  return x;
}

/* Round a finite float32 magnitude (its bits, sign cleared) to a format with M mantissa
 * bits and exponent bias B, with an unbounded exponent above. Returns the magnitude's
 * encoding, (biased exponent << M) + mantissa, which may lie past the format's largest
 * finite encoding: the caller applies its overflow rule. A mantissa that rounds up to
 * 2^M carries into the exponent by itself, subnormal -> normal included. */
static uint32_t round_mag(uint32_t mag, int M, int B) {
  int e = (int)(mag >> 23);
  uint32_t sig = mag & 0x7FFFFFu;
  if (e) sig |= 0x800000u; /* implicit bit */
  else e = 1;              /* float32 subnormal: exponent of the smallest normal, no implicit bit */
  int te = e - 127 + B;    /* biased exponent in the target format */
  int shift = 23 - M;      /* float32 significand bits that drop off */
  if (te < 1) {            /* below the target's normal range: its subnormals */
    shift += 1 - te;
    te = 1;
  }
  if (shift > 25) shift = 25; /* sig < 2^24 is under half of 2^25: rounds to 0 either way */
  uint32_t q = sig >> shift;
  uint32_t rem = sig & ((1u << shift) - 1u), half = 1u << (shift - 1);
  if (rem > half || (rem == half && (q & 1u))) q++;
  /* q < 2^M for a subnormal result; in [2^M, 2^(M+1)] for a normal one */
  return ((uint32_t)(te - 1) << M) + q;
}

/* The float32 bits of a finite nonzero magnitude with exponent field ef and mantissa mf
 * (M bits, bias B) whose value is a float32 normal (true of float16 and both fp8s). */
static uint32_t widen_mag(uint32_t ef, uint32_t mf, int M, int B) {
  int e = (int)ef;
  if (e == 0) { /* subnormal: normalize */
    e = 1;
    while (!(mf >> M)) {
      mf <<= 1;
      e--;
    }
    mf &= (1u << M) - 1u;
  }
  return (uint32_t)(e - B + 127) << 23 | mf << (23 - M);
}

/* ---- float16: 1.5.10, bias 15, max 65504 --------------------------------------------- */

uint16_t cg_f32_to_f16(float x) {
  uint32_t u = f32_bits(x), mag = u & 0x7FFFFFFFu;
  uint16_t s = (uint16_t)(u >> 16 & 0x8000u);
  if (mag > 0x7F800000u) return (uint16_t)(s | 0x7E00u | (mag >> 13 & 0x3FFu));
  if (mag == 0x7F800000u) return (uint16_t)(s | 0x7C00u);
  uint32_t m = round_mag(mag, 10, 15);
  return (uint16_t)(s | (m >= 0x7C00u ? 0x7C00u : m));
}

float cg_f16_to_f32(uint16_t h) {
  uint32_t s = (uint32_t)(h & 0x8000u) << 16, ef = h >> 10 & 0x1Fu, mf = h & 0x3FFu;
  if (ef == 0x1F) return bits_f32(mf ? s | 0x7FC00000u | mf << 13 : s | 0x7F800000u);
  if (ef == 0 && mf == 0) return bits_f32(s);
  return bits_f32(s | widen_mag(ef, mf, 10, 15));
}

/* ---- bfloat16: 1.8.7, bias 127 (float32's top half) ---------------------------------- */

uint16_t cg_f32_to_bf16(float x) {
  uint32_t u = f32_bits(x), mag = u & 0x7FFFFFFFu;
  uint16_t s = (uint16_t)(u >> 16 & 0x8000u);
  if (mag > 0x7F800000u) return (uint16_t)(u >> 16 | 0x0040u);
  if (mag == 0x7F800000u) return (uint16_t)(s | 0x7F80u);
  uint32_t m = round_mag(mag, 7, 127);
  return (uint16_t)(s | (m >= 0x7F80u ? 0x7F80u : m));
}

float cg_bf16_to_f32(uint16_t h) {
  uint32_t u = (uint32_t)h << 16; /* bfloat16 subnormals are float32 subnormals */
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) u |= 0x00400000u;
  return bits_f32(u);
}

/* ---- fp8 e4m3 (OCP e4m3fn): 1.4.3, bias 7, max 448, NaN = S.1111.111, no infinity ---- */

uint8_t cg_f32_to_fp8e4m3(float x) {
  uint32_t u = f32_bits(x), mag = u & 0x7FFFFFFFu;
  uint8_t s = (uint8_t)(u >> 24 & 0x80u);
  if (mag > 0x7F800000u) return (uint8_t)(s | 0x7Fu);
  if (mag == 0x7F800000u) return (uint8_t)(s | 0x7Eu); /* saturate */
  uint32_t m = round_mag(mag, 3, 7);
  return (uint8_t)(s | (m > 0x7Eu ? 0x7Eu : m));
}

float cg_fp8e4m3_to_f32(uint8_t b) {
  uint32_t s = (uint32_t)(b & 0x80u) << 24, ef = b >> 3 & 0xFu, mf = b & 0x7u;
  if ((b & 0x7Fu) == 0x7Fu) return bits_f32(s | 0x7FC00000u);
  if (ef == 0 && mf == 0) return bits_f32(s);
  return bits_f32(s | widen_mag(ef, mf, 3, 7));
}

/* ---- fp8 e5m2: 1.5.2, bias 15, max 57344, IEEE-like inf and NaN ---------------------- */

uint8_t cg_f32_to_fp8e5m2(float x) {
  uint32_t u = f32_bits(x), mag = u & 0x7FFFFFFFu;
  uint8_t s = (uint8_t)(u >> 24 & 0x80u);
  if (mag > 0x7F800000u) return (uint8_t)(s | 0x7Eu | (mag >> 21 & 0x3u));
  if (mag == 0x7F800000u) return (uint8_t)(s | 0x7Cu);
  uint32_t m = round_mag(mag, 2, 15);
  return (uint8_t)(s | (m >= 0x7Cu ? 0x7Cu : m));
}

float cg_fp8e5m2_to_f32(uint8_t b) {
  uint32_t s = (uint32_t)(b & 0x80u) << 24, ef = b >> 2 & 0x1Fu, mf = b & 0x3u;
  if (ef == 0x1F) return bits_f32(mf ? s | 0x7FC00000u | mf << 21 : s | 0x7F800000u);
  if (ef == 0 && mf == 0) return bits_f32(s);
  return bits_f32(s | widen_mag(ef, mf, 2, 15));
}
