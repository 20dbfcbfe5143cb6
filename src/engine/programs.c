/* The program cache (see programs.h). The table and recency list are under one lock;
 * references are atomic: every retain comes from a holder of a reference (or under the
 * lock, by lookup), so an entry with only the table's reference, which the bound may
 * take out, is one nobody can be retaining at that moment. */
#include "programs.h"
#include "core/config.h"
#include <pthread.h>
#include <stdlib.h>

enum { NSLOTS = 4096 };
static struct {
  pthread_mutex_t lock;
  prog_entry *slot[NSLOTS];
  prog_entry *head, *tail;
  size_t n;
  uint64_t evictions;
} cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static prog_entry **slot_of(rt_device *dev, uop *ast) {
  uint64_t h = (uint64_t)(uintptr_t)ast * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)dev;
  return &cache.slot[(h >> 20) & (NSLOTS - 1)];
}

static void lru_unlink(prog_entry *e) {
  if (e->prev) e->prev->next = e->next;
  else cache.head = e->next;
  if (e->next) e->next->prev = e->prev;
  else cache.tail = e->prev;
  e->prev = e->next = NULL;
}
static void lru_front(prog_entry *e) {
  e->next = cache.head, e->prev = NULL;
  if (cache.head) cache.head->prev = e;
  cache.head = e;
  if (!cache.tail) cache.tail = e;
}

static bool same_opts(const prog_entry *e, const opt *o, int n) {
  if (!o) return !e->k.opts_given;
  return e->k.opts_given && opts_eq(e->k.opts, e->k.nopts, o, n);
}

prog_entry *programs_lookup(rt_device *dev, uop *ast, const opt *o, int nopts) {
  unsigned long gen = cfg_generation();
  pthread_mutex_lock(&cache.lock);
  prog_entry *e = *slot_of(dev, ast);
  while (e && !(e->ast == ast && e->dev == dev && e->gen == gen && (same_opts(e, o, nopts) || (!o && e->beam)))) e = e->chain;
  if (e) {
    __atomic_fetch_add(&e->refs, 1, __ATOMIC_RELAXED);
    if (e != cache.head) lru_unlink(e), lru_front(e);
  }
  pthread_mutex_unlock(&cache.lock);
  return e;
}

static void entry_free(prog_entry *e) {
  if (e->p) e->dev->program_free(e->p);
  uop_release(e->ast);
  ckernel_free(&e->k);
  free(e);
}

void programs_publish(prog_entry *e) {
  long bound = cfg_int("CG_PROGRAM_CACHE", 1024);
  size_t cap = bound < 1 ? 1 : (size_t)bound;
  prog_entry *out = NULL;
  __atomic_fetch_add(&e->refs, 1, __ATOMIC_RELAXED); /* the table's */
  pthread_mutex_lock(&cache.lock);
  prog_entry **s = slot_of(e->dev, e->ast);
  e->chain = *s, *s = e;
  lru_front(e);
  cache.n++;
  for (prog_entry *x = cache.tail, *prev; x && cache.n > cap; x = prev) {
    prev = x->prev;
    int one = 1; /* the table's reference only: no user, none can appear (see above) */
    if (!__atomic_compare_exchange_n(&x->refs, &one, 0, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) continue;
    prog_entry **c = slot_of(x->dev, x->ast);
    while (*c != x) c = &(*c)->chain;
    *c = x->chain;
    lru_unlink(x);
    cache.n--, cache.evictions++;
    x->chain = out, out = x;
  }
  pthread_mutex_unlock(&cache.lock);
  for (prog_entry *next; out; out = next) next = out->chain, entry_free(out); /* outside the lock: unloading, UOp free hooks */
}

void programs_retain(prog_entry *e) {
  if (e) __atomic_fetch_add(&e->refs, 1, __ATOMIC_RELAXED);
}

void programs_release(prog_entry *e) {
  if (e && __atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL) == 0) entry_free(e);
}

size_t programs_count(uint64_t *evictions) {
  pthread_mutex_lock(&cache.lock);
  size_t n = cache.n;
  if (evictions) *evictions = cache.evictions;
  pthread_mutex_unlock(&cache.lock);
  return n;
}
