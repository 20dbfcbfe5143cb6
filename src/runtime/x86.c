/* The X86 device (DEVICE=X86): the CPU device's memory and thread pool, kernels from the
 * machine-code renderer (renderer/render_x86.c) mapped straight into executable memory —
 * no compiler, no disk cache, microseconds per kernel. A kernel the renderer refused
 * arrives as C source and is compiled by the CPU device as usual.
 *
 *   compile(name, "x86-64 N bytes\n<hex>")  ─► mmap RW, copy, mprotect RX (W^X) ─► program
 *   compile(name, "x86-64 refused: ...\n#c\n<C>") ─► rt_cpu_device.compile
 *
 * As every device's compile, the same source gives the same program (one more reference):
 * the JIT compares launches by program.
 *
 * Tiering (rt_tiering(): the CPU device's default where AVX-512 is; on this device with
 * CG_TIER=1): the renderer also sends the kernel's C source. A kernel whose shared object
 * is in the disk cache loads it (the steady-state code from the start); otherwise it runs
 * as machine code at once while a background thread compiles the C source (niced, several
 * kernels per compiler run), and the compiled function replaces the program's entry point
 * when it is ready; launches read the entry once, so a launch runs one version on every
 * thread. The two versions give the same bits (the same fused multiply-adds,
 * renderer/contract.c; the same polynomials, renderer/vmath.c), so when the swap happens
 * changes no result (tests/tools/test_train_bits.c). rt_x86_tier_wait() waits for the
 * background compiles; the process does at exit, so no compiler is left running on
 * temporary files and the disk cache holds every kernel for the next run. The CPU device
 * hands sources in this form here (cpu.c). */
#define _GNU_SOURCE
#include "device.h"
#include "cpu_compile.h"
#include "disk_cache.h"
#include "hash128.h"
#include "threadpool.h"
#include "cpu_features.h"
#include "core/config.h"
#include "core/error.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

typedef struct xprog {
  rt_program p;          /* first: an rt_program * is an xprog * when p.dev is X86 */
  void *map;
  size_t maplen;
  rt_program *gcc;       /* the compiled C version, once tiering swapped it in */
  bool pending;          /* a background compile holds this program */
  bool queued;           /* ... and has not started it: in the queue (tq_head) */
  bool orphan;           /* freed while pending: the worker frees it */
  struct xprog *qnext;
  struct xprog *cnext;   /* the loaded list */
  char *csrc;            /* C source waiting for the background compiler */
} xprog;

static void *x86_alloc(size_t size) { return rt_cpu_device.alloc(size); }
static void x86_free(void *p, size_t size) { rt_cpu_device.free(p, size); }
static cg_status x86_copy(void *dst, const void *src, size_t size) { return rt_cpu_device.copyin(dst, src, size); }

/* ---- machine code into executable memory --------------------------------------------- */

static int hexval(char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; }

static xprog *map_code(const char *name, const char *text) {
  size_t n;
  if (sscanf(text, "x86-64 %zu bytes", &n) != 1 || !n || n > ((size_t)64 << 20))
    return cg_fail_null(CG_ERR_INVALID, "X86 compile '%s': expected \"x86-64 N bytes\" and the code in hex", name);
  const char *h = strchr(text, '\n');
  size_t len = (n + 4095) & ~(size_t)4095;
  void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return cg_fail_null(CG_ERR_NOMEM, "X86 compile '%s': cannot map %zu bytes", name, len);
  uint8_t *b = m;
  size_t got = 0;
  for (const char *c = h ? h + 1 : ""; *c && got < n; c++) {
    if (*c == '\n') continue;
    int hi = hexval(c[0]), lo = c[1] ? hexval(c[1]) : -1;
    if (hi < 0 || lo < 0) break;
    b[got++] = (uint8_t)(hi << 4 | lo);
    c++;
  }
  if (got != n || mprotect(m, len, PROT_READ | PROT_EXEC)) {
    munmap(m, len);
    return cg_fail_null(CG_ERR_INVALID, "X86 compile '%s': %s", name, got != n ? "the hex text is shorter than its byte count" : "mprotect refused");
  }
  xprog *x = cg_calloc(1, sizeof *x);
  char *nm = cg_strdup(name);
  if (!x || !nm) {
    munmap(m, len);
    free(x), free(nm);
    return NULL;
  }
  x->p = (rt_program){.dev = &rt_x86_device, .name = nm, .fn = m, .refs = 1};
  x->map = m, x->maplen = len;
  return x;
}

