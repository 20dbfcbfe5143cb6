/* The pattern language and the rewrite engine.
 *   - one table row per pattern feature: pattern, node, match or not, expected bindings
 *   - one table row per malformed pattern: the message rw_validate gives
 *   - engine: bottom-up fixpoint, memoization, NULL as a failing predicate, rule sets
 *     tried in order, dispatch on the root op.
 * Matching goes through the public engine: each row is a one-rule set whose function
 * records its bindings when it meets the row's node, and returns NULL (changes nothing).
 * Rule sets are static (the engine keeps their compiled form for the process's life). */
#include "check.h"
#include "uop/rewrite.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

/* CHECK without a message of its own */
#define EXPECT(cond) CHECK(cond, "%s", "")
#define I32 DT_I32
#define LEAKCHECK(base) CHECK(uop_live_count() == (base), "leak: %zu live, expected %zu", uop_live_count(), (size_t)(base))

static uop *ci(int64_t v) { return uop_const_int(I32, v); }

/* ---- matching, one row per feature ---------------------------------------------------- */

typedef struct {
  uop *target;
  int matched;
  int nnames;
  const char *names[RW_MAX_BINDS];
  uop *bind[RW_MAX_BINDS];
} rec_ctx;

static uop *record(rw_match *m) {
  rec_ctx *c = m->ctx;
  if (m->root != c->target) return NULL;
  c->matched++;
  c->nnames = m->nnames;
  for (int i = 0; i < m->nnames; i++) c->names[i] = m->names[i], c->bind[i] = m->bind[i];
  return NULL;
}

