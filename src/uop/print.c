/* Printing UOps for people: an indented tree where a node used more than once is shown
 * in full the first time (`n3 = ...`) and afterwards referred to as `^n3`. */
#include "uop.h"
#include "uopset.h"
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static void print_arg(FILE *f, const uop *u) {
  const uarg *a = &u->arg;
  switch (a->kind) {
  case ARG_INT:
    if (u->op == OP_CONST && dt_is_bool(u->dt)) fprintf(f, " %s", a->i ? "true" : "false");
    else fprintf(f, " %" PRId64, a->i);
    break;
  case ARG_FLOAT: fprintf(f, " %.9g", a->f); break;
  case ARG_STR: fprintf(f, " \"%s\"", a->s); break;
  case ARG_VAR:
    if (dt_is_float(u->dt)) fprintf(f, " %s", a->s); /* a float var has no bounds */
    else fprintf(f, " %s[%" PRId64 "..%" PRId64 "]", a->s, a->v[0], a->v[1]);
    if (a->n > 2) fprintf(f, a->v[2] < 0 ? " #%" PRId64 : " slot %" PRId64, a->v[2] < 0 ? -a->v[2] : a->v[2]);
    break;
  case ARG_INTS:
    fputs(" (", f);
    for (int i = 0; i < a->n; i++) {
      if (i == 0 && u->op == OP_REDUCE) fprintf(f, "%s", op_name((int)a->v[0]));
      else fprintf(f, i ? ", %" PRId64 : "%" PRId64, a->v[i]);
      if (i == 0 && u->op == OP_REDUCE && a->n > 1) fputs(", axes", f);
    }
    fputs(")", f);
    break;
  default: break;
  }
}

void uop_print_node(FILE *f, const uop *u) {
  fprintf(f, "%s %s", op_name(u->op), dt_name(u->dt));
  print_arg(f, u);
  if (u->ndim > 0 && u->op != OP_BUFFER && u->op != OP_RESHAPE && u->op != OP_EXPAND) {
    fputs(" shape=(", f);
    for (int i = 0; i < u->ndim; i++) fprintf(f, i ? ",%" PRId64 : "%" PRId64, u->shape[i]);
    fputs(")", f);
  }
}

static void count_uses(uopset *uses, uop *u) {
  uintptr_t n = (uintptr_t)uopset_get(uses, u);
  uopset_put(uses, u, (void *)(n + 1));
  if (n) return;
  for (uint32_t i = 0; i < u->nsrc; i++) count_uses(uses, u->src[i]);
}

static void print_tree(FILE *f, uop *u, int depth, uopset *uses, uopset *names, int *next) {
  fprintf(f, "%*s", depth * 2, "");
  intptr_t name = (intptr_t)uopset_get(names, u);
  if (name) {
    fprintf(f, "^n%d\n", (int)name - 1);
    return;
  }
  if ((uintptr_t)uopset_get(uses, u) > 1) {
    uopset_put(names, u, (void *)(intptr_t)(++*next));
    fprintf(f, "n%d = ", *next - 1);
  }
  uop_print_node(f, u);
  fputc('\n', f);
  for (uint32_t i = 0; i < u->nsrc; i++) print_tree(f, u->src[i], depth + 1, uses, names, next);
}

void uop_print(FILE *f, uop *u) {
  uopset uses = {0}, names = {0};
  int next = 0;
  count_uses(&uses, u);
  print_tree(f, u, 0, &uses, &names, &next);
  uopset_free(&uses);
  uopset_free(&names);
}

char *uop_to_string(uop *u) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) return NULL;
  uop_print(f, u);
  fclose(f);
  return buf;
}
