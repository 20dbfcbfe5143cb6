/* Tensor handles: creation, scopes, properties, reading data out. */
#include "tensor.h"
#include "runtime/var.h"
#include <math.h>
#include <string.h>

/* ---- scopes ------------------------------------------------------------------------ */

#define MAX_SCOPES 64
static _Thread_local cg_tensor *scope_head[MAX_SCOPES + 1];
static _Thread_local int scope_level;

static void scope_link(cg_tensor *t, int level) {
  t->scope = level;
  t->prev = NULL;
  t->next = scope_head[level];
  if (t->next) t->next->prev = t;
  scope_head[level] = t;
}
static void scope_unlink(cg_tensor *t) {
  if (t->prev) t->prev->next = t->next;
  else scope_head[t->scope] = t->next;
  if (t->next) t->next->prev = t->prev;
}

void cg_scope_begin(void) {
  CG_ASSERT(scope_level < MAX_SCOPES, "more than %d nested scopes", MAX_SCOPES);
  scope_level++;
}

void cg_scope_end(void) {
  if (scope_level == 0) return;
  while (scope_head[scope_level]) cg_free(scope_head[scope_level]);
  scope_level--;
}

cg_tensor *cg_keep(cg_tensor *t) {
  if (!t || t->scope == 0) return t;
  scope_unlink(t);
  scope_link(t, t->scope - 1);
  return t;
}

void cg_free(cg_tensor *t) {
  if (!t) return;
  scope_unlink(t);
  uop_release(t->u);
  if (t->graph) uop_release(t->graph);
  if (t->grad) cg_free(t->grad);
  uop_release(t->grad_zero);
  free(t);
}

cg_tensor *tensor_new(uop *u) {
  cg_tensor *t = cg_calloc(1, sizeof *t);
  if (!t) return NULL;
  t->u = uop_retain(u);
  scope_link(t, scope_level);
  return t;
}

void tensor_foreach(void (*fn)(cg_tensor *t, void *ctx), void *ctx) {
  for (int l = 0; l <= scope_level; l++)
    for (cg_tensor *t = scope_head[l]; t; t = t->next) fn(t, ctx);
}

cg_status op_status(cg_status st) {
  if (!uop_pool_failed()) return st;
  if (cg_last_status() != CG_ERR_NOMEM) cg_fail(CG_ERR_NOMEM, "out of memory building the graph");
  return CG_ERR_NOMEM;
}

cg_tensor *op_end(uop *u) {
  cg_tensor *t = u && op_status(CG_OK) == CG_OK ? tensor_new(u) : NULL;
  uop_pool_pop();
  return t;
}

/* ---- properties --------------------------------------------------------------------- */

int cg_ndim(const cg_tensor *t) { return t ? t->u->ndim : -1; }
const int64_t *cg_shape(const cg_tensor *t) { return t ? t->u->shape : NULL; }
int64_t cg_numel(const cg_tensor *t) { return t ? shape_numel(t->u->shape, t->u->ndim) : -1; }
cg_dtype cg_dtype_of(const cg_tensor *t) { return t ? (cg_dtype)t->u->dt.scalar : CG_NUM_DTYPES; }

/* ---- creation ----------------------------------------------------------------------- */

bool shape_fits(const char *who, const int64_t *shape, int ndim, dtype dt) {
  if (shape_numel_checked(shape, ndim, dt_scalar_size(dt)) >= 0) return true;
  cg_fail(CG_ERR_INVALID, "%s: shape %s is too large: its element count or its size in bytes (%s) does not fit in 64 bits", who,
          shape_str(shape, ndim), dt_name(dt));
  return false;
}

bool check_shape(const char *who, const int64_t *shape, int ndim, dtype dt) {
  if (ndim < 0 || ndim > CG_MAX_DIMS) {
    cg_fail(CG_ERR_INVALID, "%s: expected 0 to %d dims, got %d", who, CG_MAX_DIMS, ndim);
    return false;
  }
  if (ndim && !shape) {
    cg_fail(CG_ERR_INVALID, "%s: shape is NULL (with ndim %d)", who, ndim);
    return false;
  }
  for (int i = 0; i < ndim; i++)
    if (shape[i] < 0) {
      cg_fail(CG_ERR_INVALID, "%s: dims must be >= 0, got shape %s", who, shape_str(shape, ndim));
      return false;
    }
  return shape_fits(who, shape, ndim, dt);
}

static bool check_dtype(const char *who, cg_dtype dt) {
  if ((int)dt < 0 || dt >= CG_NUM_DTYPES) {
    cg_fail(CG_ERR_INVALID, "%s: invalid dtype %d", who, (int)dt);
    return false;
  }
  return true;
}

cg_tensor *cg_empty(cg_dtype dt, const int64_t *shape, int ndim) {
  if (!check_dtype("empty", dt) || !check_shape("empty", shape, ndim, dt_of(dt))) return NULL;
  op_begin();
  uop *b = buffer_new(dt_of(dt), shape_numel(shape, ndim));
  return op_end(b ? view_reshape(b, shape, ndim) : NULL);
}

