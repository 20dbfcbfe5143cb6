/* The transcendentals' C (vmath.h has the coefficients and the error bounds): a kernel
 * that uses EXP2, LOG2 or SIN in float32 gets only the functions and widths it uses, each
 * guarded (several kernels compile as one translation unit). Plain GCC vector types, no
 * <immintrin.h> (~100 ms of cc per translation unit). Every multiply-add that rounds once
 * is an explicit fma_ (the prelude's; kernels compile with -ffp-contract=off), in the order
 * render_x86.c evaluates them, so both backends give the same bits. The scalar form is
 * lane 0 of the f32x4 one, so scalar tails and vector bodies agree bit for bit. */
#include "render.h"
#include "vmath.h"
#include <stdio.h>
#include <string.h>

#define S_(x) #x
#define S(x) S_(x)

/* Each body is a macro of the width n over the prelude's f32x##n / i32x##n / where_.
 * exp2's clamp and its 2^k: with AVX-512 (VL for 4 and 8 lanes) vmaxps / vminps (the
 * constant first: NaN is kept) and vscalefps, as render_x86.c emits them, 11 instructions
 * fewer than the compares, selects and integer ops of the portable form (a quarter of
 * GELU's backward); p * 2^k1 * 2^k2 (2^k1 exact) rounds once as vscalefps does, so both
 * forms give the same bits. */
static const char exp2_def[] =
    "#define CG_VM_EXP2_PORTABLE(n) \\\n"
    "  static inline f32x##n cg_vm_clamp_f32x##n(f32x##n x) { const f32x##n z = {0}; \\\n"
    "    f32x##n xc = where_f32x##n(x < -151.0f, z - 151.0f, x); return where_f32x##n(xc > 129.0f, z + 129.0f, xc); } \\\n"
    "  static inline f32x##n cg_vm_scale_f32x##n(f32x##n p, f32x##n t, f32x##n r) { (void)r; \\\n"
    "    i32x##n k = (i32x##n)t - 0x4b400000, k1 = k >> 1, k2 = k - k1; \\\n"
    "    return p * (f32x##n)((k1 + 127) << 23) * (f32x##n)((k2 + 127) << 23); }\n"
    "CG_VM_EXP2_PORTABLE(2)\n"
    "#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__GNUC__) && !defined(__clang__)\n"
    "static inline f32x16 cg_vm_clamp_f32x16(f32x16 x) { const f32x16 z = {0}; \\\n"
    "  return __builtin_ia32_minps512_mask(z + 129.0f, __builtin_ia32_maxps512_mask(z - 151.0f, x, z, (unsigned short)-1, 4), z, (unsigned short)-1, 4); }\n"
    "static inline f32x16 cg_vm_scale_f32x16(f32x16 p, f32x16 t, f32x16 r) { (void)t; return __builtin_ia32_scalefps512_mask(p, r, p, (unsigned short)-1, 4); }\n"
    "static inline f32x8 cg_vm_clamp_f32x8(f32x8 x) { const f32x8 z = {0}; return __builtin_ia32_minps256(z + 129.0f, __builtin_ia32_maxps256(z - 151.0f, x)); }\n"
    "static inline f32x8 cg_vm_scale_f32x8(f32x8 p, f32x8 t, f32x8 r) { (void)t; return __builtin_ia32_scalefps256_mask(p, r, p, (unsigned char)-1); }\n"
    "static inline f32x4 cg_vm_clamp_f32x4(f32x4 x) { const f32x4 z = {0}; return __builtin_ia32_minps(z + 129.0f, __builtin_ia32_maxps(z - 151.0f, x)); }\n"
    "static inline f32x4 cg_vm_scale_f32x4(f32x4 p, f32x4 t, f32x4 r) { (void)t; return __builtin_ia32_scalefps128_mask(p, r, p, (unsigned char)-1); }\n"
    "#else\n"
    "CG_VM_EXP2_PORTABLE(4) CG_VM_EXP2_PORTABLE(8) CG_VM_EXP2_PORTABLE(16)\n"
    "#endif\n"
    "#define CG_VM_EXP2(n) static inline f32x##n cg_exp2_f32x##n(f32x##n x) { \\\n"
    "  const f32x##n z = {0}; \\\n"
    "  f32x##n xc = cg_vm_clamp_f32x##n(x); \\\n"
    "  f32x##n t = xc + 0x1.8p23f, r = t - 0x1.8p23f, f = xc - r; \\\n"
    "  f32x##n p = fma_f32x##n(f, z + " S(CG_VM_EXP2_E5) ", z + " S(CG_VM_EXP2_E4) "); \\\n"
    "  p = fma_f32x##n(p, f, z + " S(CG_VM_EXP2_E3) "); p = fma_f32x##n(p, f, z + " S(CG_VM_EXP2_E2) "); \\\n"
    "  p = fma_f32x##n(p, f, z + " S(CG_VM_EXP2_E1) "); p = fma_f32x##n(p, f, z + " S(CG_VM_EXP2_E0) "); p = fma_f32x##n(p, f, z + 1.0f); \\\n"
    "  return cg_vm_scale_f32x##n(p, t, r); }\n";

