/* The system C compiler as a kernel compiler (ARCHITECTURE §7).
 *
 *   compiler: knob CG_CC (default "cc"; split on spaces, so "ccache gcc" works)
 *   flags:    knob CG_CFLAGS replaces RT_CC_FLAGS; knob CG_CFLAGS_ADD is appended;
 *             "-fPIC -shared" always follow (a kernel must be a loadable object)
 *
 * The compiler runs through posix_spawn, never a shell; its output is captured so a
 * failing compile reports the compiler's first error lines. */
#ifndef CG_RUNTIME_CPU_COMPILE_H
#define CG_RUNTIME_CPU_COMPILE_H
#include "cgrad.h"
#include <stdint.h>

/* -fno-tree-loop-vectorize: GCC 12's loop vectorizer miscompiles a float sum over a
 * reversed (flipped) index, e.g. sum(flip(x)) of 8 floats gives 38 or 41 instead of 37
 * (clang, -O0 and -fno-tree-loop-vectorize are right). The SLP vectorizer stays on: it
 * turns upcast register tiles (codegen/opt.c) into vector FMAs. */
/* -fwrapv: integer arithmetic wraps, as the op table says (ops.def), also in int-promoted
 * 8/16-bit math. -ffp-contract=off: the compiler fuses no multiply-add of its own; the
 * renderer spells the ones that round once as fma (renderer/contract.c chooses them, the
 * same for the x86 backend: both give the same bits, so tiering may swap one for the
 * other), MULACC always. -fno-math-errno: libm calls without errno, so they can inline
 * (sqrt, fma). -fschedule-insns -fsched-pressure: with 64-bit loop indices GCC 12 reloaded a
 * 5x5 convolution's inputs inside every FMA (conv1's forward 3.6 -> 6.4 ms); scheduling
 * before register allocation, pressure-aware, keeps them in registers: the CNN step's
 * kernels 175 -> 164 ms on one thread, GEMM unchanged or faster, ~14% more compile time. */
#define RT_CC_FLAGS "-O2 -march=native -fwrapv -ffp-contract=off -fno-math-errno -fno-tree-loop-vectorize -fschedule-insns -fsched-pressure"

/* The cache key of (name, source) under the current compiler: a 128-bit hash over the
 * name, source, compiler command, flags, the compiler's `--version` output (asked once per
 * compiler per process) and the host CPU's model and feature flags (for -march=native). */
void rt_cc_key(const char *name, const char *source, uint64_t key[2]);
/* Compile source into a shared object in dir. On success *so_path is the new file
 * (malloc'ed; the caller renames or deletes it). On failure: CG_ERR_RUNTIME with the
 * compiler's exit status and first lines of output, and no file left behind. */
cg_status rt_cc_compile(const char *name, const char *source, const char *dir, char **so_path);

#endif
