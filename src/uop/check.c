/* The check table beside the op table: source counts and dtype rules (the DR_ column of
 * ops.def). Debug builds check every node as it is built. */
#include "uop.h"

static bool same_base(dtype a, dtype b) { return a.scalar == b.scalar && a.addr == b.addr; }

const char *uop_check(int op, dtype dt, uop *const *src, int nsrc, const uarg *arg) {
  if (op < 0 || op >= OP_COUNT) return "unknown op";
  const uop_info *in = &uop_table[op];
  if (in->nsrc >= 0 && nsrc != in->nsrc) return "wrong number of sources";
  for (int i = 0; i < nsrc; i++)
    if (!src[i]) return "a source is NULL";
  if (op_has(op, F_INT) && !dt_is_int(dt) && !dt_is_bool(dt)) return "op needs an integer dtype";
  switch (in->dtype_rule) {
  case DR_SAME:
    for (int i = 0; i < nsrc; i++) /* a PAD/SHRINK's src[1] is its int var offset */
      if (!same_base(src[i]->dt, dt) && !(op == OP_ASSIGN) && !(i == 1 && (op == OP_PAD || op == OP_SHRINK))) return "sources must have the node's dtype";
    break;
  case DR_FLOAT:
    if (!dt_is_float(dt)) return "op needs a float dtype";
    if (!same_base(src[0]->dt, dt)) return "source must have the node's dtype";
    break;
  case DR_INT:
    if (!dt_is_int(dt)) return "op needs an integer dtype";
    break;
  case DR_CMP:
    if (!dt_is_bool(dt)) return "a comparison gives bool";
    if (!same_base(src[0]->dt, src[1]->dt)) return "compared values must share a dtype";
    break;
  case DR_WHERE:
    if (!dt_is_bool(src[0]->dt)) return "WHERE's condition must be bool";
    if (!same_base(src[1]->dt, dt) || !same_base(src[2]->dt, dt)) return "WHERE's branches must have the node's dtype";
    break;
  case DR_BITCAST:
    if (dt_size(dt) != dt_size(src[0]->dt)) return "BITCAST must keep the size in bytes";
    break;
  case DR_REDUCE:
    if (nsrc < 1) return "REDUCE needs a value";
    if (arg->kind != ARG_INTS || arg->n < 1) return "REDUCE's arg is [op, axes...]";
    if (arg->v[0] != OP_ADD && arg->v[0] != OP_MUL && arg->v[0] != OP_MAX) return "REDUCE op must be ADD, MUL or MAX";
    break;
  case DR_PTR:
    if (!dt.addr) return "op gives a pointer";
    break;
  case DR_VOID:
    if (!dt_is_void(dt)) return "op gives void";
    break;
  default: break;
  }
  switch (op) {
  case OP_CONST:
    if (dt_is_float(dt) ? arg->kind != ARG_FLOAT : arg->kind != ARG_INT) return "CONST's arg must match its dtype (int or float)";
    break;
  case OP_DEFINE_VAR:
    if (arg->kind != ARG_VAR || arg->n < 2 || arg->n > 3 || arg->v[0] > arg->v[1]) return "DEFINE_VAR needs a name and min <= max";
    if (dt.count > 1 || dt.addr || !(dt_is_int(dt) || dt.scalar == CG_FLOAT32 || dt.scalar == CG_FLOAT64)) return "DEFINE_VAR is a scalar int, float32 or float64";
    break;
  case OP_BUFFER: case OP_DEFINE_GLOBAL:
    if (arg->kind != ARG_INTS || arg->n != 2) return "BUFFER's arg is [id, count]; DEFINE_GLOBAL's [slot, count]";
    break;
  case OP_RESHAPE: case OP_EXPAND: case OP_PERMUTE: case OP_FLIP:
    if (arg->kind != ARG_INTS) return "movement arg must be a tuple of ints";
    if (op != OP_RESHAPE && arg->n != src[0]->ndim) return "movement arg must have one entry per axis";
    break;
  case OP_PAD: case OP_SHRINK:
    if (nsrc != 1 && nsrc != 2) return "PAD/SHRINK takes a source and, at a var offset, an int var";
    if (nsrc == 2) { /* at a var offset (view.h): [..., dim, mult], src[1] a 0-d int var */
      if (arg->kind != ARG_INTS || arg->n != 2 * src[0]->ndim + 2) return "PAD/SHRINK at a var offset: arg must be two ints per axis, then dim and mult";
      if (arg->v[2 * src[0]->ndim] < 0 || arg->v[2 * src[0]->ndim] >= src[0]->ndim) return "PAD/SHRINK at a var offset: dim out of range";
      if (src[1]->op != OP_DEFINE_VAR || !dt_is_int(src[1]->dt)) return "PAD/SHRINK at a var offset: src[1] must be an int DEFINE_VAR";
      break;
    }
    if (arg->kind != ARG_INTS || arg->n != 2 * src[0]->ndim) return "PAD/SHRINK arg must have two ints per axis";
    break;
  default: break;
  }
  return NULL;
}
