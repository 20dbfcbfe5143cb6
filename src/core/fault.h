/* Allocation-failure injection, for tests: with CG_FAULT_ALLOC=N in the environment (or
 * fault_arm(N)) the N-th allocation the library makes fails; with CG_FAULT_PERSIST=1 every
 * later one fails too. Every allocation site that can fail (malloc/calloc/realloc through
 * cg_malloc and friends, IR nodes, the buffer allocator, dlopen) asks fault_hit() first.
 * Compiled in only with -DCG_FAULT_INJECTION (test builds); otherwise fault_hit() is a
 * constant false and costs nothing. */
#ifndef CG_CORE_FAULT_H
#define CG_CORE_FAULT_H
#include <stdbool.h>

#ifdef CG_FAULT_INJECTION
bool fault_hit(void);
/* Arm: the n-th allocation from now fails (n = 0: none fails, allocations are still
 * counted); persist: every allocation after it fails too. */
void fault_arm(long n, bool persist);
/* Allocations counted since the last arm, and whether an injected failure happened. */
long fault_count(void);
bool fault_fired(void);
#define FAULT_ENABLED 1
#else
static inline bool fault_hit(void) { return false; }
static inline void fault_arm(long n, bool persist) { (void)n, (void)persist; }
static inline long fault_count(void) { return 0; }
static inline bool fault_fired(void) { return false; }
#define FAULT_ENABLED 0
#endif

#endif
