/* The codegen pipeline: the passes, listed once, in order. Between any two the verifier
 * can check the kernel (CG_VERIFY=1; always in debug builds) and DEBUG_PASS=<name> prints
 * it after the named pass. */
#include "codegen.h"
#include "core/config.h"
#include "runtime/cpu_features.h"
#include "uop/uopset.h"
#include <stdio.h>
#include <string.h>

/* ---- the passes --------------------------------------------------------------------- */

static bool pass_lower(ckernel *k) {
  k->ast = lower_kernel(k->ast);
  return k->ast != NULL;
}

/* The heuristic's TC opt only where the renderer spells WMMA (C, and the tiering x86
 * renderer, which hands such a kernel to C); DEBUG=2 says which unit a bf16 sum of
 * products runs on. */
static bool pass_opt(ckernel *k) {
  if (!k->opts_given) {
    k->nopts = opt_heuristic(k->ast, k->opts);
    if (strcmp(k->ren->name, "c") && strcmp(k->ren->name, "x86+c")) {
      int n = 0;
      for (int i = 0; i < k->nopts; i++)
        if (k->opts[i].kind != OPT_TC) k->opts[n++] = k->opts[i];
      k->nopts = n;
    }
  }
  if (cfg_debug() >= 2 && tc_find(k->ast)) {
    int unit = 0;
    for (int i = 0; i < k->nopts; i++)
      if (k->opts[i].kind == OPT_TC) unit = k->opts[i].amount;
    unsigned f = rt_cpu_features();
    fprintf(stderr, "*** TC %s: bf16 sum of products on %s%s%s%s\n", k->name, tc_unit_name(unit), unit ? "" : f ? " (the kernel's shape does not suit " : " (this CPU has no bf16 unit",
            unit || !f ? "" : rt_cpu_features_str(f), unit ? "" : f ? ")" : cfg_str("CG_CPU_FEATURES", "")[0] ? " under CG_CPU_FEATURES)" : ")");
  }
  k->ast = opt_apply(k->ast, k->opts, k->nopts);
  return k->ast != NULL;
}

/* vectors unless VECTORS=0 (then every lane is unrolled, as a compiler without vector
 * types would need) */
static bool pass_expand(ckernel *k) {
  k->ast = expand_lanes(k->ast, cfg_int("VECTORS", 1) != 0);
  return k->ast != NULL;
}

static bool pass_linearize(ckernel *k) {
  if (linearize(k->ast, &k->lin)) return true;
  char why[256];
  snprintf(why, sizeof why, "%s", cg_last_error());
  cg_fail(cg_last_status(), "kernel %s: %s", k->name, why); /* which kernel, for the bug report */
  return false;
}

static bool pass_render(ckernel *k) {
  k->src = k->ren->render(k->name, &k->lin);
  return k->src != NULL;
}

typedef struct {
  const char *name;
  bool (*run)(ckernel *k);
  int form; /* what the kernel is after it: 0 graph, 1 linear, 2 source */
} pass;

static const pass passes[] = {
    {"lower", pass_lower, 0},
    {"opt", pass_opt, 0},
    {"expand", pass_expand, 0},
    {"linearize", pass_linearize, 1},
    {"render", pass_render, 2},
};

/* ---- the verifier --------------------------------------------------------------------- */

static const char *verify_graph(uop *u, uopset *seen) {
  if (uopset_add(seen, u) <= 0) return NULL;
  if (op_is_movement(u->op) || u->op == OP_BUFFER || u->op == OP_CONTIGUOUS || u->op == OP_ASSIGN) return "a tensor-level op is left after lowering";
  if (u->op == OP_RANGE && (u->src[0]->op != OP_CONST || u->src[0]->arg.i < 0)) return "a RANGE without a constant size";
  if (u->op == OP_INDEX && u->src[0]->op != OP_DEFINE_GLOBAL) return "an INDEX not into a DEFINE_GLOBAL";
  if (u->op == OP_REDUCE)
    for (uint32_t i = 1; i < u->nsrc; i++)
      if (u->src[i]->op != OP_RANGE) return "a REDUCE over something that is not a RANGE";
  const char *m = uop_check(u->op, u->dt, u->src, (int)u->nsrc, &u->arg);
  if (m) return m;
  for (uint32_t i = 0; i < u->nsrc; i++)
    if ((m = verify_graph(u->src[i], seen))) return m;
  return NULL;
}

