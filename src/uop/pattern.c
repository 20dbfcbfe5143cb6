/* Parsing and matching the pattern language of rewrite.h. A compiled pattern is a small
 * tree of `pat` nodes allocated with the rule set and kept for the process's life. */
#include "pattern.h"
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { DTC_ANY, DTC_INT, DTC_UINT, DTC_FLOAT, DTC_BOOL, DTC_EXACT };

typedef struct parser {
  const char *s, *p;
  const char *err;
  const char **names;
  int *nnames;
} parser;

static void skip(parser *ps) { while (isspace((unsigned char)*ps->p)) ps->p++; }
static int ident_len(const char *p) {
  int n = 0;
  while (isalnum((unsigned char)p[n]) || p[n] == '_') n++;
  return n;
}

/* Whether p starts with the whole word w (so "true" is a literal but "true1" a name). */
static bool is_word(const char *p, const char *w) { return ident_len(p) == (int)strlen(w) && !strncmp(p, w, strlen(w)); }

static pat *pat_alloc(parser *ps) {
  pat *p = ir_calloc(1, sizeof *p);
  if (!p) {
    ps->err = "out of memory";
    return NULL;
  }
  p->bind = -1;
  p->nsrc = -1;
  memset(p->ops, 0xff, sizeof p->ops);
  return p;
}

/* Free a pattern that failed to parse, with its sources (the first n of srcs when it is
 * still being built). */
void pat_free(pat *p) {
  if (!p) return;
  for (int i = 0; i < p->nsrc; i++) pat_free(p->src[i]);
  free(p->src);
  free(p);
}
static pat *parse_fail(pat *r, pat **srcs, int n) {
  for (int i = 0; i < n; i++) pat_free(srcs[i]);
  pat_free(r);
  return NULL;
}

static int name_slot(parser *ps, const char *s, int n) {
  for (int i = 0; i < *ps->nnames; i++)
    if ((int)strlen(ps->names[i]) == n && !strncmp(ps->names[i], s, (size_t)n)) return i;
  if (*ps->nnames == RW_MAX_BINDS) { ps->err = "too many names"; return -1; }
  char *copy = ir_malloc((size_t)n + 1);
  if (!copy) { ps->err = "out of memory"; return -1; }
  memcpy(copy, s, (size_t)n);
  copy[n] = 0;
  ps->names[*ps->nnames] = copy;
  return (*ps->nnames)++;
}

static void set_op(pat *p, int op) { p->ops[op / 64] |= 1ull << (op % 64); }

static bool parse_head(parser *ps, pat *p) {
  memset(p->ops, 0, sizeof p->ops);
  for (;;) {
    int n = ident_len(ps->p + (*ps->p == '@'));
    if (*ps->p == '@') {
      const char *g = ps->p + 1;
      int found = 0;
      for (int op = 0; op < OP_COUNT; op++) {
        int grp = uop_table[op].group;
        bool in = (n == 3 && !strncmp(g, "ALU", 3) && op_is_alu(op)) ||
                  (n == 5 && !strncmp(g, "UNARY", 5) && grp == G_UNARY) ||
                  (n == 6 && !strncmp(g, "BINARY", 6) && grp == G_BINARY) ||
                  (n == 7 && !strncmp(g, "TERNARY", 7) && grp == G_TERNARY) ||
                  (n == 4 && !strncmp(g, "MOVE", 4) && grp == G_MOVE);
        if (in) set_op(p, op), found = 1;
      }
      if (!found) { ps->err = "unknown op group"; return false; }
      ps->p += n + 1;
    } else if (*ps->p == '*') {
      memset(p->ops, 0xff, sizeof p->ops);
      ps->p++;
    } else {
      int op = 0;
      while (op < OP_COUNT && !((int)strlen(op_name(op)) == n && !strncmp(op_name(op), ps->p, (size_t)n))) op++;
      if (op == OP_COUNT || n == 0) { ps->err = "unknown op"; return false; }
      set_op(p, op);
      ps->p += n;
    }
    if (*ps->p != '|') break;
    ps->p++;
  }
  if (*ps->p == '.') {
    ps->p++;
    int n = ident_len(ps->p);
    if (n == 3 && !strncmp(ps->p, "int", 3)) p->dtc = DTC_INT;
    else if (n == 4 && !strncmp(ps->p, "uint", 4)) p->dtc = DTC_UINT;
    else if (n == 5 && !strncmp(ps->p, "float", 5)) p->dtc = DTC_FLOAT;
    else if (n == 4 && !strncmp(ps->p, "bool", 4)) p->dtc = DTC_BOOL;
    else if (dt_parse(ps->p, n, &p->exact)) p->dtc = DTC_EXACT;
    else { ps->err = "unknown dtype class"; return false; }
    ps->p += n;
  }
  return true;
}

static pat *parse_pat(parser *ps);

