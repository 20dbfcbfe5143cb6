/* bf16 autocast linear: y = bf16(x) @ bf16(w)^T + b with float32 sums, and a backward
 * whose matmuls are bf16 too (the output gradient rounded to bf16, as torch.autocast's
 * is, since its matmul outputs are bf16):
 *
 *   dx = bf16(g) @ bf16(w),   dw = bf16(g)^T @ bf16(x)
 *
 * The fp16 autocast linear (cg_linear_f16) is the same with float16 for bf16, and dx and
 * dw rounded to f16 too (torch's fp16 matmuls write f16: an overflow is inf, which the
 * loss scaling must see): dx = f16(f16(g) @ f16(w)), dw = f16(f16(g)^T @ f16(x)). There
 * is no unit for f16 pairs, so every operand is the float32 of its f16 rounding and the
 * products are the float32 GEMM's, at its speed: x's and g's copies are stored so
 * (half_copy), w's rounding is computed by the GEMM's panel pack (reduce.c; a vector round
 * trip, expand.c). f16 bits as the operands (vector loads and vcvtph2ps) ran the GEMMs
 * slower: a conversion per value of the broadcast A operand (1/3 of float32's speed) and
 * per vector of B (0.5-0.75x). The product of two f16 is exact in float32, so the values
 * are those of float32 products of the rounded operands.
 *
 * Every operand is a realized bfloat16 buffer laid out so that each matmul is a bf16 sum
 * of products whose B operand runs along the output's rows and whose A pairs of k are
 * adjacent: the TC opt (codegen/tc.c) puts them on the CPU's bf16 unit (vdpbf16ps), and
 * where there is none they run on float32 FMAs with the same values. w is stored
 * transposed (in, out) for the forward, as is (out, in) for dx; g transposed (out, N)
 * for dw. Those layout copies are O(N*in + N*out + in*out) against the O(N*in*out)
 * matmuls. A custom-gradient node (custom.h) holds the saved bf16 copies. */
#include "custom.h"
#include "linear_args.h"
#include "tensor.h"
#include <string.h>

/* A stored operand: bf16 bits (the TC opt pairs them for vdpbf16ps); f16: the float32 of
 * the f16 rounding (an A operand of the float32 GEMM is broadcast a value at a time: a
 * load from float32, a vcvtph2ps per value from f16) */
static cg_tensor *half_copy(cg_tensor *t, cg_dtype h) { return cg_contiguous(h == CG_FLOAT16 ? f32(cg_cast(t, h)) : cg_cast(t, h)); }

static void half_backward(uop *node, uop *g, uop **d) {
  cg_scope_begin();
  cg_tensor *x = tensor_new(node->src[1]), *w = tensor_new(node->src[2]), *x16 = tensor_new(node->src[3]);
  cg_dtype h = (cg_dtype)custom_param(node, 0);                                     /* bf16 or f16 */
  cg_tensor *g2 = rows(tensor_new(g));                                              /* (N, out) */
  /* g rounded once: g16t is g16's bits transposed (a copy that moves half the bytes of a
   * float32 source and does not compute g's producer, e.g. GELU's backward, again) */
  cg_tensor *g16 = half_copy(g2, h), *g16t = cg_contiguous(cg_transpose(g16, 0, 1)); /* (N, out), (out, N) */
  cg_tensor *dx = cg_matmul(f32(g16), f32(cg_cast(cg_detach(w), h)));               /* (N, in) */
  cg_tensor *dw = cg_matmul(f32(g16t), f32(x16));                                   /* (out, in) */
  /* fp16: the products' outputs rounded to f16 as well (torch.autocast's fp16 matmuls
   * write f16, and its dynamic loss scaling sees their overflow as inf); bf16 keeps them
   * float32 (its range is float32's) */
  if (h == CG_FLOAT16) dx = f32(cg_cast(dx, h)), dw = f32(cg_cast(dw, h));
  cg_tensor *r[2] = {cg_cast(cg_reshape(dx, cg_shape(x), cg_ndim(x)), cg_dtype_of(x)), cg_cast(dw, cg_dtype_of(w))};
  if (!r[0] || !r[1]) custom_fail(cg_last_status());
  for (int i = 0; i < 2; i++) d[1 + i] = r[i] ? uop_pool_keep(uop_retain(r[i]->u)) : NULL;
  cg_scope_end();
}
static const custom_kind BF16 = {"linear_bf16", half_backward, false}, F16 = {"linear_f16", half_backward, false};

