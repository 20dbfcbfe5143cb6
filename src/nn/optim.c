/* Optimizers: SGD (momentum, dampening, Nesterov, weight decay), Adam, AdamW and LAMB.
 *
 * A step is built from the public tensor ops and written with cg_assign, so every update
 * is one lazy in-place write that the scheduler fuses:
 *
 *   grads ──► lazy or realized: computed in the same schedule
 *         ──► host: b1_t *= beta1, b2_t *= beta2 (Adam family: kernel variables)
 *         ──► state: per parameter, the momentum buffer or m and v, as assigns
 *         ──► parameters: p's assign reads the updated state
 *         ──► one cg_realize_many of state and parameters (and, with
 *             cg_optimizer_step_lazy, of the loss and gradients too)
 *
 * Nothing that changes from step to step is a constant in a kernel: the learning rate is
 * a float32 kernel variable (cg_variable: cg_optimizer_set_lr sets it, no kernel runs), the Adam
 * bias corrections are computed in the kernels from the float64 vars b1_t = beta1^t and
 * b2_t = beta2^t, and the step count is an int64 var. So a schedule, or a thousand steps,
 * compiles nothing new. The step's host updates of the vars (t += 1, b1_t *= beta1) are
 * recorded by a JIT capture and repeated by its replays (tensor_var_update), so a JIT'd
 * step counts its steps too.
 *
 * Formulas are torch.optim's (1.13, single-tensor path):
 *   SGD:   d = g + wd p;  buf = d (first step) | momentum buf + (1 - dampening) d;
 *          d = nesterov ? d + momentum buf : buf;  p -= lr d
 *   Adam:  g += wd p (L2);  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g²;
 *          p -= (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 *   AdamW: p *= 1 - lr wd first (decoupled), then Adam without the L2 term
 *   LAMB (tinygrad's, the paper's with φ = identity): Adam moments with bias correction,
 *          u = m̂ / (sqrt(v̂) + eps) + wd p;  r = ||p|| / ||u|| (1 if either is 0);
 *          p -= lr r u
 * The bias corrections 1 - beta^t are formed in float64, as torch forms them in Python.
 * A parameter with no gradient (cg_grad NULL) is skipped, as torch skips grad None; the
 * step count t is the optimizer's, not per parameter. */
#include "core/error.h"
#include "tensor/tensor.h"
#include <math.h>
#include <string.h>

typedef enum { OPT_SGD, OPT_ADAM, OPT_ADAMW, OPT_LAMB } opt_kind;
static const char *const opt_names[] = {"sgd", "adam", "adamw", "lamb"};

struct cg_optimizer {
  opt_kind kind;
  int n;
  cg_tensor **params;    /* the caller's (borrowed) */
  cg_tensor **m, **v;    /* state, owned: SGD's momentum buffers in m; Adam's moments */
  cg_tensor *lr;         /* float32 var, owned */
  cg_tensor *b1_t, *b2_t; /* float64 vars: beta^t (Adam family), owned */
  cg_tensor *t;          /* int64 var: steps taken, owned */
  double lr0, momentum, dampening, wd, b1, b2, eps;
  bool nesterov;
  char (*state_names)[16]; /* for cg_optimizer_state, made on first use */
  cg_tensor **pending;     /* what the last step_lazy built, to realize */
};

void cg_optimizer_free(cg_optimizer *o) {
  if (!o) return;
  for (int i = 0; i < o->n; i++) {
    if (o->m) cg_free(o->m[i]);
    if (o->v) cg_free(o->v[i]);
  }
  free(o->m), free(o->v), free(o->params), free(o->state_names), free(o->pending);
  cg_free(o->lr), cg_free(o->b1_t), cg_free(o->b2_t), cg_free(o->t);
  free(o);
}

/* Zeros in storage of their own. (Not cg_zeros + one cg_realize_many: equal lazy graphs
 * are one node, so state tensors of one shape would share a single buffer.) */
static cg_tensor *zeros_like(cg_tensor *p) {
  size_t nbytes = (size_t)cg_numel(p) * cg_dtype_size(cg_dtype_of(p));
  void *z = cg_calloc(1, nbytes ? nbytes : 1);
  cg_tensor *t = z ? cg_from_data(z, cg_dtype_of(p), cg_shape(p), cg_ndim(p)) : NULL;
  free(z);
  return tensor_own(t);
}


