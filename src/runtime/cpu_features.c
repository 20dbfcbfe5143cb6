/* CPUID and XGETBV: what the CPU has and what the OS saves across context switches (a
 * unit whose register state the OS does not enable faults on first use). */
#define _GNU_SOURCE
#include "cpu_features.h"
#include "core/config.h"
#include <pthread.h>
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

static unsigned hw;
static bool hw_avx512;
static pthread_once_t hw_once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__)
static unsigned long long xgetbv0(void) {
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((unsigned long long)hi << 32) | lo;
}
#endif

static void detect(void) {
#if defined(__x86_64__)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return; /* OSXSAVE */
  unsigned long long xcr0 = xgetbv0();
  bool avx512_os = (xcr0 & 0xe6) == 0xe6;             /* SSE, AVX, opmask, ZMM state */
  bool amx_os = (xcr0 & (3ull << 17)) == (3ull << 17); /* XTILECFG, XTILEDATA */
  if (__get_cpuid_max(0, NULL) < 7) return;
  __cpuid_count(7, 0, a, b, c, d);
  bool avx512f = b & (1u << 16), avx512bw = b & (1u << 30), amx_bf16 = d & (1u << 22), amx_tile = d & (1u << 24);
  unsigned a1, b1, c1, d1;
  __cpuid_count(7, 1, a1, b1, c1, d1);
  if (avx512_os && avx512f && avx512bw && (a1 & (1u << 5))) hw |= RT_CPU_AVX512BF16;
  hw_avx512 = avx512_os && avx512f && avx512bw && (b & (1u << 17)) && (b & (1u << 31)); /* + DQ, VL */
  if (amx_os && amx_bf16 && amx_tile) hw |= RT_CPU_AMX_BF16;
#endif
}

unsigned rt_cpu_features_hw(void) {
  pthread_once(&hw_once, detect);
  return hw;
}

unsigned rt_cpu_features(void) {
  unsigned f = rt_cpu_features_hw();
  const char *k = cfg_str("CG_CPU_FEATURES", "");
  if (strstr(k, "-avx512bf16")) f &= ~(unsigned)RT_CPU_AVX512BF16;
  if (strstr(k, "-amx")) f &= ~(unsigned)RT_CPU_AMX_BF16;
  return f;
}

bool rt_cpu_avx512(void) {
  pthread_once(&hw_once, detect);
  const char *k = cfg_str("CG_CPU_FEATURES", "");
  size_t n = strlen(k);
  return hw_avx512 && !strstr(k, "-avx512,") && !(n >= 7 && !strcmp(k + n - 7, "-avx512"));
}

const char *rt_cpu_features_str(unsigned f) {
  static const char *const s[] = {"none", "avx512bf16", "amx-bf16", "avx512bf16 amx-bf16"};
  return s[f & 3];
}

/* Linux 5.16+: tile data is off for a process until it asks (arch/x86/include/uapi/asm/prctl.h) */
#define CG_ARCH_REQ_XCOMP_PERM 0x1023
#define CG_XFEATURE_XTILEDATA 18
static bool amx_ok;
static pthread_once_t amx_once = PTHREAD_ONCE_INIT;
static void amx_request(void) {
#if defined(__x86_64__) && defined(SYS_arch_prctl)
  amx_ok = (rt_cpu_features_hw() & RT_CPU_AMX_BF16) && syscall(SYS_arch_prctl, CG_ARCH_REQ_XCOMP_PERM, CG_XFEATURE_XTILEDATA) == 0;
#endif
}
bool rt_amx_enable(void) {
  pthread_once(&amx_once, amx_request);
  return amx_ok;
}
