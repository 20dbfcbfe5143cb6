/* The layer kinds: constructors (PyTorch's default initialization) and forwards (the
 * functional ops of functional*.c). Each constructor builds its state in torch's
 * state_dict order: parameters first, then buffers. */
#include "module.h"
#include "core/error.h"
#include <math.h>
#include <string.h>

/* U(-bound, bound) of shape: torch's kaiming_uniform_(a=sqrt(5)) for weights and its bias
 * rule both come to bound = 1/sqrt(fan_in). */
static cg_tensor *uniform(double bound, const int64_t *shape, int nd) { return cg_uniform(-bound, bound, CG_FLOAT32, shape, nd); }

/* Free m and return NULL (a constructor that failed half-way). */
static cg_module *fail(cg_module *m) {
  cg_module_free(m);
  return NULL;
}

static bool positive(const char *who, const char *what, int64_t v) {
  if (v >= 1) return true;
  cg_fail(CG_ERR_INVALID, "%s: %s must be >= 1, got %lld", who, what, (long long)v);
  return false;
}

/* ---- Linear -------------------------------------------------------------------------- */

static cg_tensor *linear_forward(cg_module *m, cg_tensor *x) { return cg_linear_fn(x, mod_get(m, "weight"), mod_get(m, "bias")); }
static const mod_vt LINEAR_VT = {"Linear", linear_forward, NULL, NULL};

cg_module *cg_linear(int64_t in, int64_t out, bool bias) {
  if (!positive("linear", "in_features", in) || !positive("linear", "out_features", out)) return NULL;
  cg_module *m = mod_new(&LINEAR_VT);
  if (!m) return NULL;
  m->cfg.in = in, m->cfg.out = out;
  double bound = 1.0 / sqrt((double)in);
  int64_t ws[2] = {out, in}, bs[1] = {out};
  cg_scope_begin();
  bool ok = mod_add(m, "weight", uniform(bound, ws, 2), true) && (!bias || mod_add(m, "bias", uniform(bound, bs, 1), true));
  cg_scope_end();
  return ok ? m : fail(m);
}

/* ---- Conv2d / ConvTranspose2d ------------------------------------------------------------ */

static cg_tensor *conv_forward(cg_module *m, cg_tensor *x) {
  mod_cfg *c = &m->cfg;
  return cg_conv2d(x, mod_get(m, "weight"), mod_get(m, "bias"), c->stride, c->padding, c->dilation, c->groups);
}
static const mod_vt CONV_VT = {"Conv2d", conv_forward, NULL, NULL};

static cg_tensor *convt_forward(cg_module *m, cg_tensor *x) {
  mod_cfg *c = &m->cfg;
  return cg_conv_transpose2d(x, mod_get(m, "weight"), mod_get(m, "bias"), c->stride, c->padding, c->out_padding, c->dilation, c->groups);
}
static const mod_vt CONVT_VT = {"ConvTranspose2d", convt_forward, NULL, NULL};

