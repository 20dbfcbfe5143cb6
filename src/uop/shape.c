/* Shape inference for tensor-level ops (see ops.def for each op's arg). */
#include "shape.h"
#include <stdio.h>
#include <string.h>

int64_t shape_numel(const int64_t *shape, int ndim) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++)
    if (shape[i] == 0) return 0; /* (2^40, 2^40, 0) is empty; its first dims' product would overflow */
  for (int i = 0; i < ndim; i++) n *= shape[i];
  return n;
}

int64_t shape_numel_checked(const int64_t *shape, int ndim, int64_t elsize) {
  int64_t n = 1, bytes;
  for (int i = 0; i < ndim; i++)
    if (shape[i] < 0) return -1;
    else if (shape[i] == 0) return 0; /* a zero dim makes any product of the others harmless */
  for (int i = 0; i < ndim; i++)
    if (__builtin_mul_overflow(n, shape[i], &n)) return -1;
  return __builtin_mul_overflow(n, elsize > 0 ? elsize : 1, &bytes) ? -1 : n;
}

bool shape_eq(const int64_t *a, int na, const int64_t *b, int nb) {
  return na == nb && (na <= 0 || !memcmp(a, b, sizeof(int64_t) * (size_t)na));
}

const char *shape_str(const int64_t *shape, int ndim) {
  static _Thread_local char ring[8][160];
  static _Thread_local int at;
  char *b = ring[at++ & 7];
  int n = snprintf(b, 160, "(");
  for (int i = 0; i < ndim && n < 150; i++) n += snprintf(b + n, (size_t)(160 - n), i ? ", %lld" : "%lld", (long long)shape[i]);
  snprintf(b + n, (size_t)(160 - n), ndim == 1 ? ",)" : ")");
  return b;
}

int shape_infer(int op, uop *const *src, int nsrc, const uarg *arg, int64_t *out) {
  const uop *s = nsrc ? src[0] : NULL;
  int nd = s ? s->ndim : -1;
  switch (op) {
  case OP_BUFFER: case OP_DEFINE_GLOBAL: out[0] = arg->v[1]; return 1;
  case OP_CONST: case OP_DEFINE_VAR: return 0;
  case OP_RESHAPE: case OP_EXPAND:
    if (arg->n) memcpy(out, arg->v, sizeof(int64_t) * (size_t)arg->n);
    return arg->n;
  case OP_PERMUTE:
    for (int i = 0; i < nd; i++) out[i] = s->shape[arg->v[i]];
    return nd;
  case OP_PAD:
    for (int i = 0; i < nd; i++) out[i] = s->shape[i] + arg->v[2 * i] + arg->v[2 * i + 1];
    return nd;
  case OP_SHRINK:
    for (int i = 0; i < nd; i++) out[i] = arg->v[2 * i + 1] - arg->v[2 * i];
    return nd;
  case OP_REDUCE:
    if (nsrc != 1 || arg->kind != ARG_INTS || nd < 0) return -1; /* kernel-level REDUCE */
    if (nd) memcpy(out, s->shape, sizeof(int64_t) * (size_t)nd);
    for (int i = 1; i < arg->n; i++) out[arg->v[i]] = 1;
    return nd;
  case OP_FLIP: case OP_CONTIGUOUS: case OP_COPY: case OP_DETACH: case OP_ASSIGN:
    if (nd > 0) memcpy(out, s->shape, sizeof(int64_t) * (size_t)nd);
    return nd;
  default:
    if (!op_is_alu(op) || nsrc == 0) return -1;
    for (int i = 0; i < nsrc; i++)
      if (src[i]->ndim < 0) return -1;
    /* elementwise: operands share one shape (scalars of index math have ndim 0) */
    for (int i = 0; i < nsrc; i++)
      if (src[i]->ndim > nd) s = src[i], nd = s->ndim;
    if (nd > 0) memcpy(out, s->shape, sizeof(int64_t) * (size_t)nd);
    return nd;
  }
}
