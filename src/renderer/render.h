/* Renderers: a linear program (codegen.h) to source for a device. Each is a table
 * {name, per-op templates, printer}; a device names the renderer it takes. */
#ifndef CG_RENDERER_H
#define CG_RENDERER_H
#include "codegen/codegen.h"

extern const renderer renderer_c;      /* C with the CPU kernel ABI (runtime/device.h) */
extern const renderer renderer_interp; /* bytecode for the interpreter device (INTERP) */

/* The renderer called name, or NULL + an error naming the ones there are. */
const renderer *renderer_find(const char *name);

/* vmath.c: float32 EXP2 / LOG2 / SIN as polynomials (coefficients and errors: vmath.h).
 * vmath_has: whether op is one; vmath_name: the C function for a width (1: scalar);
 * vmath_source: its definitions for the widths whose bit log2(width) is set in widths
 * (the scalar form always), each guarded; returns the length snprintf would. */
bool vmath_has(int op);
void vmath_name(int op, int width, char *out, size_t n);
size_t vmath_source(int op, unsigned widths, char *out, size_t n);

/* The target the TC helpers and TC kernels of unit 1 (AVX512-BF16) compile for. */
#define CG_TC_AVX512BF16_TARGET "avx512f,avx512bw,avx512vl,avx512bf16"

#endif