static const char *verify_linear(const linear *l) {
  uopset at = {0};
  const char *m = NULL;
  uop *open[64];
  int nopen = 0;
  for (int i = 0; i < l->n && !m; i++) {
    uop *u = l->ins[i];
    if (u->op == OP_REDUCE || op_is_movement(u->op)) m = "a REDUCE or movement op in the linear program";
    for (uint32_t s = 0; s < u->nsrc && !m; s++) {
      uop *x = u->src[s];
      bool imm = x->op == OP_CONST || x->op == OP_DEFINE_GLOBAL || x->op == OP_DEFINE_VAR;
      if (!imm && !uopset_get(&at, x)) m = "an instruction reads a value not computed before it";
    }
    if (u->op == OP_RANGE) {
      if (nopen == 64) m = "loops nested more than 64 deep";
      else open[nopen++] = u;
    }
    if (u->op == OP_END && (nopen == 0 || open[--nopen] != u->src[0])) m = "an END that does not close the innermost loop";
    uopset_put(&at, u, (void *)1);
  }
  if (!m && nopen) m = "a loop is never closed";
  uopset_free(&at);
  return m;
}

static bool verify(ckernel *k, const pass *p) {
  const char *m = NULL;
  if (p->form == 0) {
    uopset seen = {0};
    m = verify_graph(k->ast, &seen);
    uopset_free(&seen);
  } else if (p->form == 1) {
    m = verify_linear(&k->lin);
  }
  if (m) cg_fail(CG_ERR_RUNTIME, "codegen verifier, kernel %s after pass %s: %s", k->name, p->name, m);
  return m == NULL;
}

static void print_after(ckernel *k, const pass *p) {
  fprintf(stderr, "--- %s after %s", k->name, p->name);
  if (p->form == 0) {
    char o[256];
    opts_str(k->opts, k->nopts, o, sizeof o);
    fprintf(stderr, " (opts: %s)\n", o);
    uop_print(stderr, k->ast);
  } else if (p->form == 1) {
    fprintf(stderr, "\n");
    linear_print(stderr, &k->lin);
  } else {
    fprintf(stderr, "\n%s\n", k->src);
  }
}

bool codegen_run(ckernel *k) {
#ifdef NDEBUG
  bool check = cfg_int("CG_VERIFY", 0) != 0;
#else
  bool check = cfg_int("CG_VERIFY", 1) != 0;
#endif
  const char *show = cfg_str("DEBUG_PASS", "");
  /* Out of memory (in the checked pool of a realize) fails the kernel as a whole: a pass
   * that lost an allocation (a rewrite that did not happen, a skipped step) may have left a
   * kernel that is wrong, so the compile stops at the end of that pass and nothing of it
   * is kept or cached. */
  uint64_t nomem0 = uop_nomem_events();
  uop_pool_push_inherit();
  bool ok = true;
  for (size_t i = 0; i < sizeof passes / sizeof passes[0] && ok; i++) {
    ok = passes[i].run(k) && uop_nomem_events() == nomem0 && (!check || verify(k, &passes[i]));
    if (!ok && uop_nomem_events() != nomem0 && cg_last_status() != CG_ERR_NOMEM) cg_fail(CG_ERR_NOMEM, "out of memory compiling %s (pass %s)", k->name, passes[i].name);
    if (ok && (!strcmp(show, passes[i].name) || !strcmp(show, "all"))) print_after(k, &passes[i]);
  }
  k->ast = ok ? uop_retain(k->ast) : NULL;
  uop_pool_pop();
  return ok;
}

void ckernel_free(ckernel *k) {
  if (k->ast) uop_release(k->ast);
  linear_free(&k->lin);
  free(k->src);
  memset(k, 0, sizeof *k);
}
