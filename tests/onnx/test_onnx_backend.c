/* ONNX's backend test suite (Debian's libonnx-testdata): every case of node/, simple/,
 * pytorch-operator/ and pytorch-converted/ runs on its test_data_set_* inputs and is
 * compared with the stored outputs (rtol 1e-3, atol 1e-7, same dtype and shape).
 * tests/data/onnx_backend_expected_failures.txt lists the cases that do not pass, each with its reason;
 * the test fails when a listed case passes (take it off the list) or an unlisted case
 * does not. Skips with a message where the test data or ONNX support is missing.
 * The whole suite is run: with the kernel disk cache warm it takes seconds; cold, about
 * a minute and a half on 2 cores (one kernel compile is ~50-100 ms). */
#include "backend.h"

#define MAX_LIST 2048

int main(void) {
  struct stat st;
  if (stat(ONNX_TESTDATA "/node", &st)) {
    printf("SKIP: %s not found (apt-get install libonnx-testdata)\n", ONNX_TESTDATA "/node");
    return 0;
  }
  if (!cg_onnx_load("/nonexistent.onnx") && strstr(cg_last_error(), "without ONNX")) {
    printf("SKIP: %s\n", cg_last_error());
    return 0;
  }
  const char *src = getenv("CG_TEST_DATA");
  char lpath[4096];
  snprintf(lpath, sizeof lpath, "%s/onnx_backend_expected_failures.txt", src ? src : "tests/data");
  FILE *f = fopen(lpath, "r");
  if (!f) {
    printf("FAIL: cannot open %s\n", lpath);
    return 1;
  }
  static char *listed[MAX_LIST];
  static bool seen[MAX_LIST];
  int nl = 0;
  char line[2048];
  while (fgets(line, sizeof line, f) && nl < MAX_LIST) {
    if (line[0] == '#' || line[0] == '\n') continue;
    char *sp = strpbrk(line, " \t\n");
    if (!sp || *sp == '\n') {
      printf("FAIL: %s: '%s' has no reason\n", lpath, line);
      fclose(f);
      return 1;
    }
    *sp = 0;
    listed[nl++] = strdup(line);
  }
  fclose(f);
  const char *dirs[] = {"node", "simple", "pytorch-operator", "pytorch-converted"};
  int bad = 0;
  for (int d = 0; d < 4; d++) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", ONNX_TESTDATA, dirs[d]);
    int n, cnt[3] = {0};
    char **cases = list_dir(dir, "test_", &n);
    for (int i = 0; i < n; i++) {
      char cdir[2048], name[1024], why[1024];
      snprintf(cdir, sizeof cdir, "%s/%s", dir, cases[i]);
      snprintf(name, sizeof name, "%s/%s", dirs[d], cases[i]);
      case_result r = run_case(cdir, why, sizeof why);
      cnt[r]++;
      int k = 0;
      while (k < nl && strcmp(listed[k], name)) k++;
      if (k < nl) seen[k] = true;
      if (r == CASE_PASS && k < nl) {
        printf("UNEXPECTED PASS: %s (remove it from onnx_backend_expected_failures.txt)\n", name);
        bad++;
      } else if (r != CASE_PASS && k == nl) {
        printf("UNEXPECTED %s: %s: %s\n", case_result_name[r], name, why);
        bad++;
      }
    }
    int all = cnt[0] + cnt[1] + cnt[2];
    printf("%-18s %4d cases: %4d pass (%.1f%%), %3d fail, %3d unsupported\n", dirs[d], all, cnt[0], all ? 100.0 * cnt[0] / all : 0.0,
           cnt[1], cnt[2]);
    free_list(cases, n);
  }
  for (int k = 0; k < nl; k++) {
    if (!seen[k]) {
      printf("LISTED BUT MISSING: %s (no such case)\n", listed[k]);
      bad++;
    }
    free(listed[k]);
  }
  printf("%s: %d unexpected results\n", bad ? "FAIL" : "OK", bad);
  return bad ? 1 : 0;
}
