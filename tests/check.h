/* Tiny self-checking test helpers: CHECK counts failures and prints where; a test program
 * returns test_summary() from main, which prints "N passed, N failed" for its checks. */
#ifndef CG_TEST_CHECK_H
#define CG_TEST_CHECK_H
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_pass, t_fail;
#define CHECK(cond, ...)                                              \
  do {                                                                \
    if (cond) t_pass++;                                               \
    else {                                                            \
      t_fail++;                                                       \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, " " __VA_ARGS__);                               \
      fputc('\n', stderr);                                            \
    }                                                                 \
  } while (0)
/* a float32's bits and back */
static inline float bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
static inline uint32_t f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
static inline int test_summary(void) {
  printf("%d passed, %d failed\n", t_pass, t_fail);
  return t_fail ? 1 : 0;
}
/* got[i] within tol * (1 + |want[i]|) of the float64 reference; the first miss printed */
static inline bool near(const float *got, const double *want, int n, double tol, const char *what) {
  for (int i = 0; i < n; i++)
    if (!(fabs(got[i] - want[i]) <= tol * (1 + fabs(want[i])))) {
      fprintf(stderr, "  %s[%d]: got %.9g, want %.9g\n", what, i, got[i], want[i]);
      return false;
    }
  return true;
}
/* resident memory of this process in kB (VmRSS), -1 if unknown */
static inline long test_rss_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "VmRSS:", 6)) kb = atol(line + 6);
  if (f) fclose(f);
  return kb;
}
static inline long test_env_long(const char *name, long dflt) {
  const char *s = getenv(name);
  return s && *s ? strtol(s, NULL, 10) : dflt;
}
#endif