static const struct {
  const char *pattern, *node;
  int match;
  const char *binds; /* "name=node ..." in order of first appearance */
} match_cases[] = {
    /* names and wildcards */
    {"x", "add_ab", 1, "x=add_ab"},
    {"x", "c2", 1, "x=c2"},
    {"_", "add_ab", 1, ""},
    {"x_1", "a", 1, "x_1=a"},
    {"(ADD true1 inf2)", "add_ab", 1, "true1=a inf2=b"}, /* names that start like literals */
    {"(WHERE c true_v false_v)", "where", 1, "c=lt_a2 true_v=a false_v=b"},
    {"(ADD info x)", "add_a2", 1, "info=a x=c2"},
    /* literals: a CONST of that value, whatever its dtype; true/false only for bool */
    {"2", "c2", 1, ""},
    {"2", "l2", 1, ""},
    {"2", "f2", 1, ""},
    {"2", "c0", 0, ""},
    {"2", "a", 0, ""},
    {"-1", "cm1", 1, ""},
    {"-1", "c2", 0, ""},
    {"2.5", "f25", 1, ""},
    {"2", "f25", 0, ""},
    {"0", "f0", 1, ""},
    {"0", "c0", 1, ""},
    {"true", "t", 1, ""},
    {"true", "fl", 0, ""},
    {"false", "fl", 1, ""},
    {"false", "c0", 0, ""},
    {"true", "c1", 0, ""},
    /* ops, op sets, op groups */
    {"CONST", "c2", 1, ""},
    {"CONST", "a", 0, ""},
    {"DEFINE_VAR", "a", 1, ""},
    {"ADD", "add_ab", 1, ""},
    {"ADD", "mul_a2", 0, ""},
    {"ADD|MUL", "mul_a2", 1, ""},
    {"ADD|MUL", "add_ab", 1, ""},
    {"ADD|MUL", "div_a2", 0, ""},
    {"IDIV|MOD|MAX", "div_a2", 1, ""},
    {"@ALU", "add_ab", 1, ""},
    {"@ALU", "where", 1, ""},
    {"@ALU", "neg", 1, ""},
    {"@ALU", "a", 0, ""},
    {"@ALU", "c2", 0, ""},
    {"@UNARY", "neg", 1, ""},
    {"@UNARY", "add_ab", 0, ""},
    {"@BINARY", "lt_a2", 1, ""},
    {"@BINARY", "neg", 0, ""},
    {"@TERNARY", "where", 1, ""},
    {"@TERNARY", "add_ab", 0, ""},
    {"@MOVE", "resh", 1, ""},
    {"@MOVE", "buf", 0, ""},
    {"@MOVE|CONST", "c2", 1, ""},
    {"CONST|@UNARY", "neg", 1, ""},
    /* dtype classes and exact dtypes */
    {"CONST.int", "c2", 1, ""},
    {"CONST.int", "u2", 1, ""},
    {"CONST.int", "f25", 0, ""},
    {"CONST.int", "t", 0, ""},
    {"CONST.uint", "u2", 1, ""},
    {"CONST.uint", "c2", 0, ""},
    {"CONST.float", "f25", 1, ""},
    {"CONST.float", "c2", 0, ""},
    {"CONST.bool", "t", 1, ""},
    {"CONST.bool", "c0", 0, ""},
    {"CONST.int32", "c2", 1, ""},
    {"CONST.int32", "l2", 0, ""},
    {"CONST.int64", "l2", 1, ""},
    {"CONST.float32", "f25", 1, ""},
    {"CONST.float64", "f25", 0, ""},
    {"@ALU.bool", "lt_a2", 1, ""},
    {"@ALU.bool", "add_ab", 0, ""},
    {"ADD|MUL.int", "mul_a2", 1, ""},
    {"ADD|MUL.int", "fadd", 0, ""},
    {"c:CONST.int", "c2", 1, "c=c2"},
    /* sources */
    {"(ADD x y)", "add_ab", 1, "x=a y=b"},
    {"(ADD x y)", "add_ba", 1, "x=b y=a"},
    {"(ADD _ _)", "add_ab", 1, ""},
    {"(ADD x)", "add_ab", 0, ""},
    {"(ADD x y z)", "add_ab", 0, ""},
    {"(MUL x y)", "add_ab", 0, ""},
    {"  ( ADD   x\ty )  ", "add_ab", 1, "x=a y=b"},
    {"(ADD.float x y)", "fadd", 1, "x=f25 y=f0"},
    {"(ADD.float x y)", "add_ab", 0, ""},
    {"(ADD.int x y)", "add_ab", 1, "x=a y=b"},
    {"(ADD.int32 x 2.5)", "fadd", 0, ""},
    {"(ADD x 0)", "fadd", 1, "x=f25"},
    /* commutative ops match in both orders ... */
    {"(ADD x 2)", "add_a2", 1, "x=a"},
    {"(ADD x 2)", "add_2a", 1, "x=a"},
    {"(ADD 2 x)", "add_a2", 1, "x=a"},
    {"(MUL x 2)", "mul_2a", 1, "x=a"},
    {"(MUL 2 x)", "mul_a2", 1, "x=a"},
    {"(MAX x 2)", "max_2a", 1, "x=a"},
    {"(CMPNE x 2)", "ne_2a", 1, "x=a"},
    {"(ADD x:CONST y)", "add_a2", 1, "x=c2 y=a"}, /* the failed first order leaves no binding */
    /* ... the others only in the order written */
    {"(IDIV x 2)", "div_a2", 1, "x=a"},
    {"(IDIV 2 x)", "div_a2", 0, ""},
    {"(IDIV 2 x)", "div_2a", 1, "x=a"},
    {"(IDIV x 2)", "div_2a", 0, ""},
    {"(CMPLT x 2)", "lt_a2", 1, "x=a"},
    {"(CMPLT x 2)", "lt_2a", 0, ""},
    {"(CMPLT 2 x)", "lt_2a", 1, "x=a"},
    {"(CMPLT 2 x)", "lt_a2", 0, ""},
    {"(MOD x 2)", "mod_2a", 0, ""},
    /* a repeated name binds one node */
    {"(ADD x x)", "add_aa", 1, "x=a"},
    {"(ADD x x)", "add_ab", 0, ""},
    {"(IDIV (MUL x c:CONST) c)", "dm", 1, "x=a c=c2"},
    {"(IDIV (MUL x c:CONST) c)", "dm_comm", 1, "x=a c=c2"},
    {"(IDIV (MUL x c:CONST) c)", "dm_other", 0, ""},
    {"(WHERE (CMPLT x _) x y)", "where", 1, "x=a y=b"},
    {"(WHERE (CMPLT x _) y x)", "where", 0, ""},
    {"(WHERE c x x)", "where", 0, ""},
    {"(ADD (MUL x 2) x)", "amx", 1, "x=a"},
    {"(ADD (MUL x 2) x)", "axm", 1, "x=a"}, /* both levels commuted */
    {"(ADD (MUL x 2) y)", "amx", 1, "x=a y=a"},
    {"(ADD (MUL x 2) y)", "add_ab", 0, ""},
    /* any number of sources */
    {"(SINK x ...)", "sink3", 1, "x=a"},
    {"(SINK ...)", "sink3", 1, ""},
    {"(SINK ...)", "sink0", 1, ""},
    {"(SINK x y z ...)", "sink3", 1, "x=a y=b z=c2"},
    {"(SINK x y z)", "sink3", 1, "x=a y=b z=c2"},
    {"(SINK x)", "sink3", 0, ""},
    {"(SINK x y z w ...)", "sink3", 0, ""},
    {"(SINK)", "sink0", 1, ""},
    {"(SINK)", "sink3", 0, ""},
    {"(SINK x ...)", "sink0", 0, ""},
    {"(SINK CONST ...)", "sink3", 0, ""},
    {"(SINK DEFINE_VAR DEFINE_VAR 2 ...)", "sink3", 1, ""},
    /* name:pattern */
    {"n:(ADD x y)", "add_ab", 1, "n=add_ab x=a y=b"},
    {"c:2", "c2", 1, "c=c2"},
    {"c:2", "c0", 0, ""},
    {"(ADD x c:CONST.int)", "add_a2", 1, "x=a c=c2"},
    {"(ADD x c:CONST.int)", "add_ab", 0, ""},
    {"(WHERE b:(CMPLT x k:2) x _)", "where", 1, "b=lt_a2 x=a k=c2"},
};
enum { NMATCH = sizeof match_cases / sizeof match_cases[0] };
static rw_rule match_rules[NMATCH];
static rw_ruleset match_sets[NMATCH];

