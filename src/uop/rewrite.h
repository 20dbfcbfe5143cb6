/* The rewrite engine: named rule sets of one-line patterns, each with a C function that
 * builds the replacement (or returns NULL when its condition does not hold).
 *
 * Pattern language (parsed once, the first time a rule set is used):
 *   x              any node, bound to the name x (a name used twice must bind one node)
 *   _              any node, unbound
 *   0  -1  2.5     a CONST with that value (int or float); true / false for bool
 *   CONST          a node with that op (sources not looked at)
 *   ADD|MUL        one of several ops;  @ALU @UNARY @BINARY @TERNARY @MOVE are op groups
 *   ADD.int        ... whose dtype is of a class: .int .uint .float .bool, or a dtype name
 *   (ADD x y)      an op with exactly these sources; commutative ops match either order
 *   (SINK x ...)   '...' at the end allows any number of further sources
 *   c:CONST        name:pattern binds what the pattern matched
 * Example: RULE("(IDIV (MUL x c:CONST) c)", fold_mul_div) */
#ifndef CG_UOP_REWRITE_H
#define CG_UOP_REWRITE_H
#include "uop.h"

#define RW_MAX_BINDS 12

typedef struct rw_match {
  uop *root;                  /* the node the pattern matched */
  uop *bind[RW_MAX_BINDS];    /* bound nodes, in the order names first appear */
  const char *const *names;   /* the rule's names, same order */
  int nnames;
  void *ctx;                  /* the pass's context, given to graph_rewrite */
} rw_match;

typedef uop *(*rw_fn)(rw_match *m);

typedef struct {
  const char *pattern;
  rw_fn fn;
  const char *fn_name;
} rw_rule;
#define RULE(pattern, fn) {pattern, fn, #fn}

typedef struct rw_compiled rw_compiled;
typedef struct {
  const char *name;
  const rw_rule *rules;
  int nrules;
  bool no_grow;           /* refuse a rewrite whose result is larger (as a tree) */
  rw_compiled *compiled;  /* built on first use */
} rw_ruleset;
#define RULESET(var, name, rules) rw_ruleset var = {name, rules, (int)(sizeof(rules) / sizeof((rules)[0])), false, NULL}
/* A rule set whose rewrites never make a graph larger (the simplifier's promise). */
#define RULESET_NO_GROW(var, name, rules) rw_ruleset var = {name, rules, (int)(sizeof(rules) / sizeof((rules)[0])), true, NULL}

/* The node bound to `name` in a match (CG_ASSERT if the pattern has no such name). */
uop *rw_bind(const rw_match *m, const char *name);
#define B(name) rw_bind(m, #name)

/* Apply a rule set bottom-up until no rule fires anywhere; memoized per node. Returns
 * the rewritten root, owned by the current pool. */
uop *graph_rewrite(uop *root, rw_ruleset *rs, void *ctx);
/* Apply several rule sets as one (tried in order at each node). */
uop *graph_rewrite_many(uop *root, rw_ruleset **sets, int nsets, void *ctx);

/* Check that every pattern of a rule set parses; returns NULL or a message naming the
 * bad rule. (Parsing errors are bugs; tests call this on every rule set.) */
const char *rw_validate(rw_ruleset *rs);

/* Counters for benchmarks: nodes visited and rules fired since start. */
typedef struct { uint64_t visited, fired, tried; } rw_stats;
rw_stats rw_get_stats(void);

#endif
