/* The allocation counter behind CG_FAULT_ALLOC (see fault.h). Atomic: worker threads may
 * allocate too. */
#include "fault.h"
#ifdef CG_FAULT_INJECTION
#include <stdatomic.h>
#include <stdlib.h>

static atomic_long counted, target = -1; /* target -1: not read from the environment yet */
static atomic_bool persistent, fired;

static void read_env(void) {
  const char *n = getenv("CG_FAULT_ALLOC"), *p = getenv("CG_FAULT_PERSIST");
  long want = n && *n ? strtol(n, NULL, 10) : 0;
  persistent = p && *p == '1';
  long expected = -1;
  atomic_compare_exchange_strong(&target, &expected, want);
}

bool fault_hit(void) {
  if (atomic_load_explicit(&target, memory_order_relaxed) < 0) read_env();
  long t = atomic_load_explicit(&target, memory_order_relaxed);
  long i = atomic_fetch_add(&counted, 1) + 1;
  if (t <= 0 || i < t || (i > t && !persistent)) return false;
  fired = true;
  return true;
}

void fault_arm(long n, bool persist) {
  counted = 0;
  fired = false;
  persistent = persist;
  target = n;
}

long fault_count(void) { return counted; }
bool fault_fired(void) { return fired; }
#endif
