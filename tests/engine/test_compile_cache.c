/* The compile cache across processes: a second process running the same program
 * compiles nothing (DEBUG=2 says so) and loads every kernel from the disk cache. With
 * tiering (the default where AVX-512 is) the cold run's compiles happen in the background;
 * the child waits for them before it counts. */
#include "cgrad.h"
#include "check.h"
#include "runtime/device.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The child: a 10-op expression, then its counters on stdout. */
static int child(void) {
  float x[64];
  for (int i = 0; i < 64; i++) x[i] = (float)i / 64.0f;
  cg_tensor *a = cg_from_data(x, CG_FLOAT32, (int64_t[]){8, 8}, 2);
  cg_tensor *e = cg_exp(cg_mul(cg_sub(cg_add(a, cg_scalar(1)), cg_transpose(a, 0, 1)), cg_scalar(0.5)));
  cg_tensor *r = cg_sum(cg_sqrt(cg_add(cg_relu(e), cg_sigmoid(a))), NULL, 0, false);
  double v = cg_item(r);
  rt_x86_tier_wait();
  cg_stats s = cg_get_stats();
  printf("value=%.6f compiled=%llu cached=%llu\n", v, (unsigned long long)s.kernels_compiled, (unsigned long long)s.kernels_cached);
  return isnan(v) ? 1 : 0;
}

static int run_child(const char *self, const char *dir, char *out, size_t n) {
  int fd[2];
  if (pipe(fd)) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fd[1], 1);
    dup2(fd[1], 2); /* DEBUG output too */
    close(fd[0]);
    setenv("CG_CACHE_DIR", dir, 1);
    setenv("DEBUG", "2", 1);
    execl(self, self, "child", (char *)NULL);
    _exit(127);
  }
  close(fd[1]);
  size_t len = 0;
  ssize_t k;
  while (len + 1 < n && (k = read(fd[0], out + len, n - 1 - len)) > 0) len += (size_t)k;
  out[len] = 0;
  close(fd[0]);
  int st;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "child")) return child();
  char dir[] = "/tmp/cgrad-cache-test-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  static char out1[1 << 16], out2[1 << 16];
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  CHECK(n > 0);
  self[n > 0 ? n : 0] = 0;
  CHECK(run_child(self, dir, out1, sizeof out1) == 0, "first run failed:\n%s", out1);
  CHECK(run_child(self, dir, out2, sizeof out2) == 0, "second run failed:\n%s", out2);
  unsigned long long c1 = 0, h1 = 0, c2 = 99, h2 = 0;
  double v1 = 0, v2 = 1;
  const char *p1 = strstr(out1, "value="), *p2 = strstr(out2, "value=");
  CHECK(p1 && sscanf(p1, "value=%lf compiled=%llu cached=%llu", &v1, &c1, &h1) == 3, "output:\n%s", out1);
  CHECK(p2 && sscanf(p2, "value=%lf compiled=%llu cached=%llu", &v2, &c2, &h2) == 3, "output:\n%s", out2);
  CHECK(c1 > 0, "the cold run compiles (%llu)", c1);
  CHECK(c2 == 0, "the warm run compiles nothing (%llu)", c2);
  CHECK(h2 == c1, "the warm run loads every kernel from disk (%llu of %llu)", h2, c1);
  CHECK(v1 == v2, "same result (%f, %f)", v1, v2);
  CHECK(strstr(out2, "compiled 0 kernels") != NULL, "DEBUG=2 says nothing was compiled:\n%s", out2);
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK(system(cmd) == 0);
  return test_summary();
}
