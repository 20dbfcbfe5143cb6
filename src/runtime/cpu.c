/* The CPU device: host memory through the LRU allocator, kernels compiled by the system
 * C compiler (cpu_compile.c), cached in memory and on disk (disk_cache.c), launched over
 * the thread pool (threadpool.c).
 *
 *   compile(name, src) ─ key ─► loaded already? ──yes──► same program, one more ref
 *                                 │ no
 *                                 ▼
 *                      disk entry checks out? ──yes──► dlopen it
 *                                 │ no (missing, or corrupt: deleted)
 *                                 ▼
 *                      cc → seal + rename into the cache → dlopen
 */
#define _GNU_SOURCE
#include "core/fault.h"
#include "alloc.h"
#include "cpu_compile.h"
#include "device.h"
#include "disk_cache.h"
#include "threadpool.h"
#include "core/config.h"
#include "core/error.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

/* ---- memory ----------------------------------------------------------------------- */

#if defined(__SANITIZE_ADDRESS__)
#define RAW_MAP_MIN SIZE_MAX /* every block from malloc, where ASan sees overruns */
#else
#define RAW_MAP_MIN ((size_t)4 << 20) /* blocks from this size up are mapped on their own */
#endif
#define HUGE_PAGE ((size_t)2 << 20)
static size_t page_round(size_t n) { return (n + 4095) & ~(size_t)4095; }

