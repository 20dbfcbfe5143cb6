/* Movement ops: checked here, then built as views (no copy, no kernel). */
#include "tensor.h"
#include "runtime/var.h"
#include <string.h>

#define NULLCHK(who, t) \
  if (!(t)) return cg_fail_null(CG_NULL_INPUT, "%s: tensor is NULL", who)
/* An array argument with n > 0 entries must not be NULL. */
#define ARRCHK(who, arr, n) \
  if ((n) > 0 && !(arr)) return cg_fail_null(CG_ERR_INVALID, "%s: %s is NULL (with %d entries expected)", who, #arr, (int)(n))

int norm_dim(const char *who, int ndim, int dim, bool *ok) {
  int d = dim < 0 ? dim + ndim : dim;
  *ok = d >= 0 && d < ndim;
  if (!*ok) cg_fail(CG_ERR_INVALID, "%s: dim %d is out of range for a tensor of %d dims", who, dim, ndim);
  return d;
}

static cg_tensor *finish(uop *u) { return op_end(u); }

cg_tensor *cg_reshape(cg_tensor *a, const int64_t *shape, int ndim) {
  NULLCHK("reshape", a);
  if (ndim < 0 || ndim > CG_MAX_DIMS) return cg_fail_null(CG_ERR_INVALID, "reshape: expected 0 to %d dims, got %d", CG_MAX_DIMS, ndim);
  ARRCHK("reshape", shape, ndim);
  int64_t s[UOP_MAX_DIMS], known = 1;
  int infer = -1;
  bool ovf = false, zero = false;
  for (int i = 0; i < ndim; i++) {
    s[i] = shape[i];
    if (s[i] == -1 && infer < 0) infer = i;
    else if (s[i] < 0) return cg_fail_null(CG_ERR_INVALID, "reshape: bad shape %s for a tensor of shape %s", shape_str(shape, ndim), shape_str(a->u->shape, a->u->ndim));
    else zero |= s[i] == 0, ovf |= __builtin_mul_overflow(known, s[i], &known);
  }
  if (zero) known = 0;
  else if (ovf) return cg_fail_null(CG_ERR_INVALID, "reshape: shape %s has more elements than fit in 64 bits", shape_str(shape, ndim));
  int64_t n = cg_numel(a);
  if (infer >= 0) {
    if (known == 0 || n % known) return cg_fail_null(CG_ERR_INVALID, "reshape: cannot reshape %s (%lld elements) to %s", shape_str(a->u->shape, a->u->ndim), (long long)n, shape_str(shape, ndim));
    s[infer] = n / known;
    known *= s[infer];
  }
  if (known != n)
    return cg_fail_null(CG_ERR_INVALID, "reshape: cannot reshape %s (%lld elements) to %s (%lld elements)", shape_str(a->u->shape, a->u->ndim),
                        (long long)n, shape_str(s, ndim), (long long)known);
  op_begin();
  return finish(view_reshape(a->u, s, ndim));
}

cg_tensor *cg_permute(cg_tensor *a, const int *perm, int ndim) {
  NULLCHK("permute", a);
  int nd = a->u->ndim;
  int64_t p[UOP_MAX_DIMS];
  bool seen[UOP_MAX_DIMS] = {0};
  ARRCHK("permute", perm, ndim);
  if (ndim != nd) return cg_fail_null(CG_ERR_INVALID, "permute: expected %d axes for shape %s, got %d", nd, shape_str(a->u->shape, nd), ndim);
  for (int i = 0; i < nd; i++) {
    bool ok;
    int d = norm_dim("permute", nd, perm[i], &ok);
    if (!ok) return NULL;
    if (seen[d]) return cg_fail_null(CG_ERR_INVALID, "permute: axis %d repeats in the permutation of shape %s", perm[i], shape_str(a->u->shape, nd));
    seen[d] = true;
    p[i] = d;
  }
  op_begin();
  return finish(view_permute(a->u, p));
}

cg_tensor *cg_transpose(cg_tensor *a, int d0, int d1) {
  NULLCHK("transpose", a);
  int nd = a->u->ndim, p[UOP_MAX_DIMS];
  bool ok0, ok1;
  d0 = norm_dim("transpose", nd, d0, &ok0);
  d1 = norm_dim("transpose", nd, d1, &ok1);
  if (!ok0 || !ok1) return NULL;
  for (int i = 0; i < nd; i++) p[i] = i;
  p[d0] = d1, p[d1] = d0;
  return cg_permute(a, p, nd);
}

cg_tensor *cg_expand(cg_tensor *a, const int64_t *shape, int ndim) {
  NULLCHK("expand", a);
  int nd = a->u->ndim;
  if (ndim < nd || ndim > CG_MAX_DIMS) return cg_fail_null(CG_ERR_INVALID, "expand: cannot expand shape %s to %d dims", shape_str(a->u->shape, nd), ndim);
  ARRCHK("expand", shape, ndim);
  int64_t s[UOP_MAX_DIMS];
  for (int i = 0; i < ndim; i++) {
    int j = i - (ndim - nd);
    int64_t have = j >= 0 ? a->u->shape[j] : 1;
    s[i] = shape[i] == -1 ? have : shape[i];
    if (have != s[i] && have != 1)
      return cg_fail_null(CG_ERR_INVALID, "expand: cannot expand shape %s to %s", shape_str(a->u->shape, nd), shape_str(shape, ndim));
  }
  if (!shape_fits("expand", s, ndim, a->u->dt)) return NULL;
  op_begin();
  return finish(view_broadcast(a->u, s, ndim));
}

cg_tensor *cg_pad(cg_tensor *a, const int64_t *pads, double value) {
  NULLCHK("pad", a);
  int nd = a->u->ndim;
  ARRCHK("pad", pads, 2 * nd);
  int64_t out[UOP_MAX_DIMS];
  for (int i = 0; i < 2 * nd; i++)
    if (pads[i] < 0) return cg_fail_null(CG_ERR_INVALID, "pad: expected pads >= 0, got %lld for shape %s", (long long)pads[i], shape_str(a->u->shape, nd));
  for (int i = 0; i < nd; i++)
    if (__builtin_add_overflow(a->u->shape[i], pads[2 * i], &out[i]) || __builtin_add_overflow(out[i], pads[2 * i + 1], &out[i]))
      return cg_fail_null(CG_ERR_INVALID, "pad: padding dim %d of shape %s by %lld and %lld overflows 64 bits", i, shape_str(a->u->shape, nd),
                          (long long)pads[2 * i], (long long)pads[2 * i + 1]);
  if (!shape_fits("pad", out, nd, a->u->dt)) return NULL;
  op_begin();
  uop *p = view_pad(a->u, pads);
  if (value != 0 && p != a->u) {
    uop *mask = view_pad(const_full(DT_BOOL, 1, a->u->shape, nd), pads);
    p = uop_where(mask, p, ew_const(p, value));
  }
  return finish(p);
}

cg_tensor *cg_shrink(cg_tensor *a, const int64_t *box) {
  NULLCHK("shrink", a);
  int nd = a->u->ndim;
  ARRCHK("shrink", box, 2 * nd);
  for (int i = 0; i < nd; i++)
    if (box[2 * i] < 0 || box[2 * i] > box[2 * i + 1] || box[2 * i + 1] > a->u->shape[i])
      return cg_fail_null(CG_ERR_INVALID, "shrink: box [%lld, %lld) does not fit dim %d of shape %s", (long long)box[2 * i],
                          (long long)box[2 * i + 1], i, shape_str(a->u->shape, nd));
  op_begin();
  return finish(view_shrink(a->u, box));
}

/* a[start:stop:step] on one dim, as Python slices. */
cg_tensor *cg_slice(cg_tensor *a, int dim, int64_t start, int64_t stop, int64_t step) {
  NULLCHK("slice", a);
  bool ok;
  int nd = a->u->ndim, d = norm_dim("slice", nd, dim, &ok);
  if (!ok) return NULL;
  if (step == 0) return cg_fail_null(CG_ERR_INVALID, "slice: step must be nonzero");
  int64_t n = a->u->shape[d];
  /* Python's normalization of start/stop */
  if (step > 0) {
    start = start < 0 ? (start + n < 0 ? 0 : start + n) : (start > n ? n : start);
    stop = stop < 0 ? (stop + n < 0 ? 0 : stop + n) : (stop > n ? n : stop);
    if (stop < start) stop = start;
  } else {
    start = start < 0 ? (start + n < 0 ? -1 : start + n) : (start >= n ? n - 1 : start);
    stop = stop < 0 ? (stop + n < 0 ? -1 : stop + n) : (stop >= n ? n - 1 : stop);
    if (stop > start) stop = start;
  }
  int64_t count = step > 0 ? (stop - start + step - 1) / step : (start - stop + (-step) - 1) / (-step);
  op_begin();
  uop *u = a->u;
  int64_t box[2 * UOP_MAX_DIMS];
  for (int i = 0; i < nd; i++) box[2 * i] = 0, box[2 * i + 1] = u->shape[i];
  if (step < 0) { /* flip the dim, then slice forward */
    int64_t flags[UOP_MAX_DIMS] = {0};
    flags[d] = 1;
    u = uop_new1(OP_FLIP, u->dt, u, arg_ints(flags, nd));
    start = n - 1 - start;
    step = -step;
  }
  int64_t k = step, span = count * k;
  /* take [start, start + count*k), padding past the end, then every k-th */
  int64_t end = start + span;
  box[2 * d] = start, box[2 * d + 1] = end < n ? end : n;
  u = view_shrink(u, box);
  if (k > 1 && count > 0) {
    int64_t pads[2 * UOP_MAX_DIMS] = {0};
    pads[2 * d + 1] = end - box[2 * d + 1];
    u = view_pad(u, pads);
    int64_t s[UOP_MAX_DIMS + 1];
    int j = 0;
    for (int i = 0; i < nd; i++) {
      if (i == d) s[j++] = count, s[j++] = k;
      else s[j++] = u->shape[i];
    }
    u = view_reshape(u, s, nd + 1);
    int64_t b2[2 * (UOP_MAX_DIMS + 1)];
    for (int i = 0; i < nd + 1; i++) b2[2 * i] = 0, b2[2 * i + 1] = s[i];
    b2[2 * (d + 1) + 1] = 1;
    u = view_shrink(u, b2);
    int64_t out[UOP_MAX_DIMS];
    for (int i = 0; i < nd; i++) out[i] = i == d ? count : u->shape[i < d ? i : i + 1];
    u = view_reshape(u, out, nd);
  } else if (count == 0) {
    box[2 * d] = 0, box[2 * d + 1] = 0;
    u = view_shrink(a->u, box);
  }
  return finish(u);
}

/* The checks of cg_slice_var / cg_pad_var: an int var whose every value puts the window
 * [mult * var, mult * var + len) inside [0, n). */
static bool var_window(const char *who, int d, cg_tensor *var, int64_t mult, int64_t len, int64_t n) {
  if (!var || !var_is_tensor(var->u) || var->u->dt.scalar != CG_INT32) {
    cg_fail(CG_ERR_INVALID, "%s: expected an int32 kernel variable (cg_variable_int) as the offset, got %s", who,
            !var ? "NULL" : var_is_tensor(var->u) ? cg_dtype_name((cg_dtype)var->u->dt.scalar) : "a tensor that is not a variable");
    return false;
  }
  int64_t lo = var->u->arg.v[0], hi = var->u->arg.v[1];
  /* the index math is int32: the window's end must fit as well as the bounds */
  bool fits = mult >= 1 && mult <= INT32_MAX && len >= 0 && n <= INT32_MAX && lo >= 0 && (double)mult * (double)hi + (double)len <= (double)n;
  if (!fits)
    cg_fail(CG_ERR_INVALID, "%s: expected mult >= 1 and every offset mult * var + [0, %lld) inside [0, %lld) on dim %d, got mult %lld and var '%s' in [%lld, %lld]",
            who, (long long)len, (long long)n, d, (long long)mult, var->u->arg.s, (long long)lo, (long long)hi);
  return fits;
}

cg_tensor *cg_slice_var(cg_tensor *a, int dim, cg_tensor *var, int64_t mult, int64_t length) {
  NULLCHK("slice_var", a);
  bool ok;
  int d = norm_dim("slice_var", a->u->ndim, dim, &ok);
  if (!ok || !var_window("slice_var", d, var, mult, length, a->u->shape[d])) return NULL;
  op_begin();
  int64_t box[2 * UOP_MAX_DIMS];
  for (int i = 0; i < a->u->ndim; i++) box[2 * i] = 0, box[2 * i + 1] = a->u->shape[i];
  box[2 * d + 1] = length;
  return finish(view_shrink_var(a->u, box, d, mult, var->u));
}

cg_tensor *cg_pad_var(cg_tensor *a, int dim, cg_tensor *var, int64_t mult, int64_t size) {
  NULLCHK("pad_var", a);
  bool ok;
  int d = norm_dim("pad_var", a->u->ndim, dim, &ok);
  if (!ok || !var_window("pad_var", d, var, mult, a->u->shape[d], size)) return NULL;
  op_begin();
  int64_t pads[2 * UOP_MAX_DIMS] = {0};
  pads[2 * d + 1] = size - a->u->shape[d];
  return finish(view_pad_var(a->u, pads, d, mult, var->u));
}

cg_tensor *cg_flip(cg_tensor *a, const int *dims, int ndims) {
  NULLCHK("flip", a);
  int nd = a->u->ndim;
  int64_t flags[UOP_MAX_DIMS] = {0};
  bool any = false;
  if (ndims < 0 || ndims > CG_MAX_DIMS) return cg_fail_null(CG_ERR_INVALID, "flip: expected 0 to %d dims, got %d", CG_MAX_DIMS, ndims);
  ARRCHK("flip", dims, ndims);
  for (int i = 0; i < ndims; i++) {
    bool ok;
    int d = norm_dim("flip", nd, dims[i], &ok);
    if (!ok) return NULL;
    if (flags[d]) return cg_fail_null(CG_ERR_INVALID, "flip: dim %d repeats", dims[i]);
    flags[d] = 1;
    any = true;
  }
  op_begin();
  return finish(any ? uop_new1(OP_FLIP, a->u->dt, a->u, arg_ints(flags, nd)) : a->u);
}

cg_tensor *cg_squeeze(cg_tensor *a, int dim) {
  NULLCHK("squeeze", a);
  int nd = a->u->ndim;
  bool ok;
  int d = norm_dim("squeeze", nd, dim, &ok);
  if (!ok) return NULL;
  if (a->u->shape[d] != 1) {
    op_begin();
    return finish(a->u);
  }
  int64_t s[UOP_MAX_DIMS];
  int j = 0;
  for (int i = 0; i < nd; i++)
    if (i != d) s[j++] = a->u->shape[i];
  return cg_reshape(a, s, j);
}

cg_tensor *cg_unsqueeze(cg_tensor *a, int dim) {
  NULLCHK("unsqueeze", a);
  int nd = a->u->ndim;
  bool ok;
  int d = norm_dim("unsqueeze", nd + 1, dim, &ok);
  if (!ok) return NULL;
  if (nd + 1 > CG_MAX_DIMS) return cg_fail_null(CG_ERR_INVALID, "unsqueeze: more than %d dims", CG_MAX_DIMS);
  int64_t s[UOP_MAX_DIMS];
  for (int i = 0, j = 0; i <= nd; i++) s[i] = i == d ? 1 : a->u->shape[j++];
  return cg_reshape(a, s, nd + 1);
}

cg_tensor *cg_flatten(cg_tensor *a, int start, int end) {
  NULLCHK("flatten", a);
  int nd = a->u->ndim;
  if (nd == 0) return cg_reshape(a, (int64_t[]){1}, 1);
  bool ok0, ok1;
  start = norm_dim("flatten", nd, start, &ok0);
  end = norm_dim("flatten", nd, end, &ok1);
  if (!ok0 || !ok1) return NULL;
  if (start > end) return cg_fail_null(CG_ERR_INVALID, "flatten: start dim %d is after end dim %d", start, end);
  int64_t s[UOP_MAX_DIMS];
  int j = 0;
  for (int i = 0; i < nd; i++) {
    if (i > start && i <= end) s[j - 1] *= a->u->shape[i];
    else s[j++] = a->u->shape[i];
  }
  return cg_reshape(a, s, j);
}

cg_tensor *cg_cat(cg_tensor *const *ts, int n, int dim) {
  if (n <= 0 || !ts) return cg_fail_null(CG_ERR_INVALID, "cat: expected at least one tensor");
  for (int i = 0; i < n; i++) NULLCHK("cat", ts[i]);
  if (!tensor_check_devices("cat", ts, n)) return NULL;
  int nd = ts[0]->u->ndim;
  bool ok;
  int d = norm_dim("cat", nd, dim, &ok);
  if (!ok) return NULL;
  int64_t total = 0;
  dtype dt = ts[0]->u->dt;
  for (int i = 0; i < n; i++) {
    const uop *u = ts[i]->u;
    bool same = u->ndim == nd;
    for (int k = 0; same && k < nd; k++) same = k == d || u->shape[k] == ts[0]->u->shape[k];
    if (!same)
      return cg_fail_null(CG_ERR_INVALID, "cat: shapes %s and %s differ outside dim %d", shape_str(ts[0]->u->shape, nd), shape_str(u->shape, u->ndim), d);
    if (__builtin_add_overflow(total, u->shape[d], &total))
      return cg_fail_null(CG_ERR_INVALID, "cat: the size of dim %d overflows 64 bits", d);
    dt = promote(dt, u->dt);
  }
  int64_t out[UOP_MAX_DIMS];
  memcpy(out, ts[0]->u->shape, sizeof(int64_t) * (size_t)nd);
  out[d] = total;
  if (!shape_fits("cat", out, nd, dt)) return NULL;
  op_begin();
  uop *sum = NULL;
  int64_t at = 0;
  for (int i = 0; i < n; i++) {
    uop *u = cast_to(ts[i]->u, dt);
    int64_t pads[2 * UOP_MAX_DIMS] = {0};
    pads[2 * d] = at;
    pads[2 * d + 1] = total - at - u->shape[d];
    at += u->shape[d];
    u = view_pad(u, pads);
    sum = sum ? (dt_is_bool(dt) ? ew2(OP_OR, sum, u) : ew2(OP_ADD, sum, u)) : u;
  }
  return finish(sum);
}

cg_tensor *cg_stack(cg_tensor *const *ts, int n, int dim) {
  if (n <= 0 || !ts) return cg_fail_null(CG_ERR_INVALID, "stack: expected at least one tensor");
  cg_tensor *tmp[256];
  if (n > 256) return cg_fail_null(CG_ERR_INVALID, "stack: at most 256 tensors, got %d", n);
  cg_scope_begin();
  for (int i = 0; i < n; i++) {
    if (ts[i] && !shape_eq(ts[i]->u->shape, ts[i]->u->ndim, ts[0]->u->shape, ts[0]->u->ndim)) {
      cg_scope_end();
      return cg_fail_null(CG_ERR_INVALID, "stack: shapes %s and %s differ", shape_str(ts[0]->u->shape, ts[0]->u->ndim), shape_str(ts[i]->u->shape, ts[i]->u->ndim));
    }
    tmp[i] = cg_unsqueeze(ts[i], dim);
    if (!tmp[i]) {
      cg_scope_end();
      return NULL;
    }
  }
  cg_tensor *r = cg_keep(cg_cat(tmp, n, dim));
  cg_scope_end();
  return r;
}

int cg_split(cg_tensor *a, int64_t size, int dim, cg_tensor **out, int max_out) {
  if (!a) return cg_fail(CG_NULL_INPUT, "split: tensor is NULL"), -1;
  bool ok;
  int nd = a->u->ndim, d = norm_dim("split", nd, dim, &ok);
  if (!ok) return -1;
  if (size <= 0) return cg_fail(CG_ERR_INVALID, "split: expected a size > 0, got %lld", (long long)size), -1;
  if (max_out > 0 && !out) return cg_fail(CG_ERR_INVALID, "split: out is NULL (with max_out %d)", max_out), -1;
  int64_t n = a->u->shape[d];
  int pieces = (int)((n + size - 1) / size);
  for (int i = 0; i < pieces && i < max_out; i++) {
    int64_t box[2 * UOP_MAX_DIMS];
    for (int k = 0; k < nd; k++) box[2 * k] = 0, box[2 * k + 1] = a->u->shape[k];
    box[2 * d] = i * size;
    box[2 * d + 1] = (i + 1) * size < n ? (i + 1) * size : n;
    out[i] = cg_shrink(a, box);
  }
  return pieces;
}

int cg_chunk(cg_tensor *a, int chunks, int dim, cg_tensor **out, int max_out) {
  if (!a) return cg_fail(CG_NULL_INPUT, "chunk: tensor is NULL"), -1;
  if (chunks <= 0) return cg_fail(CG_ERR_INVALID, "chunk: expected chunks > 0, got %d", chunks), -1;
  if (max_out > 0 && !out) return cg_fail(CG_ERR_INVALID, "chunk: out is NULL (with max_out %d)", max_out), -1;
  bool ok;
  int d = norm_dim("chunk", a->u->ndim, dim, &ok);
  if (!ok) return -1;
  int64_t n = a->u->shape[d], size = (n + chunks - 1) / chunks;
  return cg_split(a, size ? size : 1, d, out, max_out);
}

cg_tensor *cg_repeat(cg_tensor *a, const int64_t *reps, int ndim) {
  NULLCHK("repeat", a);
  int nd = a->u->ndim;
  if (ndim < nd || ndim > CG_MAX_DIMS)
    return cg_fail_null(CG_ERR_INVALID, "repeat: expected at least %d repeats for shape %s, got %d", nd, shape_str(a->u->shape, nd), ndim);
  ARRCHK("repeat", reps, ndim);
  int64_t base[UOP_MAX_DIMS], s1[2 * UOP_MAX_DIMS], s2[2 * UOP_MAX_DIMS], out[UOP_MAX_DIMS];
  for (int i = 0; i < ndim; i++) {
    if (reps[i] < 0) return cg_fail_null(CG_ERR_INVALID, "repeat: repeats must be >= 0");
    base[i] = i < ndim - nd ? 1 : a->u->shape[i - (ndim - nd)];
    s1[2 * i] = 1, s1[2 * i + 1] = base[i];
    s2[2 * i] = reps[i], s2[2 * i + 1] = base[i];
    if (__builtin_mul_overflow(reps[i], base[i], &out[i]))
      return cg_fail_null(CG_ERR_INVALID, "repeat: %lld repeats of dim %d of shape %s overflow 64 bits", (long long)reps[i], i,
                          shape_str(a->u->shape, nd));
  }
  if (!shape_fits("repeat", out, ndim, a->u->dt)) return NULL;
  op_begin();
  uop *u = view_reshape(a->u, s1, 2 * ndim);
  u = view_expand(u, s2, 2 * ndim);
  return finish(view_reshape(u, out, ndim));
}

cg_tensor *cg_contiguous(cg_tensor *a) {
  NULLCHK("contiguous", a);
  op_begin();
  return finish(a->u->op == OP_RESHAPE && a->u->src[0]->op == OP_BUFFER ? a->u : a->u->op == OP_BUFFER ? a->u : uop_new1(OP_CONTIGUOUS, a->u->dt, a->u, arg_none()));
}

cg_tensor *cg_detach(cg_tensor *a) {
  NULLCHK("detach", a);
  op_begin();
  return finish(uop_new1(OP_DETACH, a->u->dt, a->u, arg_none()));
}

cg_status cg_assign(cg_tensor *dst, cg_tensor *src) {
  if (!dst || !src) return cg_fail(CG_NULL_INPUT, "assign: a tensor is NULL");
  if (!tensor_check_devices("assign", (cg_tensor *[]){dst, src}, 2)) return cg_last_status();
  uop *d = dst->u, *s = src->u;
  int nd = d->ndim;
  bool fits = s->ndim <= nd;
  for (int i = 0; fits && i < s->ndim; i++) {
    int64_t have = s->shape[i], want = d->shape[nd - s->ndim + i];
    fits = have == want || have == 1;
  }
  if (!fits)
    return cg_fail(CG_ERR_INVALID, "assign: cannot write a tensor of shape %s into one of shape %s", shape_str(s->shape, s->ndim),
                   shape_str(d->shape, nd));
  /* the target must be a buffer, or a one-to-one view of one (a slice of rows, at a
   * kernel-variable offset too: written in place, the rest of the buffer kept); anything
   * else (a pending assign included) is realized first */
  uop *base = d->op == OP_RESHAPE ? d->src[0] : d;
  if (var_is_tensor(base)) return cg_fail(CG_ERR_INVALID, "assign: the target is a kernel variable '%s' (set it with cg_variable_set)", base->arg.s);
  if (base->op != OP_BUFFER && !view_store_base(d)) {
    cg_status st = cg_realize(dst);
    if (st != CG_OK) return st;
    d = dst->u;
  }
  op_begin();
  uop *v = view_broadcast(cast_to(s, d->dt), d->shape, nd);
  /* each assign is its own node (arg: a serial number): two updates of the same form are
   * two updates, and realize marks each one done separately */
  static int64_t serial;
  uop *a = uop_new(OP_ASSIGN, d->dt, (uop *[]){d, v}, 2, arg_int(__atomic_add_fetch(&serial, 1, __ATOMIC_RELAXED)));
  cg_status st = op_status(a ? CG_OK : cg_last_status());
  if (st == CG_OK) { /* out of memory: dst keeps its value */
    uop *old = dst->u;
    dst->u = uop_retain(a);
    uop_release(old);
  }
  op_end(NULL);
  return st;
}
