/* The CPU runtime: device table, LRU allocator, compiling real kernels with the system C
 * compiler, the in-memory and on-disk kernel caches (including corrupt entries and a
 * second process), the thread pool, and launch overhead.
 *
 * Run as `test_runtime child <cache dir>` it is the second process of the disk-cache test. */
#define _GNU_SOURCE
#include "check.h"
#include "cgrad.h"
#include "runtime/alloc.h"
#include "runtime/device.h"
#include "runtime/threadpool.h"
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *SAXPY =
    "#include <stdint.h>\n"
    "void saxpy(void **bufs, const int64_t *vars, int64_t lo, int64_t hi) {\n"
    "  float *restrict y = bufs[0];\n"
    "  const float *restrict x = bufs[1];\n"
    "  float a = *(const float *)bufs[2], b = (float)vars[0];\n"
    "  for (int64_t i = lo; i < hi; i++) y[i] = a * x[i] + y[i] + b;\n"
    "}\n";

/* Records (thread, lo, hi) of every chunk it runs; vars[0] is the record capacity. */
static const char *PROBE =
    "#include <stdint.h>\n"
    "#include <pthread.h>\n"
    "void probe(void **bufs, const int64_t *vars, int64_t lo, int64_t hi) {\n"
    "  int64_t k = __atomic_fetch_add((int64_t *)bufs[0], 1, __ATOMIC_SEQ_CST);\n"
    "  if (k >= vars[0]) return;\n"
    "  uint64_t *rec = bufs[1];\n"
    "  rec[3 * k] = (uint64_t)pthread_self(), rec[3 * k + 1] = (uint64_t)lo, rec[3 * k + 2] = (uint64_t)hi;\n"
    "}\n";

static const char *EMPTY = "#include <stdint.h>\n"
                           "void empty(void **bufs, const int64_t *vars, int64_t lo, int64_t hi) {}\n";

static char cache_dir[256];
static rt_device *cpu;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Run saxpy (y = a*x + y + b) on n elements and return the number of wrong elements. */
static int64_t run_saxpy(rt_program *p, int64_t n) {
  float *x = cpu->alloc((size_t)n * 4), *y = cpu->alloc((size_t)n * 4), *ref = malloc((size_t)n * 4);
  float *hx = malloc((size_t)n * 4), *hy = malloc((size_t)n * 4), a = 1.5f;
  if (!x || !y || !ref || !hx || !hy) return n;
  uint32_t s = 12345;
  for (int64_t i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u, hx[i] = (float)(s >> 8) / (1 << 24) - 0.5f;
    s = s * 1664525u + 1013904223u, hy[i] = (float)(s >> 8) / (1 << 24) - 0.5f;
    ref[i] = a * hx[i] + hy[i] + 3.0f;
  }
  cpu->copyin(x, hx, (size_t)n * 4);
  cpu->copyin(y, hy, (size_t)n * 4);
  cpu->launch(p, (void *[]){y, x, &a}, (int64_t[]){3}, n);
  cpu->synchronize();
  cpu->copyout(hy, y, (size_t)n * 4);
  int64_t bad = 0;
  for (int64_t i = 0; i < n; i++)
    if (!(fabsf(hy[i] - ref[i]) <= 1e-6f * (fabsf(ref[i]) + 1))) bad++;
  cpu->free(x, (size_t)n * 4), cpu->free(y, (size_t)n * 4);
  free(ref), free(hx), free(hy);
  return bad;
}

/* The cache entry for kernel `name` in cache_dir (static buffer), or NULL. */
static const char *find_entry(const char *name) {
  static char path[512];
  DIR *d = opendir(cache_dir);
  const char *found = NULL;
  for (struct dirent *e; d && (e = readdir(d));) {
    size_t l = strlen(e->d_name);
    if (!strncmp(e->d_name, name, strlen(name)) && e->d_name[strlen(name)] == '-' && l > 3 &&
        !strcmp(e->d_name + l - 3, ".so")) {
      snprintf(path, sizeof path, "%s/%s", cache_dir, e->d_name);
      found = path;
    }
  }
  if (d) closedir(d);
  return found;
}

