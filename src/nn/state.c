/* Checkpoints: tensors to and from safetensors and .npy files (the byte formats live in
 * safetensors.c and npy.c; this file is the tensor side).
 *
 *   save: realize all ─► read each to host ─► st_save (atomic: the old file survives a
 *         failed write)
 *   load: st_load ─► check every name, dtype and shape against the destinations ─► only
 *         then write the bytes into each destination's buffer
 *
 * A load checks everything before it writes anything, so on any error (a missing name, a
 * wrong shape or dtype, a corrupt file) every destination keeps its value. */
#include "core/error.h"
#include "nn/npy.h"
#include "nn/safetensors.h"
#include "tensor/tensor.h"
#include <string.h>

static cg_status realize_all(cg_tensor *const *ts, int n) { return n ? cg_realize_many(ts, n) : CG_OK; }

/* A host copy of t's contents (malloc'd; *nbytes its size), or NULL with a message. */
static void *host_copy(cg_tensor *t, size_t *nbytes) {
  cg_dtype dt = cg_dtype_of(t);
  *nbytes = (size_t)cg_numel(t) * cg_dtype_size(dt);
  void *p = cg_malloc(*nbytes ? *nbytes : 1);
  if (p && cg_read(t, dt, p, *nbytes) != CG_OK) {
    free(p);
    return NULL;
  }
  return p;
}

cg_status cg_save_safetensors(const char *path, const char *const *names, cg_tensor *const *ts, int n) {
  if (!path) return cg_fail(CG_NULL_INPUT, "save_safetensors: path is NULL");
  if (n < 0) return cg_fail(CG_ERR_INVALID, "save_safetensors: expected n >= 0 names and tensors, got n = %d", n);
  if (n > 0 && (!names || !ts)) return cg_fail(CG_ERR_INVALID, "save_safetensors: %s is NULL (with n = %d)", names ? "ts" : "names", n);
  for (int i = 0; i < n; i++) {
    if (!names[i]) return cg_fail(CG_NULL_INPUT, "save_safetensors: name %d is NULL", i);
    if (!ts[i]) return cg_fail(CG_NULL_INPUT, "save_safetensors: tensor %d ('%s') is NULL", i, names[i]);
    if (cg_ndim(ts[i]) > ST_MAX_DIMS)
      return cg_fail(CG_ERR_INVALID, "save_safetensors: tensor '%s' has %d dims, the format holds up to %d", names[i], cg_ndim(ts[i]), ST_MAX_DIMS);
  }
  cg_status st = realize_all(ts, n);
  if (st != CG_OK) return st;
  st_tensor *rec = cg_calloc((size_t)(n ? n : 1), sizeof *rec);
  if (!rec) return CG_ERR_NOMEM;
  for (int i = 0; i < n && st == CG_OK; i++) {
    rec[i].name = names[i];
    rec[i].dtype = cg_dtype_of(ts[i]);
    rec[i].ndim = cg_ndim(ts[i]);
    memcpy(rec[i].shape, cg_shape(ts[i]), sizeof(int64_t) * (size_t)rec[i].ndim);
    rec[i].data = host_copy(ts[i], &rec[i].nbytes);
    if (!rec[i].data) st = cg_last_status();
  }
  if (st == CG_OK) st = st_save(path, rec, n, NULL, 0);
  for (int i = 0; i < n; i++) free((void *)rec[i].data);
  free(rec);
  return st;
}

/* Write nbytes of host data into t's own buffer (t realized to a plain buffer first). */
static cg_status overwrite(cg_tensor *t, const void *data, size_t nbytes) {
  if (cg_is_variable(t)) { /* a kernel variable: its value is set (one element of its dtype) */
    union { float f; double d; int32_t i; int64_t l; } v;
    CG_ASSERT(nbytes == (size_t)cg_dtype_size(cg_dtype_of(t)) && nbytes <= sizeof v, "a var of %zu bytes", nbytes);
    memcpy(&v, data, nbytes);
    cg_dtype dt = cg_dtype_of(t);
    return cg_variable_set(t, dt == CG_FLOAT32 ? v.f : dt == CG_FLOAT64 ? v.d : dt == CG_INT32 ? v.i : (double)v.l);
  }
  cg_status st = cg_realize(t);
  if (st != CG_OK) return st;
  uop *b = t->u;
  while (b->op == OP_RESHAPE) b = b->src[0];
  CG_ASSERT(b->op == OP_BUFFER, "a realized tensor is not a view of a buffer");
  if ((st = buffer_alloc(b)) != CG_OK) return st;
  cg_buffer *buf = buffer_of(b);
  CG_ASSERT(buf->nbytes >= nbytes, "buffer of %zu bytes for %zu", buf->nbytes, nbytes);
  return nbytes ? buf->dev->copyin(buf->ptr, data, nbytes) : CG_OK;
}