typedef struct {
  const char *name;
  uop *u;
} named;

static uop *lookup(named *nodes, int n, const char *name, int len) {
  for (int i = 0; i < n; i++)
    if ((int)strlen(nodes[i].name) == len && !strncmp(nodes[i].name, name, (size_t)len)) return nodes[i].u;
  return NULL;
}

static void test_match_table(void) {
  size_t base = uop_live_count();
  uop_pool_push();
  uop *a = uop_var("a", 0, 9), *b = uop_var("b", -5, 5), *c2 = ci(2), *buf;
  int64_t bufarg[2] = {0, 8}, shp[2] = {2, 4};
  buf = uop_new0(OP_BUFFER, DT_F32, arg_ints(bufarg, 2));
  uop *lt_a2 = uop_alu(OP_CMPLT, a, c2);
  named nodes[] = {
      {"a", a},
      {"b", b},
      {"c0", ci(0)},
      {"c1", ci(1)},
      {"c2", c2},
      {"cm1", ci(-1)},
      {"l2", uop_const_int(DT_I64, 2)},
      {"u2", uop_const_int(dt_of(CG_UINT32), 2)},
      {"f2", uop_const_float(DT_F32, 2.0)},
      {"f25", uop_const_float(DT_F32, 2.5)},
      {"f0", uop_const_float(DT_F32, 0.0)},
      {"t", uop_const_int(DT_BOOL, 1)},
      {"fl", uop_const_int(DT_BOOL, 0)},
      {"add_ab", uop_alu(OP_ADD, a, b)},
      {"add_ba", uop_alu(OP_ADD, b, a)},
      {"add_aa", uop_alu(OP_ADD, a, a)},
      {"add_a2", uop_alu(OP_ADD, a, c2)},
      {"add_2a", uop_alu(OP_ADD, c2, a)},
      {"mul_a2", uop_alu(OP_MUL, a, c2)},
      {"mul_2a", uop_alu(OP_MUL, c2, a)},
      {"max_2a", uop_alu(OP_MAX, c2, a)},
      {"ne_2a", uop_alu(OP_CMPNE, c2, a)},
      {"div_a2", uop_alu(OP_IDIV, a, c2)},
      {"div_2a", uop_alu(OP_IDIV, c2, a)},
      {"mod_2a", uop_alu(OP_MOD, c2, a)},
      {"lt_a2", lt_a2},
      {"lt_2a", uop_alu(OP_CMPLT, c2, a)},
      {"neg", uop_alu1(OP_NEG, a)},
      {"where", uop_where(lt_a2, a, b)},
      {"fadd", uop_alu(OP_ADD, uop_const_float(DT_F32, 2.5), uop_const_float(DT_F32, 0.0))},
      {"dm", uop_alu(OP_IDIV, uop_alu(OP_MUL, a, c2), c2)},
      {"dm_comm", uop_alu(OP_IDIV, uop_alu(OP_MUL, c2, a), c2)},
      {"dm_other", uop_alu(OP_IDIV, uop_alu(OP_MUL, a, c2), ci(3))},
      {"amx", uop_alu(OP_ADD, uop_alu(OP_MUL, a, c2), a)},
      {"axm", uop_alu(OP_ADD, a, uop_alu(OP_MUL, c2, a))},
      {"sink3", uop_new(OP_SINK, dt_void(), (uop *[]){a, b, c2}, 3, arg_none())},
      {"sink0", uop_new(OP_SINK, dt_void(), NULL, 0, arg_none())},
      {"buf", buf},
      {"resh", uop_new1(OP_RESHAPE, DT_F32, buf, arg_ints(shp, 2))},
  };
  int nnodes = (int)(sizeof nodes / sizeof nodes[0]);

  for (int i = 0; i < NMATCH; i++) {
    const char *pattern = match_cases[i].pattern;
    uop *node = lookup(nodes, nnodes, match_cases[i].node, (int)strlen(match_cases[i].node));
    CHECK(node, "row %d: no node named %s", i, match_cases[i].node);
    if (!node) continue;
    match_rules[i] = (rw_rule){pattern, record, "record"};
    match_sets[i] = (rw_ruleset){.name = "match", .rules = &match_rules[i], .nrules = 1};
    const char *err = rw_validate(&match_sets[i]);
    CHECK(!err, "row %d: \"%s\" does not parse: %s", i, pattern, err);
    if (err) continue;
    rec_ctx ctx = {.target = node};
    uop *out = graph_rewrite(node, &match_sets[i], &ctx);
    CHECK(out == node, "row %d: a rule returning NULL changed the graph", i);
    CHECK(ctx.matched == match_cases[i].match, "row %d: \"%s\" on %s: %s", i, pattern, match_cases[i].node,
          ctx.matched ? "matched, expected no match" : "no match, expected a match");
    if (!ctx.matched || !match_cases[i].match) continue;
    /* bindings, in order of first appearance */
    const char *p = match_cases[i].binds;
    int k = 0;
    while (*p) {
      while (*p == ' ') p++;
      const char *eq = strchr(p, '='), *end = eq + strcspn(eq, " ");
      uop *want = lookup(nodes, nnodes, eq + 1, (int)(end - eq - 1));
      int namelen = (int)(eq - p);
      bool ok = k < ctx.nnames && (int)strlen(ctx.names[k]) == namelen && !strncmp(ctx.names[k], p, (size_t)namelen) &&
                ctx.bind[k] == want && want;
      CHECK(ok, "row %d: \"%s\": binding %d (%.*s) wrong", i, pattern, k, (int)(end - p), p);
      k++;
      p = end;
    }
    CHECK(k == ctx.nnames, "row %d: \"%s\" bound %d names, expected %d", i, pattern, ctx.nnames, k);
  }
  uop_pool_pop();
  LEAKCHECK(base);
}

