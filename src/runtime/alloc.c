/* The LRU caching allocator. Cached blocks are tracked by small nodes on the host (device
 * memory may not be addressable), linked twice: into a size-hash bucket (exact-size
 * reuse, most recently freed first) and into one LRU list (eviction, oldest first). */
#include "alloc.h"
#include "device.h"
#include "core/config.h"
#include "core/error.h"
#include "core/fault.h"
#include <stdlib.h>

/* Under AddressSanitizer, cached host blocks are poisoned: a use after free through a
 * stale pointer is reported even though the block was not returned to malloc. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

struct rt_block {
  void *ptr;
  size_t size;
  rt_block *bnext, *bprev; /* bucket chain */
  rt_block *lnext, *lprev; /* LRU list: lnext goes towards older blocks */
};

static unsigned bucket_of(size_t size) {
  return (unsigned)(((uint64_t)(size / RT_ALLOC_ALIGN) * 0x9E3779B97F4A7C15ULL) >> 56) % RT_ALLOC_BUCKETS;
}

static void unlink_block(rt_allocator *a, rt_block *b) {
  if (b->bprev) b->bprev->bnext = b->bnext;
  else a->buckets[bucket_of(b->size)] = b->bnext;
  if (b->bnext) b->bnext->bprev = b->bprev;
  if (b->lprev) b->lprev->lnext = b->lnext;
  else a->lru_new = b->lnext;
  if (b->lnext) b->lnext->lprev = b->lprev;
  else a->lru_old = b->lprev;
  a->st.cached -= b->size;
}

static void link_block(rt_allocator *a, rt_block *b) {
  rt_block **head = &a->buckets[bucket_of(b->size)];
  b->bprev = NULL, b->bnext = *head;
  if (*head) (*head)->bprev = b;
  *head = b;
  b->lprev = NULL, b->lnext = a->lru_new;
  if (a->lru_new) a->lru_new->lprev = b;
  else a->lru_old = b;
  a->lru_new = b;
  a->st.cached += b->size;
}

/* Unlink the oldest blocks until the cache fits its cap; returns them as a bnext list. */
static rt_block *evict_locked(rt_allocator *a) {
  rt_block *out = NULL;
  while (a->st.cached > a->cap && a->lru_old) {
    rt_block *b = a->lru_old;
    unlink_block(a, b);
    b->bnext = out, out = b;
  }
  return out;
}

static void release_list(rt_allocator *a, rt_block *list) {
  while (list) {
    rt_block *next = list->bnext;
    if (a->host_memory) UNPOISON(list->ptr, list->size);
    a->sys_free(list->ptr, list->size);
    free(list);
    list = next;
  }
}

static void read_cap_locked(rt_allocator *a) {
  if (a->cap_set) return;
  long mb = cfg_int("CG_ALLOC_CACHE_MB", 1024);
  a->cap = mb > 0 ? (size_t)mb << 20 : 0;
  a->cap_set = 1;
}