static cg_optimizer *opt_new(opt_kind kind, cg_tensor *const *params, int n, double lr) {
  const char *who = opt_names[kind];
  if (n <= 0) return cg_fail_null(CG_ERR_INVALID, "%s: expected at least one parameter, got %d", who, n);
  if (!params) return cg_fail_null(CG_ERR_INVALID, "%s: params is NULL (with n = %d)", who, n);
  if (!(lr >= 0) || !isfinite(lr)) return cg_fail_null(CG_ERR_INVALID, "%s: expected a finite learning rate >= 0, got %g", who, lr);
  for (int i = 0; i < n; i++) {
    if (!params[i]) return cg_fail_null(CG_NULL_INPUT, "%s: parameter %d is NULL", who, i);
    cg_dtype dt = cg_dtype_of(params[i]);
    if (dt != CG_FLOAT16 && dt != CG_BFLOAT16 && dt != CG_FLOAT32 && dt != CG_FLOAT64)
      return cg_fail_null(CG_ERR_INVALID, "%s: parameter %d: expected a floating-point tensor, got %s", who, i, cg_dtype_name(dt));
    for (int j = 0; j < i; j++)
      if (params[j] == params[i])
        return cg_fail_null(CG_ERR_INVALID, "%s: expected each parameter once, got parameter %d again as %d", who, j, i);
  }
  cg_optimizer *o = cg_calloc(1, sizeof *o);
  if (!o) return NULL;
  o->kind = kind;
  o->lr0 = lr;
  o->params = cg_malloc(sizeof(cg_tensor *) * (size_t)n);
  if (!o->params) return cg_optimizer_free(o), NULL;
  memcpy(o->params, params, sizeof(cg_tensor *) * (size_t)n);
  o->n = n;
  o->lr = tensor_own(cg_variable("lr", lr, CG_FLOAT32));
  o->t = tensor_own(cg_variable("step", 0, CG_INT64));
  if (!o->lr || !o->t) return cg_optimizer_free(o), NULL;
  return o;
}

/* State tensors: one per parameter in m (and v), zero, each a buffer of its own. */
static cg_optimizer *opt_state(cg_optimizer *o, bool two) {
  o->m = cg_calloc((size_t)o->n, sizeof(cg_tensor *));
  o->v = two ? cg_calloc((size_t)o->n, sizeof(cg_tensor *)) : NULL;
  if (!o->m || (two && !o->v)) return cg_optimizer_free(o), NULL;
  for (int i = 0; i < o->n; i++) {
    o->m[i] = zeros_like(o->params[i]);
    if (two) o->v[i] = zeros_like(o->params[i]);
    if (!o->m[i] || (two && !o->v[i])) return cg_optimizer_free(o), NULL;
  }
  if (two) {
    o->b1_t = tensor_own(cg_variable("b1_t", 1.0, CG_FLOAT64));
    o->b2_t = tensor_own(cg_variable("b2_t", 1.0, CG_FLOAT64));
    if (!o->b1_t || !o->b2_t) return cg_optimizer_free(o), NULL;
  }
  return o;
}

static bool check_unit(const char *who, const char *what, double x) {
  if (x >= 0 && x < 1) return true;
  cg_fail(CG_ERR_INVALID, "%s: expected 0 <= %s < 1, got %g", who, what, x);
  return false;
}
static bool check_nonneg(const char *who, const char *what, double x) {
  if (x >= 0 && isfinite(x)) return true;
  cg_fail(CG_ERR_INVALID, "%s: expected a finite %s >= 0, got %g", who, what, x);
  return false;
}

cg_optimizer *cg_sgd(cg_tensor *const *params, int n, double lr, double momentum, double dampening, double weight_decay,
                     bool nesterov) {
  if (!check_nonneg("sgd", "momentum", momentum) || !check_nonneg("sgd", "dampening", dampening) ||
      !check_nonneg("sgd", "weight_decay", weight_decay))
    return NULL;
  if (nesterov && (momentum <= 0 || dampening != 0))
    return cg_fail_null(CG_ERR_INVALID, "sgd: Nesterov momentum expects momentum > 0 and dampening 0, got momentum %g, dampening %g",
                        momentum, dampening);
  cg_optimizer *o = opt_new(OPT_SGD, params, n, lr);
  if (!o) return NULL;
  o->momentum = momentum, o->dampening = dampening, o->wd = weight_decay, o->nesterov = nesterov;
  return momentum != 0 ? opt_state(o, false) : o;
}

