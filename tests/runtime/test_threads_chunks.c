/* How a launch's THREAD range is cut and run (runtime/cpu_launch.c): the chunks of every
 * size and thread count cover [0, n) once, in order, never growing, within the bound the
 * launch allocates for (and n chunks of one trip when there are more threads than trips);
 * a launch runs every trip exactly once on 1, 2, 3, 5 and 8 threads, sizes 1 to 1001
 * (more threads than work too); CG_POOL_TRACE prints one line per launch whose
 * per-thread chunk counts add up to its chunks and change no result; and kernels the
 * heuristic threads (a float32 matmul of odd sizes, a bf16 matmul with GELU on the bf16
 * unit where the CPU has one, a column sum, a row sum) give the same bits on 1, 2, 3 and
 * 5 threads, traced or not, with float64-checked values. Fresh random inputs (the seed
 * is printed). (Named test_threads_*: test.sh runs it under TSan too.) */
#include "check.h"
#include "runtime/device.h"
#include "runtime/threadpool.h"
#include <cgrad.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void chunk_shapes(void) {
  const int64_t ns[] = {0, 1, 2, 3, 5, 7, 8, 9, 12, 31, 48, 255, 256, 257, 1000, 12289, 196608, 786433, (int64_t)1 << 33};
  const int ts[] = {2, 3, 4, 5, 8, 16, 64, 1000};
  for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
    for (size_t b = 0; b < sizeof ts / sizeof *ts; b++) {
      int64_t n = ns[a];
      int t = ts[b], max = rt_cpu_max_chunks(t) + 1;
      int64_t *at = malloc(sizeof *at * (size_t)max);
      int c = rt_cpu_chunks(n, t, at, max);
      bool ok = at[0] == 0 && at[c] == n && c <= rt_cpu_max_chunks(t) && (n == 0 ? c == 0 : c >= 1);
      for (int i = 0; ok && i < c; i++) ok = at[i + 1] > at[i] && (i == 0 || i == c - 1 || at[i + 1] - at[i] <= at[i] - at[i - 1]);
      CHECK(ok, "n %lld, %d threads: %d chunks, the cover of [0, n) broken or a chunk longer than the one before", (long long)n, t, c);
      if (n > 0 && n <= t) CHECK(c == n, "n %lld < %d threads: %d chunks, expected one trip each", (long long)n, t, c);
      if (n >= 2 * t) CHECK(c >= 2 * t || c >= 8, "n %lld, %d threads: only %d chunks to share", (long long)n, t, c);
      free(at);
    }
  /* a bound too small: the last chunk takes the rest */
  int64_t at[3];
  int c = rt_cpu_chunks(1000, 2, at, 3);
  CHECK(c == 2 && at[0] == 0 && at[1] > 0 && at[1] < 1000 && at[2] == 1000, "1000 trips in at most 2 chunks: %d chunks, %lld %lld", c, (long long)at[1], (long long)at[2]);
}

/* every trip of a launch once: counts[i] += 1 for i in [lo, hi) */
static void count_trips(void **bufs, const int64_t *vars, int64_t lo, int64_t hi) {
  (void)vars;
  _Atomic int *counts = bufs[0];
  for (int64_t i = lo; i < hi; i++) atomic_fetch_add(&counts[i], 1);
}

static void set_threads(int t) {
  char s[16];
  snprintf(s, sizeof s, "%d", t);
  cg_set_config("CG_THREADS", s);
}

static void every_trip_once(void) {
  const int ts[] = {1, 2, 3, 5, 8};
  const int64_t ns[] = {1, 2, 3, 4, 7, 9, 33, 257, 1001};
  _Atomic int *counts = calloc(1001, sizeof *counts);
  for (size_t a = 0; a < sizeof ts / sizeof *ts; a++) {
    set_threads(ts[a]);
    CHECK(rt_pool_size() == ts[a], "pool of %d threads, got %d", ts[a], rt_pool_size());
    for (size_t b = 0; b < sizeof ns / sizeof *ns; b++) {
      for (int i = 0; i < 1001; i++) atomic_store(&counts[i], 0);
      void *bufs[1] = {counts};
      for (int r = 0; r < 3; r++) rt_cpu_run_kernel(0, "count_trips", count_trips, bufs, NULL, ns[b]);
      int bad = -1;
      for (int i = 0; i < 1001 && bad < 0; i++)
        if (atomic_load(&counts[i]) != (i < ns[b] ? 3 : 0)) bad = i;
      CHECK(bad < 0, "%d threads, %lld trips: trip %d ran %d times in 3 launches", ts[a], (long long)ns[b], bad, bad < 0 ? 0 : atomic_load(&counts[bad]));
    }
  }
  free(counts);
}