void *rt_lru_alloc(rt_allocator *a, size_t size) {
  if (size > SIZE_MAX - RT_ALLOC_ALIGN)
    return cg_fail_null(CG_ERR_NOMEM, "out of memory: %s cannot allocate %zu bytes", a->name, size);
  size_t sz = size ? (size + RT_ALLOC_ALIGN - 1) / RT_ALLOC_ALIGN * RT_ALLOC_ALIGN : RT_ALLOC_ALIGN;
  pthread_mutex_lock(&a->lock);
  read_cap_locked(a);
  rt_block *b = a->buckets[bucket_of(sz)];
  while (b && b->size != sz) b = b->bnext;
  if (b) {
    unlink_block(a, b);
    a->st.reuses++;
    a->st.in_use += sz;
    if (a->st.in_use > a->st.peak) a->st.peak = a->st.in_use;
    pthread_mutex_unlock(&a->lock);
    void *p = b->ptr;
    free(b);
    if (a->host_memory) UNPOISON(p, sz);
    return p;
  }
  /* A miss. Keep what is reserved (in use + cached) within a quarter above the highest use
   * so far: a program that changes shapes (training at one batch, then evaluating at
   * another) would otherwise keep both sets of blocks, and its resident memory would be
   * their sum. A steady loop asks for the same sizes every step and never gets here. */
  size_t need = a->st.in_use + sz, high = need > a->st.peak ? need : a->st.peak;
  rt_block *victims = NULL;
  while (a->lru_old && need + a->st.cached > high + high / 4) {
    rt_block *old = a->lru_old;
    unlink_block(a, old);
    old->bnext = victims, victims = old;
  }
  pthread_mutex_unlock(&a->lock);
  release_list(a, victims);
  void *p = fault_hit() ? NULL : a->sys_alloc(sz);
  if (!p && rt_lru_trim(a) > 0) p = fault_hit() ? NULL : a->sys_alloc(sz);
  if (!p)
    return cg_fail_null(CG_ERR_NOMEM, "out of memory: %s could not allocate %zu bytes (%.1f MiB)", a->name,
                        size, (double)size / (1 << 20));
  CG_ASSERT((uintptr_t)p % RT_ALLOC_ALIGN == 0, "%s returned a block not aligned to %d", a->name, RT_ALLOC_ALIGN);
  pthread_mutex_lock(&a->lock);
  a->st.sys_allocs++;
  a->st.in_use += sz;
  if (a->st.in_use > a->st.peak) a->st.peak = a->st.in_use;
  pthread_mutex_unlock(&a->lock);
  return p;
}

void rt_lru_free(rt_allocator *a, void *ptr, size_t size) {
  if (!ptr) return;
  size_t sz = size ? (size + RT_ALLOC_ALIGN - 1) / RT_ALLOC_ALIGN * RT_ALLOC_ALIGN : RT_ALLOC_ALIGN;
  rt_block *b = fault_hit() ? NULL : malloc(sizeof *b); /* no node: give the block straight back */
  pthread_mutex_lock(&a->lock);
  read_cap_locked(a);
  CG_ASSERT(a->st.in_use >= sz, "%s: freeing %zu bytes but only %zu are in use", a->name, sz, a->st.in_use);
  a->st.in_use -= sz;
  rt_block *victims = NULL;
  int cached = 0;
  if (b && sz <= a->cap) {
    b->ptr = ptr, b->size = sz;
    if (a->host_memory) POISON(ptr, sz); /* before another thread can take it */
    link_block(a, b);
    victims = evict_locked(a);
    cached = 1;
  }
  pthread_mutex_unlock(&a->lock);
  if (!cached) {
    a->sys_free(ptr, sz);
    free(b);
  }
  release_list(a, victims);
}

size_t rt_lru_trim(rt_allocator *a) {
  pthread_mutex_lock(&a->lock);
  size_t bytes = a->st.cached;
  rt_block *all = NULL;
  while (a->lru_old) {
    rt_block *b = a->lru_old;
    unlink_block(a, b);
    b->bnext = all, all = b;
  }
  pthread_mutex_unlock(&a->lock);
  release_list(a, all);
  return bytes;
}

void rt_lru_set_cap(rt_allocator *a, size_t bytes) {
  pthread_mutex_lock(&a->lock);
  a->cap = bytes;
  a->cap_set = 1;
  rt_block *victims = evict_locked(a);
  pthread_mutex_unlock(&a->lock);
  release_list(a, victims);
}

rt_alloc_stats rt_lru_stats(rt_allocator *a) {
  pthread_mutex_lock(&a->lock);
  rt_alloc_stats s = a->st;
  pthread_mutex_unlock(&a->lock);
  return s;
}

void rt_lru_reset_peak(rt_allocator *a) {
  pthread_mutex_lock(&a->lock);
  a->st.peak = a->st.in_use;
  pthread_mutex_unlock(&a->lock);
}

size_t rt_alloc_trim(void) {
  size_t bytes = 0;
  int n = 0;
  while (rt_device_at(n)) n++;
  /* instances (listed last) first: an INTERP instance's blocks go back to the CPU's cache */
  for (int i = n - 1; i >= 0; i--)
    if (rt_device_at(i)->allocator) bytes += rt_lru_trim(rt_device_at(i)->allocator);
  return bytes;
}
