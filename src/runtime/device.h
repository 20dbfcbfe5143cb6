/* Devices (ARCHITECTURE §7): a device is a small table of functions — allocate, free, copy
 * in, copy out, compile (+load, cached), launch, synchronize — looked up by name.
 *
 *   rt_device *cpu = rt_get_device("CPU");
 *   float *x = cpu->alloc(n * 4);                       // LRU-cached, 64-byte aligned
 *   cpu->copyin(x, host, n * 4);
 *   rt_program *p = cpu->compile("E_42", source);       // memory cache → disk cache → cc
 *   cpu->launch(p, (void *[]){x}, vars, global_size);   // split across the thread pool
 *   cpu->synchronize();
 *   cpu->program_free(p);  cpu->free(x, n * 4);
 *
 * How to add a backend (e.g. CUDA):
 *   1. Write src/runtime/<name>.c defining `rt_device rt_<name>_device` with every
 *      function below (synchronize may do nothing when launch is synchronous). Keep all
 *      driver state in that file; load vendor libraries with dlopen so cgrad builds and
 *      runs without them, and report their absence from `open` (not at load time).
 *   2. Give it an rt_allocator (alloc.h) over the driver's raw alloc/free, so freed
 *      buffers are reused by size and rt_alloc_trim() reaches it.
 *   3. For compile, key programs with rt_hash128 over (name, source, compiler identity,
 *      flags) and use the disk cache (disk_cache.h) for the compiled artifact; count into
 *      rt_stats_mut() so DEBUG output covers every backend.
 *   4. Add one line to the table in device.c, and a test under tests/runtime/.
 */
#ifndef CG_RUNTIME_DEVICE_H
#define CG_RUNTIME_DEVICE_H
#include "cgrad.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rt_device rt_device;
typedef struct rt_allocator rt_allocator;

/* A compiled, loaded kernel. Owned by the device's program cache: compile() of the same
 * source returns the same program with one more reference; program_free() drops one and
 * unloads the program when none is left. */
typedef struct rt_program {
  rt_device *dev;       /* the device that compiled it */
  char *name;           /* the entry point's name */
  void *fn;             /* the entry: CPU: an rt_cpu_kernel_fn; CUDA: a CUfunction */
  void *handle;         /* the loaded module: CPU: a dlopen handle; CUDA: a CUmodule */
  uint64_t key[2];      /* the cache key (hash of source, compiler, flags, ...) */
  int refs;             /* references held by callers of compile() */
  struct rt_program *next; /* program-cache chain */
} rt_program;

/* The CPU kernel ABI, a fixed contract with the C renderer: every compiled C source
 * defines
 *     void <name>(void **bufs, const int64_t *vars, int64_t lo, int64_t hi);
 * and computes the slice [lo, hi) of its outermost parallel dimension [0, global_size).
 * launch() calls it once per chunk, from several threads at once. */
typedef void (*rt_cpu_kernel_fn)(void **bufs, const int64_t *vars, int64_t lo, int64_t hi);
/* Run fn over [0, global_size) on CPU instance `index`'s thread pool, in the chunks every
 * CPU-ABI device uses (cpu_launch.c: guided, claimed by whichever thread is free). name:
 * the kernel's, for CG_POOL_TRACE's lines. */
void rt_cpu_run_kernel(int index, const char *name, rt_cpu_kernel_fn fn, void **bufs, const int64_t *vars, int64_t global_size);
/* The chunks of [0, n) for t threads into at[0..count] (chunk c runs [at[c], at[c + 1]);
 * at[0] = 0, at[count] = n, sizes never grow), at most max - 1 of them; returns count. */
int rt_cpu_chunks(int64_t n, int t, int64_t *at, int max);
/* The most chunks rt_cpu_chunks makes for t threads (at needs one more entry). */
int rt_cpu_max_chunks(int t);

