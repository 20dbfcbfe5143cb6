/* The CPU's matrix units, detected at run time (CPUID + what the OS enabled), never
 * assumed: kernels that use one are generated only where it was found (codegen/tc.c).
 *
 *   knob CG_CPU_FEATURES: features to pretend are absent, e.g. "-avx512bf16" or
 *   "-avx512bf16,-amx" or "-avx512" (tests use it to exercise the fp32 fallback on a CPU that has the
 *   unit). A feature the CPU lacks cannot be added. */
#ifndef CG_RUNTIME_CPU_FEATURES_H
#define CG_RUNTIME_CPU_FEATURES_H
#include <stdbool.h>

enum {
  RT_CPU_AVX512BF16 = 1, /* vdpbf16ps (AMD Zen 4/5, Intel Cooper Lake, Sapphire Rapids+) */
  RT_CPU_AMX_BF16 = 2,   /* AMX tiles with _tile_dpbf16ps (Intel Sapphire Rapids+) */
};
/* The features present, less those CG_CPU_FEATURES takes away. */
unsigned rt_cpu_features(void);
/* Those the hardware and OS have, knob ignored. */
unsigned rt_cpu_features_hw(void);
/* AVX-512 F, BW, DQ and VL, with the OS saving zmm state (what the x86 renderer emits),
 * unless CG_CPU_FEATURES has "-avx512". */
bool rt_cpu_avx512(void);
/* "avx512bf16 amx-bf16" style list of a feature set ("none" when empty). */
const char *rt_cpu_features_str(unsigned f);
/* Asks Linux once per process for permission to use AMX tile data
 * (arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)); false if it was refused or there
 * is no AMX. Must succeed before an AMX kernel runs. */
bool rt_amx_enable(void);

#endif