/* h: the 16-bit type, CG_BFLOAT16 or CG_FLOAT16 */
static cg_tensor *linear(const char *who, cg_dtype h, cg_tensor *x, cg_tensor *x16_given, cg_tensor *w, cg_tensor *b) {
  if (!linear_args_ok(who, x, w, b)) return NULL;
  int nx = cg_ndim(x);
  /* f16: x16 is x's f16 rounding as float16, or its float32 (what the GEMM reads) */
  if (x16_given && ((x16_given->u->dt.scalar != h && !(h == CG_FLOAT16 && x16_given->u->dt.scalar == CG_FLOAT32)) ||
                    !shape_eq(x16_given->u->shape, x16_given->u->ndim, x->u->shape, x->u->ndim)))
    return cg_fail_null(CG_ERR_INVALID, "%s: expected x16 of %s and x's shape %s, got %s %s", who, h == CG_FLOAT16 ? "float16 (or float32)" : cg_dtype_name(h),
                        shape_str(x->u->shape, x->u->ndim), dt_name(x16_given->u->dt), shape_str(x16_given->u->shape, x16_given->u->ndim));
  cg_scope_begin();
  cg_tensor *res = NULL;
  /* the saved copies are realized here, so the backward reads them instead of recomputing x */
  /* wt16: bf16 bits of w^T; f16: the transpose of w's rounding, so that the GEMM packs it
   * as it packs a linear's w^T (a transposed b, matmul_graph: whatever its size) */
  cg_tensor *x16 = !x16_given                       ? half_copy(rows(cg_detach(x)), h)
                   : x16_given->u->dt.scalar == h && h == CG_FLOAT16 ? cg_contiguous(f32(rows(cg_detach(x16_given))))
                                                                     : rows(cg_detach(x16_given)),
            *wt16 = h == CG_FLOAT16 ? cg_transpose(f32(cg_cast(cg_detach(w), h)), 0, 1) : cg_cast(cg_transpose(cg_detach(w), 0, 1), h); /* (N, in), (in, out) */
  /* a given x16 realized as given: realizing its (N, in) view would copy it */
  if (x16 && wt16 && cg_realize(x16_given && x16_given->u->dt.scalar != CG_FLOAT16 ? x16_given : x16) == CG_OK) {
    int64_t shape[8];
    memcpy(shape, cg_shape(x), sizeof(int64_t) * (size_t)nx);
    shape[nx - 1] = cg_shape(w)[0];
    cg_tensor *y = cg_cast(cg_reshape(cg_matmul(f32(x16), f32(wt16)), shape, nx), cg_dtype_of(x));
    if (y) {
      uop *srcs[3] = {x->u, w->u, x16->u};
      op_begin();
      int64_t param = h;
      res = op_end(custom_node(h == CG_FLOAT16 ? &F16 : &BF16, y->u, srcs, 3, &param, 1));
      if (res && b) res = cg_add(res, b);
    }
  }
  res = cg_keep(res);
  cg_scope_end();
  return res;
}
cg_tensor *cg_linear_bf16(cg_tensor *x, cg_tensor *w, cg_tensor *b) { return linear("linear_bf16", CG_BFLOAT16, x, NULL, w, b); }
cg_tensor *cg_linear_bf16_x16(cg_tensor *x, cg_tensor *x16, cg_tensor *w, cg_tensor *b) {
  if (!x16) return cg_fail_null(CG_NULL_INPUT, "linear_bf16_x16: x16 is NULL");
  return linear("linear_bf16_x16", CG_BFLOAT16, x, x16, w, b);
}
cg_tensor *cg_linear_f16(cg_tensor *x, cg_tensor *w, cg_tensor *b) { return linear("linear_f16", CG_FLOAT16, x, NULL, w, b); }
cg_tensor *cg_linear_f16_x16(cg_tensor *x, cg_tensor *x16, cg_tensor *w, cg_tensor *b) {
  if (!x16) return cg_fail_null(CG_NULL_INPUT, "linear_f16_x16: x16 is NULL");
  return linear("linear_f16_x16", CG_FLOAT16, x, x16, w, b);
}