static const char log2_def[] =
    "#define CG_VM_LOG2(n) static inline f32x##n cg_log2_f32x##n(f32x##n x) { \\\n"
    "  const f32x##n z = {0}; \\\n"
    "  i32x##n sub = x < 0x1p-126f; \\\n"
    "  f32x##n xs = where_f32x##n(sub, x * 0x1p23f, x); \\\n"
    "  i32x##n i = (i32x##n)xs, e = (i32x##n)(i - " S(CG_VM_LOG2_MBASE) ") >> 23; \\\n"
    "  f32x##n r = (f32x##n)(i - (e << 23)) - 1.0f; \\\n"
    "  f32x##n q = fma_f32x##n(r, z + " S(CG_VM_LOG2_L9) ", z + " S(CG_VM_LOG2_L8) "); \\\n"
    "  q = fma_f32x##n(q, r, z + " S(CG_VM_LOG2_L7) "); q = fma_f32x##n(q, r, z + " S(CG_VM_LOG2_L6) "); \\\n"
    "  q = fma_f32x##n(q, r, z + " S(CG_VM_LOG2_L5) "); q = fma_f32x##n(q, r, z + " S(CG_VM_LOG2_L4) "); \\\n"
    "  q = fma_f32x##n(q, r, z + " S(CG_VM_LOG2_L3) "); q = fma_f32x##n(q, r, z + " S(CG_VM_LOG2_L2) "); \\\n"
    "  q = fma_f32x##n(q, r, z + " S(CG_VM_LOG2_L1) "); \\\n"
    "  i32x##n et = e - (sub & 23); \\\n"
    "  f32x##n rr = q * r, yh = fma_f32x##n(rr + " S(CG_VM_LOG2_L0) ", r, __builtin_convertvector(et, f32x##n)); \\\n"
    "  f32x##n yl = fma_f32x##n(r, z + " S(CG_VM_LOG2_L0) ", fma_f32x##n(r, z + " S(CG_VM_LOG2_L0LO) ", r * rr)); \\\n"
    "  f32x##n y = where_f32x##n(et == 0, yl, yh); \\\n"
    "  y = where_f32x##n(x == 0.0f, z - INFINITY, y); \\\n"
    "  y = where_f32x##n((x < 0.0f) | (x != x), z + NAN, y); \\\n"
    "  return where_f32x##n(x == INFINITY, z + INFINITY, y); }\n";