static cg_module *conv_common(const char *who, const mod_vt *vt, int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding,
                              int64_t out_padding, int64_t dilation, int64_t groups, bool bias) {
  if (!positive(who, "in_channels", in) || !positive(who, "out_channels", out) || !positive(who, "kernel_size", kernel) ||
      !positive(who, "stride", stride) || !positive(who, "dilation", dilation) || !positive(who, "groups", groups))
    return NULL;
  if (padding < 0 || out_padding < 0)
    return cg_fail_null(CG_ERR_INVALID, "%s: padding must be >= 0, got %lld", who, (long long)(padding < 0 ? padding : out_padding));
  if (in % groups || out % groups)
    return cg_fail_null(CG_ERR_INVALID, "%s: in_channels %lld and out_channels %lld must both be divisible by groups %lld", who, (long long)in,
                        (long long)out, (long long)groups);
  bool transposed = vt == &CONVT_VT;
  if (transposed && out_padding >= stride && out_padding >= dilation)
    return cg_fail_null(CG_ERR_INVALID, "%s: output_padding %lld must be smaller than stride %lld or dilation %lld", who, (long long)out_padding,
                        (long long)stride, (long long)dilation);
  cg_module *m = mod_new(vt);
  if (!m) return NULL;
  mod_cfg *c = &m->cfg;
  c->in = in, c->out = out, c->groups = groups;
  for (int j = 0; j < 2; j++)
    c->kernel[j] = kernel, c->stride[j] = stride, c->padding[j] = padding, c->out_padding[j] = out_padding, c->dilation[j] = dilation;
  /* torch: Conv2d weight (out, in/g, k, k), fan_in = in/g*k*k; ConvTranspose2d weight
   * (in, out/g, k, k) and its fan_in is computed from dim 1: out/g*k*k. */
  int64_t ws[4] = {transposed ? in : out, transposed ? out / groups : in / groups, kernel, kernel}, bs[1] = {out};
  double bound = 1.0 / sqrt((double)(ws[1] * kernel * kernel));
  cg_scope_begin();
  bool ok = mod_add(m, "weight", uniform(bound, ws, 4), true) && (!bias || mod_add(m, "bias", uniform(bound, bs, 1), true));
  cg_scope_end();
  return ok ? m : fail(m);
}

cg_module *cg_conv2d_layer(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation, int64_t groups, bool bias) {
  return conv_common("conv2d_layer", &CONV_VT, in, out, kernel, stride, padding, 0, dilation, groups, bias);
}

cg_module *cg_conv_transpose2d_layer(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding, int64_t output_padding,
                                     int64_t dilation, int64_t groups, bool bias) {
  return conv_common("conv_transpose2d_layer", &CONVT_VT, in, out, kernel, stride, padding, output_padding, dilation, groups, bias);
}

/* ---- BatchNorm ------------------------------------------------------------------------------ */

static cg_tensor *bn_forward(cg_module *m, cg_tensor *x) {
  cg_tensor *y = (m->cfg.sync ? cg_sync_batch_norm : cg_batch_norm)(x, mod_get(m, "running_mean"), mod_get(m, "running_var"), mod_get(m, "weight"), mod_get(m, "bias"), m->training,
                               m->cfg.momentum, m->cfg.eps);
  if (y && m->training) {
    cg_tensor *n = mod_get(m, "num_batches_tracked");
    cg_scope_begin();
    cg_status st = cg_assign(n, cg_add(n, cg_scalar(1))); /* lazy, as the running stats */
    cg_scope_end();
    if (st != CG_OK) {
      cg_free(y);
      return NULL;
    }
  }
  return y;
}
static const mod_vt BN_VT = {"BatchNorm2d", bn_forward, NULL, NULL};

cg_module *cg_batchnorm(int64_t channels, double eps, double momentum) {
  if (!positive("batchnorm", "num_features", channels)) return NULL;
  cg_module *m = mod_new(&BN_VT);
  if (!m) return NULL;
  m->cfg.in = m->cfg.out = channels, m->cfg.eps = eps, m->cfg.momentum = momentum;
  int64_t s[1] = {channels};
  cg_scope_begin();
  bool ok = mod_add(m, "weight", cg_ones(CG_FLOAT32, s, 1), true) && mod_add(m, "bias", cg_zeros(CG_FLOAT32, s, 1), true) &&
            mod_add(m, "running_mean", cg_zeros(CG_FLOAT32, s, 1), false) && mod_add(m, "running_var", cg_ones(CG_FLOAT32, s, 1), false) &&
            mod_add(m, "num_batches_tracked", cg_zeros(CG_INT64, NULL, 0), false);
  cg_scope_end();
  return ok ? m : fail(m);
}

cg_module *cg_batchnorm2d(int64_t channels) { return cg_batchnorm(channels, 1e-5, 0.1); }

