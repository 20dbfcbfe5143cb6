/* cgrad's float32 transcendentals (EXP2, LOG2, SIN) as polynomials: the coefficients, once.
 *
 * The C renderer (vmath.c) spells these as GCC-vector functions for f32x2/4/8/16 and the
 * scalar form as lane 0 of the f32x4 one, so a vector kernel and its scalar tails give the
 * same bits. Other backends (a machine-code one) should take the same numbers and the same
 * evaluation order (vmath.c: Horner, each multiply-add one fma) to give the same bits too.
 *
 * Coefficients: weighted least squares iterated to minimax (Lawson) on the intervals below,
 * in float64 against mpmath, then rounded to float32. Max errors over all 2^32 float32
 * inputs against float64 libm (a one-off sweep; tests/codegen/test_vmath.c checks ~10^7 of
 * them and every edge through real kernels on each run); the scalar form equalled the
 * f32x16 one bit for bit on all 2^32 inputs of each:
 *
 *   exp2  x = k + f, k = rint(x), f in [-1/2, 1/2]; 2^f = 1 + f*(E0 + f*(E1 + ... f*E5))
 *         (approximation error 2.0e-9 relative); 2^k applied as two exact powers of two so
 *         results down to the smallest denormal round once (under AVX-512 by vscalefps,
 *         which rounds once too: the same bits). x >= 128 -> inf, x < -150 -> +0
 *         (through clamping to [-151, 129]), NaN -> NaN. Measured 0.952 ulp.
 *   log2  x = 2^e * m, m in [sqrt(1/2), sqrt(2)) (denormals scaled by 2^23 first), r = m - 1;
 *         log2(x) = e + r*(L0 + r*(L1 + ... r*L9)) (approximation error 4.1e-9 relative),
 *         the last step one fma; for e = 0, r*L0 + (r*L0LO + r*r*(L1 + ...)) instead, so
 *         results near 0 keep the bits of 1/ln2 past float. +-0 -> -inf, x < 0 -> NaN,
 *         inf -> inf, NaN -> NaN. Measured 1.106 ulp.
 *   sin   q = rint(x * 2/pi), d = x - q*pi/2 computed in double (P1 + P2) and split into
 *         float d + dl; by q mod 4: sin(d), cos(d), -sin(d), -cos(d) with
 *         sin(d) = d + (d*s*(S0 + ... s^3*S3) + dl), cos(d) = 1 + (s*(C0 + ... s^3*C3) - d*dl),
 *         s = d^2. |x| > CG_VM_SIN_MAX, inf and NaN lanes call libm's sinf (rare in
 *         practice); -0 -> -0. Measured 1.177 ulp.
 */
#ifndef CG_VMATH_H
#define CG_VMATH_H

/* 2^f - 1 = f * (E0 + f*E1 + ... + f^5*E5) on [-1/2, 1/2] */
#define CG_VM_EXP2_E0 0x1.62e430p-1f
#define CG_VM_EXP2_E1 0x1.ebfbdcp-3f
#define CG_VM_EXP2_E2 0x1.c6aee8p-5f
#define CG_VM_EXP2_E3 0x1.3b2d4cp-7f
#define CG_VM_EXP2_E4 0x1.5f3e54p-10f
#define CG_VM_EXP2_E5 0x1.41fbbcp-13f

/* log2(1 + r) = r * (L0 + r*L1 + ... + r^9*L9) on [sqrt(1/2) - 1, sqrt(2) - 1] */
#define CG_VM_LOG2_L0 0x1.715476p+0f
#define CG_VM_LOG2_L1 -0x1.715470p-1f
#define CG_VM_LOG2_L2 0x1.ec7096p-2f
#define CG_VM_LOG2_L3 -0x1.715a76p-2f
#define CG_VM_LOG2_L4 0x1.277e36p-2f
#define CG_VM_LOG2_L5 -0x1.eabc86p-3f
#define CG_VM_LOG2_L6 0x1.a305a6p-3f
#define CG_VM_LOG2_L7 -0x1.874beep-3f
#define CG_VM_LOG2_L8 0x1.7d4950p-3f
#define CG_VM_LOG2_L9 -0x1.c25a62p-4f
/* 1/ln2 - L0 (L0 is 1/ln2 rounded): the e = 0 path adds it, for results near 0 */
#define CG_VM_LOG2_L0LO 0x1.4ae0c0p-26f
/* the bits of sqrt(1/2) rounded: m's interval starts there */
#define CG_VM_LOG2_MBASE 0x3f3504f3

/* on [-pi/4, pi/4], s = d^2: (sin(d) - d) / d^3 = S0 + s*S1 + s^2*S2 + s^3*S3 (5.2e-12
 * relative), (cos(d) - 1) / s = C0 + s*C1 + s^2*C2 + s^3*C3 (6.4e-11 relative) */
#define CG_VM_SIN_S0 -0x1.555556p-3f
#define CG_VM_SIN_S1 0x1.111108p-7f
#define CG_VM_SIN_S2 -0x1.a00f80p-13f
#define CG_VM_SIN_S3 0x1.6cd1f2p-19f
#define CG_VM_SIN_C0 -0x1.000000p-1f
#define CG_VM_SIN_C1 0x1.55553cp-5f
#define CG_VM_SIN_C2 -0x1.6c07f2p-10f
#define CG_VM_SIN_C3 0x1.99169ep-16f
/* 2/pi; pi/2 = P1 + P2 in double, P1 with 32 bits, so for q < 2^16 (|x| <= CG_VM_SIN_MAX)
 * q*P1 is exact and d = x - q*P1 - q*P2 is computed in double to ~2^-80 of pi/2, then
 * rounded once to float */
#define CG_VM_SIN_2PI 0x1.45f306p-1f
#define CG_VM_SIN_P1 0x1.921fb544p+0
#define CG_VM_SIN_P2 0x1.0b4611a626331p-34
#define CG_VM_SIN_MAX 100000.0f /* q < 2^16 */

/* The stated max error in ulps of the float32 result (measured above; the tests hold it). */
#define CG_VM_EXP2_ULP 1.0
#define CG_VM_LOG2_ULP 1.2
#define CG_VM_SIN_ULP 1.2

#endif
