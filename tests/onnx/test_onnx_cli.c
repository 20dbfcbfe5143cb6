/* `cgrad onnx`: info lists inputs, outputs, opset and op counts; run reads .npy inputs
 * and writes .npy outputs equal to ONNX's stored outputs (a conv case of the backend
 * test data, inputs written here from its .pb files); bench reports a latency; bad
 * arguments and a broken model fail with a message. Skips where the test data or ONNX
 * support is missing. */
#include <cgrad.h>
#include "run_cli.h"
#include "check.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int run(const char *cmd, char *out, size_t n) { return run_command(cmd, out, n); }

int main(void) {
  const char *cs = "/usr/share/libonnx-testdata/data/node/test_conv_with_strides_and_asymmetric_padding";
  struct stat sb;
  if (stat(cs, &sb)) {
    printf("SKIP: %s not found (apt-get install libonnx-testdata)\n", cs);
    return 0;
  }
  if (!cg_onnx_load("/nonexistent.onnx") && strstr(cg_last_error(), "without ONNX")) {
    printf("SKIP: %s\n", cg_last_error());
    return 0;
  }
  const char *bin = getenv("CG_BIN_DIR");
  char cgrad[1024], cmd[8192], dir[] = "/tmp/cgrad-onnx-cli-XXXXXX", p[2048];
  static char out[1 << 16];
  snprintf(cgrad, sizeof cgrad, "%s/cgrad", bin ? bin : ".");
  CHECK(mkdtemp(dir) != NULL);

  snprintf(cmd, sizeof cmd, "'%s' onnx info %s/model.onnx 2>&1", cgrad, cs);
  CHECK(run(cmd, out, sizeof out) == 0, "info:\n%s", out);
  CHECK(strstr(out, "input x: float32 (1, 1, 7, 5)") && strstr(out, "input W: float32 (1, 1, 3, 3)") &&
            strstr(out, "output y: float32 (1, 1, 4, 2)") && strstr(out, "ops: Conv 1") && strstr(out, "opset"),
        "info lists inputs, outputs, ops:\n%s", out);

  /* inputs as .npy from the case's .pb files */
  const char *names[2] = {"x", "W"};
  for (int i = 0; i < 2; i++) {
    snprintf(p, sizeof p, "%s/test_data_set_0/input_%d.pb", cs, i);
    cg_tensor *t = cg_onnx_load_tensor(p);
    snprintf(p, sizeof p, "%s/%s.npy", dir, names[i]);
    CHECK(t && cg_save_npy(p, t) == CG_OK, "%s", cg_last_error());
    cg_free(t);
  }
  snprintf(cmd, sizeof cmd, "'%s' onnx run %s/model.onnx --input x=%s/x.npy --input W=%s/W.npy --output-dir %s/out 2>&1", cgrad, cs, dir,
           dir, dir);
  CHECK(run(cmd, out, sizeof out) == 0, "run:\n%s", out);
  snprintf(p, sizeof p, "%s/out/y.npy", dir);
  cg_tensor *got = cg_load_npy(p);
  snprintf(p, sizeof p, "%s/test_data_set_0/output_0.pb", cs);
  cg_tensor *want = cg_onnx_load_tensor(p);
  CHECK(got && want && cg_numel(got) == 8 && cg_numel(want) == 8, "y.npy written with 8 values");
  if (got && want && cg_numel(got) == 8 && cg_numel(want) == 8) {
    float a[8], b[8];
    cg_read(got, CG_FLOAT32, a, sizeof a);
    cg_read(want, CG_FLOAT32, b, sizeof b);
    double worst = 0;
    for (int i = 0; i < 8; i++) worst = fmax(worst, fabs((double)a[i] - (double)b[i]) / (1 + fabs((double)b[i])));
    CHECK(worst < 1e-6, "y equals ONNX's output (float32: relative 1e-6), worst %g", worst);
  }
  cg_free(got);
  cg_free(want);

  snprintf(cmd, sizeof cmd, "'%s' onnx bench %s/model.onnx --iters 2 2>/dev/null", cgrad, cs);
  CHECK(run(cmd, out, sizeof out) == 0 && strstr(out, "items/s"), "bench:\n%s", out);

  /* errors */
  snprintf(cmd, sizeof cmd, "'%s' onnx run %s/model.onnx --input x=%s/x.npy 2>&1", cgrad, cs, dir);
  CHECK(run(cmd, out, sizeof out) == 1 && strstr(out, "input 'W' is missing"), "a missing input:\n%s", out);
  snprintf(cmd, sizeof cmd, "'%s' onnx run %s/model.onnx --input z=%s/x.npy 2>&1", cgrad, cs, dir);
  CHECK(run(cmd, out, sizeof out) == 1 && strstr(out, "no input 'z'"), "an unknown input:\n%s", out);
  snprintf(cmd, sizeof cmd, "'%s' onnx run %s/model.onnx --input x=%s/W.npy --input W=%s/W.npy 2>&1", cgrad, cs, dir, dir);
  CHECK(run(cmd, out, sizeof out) == 1 && strstr(out, "must have shape (1, 1, 7, 5)"), "a wrong shape:\n%s", out);
  snprintf(p, sizeof p, "%s/broken.onnx", dir);
  FILE *f = fopen(p, "wb");
  if (f) fputs("\x08\x07\x12\xff\xff\xff", f), fclose(f);
  snprintf(cmd, sizeof cmd, "'%s' onnx info %s 2>&1", cgrad, p);
  CHECK(run(cmd, out, sizeof out) == 1 && strstr(out, "not a valid ModelProto"), "a broken file:\n%s", out);
  snprintf(cmd, sizeof cmd, "'%s' onnx bench %s/model.onnx --iters zero 2>&1", cgrad, cs);
  CHECK(run(cmd, out, sizeof out) == 2, "a bad option value:\n%s", out);
  snprintf(cmd, sizeof cmd, "'%s' onnx frobnicate x 2>&1", cgrad);
  CHECK(run(cmd, out, sizeof out) == 2 && strstr(out, "unknown command"), "an unknown command:\n%s", out);

  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK(system(cmd) == 0);
  return test_summary();
}