int cg_module_sync_batchnorm(cg_module *m, bool on) {
  if (!m) return 0;
  int n = 0;
  if (m->vt == &BN_VT) m->cfg.sync = on, n++;
  for (int i = 0; i < m->nchildren; i++) n += cg_module_sync_batchnorm(m->children[i], on);
  return n;
}

/* ---- LayerNorm / RMSNorm / GroupNorm -------------------------------------------------------- */

static cg_tensor *ln_forward(cg_module *m, cg_tensor *x) {
  return cg_layer_norm(x, m->cfg.shape, m->cfg.nshape, mod_get(m, "weight"), mod_get(m, "bias"), m->cfg.eps);
}
static const mod_vt LN_VT = {"LayerNorm", ln_forward, NULL, NULL};

static cg_tensor *rms_forward(cg_module *m, cg_tensor *x) { return cg_rms_norm(x, m->cfg.shape, m->cfg.nshape, mod_get(m, "weight"), m->cfg.eps); }
static const mod_vt RMS_VT = {"RMSNorm", rms_forward, NULL, NULL};

static cg_module *norm_common(const char *who, const mod_vt *vt, const int64_t *shape, int n, double eps, bool affine, bool with_bias) {
  if (n >= 1 && !shape) return cg_fail_null(CG_ERR_INVALID, "%s: normalized_shape is NULL (with n = %d)", who, n);
  if (n < 1 || n > CG_MAX_DIMS) return cg_fail_null(CG_ERR_INVALID, "%s: expected 1 to %d normalized dims, got %d", who, CG_MAX_DIMS, n);
  for (int i = 0; i < n; i++)
    if (!positive(who, "each normalized dim", shape[i])) return NULL;
  cg_module *m = mod_new(vt);
  if (!m) return NULL;
  memcpy(m->cfg.shape, shape, sizeof(int64_t) * (size_t)n);
  m->cfg.nshape = n, m->cfg.eps = eps;
  cg_scope_begin();
  bool ok = !affine || (mod_add(m, "weight", cg_ones(CG_FLOAT32, shape, n), true) && (!with_bias || mod_add(m, "bias", cg_zeros(CG_FLOAT32, shape, n), true)));
  cg_scope_end();
  return ok ? m : fail(m);
}

cg_module *cg_layernorm(const int64_t *shape, int n, double eps, bool affine) { return norm_common("layernorm", &LN_VT, shape, n, eps, affine, true); }
cg_module *cg_rmsnorm(const int64_t *shape, int n, double eps) { return norm_common("rmsnorm", &RMS_VT, shape, n, eps, true, false); }

static cg_tensor *gn_forward(cg_module *m, cg_tensor *x) { return cg_group_norm(x, m->cfg.groups, mod_get(m, "weight"), mod_get(m, "bias"), m->cfg.eps); }
static const mod_vt GN_VT = {"GroupNorm", gn_forward, NULL, NULL};

cg_module *cg_groupnorm(int64_t groups, int64_t channels, double eps, bool affine) {
  if (!positive("groupnorm", "num_groups", groups) || !positive("groupnorm", "num_channels", channels)) return NULL;
  if (channels % groups)
    return cg_fail_null(CG_ERR_INVALID, "groupnorm: num_channels %lld must be divisible by num_groups %lld", (long long)channels, (long long)groups);
  cg_module *m = mod_new(&GN_VT);
  if (!m) return NULL;
  m->cfg.groups = groups, m->cfg.in = m->cfg.out = channels, m->cfg.eps = eps;
  int64_t s[1] = {channels};
  cg_scope_begin();
  bool ok = !affine || (mod_add(m, "weight", cg_ones(CG_FLOAT32, s, 1), true) && mod_add(m, "bias", cg_zeros(CG_FLOAT32, s, 1), true));
  cg_scope_end();
  return ok ? m : fail(m);
}

/* ---- Embedding / Dropout ---------------------------------------------------------------------- */