/* stderr into a temporary file while fn runs; its text returned (malloc'd) */
static char *capture_stderr(void (*fn)(void *), void *ctx) {
  char path[] = "/tmp/cg_test_chunks_XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return NULL;
  fflush(stderr);
  int saved = dup(2);
  dup2(fd, 2);
  fn(ctx);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  off_t len = lseek(fd, 0, SEEK_END);
  char *text = calloc((size_t)len + 1, 1);
  if (text && pread(fd, text, (size_t)len, 0) != len) text[0] = 0;
  close(fd);
  unlink(path);
  return text;
}

static void traced_launches(void *ctx) {
  _Atomic int *counts = ctx;
  void *bufs[1] = {counts};
  cg_set_config("CG_POOL_TRACE", "1");
  rt_cpu_run_kernel(0, "count_trips", count_trips, bufs, NULL, 1001);
  rt_cpu_run_kernel(0, "count_trips", count_trips, bufs, NULL, 1);
  cg_set_config("CG_POOL_TRACE", "0");
  rt_cpu_run_kernel(0, "count_trips", count_trips, bufs, NULL, 1001); /* not traced */
}

/* The trace: one line per traced launch, chunks per thread adding up to the launch's. */
static void trace_lines(void) {
  set_threads(3);
  _Atomic int *counts = calloc(1001, sizeof *counts);
  char *text = capture_stderr(traced_launches, counts);
  CHECK(text != NULL, "stderr captured");
  int lines = 0;
  for (char *l = text; l && *l;) {
    char *end = strchr(l, '\n');
    if (end) *end = 0;
    if (!strncmp(l, "pool count_trips ", 17)) {
      lines++;
      long long trips = -1;
      int chunks = -1, sum = 0, nthreads = 0;
      double wall = -1;
      char *p = strstr(l, "trips=");
      if (p) trips = atoll(p + 6);
      if ((p = strstr(l, "chunks="))) chunks = atoi(p + 7);
      if ((p = strstr(l, "wall_us="))) wall = atof(p + 8);
      for (p = strstr(l, " | t"); p; p = strstr(p + 1, " | t")) {
        char *c = strstr(p, "chunks=");
        char *b = strstr(p, "busy_us=");
        nthreads++;
        if (c) sum += atoi(c + 7);
        CHECK(b && atof(b + 8) <= wall + 1000, "a thread busy %.1f us in a launch of %.1f us: %s", b ? atof(b + 8) : -1, wall, l);
      }
      CHECK(trips == 1001 || trips == 1, "trips in %s", l);
      CHECK(sum == chunks && chunks >= 1, "the threads' chunks (%d) add up to the launch's (%d): %s", sum, chunks, l);
      CHECK(nthreads == (trips == 1 ? 1 : 3), "%d threads listed for %lld trips on 3: %s", nthreads, trips, l);
    }
    l = end ? end + 1 : NULL;
  }
  CHECK(lines == 2, "2 traced launches, %d lines", lines);
  int bad = -1;
  for (int i = 0; i < 1001 && bad < 0; i++)
    if (atomic_load(&counts[i]) != (i == 0 ? 3 : 2)) bad = i;
  CHECK(bad < 0, "traced launches ran trip %d %d times", bad, bad < 0 ? 0 : atomic_load(&counts[bad]));
  free(text);
  free(counts);
}

/* Kernels the heuristic threads, the same bits on any thread count. */
#define NOUT 4
static const int64_t M = 131, K = 257, N = 67;
static float *ha, *hb, *hc;
static size_t nout[NOUT] = {131 * 67, 131 * 67, 33, 1000};

