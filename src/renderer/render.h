/* Renderers: a linear program (codegen.h) to source for a device. Each is a table
 * {name, per-op templates, printer}; a device names the renderer it takes. */
#ifndef CG_RENDERER_H
#define CG_RENDERER_H
#include "codegen/codegen.h"

extern const renderer renderer_c;      /* C with the CPU kernel ABI (runtime/device.h) */
extern const renderer renderer_interp; /* bytecode for the interpreter device (INTERP) */
extern const renderer renderer_x86;    /* x86-64 machine code in hex for the X86 device (+ C source: tiering, refusals) */
/* Kernels the x86 renderer emitted and refused (to the C compiler) so far. */
void render_x86_counts(long long *emitted, long long *refused);
/* Seconds spent emitting machine code so far (all threads). */
double render_x86_emit_seconds(void);

/* The renderer called name, or NULL + an error naming the ones there are. */
const renderer *renderer_find(const char *name);

/* The target the TC helpers and TC kernels of unit 1 (AVX512-BF16) compile for. */
#define CG_TC_AVX512BF16_TARGET "avx512f,avx512bw,avx512vl,avx512bf16"

#endif
