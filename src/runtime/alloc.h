/* The LRU caching allocator (ARCHITECTURE §7), one per device. Freed blocks are kept in
 * per-size free lists and handed out again for the same (64-byte rounded) size before the
 * device is asked; when the cache holds more than its cap (knob CG_ALLOC_CACHE_MB, default
 * 1024), the least recently freed blocks go back to the device; so do they when a new
 * block would make in use + cached exceed the highest use so far by a quarter (a change of
 * shapes does not keep the old shapes' blocks resident). If the device cannot
 * allocate, the whole cache is released and the allocation tried once more. Thread safe.
 *
 * A backend defines its allocator statically over its raw functions:
 *     static rt_allocator cuda_alloc = RT_ALLOCATOR_INIT("CUDA", cuda_raw_alloc, cuda_raw_free, 0);
 */
#ifndef CG_RUNTIME_ALLOC_H
#define CG_RUNTIME_ALLOC_H
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define RT_ALLOC_ALIGN 64        /* every block is aligned (and sized) to this: AVX-512 */
#define RT_ALLOC_BUCKETS 256     /* size-hash buckets of the free lists */

typedef struct rt_block rt_block; /* a cached free block (kept off the device memory) */

typedef struct rt_alloc_stats {
  size_t in_use;     /* bytes handed out and not yet freed */
  size_t cached;     /* bytes held in the free lists */
  size_t peak;       /* highest in_use so far */
  int64_t sys_allocs; /* blocks obtained from the device */
  int64_t reuses;    /* allocations answered from the cache */
} rt_alloc_stats;

typedef struct rt_allocator {
  const char *name;                     /* the device's name, for messages */
  void *(*sys_alloc)(size_t size);      /* raw device allocation, NULL on failure */
  void (*sys_free)(void *ptr, size_t size);
  int host_memory;                      /* blocks are host-addressable (poisoned under ASan while cached) */
  pthread_mutex_t lock;
  size_t cap;                           /* cache limit in bytes; read from the knob on first use */
  int cap_set;
  rt_block *buckets[RT_ALLOC_BUCKETS];  /* free lists by size hash, most recent first */
  rt_block *lru_new, *lru_old;          /* all cached blocks, most recently freed first */
  rt_alloc_stats st;
} rt_allocator;

#define RT_ALLOCATOR_INIT(NAME, ALLOC, FREE, HOST_MEMORY)                                   \
  { .name = (NAME), .sys_alloc = (ALLOC), .sys_free = (FREE), .host_memory = (HOST_MEMORY), \
    .lock = PTHREAD_MUTEX_INITIALIZER }

/* A block of at least size bytes, 64-byte aligned; NULL + CG_ERR_NOMEM naming the size. */
void *rt_lru_alloc(rt_allocator *a, size_t size);
/* Give back a block from rt_lru_alloc with the size asked for (NULL: no-op). */
void rt_lru_free(rt_allocator *a, void *ptr, size_t size);
/* Release every cached block to the device; returns the bytes released. */
size_t rt_lru_trim(rt_allocator *a);
/* Set the cache limit in bytes (overrides CG_ALLOC_CACHE_MB), evicting down to it. */
void rt_lru_set_cap(rt_allocator *a, size_t bytes);
/* A snapshot of the counters. */
rt_alloc_stats rt_lru_stats(rt_allocator *a);
/* Restart the peak from the bytes in use now (the start of a measurement; the cache's
 * bound follows the peak, so it may evict sooner afterwards). */
void rt_lru_reset_peak(rt_allocator *a);

/* Release the cached blocks of every device; returns the bytes released. */
size_t rt_alloc_trim(void);

#endif
