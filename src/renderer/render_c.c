/* The C renderer: a linear program (codegen.h) becomes one C function with the CPU
 * kernel ABI
 *     void NAME(void **bufs, const int64_t *vars, int64_t lo, int64_t hi)
 * printed instruction by instruction: RANGE opens a for loop (the THREAD range over
 * [lo, hi)), END closes it, every value is a named local (val3, acc0, ridx100). How each
 * ALU op is spelled is the template table below; loop placement, hoisting and
 * accumulators were decided by the linearizer. Half and 8-bit floats are stored as bits
 * and computed in float. */
#include "render.h"
#include "uop/uopset.h"
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

typedef struct {
  char *buf;
  size_t len, cap;
  int indent;
  uopset names;      /* instruction -> name index + 1 (its latest appearance) */
  uopset wide;       /* int32 index arithmetic computed in int64_t (wide_index) */
  int nval;
  char **strs;       /* name strings, owned */
  size_t nstrs, capstrs;
  bool nomem;        /* an allocation failed: the source is dropped at the end */
} rc;

static void emit(rc *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(rc *r, const char *fmt, ...) {
  va_list ap;
  for (;;) {
    va_start(ap, fmt);
    size_t room = r->cap - r->len;
    int n = vsnprintf(r->buf ? r->buf + r->len : NULL, room, fmt, ap); /* no NULL + 0 (UB) before the first grow */
    va_end(ap);
    if ((size_t)n < room) {
      r->len += (size_t)n;
      return;
    }
    char *b = r->nomem ? NULL : ir_realloc(r->buf, (r->cap + (size_t)n) * 2);
    if (!b) {
      r->nomem = true;
      return;
    }
    r->buf = b, r->cap = (r->cap + (size_t)n) * 2;
  }
}
static void line(rc *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line(rc *r, const char *fmt, ...) {
  char tmp[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  emit(r, "%*s%s\n", r->indent * 2, "", tmp);
}

static const char *save_str(rc *r, const char *s) {
  if (r->nstrs == r->capstrs) {
    char **strs = ir_realloc(r->strs, (r->capstrs ? r->capstrs * 2 : 64) * sizeof(char *));
    if (!strs) return r->nomem = true, NULL;
    r->strs = strs, r->capstrs = r->capstrs ? r->capstrs * 2 : 64;
  }
  char *c = ir_malloc(strlen(s) + 1);
  if (!c) return r->nomem = true, NULL;
  return r->strs[r->nstrs++] = strcpy(c, s);
}

/* ---- types ------------------------------------------------------------------------ */

static bool is_small_float(dtype d) {
  return d.scalar == CG_FLOAT16 || d.scalar == CG_BFLOAT16 || d.scalar == CG_FP8E4M3 || d.scalar == CG_FP8E5M2;
}
/* The C type a value of d is computed in. */
static const char *ctype(dtype d) {
  switch (d.scalar) {
  case CG_BOOL: return "_Bool";
  case CG_INT8: return "int8_t";
  case CG_INT16: return "int16_t";
  case CG_INT32: return "int32_t";
  case CG_INT64: return "int64_t";
  case CG_UINT8: return "uint8_t";
  case CG_UINT16: return "uint16_t";
  case CG_UINT32: return "uint32_t";
  case CG_UINT64: return "uint64_t";
  case CG_FLOAT64: return "double";
  default: return "float";
  }
}
/* The C type a buffer of d is stored as. */
static const char *storage_type(dtype d) {
  switch (d.scalar) {
  case CG_BOOL: return "uint8_t";
  case CG_FLOAT16: case CG_BFLOAT16: return "uint16_t";
  case CG_FP8E4M3: case CG_FP8E5M2: return "uint8_t";
  default: return ctype(d);
  }
}
static const char *conv_name(dtype d) {
  switch (d.scalar) {
  case CG_FLOAT16: return "f16";
  case CG_BFLOAT16: return "bf16";
  case CG_FP8E4M3: return "e4m3";
  default: return "e5m2";
  }
}
static bool is_f64(dtype d) { return d.scalar == CG_FLOAT64; }
static bool is_fp8(dtype d) { return d.scalar == CG_FP8E4M3 || d.scalar == CG_FP8E5M2; }

/* The C type of a value: scalars as ctype, vectors as the prelude's f32xN / i32xN (a bool
 * vector is an int32 mask). */
static const char *type_of(dtype d) {
  static const char *const f[] = {"f32x2", "f32x4", "f32x8", "f32x16"}, *const i[] = {"i32x2", "i32x4", "i32x8", "i32x16"},
                           *const h[] = {"u16x2", "u16x4", "u16x8", "u16x16"};
  if (d.count <= 1) return ctype(d);
  int k = d.count == 2 ? 0 : d.count == 4 ? 1 : d.count == 8 ? 2 : 3;
  /* bf16 / f16 vectors: loaded bits; fp8 vectors: float32 lanes rounded to the format (expand.c) */
  return d.scalar == CG_FLOAT32 || is_fp8(d) ? f[k] : dt_is_half(d) ? h[k] : i[k];
}

/* ---- values ------------------------------------------------------------------------- */


static const char *literal(rc *r, uop *u) {
  char b[96];
  dtype d = u->dt;
  if (dt_is_float(d)) {
    double v = u->arg.f;
    const char *suf = is_f64(d) ? "" : "f";
    if (isnan(v)) snprintf(b, sizeof b, "(%s)NAN", ctype(d));
    else if (isinf(v)) snprintf(b, sizeof b, "%s(%s)INFINITY", v < 0 ? "-" : "", ctype(d));
    else snprintf(b, sizeof b, "%.17g%s", v, strchr("0123456789", 0) && fmod(v, 1) == 0 && fabs(v) < 1e15 ? ".0" : "");
    if (!isnan(v) && !isinf(v)) strcat(b, suf);
  } else if (dt_is_bool(d)) {
    snprintf(b, sizeof b, "%d", (int)u->arg.i);
  } else if (d.scalar == CG_INT64 || d.scalar == CG_UINT64) {
    snprintf(b, sizeof b, "(%s)%" PRId64 "ll", ctype(d), u->arg.i);
  } else {
    if (u->arg.i == INT32_MIN) snprintf(b, sizeof b, "(%s)(-2147483647-1)", ctype(d));
    else snprintf(b, sizeof b, u->arg.i < 0 ? "(%" PRId64 ")" : "%" PRId64, u->arg.i);
  }
  return save_str(r, b);
}

/* ---- how each op is spelled ---------------------------------------------------------
 * $0 $1 $2 the operands, $f the float suffix ("f" for float, "" for double), $T the C
 * type, $U an unsigned type at least as wide (never promoted to int), $B the width in
 * bits minus one. The meaning of each op is the op table's (ops.def) and uop/alu.c's:
 * integers wrap (kernels build with -fwrapv), x/0 and x%0 give 0, x/-1 negates, shift
 * counts are taken modulo the width, float MAX propagates NaN and puts +0 over -0.
 * Selects (WHERE, IDIV's guards) compile to cmov/blends; float MAX is a prelude function
 * written with bit masks, since GCC turns float ?: chains into jumps. */
static const char *const c_templates[OP_COUNT] = {
    [OP_EXP2] = "exp2$f($0)",
    [OP_LOG2] = "log2$f($0)",
    [OP_SIN] = "sin$f($0)",
    [OP_SQRT] = "sqrt$f($0)",
    [OP_RECIPROCAL] = "(1.0$f/$0)",
    [OP_NEG] = "(-$0)",
    [OP_TRUNC] = "$0",
    [OP_ADD] = "($0+$1)",
    [OP_MUL] = "($0*$1)",
    [OP_IDIV] = "($1==0?($T)0:$1==-1?($T)(0-($U)$0):($T)($0/$1))",
    [OP_MOD] = "(($1==0)|($1==-1)?($T)0:($T)($0%$1))",
    [OP_MAX] = "($0>$1?$0:$1)",
    [OP_CMPLT] = "($0<$1)",
    [OP_CMPNE] = "($0!=$1)",
    [OP_CMPEQ] = "($0==$1)",
    [OP_XOR] = "($0^$1)",
    [OP_OR] = "($0|$1)",
    [OP_AND] = "($0&$1)",
    [OP_SHL] = "($T)(($U)$0<<($1&$B))",
    [OP_SHR] = "($T)($0>>($1&$B))",
    [OP_WHERE] = "($0?$1:$2)",
    [OP_MULACC] = "($0*$1+$2)",
};
_Static_assert(sizeof c_templates / sizeof c_templates[0] == OP_COUNT, "one template per op");
/* where floats differ */
static const char *const c_float_templates[OP_COUNT] = {
    [OP_TRUNC] = "trunc$f($0)",
    [OP_MAX] = "fmax_nan$f($0,$1)", /* prelude.c */
    [OP_MULACC] = "fma$f($0,$1,$2)",
};
/* where unsigned integers differ (no -1 divisor) */
static const char *const c_unsigned_templates[OP_COUNT] = {
    [OP_IDIV] = "($1==0?($T)0:($T)($0/$1))",
    [OP_MOD] = "($1==0?($T)0:($T)($0%$1))",
};
/* where bools differ (a bool is 1 bit wide: every shift count is 0) */
static const char *const c_bool_templates[OP_COUNT] = {
    [OP_ADD] = "($0|$1)",
    [OP_MUL] = "($0&$1)",
    [OP_NEG] = "(!$0)",
    [OP_MAX] = "($0|$1)",
    [OP_SHL] = "$0",
    [OP_SHR] = "$0",
};

static const char *unsigned_type(dtype d) { return dt_scalar_size(d) == 8 ? "uint64_t" : "uint32_t"; }

static void expand_template(const char *t, dtype d, const char **a, char *out, size_t n) {
  size_t w = 0;
  for (; *t && w + 1 < n; t++) {
    const char *ins = NULL;
    char bits[16];
    if (*t == '$' && t[1]) {
      t++;
      if (*t >= '0' && *t <= '2') ins = a[*t - '0'];
      else if (*t == 'f') ins = is_f64(d) ? "" : "f";
      else if (*t == 'T') ins = ctype(d);
      else if (*t == 'U') ins = unsigned_type(d);
      else if (*t == 'B') snprintf(bits, sizeof bits, "%d", dt_scalar_size(d) * 8 - 1), ins = bits;
    }
    if (!ins) {
      out[w++] = *t;
      continue;
    }
    size_t l = strlen(ins);
    if (w + l >= n) l = n - 1 - w;
    memcpy(out + w, ins, l);
    w += l;
  }
  out[w] = 0;
}

/* Vector forms: GCC's vector operators, the prelude's max_/where_ helpers for selects,
 * masks (bool vectors) as int32 -1/0. */
static bool vector_expr(uop *u, const char **a, char *out, size_t n) {
  dtype d = u->dt, sd = u->nsrc ? u->src[0]->dt : d;
  if (d.count <= 1 && sd.count <= 1) return false;
  const char *t = type_of(d);
  switch (u->op) {
  case OP_MAX:
    if (dt_is_bool(d)) snprintf(out, n, "(%s|%s)", a[0], a[1]);
    else snprintf(out, n, "max_%s(%s,%s)", t, a[0], a[1]);
    return true;
  case OP_WHERE: {
    uop *c = u->src[0];
    if (d.scalar == CG_FLOAT32 && c->op == OP_CMPLT && c->dt.count == d.count) { /* a clamp: one vminps / vmaxps */
      if (c->src[0] == u->src[1] && c->src[1] == u->src[2]) return snprintf(out, n, "minlt_%s(%s,%s)", t, a[1], a[2]), true;
      if (c->src[1] == u->src[1] && c->src[0] == u->src[2]) return snprintf(out, n, "maxgt_%s(%s,%s)", t, a[1], a[2]), true;
    }
    if (dt_is_bool(d)) snprintf(out, n, "((%s&%s)|(~%s&%s))", a[0], a[1], a[0], a[2]);
    else snprintf(out, n, "where_%s(%s,%s,%s)", t, a[0], a[1], a[2]);
    return true;
  }
  case OP_NEG: snprintf(out, n, dt_is_bool(d) ? "(~%s)" : "(-%s)", a[0]); return true;
  case OP_CAST:
    if (is_fp8(sd) && d.scalar == CG_FLOAT32) snprintf(out, n, "%s", a[0]); /* its float32 lanes */
    else if (is_fp8(d) && sd.scalar == CG_FLOAT32) snprintf(out, n, "%s_round_%s(%s)", conv_name(d), t, a[0]); /* rounded lanes */
    else if (dt_is_half(sd)) snprintf(out, n, "%sv_to_%s(%s)", conv_name(sd), t, a[0]); /* bits to float */
    else if (dt_is_half(d)) snprintf(out, n, "%s_to_%sv(%s)", type_of(sd), conv_name(d), a[0]); /* rounded to bits */
    else snprintf(out, n, "__builtin_convertvector(%s,%s)", a[0], t);
    return true;
  case OP_RECIPROCAL: snprintf(out, n, "(1.0f/%s)", a[0]); return true;
  case OP_BITCAST: /* float32 <-> int32 lanes: GCC's vector cast keeps the bits */
    if (dt_scalar_size(d) != 4 || dt_scalar_size(sd) != 4 || dt_is_bool(d) || dt_is_bool(sd)) return false;
    snprintf(out, n, "((%s)%s)", t, a[0]);
    return true;
  case OP_MULACC:
    if (d.scalar != CG_FLOAT32) return false;
    snprintf(out, n, "fma_%s(%s,%s,%s)", t, a[0], a[1], a[2]); /* one rounding, as the scalar fma */
    return true;
  case OP_EXP2: case OP_LOG2: case OP_SIN: { /* vmath.c's polynomials */
    char f[32];
    vmath_name(u->op, d.count, f, sizeof f);
    snprintf(out, n, "%s(%s)", f, a[0]);
    return true;
  }
  default: return false; /* the scalar templates spell vector operators too */
  }
}

/* The C expression of an ALU node over named operands, computed in d (u's dtype, or
 * int64 for wide index arithmetic). */
static void alu_expr(uop *u, dtype d, const char **a, char *out, size_t n) {
  dtype sd = u->nsrc ? u->src[0]->dt : d;
  char expr_fn[32];
  if (vector_expr(u, a, out, n)) return;
  /* comparisons and WHERE's condition are spelled by their operands' dtype */
  dtype td = op_has(u->op, F_CMP) ? sd : d;
  switch (u->op) {
  case OP_EXP2: case OP_LOG2: case OP_SIN: /* float32 (and the small floats, computed in it): vmath.c's */
    if (is_f64(d)) break;
    vmath_name(u->op, 1, expr_fn, sizeof expr_fn);
    snprintf(out, n, "%s(%s)", expr_fn, a[0]);
    return;
  case OP_CAST:
    if (dt_is_bool(d)) snprintf(out, n, "(%s!=0)", a[0]);
    else if (dt_is_int(d) && dt_is_float(sd)) { /* saturating, NaN gives 0 (alu_float_to_int) */
      int bits = dt_scalar_size(d) * 8;
      bool u = dt_is_unsigned(d);
      const char *t = ctype(d), *x = a[0];
      char mx[48], mn[48];
      if (u) snprintf(mx, sizeof mx, "(%s)-1", t), snprintf(mn, sizeof mn, "(%s)0", t);
      else {
        int64_t m = (int64_t)(((uint64_t)1 << (bits - 1)) - 1);
        snprintf(mx, sizeof mx, "(%s)%" PRId64 "ll", t, m), snprintf(mn, sizeof mn, "(%s)(-%" PRId64 "ll-1)", t, m);
      }
      snprintf(out, n, "(%s!=%s?(%s)0:%s>=%a?%s:%s<%a?%s:(%s)%s)", x, x, t, x, ldexp(1, u ? bits : bits - 1), mx, x, u ? 0.0 : -ldexp(1, bits - 1), mn, t, x);
    }
    else snprintf(out, n, "((%s)%s)", ctype(d), a[0]);
    return;
  case OP_BITCAST: { /* small floats live as float in registers: back to bits first */
    char from[512];
    if (is_small_float(sd)) snprintf(from, sizeof from, "f32_to_%s(%s)", conv_name(sd), a[0]);
    else snprintf(from, sizeof from, "%s", a[0]);
    if (is_small_float(d))
      snprintf(out, n, "%s_to_f32(({%s s_ = %s; %s t_; memcpy(&t_, &s_, sizeof t_); t_;}))", conv_name(d), storage_type(sd), from, storage_type(d));
    else snprintf(out, n, "({%s s_ = %s; %s t_; memcpy(&t_, &s_, sizeof t_); t_;})", storage_type(sd), from, storage_type(d));
    return;
  }
  default: break;
  }
  const char *t = dt_is_bool(td) && c_bool_templates[u->op]            ? c_bool_templates[u->op]
                  : dt_is_float(td) && c_float_templates[u->op]         ? c_float_templates[u->op]
                  : dt_is_unsigned(td) && c_unsigned_templates[u->op] ? c_unsigned_templates[u->op]
                                                                         : c_templates[u->op];
  CG_ASSERT(t, "the C renderer has no %s", op_name(u->op));
  expand_template(t, td, a, out, n);
}

static const char *name_of(rc *r, uop *u) {
  if (u->op == OP_CONST) return literal(r, u);
  uintptr_t i = (uintptr_t)uopset_get(&r->names, u);
  if (!i && r->nomem) return "0"; /* its name was lost to out of memory: the source is dropped */
  CG_ASSERT(i, "the C renderer met %s before it was computed", op_name(u->op));
  return r->strs[i - 1];
}
static void set_name(rc *r, uop *u, const char *name) {
  if (!save_str(r, name) || !uopset_put(&r->names, u, (void *)(uintptr_t)r->nstrs)) r->nomem = true;
}

/* The element a (linear) INDEX points at, as an lvalue or loaded value. */
static void element(rc *r, uop *ix, bool load, char *out, size_t n) {
  uop *b = ix->src[0];
  int slot = (int)b->arg.v[0];
  const char *off = name_of(r, ix->src[1]);
  if (ix->src[1]->dt.count > 1) snprintf(out, n, "gather_%s(data%d, %s)", type_of(dt_base(ix->dt)), slot, off); /* loads only */
  else if (ix->dt.count > 1) snprintf(out, n, "(*(%s%s_u *)(data%d + %s))", load ? "const " : "", type_of(dt_base(ix->dt)), slot, off);
  else if (load && is_small_float(b->dt)) snprintf(out, n, "%s_to_f32(data%d[%s])", conv_name(b->dt), slot, off);
  else snprintf(out, n, "data%d[%s]", slot, off);
}

/* ---- TC: WMMA (codegen/tc.c) --------------------------------------------------------------
 * A 16-lane WMMA of unit 1 is one vdpbf16ps of an A and a B operand, each 16 pairs of
 * bf16 (the first element of a pair in the low half of its 32-bit lane) built from the
 * step's two float32 vectors by the cheapest route the sources allow: two bf16 vector
 * loads interleaved; a broadcast pair of scalars (the raw bits when both are bf16 loads);
 * or two float32 vectors converted (vcvtne2ps2bf16) and interleaved. Other widths and
 * units run prelude code with the same meaning (ops.def). */

/* u is VECTORIZE(x, x, ..., x): x, else NULL */
static uop *broadcast_of(uop *u) {
  if (u->op != OP_VECTORIZE) return NULL;
  for (uint32_t i = 1; i < u->nsrc; i++)
    if (u->src[i] != u->src[0]) return NULL;
  return u->src[0];
}
static bool bf16_load_cast(uop *u) { return u->op == OP_CAST && u->src[0]->op == OP_LOAD && u->src[0]->dt.scalar == CG_BFLOAT16 && u->src[0]->src[0]->nsrc == 2; }

static void tc_pair(rc *r, uop *x0, uop *x1, bool adjacent, char *out, size_t n) {
  uop *s0 = broadcast_of(x0), *s1 = broadcast_of(x1);
  char e0[1900], e1[1900];
  if (bf16_load_cast(x0) && bf16_load_cast(x1))
    snprintf(out, n, "tc_pair_u16(%s,%s)", name_of(r, x0->src[0]), name_of(r, x1->src[0]));
  else if (s0 && s1 && bf16_load_cast(s0) && bf16_load_cast(s1) && adjacent) { /* the pair as one word */
    uop *ix = s0->src[0]->src[0];
    snprintf(out, n, "tc_bcast_u32(data%d + %s)", (int)ix->src[0]->arg.v[0], name_of(r, ix->src[1]));
  } else if (s0 && s1 && bf16_load_cast(s0) && bf16_load_cast(s1)) {
    element(r, s0->src[0]->src[0], false, e0, sizeof e0), element(r, s1->src[0]->src[0], false, e1, sizeof e1);
    snprintf(out, n, "tc_bcast_u16(%s,%s)", e0, e1);
  } else if (s0 && s1) snprintf(out, n, "tc_bcast_f32(%s,%s)", name_of(r, s0), name_of(r, s1));
  else snprintf(out, n, "tc_pair_f32(%s,%s)", name_of(r, x0), name_of(r, x1));
}

static void wmma_expr(rc *r, uop *u, char *out, size_t n) {
  const char *acc = name_of(r, u->src[4]);
  if ((u->arg.i & TC_UNIT_MASK) == TC_AVX512BF16 && u->dt.count == 16) {
    char pa[4000], pb[4000];
    tc_pair(r, u->src[0], u->src[1], u->arg.i & TC_PAIR_ADJACENT, pa, sizeof pa);
    tc_pair(r, u->src[2], u->src[3], u->arg.i & (TC_PAIR_ADJACENT << 1), pb, sizeof pb);
    snprintf(out, n, "tc_dp16(%s,%s,%s)", acc, pa, pb);
    return;
  }
  snprintf(out, n, "tc_wmma_%s(%s,%s,%s,%s,%s)", u->dt.count > 1 ? type_of(u->dt) : "f32", name_of(r, u->src[0]), name_of(r, u->src[1]),
           name_of(r, u->src[2]), name_of(r, u->src[3]), acc);
}

/* ---- index arithmetic in int64 ---------------------------------------------------------
 * Index arithmetic is int32 in the IR, and kernels build with -fwrapv (ints wrap, as the op
 * table says): a sum like row*K + k may wrap, so GCC sign-extends it at every use and cannot
 * turn data[k + row*K] into a pointer stepped once per loop trip (the GEMM's inner loop
 * spent 8 lea + movslq pairs on its 8 rows of A; gemm3's objdump). Loop counters and the
 * scalar int32 ops computed from them, kernel variables and constants alone (ADD MUL NEG
 * MAX IDIV MOD AND WHERE) are declared int64_t instead: their exact values are the int32
 * ones wherever the int32 sum does not wrap, which an address in a buffer never does (an
 * int32 value that uses one is truncated back as it is declared, which is the int32
 * wrap for ADD and MUL). Shifts stay int32 (their counts are taken modulo the width). */
static bool wide_op(uop *u) {
  switch (u->op) {
  case OP_ADD: case OP_MUL: case OP_NEG: case OP_MAX: case OP_IDIV: case OP_MOD: case OP_AND: return true;
  case OP_WHERE: return true; /* its condition is a bool: only the values are checked */
  default: return false;
  }
}
static bool is_wide(rc *r, uop *u) { return uopset_get(&r->wide, u) != NULL; }
static void wide_index(rc *r, const linear *l) {
  for (int i = 0; i < l->n; i++) {
    uop *u = l->ins[i];
    if (u->dt.scalar != CG_INT32 || u->dt.count != 1 || u->dt.addr != ADDR_NONE) continue;
    bool w = u->op == OP_RANGE;
    if (!w && op_is_alu(u->op) && wide_op(u)) {
      w = true;
      for (uint32_t k = u->op == OP_WHERE ? 1 : 0; k < u->nsrc && w; k++) {
        uop *x = u->src[k];
        w = x->op == OP_CONST || (x->op == OP_DEFINE_VAR && x->dt.count == 1) || is_wide(r, x);
      }
    }
    if (w && uopset_put(&r->wide, u, (void *)1) == false) r->nomem = true;
  }
}

/* ---- transposes ------------------------------------------------------------------------ */

/* expand's transposed loads (codegen/expand.c) leave VECTORIZE(GEP(v_0, k), .., GEP(v_w-1, k))
 * for the columns k of w float32 (or bf16 bits) vectors of w lanes: the w vectors are
 * transposed once in registers (the prelude's transpose_f32xw / transpose_u16xw) right
 * after the last of them is loaded, and each column is a row of the result. */
enum { MAX_TRANSPOSES = 32 };
typedef struct {
  uop *src[16];
  int w, anchor; /* anchor: the instruction after which all of src are computed */
  char name[16];
  dtype dt;      /* the vectors' */
} transpose;
typedef struct {
  transpose t[MAX_TRANSPOSES];
  int n;
  uopset col;       /* VECTORIZE -> (group << 5 | k) + 1 */
  uopset gep_used;  /* GEP -> 1: read by something other than a grouped VECTORIZE */
} transposes;

static int column_of(uop *u, uop **src) {
  int sc = u->dt.scalar;
  if (u->op != OP_VECTORIZE || (sc != CG_FLOAT32 && sc != CG_BFLOAT16 && sc != CG_FLOAT16) || (u->dt.count != 8 && u->dt.count != 16)) return -1;
  int w = u->dt.count;
  for (int j = 0; j < w; j++) {
    uop *g = u->src[j];
    if (g->op != OP_GEP || g->arg.i != u->src[0]->arg.i || g->src[0]->dt.scalar != sc || g->src[0]->dt.count != w) return -1;
    src[j] = g->src[0];
    for (int q = 0; q < j; q++)
      if (src[q] == src[j]) return -1;
  }
  return (int)u->src[0]->arg.i;
}

static void find_transposes(rc *r, const linear *l, transposes *ts) {
  uopset pos = {0};
  for (int i = 0; i < l->n; i++)
    if (!uopset_put(&pos, l->ins[i], (void *)(uintptr_t)(i + 1))) r->nomem = true;
  for (int i = 0; i < l->n; i++) {
    uop *u = l->ins[i], *src[16];
    int k = column_of(u, src), g = 0;
    if (k < 0) {
      for (uint32_t s = 0; s < u->nsrc; s++)
        if (u->src[s]->op == OP_GEP && !uopset_put(&ts->gep_used, u->src[s], (void *)1)) r->nomem = true;
      continue;
    }
    while (g < ts->n && (ts->t[g].dt.scalar != u->dt.scalar || ts->t[g].w != u->dt.count || memcmp(ts->t[g].src, src, sizeof(uop *) * (size_t)u->dt.count))) g++;
    if (g == ts->n) {
      if (g == MAX_TRANSPOSES) {
        for (uint32_t s = 0; s < u->nsrc; s++)
          if (!uopset_put(&ts->gep_used, u->src[s], (void *)1)) r->nomem = true;
        continue;
      }
      transpose *t = &ts->t[ts->n++];
      memcpy(t->src, src, sizeof(uop *) * (size_t)u->dt.count);
      t->w = u->dt.count, t->anchor = -1, t->dt = src[0]->dt;
      for (int j = 0; j < t->w; j++) {
        int p = (int)(uintptr_t)uopset_get(&pos, src[j]) - 1;
        if (p > t->anchor) t->anchor = p;
      }
    }
    if (!uopset_put(&ts->col, u, (void *)(uintptr_t)((g << 5 | k) + 1))) r->nomem = true;
  }
  uopset_free(&pos);
}

/* the transposes whose vectors are all computed once instruction i is */
static void emit_transposes(rc *r, transposes *ts, int i) {
  for (int g = 0; g < ts->n; g++) {
    transpose *t = &ts->t[g];
    if (t->anchor != i) continue;
    snprintf(t->name, sizeof t->name, "tr%d", g);
    char lst[16 * 24] = "";
    size_t w = 0;
    for (int j = 0; j < t->w && w < sizeof lst; j++) w += (size_t)snprintf(lst + w, sizeof lst - w, "%s%s", j ? "," : "", name_of(r, t->src[j]));
    line(r, "%s %s[%d] = {%s};", type_of(t->dt), t->name, t->w, lst);
    line(r, "transpose_%s(%s);", type_of(t->dt), t->name);
  }
}

/* ---- the kernel ------------------------------------------------------------------------ */

extern const char cg_kernel_prelude[], cg_tc_prelude[];
const char *cg_transpose_prelude(void); /* prelude.c */

static char *render_c(const char *name, const linear *l) {
  rc r = {0};
  uopset fused = {0}; /* the MULs spelled inside their ADD (contract.c) */
  emit(&r, "%s", cg_kernel_prelude);
  /* TC kernels: the unit's helpers, and the kernel compiled for the unit's instructions
   * whatever the flags (it runs only where CPUID found the unit: codegen/tc.c) */
  int tc = 0;
  for (int i = 0; i < l->n; i++)
    if (l->ins[i]->op == OP_WMMA) tc |= (l->ins[i]->arg.i & TC_UNIT_MASK) == TC_AVX512BF16 && l->ins[i]->dt.count == 16 ? 2 : 1;
    else if (l->ins[i]->op == OP_AMX_TILE) tc |= 1; /* a call to the AMX helper (its own target) */
  if (tc) emit(&r, "%s", cg_tc_prelude);
  transposes trs = {0};
  find_transposes(&r, l, &trs);
  if (trs.n) emit(&r, "%s", cg_transpose_prelude());
  /* the transcendentals this kernel uses, at the widths it uses them (vmath.c) */
  unsigned vm[OP_COUNT] = {0};
  for (int i = 0; i < l->n; i++) {
    uop *u = l->ins[i];
    if (vmath_has(u->op) && !is_f64(u->dt)) vm[u->op] |= 1u << (u->dt.count <= 1 ? 0 : __builtin_ctz((unsigned)u->dt.count));
  }
  for (int op = 0; op < OP_COUNT; op++)
    if (vm[op]) {
      size_t len = vmath_source(op, vm[op], NULL, 0);
      char *src = ir_malloc(len + 1);
      if (!src) {
        r.nomem = true;
        continue;
      }
      vmath_source(op, vm[op], src, len + 1);
      emit(&r, "%s", src);
      free(src);
    }
  if (tc & 2) emit(&r, "#pragma GCC push_options\n#pragma GCC target(\"%s\")\n", CG_TC_AVX512BF16_TARGET);
  emit(&r, "void %s(void **bufs, const int64_t *vars, int64_t lo, int64_t hi) {\n", name);
  r.indent = 1;
  line(&r, "(void)vars; (void)lo; (void)hi;");
  /* slot dtypes from the instructions that index them */
  dtype *slot_dt = ir_calloc((size_t)(l->nbufs ? l->nbufs : 1), sizeof(dtype));
  bool *seen = slot_dt ? ir_calloc((size_t)(l->nbufs ? l->nbufs : 1), 1) : NULL;
  if (!seen) {
    free(slot_dt);
    r.nomem = true;
    goto done;
  }
  for (int i = 0; i < l->n; i++)
    for (int s = 0; s < 3; s += 2) /* INDEX's buffer; AMX_TILE's two */
      if (l->ins[i]->op == OP_INDEX || l->ins[i]->op == OP_AMX_TILE) {
        uop *b = l->ins[i]->src[s];
        slot_dt[b->arg.v[0]] = b->dt, seen[b->arg.v[0]] = true;
        if (l->ins[i]->op == OP_INDEX) break;
      }
  for (int i = 0; i < l->nbufs; i++)
    if (seen[i]) line(&r, "%s%s *restrict data%d = (%s *)bufs[%d];", i < l->nout ? "" : "const ", storage_type(slot_dt[i]), i, storage_type(slot_dt[i]), i);
  free(slot_dt);
  free(seen);
  /* kernel variables, read once from the launch's vars: ints as int64, floats as the bits
   * of a double (runtime/var.h), rounded to the var's dtype as a constant would be */
  char nm[48];
  for (int i = 0; i < l->n; i++)
    for (uint32_t k = 0; k < l->ins[i]->nsrc; k++) {
      uop *v = l->ins[i]->src[k];
      if (v->op != OP_DEFINE_VAR || uopset_get(&r.names, v)) continue;
      int64_t slot = v->arg.n > 2 ? v->arg.v[2] : 0;
      snprintf(nm, sizeof nm, "var%" PRId64, slot);
      if (dt_is_float(v->dt))
        line(&r, "const %s %s = (%s)({double d_; memcpy(&d_, &vars[%" PRId64 "], sizeof d_); d_;}); /* %s */", ctype(v->dt), nm, ctype(v->dt), slot, v->arg.s);
      else line(&r, "const %s %s = (%s)vars[%" PRId64 "]; /* %s */", ctype(v->dt), nm, ctype(v->dt), slot, v->arg.s);
      set_name(&r, v, nm);
    }
  wide_index(&r, l);
  char expr[8192], elem[4200];
  bool *fma_mul = render_fma_pairs(l); /* contract.c: these MULs are spelled inside their ADD, as fma */
  if (!fma_mul) r.nomem = true;
  for (int i = 0; fma_mul && i < l->n; i++)
    if (fma_mul[i] && !uopset_put(&fused, l->ins[i], (void *)1)) r.nomem = true;
  free(fma_mul);
  for (int i = 0; i < l->n; i++) {
    uop *u = l->ins[i];
    const char *a[3] = {0};
    if (i) emit_transposes(&r, &trs, i - 1);
    if (uopset_get(&fused, u)) continue;
    uintptr_t col = (uintptr_t)uopset_get(&trs.col, u);
    if (col) { /* a transposed column: a row of the transpose */
      snprintf(expr, sizeof expr, "%s[%d]", trs.t[(col - 1) >> 5].name, (int)((col - 1) & 31));
      snprintf(nm, sizeof nm, "val%d", r.nval++);
      line(&r, "%s %s = %s;", type_of(u->dt), nm, expr);
      set_name(&r, u, nm);
      continue;
    }
    if (u->op == OP_GEP && trs.n && !uopset_get(&trs.gep_used, u) && u->src[0]->dt.count > 1) continue; /* read only through its transpose */
    switch (u->op) {
    case OP_RANGE:
      if (u->arg.v[1] == RANGE_TILE) snprintf(nm, sizeof nm, "tidx%" PRId64 "_%" PRId64, u->arg.v[0], u->arg.v[2]);
      else snprintf(nm, sizeof nm, "%sidx%" PRId64, u->arg.v[1] == RANGE_REDUCE ? "r" : "g", u->arg.v[0]);
      {
        const char *it = is_wide(&r, u) ? "int64_t" : ctype(u->dt);
        if (u->arg.v[1] == RANGE_THREAD) line(&r, "for (%s %s = (%s)lo; %s < (%s)hi; %s++) {", it, nm, it, nm, it, nm);
        else line(&r, "for (%s %s = 0; %s < %s; %s++) {", it, nm, nm, name_of(&r, u->src[0]), nm);
      }
      set_name(&r, u, nm);
      r.indent++;
      continue;
    case OP_END:
      r.indent--;
      line(&r, "}");
      continue;
    case OP_DEFINE_ACC:
      snprintf(nm, sizeof nm, "acc%" PRId64, u->arg.i);
      line(&r, "%s %s = %s;", type_of(u->dt), nm, name_of(&r, u->src[0]));
      set_name(&r, u, nm);
      continue;
    case OP_ASSIGN: {
      const char *acc = name_of(&r, u->src[0]);
      line(&r, "%s = %s;", acc, name_of(&r, u->src[1]));
      set_name(&r, u, acc);
      continue;
    }
    case OP_INDEX: continue; /* spelled where it is loaded or stored */
    case OP_VECTORIZE: { /* a bf16 / f16 vector holds bits: each (float) lane's */
      size_t w = (size_t)snprintf(expr, sizeof expr, "(%s){", type_of(u->dt));
      bool bits = dt_is_half(u->dt);
      for (uint32_t s = 0; s < u->nsrc && w < sizeof expr; s++)
        w += (size_t)snprintf(expr + w, sizeof expr - w, dt_is_bool(u->dt) ? "%s%s-(int32_t)(%s)" : bits ? "%sf32_to_%s(%s)" : "%s%s%s", s ? "," : "",
                              bits ? conv_name(u->dt) : "", name_of(&r, u->src[s]));
      if (w < sizeof expr) snprintf(expr + w, sizeof expr - w, "}");
      break;
    }
    case OP_WMMA:
      wmma_expr(&r, u, expr, sizeof expr);
      break;
    case OP_AMX_TILE: /* a 16x16 tile on the stack, computed by the prelude's AMX helper */
      snprintf(nm, sizeof nm, "val%d", r.nval++);
      line(&r, "float %s[256] __attribute__((aligned(64)));", nm);
      line(&r, "tc_amx_tile(%s, data%d + %s, %" PRId64 ", data%d + %s, %" PRId64 ", %" PRId64 ");", nm, (int)u->src[0]->arg.v[0], name_of(&r, u->src[1]),
           u->arg.v[1], (int)u->src[2]->arg.v[0], name_of(&r, u->src[3]), u->arg.v[2], u->arg.v[0]);
      set_name(&r, u, nm);
      continue;
    case OP_TILE_AT:
      snprintf(expr, sizeof expr, "%s[%s]", name_of(&r, u->src[0]), name_of(&r, u->src[1]));
      break;
    case OP_GEP: /* a lane of a bf16 / f16 vector: its bits as the float it is */
      if (dt_is_half(u->dt)) snprintf(expr, sizeof expr, "%s_to_f32(%s[%" PRId64 "])", conv_name(u->dt), name_of(&r, u->src[0]), u->arg.i);
      else snprintf(expr, sizeof expr, dt_is_bool(u->dt) ? "(%s[%" PRId64 "]!=0)" : "%s[%" PRId64 "]", name_of(&r, u->src[0]), u->arg.i);
      break;
    case OP_STORE: {
      uop *ix = u->src[0], *b = ix->src[0];
      element(&r, ix, false, elem, sizeof elem);
      const char *v = name_of(&r, u->src[1]);
      uop *g = ix->nsrc > 2 ? ix->src[2] : NULL;
      char gate[96] = "";
      if (g && g->dt.count > 1) { /* a mask that varies by lane (PADTO's tail) */
        line(&r, "mstore_%s(data%d + %s, %s, %s);", type_of(dt_base(ix->dt)), (int)b->arg.v[0], name_of(&r, ix->src[1]), v, name_of(&r, g));
        continue;
      }
      if (ix->src[1]->dt.count > 1) { /* a scatter (expand's strided output) */
        line(&r, "scatter_%s(data%d, %s, %s);", type_of(dt_base(ix->dt)), (int)b->arg.v[0], name_of(&r, ix->src[1]), v);
        continue;
      }
      if (g) snprintf(gate, sizeof gate, "if (%s) ", name_of(&r, g));
      if (ix->dt.count > 1) line(&r, "%s%s = %s;", gate, elem, v);
      else if (is_small_float(b->dt)) line(&r, "%s%s = f32_to_%s(%s);", gate, elem, conv_name(b->dt), v);
      else if (dt_is_bool(b->dt)) line(&r, "%s%s = (uint8_t)(%s);", gate, elem, v);
      else line(&r, "%s%s = %s;", gate, elem, v);
      continue;
    }
    case OP_LOAD: {
      uop *ix = u->src[0];
      element(&r, ix, true, elem, sizeof elem);
      if (ix->nsrc > 2 && ix->src[2]->dt.count > 1)
        snprintf(expr, sizeof expr, "mload_%s(data%d + %s, %s, %s)", type_of(dt_base(ix->dt)), (int)ix->src[0]->arg.v[0], name_of(&r, ix->src[1]),
                 name_of(&r, ix->src[2]), name_of(&r, u->src[1]));
      else if (ix->nsrc > 2) snprintf(expr, sizeof expr, "(%s ? %s : %s)", name_of(&r, ix->src[2]), elem, name_of(&r, u->src[1]));
      else snprintf(expr, sizeof expr, "%s", elem);
      break;
    }
    default:
      if (!op_is_alu(u->op)) {
        cg_fail(CG_ERR_RUNTIME, "the C renderer cannot render a %s", op_name(u->op));
        free(r.buf);
        r.buf = NULL;
        goto done;
      }
      uop *m = u->op == OP_ADD ? uopset_get(&fused, u->src[0]) ? u->src[0] : uopset_get(&fused, u->src[1]) ? u->src[1] : NULL : NULL;
      if (m) { /* fma(the MUL's operands, the ADD's other) */
        const char *o = name_of(&r, m == u->src[0] ? u->src[1] : u->src[0]), *x = name_of(&r, m->src[0]), *y = name_of(&r, m->src[1]);
        if (u->dt.count > 1) snprintf(expr, sizeof expr, "fma_%s(%s,%s,%s)", type_of(u->dt), x, y, o);
        else snprintf(expr, sizeof expr, "fma%s(%s,%s,%s)", is_f64(u->dt) ? "" : "f", x, y, o);
      } else {
        for (uint32_t s = 0; s < u->nsrc; s++) a[s] = name_of(&r, u->src[s]);
        alu_expr(u, is_wide(&r, u) ? dt_of(CG_INT64) : u->dt, a, expr, sizeof expr);
      }
      if (is_small_float(u->dt) && u->dt.count <= 1 && u->op != OP_BITCAST && !op_has(u->op, F_CMP)) { /* bf16 vectors are rounded bits already */
        /* round every result to the small format, as its hardware would */
        char t[8300];
        snprintf(t, sizeof t, "%s_round(%s)", conv_name(u->dt), expr);
        strcpy(expr, t);
      }
    }
    snprintf(nm, sizeof nm, "val%d", r.nval++);
    line(&r, "%s %s = %s;", is_wide(&r, u) ? "int64_t" : type_of(u->dt), nm, expr);
    set_name(&r, u, nm);
  }
  emit(&r, "}\n");
  if (tc & 2) emit(&r, "#pragma GCC pop_options\n");
done:
  if (r.nomem) { /* ir_* recorded CG_ERR_NOMEM; the pipeline fails the kernel */
    free(r.buf);
    r.buf = NULL;
  }
  for (size_t i = 0; i < r.nstrs; i++) free(r.strs[i]);
  free(r.strs);
  uopset_free(&r.names);
  uopset_free(&fused);
  uopset_free(&trs.col);
  uopset_free(&trs.gep_used);
  uopset_free(&r.wide);
  return r.buf;
}

const renderer renderer_c = {"c", c_templates, render_c};
