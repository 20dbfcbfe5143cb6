/* graph_rewrite: apply rule sets bottom-up to a fixpoint.
 *
 *   rewrite(n):  sources first (memoized) -> rebuild n if a source changed ->
 *                try the rules for n's op, in order; when one fires, rewrite its result
 *                (it may hold new, unrewritten structure) and stop; memoize.
 *
 * Rules are compiled on first use into one list per root op, so a node only meets the
 * rules that can match it. DEBUG>=5 prints every rule that fires. */
#include "rewrite.h"
#include "core/config.h"
#include "pattern.h"
#include "uopset.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  pat *p;
  const char *names[RW_MAX_BINDS];
  int nnames;
  const rw_rule *rule;
} crule;

struct rw_compiled {
  crule *rules;
  int *by_op[OP_COUNT]; /* rule indices per root op, -1 terminated */
  const char *error;
};

static pthread_mutex_t compile_lock = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local rw_stats stats;

rw_stats rw_get_stats(void) { return stats; }

static void compiled_free(rw_compiled *c, int nrules) {
  if (!c) return;
  if (c->rules)
    for (int i = 0; i < nrules; i++) {
      pat_free(c->rules[i].p);
      for (int k = 0; k < c->rules[i].nnames; k++) free((void *)c->rules[i].names[k]);
    }
  for (int op = 0; op < OP_COUNT; op++) free(c->by_op[op]);
  free(c->rules);
  free((void *)c->error);
  free(c);
}

/* The compiled form of a rule set, built once; NULL when out of memory (checked pools
 * only: nothing of the attempt is kept, the next use tries again). */
static rw_compiled *compile(rw_ruleset *rs) {
  pthread_mutex_lock(&compile_lock);
  rw_compiled *c = rs->compiled;
  if (c) {
    pthread_mutex_unlock(&compile_lock);
    return c;
  }
  uint64_t nomem0 = uop_nomem_events();
  c = ir_calloc(1, sizeof *c);
  if (c) c->rules = ir_calloc((size_t)rs->nrules + 1, sizeof *c->rules);
  for (int i = 0; c && c->rules && i < rs->nrules; i++) {
    const char *err = NULL;
    crule *r = &c->rules[i];
    r->rule = &rs->rules[i];
    r->p = pat_parse(rs->rules[i].pattern, r->names, &r->nnames, &err);
    if (!r->p && !c->error && uop_nomem_events() == nomem0) {
      char *msg = ir_malloc(256); /* one message per rule set, kept with its compiled form */
      if (msg) snprintf(msg, 256, "rule set %s, rule %d \"%s\": %s", rs->name, i, rs->rules[i].pattern, err);
      c->error = msg;
    }
  }
  for (int op = 0; c && c->rules && op < OP_COUNT; op++) {
    int n = 0;
    c->by_op[op] = ir_malloc(sizeof(int) * ((size_t)rs->nrules + 1));
    if (!c->by_op[op]) break;
    for (int i = 0; i < rs->nrules; i++)
      if (c->rules[i].p && pat_root_ops(c->rules[i].p, op)) c->by_op[op][n++] = i;
    c->by_op[op][n] = -1;
  }
  if (uop_nomem_events() != nomem0) {
    compiled_free(c, rs->nrules);
    c = NULL;
  } else {
    rs->compiled = c;
  }
  pthread_mutex_unlock(&compile_lock);
  return c;
}

const char *rw_validate(rw_ruleset *rs) {
  rw_compiled *c = compile(rs);
  return c ? c->error : "out of memory";
}

uop *rw_bind(const rw_match *m, const char *name) {
  for (int i = 0; i < m->nnames; i++)
    if (!strcmp(m->names[i], name)) return m->bind[i];
  CG_ASSERT(0, "the pattern has no name '%s'", name);
  return NULL;
}

typedef struct {
  rw_ruleset **sets;
  rw_compiled **comp;
  int nsets;
  void *ctx;
  uopset memo;
  int depth;
} rw_state;

static uop *try_rules(rw_state *st, uop *u) {
  for (int s = 0; s < st->nsets; s++) {
    rw_compiled *c = st->comp[s];
    for (int *ri = c->by_op[u->op]; *ri >= 0; ri++) {
      crule *r = &c->rules[*ri];
      rw_match m = {.root = u, .names = r->names, .nnames = r->nnames, .ctx = st->ctx};
      stats.tried++;
      if (!pat_match(r->p, u, m.bind)) continue;
      uop *out = r->rule->fn(&m);
      if (!out || out == u) continue;
      if (st->sets[s]->no_grow && out->tsize > u->tsize) continue;
      stats.fired++;
      if (cfg_debug() >= 5) {
        fprintf(stderr, "  rewrite [%s] %-40s ", st->sets[s]->name, r->rule->pattern);
        uop_print_node(stderr, u);
        fputs("  ->  ", stderr);
        uop_print_node(stderr, out);
        fputc('\n', stderr);
      }
      return out;
    }
  }
  return NULL;
}

/* The rewritten n, or NULL when out of memory (checked pools only). */
static uop *rewrite(rw_state *st, uop *n) {
  uop *done = uopset_get(&st->memo, n);
  if (done) return done;
  CG_ASSERT(++st->depth < 100000, "graph_rewrite: rules keep rewriting into each other (depth %d)", st->depth);
  stats.visited++;
  uop *small[8], **src = n->nsrc <= 8 ? small : ir_malloc(sizeof(uop *) * n->nsrc);
  if (!src) return st->depth--, NULL;
  bool changed = false;
  for (uint32_t i = 0; i < n->nsrc; i++) {
    src[i] = rewrite(st, n->src[i]);
    changed |= src[i] != n->src[i];
  }
  uop *m = changed ? uop_replace_src(n, src, (int)n->nsrc) : n; /* NULL if a source was */
  if (src != small) free(src);
  uop *r = m ? try_rules(st, m) : NULL;
  if (r) m = rewrite(st, r);
  if (!m) return st->depth--, NULL;
  uopset_put(&st->memo, n, m); /* a memo that cannot grow only costs time */
  uopset_put(&st->memo, m, m);
  st->depth--;
  return m;
}

uop *graph_rewrite_many(uop *root, rw_ruleset **sets, int nsets, void *ctx) {
  rw_compiled *comp[8];
  CG_ASSERT(nsets <= 8, "too many rule sets at once");
  for (int i = 0; i < nsets; i++) {
    comp[i] = compile(sets[i]);
    if (!comp[i]) return NULL;
    CG_ASSERT(!comp[i]->error, "%s", comp[i]->error);
  }
  if (!root) return NULL;
  rw_state st = {.sets = sets, .comp = comp, .nsets = nsets, .ctx = ctx};
  uop_pool_push_inherit();
  uop *out = uop_retain(rewrite(&st, root));
  uop_pool_pop();
  uopset_free(&st.memo);
  return uop_pool_keep(out);
}

uop *graph_rewrite(uop *root, rw_ruleset *rs, void *ctx) { return graph_rewrite_many(root, &rs, 1, ctx); }