static int count_files(void) {
  int n = 0;
  DIR *d = opendir(cache_dir);
  for (struct dirent *e; d && (e = readdir(d));) n += e->d_name[0] != '.';
  if (d) closedir(d);
  return n;
}

static void remove_dir(void) {
  DIR *d = opendir(cache_dir);
  char path[512];
  for (struct dirent *e; d && (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "%s/%s", cache_dir, e->d_name);
    unlink(path);
  }
  if (d) closedir(d);
  rmdir(cache_dir);
}

/* ---- device table ----------------------------------------------------------------- */

static void test_devices(void) {
  cpu = rt_get_device("CPU");
  CHECK(cpu && !strcmp(cpu->name, "CPU"), "no CPU device");
  CHECK(rt_get_device("cpu") == cpu, "device names are case-insensitive");
  CHECK(rt_get_device("TPU") == NULL && cg_last_status() == CG_ERR_INVALID, "unknown device accepted");
  CHECK(strstr(cg_last_error(), "TPU") && strstr(cg_last_error(), "CPU"), "message: %s", cg_last_error());
  CHECK(rt_device_at(0) == cpu && rt_device_at(-1) == NULL && rt_device_at(1000) == NULL, "device table");
}

/* ---- allocator -------------------------------------------------------------------- */

static int sys_allocs, sys_frees, sys_fail;
static void *t_sys_alloc(size_t n) {
  if (sys_fail > 0) return sys_fail--, NULL;
  __atomic_fetch_add(&sys_allocs, 1, __ATOMIC_RELAXED);
  return aligned_alloc(64, n);
}
static void t_sys_free(void *p, size_t n) {
  __atomic_fetch_add(&sys_frees, 1, __ATOMIC_RELAXED);
  free(p);
}
static rt_allocator ta = RT_ALLOCATOR_INIT("TESTDEV", t_sys_alloc, t_sys_free, 1);

static void test_cpu_alloc(void) {
  rt_allocator *a = cpu->allocator;
  rt_alloc_stats s0 = rt_lru_stats(a);
  char *p = cpu->alloc(1000);
  CHECK(p && (uintptr_t)p % 64 == 0, "CPU buffers are 64-byte aligned: %p", (void *)p);
  memset(p, 1, 1000);
  CHECK(rt_lru_stats(a).in_use == s0.in_use + 1024, "in use counts the rounded size");
  cpu->free(p, 1000);
  CHECK(rt_lru_stats(a).cached >= 1024 && rt_lru_stats(a).in_use == s0.in_use, "freed block is cached");
  char *q = cpu->alloc(1000);
  CHECK(q == p, "same size is reused: %p vs %p", (void *)q, (void *)p);
  memset(q, 2, 1000); /* under ASan: a reused block must not stay poisoned */
  CHECK(rt_lru_stats(a).reuses == s0.reuses + 1, "reuse counted");
  char *r = cpu->alloc(4096);
  CHECK(r && r != q, "another size is a new block");
  CHECK(rt_lru_stats(a).peak >= s0.in_use + 1024 + 4096, "peak");
  cpu->free(q, 1000), cpu->free(r, 4096);
  CHECK(rt_alloc_trim() >= 1024 + 4096, "trim releases the cached blocks");
  CHECK(rt_lru_stats(a).cached == 0, "nothing cached after trim");
  void *z = cpu->alloc(0);
  CHECK(z != NULL, "zero bytes still gives a block");
  cpu->free(z, 0);
  cpu->free(NULL, 10); /* no-op */

  cg_clear_error();
  void *big = cpu->alloc(SIZE_MAX / 2);
  CHECK(big == NULL && cg_last_status() == CG_ERR_NOMEM, "impossible allocation fails");
  char want[64];
  snprintf(want, sizeof want, "%zu bytes", SIZE_MAX / 2);
  CHECK(strstr(cg_last_error(), want) && strstr(cg_last_error(), "CPU"), "message names size: %s", cg_last_error());
  CHECK(cpu->alloc(SIZE_MAX) == NULL && cg_last_status() == CG_ERR_NOMEM, "SIZE_MAX fails too");
  CHECK(rt_lru_stats(a).in_use == s0.in_use, "failed allocations change nothing");
}