/* q = rint(x * 2/pi), d = x - q pi/2: sin(x) is sin(d), cos(d), -sin(d), -cos(d) for q mod 4 */
static const char sin_def[] =
    "#define CG_VM_SIN(n) static inline f32x##n cg_sin_f32x##n(f32x##n x) { \\\n"
    "  const f32x##n z = {0}; \\\n"
    "  f32x##n t = fma_f32x##n(x, z + " S(CG_VM_SIN_2PI) ", z + 0x1.8p23f), q = t - 0x1.8p23f; \\\n"
    "  typedef double f64v __attribute__((vector_size(8 * n))); \\\n"
    "  f64v qd = __builtin_convertvector(q, f64v), dd = __builtin_convertvector(x, f64v) - qd * " S(CG_VM_SIN_P1) "; \\\n"
    "  dd = dd - qd * " S(CG_VM_SIN_P2) "; \\\n"
    "  f32x##n d = __builtin_convertvector(dd, f32x##n), dl = __builtin_convertvector(dd - __builtin_convertvector(d, f64v), f32x##n); \\\n"
    "  f32x##n s = d * d, p = fma_f32x##n(s, z + " S(CG_VM_SIN_S3) ", z + " S(CG_VM_SIN_S2) "); \\\n"
    "  p = fma_f32x##n(p, s, z + " S(CG_VM_SIN_S1) "); p = fma_f32x##n(p, s, z + " S(CG_VM_SIN_S0) "); \\\n"
    "  f32x##n c = fma_f32x##n(s, z + " S(CG_VM_SIN_C3) ", z + " S(CG_VM_SIN_C2) "); \\\n"
    "  c = fma_f32x##n(c, s, z + " S(CG_VM_SIN_C1) "); c = fma_f32x##n(c, s, z + " S(CG_VM_SIN_C0) "); \\\n"
    "  f32x##n ds = d * s, ys = fma_f32x##n(ds, p, dl) + d, yc = fma_f32x##n(s, c, -(d * dl)) + 1.0f; \\\n"
    "  i32x##n j = (i32x##n)t, y = where_i32x##n(-(j & 1), (i32x##n)yc, (i32x##n)ys) ^ ((j & 2) << 30); \\\n"
    "  i32x##n big = ~((f32x##n)((i32x##n)x & 0x7fffffff) <= " S(CG_VM_SIN_MAX) "); \\\n"
    "  f32x##n r = where_f32x##n(x == 0.0f, x, (f32x##n)y); /* -0 keeps its sign */ \\\n"
    "  for (int l = 0; l < n; l++) if (big[l]) r[l] = sinf(x[l]); \\\n"
    "  return r; }\n";

static const struct {
  int op;
  const char *name, *def;
} fns[] = {{OP_EXP2, "EXP2", exp2_def}, {OP_LOG2, "LOG2", log2_def}, {OP_SIN, "SIN", sin_def}};

bool vmath_has(int op) {
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
    if (fns[i].op == op) return true;
  return false;
}

void vmath_name(int op, int width, char *out, size_t n) {
  const char *s = op == OP_EXP2 ? "exp2" : op == OP_LOG2 ? "log2" : "sin";
  if (width <= 1) snprintf(out, n, "cg_%sf", s);
  else snprintf(out, n, "cg_%s_f32x%d", s, width);
}

/* widths: bit w set for each vector width 2^w used (bit 0: the scalar form) */
size_t vmath_source(int op, unsigned widths, char *out, size_t n) {
  size_t w = 0;
#define PUT(...) (w += (size_t)snprintf(out && w < n ? out + w : NULL, out && w < n ? n - w : 0, __VA_ARGS__))
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    if (fns[i].op != op) continue;
    const char *nm = fns[i].name;
    char lower[8];
    size_t k = 0;
    for (; nm[k] && k < sizeof lower - 1; k++) lower[k] = (char)(nm[k] | 0x20);
    lower[k] = 0;
    PUT("#ifndef CG_VM_%s\n%s", nm, fns[i].def);
    PUT("CG_VM_%s(4)\nstatic inline float cg_%sf(float x) { return cg_%s_f32x4((f32x4){x})[0]; }\n#endif\n", nm, lower, lower);
    for (int b = 1; b <= 4; b++)
      if ((widths >> b & 1) && b != 2) PUT("#ifndef CG_VM_%s_%d\n#define CG_VM_%s_%d\nCG_VM_%s(%d)\n#endif\n", nm, 1 << b, nm, 1 << b, nm, 1 << b);
  }
#undef PUT
  return w;
}