cg_status cg_load_safetensors(const char *path, const char *const *names, cg_tensor *const *ts, int n) {
  if (!path) return cg_fail(CG_NULL_INPUT, "load_safetensors: path is NULL");
  if (n < 0) return cg_fail(CG_ERR_INVALID, "load_safetensors: expected n >= 0 names and tensors, got n = %d", n);
  if (n > 0 && (!names || !ts)) return cg_fail(CG_ERR_INVALID, "load_safetensors: %s is NULL (with n = %d)", names ? "ts" : "names", n);
  for (int i = 0; i < n; i++) {
    if (!names[i]) return cg_fail(CG_NULL_INPUT, "load_safetensors: name %d is NULL", i);
    if (!ts[i]) return cg_fail(CG_NULL_INPUT, "load_safetensors: tensor %d ('%s') is NULL", i, names[i]);
  }
  st_file *f = st_load(path);
  if (!f) return cg_last_status();
  const st_tensor **rec = cg_calloc((size_t)(n ? n : 1), sizeof *rec);
  cg_status st = rec ? CG_OK : CG_ERR_NOMEM;
  for (int i = 0; i < n && st == CG_OK; i++) {
    rec[i] = st_find(f, names[i]);
    cg_tensor *t = ts[i];
    if (!rec[i]) {
      char have[256] = "";
      size_t at = 0;
      for (int k = 0; k < st_count(f) && at < sizeof have - 8; k++)
        at += (size_t)snprintf(have + at, sizeof have - at, "%s'%s'", k ? ", " : "", st_at(f, k)->name);
      if (at >= sizeof have - 8) snprintf(have + sizeof have - 8, 8, ", ...");
      st = cg_fail(CG_ERR_FORMAT, "load_safetensors '%s': expected a tensor named '%s', found none (the file has %d: %s)", path,
                   names[i], st_count(f), st_count(f) ? have : "no tensors");
    } else if (rec[i]->dtype != cg_dtype_of(t)) {
      st = cg_fail(CG_ERR_FORMAT, "load_safetensors '%s': tensor '%s': expected dtype %s, found %s in the file", path, names[i],
                   cg_dtype_name(cg_dtype_of(t)), cg_dtype_name(rec[i]->dtype));
    } else if (!shape_eq(rec[i]->shape, rec[i]->ndim, cg_shape(t), cg_ndim(t))) {
      char want[128];
      snprintf(want, sizeof want, "%s", shape_str(cg_shape(t), cg_ndim(t)));
      st = cg_fail(CG_ERR_FORMAT, "load_safetensors '%s': tensor '%s': expected shape %s, found %s in the file", path, names[i], want,
                   shape_str(rec[i]->shape, rec[i]->ndim));
    }
  }
  for (int i = 0; i < n && st == CG_OK; i++) st = overwrite(ts[i], rec[i]->data, rec[i]->nbytes);
  free(rec);
  st_free(f);
  return st;
}

cg_tensor *cg_load_npy(const char *path) {
  if (!path) return cg_fail_null(CG_NULL_INPUT, "load_npy: path is NULL");
  npy_array *a = npy_load(path);
  if (!a) return NULL;
  cg_tensor *t = cg_from_data(a->data, a->dtype, a->shape, a->ndim);
  npy_free(a);
  return t;
}

cg_status cg_save_npy(const char *path, cg_tensor *t) {
  if (!path) return cg_fail(CG_NULL_INPUT, "save_npy: path is NULL");
  if (!t) return cg_fail(CG_NULL_INPUT, "save_npy: tensor is NULL");
  cg_dtype dt = cg_dtype_of(t);
  if (!npy_descr(dt))
    return cg_fail(CG_ERR_INVALID, "save_npy '%s': expected a dtype .npy can store (bool, integers, float16/32/64), got %s", path,
                   cg_dtype_name(dt));
  if (cg_ndim(t) > NPY_MAX_DIMS)
    return cg_fail(CG_ERR_INVALID, "save_npy '%s': expected up to %d dims, got %d", path, NPY_MAX_DIMS, cg_ndim(t));
  size_t nbytes;
  void *p = host_copy(t, &nbytes);
  if (!p) return cg_last_status();
  cg_status st = npy_save(path, dt, cg_ndim(t), cg_shape(t), p);
  free(p);
  return st;
}
