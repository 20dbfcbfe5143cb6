/* Dynamic loss scaling for float16 training (torch.cuda.amp.GradScaler's semantics) with
 * nothing read on the host inside the step:
 *
 *   backward(cg_grad_scaler_scale(s, loss))     the loss times the scale
 *   skip = cg_grad_scaler_unscale(s, params, n) gradients times 1/scale; skip: not all finite
 *   cg_clip_grad_norm(...)                      optional, on the unscaled gradients
 *   cg_optimizer_step_lazy_unless(opt, skip)    the update, each assign kept where skip
 *   realize; read skip (or the norm) on the host
 *   cg_grad_scaler_update(s, skipped, opts)     halve / grow the scale; a skipped step's
 *                                               count is taken back
 *
 * The scale and its inverse are float32 kernel variables (powers of two, so the inverse is
 * exact), so one compiled step serves every scale and a cg_jit replays the step whole: the
 * update between two steps sets the vars, no kernel runs. Whether the gradients are
 * finite is read off their 2-norm (the one clipping computes: the same graph, so one
 * reduction), which is finite exactly when every gradient is, unless the unscaled
 * gradients' squares sum past float32's range (~1.8e38), which counts as an overflow too. */
#include "core/error.h"
#include "tensor/tensor.h"
#include <math.h>

struct cg_grad_scaler {
  cg_tensor *scale, *inv; /* float32 vars, owned */
  double growth, backoff;
  int64_t interval, good; /* clean steps in a row, toward interval */
};

void cg_grad_scaler_free(cg_grad_scaler *s) {
  if (!s) return;
  cg_free(s->scale), cg_free(s->inv);
  free(s);
}

/* a power of two that float32 holds, its inverse too */
static bool pow2_f32(double x) {
  int e;
  return x > 0 && frexp(x, &e) == 0.5 && e - 1 >= -126 && e - 1 <= 126;
}

static cg_status set_scale(cg_grad_scaler *s, double scale) {
  cg_status st = cg_variable_set(s->scale, scale);
  return st == CG_OK ? cg_variable_set(s->inv, 1 / scale) : st;
}

cg_grad_scaler *cg_grad_scaler_new(double init_scale, double growth_factor, double backoff_factor, int64_t growth_interval) {
  if (!pow2_f32(init_scale))
    return cg_fail_null(CG_ERR_INVALID, "grad_scaler: expected an initial scale that is a power of two in [2^-126, 2^126], got %g", init_scale);
  if (!pow2_f32(growth_factor) || growth_factor <= 1)
    return cg_fail_null(CG_ERR_INVALID, "grad_scaler: expected a growth factor that is a power of two > 1, got %g", growth_factor);
  if (!pow2_f32(backoff_factor) || backoff_factor >= 1)
    return cg_fail_null(CG_ERR_INVALID, "grad_scaler: expected a backoff factor that is a power of two < 1, got %g", backoff_factor);
  if (growth_interval < 1) return cg_fail_null(CG_ERR_INVALID, "grad_scaler: expected a growth interval >= 1, got %lld", (long long)growth_interval);
  cg_grad_scaler *s = cg_calloc(1, sizeof *s);
  if (!s) return NULL;
  s->growth = growth_factor, s->backoff = backoff_factor, s->interval = growth_interval;
  s->scale = tensor_own(cg_variable("loss_scale", init_scale, CG_FLOAT32));
  s->inv = tensor_own(cg_variable("inv_loss_scale", 1 / init_scale, CG_FLOAT32));
  if (!s->scale || !s->inv) return cg_grad_scaler_free(s), NULL;
  return s;
}

cg_tensor *cg_grad_scaler_scale(cg_grad_scaler *s, cg_tensor *loss) {
  if (!s || !loss) return cg_fail_null(CG_NULL_INPUT, "grad_scaler_scale: %s is NULL", !s ? "the scaler" : "the loss");
  return cg_mul(loss, cg_cast(s->scale, cg_dtype_of(loss)));
}

cg_tensor *cg_grad_scaler_unscale(cg_grad_scaler *s, cg_tensor *const *params, int n) {
  if (!s) return cg_fail_null(CG_NULL_INPUT, "grad_scaler_unscale: the scaler is NULL");
  if (cg_scale_grads(params, n, s->inv) != CG_OK) return NULL;
  cg_tensor *norm = cg_grad_norm(params, n);
  /* NaN < inf and inf < inf are false: skip */
  return cg_logical_not(cg_lt(norm, cg_scalar(INFINITY)));
}

cg_status cg_grad_scaler_update(cg_grad_scaler *s, bool skipped, cg_optimizer *const *opts, int nopt) {
  if (!s) return cg_fail(CG_NULL_INPUT, "grad_scaler_update: the scaler is NULL");
  if (nopt < 0 || (nopt > 0 && !opts)) return cg_fail(CG_ERR_INVALID, "grad_scaler_update: expected an array of %d optimizers, got %s", nopt, opts ? "a negative count" : "NULL");
  double scale = cg_variable_get(s->scale);
  if (!skipped) {
    if (++s->good < s->interval) return CG_OK;
    s->good = 0;
    return set_scale(s, scale * s->growth);
  }
  s->good = 0;
  /* the step was built (and counted: t += 1, beta^t) but kept every value: take it back */
  for (int i = 0; i < nopt; i++) {
    int64_t t = cg_optimizer_steps(opts[i]);
    cg_status st = t > 0 ? cg_optimizer_set_steps(opts[i], t - 1) : CG_OK;
    if (st != CG_OK) return st;
  }
  return set_scale(s, scale * s->backoff);
}

double cg_grad_scaler_get_scale(const cg_grad_scaler *s) { return s ? cg_variable_get(s->scale) : NAN; }