static cg_tensor *emb_forward(cg_module *m, cg_tensor *x) { return cg_embedding_fn(x, mod_get(m, "weight")); }
static const mod_vt EMB_VT = {"Embedding", emb_forward, NULL, NULL};

cg_module *cg_embedding(int64_t num, int64_t dim) {
  if (!positive("embedding", "num_embeddings", num) || !positive("embedding", "embedding_dim", dim)) return NULL;
  cg_module *m = mod_new(&EMB_VT);
  if (!m) return NULL;
  m->cfg.in = num, m->cfg.out = dim;
  int64_t s[2] = {num, dim};
  cg_scope_begin();
  bool ok = mod_add(m, "weight", cg_randn(CG_FLOAT32, s, 2), true);
  cg_scope_end();
  return ok ? m : fail(m);
}

static cg_tensor *drop_forward(cg_module *m, cg_tensor *x) { return cg_dropout_fn(x, m->cfg.p, m->training); }
static const mod_vt DROP_VT = {"Dropout", drop_forward, NULL, NULL};

cg_module *cg_dropout(double p) {
  if (!(p >= 0 && p <= 1)) return cg_fail_null(CG_ERR_INVALID, "dropout: expected a probability in [0, 1], got %g", p);
  cg_module *m = mod_new(&DROP_VT);
  if (m) m->cfg.p = p;
  return m;
}

/* ---- pools, ReLU, Flatten --------------------------------------------------------------------- */

static cg_tensor *maxpool_forward(cg_module *m, cg_tensor *x) { return cg_max_pool2d(x, m->cfg.kernel, m->cfg.stride, m->cfg.padding); }
static const mod_vt MAXPOOL_VT = {"MaxPool2d", maxpool_forward, NULL, NULL};
static cg_tensor *avgpool_forward(cg_module *m, cg_tensor *x) { return cg_avg_pool2d(x, m->cfg.kernel, m->cfg.stride, m->cfg.padding); }
static const mod_vt AVGPOOL_VT = {"AvgPool2d", avgpool_forward, NULL, NULL};

static cg_module *pool_common(const char *who, const mod_vt *vt, int64_t kernel, int64_t stride, int64_t padding) {
  if (stride == 0) stride = kernel;
  if (!positive(who, "kernel_size", kernel) || !positive(who, "stride", stride)) return NULL;
  if (padding < 0 || 2 * padding > kernel)
    return cg_fail_null(CG_ERR_INVALID, "%s: padding must be in [0, kernel/2] = [0, %lld], got %lld", who, (long long)(kernel / 2), (long long)padding);
  cg_module *m = mod_new(vt);
  if (!m) return NULL;
  for (int j = 0; j < 2; j++) m->cfg.kernel[j] = kernel, m->cfg.stride[j] = stride, m->cfg.padding[j] = padding;
  return m;
}

cg_module *cg_maxpool2d(int64_t kernel, int64_t stride, int64_t padding) { return pool_common("maxpool2d", &MAXPOOL_VT, kernel, stride, padding); }
cg_module *cg_avgpool2d(int64_t kernel, int64_t stride, int64_t padding) { return pool_common("avgpool2d", &AVGPOOL_VT, kernel, stride, padding); }

static cg_tensor *relu_forward(cg_module *m, cg_tensor *x) { return cg_relu(x); }
static const mod_vt RELU_VT = {"ReLU", relu_forward, NULL, NULL};
cg_module *cg_relu_layer(void) { return mod_new(&RELU_VT); }

static cg_tensor *flatten_forward(cg_module *m, cg_tensor *x) {
  if (cg_ndim(x) < 2) return cg_fail_null(CG_ERR_INVALID, "flatten: expected an input of at least 2 dims (N, ...), got %d dims", cg_ndim(x));
  return cg_flatten(x, 1, -1);
}
static const mod_vt FLATTEN_VT = {"Flatten", flatten_forward, NULL, NULL};
cg_module *cg_flatten_layer(void) { return mod_new(&FLATTEN_VT); }
