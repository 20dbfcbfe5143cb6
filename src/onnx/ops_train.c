/* The optimizer ops of the ai.onnx.preview.training domain (Adagrad, Momentum, Adam): one
 * update of n tensors. Inputs R (learning rate), T (step count), then X..., G..., and the
 * state tensors; outputs the new X... and new state. */
#include "onnx/onnx.h"
#include "onnx/ops.h"
#include <math.h>
#include <string.h>

/* n = tensors updated, for `groups` groups of inputs after R and T */
static int count(onnx_ctx *c, int groups) {
  int n = (c->nin - 2) / groups;
  if (n < 1 || 2 + n * groups != c->nin || c->nout != n * (groups - 1)) return onnx_fail(c, "inputs and outputs do not form %d groups", groups), -1;
  for (int i = 0; i < c->nin; i++)
    if (!onnx_in(c, i)) return -1;
  return n;
}

static cg_tensor *k(double v, cg_tensor *like) { return onnx_const(v, cg_dtype_of(like)); }

static cg_status op_Adagrad(onnx_ctx *c) {
  int n = count(c, 3);
  double r, t;
  if (n < 0 || onnx_in_doubles(c, 0, &r, 1) != 1 || onnx_in_doubles(c, 1, &t, 1) != 1) return cg_last_status();
  double decay = onnx_attr_f(c, "decay_factor", 0), eps = onnx_attr_f(c, "epsilon", 0), norm = onnx_attr_f(c, "norm_coefficient", 0);
  double rr = r / (1 + t * decay);
  for (int i = 0; i < n; i++) {
    cg_tensor *x = c->in[2 + i], *g = c->in[2 + n + i], *h = c->in[2 + 2 * n + i];
    cg_tensor *gr = cg_add(cg_mul(k(norm, x), x), g), *hn = cg_add(h, cg_mul(gr, gr));
    cg_tensor *xn = cg_sub(x, cg_div(cg_mul(k(rr, x), gr), cg_add(cg_sqrt(hn), k(eps, x))));
    if (onnx_set(c, i, xn) != CG_OK || onnx_set(c, n + i, hn) != CG_OK) return cg_last_status();
  }
  return CG_OK;
}

static cg_status op_Momentum(onnx_ctx *c) {
  int n = count(c, 3);
  double r, t;
  if (n < 0 || onnx_in_doubles(c, 0, &r, 1) != 1 || onnx_in_doubles(c, 1, &t, 1) != 1) return cg_last_status();
  double alpha = onnx_attr_f(c, "alpha", 0), beta = onnx_attr_f(c, "beta", 0), norm = onnx_attr_f(c, "norm_coefficient", 0);
  char buf[16];
  bool nesterov = !strcmp(onnx_attr_s(c, "mode", "standard", buf, sizeof buf), "nesterov");
  double b = t > 0 ? beta : 1;
  for (int i = 0; i < n; i++) {
    cg_tensor *x = c->in[2 + i], *g = c->in[2 + n + i], *v = c->in[2 + 2 * n + i];
    cg_tensor *gr = cg_add(cg_mul(k(norm, x), x), g);
    cg_tensor *vn = cg_add(cg_mul(k(alpha, v), v), cg_mul(k(b, gr), gr));
    cg_tensor *step = nesterov ? cg_add(gr, cg_mul(k(alpha, vn), vn)) : vn;
    if (onnx_set(c, i, cg_sub(x, cg_mul(k(r, x), step))) != CG_OK || onnx_set(c, n + i, vn) != CG_OK) return cg_last_status();
  }
  return CG_OK;
}

static cg_status op_Adam(onnx_ctx *c) {
  int n = count(c, 4);
  double r, t;
  if (n < 0 || onnx_in_doubles(c, 0, &r, 1) != 1 || onnx_in_doubles(c, 1, &t, 1) != 1) return cg_last_status();
  double alpha = onnx_attr_f(c, "alpha", 0.9), beta = onnx_attr_f(c, "beta", 0.999), eps = onnx_attr_f(c, "epsilon", 1e-6);
  double norm = onnx_attr_f(c, "norm_coefficient", 0), post = onnx_attr_f(c, "norm_coefficient_post", 0);
  double ra = t > 0 ? r * sqrt(1 - pow(beta, t)) / (1 - pow(alpha, t)) : r;
  for (int i = 0; i < n; i++) {
    cg_tensor *x = c->in[2 + i], *g = c->in[2 + n + i], *v = c->in[2 + 2 * n + i], *h = c->in[2 + 3 * n + i];
    cg_tensor *gr = cg_add(cg_mul(k(norm, x), x), g);
    cg_tensor *vn = cg_add(cg_mul(k(alpha, v), v), cg_mul(k(1 - alpha, gr), gr));
    cg_tensor *hn = cg_add(cg_mul(k(beta, h), h), cg_mul(k(1 - beta, gr), cg_mul(gr, gr)));
    cg_tensor *xn = cg_sub(x, cg_div(cg_mul(k(ra, x), vn), cg_add(cg_sqrt(hn), k(eps, x))));
    xn = cg_mul(k(1 - post, xn), xn);
    if (onnx_set(c, i, xn) != CG_OK || onnx_set(c, n + i, vn) != CG_OK || onnx_set(c, 2 * n + i, hn) != CG_OK) return cg_last_status();
  }
  return CG_OK;
}

const onnx_op onnx_ops_train[] = {{"Adagrad", op_Adagrad, false}, {"Momentum", op_Momentum, false}, {"Adam", op_Adam, false}, {NULL, NULL, false}};
