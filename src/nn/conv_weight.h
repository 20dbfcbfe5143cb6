/* Weight layouts (a convolution's, a transposed GEMM operand's), for callers that hold a
 * constant weight (the ONNX importer's initializers). */
#ifndef CG_NN_CONV_WEIGHT_H
#define CG_NN_CONV_WEIGHT_H
#include "cgrad.h"
/* Re-lay w (Cout, Cin/groups, K1..Kn), in place, as convolutions read it: w keeps its
 * shape and values, but now views a buffer with the output channels innermost, so a
 * convolution with these groups reads it without copying it first (else each use copies).
 * One copy kernel, realized now. Does nothing where no copy would be made (fewer than 8
 * output channels per group), for a weight that requires grad, or for a shape a
 * convolution would refuse. */
cg_status nn_conv_pack_weight(cg_tensor *w, int n, int64_t groups);
/* Re-lay a constant weight w, in place, as permute(w, perm) in memory: w keeps its shape
 * and values but views that buffer (a Gemm's transposed B read along its rows). One copy
 * kernel, realized now; nothing for an identity, a weight that requires grad, or one laid
 * out so already. */
cg_status nn_weight_relayout(cg_tensor *w, const int *perm);
#endif
