/* Helpers the benchmark programs share: a monotonic clock, the process's CPU time, a comparison for qsort (medians),
 * and a fatal message for a failed cgrad call. */
#ifndef CG_BENCH_UTIL_H
#define CG_BENCH_UTIL_H
#include "cgrad.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}
/* CPU time of the whole process (all threads): under load it counts the work done, not the
 * time others held the cores. */
static inline double cpu_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}
static inline int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}
static inline void die_cg(const char *what) {
  fprintf(stderr, "cgrad failed in %s: %s\n", what, cg_last_error());
  exit(1);
}
#endif
