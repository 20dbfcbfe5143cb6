/* Running a command line from a test: what it prints (as much as fits) and its exit status. */
#ifndef CG_TEST_RUN_CLI_H
#define CG_TEST_RUN_CLI_H
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

/* Run cmd through sh; out gets its stdout (n - 1 bytes at most, NUL-terminated). Returns
 * the exit status, or -1 when it could not run or was killed. */
static inline int run_command(const char *cmd, char *out, size_t n) {
  FILE *p = popen(cmd, "r");
  if (!p) return -1;
  size_t len = fread(out, 1, n - 1, p);
  out[len] = 0;
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
/* The losses of `cgrad train` run with CG_PRINT_LOSS=1 ("step N loss L" lines, N = 1, 2,
 * ...) into loss[0..max); returns how many in order from step 1. */
static inline int parse_losses(const char *out, double *loss, int max) {
  int n = 0;
  for (const char *p = strstr(out, "step "); p && n < max; p = strstr(p + 1, "\nstep ")) {
    int step;
    double l;
    if (sscanf(*p == '\n' ? p + 1 : p, "step %d loss %lf", &step, &l) == 2 && step == n + 1) loss[n++] = l;
  }
  return n;
}

#endif
