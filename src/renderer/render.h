/* Renderers: a linear program (codegen.h) to source for a device. Each is a table
 * {name, per-op templates, printer}; a device names the renderer it takes. */
#ifndef CG_RENDERER_H
#define CG_RENDERER_H
#include "codegen/codegen.h"

extern const renderer renderer_c;      /* C with the CPU kernel ABI (runtime/device.h) */
extern const renderer renderer_interp; /* bytecode for the interpreter device (INTERP) */
extern const renderer renderer_x86;    /* x86-64 machine code in hex for the X86 device (+ C source: tiering, refusals) */
extern const renderer renderer_x86_tier; /* the same, always with the C source: the CPU device's tiering (runtime/x86.c) */
/* Kernels the x86 renderer emitted and refused (to the C compiler) so far. */
void render_x86_counts(long long *emitted, long long *refused);
/* Seconds spent emitting machine code so far (all threads). */
double render_x86_emit_seconds(void);

/* The renderer called name, or NULL + an error naming the ones there are. */
const renderer *renderer_find(const char *name);

/* vmath.c: float32 EXP2 / LOG2 / SIN as polynomials (coefficients and errors: vmath.h).
 * vmath_has: whether op is one; vmath_name: the C function for a width (1: scalar);
 * vmath_source: its definitions for the widths whose bit log2(width) is set in widths
 * (the scalar form always), each guarded; returns the length snprintf would. */
bool vmath_has(int op);
void vmath_name(int op, int width, char *out, size_t n);
size_t vmath_source(int op, unsigned widths, char *out, size_t n);

/* contract.c: which float MULs are fused into their one reader ADD (an fma, one rounding),
 * indexed by instruction; the same rule for the C and x86 renderers, so their results are
 * bit-identical. NULL when out of memory. */
bool *render_fma_pairs(const linear *l);

/* The target the TC helpers and TC kernels of unit 1 (AVX512-BF16) compile for. */
#define CG_TC_AVX512BF16_TARGET "avx512f,avx512bw,avx512vl,avx512bf16"

#endif
