/* What a kernel launch costs the thread pool (runtime/cpu_launch.c, threadpool.c): a
 * kernel of T trips launched N times in a row, as a JIT replay launches, on 1 thread and
 * on CG_THREADS (default 2) threads: the microseconds per launch, best of 5 rounds, and
 * on N threads the time above a perfect split of the 1-thread time (the hand-off: waking
 * and claiming, the last chunk's wait). Two kernels: "spin" does ~20 adds a trip and
 * touches no memory (the pool's own cost), "write" adds 1 to 256 bytes a trip of a
 * buffer rewritten every launch (the same bytes every launch, so a trip that moves to the
 * other core from one launch to the next also moves its cache lines).
 *   usage: bench_launch [launches=20000] [trips...]   (default trips: 2 12 48 256 2048) */
#define _GNU_SOURCE
#include "bench_util.h"
#include "runtime/device.h"
#include "runtime/threadpool.h"
#include <stdint.h>
#include <string.h>

static float *buf;

static void spin(void **bufs, const int64_t *vars, int64_t lo, int64_t hi) {
  (void)bufs, (void)vars;
  volatile int x = 0;
  for (int64_t i = lo; i < hi; i++)
    for (int j = 0; j < 20; j++) x++;
}

static void write_trips(void **bufs, const int64_t *vars, int64_t lo, int64_t hi) {
  (void)bufs, (void)vars;
  for (int64_t i = lo; i < hi; i++)
    for (int j = 0; j < 64; j++) buf[i * 64 + j] += 1.0f;
}

static double per_launch_us(rt_cpu_kernel_fn fn, int64_t trips, int n) {
  double best = 1e30;
  rt_cpu_run_kernel(0, "bench", fn, NULL, NULL, trips); /* the pool made, the buffer touched */
  for (int r = 0; r < 5; r++) {
    double t0 = now();
    for (int i = 0; i < n; i++) rt_cpu_run_kernel(0, "bench", fn, NULL, NULL, trips);
    double t = (now() - t0) / n * 1e6;
    if (t < best) best = t;
  }
  return best;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 20000;
  int64_t dflt[] = {2, 12, 48, 256, 2048}, *trips = dflt;
  int ntrips = 5;
  if (argc > 2) {
    trips = malloc(sizeof *trips * (size_t)(argc - 2));
    for (int i = 2; i < argc; i++) trips[i - 2] = atoll(argv[i]);
    ntrips = argc - 2;
  }
  if (n < 1 || !trips) return fprintf(stderr, "usage: bench_launch [launches] [trips...]\n"), 1;
  const char *env = getenv("CG_THREADS");
  int t = env && atoi(env) > 1 ? atoi(env) : 2;
  char ts[16];
  snprintf(ts, sizeof ts, "%d", t);
  int64_t most = 0;
  for (int i = 0; i < ntrips; i++) most = trips[i] > most ? trips[i] : most;
  buf = calloc((size_t)most * 64, sizeof *buf);
  if (!buf) return 1;
  FILE *f = fopen("/proc/loadavg", "r");
  char load[64] = "?";
  if (f && !fgets(load, sizeof load, f)) strcpy(load, "?");
  if (f) fclose(f);
  load[strcspn(load, "\n")] = 0;
  printf("load %s; %d launches a round, best of 5; us per launch\n", load, n);
  printf("%-6s %8s %10s %10s %8s %14s\n", "kernel", "trips", "1 thread", "threads", "x", "above split");
  struct { const char *name; rt_cpu_kernel_fn fn; } k[2] = {{"spin", spin}, {"write", write_trips}};
  for (int j = 0; j < 2; j++)
    for (int i = 0; i < ntrips; i++) {
      cg_set_config("CG_THREADS", "1");
      double one = per_launch_us(k[j].fn, trips[i], n);
      cg_set_config("CG_THREADS", ts);
      int got = rt_pool_size();
      double many = per_launch_us(k[j].fn, trips[i], n);
      printf("%-6s %8lld %10.2f %7.2f (%d) %8.2f %14.2f\n", k[j].name, (long long)trips[i], one, many, got, one / many, many - one / got);
    }
  free(buf);
  if (trips != dflt) free(trips);
  return 0;
}