static void test_lru(void) {
  rt_lru_set_cap(&ta, 3 * 4096);
  void *b[4];
  for (int i = 0; i < 4; i++) b[i] = rt_lru_alloc(&ta, 4096);
  CHECK(sys_allocs == 4, "4 fresh blocks, got %d", sys_allocs);
  for (int i = 0; i < 4; i++) rt_lru_free(&ta, b[i], 4096);
  CHECK(sys_frees == 1 && rt_lru_stats(&ta).cached == 3 * 4096, "over the cap the oldest goes: %d freed", sys_frees);
  void *c0 = rt_lru_alloc(&ta, 4096), *c1 = rt_lru_alloc(&ta, 4096), *c2 = rt_lru_alloc(&ta, 4096);
  CHECK(c0 == b[3] && c1 == b[2] && c2 == b[1], "reuse is most recently freed first");
  void *c3 = rt_lru_alloc(&ta, 4096);
  CHECK(sys_allocs == 5 && c3, "the evicted block is not handed out");
  rt_lru_free(&ta, c0, 4096), rt_lru_free(&ta, c1, 4096), rt_lru_free(&ta, c2, 4096), rt_lru_free(&ta, c3, 4096);
  void *huge = rt_lru_alloc(&ta, 4 * 4096);
  rt_lru_free(&ta, huge, 4 * 4096);
  CHECK(rt_lru_stats(&ta).cached <= 3 * 4096, "a block over the cap is never cached");

  /* The device refuses once: the cache is released and the allocation retried. */
  rt_lru_set_cap(&ta, 1 << 20);
  int frees = sys_frees;
  sys_fail = 1;
  void *d = rt_lru_alloc(&ta, 8192);
  CHECK(d && rt_lru_stats(&ta).cached == 0 && sys_frees > frees, "failure trims the cache and retries");
  rt_lru_free(&ta, d, 8192);
  rt_lru_trim(&ta);
  sys_fail = 1; /* nothing cached: it fails */
  cg_clear_error();
  CHECK(rt_lru_alloc(&ta, 12345) == NULL && cg_last_status() == CG_ERR_NOMEM, "failure reported");
  CHECK(strstr(cg_last_error(), "TESTDEV") && strstr(cg_last_error(), "12345 bytes"), "message: %s", cg_last_error());
  sys_fail = 0;
  CHECK(rt_lru_stats(&ta).in_use == 0, "in_use back to 0: %zu", rt_lru_stats(&ta).in_use);
}

/* Reserved memory (in use + cached) stays within a quarter above the highest use: a
 * program that switches to other shapes (training, then evaluating at another batch) does
 * not keep both sets of blocks; a loop repeating its sizes is answered from the cache. */