static pat *parse_term(parser *ps) {
  skip(ps);
  const char *p = ps->p;
  if (*p == '(') {
    ps->p++;
    skip(ps);
    pat *r = pat_alloc(ps);
    if (!r || !parse_head(ps, r)) return parse_fail(r, NULL, 0);
    pat *srcs[16];
    int n = 0;
    for (;;) {
      skip(ps);
      if (*ps->p == ')') { ps->p++; break; }
      if (!strncmp(ps->p, "...", 3)) {
        ps->p += 3;
        r->ellipsis = true;
        skip(ps);
        if (*ps->p != ')') { ps->err = "'...' must end the source list"; return parse_fail(r, srcs, n); }
        continue;
      }
      if (!*ps->p) { ps->err = "missing ')'"; return parse_fail(r, srcs, n); }
      if (n == 16) { ps->err = "too many sources"; return parse_fail(r, srcs, n); }
      if (!(srcs[n] = parse_pat(ps))) return parse_fail(r, srcs, n);
      n++;
    }
    r->src = ir_malloc(sizeof(pat *) * (size_t)(n ? n : 1));
    if (!r->src) { ps->err = "out of memory"; return parse_fail(r, srcs, n); }
    r->nsrc = n;
    memcpy(r->src, srcs, sizeof(pat *) * (size_t)n);
    return r;
  }
  if (isdigit((unsigned char)*p) || (*p == '-' && (isdigit((unsigned char)p[1]) || is_word(p + 1, "inf"))) ||
      is_word(p, "true") || is_word(p, "false") || is_word(p, "inf")) {
    pat *r = pat_alloc(ps);
    if (!r) return NULL;
    memset(r->ops, 0, sizeof r->ops);
    set_op(r, OP_CONST);
    r->has_value = true;
    if (!strncmp(p, "true", 4)) r->value = 1, ps->p += 4, r->dtc = DTC_BOOL;
    else if (!strncmp(p, "false", 5)) r->value = 0, ps->p += 5, r->dtc = DTC_BOOL;
    else {
      char *end;
      r->value = strtod(p, &end);
      ps->p = end;
      if (isalnum((unsigned char)*end) || *end == '_') { ps->err = "bad number"; return parse_fail(r, NULL, 0); }
    }
    return r;
  }
  if (*p == '_' && !isalnum((unsigned char)p[1])) {
    ps->p++;
    return pat_alloc(ps);
  }
  if (isupper((unsigned char)*p) || *p == '@' || *p == '*') {
    pat *r = pat_alloc(ps);
    return r && parse_head(ps, r) ? r : parse_fail(r, NULL, 0);
  }
  ps->err = "expected a pattern";
  return NULL;
}

static pat *parse_pat(parser *ps) {
  skip(ps);
  int n = ident_len(ps->p);
  if (n && islower((unsigned char)*ps->p) && !is_word(ps->p, "true") && !is_word(ps->p, "false") && !is_word(ps->p, "inf")) {
    const char *name = ps->p;
    ps->p += n;
    int slot = name_slot(ps, name, n);
    if (slot < 0) return NULL;
    pat *r;
    if (*ps->p == ':') {
      ps->p++;
      r = parse_term(ps);
      if (!r) return NULL;
    } else {
      r = pat_alloc(ps);
      if (!r) return NULL;
    }
    r->bind = slot;
    return r;
  }
  return parse_term(ps);
}

pat *pat_parse(const char *s, const char **names, int *nnames, const char **err) {
  parser ps = {s, s, NULL, names, nnames};
  pat *r = parse_pat(&ps);
  skip(&ps);
  if (r && *ps.p) ps.err = "text after the pattern", r = parse_fail(r, NULL, 0);
  *err = ps.err;
  return r;
}

bool pat_root_ops(const pat *p, int op) { return (p->ops[op / 64] >> (op % 64)) & 1; }

static bool dtype_ok(const pat *p, dtype d) {
  switch (p->dtc) {
  case DTC_INT: return dt_is_int(d) && !d.addr;
  case DTC_UINT: return dt_is_unsigned(d) && !d.addr;
  case DTC_FLOAT: return dt_is_float(d) && !d.addr;
  case DTC_BOOL: return dt_is_bool(d) && !d.addr;
  case DTC_EXACT: return dt_eq(dt_scalar_of(d), p->exact);
  default: return true;
  }
}

bool pat_match(const pat *p, uop *u, uop **bind) {
  if (!pat_root_ops(p, u->op) || !dtype_ok(p, u->dt)) return false;
  if (p->has_value && uop_const_value(u) != p->value) return false;
  if (p->bind >= 0) {
    if (bind[p->bind] && bind[p->bind] != u) return false;
  }
  if (p->nsrc >= 0) {
    int n = (int)u->nsrc;
    if (p->ellipsis ? n < p->nsrc : n != p->nsrc) return false;
    uop *saved[RW_MAX_BINDS];
    memcpy(saved, bind, sizeof saved);
    bool ok = true;
    for (int i = 0; i < p->nsrc && ok; i++) ok = pat_match(p->src[i], u->src[i], bind);
    if (!ok && p->nsrc == 2 && n == 2 && op_has(u->op, F_COMM)) {
      memcpy(bind, saved, sizeof saved);
      ok = pat_match(p->src[0], u->src[1], bind) && pat_match(p->src[1], u->src[0], bind);
    }
    if (!ok) {
      memcpy(bind, saved, sizeof saved);
      return false;
    }
  }
  if (p->bind >= 0) bind[p->bind] = u;
  return true;
}
