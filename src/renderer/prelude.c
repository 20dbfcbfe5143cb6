/* What every generated C kernel starts with: headers, and the small-float formats (stored
 * as bits, computed in float, rounded to nearest even like the library's conversions). */
#include "render.h"
#include <pthread.h>
#include <stdio.h>

const char cg_kernel_prelude[] =
    /* guarded: several kernels compile as one translation unit (runtime/cpu.c) */
    "#ifndef CG_KERNEL_PRELUDE\n"
    "#define CG_KERNEL_PRELUDE\n"
    "#include <stdint.h>\n"
    "#include <string.h>\n"
    "#include <math.h>\n"
    "static inline float f16_to_f32(uint16_t h) { _Float16 f; memcpy(&f, &h, 2); return (float)f; }\n"
    "static inline uint16_t f32_to_f16(float x) { _Float16 f = (_Float16)x; uint16_t h; memcpy(&h, &f, 2); return h; }\n"
    "static inline float f16_round(float x) { return (float)(_Float16)x; }\n"
    "static inline float bf16_to_f32(uint16_t h) { uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }\n"
    "static inline uint16_t f32_to_bf16(float x) {\n"
    "  uint32_t u; memcpy(&u, &x, 4);\n"
    "  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);\n"
    "  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);\n"
    "}\n"
    "static inline float bf16_round(float x) { return bf16_to_f32(f32_to_bf16(x)); }\n"
    /* fp8 (OCP e4m3fn, e5m2) without branches or searches, bit for bit core/fpconv.c's:
     * a normal result rounds the float32 bits to nearest even (a carry runs into the
     * exponent); a subnormal one is a multiple of the format's smallest step, which adding
     * and subtracting 2^(step exponent + 23) rounds to in float32 (round to nearest even,
     * as the kernels run). e4m3 saturates at 448 (inf too), e5m2 overflows to inf; NaN keeps
     * its sign (e5m2: and the payload's bit 21, as the bits round trip does) */
    "static inline uint32_t fp8_f2u(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }\n"
    "static inline float fp8_u2f(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }\n"
    "static inline float e4m3_round(float x) {\n"
    "  uint32_t u = fp8_f2u(x), a = u & 0x7fffffffu, s = u ^ a;\n"
    "  uint32_t n = (a + 0x7ffffu + ((a >> 20) & 1u)) & 0xfff00000u;\n"
    "  uint32_t d = fp8_f2u((fp8_u2f(a) + 16384.0f) - 16384.0f);\n"
    "  uint32_t r = a < 0x3c800000u ? d : n;\n"
    "  r = r > 0x43e00000u ? 0x43e00000u : r;\n"
    "  r = a > 0x7f800000u ? 0x7fc00000u : r;\n"
    "  return fp8_u2f(r | s);\n"
    "}\n"
    "static inline float e5m2_round(float x) {\n"
    "  uint32_t u = fp8_f2u(x), a = u & 0x7fffffffu, s = u ^ a;\n"
    "  uint32_t n = (a + 0xfffffu + ((a >> 21) & 1u)) & 0xffe00000u;\n"
    "  uint32_t d = fp8_f2u((fp8_u2f(a) + 128.0f) - 128.0f);\n"
    "  uint32_t r = a < 0x38800000u ? d : n;\n"
    "  r = r > 0x47600000u ? 0x7f800000u : r;\n"
    "  r = a > 0x7f800000u ? (0x7fc00000u | (a & 0x00200000u)) : r;\n"
    "  return fp8_u2f(r | s);\n"
    "}\n"
    /* a rounded value's code: the exponent rebiased (127 - 7, 127 - 15) or the subnormal's
     * multiple of the smallest step */
    "static inline uint8_t f32_to_e4m3(float x) {\n"
    "  uint32_t r = fp8_f2u(e4m3_round(x)), a = r & 0x7fffffffu;\n"
    "  uint32_t c = a < 0x3c800000u ? (uint32_t)(fp8_u2f(a) * 512.0f) : (a >> 20) - (120u << 3);\n"
    "  c = a > 0x7f800000u ? 0x7fu : c;\n"
    "  return (uint8_t)(c | (r >> 24 & 0x80u));\n"
    "}\n"
    "static inline uint8_t f32_to_e5m2(float x) {\n"
    "  uint32_t r = fp8_f2u(e5m2_round(x)), a = r & 0x7fffffffu;\n"
    "  uint32_t c = a < 0x38800000u ? (uint32_t)(fp8_u2f(a) * 65536.0f) : (a >> 21) - (112u << 2);\n"
    "  c = a >= 0x7f800000u ? 0x7cu | (a > 0x7f800000u ? 2u | (a >> 21 & 1u) : 0u) : c;\n"
    "  return (uint8_t)(c | (r >> 24 & 0x80u));\n"
    "}\n"
    "static inline float e4m3_to_f32(uint8_t b) {\n"
    "  uint32_t m = b & 0x7fu, s = (uint32_t)(b & 0x80u) << 24;\n"
    "  uint32_t r = m >> 3 ? (m << 20) + (120u << 23) : fp8_f2u((float)m * 0x1p-9f);\n"
    "  r = m == 0x7fu ? 0x7fc00000u : r;\n"
    "  return fp8_u2f(r | s);\n"
    "}\n"
    "static inline float e5m2_to_f32(uint8_t b) {\n"
    "  uint32_t m = b & 0x7fu, s = (uint32_t)(b & 0x80u) << 24;\n"
    "  uint32_t r = m >> 2 ? (m << 21) + (112u << 23) : fp8_f2u((float)m * 0x1p-16f);\n"
    "  r = m >= 0x7cu ? 0x7f800000u | (m & 3u) << 21 | (m & 3u ? 0x00400000u : 0u) : r;\n"
    "  return fp8_u2f(r | s);\n"
    "}\n"
    /* MAX (ops.def): NaN wins, +0 over -0. As masks on a one-lane vector, so GCC keeps
     * it in vector registers with no branch (a ?: on floats would become jumps; the bits
     * through memcpy went to integer registers and back: 7% of a max-pool kernel) */
    "static inline float fmax_nanf(float a, float b) {\n"
    "  typedef float v4 __attribute__((vector_size(16))); typedef int32_t i4 __attribute__((vector_size(16)));\n"
    "  v4 x = {a}, y = {b}; i4 xi = (i4)x, p = (x > y) | (x != x) | ((x == y) & (xi >= 0));\n"
    "  return ((v4)((p & xi) | (~p & (i4)y)))[0];\n"
    "}\n"
    "static inline double fmax_nan(double a, double b) {\n"
    "  typedef double v2 __attribute__((vector_size(16))); typedef int64_t i2 __attribute__((vector_size(16)));\n"
    "  v2 x = {a}, y = {b}; i2 xi = (i2)x, p = (x > y) | (x != x) | ((x == y) & (xi >= 0));\n"
    "  return ((v2)((p & xi) | (~p & (i2)y)))[0];\n"
    "}\n"
    /* vectors of float32 / int32 (bool vectors are int32 masks: -1 true, 0 false), with
     * unaligned forms for loads and stores, max meaning what the scalar one means (NaN
     * wins, +0 over -0) and a select */
    "#define CG_VEC(n, bytes) \\\n"
    "  typedef float f32x##n __attribute__((vector_size(bytes))); \\\n"
    "  typedef float f32x##n##_u __attribute__((vector_size(bytes), aligned(4))); \\\n"
    "  typedef int32_t i32x##n __attribute__((vector_size(bytes))); \\\n"
    "  typedef int32_t i32x##n##_u __attribute__((vector_size(bytes), aligned(4))); \\\n"
    "  typedef uint16_t u16x##n __attribute__((vector_size((bytes) / 2))); \\\n"
    "  typedef uint16_t u16x##n##_u __attribute__((vector_size((bytes) / 2), aligned(2))); \\\n"
    "  static inline f32x##n bf16v_to_f32x##n(u16x##n h) { return (f32x##n)(__builtin_convertvector(h, i32x##n) << 16); } \\\n"
    "  static inline u16x##n f32x##n##_to_bf16v(f32x##n x) { i32x##n u = (i32x##n)x, nan = (u & 0x7fffffff) > 0x7f800000; \\\n"
    "    i32x##n r = (nan & ((u >> 16) | 0x40)) | (~nan & ((u + 0x7fff + ((u >> 16) & 1)) >> 16)); \\\n"
    "    return __builtin_convertvector(r, u16x##n); } \\\n"
    "  static inline f32x##n max_f32x##n(f32x##n a, f32x##n b) { i32x##n m = (a > b) | (a != a), e = a == b; \\\n"
    "    i32x##n r = (m & (i32x##n)a) | (~m & (i32x##n)b); \\\n"
    "    return (f32x##n)((e & (i32x##n)a & (i32x##n)b) | (~e & r)); } \\\n"
    "  static inline i32x##n max_i32x##n(i32x##n a, i32x##n b) { i32x##n m = a > b; return (m & a) | (~m & b); } \\\n"
    "  static inline f32x##n where_f32x##n(i32x##n m, f32x##n a, f32x##n b) { \\\n"
    "    return (f32x##n)((m & (i32x##n)a) | (~m & (i32x##n)b)); } \\\n"
    "  static inline i32x##n where_i32x##n(i32x##n m, i32x##n a, i32x##n b) { return (m & a) | (~m & b); }\n"
    "CG_VEC(2, 8) CG_VEC(4, 16) CG_VEC(8, 32) CG_VEC(16, 64)\n"
    /* float16 vectors (bits) to and from float32: F16C's vcvtph2ps and vcvtps2ph (round to
     * nearest even, imm 0) where the kernel's target has them (8 lanes; 16 with AVX-512F,
     * 4 through the low half of an xmm), else lane by lane through the scalar casts. The
     * same bits either way: the scalar _Float16 casts are those instructions too (GCC with
     * F16C; MXCSR's default rounding) or libgcc's round-to-nearest-even, NaN kept quiet
     * with its payload's top bits (tests/codegen/test_f16_round.c) */
    "#define CG_F16V_LANES(n) \\\n"
    "  static inline f32x##n f16v_to_f32x##n(u16x##n h) { f32x##n r; for (int i = 0; i < n; i++) r[i] = f16_to_f32(h[i]); return r; } \\\n"
    "  static inline u16x##n f32x##n##_to_f16v(f32x##n x) { u16x##n r; for (int i = 0; i < n; i++) r[i] = f32_to_f16(x[i]); return r; }\n"
    "CG_F16V_LANES(2)\n"
    "#if defined(__F16C__) && defined(__GNUC__) && !defined(__clang__)\n"
    "typedef short cg_v8hi __attribute__((vector_size(16)));\n"
    "static inline f32x4 f16v_to_f32x4(u16x4 h) { cg_v8hi t = {0}; memcpy(&t, &h, 8); return __builtin_ia32_vcvtph2ps(t); }\n"
    "static inline u16x4 f32x4_to_f16v(f32x4 x) { cg_v8hi t = __builtin_ia32_vcvtps2ph(x, 0); u16x4 r; memcpy(&r, &t, 8); return r; }\n"
    "static inline f32x8 f16v_to_f32x8(u16x8 h) { return __builtin_ia32_vcvtph2ps256((cg_v8hi)h); }\n"
    "static inline u16x8 f32x8_to_f16v(f32x8 x) { return (u16x8)__builtin_ia32_vcvtps2ph256(x, 0); }\n"
    "#else\n"
    "CG_F16V_LANES(4) CG_F16V_LANES(8)\n"
    "#endif\n"
    "#if defined(__AVX512F__) && defined(__GNUC__) && !defined(__clang__)\n"
    "typedef short cg_v16hi_f16 __attribute__((vector_size(32)));\n"
    "static inline f32x16 f16v_to_f32x16(u16x16 h) { return __builtin_ia32_vcvtph2ps512_mask((cg_v16hi_f16)h, (f32x16){0}, (unsigned short)-1, 4); }\n"
    "static inline u16x16 f32x16_to_f16v(f32x16 x) { return (u16x16)__builtin_ia32_vcvtps2ph512_mask(x, 0, (cg_v16hi_f16){0}, (unsigned short)-1); }\n"
    "#else\n"
    "CG_F16V_LANES(16)\n"
    "#endif\n"
    /* fp8 round trips of float32 lanes: e4m3_round / e5m2_round's steps with masks for
     * selects (an fp8 value lives in a float32 lane, as a scalar one lives in a float) */
    "#define CG_FP8V(n) \\\n"
    "  static inline f32x##n e4m3_round_f32x##n(f32x##n x) { typedef uint32_t u __attribute__((vector_size(sizeof(f32x##n)))); \\\n"
    "    u b = (u)x, a = b & 0x7fffffffu, nr = (a + 0x7ffffu + ((a >> 20) & 1u)) & 0xfff00000u; \\\n"
    "    u d = (u)(((f32x##n)a + 16384.0f) - 16384.0f), m = (u)(a < 0x3c800000u), r = (m & d) | (~m & nr); \\\n"
    "    m = (u)(r > 0x43e00000u), r = (m & 0x43e00000u) | (~m & r); \\\n"
    "    m = (u)(a > 0x7f800000u), r = (m & 0x7fc00000u) | (~m & r); \\\n"
    "    return (f32x##n)(r | (b ^ a)); } \\\n"
    "  static inline f32x##n e5m2_round_f32x##n(f32x##n x) { typedef uint32_t u __attribute__((vector_size(sizeof(f32x##n)))); \\\n"
    "    u b = (u)x, a = b & 0x7fffffffu, nr = (a + 0xfffffu + ((a >> 21) & 1u)) & 0xffe00000u; \\\n"
    "    u d = (u)(((f32x##n)a + 128.0f) - 128.0f), m = (u)(a < 0x38800000u), r = (m & d) | (~m & nr); \\\n"
    "    m = (u)(r > 0x47600000u), r = (m & 0x7f800000u) | (~m & r); \\\n"
    "    m = (u)(a > 0x7f800000u), r = (m & (0x7fc00000u | (a & 0x00200000u))) | (~m & r); \\\n"
    "    return (f32x##n)(r | (b ^ a)); }\n"
    "CG_FP8V(2) CG_FP8V(4) CG_FP8V(8) CG_FP8V(16)\n"
    /* a*b+c rounded once (kernels build with -ffp-contract=off: only these fuse, the pairs
     * renderer/contract.c chose, as the x86 backend does): the FMA units' instructions
     * where GCC has them, else lane by lane */
    "#define CG_FMA_LANES(n) static inline f32x##n fma_f32x##n(f32x##n a, f32x##n b, f32x##n c) { \\\n"
    "  for (int i = 0; i < n; i++) a[i] = __builtin_fmaf(a[i], b[i], c[i]); return a; }\n"
    "CG_FMA_LANES(2)\n"
    "#if defined(__FMA__) && defined(__GNUC__) && !defined(__clang__)\n"
    "static inline f32x4 fma_f32x4(f32x4 a, f32x4 b, f32x4 c) { return __builtin_ia32_vfmaddps(a, b, c); }\n"
    "static inline f32x8 fma_f32x8(f32x8 a, f32x8 b, f32x8 c) { return __builtin_ia32_vfmaddps256(a, b, c); }\n"
    "#else\n"
    "CG_FMA_LANES(4) CG_FMA_LANES(8)\n"
    "#endif\n"
    "#if defined(__AVX512F__) && defined(__GNUC__) && !defined(__clang__)\n"
    "static inline f32x16 fma_f32x16(f32x16 a, f32x16 b, f32x16 c) { return __builtin_ia32_vfmaddps512_mask(a, b, c, (unsigned short)-1, 4); }\n"
    "#else\n"
    "CG_FMA_LANES(16)\n"
    "#endif\n"
    /* the selects where(a < b, a, b) and where(b < a, a, b) of float32 vectors (clamps):
     * vminps / vmaxps, whose rule (NaN in either, or equal: the second operand) is exactly
     * the select's, so they give its bits (the x86 backend's compare and blend too) */
    "#define CG_MINMAX(n) \\\n"
    "  static inline f32x##n minlt_f32x##n(f32x##n a, f32x##n b) { return where_f32x##n(a < b, a, b); } \\\n"
    "  static inline f32x##n maxgt_f32x##n(f32x##n a, f32x##n b) { return where_f32x##n(b < a, a, b); }\n"
    "CG_MINMAX(2)\n"
    "#if defined(__AVX__) && defined(__GNUC__) && !defined(__clang__)\n"
    "static inline f32x4 minlt_f32x4(f32x4 a, f32x4 b) { return __builtin_ia32_minps(a, b); }\n"
    "static inline f32x4 maxgt_f32x4(f32x4 a, f32x4 b) { return __builtin_ia32_maxps(a, b); }\n"
    "static inline f32x8 minlt_f32x8(f32x8 a, f32x8 b) { return __builtin_ia32_minps256(a, b); }\n"
    "static inline f32x8 maxgt_f32x8(f32x8 a, f32x8 b) { return __builtin_ia32_maxps256(a, b); }\n"
    "#else\n"
    "CG_MINMAX(4) CG_MINMAX(8)\n"
    "#endif\n"
    "#if defined(__AVX512F__) && defined(__GNUC__) && !defined(__clang__)\n"
    "static inline f32x16 minlt_f32x16(f32x16 a, f32x16 b) { return __builtin_ia32_minps512_mask(a, b, a, (unsigned short)-1, 4); }\n"
    "static inline f32x16 maxgt_f32x16(f32x16 a, f32x16 b) { return __builtin_ia32_maxps512_mask(a, b, a, (unsigned short)-1, 4); }\n"
    "#else\n"
    "CG_MINMAX(16)\n"
    "#endif\n"
    /* masked vector loads and stores (PADTO's row tails: lanes past the end are neither
     * read nor written): AVX-512 mask moves where GCC has them, else lane by lane */
    "#define CG_MASKED(t, e, n) \\\n"
    "  static inline t##x##n mload_##t##x##n(const e *p, i32x##n m, t##x##n a) { \\\n"
    "    for (int i = 0; i < n; i++) if (m[i]) a[i] = p[i]; return a; } \\\n"
    "  static inline void mstore_##t##x##n(e *p, t##x##n v, i32x##n m) { for (int i = 0; i < n; i++) if (m[i]) p[i] = v[i]; }\n"
    "CG_MASKED(f32, float, 2) CG_MASKED(i32, int32_t, 2) CG_MASKED(f32, float, 4) CG_MASKED(i32, int32_t, 4)\n"
    "CG_MASKED(u16, uint16_t, 2) CG_MASKED(u16, uint16_t, 4) CG_MASKED(u16, uint16_t, 8)\n"
    /* bf16 bits (a TC operand's padded column tail): AVX512-BW's masked 16-bit move */
    "#if defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__GNUC__) && !defined(__clang__)\n"
    "typedef short cg_v16hi __attribute__((vector_size(32)));\n"
    "static inline u16x16 mload_u16x16(const uint16_t *p, i32x16 m, u16x16 a) {\n"
    "  return (u16x16)__builtin_ia32_loaddquhi256_mask((const short *)p, (cg_v16hi)a, (unsigned short)__builtin_ia32_ptestmd512(m, m, (unsigned short)-1)); }\n"
    "static inline void mstore_u16x16(uint16_t *p, u16x16 v, i32x16 m) {\n"
    "  __builtin_ia32_storedquhi256_mask((short *)p, (cg_v16hi)v, (unsigned short)__builtin_ia32_ptestmd512(m, m, (unsigned short)-1)); }\n"
    "#else\n"
    "CG_MASKED(u16, uint16_t, 16)\n"
    "#endif\n"
    "#if defined(__AVX512F__) && defined(__GNUC__) && !defined(__clang__)\n"
    "#define CG_K16(m) ((unsigned short)__builtin_ia32_ptestmd512(m, m, (unsigned short)-1))\n"
    "static inline f32x16 mload_f32x16(const float *p, i32x16 m, f32x16 a) { return __builtin_ia32_loadups512_mask(p, a, CG_K16(m)); }\n"
    "static inline i32x16 mload_i32x16(const int32_t *p, i32x16 m, i32x16 a) { return __builtin_ia32_loaddqusi512_mask(p, a, CG_K16(m)); }\n"
    "static inline void mstore_f32x16(float *p, f32x16 v, i32x16 m) { __builtin_ia32_storeups512_mask(p, v, CG_K16(m)); }\n"
    "static inline void mstore_i32x16(int32_t *p, i32x16 v, i32x16 m) { __builtin_ia32_storedqusi512_mask(p, v, CG_K16(m)); }\n"
    "#else\n"
    "CG_MASKED(f32, float, 16) CG_MASKED(i32, int32_t, 16)\n"
    "#endif\n"
    "#if defined(__AVX512VL__) && defined(__GNUC__) && !defined(__clang__)\n"
    "#define CG_K8(m) ((unsigned char)__builtin_ia32_ptestmd256(m, m, (unsigned char)-1))\n"
    "static inline f32x8 mload_f32x8(const float *p, i32x8 m, f32x8 a) { return __builtin_ia32_loadups256_mask(p, a, CG_K8(m)); }\n"
    "static inline i32x8 mload_i32x8(const int32_t *p, i32x8 m, i32x8 a) { return __builtin_ia32_loaddqusi256_mask(p, a, CG_K8(m)); }\n"
    "static inline void mstore_f32x8(float *p, f32x8 v, i32x8 m) { __builtin_ia32_storeups256_mask(p, v, CG_K8(m)); }\n"
    "static inline void mstore_i32x8(int32_t *p, i32x8 v, i32x8 m) { __builtin_ia32_storedqusi256_mask(p, v, CG_K8(m)); }\n"
    "#else\n"
    "CG_MASKED(f32, float, 8) CG_MASKED(i32, int32_t, 8)\n"
    "#endif\n"
    /* a gather / scatter at a vector of offsets (expand's strided lanes, e.g. an NCHW output
     * stored along its channels): one instruction with AVX-512, else a loop; either way the
     * kernel's C does not grow by a few lines per lane */
    "#define CG_GATHER(t, e, n) \\\n"
    "  static inline t##x##n gather_##t##x##n(const e *p, i32x##n o) { t##x##n r = {0}; for (int i = 0; i < n; i++) r[i] = p[o[i]]; return r; } \\\n"
    "  static inline void scatter_##t##x##n(e *p, i32x##n o, t##x##n v) { for (int i = 0; i < n; i++) p[o[i]] = v[i]; }\n"
    "CG_GATHER(f32, float, 2) CG_GATHER(i32, int32_t, 2) CG_GATHER(f32, float, 4) CG_GATHER(i32, int32_t, 4)\n"
    "#if defined(__AVX512F__) && defined(__GNUC__) && !defined(__clang__)\n"
    "static inline f32x16 gather_f32x16(const float *p, i32x16 o) { return __builtin_ia32_gathersiv16sf((f32x16){0}, p, o, 0xFFFF, 4); }\n"
    "static inline i32x16 gather_i32x16(const int32_t *p, i32x16 o) { return __builtin_ia32_gathersiv16si((i32x16){0}, p, o, 0xFFFF, 4); }\n"
    "static inline void scatter_f32x16(float *p, i32x16 o, f32x16 v) { __builtin_ia32_scattersiv16sf(p, 0xFFFF, o, v, 4); }\n"
    "static inline void scatter_i32x16(int32_t *p, i32x16 o, i32x16 v) { __builtin_ia32_scattersiv16si(p, 0xFFFF, o, v, 4); }\n"
    "#else\n"
    "CG_GATHER(f32, float, 16) CG_GATHER(i32, int32_t, 16)\n"
    "#endif\n"
    "#if defined(__AVX512VL__) && defined(__GNUC__) && !defined(__clang__)\n"
    "static inline f32x8 gather_f32x8(const float *p, i32x8 o) { return __builtin_ia32_gather3siv8sf((f32x8){0}, p, o, 0xFF, 4); }\n"
    "static inline i32x8 gather_i32x8(const int32_t *p, i32x8 o) { return __builtin_ia32_gather3siv8si((i32x8){0}, p, o, 0xFF, 4); }\n"
    "static inline void scatter_f32x8(float *p, i32x8 o, f32x8 v) { __builtin_ia32_scattersiv8sf(p, 0xFF, o, v, 4); }\n"
    "static inline void scatter_i32x8(int32_t *p, i32x8 o, i32x8 v) { __builtin_ia32_scattersiv8si(p, 0xFF, o, v, 4); }\n"
    "#else\n"
    "CG_GATHER(f32, float, 8) CG_GATHER(i32, int32_t, 8)\n"
    "#endif\n"
    "#endif\n";

