/* Running a command line from a test: what it prints (as much as fits) and its exit status. */
#ifndef CG_TEST_RUN_CLI_H
#define CG_TEST_RUN_CLI_H
#include <stdio.h>
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
#endif