/* ---- malformed patterns ------------------------------------------------------------------- */

static uop *never(rw_match *m) { return NULL; }

static const struct {
  const char *pattern, *message;
} bad_cases[] = {
    {"(FOO x)", "unknown op"},
    {"FOO", "unknown op"},
    {"(ADD x y", "missing ')'"},
    {"(ADD (MUL x y) z", "missing ')'"},
    {"ADD.int33", "unknown dtype class"},
    {"(ADD.complex x y)", "unknown dtype class"},
    {"(ADD x y) z", "text after the pattern"},
    {"x y", "text after the pattern"},
    {"@NOPE", "unknown op group"},
    {"(SINK ... x)", "'...' must end the source list"},
    {"", "expected a pattern"},
    {"x:", "expected a pattern"},
    {"(ADD x ,)", "expected a pattern"},
    {"(SINK a b c d e f g h i j k l m)", "too many names"},
    {"(ADD x 2x)", "bad number"},
    {"(ADD x 2.int)", "bad number"},
};
enum { NBAD = sizeof bad_cases / sizeof bad_cases[0] };
static rw_rule bad_rules[NBAD][2];
static rw_ruleset bad_sets[NBAD];
static char bad_names[NBAD][16];

static const rw_rule good_rules[] = {RULE("(ADD x 0)", never), RULE("(IDIV (MUL x c:CONST) c)", never),
                                     RULE("(SINK x ...)", never)};
