/* The C renderer: a kernel AST becomes one C function with the CPU kernel ABI
 *     void NAME(void **bufs, const int64_t *vars, int64_t lo, int64_t hi)
 * Output ranges become nested loops (the first one split across threads through lo/hi),
 * each REDUCE an accumulator and its own loops; values are named after what they are
 * (val3, acc0, ridx100) and placed in the innermost loop they depend on (what does not
 * depend on a reduction's ranges is computed before its loop). Half and 8-bit floats
 * are stored as bits and computed in float. */
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
  uopset names;      /* node -> name index + 1 (per scope) */
  uop **defined;     /* nodes named, in order, for scope unwinding */
  int *depth_of;
  size_t ndef, capdef;
  int depth;
  uint64_t open;     /* ranges whose loops are open here */
  int nval, nacc;
  uop **bufs;
  int nbufs;
  uint64_t *deps;    /* per visited node: mask of ranges it depends on */
  uopset ranges;     /* RANGE -> bit index + 1 */
  uopset dep_memo;   /* node -> mask + 1 (stored as pointer) */
  uop **reduces;     /* every REDUCE of the kernel, sources first */
  int nreduces;
  char **strs;       /* name strings, owned */
  size_t nstrs, capstrs;
} rc;

static void emit(rc *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(rc *r, const char *fmt, ...) {
  va_list ap;
  for (;;) {
    va_start(ap, fmt);
    size_t room = r->cap - r->len;
    int n = vsnprintf(r->buf + r->len, room, fmt, ap);
    va_end(ap);
    if ((size_t)n < room) {
      r->len += (size_t)n;
      return;
    }
    r->cap = (r->cap + (size_t)n) * 2;
    r->buf = realloc(r->buf, r->cap);
    CG_ASSERT(r->buf, "out of memory");
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
    r->capstrs = r->capstrs ? r->capstrs * 2 : 64;
    r->strs = realloc(r->strs, r->capstrs * sizeof(char *));
    CG_ASSERT(r->strs, "out of memory");
  }
  char *c = strdup(s);
  CG_ASSERT(c, "out of memory");
  return r->strs[r->nstrs++] = c;
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

/* ---- range dependencies ------------------------------------------------------------- */

static uint64_t deps(rc *r, uop *u) {
  uintptr_t m = (uintptr_t)uopset_get(&r->dep_memo, u);
  if (m) return (uint64_t)(m - 1);
  uint64_t d = 0;
  if (u->op == OP_RANGE) d = 1ull << ((uintptr_t)uopset_get(&r->ranges, u) - 1);
  else if (u->op != OP_BUFFER)
    for (uint32_t i = 0; i < u->nsrc; i++) d |= deps(r, u->src[i]);
  if (u->op == OP_REDUCE)
    for (uint32_t i = 1; i < u->nsrc; i++) d &= ~(1ull << ((uintptr_t)uopset_get(&r->ranges, u->src[i]) - 1));
  uopset_put(&r->dep_memo, u, (void *)(uintptr_t)(d + 1));
  return d;
}

static void find_ranges(rc *r, uop *u, uopset *seen, uop **out, int *n) {
  if (!uopset_add(seen, u) || u->op == OP_BUFFER) return;
  if (u->op == OP_REDUCE) {
    r->reduces = realloc(r->reduces, sizeof(uop *) * (size_t)(r->nreduces + 1));
    CG_ASSERT(r->reduces, "out of memory");
    r->reduces[r->nreduces++] = u;
  }
  if (u->op == OP_RANGE) {
    CG_ASSERT(*n < 64, "a kernel with more than 64 loops");
    out[(*n)++] = u;
    uopset_put(&r->ranges, u, (void *)(uintptr_t)*n);
    return;
  }
  for (uint32_t i = 0; i < u->nsrc; i++) find_ranges(r, u->src[i], seen, out, n);
}

/* ---- names and scopes --------------------------------------------------------------- */

static const char *name_of(rc *r, uop *u) {
  uintptr_t i = (uintptr_t)uopset_get(&r->names, u);
  return i ? r->strs[i - 1] : NULL;
}
static const char *define(rc *r, uop *u, const char *name) {
  const char *s = save_str(r, name);
  uopset_put(&r->names, u, (void *)(uintptr_t)r->nstrs);
  if (r->ndef == r->capdef) {
    r->capdef = r->capdef ? r->capdef * 2 : 64;
    r->defined = realloc(r->defined, r->capdef * sizeof(uop *));
    r->depth_of = realloc(r->depth_of, r->capdef * sizeof(int));
    CG_ASSERT(r->defined && r->depth_of, "out of memory");
  }
  r->defined[r->ndef] = u;
  r->depth_of[r->ndef++] = r->depth;
  if (u->op == OP_RANGE) r->open |= 1ull << ((uintptr_t)uopset_get(&r->ranges, u) - 1);
  return s;
}
static void open_scope(rc *r) { r->depth++, r->indent++; }
static void close_scope(rc *r) {
  while (r->ndef && r->depth_of[r->ndef - 1] == r->depth) {
    uop *u = r->defined[--r->ndef];
    if (u->op == OP_RANGE) r->open &= ~(1ull << ((uintptr_t)uopset_get(&r->ranges, u) - 1));
    uopset_put(&r->names, u, NULL);
  }
  r->depth--, r->indent--;
  line(r, "}");
}

static int buf_slot(rc *r, uop *b) {
  for (int i = 0; i < r->nbufs; i++)
    if (r->bufs[i] == b) return i;
  CG_ASSERT(0, "a buffer not in the kernel's list");
  return -1;
}

/* ---- values ------------------------------------------------------------------------- */

static const char *value(rc *r, uop *u);

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

static const char *fn(dtype d, const char *f32, const char *f64) { return is_f64(d) ? f64 : f32; }

/* The C expression of an ALU node over named operands. */
static void alu_expr(rc *r, uop *u, const char **a, char *out, size_t n) {
  dtype d = u->dt, sd = u->nsrc ? u->src[0]->dt : d;
  bool b = dt_is_bool(d);
  switch (u->op) {
  case OP_ADD: snprintf(out, n, b ? "(%s|%s)" : "(%s+%s)", a[0], a[1]); break;
  case OP_MUL: snprintf(out, n, b ? "(%s&%s)" : "(%s*%s)", a[0], a[1]); break;
  case OP_IDIV: snprintf(out, n, "(%s/%s)", a[0], a[1]); break;
  case OP_MOD: snprintf(out, n, "(%s%%%s)", a[0], a[1]); break;
  case OP_MAX: snprintf(out, n, "(%s>%s?%s:%s)", a[0], a[1], a[0], a[1]); break;
  case OP_CMPLT: snprintf(out, n, "(%s<%s)", a[0], a[1]); break;
  case OP_CMPNE: snprintf(out, n, "(%s!=%s)", a[0], a[1]); break;
  case OP_CMPEQ: snprintf(out, n, "(%s==%s)", a[0], a[1]); break;
  case OP_XOR: snprintf(out, n, "(%s^%s)", a[0], a[1]); break;
  case OP_OR: snprintf(out, n, "(%s|%s)", a[0], a[1]); break;
  case OP_AND: snprintf(out, n, "(%s&%s)", a[0], a[1]); break;
  case OP_SHL: snprintf(out, n, "(%s<<%s)", a[0], a[1]); break;
  case OP_SHR: snprintf(out, n, "(%s>>%s)", a[0], a[1]); break;
  case OP_WHERE: snprintf(out, n, "(%s?%s:%s)", a[0], a[1], a[2]); break;
  case OP_MULACC: snprintf(out, n, "(%s*%s+%s)", a[0], a[1], a[2]); break;
  case OP_NEG: snprintf(out, n, b ? "(!%s)" : "(-%s)", a[0]); break;
  case OP_EXP2: snprintf(out, n, "%s(%s)", fn(d, "exp2f", "exp2"), a[0]); break;
  case OP_LOG2: snprintf(out, n, "%s(%s)", fn(d, "log2f", "log2"), a[0]); break;
  case OP_SIN: snprintf(out, n, "%s(%s)", fn(d, "sinf", "sin"), a[0]); break;
  case OP_SQRT: snprintf(out, n, "%s(%s)", fn(d, "sqrtf", "sqrt"), a[0]); break;
  case OP_RECIPROCAL: snprintf(out, n, is_f64(d) ? "(1.0/%s)" : "(1.0f/%s)", a[0]); break;
  case OP_TRUNC: snprintf(out, n, dt_is_float(d) ? "%s(%s)" : "%s%s", dt_is_float(d) ? fn(d, "truncf", "trunc") : "", a[0]); break;
  case OP_CAST:
    if (b) snprintf(out, n, "(%s!=0)", a[0]);
    else if (dt_is_int(d) && dt_is_float(sd)) snprintf(out, n, "((%s)%s(%s))", ctype(d), fn(sd, "truncf", "trunc"), a[0]);
    else snprintf(out, n, "((%s)%s)", ctype(d), a[0]);
    break;
  case OP_BITCAST: { /* small floats live as float in registers: back to bits first */
    char from[512];
    if (is_small_float(sd)) snprintf(from, sizeof from, "f32_to_%s(%s)", conv_name(sd), a[0]);
    else snprintf(from, sizeof from, "%s", a[0]);
    if (is_small_float(d))
      snprintf(out, n, "%s_to_f32(({%s s_ = %s; %s t_; memcpy(&t_, &s_, sizeof t_); t_;}))", conv_name(d), storage_type(sd), from, storage_type(d));
    else snprintf(out, n, "({%s s_ = %s; %s t_; memcpy(&t_, &s_, sizeof t_); t_;})", storage_type(sd), from, storage_type(d));
    break;
  }
  default: CG_ASSERT(0, "the C renderer has no %s", op_name(u->op));
  }
  (void)r;
}

static bool same_ranges(const uop *a, const uop *b) {
  if (a->nsrc != b->nsrc || a->arg.v[0] != b->arg.v[0]) return false;
  for (uint32_t i = 1; i < a->nsrc; i++)
    if (a->src[i] != b->src[i]) return false;
  return true;
}

/* Compute before the loop whatever depends only on loops already open. */
static void hoist(rc *r, uop *src) {
  uop *stack[4096];
  int n = 0;
  uopset seen = {0};
  stack[n++] = src;
  while (n) {
    uop *x = stack[--n];
    if (!uopset_add(&seen, x) || x->op == OP_BUFFER || x->op == OP_CONST || x->op == OP_RANGE) continue;
    if (!(deps(r, x) & ~r->open) && x->op != OP_INDEX) {
      value(r, x);
      continue;
    }
    for (uint32_t i = 0; i < x->nsrc && n < 4096; i++) stack[n++] = x->src[i];
  }
  uopset_free(&seen);
}

/* A REDUCE, together with every other pending REDUCE over the same ranges (the lanes of
 * an upcast tile): one set of loops, one accumulator each. */
static const char *reduce_value(rc *r, uop *u) {
  int op = (int)u->arg.v[0];
  dtype d = u->dt;
  uop *group[256];
  int ng = 0;
  for (int i = 0; i < r->nreduces && ng < 256; i++) {
    uop *x = r->reduces[i];
    if (x == u || (!name_of(r, x) && same_ranges(x, u))) group[ng++] = x;
  }
  for (int g = 0; g < ng; g++) hoist(r, group[g]->src[0]);
  const char *init;
  if (op == OP_ADD) init = dt_is_float(d) ? (is_f64(d) ? "0.0" : "0.0f") : "0";
  else if (op == OP_MUL) init = dt_is_float(d) ? (is_f64(d) ? "1.0" : "1.0f") : "1";
  else if (dt_is_float(d)) init = "-INFINITY";
  else if (dt_is_bool(d) || dt_is_unsigned(d)) init = "0";
  else init = d.scalar == CG_INT64 ? "INT64_MIN" : d.scalar == CG_INT32 ? "INT32_MIN" : d.scalar == CG_INT16 ? "INT16_MIN" : "INT8_MIN";
  char acc[256][16];
  for (int g = 0; g < ng; g++) {
    snprintf(acc[g], sizeof acc[g], "acc%d", r->nacc++);
    line(r, "%s %s = %s;", ctype(d), acc[g], init);
  }
  for (uint32_t i = 1; i < u->nsrc; i++) {
    const char *rv = value(r, u->src[i]->src[0]);
    char nm[32];
    snprintf(nm, sizeof nm, "ridx%" PRId64, u->src[i]->arg.v[0]);
    line(r, "for (int32_t %s = 0; %s < %s; %s++) {", nm, nm, rv, nm);
    open_scope(r);
    define(r, u->src[i], nm);
  }
  const char *v[256];
  for (int g = 0; g < ng; g++) v[g] = value(r, group[g]->src[0]);
  for (int g = 0; g < ng; g++) {
    if (op == OP_ADD) line(r, dt_is_bool(d) ? "%s |= %s;" : "%s += %s;", acc[g], v[g]);
    else if (op == OP_MUL) line(r, dt_is_bool(d) ? "%s &= %s;" : "%s *= %s;", acc[g], v[g]);
    else line(r, "%s = %s > %s ? %s : %s;", acc[g], v[g], acc[g], v[g], acc[g]);
  }
  for (uint32_t i = 1; i < u->nsrc; i++) close_scope(r);
  const char *mine = NULL;
  for (int g = 0; g < ng; g++) {
    const char *nm = define(r, group[g], acc[g]);
    if (group[g] == u) mine = nm;
  }
  return mine;
}

static const char *value(rc *r, uop *u) {
  const char *nm = name_of(r, u);
  if (nm) return nm;
  char expr[8192], vn[32];
  switch (u->op) {
  case OP_CONST: return literal(r, u);
  case OP_REDUCE: return reduce_value(r, u);
  case OP_LOAD: {
    uop *ix = u->src[0], *b = ix->src[0];
    const char *off = value(r, ix->src[1]);
    int slot = buf_slot(r, b);
    char elem[4200];
    if (is_small_float(b->dt)) snprintf(elem, sizeof elem, "%s_to_f32(data%d[%s])", conv_name(b->dt), slot, off);
    else snprintf(elem, sizeof elem, "data%d[%s]", slot, off);
    if (ix->nsrc > 2) snprintf(expr, sizeof expr, "(%s ? %s : %s)", value(r, ix->src[2]), elem, value(r, u->src[1]));
    else snprintf(expr, sizeof expr, "%s", elem);
    break;
  }
  default: {
    CG_ASSERT(op_is_alu(u->op), "the C renderer cannot compute a %s", op_name(u->op));
    const char *a[3];
    for (uint32_t i = 0; i < u->nsrc; i++) a[i] = value(r, u->src[i]);
    alu_expr(r, u, a, expr, sizeof expr);
    if (is_small_float(u->dt) && u->op != OP_BITCAST && !op_has(u->op, F_CMP)) {
      /* round every result to the small format, as its hardware would */
      char t[8300];
      snprintf(t, sizeof t, "%s_round(%s)", conv_name(u->dt), expr);
      strcpy(expr, t);
    }
  }
  }
  snprintf(vn, sizeof vn, "val%d", r->nval++);
  line(r, "%s %s = %s;", ctype(u->dt), vn, expr);
  return define(r, u, vn);
}

/* ---- the kernel ------------------------------------------------------------------------ */

extern const char cg_kernel_prelude[];

char *render_c(const char *name, uop *ast, uop **bufs, int nbufs, int nout) {
  rc r = {.bufs = bufs, .nbufs = nbufs};
  uop *rng[64];
  int nr = 0;
  uopset seen = {0};
  find_ranges(&r, ast, &seen, rng, &nr);
  uopset_free(&seen);
  emit(&r, "%s", cg_kernel_prelude);
  emit(&r, "void %s(void **bufs, const int64_t *vars, int64_t lo, int64_t hi) {\n", name);
  r.indent = 1;
  line(&r, "(void)vars; (void)lo; (void)hi;");
  for (int i = 0; i < nbufs; i++)
    line(&r, "%s%s *restrict data%d = (%s *)bufs[%d];", i < nout ? "" : "const ", storage_type(bufs[i]->dt), i, storage_type(bufs[i]->dt), i);
  /* output loops, by axis; the first takes [lo, hi) */
  uop *outer[64];
  int no = 0;
  for (int i = 0; i < nr; i++)
    if (rng[i]->arg.v[1] == 0) outer[no++] = rng[i];
  for (int i = 1; i < no; i++)
    for (int j = i; j > 0 && outer[j]->arg.v[0] < outer[j - 1]->arg.v[0]; j--) {
      uop *t = outer[j];
      outer[j] = outer[j - 1], outer[j - 1] = t;
    }
  for (int i = 0; i < no; i++) {
    char nm[32];
    snprintf(nm, sizeof nm, "gidx%" PRId64, outer[i]->arg.v[0]);
    if (i == 0) line(&r, "for (int32_t %s = (int32_t)lo; %s < (int32_t)hi; %s++) {", nm, nm, nm);
    else line(&r, "for (int32_t %s = 0; %s < %s; %s++) {", nm, nm, value(&r, outer[i]->src[0]), nm);
    open_scope(&r);
    define(&r, outer[i], nm);
  }
  for (uint32_t s = 0; s < ast->nsrc; s++) {
    uop *st = ast->src[s], *ix = st->src[0];
    const char *v = value(&r, st->src[1]);
    const char *off = value(&r, ix->src[1]);
    int slot = buf_slot(&r, ix->src[0]);
    if (is_small_float(ix->src[0]->dt)) line(&r, "data%d[%s] = f32_to_%s(%s);", slot, off, conv_name(ix->src[0]->dt), v);
    else if (dt_is_bool(ix->src[0]->dt)) line(&r, "data%d[%s] = (uint8_t)(%s);", slot, off, v);
    else line(&r, "data%d[%s] = %s;", slot, off, v);
  }
  while (r.depth) close_scope(&r);
  emit(&r, "}\n");
  for (size_t i = 0; i < r.nstrs; i++) free(r.strs[i]);
  free(r.strs);
  free(r.defined);
  free(r.depth_of);
  free(r.reduces);
  uopset_free(&r.names);
  uopset_free(&r.ranges);
  uopset_free(&r.dep_memo);
  return r.buf;
}