static void test_reserve_bound(void) {
  rt_lru_trim(&ta);
  rt_lru_set_cap(&ta, 1 << 30);
  rt_allocator fresh = RT_ALLOCATOR_INIT("BOUND", t_sys_alloc, t_sys_free, 1);
  rt_allocator *a = &fresh;
  void *p[8];
  for (int step = 0; step < 3; step++) { /* "training": 8 blocks of 64 KiB, all freed */
    int allocs0 = sys_allocs;
    for (int i = 0; i < 8; i++) p[i] = rt_lru_alloc(a, 64 << 10);
    for (int i = 0; i < 8; i++) rt_lru_free(a, p[i], 64 << 10);
    CHECK(step == 0 || sys_allocs == allocs0, "step %d repeats its sizes from the cache: %d new blocks", step, sys_allocs - allocs0);
  }
  size_t peak = rt_lru_stats(a).peak;
  CHECK(peak == 8 << 16 && rt_lru_stats(a).cached == peak, "peak %zu, cached %zu", peak, rt_lru_stats(a).cached);
  int frees0 = sys_frees;
  for (int i = 0; i < 8; i++) { /* "evaluation": other sizes, the same total */
    p[i] = rt_lru_alloc(a, (64 << 10) - 64 * (i + 1));
    rt_alloc_stats s = rt_lru_stats(a);
    CHECK(p[i] && s.in_use + s.cached <= peak + peak / 4, "block %d: reserved %zu over 1.25 x peak %zu", i, s.in_use + s.cached, peak);
  }
  CHECK(sys_frees - frees0 >= 6, "the old sizes went back to the device: %d", sys_frees - frees0);
  for (int i = 0; i < 8; i++) rt_lru_free(a, p[i], (64 << 10) - 64 * (i + 1));
  rt_lru_trim(a);
  CHECK(rt_lru_stats(a).in_use == 0 && rt_lru_stats(a).cached == 0, "all released");
}

static void *alloc_worker(void *arg) {
  uint32_t s = (uint32_t)(uintptr_t)arg;
  void *held[16] = {0};
  size_t sizes[16] = {0};
  for (int it = 0; it < 20000; it++) {
    s = s * 1664525u + 1013904223u;
    int k = (int)(s >> 28);
    if (held[k]) rt_lru_free(&ta, held[k], sizes[k]), held[k] = NULL;
    else {
      sizes[k] = 64 * (1 + (s >> 8) % 32);
      held[k] = rt_lru_alloc(&ta, sizes[k]);
      if (held[k]) memset(held[k], k, sizes[k]);
    }
  }
  for (int k = 0; k < 16; k++) rt_lru_free(&ta, held[k], sizes[k]);
  return NULL;
}

static void test_alloc_threads(void) {
  rt_lru_set_cap(&ta, 64 << 10);
  pthread_t t[4];
  for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, alloc_worker, (void *)(uintptr_t)(i + 1));
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  rt_alloc_stats s = rt_lru_stats(&ta);
  CHECK(s.in_use == 0 && s.cached <= (64 << 10) && s.reuses > 0, "threads: in_use %zu cached %zu", s.in_use, s.cached);
  rt_lru_trim(&ta);
  CHECK(sys_allocs == sys_frees, "every system block released: %d vs %d", sys_allocs, sys_frees);
}

/* ---- compile, launch, caches ------------------------------------------------------ */

static void test_saxpy(void) {
  const rt_stats *st = rt_get_stats();
  rt_stats s0 = *st;
  rt_program *p = cpu->compile("saxpy", SAXPY);
  CHECK(p != NULL, "compile saxpy: %s", cg_last_error());
  if (!p) return;
  CHECK(st->compiled == s0.compiled + 1 && st->compile_seconds > s0.compile_seconds, "compiled once");
  CHECK(find_entry("saxpy") != NULL, "entry written to %s", cache_dir);
  int64_t n = test_env_long("CG_TEST_N", 10 * 1000 * 1000);
  double t0 = now_s();
  int64_t bad = run_saxpy(p, n);
  CHECK(bad == 0, "saxpy on %lld elements: %lld wrong", (long long)n, (long long)bad);
  printf("saxpy: %lld elements in %.1f ms (incl. setup)\n", (long long)n, 1e3 * (now_s() - t0));
  CHECK(run_saxpy(p, 7) == 0 && run_saxpy(p, 1) == 0, "small sizes");

  /* the same source again: the loaded program */
  rt_program *q = cpu->compile("saxpy", SAXPY);
  CHECK(q == p && st->mem_hits == s0.mem_hits + 1 && st->compiled == s0.compiled + 1, "in-memory hit");
  cpu->program_free(q);
  cpu->program_free(p); /* last reference: unloaded */

  /* unloaded: the next compile comes from disk */
  p = cpu->compile("saxpy", SAXPY);
  CHECK(p && st->disk_hits == s0.disk_hits + 1 && st->compiled == s0.compiled + 1, "disk hit (%lld)",
        (long long)(st->disk_hits - s0.disk_hits));
  CHECK(p && run_saxpy(p, 1000) == 0, "disk-loaded kernel works");
  cpu->program_free(p);

  /* a fresh process loads it from disk without compiling */
  pid_t pid = fork();
  if (pid == 0) {
    execl("/proc/self/exe", "test_runtime", "child", cache_dir, (char *)NULL);
    _exit(127);
  }
  int status = -1;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child process: status %d", status);
}