struct rt_device {
  const char *name; /* "CPU", "CUDA", ... */
  const char *renderer; /* which renderer makes its programs (renderer/render.h): "c", "interp" */
  /* Optional: the renderer while rt_tiering() is on (the CPU device: "x86+c", machine code
   * at once and the C source compiled in the background; runtime/x86.c) */
  const char *tier_renderer;
  /* Optional (NULL: always there): check that the device can be used (driver present);
   * called by rt_get_device on every lookup, so it should cache its answer. */
  cg_status (*open)(void);
  rt_allocator *allocator; /* the LRU cache behind alloc/free */
  /* size bytes of device memory, 64-byte aligned; NULL + CG_ERR_NOMEM on failure. */
  void *(*alloc)(size_t size);
  /* Return a buffer from alloc with the size it was allocated with (NULL: no-op). */
  void (*free)(void *ptr, size_t size);
  /* Host → device and device → host copies of size bytes. */
  cg_status (*copyin)(void *dst_dev, const void *src_host, size_t size);
  cg_status (*copyout)(void *dst_host, const void *src_dev, size_t size);
  /* Compile and load the entry point `name` of `source`. NULL + CG_ERR_RUNTIME with the
   * compiler's first error lines on failure. */
  rt_program *(*compile)(const char *name, const char *source);
  /* Optional: compile n programs at once (on several cores, in few compiler runs);
   * out[i] as compile(names[i], sources[i]) would give. CG_OK, or the first failure's
   * status with out[i] NULL for those that failed. */
  cg_status (*compile_many)(const char *const *names, const char *const *sources, int n, rt_program **out);
  void (*program_free)(rt_program *prog);
  /* Run prog over [0, global_size) of its outermost parallel dimension. */
  cg_status (*launch)(rt_program *prog, void **bufs, const int64_t *vars, int64_t global_size);
  /* Optional: launch on instance self (its own workers: an instance's launch calls this
   * with itself); without it, instances launch as the base does. */
  cg_status (*launch_on)(rt_device *self, rt_program *prog, void **bufs, const int64_t *vars, int64_t global_size);
  /* Wait until every launch issued so far has finished. */
  cg_status (*synchronize)(void);
  /* Instances (device.c): "CPU:1" is a copy of "CPU" (its base) with its own name,
   * allocator and (CPU) thread pool; the base is instance 0 and answers to "CPU" and
   * "CPU:0". */
  rt_device *base; /* NULL for a table entry (instance 0) */
  int index;       /* the instance number */
};

/* The device called name (case-insensitive: "CPU", or an instance "CPU:1"; "CPU:0" is
 * "CPU"), or NULL + CG_ERR_INVALID naming the devices there are (or the device's own
 * message when it cannot be opened). An instance is made on its first lookup and lives
 * until exit; RT_MAX_INSTANCES bounds the instances of all kinds together. */
#define RT_MAX_INSTANCES 16
rt_device *rt_get_device(const char *name);
/* True once any instance beyond a table entry was made: only then do graphs need their
 * device worked out (graph_device, buffer.h); one-device programs pay nothing. */
bool rt_multi_device(void);
/* A graph copies between two devices (tensor/device.c, cg_to): from then on graphs need
 * their device worked out even without instances (CPU and INTERP). */
void rt_note_copy(void);
/* The device tensors are made on: this thread's (rt_set_thread_device), else the DEVICE
 * knob (default "CPU"). */
rt_device *rt_default_device(void);
/* Set this thread's default device (NULL: the DEVICE knob's again); returns the previous. */
rt_device *rt_set_thread_device(rt_device *d);
/* The i-th entry of the device table, then the instances made so far; NULL past the end
 * (for trimming, listing). */
rt_device *rt_device_at(int i);

/* Counters over all devices, for DEBUG printing. */
typedef struct rt_stats {
  int64_t compiled;       /* compiler runs that produced a program */
  int64_t compile_errors; /* compiler runs that failed */
  int64_t disk_hits;      /* programs loaded from the on-disk cache */
  int64_t disk_rejects;   /* corrupt on-disk entries detected, deleted and rebuilt */
  int64_t mem_hits;       /* compile() answered by an already loaded program */
  int64_t launches;       /* kernel launches */
  double compile_seconds; /* wall time spent in the compiler */
} rt_stats;

const rt_stats *rt_get_stats(void);
/* The same counters, for a backend to add to (compile paths; launches are atomic adds). */
rt_stats *rt_stats_mut(void);
/* Serialize non-atomic updates of rt_stats (the compile counters). */
void rt_stats_lock(void);
void rt_stats_unlock(void);

extern rt_device rt_cpu_device;
extern rt_device rt_interp_device;
extern rt_device rt_x86_device; /* x86.c: machine code from renderer/render_x86.c */
/* This thread's compiles count in no rt_stats counter (tiering's background compiler: a
 * tiered kernel counts as compiled when it is made, so the counters do not depend on when
 * the compiler finishes). */
void rt_cpu_stats_quiet(bool on);
/* Wait until the background compiles of tiering are done. */
void rt_x86_tier_wait(void);
/* Tiering (x86.c), on by default where the x86 backend runs (AVX-512): the CPU device's new
 * kernels run as machine code at once while the C compiler builds them in the background;
 * the two give the same bits (renderer/contract.c), so when the swap happens changes no
 * result. Knob CG_TIER: 0 off (every kernel waits for the compiler), 1 on (the default; on
 * the X86 device only when set). */
bool rt_tiering(void);
/* A tiered program still waiting for its compiled version: wait for it (x86.c: a graph met
 * again runs gcc's code). Any other program: nothing. */
void rt_program_settle(rt_program *p);
/* The renderer dev's new kernels take now: its tier_renderer while tiering, else its own. */
const char *rt_device_renderer(const rt_device *dev);

#endif