static void xprog_destroy(xprog *x) {
  if (x->gcc) rt_cpu_device.program_free(x->gcc);
  munmap(x->map, x->maplen);
  free(x->csrc);
  free(x->p.name);
  free(x);
}

/* ---- the loaded programs, by a hash of name and source ---------------------------------- */

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static xprog *loaded; /* a list: programs per process are a few hundred */

static void key_of(const char *name, const char *source, uint64_t key[2]) {
  key[0] = 0x7838362d636f6465ull, key[1] = 1; /* "x86-code" */
  rt_hash128_str(name, key);
  rt_hash128_str(source, key);
}

static xprog *cache_get(const uint64_t key[2]) {
  pthread_mutex_lock(&cache_lock);
  xprog *x = loaded;
  while (x && (x->p.key[0] != key[0] || x->p.key[1] != key[1])) x = x->cnext;
  if (x) x->p.refs++;
  pthread_mutex_unlock(&cache_lock);
  return x;
}

/* ---- tiering: the background compiler --------------------------------------------------- */

static pthread_mutex_t tq_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tq_cond = PTHREAD_COND_INITIALIZER, tq_idle = PTHREAD_COND_INITIALIZER, tq_done = PTHREAD_COND_INITIALIZER;
static xprog *tq_head;
static int tq_busy;
static bool tq_started;

static void *tier_worker(void *arg) {
  (void)arg;
  setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), (int)cfg_int("CG_TIER_NICE", 10)); /* the compiler it starts inherits it */
  rt_cpu_stats_quiet(true); /* counted in tier_enqueue */
  pthread_mutex_lock(&tq_lock);
  for (;;) {
    while (!tq_head) pthread_cond_wait(&tq_cond, &tq_lock);
    xprog *batch = tq_head; /* everything queued: one compile_many (few compiler runs) */
    tq_head = NULL;
    int n = 0;
    for (xprog *x = batch; x; x = x->qnext) n++, x->queued = false;
    tq_busy = 1;
    pthread_mutex_unlock(&tq_lock);
    const char **names = calloc((size_t)n, sizeof *names), **srcs = calloc((size_t)n, sizeof *srcs);
    rt_program **out = calloc((size_t)n, sizeof *out);
    int k = 0;
    for (xprog *x = batch; x; x = x->qnext, k++)
      if (names && srcs) names[k] = x->p.name, srcs[k] = x->csrc;
    if (names && srcs && out) {
      if (n > 1) rt_cpu_device.compile_many(names, srcs, n, out);
      else out[0] = rt_cpu_device.compile(names[0], srcs[0]);
      cg_clear_error(); /* a failed compile keeps the machine code: nothing to report */
    }
    pthread_mutex_lock(&tq_lock);
    k = 0;
    for (xprog *x = batch, *next; x; x = next, k++) {
      next = x->qnext;
      __atomic_store_n(&x->pending, false, __ATOMIC_RELEASE);
      free(x->csrc);
      x->csrc = NULL;
      if (out && out[k]) {
        x->gcc = out[k];
        __atomic_store_n(&x->p.fn, out[k]->fn, __ATOMIC_RELEASE);
      }
      if (x->orphan) xprog_destroy(x);
    }
    free(names), free(srcs), free(out);
    tq_busy = 0;
    pthread_cond_broadcast(&tq_done); /* rt_program_settle */
    if (!tq_head) pthread_cond_broadcast(&tq_idle);
  }
  return NULL;
}

static void tier_atexit(void) { rt_x86_tier_wait(); }

/* A child of fork() has no background compiler (threads do not survive fork): its
 * programs keep their machine code, nothing waits for a compile that will never finish,
 * and a new kernel starts a worker of its own. */
static void tier_atfork_child(void) {
  pthread_mutex_init(&tq_lock, NULL), pthread_mutex_init(&cache_lock, NULL);
  pthread_cond_init(&tq_cond, NULL), pthread_cond_init(&tq_idle, NULL), pthread_cond_init(&tq_done, NULL);
  tq_head = NULL, tq_busy = 0, tq_started = false;
  for (xprog *x = loaded; x; x = x->cnext) x->pending = x->queued = false;
}