static int child_main(const char *dir) {
  cg_set_config("CG_CACHE_DIR", dir);
  cpu = rt_get_device("CPU");
  rt_program *p = cpu->compile("saxpy", SAXPY);
  const rt_stats *st = rt_get_stats();
  printf("child: compiled %lld, disk hits %lld\n", (long long)st->compiled, (long long)st->disk_hits);
  CHECK(p && st->compiled == 0 && st->disk_hits == 1, "child loads from disk: %s", cg_last_error());
  CHECK(p && run_saxpy(p, 100000) == 0, "child result");
  cpu->program_free(p);
  return test_summary();
}

/* Corrupt the saxpy entry with fn, then check it is detected, rebuilt and right. */
static void corrupt_and_reload(const char *what, void (*fn)(const char *path)) {
  const rt_stats *st = rt_get_stats();
  rt_stats s0 = *st;
  const char *path = find_entry("saxpy");
  CHECK(path != NULL, "%s: no entry", what);
  if (!path) return;
  fn(path);
  rt_program *p = cpu->compile("saxpy", SAXPY);
  CHECK(p && st->disk_rejects == s0.disk_rejects + 1 && st->compiled == s0.compiled + 1 && st->disk_hits == s0.disk_hits,
        "%s: detected and rebuilt (rejects +%lld, compiled +%lld)", what, (long long)(st->disk_rejects - s0.disk_rejects),
        (long long)(st->compiled - s0.compiled));
  CHECK(p && run_saxpy(p, 100000) == 0, "%s: rebuilt kernel works", what);
  cpu->program_free(p);
  p = cpu->compile("saxpy", SAXPY);
  CHECK(p && st->disk_hits == s0.disk_hits + 1, "%s: the rebuilt entry loads from disk", what);
  cpu->program_free(p);
}

static void truncate_half(const char *path) {
  struct stat sb;
  stat(path, &sb);
  CHECK(truncate(path, sb.st_size / 2) == 0, "truncate");
}
static void flip_at(const char *path, double where) {
  FILE *f = fopen(path, "r+b");
  if (!f) return;
  fseek(f, 0, SEEK_END);
  long at = (long)((double)ftell(f) * where);
  fseek(f, at, SEEK_SET);
  int c = fgetc(f);
  fseek(f, at, SEEK_SET);
  fputc(c ^ 0x5a, f);
  fclose(f);
}
static void flip_payload(const char *path) { flip_at(path, 0.4); }
static void flip_trailer(const char *path) { flip_at(path, 0.9999); }
static void empty_file(const char *path) { CHECK(truncate(path, 0) == 0, "truncate"); }
static void empty_dir(const char *path) { CHECK(unlink(path) == 0 && mkdir(path, 0755) == 0, "mkdir"); }

static void zero_link(const char *path) { CHECK(unlink(path) == 0 && symlink("/dev/zero", path) == 0, "symlink"); }

/* An entry that is a non-empty directory cannot be replaced: the kernel is compiled in
 * memory, the run goes on, nothing of the directory is touched. */
