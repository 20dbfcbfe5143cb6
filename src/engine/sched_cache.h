/* The schedule cache (ARCHITECTURE §8): a realize whose graph differs from an earlier one
 * only in which buffers and vars it reads (the next training step) skips the scheduler,
 * codegen and the memory planner. It binds the new buffers into the kernels the earlier
 * realize scheduled, takes fresh intermediates from the same plan and launches the same
 * programs.
 *
 * Key: the outputs' graph rebuilt with every BUFFER replaced by a buffer slot
 * (DEFINE_GLOBAL [slot, count] of its dtype) and every kernel variable by a var slot
 * (DEFINE_VAR [min, max, slot] of its name and dtype), slots numbered in the order a
 * depth-first walk meets them, so two reads of one buffer are one slot and reads of two
 * buffers are two (aliasing is in the key); an assign already realized is its target
 * buffer (as realize sees it) and a custom-gradient node its value. Hash-consing makes the
 * rebuilt outputs the key: equal structure is equal pointers. Beside them: each buffer
 * slot's device, the default device and whether several devices are in use (where new
 * buffers go). Constants stay in it by value; var values and buffer contents do not.
 *
 * Value: the kernels (ASTs over slots, retained), each kernel slot bound to a key buffer
 * slot or to a fresh intermediate (dtype, count, device, offset in the arena of the
 * memory plan), each var slot to a key var slot, which buffers are kept (outputs and
 * assign targets), and each kernel's device and program with the knob generation they
 * were made under (a program made under other knobs is fetched again: the schedule does
 * not depend on NOOPT, BEAM or DEBUG, the programs may).
 *
 * Bounded: CG_SCHED_CACHE_ENTRIES (default 256) entries and CG_SCHED_CACHE_MB (default
 * 64) megabytes of estimated size, least recently used out first. CG_SCHED_CACHE=0 turns
 * it off. Thread-safe: an entry in use is freed when its last user puts it back. */
#ifndef CG_ENGINE_SCHED_CACHE_H
#define CG_ENGINE_SCHED_CACHE_H
#include "runtime/device.h"
#include "programs.h"
#include "schedule/schedule.h"

/* A realize's intermediates in one block of one device (the memory plan). */
typedef struct {
  rt_device *dev;
  void *mem;
  size_t bytes;
  uop **bufs; /* borrowed into it */
  int n;
} sched_arena;

typedef struct {
  uop **norm;           /* the outputs over slots (owned by the current pool) */
  int n;
  uop **bufs;           /* the BUFFER behind each buffer slot */
  rt_device **devs;     /* and its device */
  int nbufs, capbufs;
  uop **vars;           /* the tensor-level var behind each var slot */
  int nvars, capvars;
  uop **assigns;        /* pending ASSIGNs met: marked done once the realize ran */
  int nassigns, capassigns;
  rt_device *defdev;
  bool multi;
  size_t nodes;         /* distinct nodes of the graph (the entry's size) */
  uint64_t hash;
} sched_key;

typedef struct sched_entry sched_entry;

bool sched_cache_on(void);
/* The key of outs; done(u) says whether an ASSIGN has been realized. CG_ERR_NOMEM when
 * out of memory (in the caller's checked pool). */
cg_status sched_key_build(uop *const *outs, int n, bool (*done)(uop *), sched_key *k);
void sched_key_free(sched_key *k);

/* The entry for k (held until sched_cache_put), or NULL. Counts a hit or a miss. */
sched_entry *sched_cache_get(const sched_key *k);
void sched_cache_put(sched_entry *e);

/* Number of kernels (the length of the devs and progs arrays sched_entry_bind fills). */
int sched_entry_kernels(const sched_entry *e);
/* A hit's schedule over k's buffers and vars (fresh intermediates made in the current
 * pool, those of the plan borrowed into a new arena a), each kernel's device and program
 * (its program-cache entry, with a reference for the caller; NULL for a kernel with nothing
 * to run) and the knob generation of the programs; keep (n_keep of them, malloc'd): the buffers that
 * outlive the realize. On failure the partial results are for the caller to free as it
 * frees a built schedule's (sched_free, the arena, keep). */
cg_status sched_entry_bind(sched_entry *e, const sched_key *k, schedule *s, rt_device **devs, prog_entry **progs, unsigned long *gen, uop ***keep, int *nkeep,
                           sched_arena *a);
/* Programs fetched again under generation gen (the entry keeps its own references). */
void sched_entry_set_progs(sched_entry *e, prog_entry *const *progs, unsigned long gen);

/* Remember the schedule a miss built for k: s over k's buffers plus fresh intermediates,
 * the kernels' devices and programs (made under gen), the buffers kept (outputs and
 * assign targets) and the arena the plan borrowed intermediates into. Nothing is
 * remembered (and no error left) when something cannot be expressed over k's slots or
 * memory is short: the cache is only ever a shortcut. */
void sched_cache_add(const sched_key *k, const schedule *s, rt_device *const *devs, prog_entry *const *progs, unsigned long gen, uop *const *keep, int nkeep,
                     const sched_arena *a);

typedef struct {
  uint64_t hits, misses, evictions;
  size_t entries, bytes;
} sched_cache_stats;
sched_cache_stats sched_cache_get_stats(void);
/* Drop every entry not in use (tests). */
void sched_cache_clear(void);

#endif
