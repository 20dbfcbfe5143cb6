/* Built when protobuf-c or onnx.proto was missing at configure time: the ONNX API exists
 * and fails saying what to install. */
#include "cgrad.h"
#include "core/error.h"

#define CG_NO_ONNX "cgrad was built without ONNX support (install protobuf-c-compiler libprotobuf-c-dev libonnx-dev and reconfigure)"
cg_onnx_model *cg_onnx_load(const char *path) { (void)path; return cg_fail_null(CG_ERR_INVALID, CG_NO_ONNX); }
cg_onnx_model *cg_onnx_load_memory(const void *d, size_t n, const char *b) { (void)d, (void)n, (void)b; return cg_fail_null(CG_ERR_INVALID, CG_NO_ONNX); }
void cg_onnx_free(cg_onnx_model *m) { (void)m; }
int cg_onnx_num_inputs(const cg_onnx_model *m) { (void)m; return -1; }
int cg_onnx_num_outputs(const cg_onnx_model *m) { (void)m; return -1; }
const char *cg_onnx_input_name(const cg_onnx_model *m, int i) { (void)m, (void)i; return NULL; }
const char *cg_onnx_output_name(const cg_onnx_model *m, int i) { (void)m, (void)i; return NULL; }
int cg_onnx_input_info(const cg_onnx_model *m, int i, cg_dtype *dt, int64_t *s) { (void)m, (void)i, (void)dt, (void)s; return -1; }
int cg_onnx_output_info(const cg_onnx_model *m, int i, cg_dtype *dt, int64_t *s) { (void)m, (void)i, (void)dt, (void)s; return -1; }
int64_t cg_onnx_opset(const cg_onnx_model *m) { (void)m; return -1; }
int cg_onnx_num_nodes(const cg_onnx_model *m) { (void)m; return -1; }
const char *cg_onnx_node_op(const cg_onnx_model *m, int i) { (void)m, (void)i; return NULL; }
cg_status cg_onnx_run(cg_onnx_model *m, cg_tensor *const *in, int ni, cg_tensor **out, int no) {
  (void)m, (void)in, (void)ni, (void)out, (void)no;
  return cg_fail(CG_ERR_INVALID, CG_NO_ONNX);
}
cg_tensor *cg_onnx_load_tensor(const char *path) { (void)path; return cg_fail_null(CG_ERR_INVALID, CG_NO_ONNX); }
bool cg_onnx_input_is_sequence(const cg_onnx_model *m, int i) { (void)m, (void)i; return false; }
bool cg_onnx_output_is_sequence(const cg_onnx_model *m, int i) { (void)m, (void)i; return false; }
cg_status cg_onnx_run_values(cg_onnx_model *m, const cg_onnx_value *in, int ni, cg_onnx_value *out, int no) {
  (void)m, (void)in, (void)ni, (void)out, (void)no;
  return cg_fail(CG_ERR_INVALID, CG_NO_ONNX);
}
cg_tensor **cg_onnx_load_sequence(const char *path, int *n) { (void)path, (void)n; return cg_fail_null(CG_ERR_INVALID, CG_NO_ONNX); }