static void test_directory_entry(void) {
  const rt_stats *st = rt_get_stats();
  rt_stats s0 = *st;
  char path[600], inner[700];
  snprintf(path, sizeof path, "%s", find_entry("saxpy") ? find_entry("saxpy") : "");
  CHECK(path[0] && unlink(path) == 0 && mkdir(path, 0755) == 0, "a directory in place of %s", path);
  snprintf(inner, sizeof inner, "%s/keep", path);
  FILE *f = fopen(inner, "w");
  if (f) fclose(f);
  rt_program *p = cpu->compile("saxpy", SAXPY);
  CHECK(p && st->compiled == s0.compiled + 1 && st->disk_rejects == s0.disk_rejects + 1, "compiled in memory: %s", cg_last_error());
  CHECK(p && run_saxpy(p, 100000) == 0, "and it works");
  struct stat sb;
  CHECK(stat(inner, &sb) == 0, "the directory's contents are left alone");
  cpu->program_free(p);
  unlink(inner);
  rmdir(path);
}

static void test_corruption(void) {
  corrupt_and_reload("truncated", truncate_half);
  corrupt_and_reload("payload byte flipped", flip_payload);
  corrupt_and_reload("trailer byte flipped", flip_trailer);
  corrupt_and_reload("empty file", empty_file);
  corrupt_and_reload("symlink to /dev/zero", zero_link);
  corrupt_and_reload("empty directory", empty_dir);
  test_directory_entry();
}

static void test_errors(void) {
  const rt_stats *st = rt_get_stats();
  int64_t errs = st->compile_errors;
  const char *bad = "#include <stdint.h>\n"
                    "void broken(void **bufs, const int64_t *vars, int64_t lo, int64_t hi) {\n"
                    "  int x = ;\n"
                    "}\n";
  cg_clear_error();
  rt_program *p = cpu->compile("broken", bad);
  CHECK(p == NULL && cg_last_status() == CG_ERR_RUNTIME, "syntax error fails");
  CHECK(strstr(cg_last_error(), "error") && strstr(cg_last_error(), "broken.c:3"), "compiler message: %s",
        cg_last_error());
  CHECK(st->compile_errors == errs + 1 && find_entry("broken") == NULL, "counted, nothing cached");

  p = cpu->compile("not_there", EMPTY);
  CHECK(p == NULL && strstr(cg_last_error(), "not_there"), "missing entry point: %s", cg_last_error());

  cg_set_config("CG_CC", "/nonexistent/cc");
  p = cpu->compile("empty", EMPTY);
  CHECK(p == NULL && strstr(cg_last_error(), "/nonexistent/cc") && strstr(cg_last_error(), "CG_CC"), "no compiler: %s",
        cg_last_error());
  cg_set_config("CG_CC", ""); /* back to the default */

  CHECK(cpu->compile(NULL, EMPTY) == NULL && cpu->compile("x", NULL) == NULL, "NULL arguments");
  CHECK(cpu->launch(NULL, NULL, NULL, 1) == CG_ERR_INVALID, "NULL program");

  /* and the runtime goes on */
  p = cpu->compile("saxpy", SAXPY);
  CHECK(p && run_saxpy(p, 1000) == 0, "works after errors");
  CHECK(p && cpu->launch(p, NULL, NULL, -1) == CG_ERR_INVALID, "negative global size");
  cpu->program_free(p);
}

static void test_nocache(void) {
  const rt_stats *st = rt_get_stats();
  int64_t compiled = st->compiled;
  int files = count_files();
  cg_set_config("CG_NOCACHE", "1");
  const char *src = "#include <stdint.h>\n"
                    "void nocache(void **bufs, const int64_t *vars, int64_t lo, int64_t hi) {\n"
                    "  for (int64_t i = lo; i < hi; i++) ((int32_t *)bufs[0])[i] = (int32_t)(i * vars[0]);\n"
                    "}\n";
  rt_program *p = cpu->compile("nocache", src);
  CHECK(p && st->compiled == compiled + 1 && count_files() == files, "CG_NOCACHE compiles, writes nothing");
  int32_t out[100];
  CHECK(p && cpu->launch(p, (void *[]){out}, (int64_t[]){7}, 100) == CG_OK, "launch");
  int ok = 1;
  for (int i = 0; i < 100; i++) ok &= out[i] == 7 * i;
  CHECK(ok, "nocache kernel result");
  cpu->program_free(p);
  cg_set_config("CG_NOCACHE", "0");
}

