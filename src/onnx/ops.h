/* The op tables of the ops_*.c files, each ended by {NULL, NULL}; onnx_find_op searches them. */
#ifndef CG_ONNX_OPS_H
#define CG_ONNX_OPS_H
#include "onnx/onnx.h"
extern const onnx_op onnx_ops_elementwise[];
extern const onnx_op onnx_ops_reduce[];
extern const onnx_op onnx_ops_shape[];
extern const onnx_op onnx_ops_nn[];
extern const onnx_op onnx_ops_resize[];
extern const onnx_op onnx_ops_quant[];
extern const onnx_op onnx_ops_rnn[];
extern const onnx_op onnx_ops_host[];
extern const onnx_op onnx_ops_signal[];
extern const onnx_op onnx_ops_control[];
extern const onnx_op onnx_ops_seq[];
extern const onnx_op onnx_ops_train[]; /* domain ai.onnx.preview.training */
/* Conv on c's inputs 0..2 (QLinearConv and ConvInteger reuse it). */
cg_status onnx_conv(onnx_ctx *c);
void onnx_pack_weights(onnx_graph *gr); /* once, before the first run */
/* data with data.flat[pos[j]] = updates.flat[j] (reduction "none", "add", "mul", "max",
 * "min"), as output 0 of c. */
cg_status onnx_scatter_flat(onnx_ctx *c, cg_tensor *data, cg_tensor *upd, const int64_t *pos, int64_t nupd, const char *red);
/* Input i's values as int64 (malloc'd), the count in *n. */
int64_t *onnx_read_indices(onnx_ctx *c, int i, int64_t *n);
#endif