static RULESET(good_set, "good", good_rules);

static void test_validate(void) {
  CHECK(!rw_validate(&good_set), "%s", rw_validate(&good_set));
  for (int i = 0; i < NBAD; i++) {
    snprintf(bad_names[i], sizeof bad_names[i], "bad%d", i);
    bad_rules[i][0] = (rw_rule){"(ADD x 0)", never, "never"};
    bad_rules[i][1] = (rw_rule){bad_cases[i].pattern, never, "never"};
    bad_sets[i] = (rw_ruleset){.name = bad_names[i], .rules = bad_rules[i], .nrules = 2};
  }
  for (int i = 0; i < NBAD; i++) {
    const char *msg = rw_validate(&bad_sets[i]);
    CHECK(msg && strstr(msg, bad_cases[i].message), "\"%s\": message \"%s\", expected one with \"%s\"",
          bad_cases[i].pattern, msg ? msg : "(none)", bad_cases[i].message);
    /* the message names the rule set, the rule and its text */
    char where[64];
    snprintf(where, sizeof where, "rule set %s, rule 1 ", bad_names[i]);
    CHECK(msg && strstr(msg, where) && strstr(msg, bad_cases[i].pattern), "\"%s\": message \"%s\" does not say where",
          bad_cases[i].pattern, msg ? msg : "(none)");
  }
  /* each set keeps its own message */
  for (int i = 0; i < NBAD; i++) {
    const char *msg = rw_validate(&bad_sets[i]);
    CHECK(msg && strstr(msg, bad_cases[i].message) && strstr(msg, bad_names[i]),
          "asked again, set %s says \"%s\"", bad_names[i], msg ? msg : "(none)");
  }
}

/* ---- the engine ------------------------------------------------------------------------- */

typedef struct {
  int calls;
} counter;

static uop *ident(rw_match *m) { return B(x); }
static uop *double_to_mul(rw_match *m) { return uop_alu(OP_MUL, B(x), uop_const_like(B(x), 2)); }
static uop *max_self(rw_match *m) { /* output with structure the other rules still rewrite */
  return uop_alu(OP_ADD, uop_alu(OP_MUL, B(x), uop_const_like(B(x), 1)), uop_const_like(B(x), 0));
}
static uop *fold_add_chain(rw_match *m) {
  return uop_alu(OP_ADD, B(x), uop_const_int(B(x)->dt, uop_const_ivalue(B(c1)) + uop_const_ivalue(B(c2))));
}
static const rw_rule fix_rules[] = {
    RULE("(MUL x 1)", ident),
    RULE("(ADD x 0)", ident),
    RULE("(ADD x x)", double_to_mul),
    RULE("(MAX x x)", max_self),
    RULE("(ADD (ADD x c1:CONST) c2:CONST)", fold_add_chain),
};
static RULESET(rs_fix, "fix", fix_rules);

