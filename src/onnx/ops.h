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
/* Conv on c's inputs 0..2 (QLinearConv and ConvInteger reuse it). */
cg_status onnx_conv(onnx_ctx *c);
#endif
