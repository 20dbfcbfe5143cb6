/* The whole ONNX backend suite (Debian's libonnx-testdata): every case of node/, simple/,
 * pytorch-operator/, pytorch-converted/, with its result and reason, then counts by
 * directory and the time taken.
 *
 *   bench_onnx_suite [DATA_DIR] [--only SUBSTRING] > results.txt
 *
 * Lines "RESULT dir/case pass|FAIL|unsupported reason" are what
 * tests/onnx/backend_expected_failures.txt is made from. */
#include "../tests/onnx/backend.h"
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
  const char *root = ONNX_TESTDATA, *only = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
    else root = argv[i];
  }
  const char *dirs[] = {"node", "simple", "pytorch-operator", "pytorch-converted"};
  double t0 = now();
  int tot[3] = {0};
  for (int d = 0; d < 4; d++) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", root, dirs[d]);
    int n, cnt[3] = {0};
    char **cases = list_dir(dir, "test_", &n);
    double td = now();
    for (int i = 0; i < n; i++) {
      if (only && !strstr(cases[i], only)) continue;
      char cdir[4096], why[1024];
      snprintf(cdir, sizeof cdir, "%s/%s", dir, cases[i]);
      double tc = now();
      case_result r = run_case(cdir, why, sizeof why);
      for (char *p = why; *p; p++)
        if (*p == '\n') *p = ' ';
      cnt[r]++;
      printf("RESULT %s/%s %s %.2fs %s\n", dirs[d], cases[i], case_result_name[r], now() - tc, why);
      fflush(stdout);
    }
    int all = cnt[0] + cnt[1] + cnt[2];
    printf("DIR %s: %d cases, %d pass (%.1f%%), %d fail, %d unsupported, %.1f s\n", dirs[d], all, cnt[0],
           all ? 100.0 * cnt[0] / all : 0.0, cnt[1], cnt[2], now() - td);
    for (int k = 0; k < 3; k++) tot[k] += cnt[k];
    free_list(cases, n);
  }
  int all = tot[0] + tot[1] + tot[2];
  printf("TOTAL: %d cases, %d pass (%.1f%%), %d fail, %d unsupported, %.1f s; kernels compiled %llu, cached %llu\n", all, tot[0],
         all ? 100.0 * tot[0] / all : 0.0, tot[1], tot[2], now() - t0, (unsigned long long)cg_get_stats().kernels_compiled,
         (unsigned long long)cg_get_stats().kernels_cached);
  return 0;
}