static void test_fixpoint(void) {
  size_t base = uop_live_count();
  uop_pool_push();
  uop *a = uop_var("a", 0, 9), *b = uop_var("b", 0, 9);
  CHECK(!rw_validate(&rs_fix), "%s", rw_validate(&rs_fix));
  /* a rewrite below enables a rule above: MUL(a,1) -> a makes ADD(a, a) */
  uop *g1 = uop_alu(OP_ADD, uop_alu(OP_MUL, a, ci(1)), a);
  EXPECT(graph_rewrite(g1, &rs_fix, NULL) == uop_alu(OP_MUL, a, ci(2)));
  /* a rule's output is itself rewritten */
  EXPECT(graph_rewrite(uop_alu(OP_MAX, a, a), &rs_fix, NULL) == a);
  /* ... and then enables the rule above it */
  uop *g3 = uop_alu(OP_ADD, uop_alu(OP_MAX, uop_alu(OP_MUL, b, ci(1)), b), uop_alu(OP_ADD, b, ci(0)));
  EXPECT(graph_rewrite(g3, &rs_fix, NULL) == uop_alu(OP_MUL, b, ci(2)));
  /* a deep chain folds in one pass: (((a+1)+1)...+1) -> a+N */
  enum { N = 5000 };
  uop *chain = a;
  for (int i = 0; i < N; i++) chain = uop_alu(OP_ADD, chain, ci(1));
  uop *folded = graph_rewrite(chain, &rs_fix, NULL);
  CHECK(folded == uop_alu(OP_ADD, a, ci(N)), "chain gave %s %lld", op_name(folded->op),
        (long long)(folded->nsrc == 2 ? uop_const_ivalue(folded->src[1]) : -1));
  /* the result is a fixpoint; a graph no rule touches comes back as itself */
  EXPECT(graph_rewrite(folded, &rs_fix, NULL) == folded);
  uop *plain = uop_alu(OP_IDIV, uop_alu(OP_ADD, a, b), ci(3));
  EXPECT(graph_rewrite(plain, &rs_fix, NULL) == plain);
  uop_pool_pop();
  LEAKCHECK(base);

  /* the result belongs to the caller's pool; nodes made on the way are gone after it */
  uop_pool_push();
  size_t before = uop_live_count();
  a = uop_var("a", 0, 9);
  uop *r = graph_rewrite(uop_alu(OP_MAX, a, a), &rs_fix, NULL); /* makes MUL, ADD, CONSTs */
  EXPECT(r == a);
  CHECK(uop_live_count() == before + 2, "%zu nodes left after the rewrite, expected MAX and a",
        uop_live_count() - before);
  uop_pool_pop();
  LEAKCHECK(base);
}

static uop *count_ident(rw_match *m) {
  ((counter *)m->ctx)->calls++;
  return B(x);
}
static uop *count_only(rw_match *m) {
  ((counter *)m->ctx)->calls++;
  return NULL;
}
static const rw_rule memo_rules[] = {RULE("(MUL x 1)", count_ident)};
static RULESET(rs_memo, "memo", memo_rules);
static const rw_rule count_rules[] = {RULE("(ADD x y)", count_only)};
static RULESET(rs_count, "count", count_rules);

static void test_memo(void) {
  size_t base = uop_live_count();
  uop_pool_push();
  uop *a = uop_var("a", 0, 9), *b = uop_var("b", 0, 9);
  /* a shared subgraph is rewritten once */
  uop *s = uop_alu(OP_ADD, uop_alu(OP_MUL, a, ci(1)), b);
  uop *root = uop_new(OP_SINK, dt_void(),
                      (uop *[]){uop_alu(OP_ADD, s, ci(1)), uop_alu(OP_MUL, s, ci(2)), s, uop_alu(OP_MAX, s, s)}, 4,
                      arg_none());
  counter cnt = {0};
  uop *out = graph_rewrite(root, &rs_memo, &cnt);
  CHECK(cnt.calls == 1, "rule called %d times on one shared node", cnt.calls);
  uop *s2 = uop_alu(OP_ADD, a, b);
  EXPECT(out->src[0]->src[0] == s2 && out->src[1]->src[0] == s2 && out->src[2] == s2 && out->src[3]->src[1] == s2);

  /* 2^60 paths, 122 nodes: every node is visited once */
  uop *d = a;
  for (int i = 0; i < 60; i++) d = uop_alu(OP_ADD, uop_alu(OP_MUL, d, ci(1)), uop_alu(OP_MUL, d, ci(1)));
  cnt.calls = 0;
  rw_stats st0 = rw_get_stats();
  out = graph_rewrite(d, &rs_memo, &cnt);
  rw_stats st1 = rw_get_stats();
  CHECK(cnt.calls == 60, "rule called %d times, expected once per level", cnt.calls);
  CHECK(st1.visited - st0.visited == uop_dag_size(d), "visited %llu nodes of a %zu-node DAG",
        (unsigned long long)(st1.visited - st0.visited), uop_dag_size(d));
  CHECK(st1.fired - st0.fired == 60, "fired %llu", (unsigned long long)(st1.fired - st0.fired));
  CHECK(uop_dag_size(out) == 61, "result has %zu nodes", uop_dag_size(out));

  /* a rule that never fires: each node once, the rule once per ADD */
  cnt.calls = 0;
  st0 = rw_get_stats();
  EXPECT(graph_rewrite(d, &rs_count, &cnt) == d);
  st1 = rw_get_stats();
  CHECK(cnt.calls == 60 && st1.visited - st0.visited == uop_dag_size(d) && st1.fired == st0.fired,
        "calls %d visited %llu", cnt.calls, (unsigned long long)(st1.visited - st0.visited));
  uop_pool_pop();
  LEAKCHECK(base);
}

