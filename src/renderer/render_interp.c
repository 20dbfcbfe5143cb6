/* The interpreter's renderer: the linear program written out as text, one instruction a
 * line, for the INTERP device (runtime/interp.c) to run as it is — the smallest backend,
 * and the reference for the others (like tinygrad's PYTHON device). Each line:
 *     op dtype lanes a0 a1 nsrc src...
 * op and dtype are the op table's and cg_dtype's numbers, lanes the vector width; a source is the number of an
 * earlier line; immediates (CONST, DEFINE_GLOBAL, DEFINE_VAR) get lines of their own at
 * the top (a line inside a loop that runs no trip is never executed). a0/a1: CONST value (an int, or a float in
 * C's %a form), DEFINE_GLOBAL slot, DEFINE_VAR slot (its value: the launch's vars[slot]),
 * RANGE [axis, kind], DEFINE_ACC number, GEP lane. */
#include "render.h"
#include "uop/uopset.h"
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

typedef struct {
  char *buf;
  size_t len, cap;
  int nlines;
  uopset at;   /* node -> line + 1 (latest) */
  bool nomem;  /* an allocation failed: the program is dropped at the end */
} out;

static void put(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out *o, const char *fmt, ...) {
  va_list ap;
  for (;;) {
    va_start(ap, fmt);
    int n = vsnprintf(o->buf ? o->buf + o->len : NULL, o->cap - o->len, fmt, ap); /* no NULL + 0 (UB) before the first grow */
    va_end(ap);
    if ((size_t)n < o->cap - o->len) {
      o->len += (size_t)n;
      return;
    }
    char *b = o->nomem ? NULL : ir_realloc(o->buf, (o->cap + (size_t)n) * 2);
    if (!b) {
      o->nomem = true;
      return;
    }
    o->buf = b, o->cap = (o->cap + (size_t)n) * 2;
  }
}

static int line_of(out *o, uop *u);

static void write_line(out *o, uop *u) {
  int s[16];
  CG_ASSERT(u->nsrc <= 16, "an instruction with %u sources", u->nsrc);
  for (uint32_t i = 0; i < u->nsrc; i++) s[i] = line_of(o, u->src[i]);
  put(o, "%d %d %d ", u->op, (int)u->dt.scalar, (int)(u->dt.count ? u->dt.count : 1));
  if (u->op == OP_CONST && dt_is_float(u->dt)) put(o, "%a 0", u->arg.f);
  else if (u->op == OP_CONST || u->op == OP_DEFINE_ACC || u->op == OP_GEP) put(o, "%" PRId64 " 0", u->arg.i);
  else if (u->op == OP_DEFINE_GLOBAL || u->op == OP_RANGE) put(o, "%" PRId64 " %" PRId64, u->arg.v[0], u->arg.v[1]);
  else if (u->op == OP_DEFINE_VAR) put(o, "%" PRId64 " 0", u->arg.n > 2 ? u->arg.v[2] : 0);
  else put(o, "0 0");
  put(o, " %u", u->nsrc);
  for (uint32_t i = 0; i < u->nsrc; i++) put(o, " %d", s[i]);
  put(o, "\n");
  if (!uopset_put(&o->at, u, (void *)(uintptr_t)++o->nlines)) o->nomem = true;
}

static int line_of(out *o, uop *u) {
  uintptr_t l = (uintptr_t)uopset_get(&o->at, u);
  if (!l && o->nomem) return 0; /* lost to out of memory: the program is dropped */
  if (!l) {
    CG_ASSERT(u->op == OP_CONST || u->op == OP_DEFINE_GLOBAL || u->op == OP_DEFINE_VAR, "a %s read before it was computed", op_name(u->op));
    write_line(o, u);
    l = (uintptr_t)uopset_get(&o->at, u);
  }
  return (int)l - 1;
}

static char *render_interp(const char *name, const linear *l) {
  out o = {0};
  put(&o, "cgrad-interp 1 %s %d %d %" PRId64 "\n", name, l->nbufs, l->nout, l->global);
  for (int i = 0; i < l->n; i++)
    for (uint32_t k = 0; k < l->ins[i]->nsrc; k++) {
      uop *x = l->ins[i]->src[k];
      if ((x->op == OP_CONST || x->op == OP_DEFINE_GLOBAL || x->op == OP_DEFINE_VAR) && !uopset_get(&o.at, x)) write_line(&o, x);
    }
  for (int i = 0; i < l->n; i++) write_line(&o, l->ins[i]);
  uopset_free(&o.at);
  if (o.nomem) { /* ir_* recorded CG_ERR_NOMEM */
    free(o.buf);
    return NULL;
  }
  return o.buf;
}

const renderer renderer_interp = {"interp", NULL, render_interp};

static const renderer *const renderers[] = {&renderer_c, &renderer_interp, &renderer_x86, &renderer_x86_tier};

const renderer *renderer_find(const char *name) {
  for (size_t i = 0; i < sizeof renderers / sizeof renderers[0]; i++)
    if (name && !strcmp(renderers[i]->name, name)) return renderers[i];
  return cg_fail_null(CG_ERR_INVALID, "no renderer '%s' (there are: c, interp, x86, x86+c)", name ? name : "(null)");
}
