/* libFuzzer harness for the ONNX decoder and importer: any bytes go through
 * cg_onnx_load_memory (protobuf decoding, graph checks, initializers); a model that loads
 * and whose inputs all have small fixed shapes is then imported and run on zeros when
 * CG_FUZZ_RUN=1 (slower: kernels compile). Build and run: bench/fuzz_onnx.sh. */
#include <cgrad.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int run = -1;
  if (run < 0) run = getenv("CG_FUZZ_RUN") && atoi(getenv("CG_FUZZ_RUN"));
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
      for (int d = 0; d < nd; d++) n *= s[d] < 0 ? 1 : s[d], s[d] = s[d] < 0 ? 1 : s[d];
      ok = nd >= 0 && (int)dt >= 0 && n <= 4096 && (in[i] = cg_zeros(dt, s, nd)) != NULL;
    }
    if (ok && cg_onnx_run(m, in, nin, out, nout) == CG_OK) cg_realize_many(out, nout);
    cg_scope_end();
  }
  cg_onnx_free(m);
  cg_clear_error();
  return 0;
}