static void *raw_alloc(size_t size) {
  /* More than RAM + swap can never be backed; refuse it here rather than let malloc (or a
   * sanitizer's allocator) decide. */
  static _Atomic size_t limit_cache; /* threads allocate at once: the same value, stored atomically */
  size_t limit = atomic_load_explicit(&limit_cache, memory_order_relaxed);
  if (!limit) {
    struct sysinfo si;
    limit = sysinfo(&si) ? SIZE_MAX : (size_t)(si.totalram + si.totalswap) * si.mem_unit;
    atomic_store_explicit(&limit_cache, limit, memory_order_relaxed);
  }
  if (size > limit) return NULL;
  if (size >= RAW_MAP_MIN) {
    /* Large blocks: mapped on their own, so freeing one returns its memory to the system
     * at once (malloc keeps freed blocks under 32 MiB in its heap), starting on a 2 MiB
     * boundary and asked for as transparent huge pages: a new activation is touched with
     * one fault per 2 MiB instead of per 4 KiB, and kernels streaming it miss the TLB less. */
    size_t len = page_round(size);
    char *m = mmap(NULL, len + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return NULL;
    char *p = (char *)(((uintptr_t)m + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    if (p > m) munmap(m, (size_t)(p - m));
    if (p + len < m + len + HUGE_PAGE) munmap(p + len, (size_t)(m + len + HUGE_PAGE - (p + len)));
#ifdef MADV_HUGEPAGE
    madvise(p, len, MADV_HUGEPAGE); /* advice only: without it the block is still good */
#endif
    return p;
  }
  void *p = NULL;
  return posix_memalign(&p, RT_ALLOC_ALIGN, size) ? NULL : p;
}
static void raw_free(void *ptr, size_t size) {
  if (size >= RAW_MAP_MIN) munmap(ptr, page_round(size));
  else free(ptr);
}

static rt_allocator cpu_allocator = RT_ALLOCATOR_INIT("CPU", raw_alloc, raw_free, 1);

static void *cpu_alloc(size_t size) { return rt_lru_alloc(&cpu_allocator, size); }
static void cpu_free(void *ptr, size_t size) { rt_lru_free(&cpu_allocator, ptr, size); }

static cg_status cpu_copy(void *dst, const void *src, size_t size) {
  if (size && (!dst || !src)) return cg_fail(CG_ERR_INVALID, "CPU copy: NULL buffer for %zu bytes", size);
  if (size) memcpy(dst, src, size);
  return CG_OK;
}

/* ---- the program cache ------------------------------------------------------------ */

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static rt_program **table;
static size_t nbuckets, nprograms;

static rt_program **bucket(const uint64_t key[2]) { return &table[key[0] & (nbuckets - 1)]; }

static rt_program *lookup_locked(const uint64_t key[2]) {
  if (!table) return NULL;
  for (rt_program *p = *bucket(key); p; p = p->next)
    if (p->key[0] == key[0] && p->key[1] == key[1]) return p;
  return NULL;
}

/* 0, or -1 when the table cannot grow (OOM is reported by the caller). */
static int insert_locked(rt_program *p) {
  if (nprograms + 1 > 2 * nbuckets) {
    size_t nb = nbuckets ? 2 * nbuckets : 64;
    rt_program **nt = fault_hit() ? NULL : calloc(nb, sizeof *nt);
    if (!nt) return -1;
    for (size_t i = 0; i < nbuckets; i++)
      for (rt_program *q = table[i], *next; q; q = next) {
        next = q->next;
        q->next = nt[q->key[0] & (nb - 1)];
        nt[q->key[0] & (nb - 1)] = q;
      }
    free(table);
    table = nt, nbuckets = nb;
  }
  p->next = *bucket(p->key);
  *bucket(p->key) = p;
  nprograms++;
  return 0;
}

static void remove_locked(rt_program *p) {
  for (rt_program **pp = bucket(p->key); *pp; pp = &(*pp)->next)
    if (*pp == p) {
      *pp = p->next;
      nprograms--;
      return;
    }
}

static void unload(rt_program *p) {
  if (!p) return;
  if (p->handle) dlclose(p->handle);
  free(p->name);
  free(p);
}

/* ---- compile and load ------------------------------------------------------------- */

static double seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static _Thread_local bool quiet; /* tiering's background compiler: its kernels were counted when made (x86.c) */
void rt_cpu_stats_quiet(bool on) { quiet = on; }

static void count(int64_t *counter) { /* atomic: realize reads the counters on any thread */
  if (!quiet) __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

/* dlopen path and find the entry; a program with one reference, or NULL + message. */
/* A kernel's symbol in its shared object: its name and its key, so that kernels of one
 * name with different sources (E_32_2 is common) share a translation unit. */
static void symbol_of(const char *name, const uint64_t key[2], char *buf, size_t n) {
  snprintf(buf, n, "%s_%016llx", name, (unsigned long long)key[0]);
}

/* The source as compiled: its function renamed to its symbol. */
static char *wrap_source(const char *name, const char *source, const uint64_t key[2]) {
  char sym[300];
  symbol_of(name, key, sym, sizeof sym);
  size_t len = strlen(source) + 2 * strlen(name) + strlen(sym) + 32;
  char *w = cg_malloc(len);
  if (w) snprintf(w, len, "#define %s %s\n#line 1\n%s\n#undef %s\n", name, sym, source, name); /* #line: messages keep the source's line numbers */
  return w;
}

static rt_program *load(const char *path, const char *name, const uint64_t key[2]) {
  if (fault_hit()) return cg_fail_null(CG_ERR_NOMEM, "load '%s': out of memory (injected)", name);
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) return cg_fail_null(CG_ERR_RUNTIME, "load '%s': %s", name, dlerror());
  char sym[300];
  symbol_of(name, key, sym, sizeof sym);
  void *fn = dlsym(h, sym);
  if (!fn) {
    dlclose(h);
    return cg_fail_null(CG_ERR_RUNTIME, "load '%s': the compiled source defines no function '%s'", name, name);
  }
  rt_program *p = cg_calloc(1, sizeof *p);
  char *nm = cg_strdup(name);
  if (!p || !nm) {
    free(p), free(nm);
    dlclose(h);
    return NULL;
  }
  *p = (rt_program){.dev = &rt_cpu_device, .name = nm, .fn = fn, .handle = h, .key = {key[0], key[1]}, .refs = 1};
  return p;
}

static rt_program *build(const char *name, const char *source, const char *dir, const char *entry,
                         const uint64_t key[2]) {
  char tmpdir[4096];
  if (!dir) {
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s", t && *t ? t : "/tmp");
  }
  char *so = NULL, *wrapped = wrap_source(name, source, key);
  if (!wrapped) return NULL;
  double t0 = seconds();
  cg_status st = rt_cc_compile(name, wrapped, dir ? dir : tmpdir, &so);
  free(wrapped);
  rt_stats_lock();
  rt_stats_mut()->compile_seconds += seconds() - t0;
  count(st == CG_OK ? &rt_stats_mut()->compiled : &rt_stats_mut()->compile_errors);
  rt_stats_unlock();
  if (st != CG_OK) return NULL;
  rt_program *p;
  if (entry) {
    if (rt_cache_publish(so, entry, key) != CG_OK) {
      free(so);
      return NULL;
    }
    p = load(entry, name, key);
  } else {
    p = load(so, name, key);
    unlink(so);
  }
  free(so);
  return p;
}

static rt_program *load_or_build(const char *name, const char *source, const uint64_t key[2]) {
  char *dir = rt_cache_dir();
  char *entry = dir ? rt_cache_entry_path(dir, name, key, "so") : NULL;
  rt_program *p = NULL;
  if (entry) {
    int r = rt_cache_check(entry, key);
    if (r == RT_CACHE_OK) {
      p = load(entry, name, key);
      if (p) count(&rt_stats_mut()->disk_hits);
      else { /* a sound file that does not load (another libc?): rebuild it */
        unlink(entry);
        r = RT_CACHE_CORRUPT;
      }
    }
    if (r == RT_CACHE_CORRUPT || r == RT_CACHE_UNUSABLE) count(&rt_stats_mut()->disk_rejects);
    if (r == RT_CACHE_UNUSABLE) free(entry), free(dir), entry = dir = NULL; /* build in memory */
  }
  if (!p) p = build(name, source, dir, entry, key);
  free(entry);
  free(dir);
  return p;
}

/* Tiering (x86.c, rt_tiering): the tier renderer's "x86-64 ..." text is machine code plus
 * C source, which the X86 device loads (and compiles in the background); its programs are
 * launched and freed here as the CPU's own. */
static bool is_x86_text(const char *source) { return source && !strncmp(source, "x86-64 ", 7); }

static rt_program *cpu_compile(const char *name, const char *source) {
  if (is_x86_text(source)) return rt_x86_device.compile(name, source);
  if (!name || !*name || !source)
    return cg_fail_null(CG_ERR_INVALID, "CPU compile: expected a kernel name and source, got %s", !source ? "no source" : "no name");
  uint64_t key[2];
  rt_cc_key(name, source, key);
  pthread_mutex_lock(&cache_lock);
  rt_program *p = lookup_locked(key);
  if (p) p->refs++;
  pthread_mutex_unlock(&cache_lock);
  if (p) {
    count(&rt_stats_mut()->mem_hits);
    return p;
  }
  p = load_or_build(name, source, key);
  if (!p) return NULL;
  /* Another thread may have loaded the same program meanwhile: keep one. */
  pthread_mutex_lock(&cache_lock);
  rt_program *q = lookup_locked(key);
  int failed = 0;
  if (q) q->refs++;
  else failed = insert_locked(p);
  pthread_mutex_unlock(&cache_lock);
  if (q || failed) unload(p);
  if (failed) return cg_fail_null(CG_ERR_NOMEM, "out of memory: cannot grow the program cache");
  return q ? q : p;
}

/* ---- many at once: the cold start of a training step compiles ~70 kernels. Starting
 * the compiler is a good part of each compile (30-90 ms here), so the kernels that are in
 * neither cache are compiled as a few translation units, one per core, in parallel; each
 * kernel still gets its own disk-cache entry (a copy of its unit's shared object, sealed
 * with its own key), so later processes find it alone. */

typedef struct {
  const char *const *names;
  const char *const *sources;
  const uint64_t (*keys)[2];
  int *idx, n;            /* the kernels of this unit */
  char *so;               /* its shared object, when it compiled */
  cg_status st;
  char err[512];
} unit;

static void *compile_unit(void *arg) {
  unit *u = arg;
  size_t len = 1;
  char **wrapped = cg_calloc((size_t)u->n, sizeof *wrapped);
  bool ok = wrapped != NULL;
  for (int i = 0; ok && i < u->n; i++) {
    int k = u->idx[i];
    ok = (wrapped[i] = wrap_source(u->names[k], u->sources[k], u->keys[k])) != NULL;
    if (ok) len += strlen(wrapped[i]);
  }
  char *tu = ok ? cg_malloc(len) : NULL, *w = tu;
  for (int i = 0; tu && i < u->n; i++) {
    size_t l = strlen(wrapped[i]);
    memcpy(w, wrapped[i], l);
    w += l;
  }
  for (int i = 0; wrapped && i < u->n; i++) free(wrapped[i]);
  free(wrapped);
  if (!tu) {
    u->st = CG_ERR_NOMEM;
    return NULL;
  }
  *w = 0;
  char tmpdir[4096];
  const char *t = getenv("TMPDIR");
  snprintf(tmpdir, sizeof tmpdir, "%s", t && *t ? t : "/tmp");
  double t0 = seconds();
  u->st = rt_cc_compile(u->names[u->idx[0]], tu, tmpdir, &u->so);
  if (u->st != CG_OK) snprintf(u->err, sizeof u->err, "%s", cg_last_error());
  rt_stats_lock();
  rt_stats_mut()->compile_seconds += seconds() - t0;
  rt_stats_unlock();
  free(tu);
  return NULL;
}

/* Copy the file at from to a new temporary file beside to_dir's entries; its path or NULL. */
static char *copy_file(const char *from, const char *dir) {
  size_t dl = strlen(dir) + 32;
  char *path = cg_malloc(dl);
  if (!path) return NULL;
  snprintf(path, dl, "%s/tmp-XXXXXX", dir);
  int out = mkstemp(path);
  FILE *in = out >= 0 ? fopen(from, "rb") : NULL;
  bool ok = in != NULL;
  char buf[65536];
  size_t n;
  while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0) ok = write(out, buf, n) == (ssize_t)n;
  if (in) fclose(in);
  if (out >= 0) close(out);
  if (!ok) {
    if (out >= 0) unlink(path);
    free(path);
    return NULL;
  }
  return path;
}

static cg_status cpu_compile_many(const char *const *names, const char *const *sources, int n, rt_program **out) {
  for (int i = 0; i < n; i++)
    if (is_x86_text(sources[i])) return rt_x86_device.compile_many(names, sources, n, out); /* it takes plain C too */
  for (int i = 0; i < n; i++) out[i] = NULL; /* on every path, the first allocation's failure too */
  int *todo = cg_malloc(sizeof(int) * (size_t)(n ? n : 1)), ntodo = 0;
  uint64_t (*keys)[2] = todo ? cg_malloc(sizeof *keys * (size_t)(n ? n : 1)) : NULL;
  if (!todo || !keys) {
    free(todo), free(keys);
    return cg_fail(CG_ERR_NOMEM, "out of memory");
  }
  /* loaded already, or on disk: as compile() */
  char *dir = rt_cache_dir();
  for (int i = 0; i < n; i++) {
    out[i] = NULL;
    rt_cc_key(names[i], sources[i], keys[i]);
    pthread_mutex_lock(&cache_lock);
    rt_program *p = lookup_locked(keys[i]);
    if (p) p->refs++;
    pthread_mutex_unlock(&cache_lock);
    if (p) {
      count(&rt_stats_mut()->mem_hits);
      out[i] = p;
      continue;
    }
    char *entry = dir ? rt_cache_entry_path(dir, names[i], keys[i], "so") : NULL;
    int r = entry ? rt_cache_check(entry, keys[i]) : RT_CACHE_MISSING;
    free(entry);
    if (r == RT_CACHE_OK || n == 1) out[i] = cpu_compile(names[i], sources[i]);
    else todo[ntodo++] = i;
  }
  /* the rest in one unit per core (symbols carry their key, so names may repeat); compile
   * time grows with source size and a few kernels are 10x the rest, so the largest go
   * first, each into the unit with the least source so far (round robin left one unit
   * with 1.3x the other's source in the CNN step) */
  int nunits = ntodo < rt_pool_size() ? ntodo : rt_pool_size();
  unit *units = cg_calloc((size_t)(nunits ? nunits : 1), sizeof *units);
  int *slots = units ? cg_malloc(sizeof(int) * (size_t)(ntodo ? ntodo : 1) * (size_t)(nunits ? nunits : 1)) : NULL;
  size_t *lens = slots ? cg_calloc((size_t)(ntodo ? ntodo : 1), sizeof *lens) : NULL;
  size_t *unit_src = lens ? cg_calloc((size_t)(nunits ? nunits : 1), sizeof *unit_src) : NULL;
  pthread_t *th = unit_src ? cg_calloc((size_t)(nunits ? nunits : 1), sizeof *th) : NULL;
  cg_status st = CG_OK;
  if (!units || !slots || !lens || !unit_src || !th) st = cg_fail(CG_ERR_NOMEM, "out of memory");
  for (int u = 0; u < nunits && st == CG_OK; u++) units[u] = (unit){names, sources, (const uint64_t(*)[2])keys, slots + (size_t)u * (size_t)ntodo, 0, NULL, CG_OK, ""};
  for (int k = 0; k < ntodo && st == CG_OK; k++) lens[k] = strlen(sources[todo[k]]);
  for (int k = 1; k < ntodo && st == CG_OK; k++) /* by size, largest first; ties keep schedule order */
    for (int j = k; j > 0 && lens[j] > lens[j - 1]; j--) {
      size_t l = lens[j];
      lens[j] = lens[j - 1], lens[j - 1] = l;
      int t = todo[j];
      todo[j] = todo[j - 1], todo[j - 1] = t;
    }
  for (int k = 0; k < ntodo && st == CG_OK; k++) {
    int u = 0;
    for (int v = 1; v < nunits; v++)
      if (unit_src[v] < unit_src[u]) u = v;
    bool dup = false; /* the same kernel twice (same key): loaded from the first below */
    for (int v = 0; v < nunits && !dup; v++)
      for (int j = 0; j < units[v].n && !dup; j++) dup = !memcmp(keys[units[v].idx[j]], keys[todo[k]], sizeof keys[0]);
    if (dup) continue;
    units[u].idx[units[u].n++] = todo[k];
    unit_src[u] += lens[k];
  }
  free(lens), free(unit_src);
  bool *started = st == CG_OK ? cg_calloc((size_t)(nunits ? nunits : 1), sizeof(bool)) : NULL;
  if (!started && st == CG_OK) st = cg_fail(CG_ERR_NOMEM, "out of memory");
  for (int u = 0; u < nunits && st == CG_OK; u++)
    if (units[u].n && !(started[u] = pthread_create(&th[u], NULL, compile_unit, &units[u]) == 0)) compile_unit(&units[u]);
  for (int u = 0; u < nunits && st == CG_OK; u++)
    if (started[u]) pthread_join(th[u], NULL);
  free(started);
  /* each kernel from its unit's object: sealed into the cache under its own key */
  for (int u = 0; u < nunits && st == CG_OK; u++) {
    for (int j = 0; j < units[u].n; j++) {
      int i = units[u].idx[j];
      if (units[u].st != CG_OK) break; /* compiled alone below, to name the culprit */
      rt_program *p = NULL;
      char *entry = dir ? rt_cache_entry_path(dir, names[i], keys[i], "so") : NULL;
      char *tmp = entry ? copy_file(units[u].so, dir) : NULL;
      if (tmp && rt_cache_publish(tmp, entry, keys[i]) == CG_OK) p = load(entry, names[i], keys[i]);
      else if (!entry) p = load(units[u].so, names[i], keys[i]);
      free(tmp), free(entry);
      if (!p) continue;
      count(&rt_stats_mut()->compiled);
      pthread_mutex_lock(&cache_lock);
      rt_program *q = lookup_locked(keys[i]);
      int failed = 0;
      if (q) q->refs++;
      else failed = insert_locked(p);
      pthread_mutex_unlock(&cache_lock);
      if (q || failed) unload(p);
      out[i] = failed ? NULL : q ? q : p;
    }
    if (units[u].so) unlink(units[u].so);
    free(units[u].so);
  }
  /* whatever is left (a unit that failed, a repeated kernel): one at a time */
  for (int k = 0; k < ntodo; k++)
    if (!out[todo[k]] && !(out[todo[k]] = cpu_compile(names[todo[k]], sources[todo[k]])) && st == CG_OK) st = cg_last_status();
  for (int i = 0; i < n; i++)
    if (!out[i] && st == CG_OK) st = cg_last_status() != CG_OK ? cg_last_status() : CG_ERR_RUNTIME;
  free(units), free(slots), free(th), free(todo), free(keys), free(dir);
  return st;
}

static void cpu_program_free(rt_program *p) {
  if (!p) return;
  if (p->dev == &rt_x86_device) {
    rt_x86_device.program_free(p);
    return;
  }
  pthread_mutex_lock(&cache_lock);
  CG_ASSERT(p->refs > 0, "program '%s' freed more often than compiled", p->name);
  int last = --p->refs == 0;
  if (last) remove_locked(p);
  pthread_mutex_unlock(&cache_lock);
  if (last) unload(p);
}

/* ---- launch (the chunks and the pool: cpu_launch.c) -------------------------------- */

/* On instance self's own pool, so two instances' kernels run at once (threadpool.h). */
static cg_status cpu_launch_on(rt_device *self, rt_program *prog, void **bufs, const int64_t *vars, int64_t global_size) {
  if (!prog || (prog->dev != &rt_cpu_device && prog->dev != &rt_x86_device)) return cg_fail(CG_ERR_INVALID, "CPU launch: expected a CPU program");
  if (global_size < 0) return cg_fail(CG_ERR_INVALID, "CPU launch '%s': global size %lld < 0", prog->name, (long long)global_size);
  __atomic_fetch_add(&rt_stats_mut()->launches, 1, __ATOMIC_RELAXED);
  rt_cpu_kernel_fn fn = (rt_cpu_kernel_fn)__atomic_load_n(&prog->fn, __ATOMIC_ACQUIRE); /* once: tiering swaps it (x86.c) */
  rt_cpu_run_kernel(self->index, prog->name, fn, bufs, vars, global_size);
  return CG_OK;
}

static cg_status cpu_launch(rt_program *prog, void **bufs, const int64_t *vars, int64_t global_size) {
  return cpu_launch_on(&rt_cpu_device, prog, bufs, vars, global_size);
}

static cg_status cpu_synchronize(void) { return CG_OK; } /* launches are synchronous */

rt_device rt_cpu_device = {
    .name = "CPU",
    .renderer = "c",
    .tier_renderer = "x86+c",
    .allocator = &cpu_allocator,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .copyin = cpu_copy,
    .copyout = cpu_copy,
    .compile = cpu_compile,
    .compile_many = cpu_compile_many,
    .program_free = cpu_program_free,
    .launch = cpu_launch,
    .launch_on = cpu_launch_on,
    .synchronize = cpu_synchronize,
};