static void tier_enqueue(xprog *x, const char *csrc) {
  x->csrc = cg_strdup(csrc);
  if (!x->csrc) {
    cg_clear_error(); /* no copy, no background compile: the machine code stays */
    return;
  }
  pthread_mutex_lock(&tq_lock);
  if (!tq_started) {
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    tq_started = pthread_create(&t, &at, tier_worker, NULL) == 0;
    pthread_attr_destroy(&at);
    static bool hooked; /* once per process, whatever forks happen */
    if (tq_started && !hooked) hooked = true, atexit(tier_atexit), pthread_atfork(NULL, NULL, tier_atfork_child);
  }
  if (tq_started) {
    __atomic_fetch_add(&rt_stats_mut()->compiled, 1, __ATOMIC_RELAXED); /* a new kernel, as a plain compile counts it */
    __atomic_store_n(&x->pending, true, __ATOMIC_RELAXED);
    x->queued = true;
    x->qnext = tq_head;
    tq_head = x;
    pthread_cond_signal(&tq_cond);
  } else free(x->csrc), x->csrc = NULL;
  pthread_mutex_unlock(&tq_lock);
}

/* The swap's timing: a new kernel runs as machine code while gcc compiles it (a training
 * loop's first step); a graph met again (the next step: a schedule-cache hit, a JIT replay)
 * waits here for the compiles of its kernels, so from then on it runs gcc's code, however
 * busy the machine (a compiler niced below busy kernel threads could take minutes, and the
 * machine code is up to ~2x slower per step). Either version gives the same bits. */
void rt_program_settle(rt_program *p) {
  if (!p || p->dev != &rt_x86_device) return;
  xprog *x = (xprog *)p;
  if (!__atomic_load_n(&x->pending, __ATOMIC_ACQUIRE)) return;
  pthread_mutex_lock(&tq_lock);
  while (x->pending) pthread_cond_wait(&tq_done, &tq_lock);
  pthread_mutex_unlock(&tq_lock);
}

void rt_x86_tier_wait(void) {
  pthread_mutex_lock(&tq_lock);
  while (tq_head || tq_busy) pthread_cond_wait(&tq_idle, &tq_lock);
  pthread_mutex_unlock(&tq_lock);
}

bool rt_tiering(void) { return cfg_int("CG_TIER", 1) > 0 && rt_cpu_avx512(); }

const char *rt_device_renderer(const rt_device *dev) { return dev->tier_renderer && rt_tiering() ? dev->tier_renderer : dev->renderer; }

/* whether the kernel's shared object is in the disk cache already */
static bool on_disk(const char *name, const char *csrc) {
  uint64_t key[2];
  rt_cc_key(name, csrc, key);
  char *dir = rt_cache_dir();
  char *entry = dir ? rt_cache_entry_path(dir, name, key, "so") : NULL;
  bool ok = entry && rt_cache_check(entry, key) == RT_CACHE_OK;
  free(entry), free(dir);
  return ok;
}

/* ---- the device table --------------------------------------------------------------------- */

static rt_program *x86_compile(const char *name, const char *source) {
  if (!name || !*name || !source)
    return cg_fail_null(CG_ERR_INVALID, "X86 compile: expected a kernel name and source, got %s", !source ? "no source" : "no name");
  const char *c = strstr(source, "\n#c\n");
  c = c ? c + 4 : NULL;
  if (!strncmp(source, "x86-64 refused", 14) || strncmp(source, "x86-64 ", 7)) {
    if (!c && strncmp(source, "x86-64 ", 7)) c = source; /* plain C (a test, BEAM) */
    if (!c) return cg_fail_null(CG_ERR_INVALID, "X86 compile '%s': a refused kernel without its C source", name);
    return rt_cpu_device.compile(name, c);
  }
  if (c && on_disk(name, c)) return rt_cpu_device.compile(name, c); /* tiering, warm cache */
  uint64_t key[2];
  key_of(name, source, key);
  xprog *x = cache_get(key);
  if (x) {
    __atomic_fetch_add(&rt_stats_mut()->mem_hits, 1, __ATOMIC_RELAXED);
    return &x->p;
  }
  if (!(x = map_code(name, source))) return NULL;
  x->p.key[0] = key[0], x->p.key[1] = key[1];
  pthread_mutex_lock(&cache_lock);
  xprog *y = loaded; /* another thread may have mapped it meanwhile: keep one */
  while (y && (y->p.key[0] != key[0] || y->p.key[1] != key[1])) y = y->cnext;
  if (y) y->p.refs++;
  else x->cnext = loaded, loaded = x;
  pthread_mutex_unlock(&cache_lock);
  if (y) {
    xprog_destroy(x);
    return &y->p;
  }
  if (c) tier_enqueue(x, c);
  return &x->p;
}