static cg_optimizer *adam_like(opt_kind kind, cg_tensor *const *params, int n, double lr, double beta1, double beta2, double eps,
                               double weight_decay) {
  const char *who = opt_names[kind];
  if (!check_unit(who, "beta1", beta1) || !check_unit(who, "beta2", beta2) || !check_nonneg(who, "eps", eps) ||
      !check_nonneg(who, "weight_decay", weight_decay))
    return NULL;
  cg_optimizer *o = opt_new(kind, params, n, lr);
  if (!o) return NULL;
  o->b1 = beta1, o->b2 = beta2, o->eps = eps, o->wd = weight_decay;
  return opt_state(o, true);
}

cg_optimizer *cg_adam(cg_tensor *const *params, int n, double lr, double beta1, double beta2, double eps, double weight_decay) {
  return adam_like(OPT_ADAM, params, n, lr, beta1, beta2, eps, weight_decay);
}
cg_optimizer *cg_adamw(cg_tensor *const *params, int n, double lr, double beta1, double beta2, double eps, double weight_decay) {
  return adam_like(OPT_ADAMW, params, n, lr, beta1, beta2, eps, weight_decay);
}
cg_optimizer *cg_lamb(cg_tensor *const *params, int n, double lr, double beta1, double beta2, double eps, double weight_decay) {
  return adam_like(OPT_LAMB, params, n, lr, beta1, beta2, eps, weight_decay);
}

/* ---- building a step ------------------------------------------------------------------ */

static cg_tensor *K(double x) { return cg_scalar(x); }

/* The gradient as the update sees it: torch's L2 weight decay (SGD, Adam) adds wd p. */
static cg_tensor *decayed_grad(cg_optimizer *o, cg_tensor *p, cg_tensor *g) {
  bool l2 = o->wd != 0 && (o->kind == OPT_SGD || o->kind == OPT_ADAM);
  return l2 ? cg_add(g, cg_mul(p, K(o->wd))) : g;
}

/* An assign of the step: where skip (a 0-d bool, cg_optimizer_step_lazy_unless) is true the
 * target keeps its old value, selected (not multiplied: the new value may be NaN or inf). */
static cg_status put(cg_tensor *skip, cg_tensor *dst, cg_tensor *v) { return cg_assign(dst, skip ? cg_where(skip, dst, v) : v); }

/* Assign parameter i's state: SGD's momentum buffer, Adam's moments. */
static cg_status state_update(cg_optimizer *o, int i, cg_tensor *p, cg_tensor *g, cg_tensor *skip) {
  cg_tensor *d = decayed_grad(o, p, g);
  if (o->kind == OPT_SGD) {
    if (o->momentum == 0) return CG_OK;
    cg_tensor *buf = o->m[i];
    /* torch: the first step clones d into the buffer. Chosen in the kernel from the step
     * count (a var, already t + 1 when the kernel runs), not on the host: every step is then
     * one graph, which a JIT captures once, and a step cg_grad_scaler skipped (its count
     * taken back) is followed by a first step again. */
    cg_tensor *nb = cg_add(cg_mul(buf, K(o->momentum)), o->dampening != 0 ? cg_mul(d, K(1 - o->dampening)) : d);
    nb = cg_where(cg_eq(o->t, K(1)), d, nb);
    return put(skip, buf, nb);
  }
  cg_tensor *m = o->m[i], *v = o->v[i];
  cg_tensor *nm = cg_add(cg_mul(m, K(o->b1)), cg_mul(d, K(1 - o->b1)));
  cg_tensor *nv = cg_add(cg_mul(v, K(o->b2)), cg_mul(cg_mul(d, d), K(1 - o->b2)));
  cg_status st = put(skip, m, nm);
  return st == CG_OK ? put(skip, v, nv) : st;
}