/* Chunk c of a launch blocks until every other chunk has run (or 20 s): only a pool whose
 * free threads claim the chunks left (threadpool.c) finishes without the timeout; one
 * that gave each thread a fixed share would leave the blocked thread's share waiting. */
static const char *LATE = "#include <stdint.h>\n"
                          "#include <sched.h>\n"
                          "#include <time.h>\n"
                          "static double now_s(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }\n"
                          "void late(void **bufs, const int64_t *vars, int64_t lo, int64_t hi) {\n"
                          "  int64_t *c = bufs[0];\n"
                          "  if (__atomic_fetch_add(&c[0], 1, __ATOMIC_SEQ_CST) == 0) {\n"
                          "    double t0 = now_s();\n"
                          "    while (__atomic_load_n(&c[1], __ATOMIC_SEQ_CST) < vars[0] - (hi - lo) && now_s() - t0 < 20) sched_yield();\n"
                          "    c[2] = __atomic_load_n(&c[1], __ATOMIC_SEQ_CST);\n"
                          "  }\n"
                          "  __atomic_fetch_add(&c[1], hi - lo, __ATOMIC_SEQ_CST);\n"
                          "}\n";

static void test_threads(void) {
  CHECK(rt_pool_size() == 2, "CG_THREADS=2 gives 2 threads, got %d", rt_pool_size());
  rt_program *p = cpu->compile("probe", PROBE);
  CHECK(p != NULL, "compile probe: %s", cg_last_error());
  if (!p) return;
  /* the chunks of [0, gs) on 2 threads, pinned (cpu.c, launch_chunks): the trips left / 4
   * each, at least gs / 64 */
  static const int64_t want1000[] = {0, 250, 438, 579, 685, 764, 823, 868, 901, 926, 945, 961, 977, 993, 1000};
  int64_t sizes[] = {1000, 3, 2, 1, 0};
  for (int t = 0; t < 5; t++) {
    int64_t gs = sizes[t], count = 0;
    uint64_t rec[3 * 16] = {0};
    CHECK(cpu->launch(p, (void *[]){&count, rec}, (int64_t[]){16}, gs) == CG_OK, "launch");
    int64_t want = gs == 1000 ? 14 : gs;
    CHECK(count == want, "global %lld: %lld chunks, want %lld", (long long)gs, (long long)count, (long long)want);
    if (count != want || want == 0) continue;
    /* each chunk once: sorted by start, they are the pinned ranges (1 trip each when small) */
    for (int i = 1; i < count; i++)
      for (int j = i; j > 0 && rec[3 * j + 1] < rec[3 * (j - 1) + 1]; j--)
        for (int f = 0; f < 3; f++) {
          uint64_t x = rec[3 * j + f];
          rec[3 * j + f] = rec[3 * (j - 1) + f], rec[3 * (j - 1) + f] = x;
        }
    bool exact = true;
    for (int i = 0; i < count; i++)
      exact &= gs == 1000 ? rec[3 * i + 1] == (uint64_t)want1000[i] && rec[3 * i + 2] == (uint64_t)want1000[i + 1]
                          : rec[3 * i + 1] == (uint64_t)i && rec[3 * i + 2] == (uint64_t)i + 1;
    CHECK(exact, "global %lld: the chunks are the pinned ranges, each once", (long long)gs);
    bool on_pool = true;
    uint64_t other = 0;
    for (int i = 0; i < count; i++)
      if (rec[3 * i] != (uint64_t)pthread_self()) on_pool &= !other || other == rec[3 * i], other = rec[3 * i];
    CHECK(on_pool, "global %lld: chunks ran on the caller and at most one worker", (long long)gs);
  }
  cpu->program_free(p);
  /* a thread held up in one chunk does not hold up the rest: the other claims them all */
  rt_program *q = cpu->compile("late", LATE);
  CHECK(q != NULL, "compile late: %s", cg_last_error());
  if (!q) return;
  int64_t c[3] = {0, 0, -1};
  CHECK(cpu->launch(q, (void *[]){c}, (int64_t[]){1000}, 1000) == CG_OK, "launch");
  CHECK(c[0] == 14 && c[1] == 1000, "14 chunks covering 1000 trips (%lld, %lld)", (long long)c[0], (long long)c[1]);
  bool seen_rest = false; /* the held-up chunk is one of the pinned ones: it saw all the others' trips */
  for (int i = 0; i < 14; i++) seen_rest |= c[2] == 1000 - (want1000[i + 1] - want1000[i]);
  CHECK(seen_rest, "the held-up chunk saw every other chunk done (%lld trips of the rest)", (long long)c[2]);
  cpu->program_free(q);
}