/* Rules tried in order; NULL (or the node itself) means "did not apply", try the next. */
static uop *only_if_zero(rw_match *m) { return uop_is_const(B(y)) && uop_const_value(B(y)) == 0 ? B(x) : NULL; }
static uop *add_to_max(rw_match *m) { return uop_alu(OP_MAX, B(x), B(y)); }
static uop *add_to_mul(rw_match *m) { return uop_alu(OP_MUL, B(x), B(y)); }
static uop *same_node(rw_match *m) {
  ((counter *)m->ctx)->calls++;
  return m->root;
}
static uop *mul_to_xor(rw_match *m) { return uop_alu(OP_XOR, B(x), B(y)); }
static const rw_rule pred_rules[] = {
    RULE("(ADD x y)", only_if_zero),
    RULE("(ADD x y)", add_to_max),
    RULE("(MUL x y)", same_node),
    RULE("(MUL x y)", mul_to_xor),
};
static RULESET(rs_pred, "pred", pred_rules);

static void test_predicates(void) {
  size_t base = uop_live_count();
  uop_pool_push();
  uop *a = uop_var("a", 0, 9), *b = uop_var("b", 0, 9);
  counter cnt = {0};
  EXPECT(graph_rewrite(uop_alu(OP_ADD, a, ci(0)), &rs_pred, &cnt) == a);
  EXPECT(graph_rewrite(uop_alu(OP_ADD, a, b), &rs_pred, &cnt) == uop_alu(OP_MAX, a, b));
  rw_stats st0 = rw_get_stats();
  EXPECT(graph_rewrite(uop_alu(OP_MUL, a, b), &rs_pred, &cnt) == uop_alu(OP_XOR, a, b));
  rw_stats st1 = rw_get_stats();
  CHECK(cnt.calls == 1 && st1.fired - st0.fired == 1, "returning the node itself is not a change (calls %d, fired %llu)",
        cnt.calls, (unsigned long long)(st1.fired - st0.fired));
  uop_pool_pop();
  LEAKCHECK(base);
}

static const rw_rule set_a_rules[] = {RULE("(ADD x y)", add_to_max)};
static const rw_rule set_b_rules[] = {RULE("(ADD x y)", add_to_mul), RULE("(MUL x 1)", ident)};
static RULESET(rs_a, "A", set_a_rules);
static RULESET(rs_b, "B", set_b_rules);

static void test_many(void) {
  size_t base = uop_live_count();
  uop_pool_push();
  uop *a = uop_var("a", 0, 9), *b = uop_var("b", 0, 9);
  rw_ruleset *ab[2] = {&rs_a, &rs_b}, *ba[2] = {&rs_b, &rs_a};
  uop *g = uop_alu(OP_ADD, a, b);
  EXPECT(graph_rewrite_many(g, ab, 2, NULL) == uop_alu(OP_MAX, a, b));
  EXPECT(graph_rewrite_many(g, ba, 2, NULL) == uop_alu(OP_MUL, a, b));
  /* both sets apply at every node */
  uop *h = uop_alu(OP_ADD, uop_alu(OP_MUL, a, ci(1)), b);
  EXPECT(graph_rewrite_many(h, ab, 2, NULL) == uop_alu(OP_MAX, a, b));
  EXPECT(graph_rewrite(h, &rs_a, NULL) == uop_alu(OP_MAX, uop_alu(OP_MUL, a, ci(1)), b));
  EXPECT(graph_rewrite_many(h, ab, 1, NULL) == graph_rewrite(h, &rs_a, NULL));
  uop_pool_pop();
  LEAKCHECK(base);
}