cg_tensor *cg_from_data(const void *data, cg_dtype dt, const int64_t *shape, int ndim) {
  if (!check_dtype("from_data", dt) || !check_shape("from_data", shape, ndim, dt_of(dt))) return NULL;
  if (!data && shape_numel(shape, ndim)) return cg_fail_null(CG_NULL_INPUT, "from_data: data is NULL");
  op_begin();
  uop *b = buffer_new(dt_of(dt), shape_numel(shape, ndim));
  if (b && buffer_alloc(b) == CG_OK) {
    cg_buffer *buf = buffer_of(b);
    if (buf->nbytes) buf->dev->copyin(buf->ptr, data, buf->nbytes);
    return op_end(view_reshape(b, shape, ndim));
  }
  return op_end(NULL);
}

cg_tensor *cg_full(double value, cg_dtype dt, const int64_t *shape, int ndim) {
  if (!check_dtype("full", dt) || !check_shape("full", shape, ndim, dt_of(dt))) return NULL;
  op_begin();
  return op_end(const_full(dt_of(dt), value, shape, ndim));
}
cg_tensor *cg_zeros(cg_dtype dt, const int64_t *shape, int ndim) { return cg_full(0, dt, shape, ndim); }
cg_tensor *cg_ones(cg_dtype dt, const int64_t *shape, int ndim) { return cg_full(1, dt, shape, ndim); }

cg_tensor *cg_scalar(double value) {
  bool integral = value == floor(value) && fabs(value) < 2147483648.0;
  op_begin();
  cg_tensor *t = op_end(integral ? uop_const_int(DT_I32, (int64_t)value) : uop_const_float(DT_F32, value));
  if (t) t->weak = true;
  return t;
}

cg_tensor *cg_arange(double start, double stop, double step, cg_dtype dt) {
  if (!check_dtype("arange", dt)) return NULL;
  if (step == 0 || !isfinite(start) || !isfinite(stop) || !isfinite(step))
    return cg_fail_null(CG_ERR_INVALID, "arange: expected finite start/stop and a nonzero step, got %g, %g, %g", start, stop, step);
  double n = ceil((stop - start) / step);
  if (n >= 0x1p62) return cg_fail_null(CG_ERR_INVALID, "arange: %g to %g by %g is %g elements, too many", start, stop, step, n);
  int64_t count = n > 0 ? (int64_t)n : 0;
  if (!shape_fits("arange", &count, 1, dt_of(dt))) return NULL;
  /* values are computed on the host: small, and exact as PyTorch's */
  op_begin();
  dtype d = dt_of(dt);
  int64_t shp[1] = {count};
  uop *b = buffer_new(d, count);
  if (!b || buffer_alloc(b) != CG_OK) return op_end(NULL);
  cg_buffer *buf = buffer_of(b);
  for (int64_t i = 0; i < count; i++) {
    host_store(d, buf->ptr, i, start + (double)i * step);
  }
  return op_end(view_reshape(b, shp, 1));
}

cg_tensor *cg_linspace(double start, double stop, int64_t steps, cg_dtype dt) {
  if (!check_dtype("linspace", dt)) return NULL;
  if (steps < 0) return cg_fail_null(CG_ERR_INVALID, "linspace: expected steps >= 0, got %lld", (long long)steps);
  if (!shape_fits("linspace", &steps, 1, dt_of(dt))) return NULL;
  op_begin();
  dtype d = dt_of(dt);
  uop *b = buffer_new(d, steps);
  if (!b || buffer_alloc(b) != CG_OK) return op_end(NULL);
  for (int64_t i = 0; i < steps; i++) {
    double v = steps == 1 ? start : (i < steps / 2 ? start + (stop - start) / (double)(steps - 1) * (double)i
                                                   : stop - (stop - start) / (double)(steps - 1) * (double)(steps - 1 - i));
    host_store(d, buffer_of(b)->ptr, i, v);
  }
  int64_t shp[1] = {steps};
  return op_end(view_reshape(b, shp, 1));
}

cg_tensor *cg_eye(int64_t n, cg_dtype dt) {
  if (!check_dtype("eye", dt)) return NULL;
  if (n < 0) return cg_fail_null(CG_ERR_INVALID, "eye: expected n >= 0, got %lld", (long long)n);
  if (n > 3037000498) return cg_fail_null(CG_ERR_INVALID, "eye: n = %lld is too large: n * (n + 1) overflows 64 bits", (long long)n);
  if (!shape_fits("eye", (int64_t[]){n, n}, 2, dt_of(dt))) return NULL;
  /* eye(n) = pad a column of ones: ones(n, 1) padded to (n, n+1), flattened, first n*n */
  op_begin();
  dtype d = dt_of(dt);
  int64_t s1[2] = {n, 1}, pads[4] = {0, 0, 0, n}, flat[1] = {n * (n + 1)}, box[2] = {0, n * n}, out[2] = {n, n};
  uop *u = view_pad(const_full(d, 1, s1, 2), pads);
  u = view_reshape(u, flat, 1);
  u = view_shrink(u, box);
  return op_end(view_reshape(u, out, 2));
}

