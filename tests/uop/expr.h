/* A tiny infix reader for integer UOp expressions, shared by the symbolic tests:
 *   e := sum ;  sum := term (('+'|'-') term)* ;  term := unary (('*'|'/'|'%') unary)*
 *   unary := '-' unary | atom ;  atom := number | var | '(' e ')' | f '(' e, ... ')'
 *   f := max | min | lt | ne | eq | where ;  comparisons: a < b as lt(a, b); true, false
 * Variables a..z must be declared with expr_var before parsing. a - b reads as a + (-b). */
#ifndef CG_TEST_EXPR_H
#define CG_TEST_EXPR_H
#include "uop/uop.h"
#include <ctype.h>
#include <string.h>

static uop *expr_vars[26];
static void expr_var(char name, int64_t lo, int64_t hi) {
  char s[2] = {name, 0};
  expr_vars[name - 'a'] = uop_retain(uop_var(s, lo, hi));
}
static void expr_vars_free(void) {
  for (int i = 0; i < 26; i++) uop_release(expr_vars[i]), expr_vars[i] = NULL;
}

typedef struct { const char *p; int err; } expr_ps;
static uop *expr_sum(expr_ps *s);
static void expr_ws(expr_ps *s) { while (isspace((unsigned char)*s->p)) s->p++; }
static int expr_eat(expr_ps *s, char c) {
  expr_ws(s);
  if (*s->p == c) { s->p++; return 1; }
  return 0;
}
static uop *expr_atom(expr_ps *s) {
  expr_ws(s);
  if (expr_eat(s, '-')) { uop *a = expr_atom(s); return a ? uop_alu1(OP_NEG, a) : NULL; }
  if (expr_eat(s, '(')) { uop *e = expr_sum(s); if (!expr_eat(s, ')')) s->err = 1; return e; }
  if (isdigit((unsigned char)*s->p)) {
    char *end;
    long long v = strtoll(s->p, &end, 10);
    s->p = end;
    return uop_const_int(DT_I32, v);
  }
  if (!strncmp(s->p, "true", 4) || !strncmp(s->p, "false", 5)) {
    int t = *s->p == 't';
    s->p += t ? 4 : 5;
    return uop_const_int(DT_BOOL, t);
  }
  const char *fn[] = {"max", "min", "lt", "ne", "eq", "where"};
  for (int f = 0; f < 6; f++) {
    size_t n = strlen(fn[f]);
    if (!strncmp(s->p, fn[f], n) && s->p[n] == '(') {
      s->p += n + 1;
      uop *a[3] = {0};
      int na = f == 5 ? 3 : 2;
      for (int i = 0; i < na; i++) {
        a[i] = expr_sum(s);
        if (!a[i] || !expr_eat(s, i == na - 1 ? ')' : ',')) { s->err = 1; return NULL; }
      }
      switch (f) {
      case 0: return uop_alu(OP_MAX, a[0], a[1]);
      case 1: return uop_alu1(OP_NEG, uop_alu(OP_MAX, uop_alu1(OP_NEG, a[0]), uop_alu1(OP_NEG, a[1])));
      case 2: return uop_alu(OP_CMPLT, a[0], a[1]);
      case 3: return uop_alu(OP_CMPNE, a[0], a[1]);
      case 4: return uop_alu(OP_CMPEQ, a[0], a[1]);
      default: return uop_where(a[0], a[1], a[2]);
      }
    }
  }
  if (islower((unsigned char)*s->p) && !isalpha((unsigned char)s->p[1]) && expr_vars[*s->p - 'a']) return expr_vars[*s->p++ - 'a'];
  s->err = 1;
  return NULL;
}
static uop *expr_term(expr_ps *s) {
  uop *a = expr_atom(s);
  for (;;) {
    expr_ws(s);
    char c = *s->p;
    if (!a || (c != '*' && c != '/' && c != '%')) return a;
    s->p++;
    uop *b = expr_atom(s);
    if (!b) return NULL;
    a = uop_alu(c == '*' ? OP_MUL : c == '/' ? OP_IDIV : OP_MOD, a, b);
  }
}
static uop *expr_sum(expr_ps *s) {
  uop *a = expr_term(s);
  for (;;) {
    expr_ws(s);
    char c = *s->p;
    if (!a || (c != '+' && c != '-')) return a;
    s->p++;
    uop *b = expr_term(s);
    if (!b) return NULL;
    a = uop_alu(OP_ADD, a, c == '+' ? b : uop_alu1(OP_NEG, b));
  }
}
/* The expression, or NULL on a syntax error. Built in the current pool, not simplified. */
static uop *expr_parse(const char *text) {
  expr_ps s = {text, 0};
  uop *e = expr_sum(&s);
  expr_ws(&s);
  return s.err || *s.p ? NULL : e;
}
#endif