/* ---- dispatch on the root op ------------------------------------------------------------- */

enum { NBIG = 500 };
static char big_patterns[NBIG][40];
static rw_rule big_rules[NBIG];
static rw_ruleset big_set;
static const rw_rule any_rules[] = {RULE("x", count_only), RULE("ADD|MUL", count_only)};
static RULESET(rs_any, "any", any_rules);

static void test_dispatch(void) {
  size_t base = uop_live_count();
  /* 500 rules: every 50th on ADD (10 of them), the rest spread over other ops */
  static const int others[] = {OP_MUL, OP_IDIV, OP_MOD, OP_MAX, OP_CMPLT, OP_CMPNE, OP_XOR, OP_OR, OP_AND, OP_SHL, OP_SHR};
  for (int i = 0; i < NBIG; i++) {
    int op = i % 50 == 0 ? OP_ADD : others[i % 11];
    snprintf(big_patterns[i], sizeof big_patterns[i], "(%s x %d)", op_name(op), i);
    big_rules[i] = (rw_rule){big_patterns[i], count_only, "count_only"};
  }
  big_set = (rw_ruleset){.name = "big", .rules = big_rules, .nrules = NBIG};
  CHECK(!rw_validate(&big_set), "%s", rw_validate(&big_set));

  uop_pool_push();
  uop *a = uop_var("a", 0, 9), *b = uop_var("b", 0, 9);
  counter cnt = {0};
  rw_stats st0 = rw_get_stats();
  graph_rewrite(uop_alu(OP_ADD, a, b), &big_set, &cnt);
  rw_stats st1 = rw_get_stats();
  CHECK(st1.tried - st0.tried == 10, "tried %llu rules on ADD(a, b), expected the 10 ADD rules",
        (unsigned long long)(st1.tried - st0.tried));
  CHECK(cnt.calls == 0, "%d", cnt.calls);
  /* ADD(a, 250): one of the ADD rules matches and its function runs */
  st0 = rw_get_stats();
  graph_rewrite(uop_alu(OP_ADD, a, ci(250)), &big_set, &cnt);
  st1 = rw_get_stats();
  CHECK(st1.tried - st0.tried == 10 && cnt.calls == 1, "tried %llu, calls %d",
        (unsigned long long)(st1.tried - st0.tried), cnt.calls);
  /* 100 nested ADDs: 1000 tries, not 50000 */
  uop *chain = a;
  for (int i = 0; i < 100; i++) chain = uop_alu(OP_ADD, chain, b);
  st0 = rw_get_stats();
  graph_rewrite(chain, &big_set, &cnt);
  st1 = rw_get_stats();
  CHECK(st1.tried - st0.tried == 1000, "tried %llu", (unsigned long long)(st1.tried - st0.tried));
  /* ops no rule names meet no rule */
  st0 = rw_get_stats();
  graph_rewrite(uop_where(uop_alu(OP_CMPEQ, a, b), a, b), &big_set, &cnt);
  st1 = rw_get_stats();
  CHECK(st1.tried - st0.tried == 0, "tried %llu", (unsigned long long)(st1.tried - st0.tried));
  /* a bare name meets every node; an op set each of its ops */
  cnt.calls = 0;
  st0 = rw_get_stats();
  graph_rewrite(uop_alu(OP_MUL, uop_alu(OP_ADD, a, b), b), &rs_any, &cnt);
  st1 = rw_get_stats();
  CHECK(st1.tried - st0.tried == 6 && cnt.calls == 6, "tried %llu, calls %d (4 nodes for x, ADD and MUL for ADD|MUL)",
        (unsigned long long)(st1.tried - st0.tried), cnt.calls);
  uop_pool_pop();
  LEAKCHECK(base);
}

int main(void) {
  test_match_table();
  test_validate();
  test_fixpoint();
  test_memo();
  test_predicates();
  test_many();
  test_dispatch();
  CHECK(uop_live_count() == 0, "%zu nodes live at exit", uop_live_count());
  return test_summary();
}
