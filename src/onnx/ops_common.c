/* What every op needs: messages naming the node, attributes, constant inputs. */
#include "onnx/onnx.h"
#include "core/error.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

cg_status onnx_fail(onnx_ctx *c, const char *fmt, ...) {
  char msg[700];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return cg_fail(CG_ERR_INVALID, "onnx: node %d '%s' (%s): %s", c->idx, c->node->name ? c->node->name : "", c->node->op_type, msg);
}

const Onnx__AttributeProto *onnx_attr(onnx_ctx *c, const char *name) {
  for (size_t i = 0; i < c->node->n_attribute; i++)
    if (c->node->attribute[i]->name && !strcmp(c->node->attribute[i]->name, name)) return c->node->attribute[i];
  return NULL;
}

int64_t onnx_attr_i(onnx_ctx *c, const char *name, int64_t dflt) {
  const Onnx__AttributeProto *a = onnx_attr(c, name);
  return a && a->has_i ? a->i : dflt;
}

double onnx_attr_f(onnx_ctx *c, const char *name, double dflt) {
  const Onnx__AttributeProto *a = onnx_attr(c, name);
  return a && a->has_f ? (double)a->f : dflt;
}

const char *onnx_attr_s(onnx_ctx *c, const char *name, const char *dflt, char *buf, size_t cap) {
  const Onnx__AttributeProto *a = onnx_attr(c, name);
  if (!a || !a->has_s) return dflt;
  size_t n = a->s.len < cap - 1 ? a->s.len : cap - 1;
  if (n) memcpy(buf, a->s.data, n);
  buf[n] = 0;
  return buf;
}

int onnx_attr_ints(onnx_ctx *c, const char *name, int64_t *out, int max) {
  const Onnx__AttributeProto *a = onnx_attr(c, name);
  if (!a) return -1;
  if (a->n_ints > (size_t)max) return onnx_fail(c, "attribute %s has %zu values, at most %d are supported", name, a->n_ints, max), -2;
  for (size_t i = 0; i < a->n_ints; i++) out[i] = a->ints[i];
  return (int)a->n_ints;
}

int onnx_attr_floats(onnx_ctx *c, const char *name, double *out, int max) {
  const Onnx__AttributeProto *a = onnx_attr(c, name);
  if (!a) return -1;
  if (a->n_floats > (size_t)max) return onnx_fail(c, "attribute %s has %zu values, at most %d", name, a->n_floats, max), -2;
  for (size_t i = 0; i < a->n_floats; i++) out[i] = a->floats[i];
  return (int)a->n_floats;
}

cg_tensor *onnx_in(onnx_ctx *c, int i) {
  if (i < c->nin && c->in[i]) return c->in[i];
  onnx_fail(c, "input %d is required", i);
  return NULL;
}

static int in_values(onnx_ctx *c, int i, cg_dtype dt, void *out, int max) {
  cg_tensor *t = onnx_in(c, i);
  if (!t) return -1;
  onnx_host_read(c, i);
  int64_t n = cg_numel(t);
  if (n > max) return onnx_fail(c, "input %d has %lld values, at most %d are supported here", i, (long long)n, max), -1;
  cg_tensor *v = cg_dtype_of(t) == dt ? t : cg_cast(t, dt);
  if (!v || cg_realize(v) != CG_OK || cg_read(v, dt, out, (size_t)n * cg_dtype_size(dt)) != CG_OK) {
    if (v != t) cg_free(v);
    return onnx_fail(c, "input %d could not be computed: %s", i, cg_last_error()), -1;
  }
  if (v != t) cg_free(v);
  return (int)n;
}

int onnx_in_ints(onnx_ctx *c, int i, int64_t *out, int max) {
  if (i < c->nin && c->in[i] && !onnx_is_int(cg_dtype_of(c->in[i])) && cg_dtype_of(c->in[i]) != CG_BOOL)
    return onnx_fail(c, "input %d must be an integer tensor, got %s", i, cg_dtype_name(cg_dtype_of(c->in[i]))), -1;
  return in_values(c, i, CG_INT64, out, max);
}
int onnx_in_doubles(onnx_ctx *c, int i, double *out, int max) { return in_values(c, i, CG_FLOAT64, out, max); }

int onnx_axis(onnx_ctx *c, int64_t axis, int ndim) {
  if (axis < -ndim || axis >= ndim) return onnx_fail(c, "axis %lld is out of range for %d dims", (long long)axis, ndim), -1;
  return (int)(axis < 0 ? axis + ndim : axis);
}

cg_status onnx_set(onnx_ctx *c, int i, cg_tensor *t) {
  if (!t) {
    if (strstr(cg_last_error(), "onnx: node")) return cg_last_status() ? cg_last_status() : CG_ERR_INVALID;
    return onnx_fail(c, "%s", cg_last_error());
  }
  if (i < c->nout) c->out[i] = t;
  return CG_OK;
}

bool onnx_is_float(cg_dtype dt) { return dt == CG_FLOAT16 || dt == CG_BFLOAT16 || dt == CG_FLOAT32 || dt == CG_FLOAT64; }
bool onnx_is_int(cg_dtype dt) { return dt >= CG_INT8 && dt <= CG_UINT64; }
bool onnx_is_signed(cg_dtype dt) { return dt >= CG_INT8 && dt <= CG_INT64; }

cg_tensor *onnx_i64(const int64_t *v, int64_t n, int ndim) { return cg_from_data(v, CG_INT64, &n, ndim); }

double onnx_saturate(double v, cg_dtype dt) {
  if (onnx_is_float(dt)) return v;
  if (v != v) return 0;
  double lo = 0, hi = 1;
  switch (dt) {
  case CG_INT8: lo = -128, hi = 127; break;
  case CG_INT16: lo = -32768, hi = 32767; break;
  case CG_INT32: lo = -2147483648.0, hi = 2147483647.0; break;
  case CG_INT64: lo = -9223372036854775808.0, hi = 9223372036854774784.0; break; /* largest double below 2^63 */
  case CG_UINT8: hi = 255; break;
  case CG_UINT16: hi = 65535; break;
  case CG_UINT32: hi = 4294967295.0; break;
  case CG_UINT64: hi = 18446744073709549568.0; break;
  default: break;
  }
  return v < lo ? lo : v > hi ? hi : v;
}

/* integer constants saturate: -inf (a Clip or pool default) is the dtype's lowest value */
cg_tensor *onnx_const(double v, cg_dtype dt) { return cg_full(onnx_saturate(v, dt), dt, NULL, 0); }
