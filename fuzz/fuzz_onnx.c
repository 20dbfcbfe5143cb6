/* libFuzzer harness for the ONNX decoder and importer: any bytes go through
 * cg_onnx_load_memory (protobuf decoding, graph checks, initializers). With CG_FUZZ_RUN=1
 * a model that loads and whose inputs are small (at most 4096 elements each, unknown dims
 * taken as 1) is then imported and run, on inputs that are a ramp of small values cast to
 * each input's dtype, and its outputs realized (when none has over 2^16 elements).
 *
 * Running: on the CPU device every model's new kernels are compiled by cc (3-12
 * executions/s), so the run goes to the INTERP device unless DEVICE is set: the same
 * importer, scheduler and codegen, rendered to the interpreter with no compiler process.
 * Build and run: bench/fuzz.sh 60 onnx onnx_run (bench/fuzz_onnx.sh: onnx for a number of
 * executions). */
#include <cgrad.h>
#include <stdint.h>
#include <stdlib.h>

static cg_tensor *input_like(cg_dtype dt, const int64_t *s, int nd) {
  static float ramp[4096];
  int64_t n = 1;
  for (int d = 0; d < nd; d++) n *= s[d];
  for (int64_t i = 0; i < n; i++) ramp[i] = (float)(i % 7 - 3) * 0.5f;
  cg_tensor *f = cg_from_data(ramp, CG_FLOAT32, s, nd), *t = f ? cg_cast(f, dt) : NULL;
  return t ? t : cg_zeros(dt, s, nd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int run = -1;
  if (run < 0) {
    run = getenv("CG_FUZZ_RUN") && atoi(getenv("CG_FUZZ_RUN"));
    if (run && !getenv("DEVICE")) cg_set_config("DEVICE", "INTERP");
    if (run && !getenv("ONNX_MAX_ITERS")) cg_set_config("ONNX_MAX_ITERS", "64"); /* a Loop of 10^5 trips: minutes */
    /* a small valid model can still hold a large contraction (a ConvTranspose of 10^6
     * multiply-adds: 14 s under ASan; CI once timed out on such an input): ~0.05 s a kernel
     * in a Release build, ~1 s under ASan with libFuzzer's coverage (the timeout is 60 s) */
    if (run && !getenv("INTERP_MAX_STEPS")) cg_set_config("INTERP_MAX_STEPS", "2000000");
  }
  cg_onnx_model *m = cg_onnx_load_memory(data, size, NULL);
  if (!m) return 0;
  int nin = cg_onnx_num_inputs(m), nout = cg_onnx_num_outputs(m);
  if (run && nin <= 8 && nout <= 8) {
    cg_scope_begin();
    cg_tensor *in[8], *out[8];
    bool ok = true;
    for (int i = 0; i < nin && ok; i++) {
      int64_t s[CG_MAX_DIMS], n = 1;
      cg_dtype dt;
      int nd = cg_onnx_input_info(m, i, &dt, s);
      for (int d = 0; d < nd && n <= 4096; d++) s[d] = s[d] < 0 ? 1 : s[d], n *= s[d] > 4096 ? 4097 : s[d];
      ok = nd >= 0 && (int)dt >= 0 && n <= 4096 && (in[i] = input_like(dt, s, nd)) != NULL;
    }
    ok = ok && cg_onnx_run(m, in, nin, out, nout) == CG_OK;
    /* a valid model can still ask for a lot (a Tile by 16385: 47M elements, minutes on the
     * interpreter): outputs over 2^16 elements are built, not realized */
    for (int i = 0; i < nout && ok; i++) ok = cg_numel(out[i]) <= 65536;
    if (ok) cg_realize_many(out, nout);
    cg_scope_end();
  }
  cg_onnx_free(m);
  cg_clear_error();
  return 0;
}