/* What a kernel with WMMA (the TC opt, codegen/tc.c) adds: the unit's helpers (compiled
 * for the unit whatever the flags; called only where CPUID found it) and the same meaning
 * in plain C for other widths (ops.def's WMMA: inputs rounded to bf16 with denormals as
 * zero, odd pair added first). */
const char cg_tc_prelude[] =
    "#ifndef CG_TC_PRELUDE\n"
    "#define CG_TC_PRELUDE\n"
    "#include <immintrin.h>\n"
    "static inline float tc_bf16(float x) { uint32_t u; memcpy(&u, &x, 4); if (!(u & 0x7f800000u)) u &= 0x80000000u;\n"
    "  memcpy(&x, &u, 4); return bf16_round(x); }\n"
    "static inline float tc_wmma_f32(float a0, float a1, float b0, float b1, float acc) {\n"
    "  float t = acc + tc_bf16(a1) * tc_bf16(b1); return t + tc_bf16(a0) * tc_bf16(b0); }\n"
    "#define CG_TC_EMU(n) static inline f32x##n tc_wmma_f32x##n(f32x##n a0, f32x##n a1, f32x##n b0, f32x##n b1, f32x##n acc) { \\\n"
    "  for (int i = 0; i < n; i++) acc[i] = tc_wmma_f32(a0[i], a1[i], b0[i], b1[i], acc[i]); return acc; }\n"
    "CG_TC_EMU(2) CG_TC_EMU(4) CG_TC_EMU(8) CG_TC_EMU(16)\n"
    "#define CG_TC_T __attribute__((target(\"" CG_TC_AVX512BF16_TARGET "\"), always_inline)) static inline\n"
    /* pairs: lane i holds (x0[i], x1[i]) as two bf16, x0 in the low half */
    "CG_TC_T __m512i tc_pair_u16(u16x16 x0, u16x16 x1) {\n"
    "  const __m512i ix = _mm512_set_epi16(47,15,46,14,45,13,44,12,43,11,42,10,41,9,40,8,39,7,38,6,37,5,36,4,35,3,34,2,33,1,32,0);\n"
    "  return _mm512_permutex2var_epi16(_mm512_castsi256_si512((__m256i)x0), ix, _mm512_castsi256_si512((__m256i)x1)); }\n"
    "CG_TC_T __m512i tc_pair_f32(f32x16 x0, f32x16 x1) {\n"
    "  const __m512i ix = _mm512_set_epi16(31,15,30,14,29,13,28,12,27,11,26,10,25,9,24,8,23,7,22,6,21,5,20,4,19,3,18,2,17,1,16,0);\n"
    "  return _mm512_permutexvar_epi16(ix, (__m512i)_mm512_cvtne2ps_pbh((__m512)x1, (__m512)x0)); }\n"
    "CG_TC_T __m512i tc_bcast_u32(const uint16_t *p) { uint32_t w; memcpy(&w, p, 4); return _mm512_set1_epi32((int)w); }\n"
    "CG_TC_T __m512i tc_bcast_u16(uint16_t a, uint16_t b) { return _mm512_set1_epi32((int)((uint32_t)a | (uint32_t)b << 16)); }\n"
    "CG_TC_T __m512i tc_bcast_f32(float a, float b) {\n"
    "  return _mm512_broadcastd_epi32((__m128i)_mm_cvtneps_pbh(_mm_set_ps(0.0f, 0.0f, b, a))); }\n"
    /* AMX: c (16x16 float32, row-major) = sum over k < K of a[i*lda + k] * b[k*ldb + j];
     * tiles: 0 = C, 1 = A (16 rows x 32 k), 2 = B (16 pairs of k x 16 columns, each pair in
     * a 32-bit lane: the VNNI layout, interleaved here from two rows of b) */
    /* CG_TC_AMX_EMULATE (a -D in CG_CFLAGS_ADD): the tile operations in plain C, so that
     * a CPU without AMX checks everything around them (offsets, strides, the B layout) */
    "#ifdef CG_TC_AMX_EMULATE\n"
    "#define TC_AMX_TARGET \"" CG_TC_AVX512BF16_TARGET "\"\n"
    "#define TC_CFG(cfg) (void)cfg\n"
    "#define TC_ZERO() memset(ec, 0, sizeof ec)\n"
    "#define TC_LOAD(t, p, stride) for (int r_ = 0; r_ < 16; r_++) memcpy(t + 32 * r_, (const char *)(p) + (stride) * r_, 64)\n"
    "#define TC_LOAD_A(p, stride) TC_LOAD(ea, p, stride)\n"
    "#define TC_LOAD_B(p) TC_LOAD(eb, p, 64)\n"
    "#define TC_DP() for (int i_ = 0; i_ < 16; i_++) for (int j_ = 0; j_ < 16; j_++) for (int p_ = 0; p_ < 16; p_++) { \\\n"
    "    ec[i_ * 16 + j_] += bf16_to_f32(ea[i_ * 32 + 2 * p_ + 1]) * bf16_to_f32(eb[p_ * 32 + 2 * j_ + 1]); \\\n"
    "    ec[i_ * 16 + j_] += bf16_to_f32(ea[i_ * 32 + 2 * p_]) * bf16_to_f32(eb[p_ * 32 + 2 * j_]); }\n"
    "#define TC_STORE(c) memcpy(c, ec, sizeof ec)\n"
    "#define TC_RELEASE()\n"
    "#else\n"
    "#define TC_AMX_TARGET \"amx-tile,amx-bf16," CG_TC_AVX512BF16_TARGET "\"\n"
    "#define TC_CFG(cfg) _tile_loadconfig(cfg)\n"
    "#define TC_ZERO() _tile_zero(0)\n"
    "#define TC_LOAD_A(p, stride) _tile_loadd(1, p, stride)\n"
    "#define TC_LOAD_B(p) _tile_loadd(2, p, 64)\n"
    "#define TC_DP() _tile_dpbf16ps(0, 1, 2)\n"
    "#define TC_STORE(c) _tile_stored(0, c, 64)\n"
    "#define TC_RELEASE() _tile_release()\n"
    "#endif\n"
    /* AMX: c (16x16 float32, row-major) = sum over k < K of a[i*lda + k] * b[k*ldb + j];
     * tiles: 0 = C, 1 = A (16 rows x 32 k), 2 = B (16 pairs of k x 16 columns, each pair in
     * a 32-bit lane: the VNNI layout, interleaved here from two rows of b) */
    "__attribute__((target(TC_AMX_TARGET))) static void tc_amx_tile(float *c, const uint16_t *a,\n"
    "    int64_t lda, const uint16_t *b, int64_t ldb, int64_t K) {\n"
    "  struct { uint8_t palette, start; uint8_t r0[14]; uint16_t colsb[16]; uint8_t rows[16]; } __attribute__((aligned(64))) cfg;\n"
    "  memset(&cfg, 0, sizeof cfg); cfg.palette = 1;\n"
    "  for (int t = 0; t < 3; t++) cfg.colsb[t] = 64, cfg.rows[t] = 16;\n"
    "  TC_CFG(&cfg);\n"
    "  uint16_t at[16 * 32] __attribute__((aligned(64))), bt[16 * 32] __attribute__((aligned(64)));\n"
    "#ifdef CG_TC_AMX_EMULATE\n"
    "  float ec[256]; uint16_t ea[512], eb[512];\n"
    "#endif\n"
    "  TC_ZERO();\n"
    "  for (int64_t k0 = 0; k0 < K; k0 += 32) {\n"
    "    int64_t kk = K - k0 < 32 ? K - k0 : 32;\n"
    "    if (kk == 32) TC_LOAD_A(a + k0, lda * 2);\n"
    "    else { for (int i = 0; i < 16; i++) for (int q = 0; q < 32; q++) at[i * 32 + q] = q < kk ? a[i * lda + k0 + q] : 0;\n"
    "      TC_LOAD_A(at, 64); }\n"
    "    for (int p = 0; p < 16; p++) { int64_t k = k0 + 2 * p; u16x16 z = {0};\n"
    "      u16x16 lo = k < K ? *(const u16x16_u *)(b + k * ldb) : z, hi = k + 1 < K ? *(const u16x16_u *)(b + (k + 1) * ldb) : z;\n"
    "      _mm512_store_si512((void *)(bt + p * 32), tc_pair_u16(lo, hi)); }\n"
    "    TC_LOAD_B(bt);\n"
    "    TC_DP();\n"
    "  }\n"
    "  TC_STORE(c);\n"
    "  TC_RELEASE();\n"
    "}\n"
    "CG_TC_T f32x16 tc_dp16(f32x16 acc, __m512i a, __m512i b) { return (f32x16)_mm512_dpbf16_ps((__m512)acc, (__m512bh)a, (__m512bh)b); }\n"
    "#endif\n";