/* ---- reading ---------------------------------------------------------------------- */

cg_status cg_read(cg_tensor *t, cg_dtype dt, void *dst, size_t nbytes) {
  if (!t) return cg_fail(CG_NULL_INPUT, "read: tensor is NULL");
  cg_dtype have = cg_dtype_of(t);
  size_t want = (size_t)cg_numel(t) * cg_dtype_size(have);
  if (dt != have)
    return cg_fail(CG_ERR_INVALID, "read: the tensor is %s %s, but %s was asked for", cg_dtype_name(have),
                   shape_str(t->u->shape, t->u->ndim), cg_dtype_name(dt));
  if (nbytes != want)
    return cg_fail(CG_ERR_INVALID, "read: the tensor %s %s has %zu bytes, but the destination has %zu", cg_dtype_name(have),
                   shape_str(t->u->shape, t->u->ndim), want, nbytes);
  if (var_is_tensor(t->u)) { /* a var: its value now */
    int64_t bits = var_load(var_cell(t->u));
    if (t->u->dt.scalar == CG_INT64) memcpy(dst, &bits, sizeof bits); /* exact beyond 2^53 */
    else host_store(t->u->dt, dst, 0, var_value_of(t->u->dt, bits));
    return CG_OK;
  }
  cg_status st = cg_realize(t);
  if (st != CG_OK) return st;
  if (!want) return CG_OK;
  uop *b = t->u;
  while (b->op != OP_BUFFER) b = b->src[0];
  cg_buffer *buf = buffer_of(b);
  return buf->dev->copyout(dst, buf->ptr, want);
}

double cg_item(cg_tensor *t) {
  if (!t) return cg_fail(CG_NULL_INPUT, "item: tensor is NULL"), NAN;
  if (cg_numel(t) != 1)
    return cg_fail(CG_ERR_INVALID, "item: expected a tensor of one element, got shape %s", shape_str(t->u->shape, t->u->ndim)), NAN;
  union { double f64; float f32; int64_t i64; int32_t i32; int16_t i16; int8_t i8; uint64_t u64; uint32_t u32; uint16_t u16; uint8_t u8; } v;
  cg_dtype dt = cg_dtype_of(t);
  if (cg_read(t, dt, &v, cg_dtype_size(dt)) != CG_OK) return NAN;
  switch (dt) {
  case CG_BOOL: case CG_UINT8: return v.u8;
  case CG_INT8: return v.i8;
  case CG_INT16: return v.i16;
  case CG_INT32: return v.i32;
  case CG_INT64: return (double)v.i64;
  case CG_UINT16: return v.u16;
  case CG_UINT32: return v.u32;
  case CG_UINT64: return (double)v.u64;
  case CG_FLOAT16: return cg_f16_to_f32(v.u16);
  case CG_BFLOAT16: return cg_bf16_to_f32(v.u16);
  case CG_FLOAT32: return v.f32;
  case CG_FLOAT64: return v.f64;
  case CG_FP8E4M3: return cg_fp8e4m3_to_f32(v.u8);
  case CG_FP8E5M2: return cg_fp8e5m2_to_f32(v.u8);
  default: return NAN;
  }
}

void host_store(dtype dt, void *p, int64_t i, double v) {
  int64_t n = dt_is_float(dt) ? 0 : alu_float_to_int(dt, v); /* as CAST converts (ops.def) */
  switch (dt.scalar) {
  case CG_BOOL: ((uint8_t *)p)[i] = (uint8_t)n; break;
  case CG_INT8: ((int8_t *)p)[i] = (int8_t)n; break;
  case CG_INT16: ((int16_t *)p)[i] = (int16_t)n; break;
  case CG_INT32: ((int32_t *)p)[i] = (int32_t)n; break;
  case CG_INT64: ((int64_t *)p)[i] = n; break;
  case CG_UINT8: ((uint8_t *)p)[i] = (uint8_t)n; break;
  case CG_UINT16: ((uint16_t *)p)[i] = (uint16_t)n; break;
  case CG_UINT32: ((uint32_t *)p)[i] = (uint32_t)n; break;
  case CG_UINT64: ((uint64_t *)p)[i] = (uint64_t)n; break;
  case CG_FLOAT16: ((uint16_t *)p)[i] = cg_f32_to_f16((float)v); break;
  case CG_BFLOAT16: ((uint16_t *)p)[i] = cg_f32_to_bf16((float)v); break;
  case CG_FLOAT32: ((float *)p)[i] = (float)v; break;
  case CG_FLOAT64: ((double *)p)[i] = v; break;
  case CG_FP8E4M3: ((uint8_t *)p)[i] = cg_f32_to_fp8e4m3((float)v); break;
  case CG_FP8E5M2: ((uint8_t *)p)[i] = cg_f32_to_fp8e5m2((float)v); break;
  default: break;
  }
}
