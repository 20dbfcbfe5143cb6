/* Real models: torchvision's resnet18, mobilenet_v2, squeezenet1_0, efficientnet_b0 and a
 * small vision transformer, random weights from a fresh seed, exported to ONNX by
 * make_torchvision_models.py, run in cgrad and compared with torch's output: max |diff| at
 * most 1e-4 of max |torch| (float32 through ~20-50 layers), on the first run and on two
 * replays (cg_onnx_run replays through a JIT after a captured run with other input values).
 * Skips where /usr/bin/python3 has no torch/torchvision. */
#include <cgrad.h>
#include "check.h"
#include <math.h>
#include <string.h>
#include <time.h>

int main(void) {
#ifndef CG_HAVE_ONNX
  printf("SKIP: built without ONNX support\n");
  return 0;
#else
  if (system("/usr/bin/python3 -c 'import torch, torchvision' >/dev/null 2>&1")) {
    printf("SKIP: /usr/bin/python3 has no torch/torchvision (apt-get install python3-torchvision)\n");
    return 0;
  }
  const char *bin = getenv("CG_BIN_DIR"), *src = getenv("CG_TEST_DATA");
  char dir[1024], cmd[4096];
  snprintf(dir, sizeof dir, "%s/onnx_models", bin ? bin : ".");
  unsigned seed = (unsigned)time(NULL) % 100000;
  printf("seed %u\n", seed);
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/../onnx/make_torchvision_models.py %s %u", src ? src : "tests/data", dir, seed);
  if (system(cmd)) {
    CHECK(0, "export failed: %s", cmd);
    return test_summary();
  }
  const char *names[] = {"resnet18", "mobilenet_v2", "squeezenet1_0", "efficientnet_b0", "vit_small"};
  for (int i = 0; i < 5; i++) {
    char p[1200];
    snprintf(p, sizeof p, "%s/%s.onnx", dir, names[i]);
    cg_onnx_model *m = cg_onnx_load(p);
    CHECK(m, "%s: %s", names[i], cg_last_error());
    if (!m) continue;
    snprintf(p, sizeof p, "%s/%s.input.npy", dir, names[i]);
    cg_tensor *x = cg_load_npy(p), *y = NULL;
    snprintf(p, sizeof p, "%s/%s.output.npy", dir, names[i]);
    cg_tensor *want = cg_load_npy(p);
    clock_t t0 = clock();
    /* five runs: x (built), x (the JIT's eager call), zeros (the call it records), x, x
     * (replays, which must bind the new input); the first and the replays against torch */
    cg_tensor *zero = x ? cg_zeros(CG_FLOAT32, cg_shape(x), cg_ndim(x)) : NULL;
    for (int r = 0; r < 5; r++) {
    cg_free(y), y = NULL;
    cg_tensor *in = r == 2 ? zero : x;
    CHECK(in && want && cg_onnx_run(m, &in, 1, &y, 1) == CG_OK && cg_realize(y) == CG_OK, "%s run %d: %s", names[i], r, cg_last_error());
    if (r == 1 || r == 2) continue;
    if (y && want && cg_numel(y) == cg_numel(want)) {
      int64_t n = cg_numel(y);
      float *a = malloc(sizeof(float) * (size_t)n), *b = malloc(sizeof(float) * (size_t)n);
      cg_read(y, CG_FLOAT32, a, sizeof(float) * (size_t)n);
      cg_read(want, CG_FLOAT32, b, sizeof(float) * (size_t)n);
      double md = 0, mx = 0;
      for (int64_t k = 0; k < n; k++) md = fmax(md, fabs((double)a[k] - (double)b[k])), mx = fmax(mx, fabs((double)b[k]));
      printf("%-16s run %d: max |diff| %.3g, max |torch| %.3g, relative %.3g (%.1f s cpu)\n", names[i], r, md, mx, md / mx,
             (double)(clock() - t0) / CLOCKS_PER_SEC);
      CHECK(mx > 0 && md <= 1e-4 * mx, "%s run %d: relative difference %g > 1e-4 (or an all-zero output)", names[i], r, md / mx);
      free(a);
      free(b);
    } else CHECK(0, "%s: output has %lld elements, torch's %lld", names[i], y ? (long long)cg_numel(y) : -1LL,
                 want ? (long long)cg_numel(want) : -1LL);
    }
    cg_free(zero);
    cg_free(x);
    cg_free(y);
    cg_free(want);
    cg_onnx_free(m);
  }
  return test_summary();
#endif
}