/* In-register transposes of w vectors of w lanes (float32, or bf16 bits; w = 8, 16): x[i][j]
 * becomes x[j][i]. log2(w) stages; stage d swaps bit d of the row with bit d of the column
 * (rows i and i + d exchange their halves of each 2d-lane block): w/2 pairs, two 2-input
 * shuffles each (vpermt2ps / vshufps / vpermt2w), so a 16x16 block costs 64 shuffles
 * instead of 16 gathers. Emitted with kernels whose expand left a transpose (render_c.c).
 * The text is written once by a loop (the stages are regular: each pair's two masks follow
 * from the lane's bit d); where the compiler has no __builtin_shuffle, element swaps. */
static char transpose_text[20480]; /* the text is 17068 bytes */
static void transpose_build(void) {
  static const struct {
    const char *t, *mask, *elem;
    int w;
  } ty[] = {{"f32x8", "i32x8", "float", 8}, {"f32x16", "i32x16", "float", 16}, {"u16x8", "u16x8", "uint16_t", 8}, {"u16x16", "u16x16", "uint16_t", 16}};
  char *p = transpose_text, *end = transpose_text + sizeof transpose_text;
#define OUT(...) p += snprintf(p, (size_t)(end - p), __VA_ARGS__)
  OUT("#if defined(__GNUC__) && !defined(__clang__)\n");
  for (int k = 0; k < 4; k++) {
    int w = ty[k].w;
    OUT("static inline __attribute__((always_inline)) void transpose_%s(%s *x) {\n  %s a, b;\n", ty[k].t, ty[k].t, ty[k].t);
    for (int d = 1; d < w; d *= 2)
      for (int i = 0; i < w; i++) {
        if (i & d) continue;
        OUT("  a = x[%d], b = x[%d];", i, i + d);
        for (int half = 0; half < 2; half++) {
          OUT(" x[%d] = __builtin_shuffle(a, b, (%s){", half ? i + d : i, ty[k].mask);
          for (int j = 0; j < w; j++) OUT("%s%d", j ? "," : "", (j & d ? j - d + w : j) + (half ? d : 0));
          OUT("});");
        }
        OUT("\n");
      }
    OUT("}\n");
  }
  OUT("#else\n");
  for (int k = 0; k < 4; k++)
    OUT("static inline void transpose_%s(%s *x) {\n  for (int i = 0; i < %d; i++) for (int j = 0; j < i; j++) { %s t = x[i][j]; x[i][j] = x[j][i]; x[j][i] = t; }\n}\n",
        ty[k].t, ty[k].t, ty[k].w, ty[k].elem);
  OUT("#endif\n");
#undef OUT
}
const char *cg_transpose_prelude(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, transpose_build);
  return transpose_text;
}