static void *compile_same(void *arg) {
  return cpu->compile("racy", (const char *)arg);
}

static void test_concurrent_compile(void) {
  const char *src = "#include <stdint.h>\n"
                    "void racy(void **bufs, const int64_t *vars, int64_t lo, int64_t hi) { *(int *)bufs[0] = 42; }\n";
  pthread_t t[3];
  void *r[3];
  for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, compile_same, (void *)src);
  for (int i = 0; i < 3; i++) pthread_join(t[i], &r[i]);
  CHECK(r[0] && r[0] == r[1] && r[1] == r[2], "concurrent compiles agree on one program");
  rt_program *p = r[0];
  CHECK(p && p->refs == 3, "three references (%d)", p ? p->refs : -1);
  int v = 0;
  if (p) cpu->launch(p, (void *[]){&v}, NULL, 1);
  CHECK(v == 42, "racy kernel ran");
  for (int i = 0; i < 3; i++) cpu->program_free(r[i]);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void bench_launch(void) {
  rt_program *p = cpu->compile("empty", EMPTY);
  CHECK(p != NULL, "compile empty: %s", cg_last_error());
  if (!p) return;
  enum { N = 20000 };
  static double t[N];
  int64_t sizes[] = {1, 2};
  for (int k = 0; k < 2; k++) {
    for (int i = 0; i < 1000; i++) cpu->launch(p, NULL, NULL, sizes[k]); /* warm up */
    int n = 0; /* at most N launches or half a second: a loaded machine must not stall the suite */
    for (double start = now_s(); n < N && now_s() - start < 0.5; n++) {
      double t0 = now_s();
      cpu->launch(p, NULL, NULL, sizes[k]);
      t[n] = now_s() - t0;
    }
    qsort(t, (size_t)n, sizeof t[0], cmp_double);
    printf("launch overhead, empty kernel, %d thread%s: median %.2f us, p90 %.2f us, p99 %.2f us (%d launches)\n",
           (int)sizes[k], sizes[k] > 1 ? "s" : "", 1e6 * t[n / 2], 1e6 * t[n * 9 / 10], 1e6 * t[n * 99 / 100], n);
  }
  cpu->program_free(p);
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "child")) return child_main(argv[2]);
  const char *tmp = getenv("TMPDIR");
  snprintf(cache_dir, sizeof cache_dir, "%s/cgrad-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(cache_dir)) {
    perror("mkdtemp");
    return 1;
  }
  cg_set_config("CG_CACHE_DIR", cache_dir);
  cg_set_config("CG_THREADS", "2");
  test_devices();
  if (!cpu) return test_summary();
  test_cpu_alloc();
  test_lru();
  test_reserve_bound();
  test_alloc_threads();
  test_saxpy();
  test_corruption();
  test_errors();
  test_nocache();
  test_threads();
  test_concurrent_compile();
  bench_launch();
  const rt_stats *st = rt_get_stats();
  printf("stats: compiled %lld (%.2f s), errors %lld, disk hits %lld, rejects %lld, memory hits %lld, launches %lld\n",
         (long long)st->compiled, st->compile_seconds, (long long)st->compile_errors, (long long)st->disk_hits,
         (long long)st->disk_rejects, (long long)st->mem_hits, (long long)st->launches);
  rt_alloc_trim();
  remove_dir();
  return test_summary();
}