/* Parameter i's new value, from its state as it now is (assigned, or realized). */
static cg_tensor *param_update(cg_optimizer *o, int i, cg_tensor *p, cg_tensor *g) {
  cg_tensor *d = decayed_grad(o, p, g);
  if (o->kind == OPT_SGD) {
    if (o->momentum != 0) d = o->nesterov ? cg_add(d, cg_mul(o->m[i], K(o->momentum))) : o->m[i];
    return cg_sub(p, cg_mul(o->lr, d));
  }
  cg_tensor *m = o->m[i], *v = o->v[i];
  cg_tensor *bc1 = cg_sub(K(1), o->b1_t), *bc2 = cg_sub(K(1), o->b2_t); /* 1 - beta^t, float64 */
  cg_dtype dt = cg_dtype_of(p) == CG_FLOAT64 ? CG_FLOAT64 : CG_FLOAT32;
  if (o->kind == OPT_LAMB) {
    cg_tensor *mh = cg_div(m, cg_cast(bc1, dt)), *vh = cg_div(v, cg_cast(bc2, dt));
    cg_tensor *u = cg_div(mh, cg_add(cg_sqrt(vh), K(o->eps)));
    if (o->wd != 0) u = cg_add(u, cg_mul(p, K(o->wd)));
    cg_tensor *r1 = cg_sqrt(cg_sum(cg_mul(p, p), NULL, 0, false)), *r2 = cg_sqrt(cg_sum(cg_mul(u, u), NULL, 0, false));
    cg_tensor *r = cg_where(cg_gt(r1, K(0)), cg_where(cg_gt(r2, K(0)), cg_div(r1, r2), K(1)), K(1));
    return cg_sub(p, cg_mul(cg_mul(o->lr, r), u));
  }
  /* torch: step_size = lr / bc1 and sqrt(bc2) in double, then used in the tensor's dtype */
  cg_tensor *step = cg_cast(cg_div(cg_cast(o->lr, CG_FLOAT64), bc1), dt);
  cg_tensor *bc2s = cg_cast(cg_sqrt(bc2), dt);
  cg_tensor *denom = cg_add(cg_div(cg_sqrt(v), bc2s), K(o->eps));
  cg_tensor *base = p;
  if (o->kind == OPT_ADAMW && o->wd != 0) base = cg_mul(p, cg_sub(K(1), cg_mul(o->lr, K(o->wd))));
  return cg_sub(base, cg_div(cg_mul(step, m), denom));
}


static cg_status step_lazy(cg_optimizer *o, cg_tensor *skip, cg_tensor *const **pending, int *npending) {
  if (!o || !pending || !npending) return cg_fail(CG_NULL_INPUT, "optimizer_step_lazy: %s is NULL", !o ? "the optimizer" : "an output pointer");
  if (skip && (cg_ndim(skip) != 0 || cg_dtype_of(skip) != CG_BOOL))
    return cg_fail(CG_ERR_INVALID, "optimizer_step_lazy_unless: expected a 0-d bool skip, got %d dimensions of %s", cg_ndim(skip), cg_dtype_name(cg_dtype_of(skip)));
  *pending = NULL, *npending = 0;
  if (!o->pending && !(o->pending = cg_malloc(sizeof(cg_tensor *) * (size_t)(3 * o->n + 2)))) return CG_ERR_NOMEM;
  cg_tensor **outs = o->pending;
  int nout = 0;
  cg_status st = CG_OK;
  cg_scope_begin();
  /* beta^t on the host, in float64, as the kernels' float64 multiply did */
  if (o->kind != OPT_SGD && ((st = tensor_var_update(o->b1_t, OP_MUL, o->b1)) != CG_OK || (st = tensor_var_update(o->b2_t, OP_MUL, o->b2)) != CG_OK)) goto done;
  for (int i = 0; i < o->n; i++) {
    cg_tensor *p = o->params[i], *g = cg_grad(p);
    if (!g) continue;
    if ((st = state_update(o, i, p, g, skip)) != CG_OK) goto done;
    if (o->m) outs[nout++] = o->m[i];
    if (o->v) outs[nout++] = o->v[i];
  }
  /* the parameters' updates read the updated state: one schedule holds them all */
  for (int i = 0; i < o->n; i++) {
    cg_tensor *p = o->params[i], *g = cg_grad(p);
    if (!g) continue;
    cg_tensor *np = param_update(o, i, p, g);
    st = np ? put(skip, p, np) : cg_last_status();
    if (st == CG_OK && !np) st = cg_fail(CG_ERR_RUNTIME, "optimizer_step: building the update of parameter %d failed", i);
    if (st != CG_OK) goto done;
    outs[nout++] = p;
  }
  st = tensor_var_update(o->t, OP_ADD, 1);
  *pending = outs, *npending = nout;
done:
  cg_scope_end();
  return st;
}