static cg_status x86_compile_many(const char *const *names, const char *const *sources, int n, rt_program **out) {
  cg_status st = CG_OK;
  const char **cn = cg_calloc((size_t)(n ? n : 1), sizeof *cn), **cs = cg_calloc((size_t)(n ? n : 1), sizeof *cs);
  int *which = cg_calloc((size_t)(n ? n : 1), sizeof *which), nc = 0;
  rt_program **co = cg_calloc((size_t)(n ? n : 1), sizeof *co);
  if (!cn || !cs || !which || !co) {
    free(cn), free(cs), free(which), free(co);
    for (int i = 0; i < n; i++) out[i] = NULL;
    return cg_fail(CG_ERR_NOMEM, "out of memory");
  }
  for (int i = 0; i < n; i++) { /* refused ones compile together, as the CPU device does */
    out[i] = NULL;
    const char *c = strstr(sources[i], "\n#c\n");
    if (!strncmp(sources[i], "x86-64 refused", 14) && c) cn[nc] = names[i], cs[nc] = c + 4, which[nc++] = i;
    else if (!(out[i] = x86_compile(names[i], sources[i])) && st == CG_OK) st = cg_last_status();
  }
  if (nc > 1) {
    cg_status s2 = rt_cpu_device.compile_many(cn, cs, nc, co);
    if (st == CG_OK) st = s2;
  } else if (nc == 1 && !(co[0] = rt_cpu_device.compile(cn[0], cs[0])) && st == CG_OK)
    st = cg_last_status();
  for (int k = 0; k < nc; k++) out[which[k]] = co[k];
  if (cfg_debug() >= 2 && n) fprintf(stderr, "*** X86: %d kernels as machine code, %d through the C compiler\n", n - nc, nc);
  free(cn), free(cs), free(which), free(co);
  return st;
}

static void x86_program_free(rt_program *p) {
  if (!p) return;
  if (p->dev != &rt_x86_device) {
    rt_cpu_device.program_free(p);
    return;
  }
  xprog *x = (xprog *)p;
  pthread_mutex_lock(&cache_lock);
  bool last = --p->refs == 0;
  if (last)
    for (xprog **pp = &loaded; *pp; pp = &(*pp)->cnext)
      if (*pp == x) {
        *pp = x->cnext;
        break;
      }
  pthread_mutex_unlock(&cache_lock);
  if (!last) return;
  pthread_mutex_lock(&tq_lock);
  if (x->queued) { /* not started: out of the queue, never compiled (a loop over new shapes outruns the compiler) */
    xprog **q = &tq_head;
    while (*q != x) q = &(*q)->qnext;
    *q = x->qnext;
    x->queued = false;
    __atomic_store_n(&x->pending, false, __ATOMIC_RELAXED);
    if (!tq_head && !tq_busy) pthread_cond_broadcast(&tq_idle);
  }
  bool pending = x->pending;
  if (pending) x->orphan = true;
  pthread_mutex_unlock(&tq_lock);
  if (!pending) xprog_destroy(x);
}

/* Machine code and C programs alike: the same ABI, run over the instance's pool in the CPU
 * device's chunks. */
static cg_status x86_launch_on(rt_device *self, rt_program *prog, void **bufs, const int64_t *vars, int64_t global_size) {
  if (!prog || (prog->dev != &rt_x86_device && prog->dev != &rt_cpu_device)) return cg_fail(CG_ERR_INVALID, "X86 launch: expected an X86 or CPU program");
  if (global_size < 0) return cg_fail(CG_ERR_INVALID, "X86 launch '%s': global size %lld < 0", prog->name, (long long)global_size);
  __atomic_fetch_add(&rt_stats_mut()->launches, 1, __ATOMIC_RELAXED);
  rt_cpu_kernel_fn fn = (rt_cpu_kernel_fn)__atomic_load_n(&prog->fn, __ATOMIC_ACQUIRE); /* once: one version per launch */
  rt_cpu_run_kernel(self->index, prog->name, fn, bufs, vars, global_size);
  return CG_OK;
}

static cg_status x86_launch(rt_program *prog, void **bufs, const int64_t *vars, int64_t global_size) {
  return x86_launch_on(&rt_x86_device, prog, bufs, vars, global_size);
}

static cg_status x86_synchronize(void) { return CG_OK; }

rt_device rt_x86_device = {
    .name = "X86",
    .renderer = "x86",
    .alloc = x86_alloc,
    .free = x86_free,
    .copyin = x86_copy,
    .copyout = x86_copy,
    .compile = x86_compile,
    .compile_many = x86_compile_many,
    .program_free = x86_program_free,
    .launch = x86_launch,
    .launch_on = x86_launch_on,
    .synchronize = x86_synchronize,
};