static void run_models(float *out[NOUT]) {
  cg_scope_begin();
  cg_tensor *a = cg_from_data(ha, CG_FLOAT32, (int64_t[]){M, K}, 2), *b = cg_from_data(hb, CG_FLOAT32, (int64_t[]){K, N}, 2);
  cg_tensor *c = cg_from_data(hc, CG_FLOAT32, (int64_t[]){1000, 33}, 2);
  cg_tensor *y[NOUT] = {cg_matmul(a, b), cg_cast(cg_gelu(cg_matmul(cg_cast(a, CG_BFLOAT16), cg_cast(b, CG_BFLOAT16))), CG_FLOAT32),
                        cg_sum(c, (int[]){0}, 1, false), cg_sum(c, (int[]){1}, 1, false)};
  for (int i = 0; i < NOUT; i++) {
    cg_status st = cg_read(y[i], CG_FLOAT32, out[i], sizeof(float) * nout[i]);
    CHECK(st == CG_OK, "output %d: %s", i, cg_last_error());
  }
  cg_scope_end();
}

static void run_models_traced(void *ctx) {
  cg_set_config("CG_POOL_TRACE", "1");
  run_models(ctx);
  cg_set_config("CG_POOL_TRACE", "0");
}

static void same_bits(void) {
  uint64_t seed = (uint64_t)time(NULL) * 2654435761u + (uint64_t)getpid();
  printf("seed %llu\n", (unsigned long long)seed);
  ha = malloc(sizeof(float) * M * K), hb = malloc(sizeof(float) * K * N), hc = malloc(sizeof(float) * 1000 * 33);
  for (int64_t i = 0; i < M * K + K * N + 33000; i++) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    float v = (float)((seed >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
    if (i < M * K) ha[i] = v;
    else if (i < M * K + K * N) hb[i - M * K] = v;
    else hc[i - M * K - K * N] = v;
  }
  float *one[NOUT], *other[NOUT];
  for (int i = 0; i < NOUT; i++) one[i] = malloc(sizeof(float) * nout[i]), other[i] = malloc(sizeof(float) * nout[i]);
  set_threads(1);
  run_models(one);
  /* against float64: the float32 matmul and both sums */
  double worst = 0;
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) {
      double s = 0, mag = 0;
      for (int64_t k = 0; k < K; k++) s += (double)ha[i * K + k] * hb[k * N + j], mag += fabs((double)ha[i * K + k] * hb[k * N + j]);
      double e = fabs(one[0][i * N + j] - s) / (mag + 1e-30);
      if (e > worst) worst = e;
    }
  CHECK(worst < 1e-5, "float32 matmul off float64 by %.3g of the sum of |products| (tolerance 1e-5)", worst);
  bool ok = true;
  for (int j = 0; j < 33 && ok; j++) {
    double s = 0;
    for (int i = 0; i < 1000; i++) s += hc[i * 33 + j];
    ok = fabs(one[2][j] - s) <= 1e-4 * 1000;
  }
  for (int i = 0; i < 1000 && ok; i++) {
    double s = 0;
    for (int j = 0; j < 33; j++) s += hc[i * 33 + j];
    ok = fabs(one[3][i] - s) <= 1e-5 * 33;
  }
  CHECK(ok, "column and row sums off float64 (tolerance 1e-4 of the count)");
  for (int i = 0; i < M * N && ok; i++) ok = isfinite(one[1][i]);
  CHECK(ok, "bf16 matmul with GELU: a value not finite");
  const int ts[] = {2, 3, 5};
  for (size_t a = 0; a < sizeof ts / sizeof *ts; a++)
    for (int traced = 0; traced < 2; traced++) {
      set_threads(ts[a]);
      if (traced) free(capture_stderr(run_models_traced, other));
      else run_models(other);
      for (int i = 0; i < NOUT; i++) {
        size_t bad = SIZE_MAX;
        for (size_t e = 0; e < nout[i] && bad == SIZE_MAX; e++)
          if (memcmp(&one[i][e], &other[i][e], sizeof(float))) bad = e;
        CHECK(bad == SIZE_MAX, "output %d on %d threads%s: element %zu is %a, %a on 1 thread", i, ts[a], traced ? " (traced)" : "", bad,
              bad == SIZE_MAX ? 0 : other[i][bad], bad == SIZE_MAX ? 0 : one[i][bad]);
      }
    }
  for (int i = 0; i < NOUT; i++) free(one[i]), free(other[i]);
  free(ha), free(hb), free(hc);
}

int main(void) {
  chunk_shapes();
  every_trip_once();
  trace_lines();
  same_bits();
  return test_summary();
}