cg_status cg_optimizer_step_lazy(cg_optimizer *o, cg_tensor *const **pending, int *npending) { return step_lazy(o, NULL, pending, npending); }

cg_status cg_optimizer_step_lazy_unless(cg_optimizer *o, cg_tensor *skip, cg_tensor *const **pending, int *npending) {
  if (!skip) return cg_fail(CG_NULL_INPUT, "optimizer_step_lazy_unless: skip is NULL");
  return step_lazy(o, skip, pending, npending);
}

cg_status cg_optimizer_step(cg_optimizer *o) {
  cg_tensor *const *pending;
  int n;
  cg_status st = cg_optimizer_step_lazy(o, &pending, &n);
  if (st == CG_OK && n) st = cg_realize_many(pending, n);
  return st;
}

void cg_optimizer_zero_grad(cg_optimizer *o) {
  if (!o) return;
  for (int i = 0; i < o->n; i++) cg_zero_grad(o->params[i]);
}

cg_status cg_optimizer_set_lr(cg_optimizer *o, double lr) {
  if (!o) return cg_fail(CG_NULL_INPUT, "optimizer_set_lr: optimizer is NULL");
  if (!(lr >= 0) || !isfinite(lr)) return cg_fail(CG_ERR_INVALID, "optimizer_set_lr: expected a finite learning rate >= 0, got %g", lr);
  cg_status st = cg_variable_set(o->lr, lr); /* a kernel variable: nothing runs or compiles */
  if (st == CG_OK) o->lr0 = lr;
  return st;
}

double cg_optimizer_get_lr(const cg_optimizer *o) { return o ? o->lr0 : NAN; }
int64_t cg_optimizer_steps(const cg_optimizer *o) { return o ? (int64_t)cg_variable_get(o->t) : -1; }

cg_status cg_optimizer_set_steps(cg_optimizer *o, int64_t steps) {
  if (!o) return cg_fail(CG_ERR_INVALID, "optimizer_set_steps: optimizer is NULL");
  if (steps < 0) return cg_fail(CG_ERR_INVALID, "optimizer_set_steps: expected steps >= 0, got %lld", (long long)steps);
  /* beta^t as `steps` steps would have made it: the same float64 products in order */
  double b1t = 1, b2t = 1;
  for (int64_t i = 0; o->kind != OPT_SGD && i < steps; i++) b1t *= o->b1, b2t *= o->b2;
  cg_status st = cg_variable_set(o->t, (double)steps);
  if (st == CG_OK && o->b1_t) st = cg_variable_set(o->b1_t, b1t);
  if (st == CG_OK && o->b2_t) st = cg_variable_set(o->b2_t, b2t);
  return st;
}

int cg_optimizer_state(cg_optimizer *o, const char **names, cg_tensor **ts, int max) {
  if (!o) return cg_fail(CG_ERR_INVALID, "optimizer_state: optimizer is NULL"), -1;
  if (max < 0 || (max > 0 && !names && !ts)) return cg_fail(CG_ERR_INVALID, "optimizer_state: names and ts are NULL (with max %d)", max), -1;
  if (!o->state_names && !(o->state_names = cg_calloc((size_t)o->n * 2 + 2, sizeof *o->state_names))) return -1;
  int k = 0;
#define PUT(t, ...)                                                                        \
  do {                                                                                     \
    snprintf(o->state_names[k], sizeof o->state_names[k], __VA_ARGS__);                  \
    if (k < max && names) names[k] = o->state_names[k];                                   \
    if (k < max && ts) ts[k] = (t);                                                        \
    k++;                                                                                   \
  } while (0)
  for (int i = 0; i < o->n; i++) {
    if (o->m && o->m[i]) PUT(o->m[i], "m.%d", i);
    if (o->v && o->v[i]) PUT(o->v[i], "v.%d", i);
  }
#undef PUT
  return k;
}
