/* IR throughput: interning and graph_rewrite with the symbolic rule set.
 *
 *   (a) intern: build N random distinct integer ALU nodes (each over two earlier nodes),
 *       then look the same N nodes up again (every call finds the existing node).
 *   (b) rewrite: a random integer expression DAG of about M nodes over four bounded
 *       DEFINE_VARs (ADD, MUL/IDIV/MOD by constants, MAX, CMPLT inside WHERE), built in
 *       layers so its depth stays small, simplified by rs_symbolic through graph_rewrite.
 * Each figure is the median of 5 timed runs after one warm-up run.
 *
 *   build/bench_rewrite [N] [M] [seed]     (defaults 1000000 1000000 1) */
#include "bench_util.h"
#include "uop/rewrite.h"
#include "uop/symbolic.h"
#include "uop/uopset.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { RUNS = 5 };

static uint64_t rng_state;
static uint64_t rnd(void) { /* xorshift64* */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545F4914F6CDD1Dull;
}
static int64_t rnd_in(int64_t lo, int64_t hi) { return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1)); }

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return v[n / 2];
}

/* ---- (a) interning ------------------------------------------------------------------- */

static const int intern_ops[] = {OP_ADD, OP_MUL, OP_MAX, OP_IDIV, OP_MOD, OP_AND, OP_OR, OP_XOR};
enum { NLEAF = 80 };

/* One run: build n nodes from a fixed recipe (seeded), then the same n again. */
static void intern_run(long n, uint64_t seed, double *t_new, double *t_hit, size_t *made) {
  uop **node = malloc(sizeof(uop *) * (size_t)(n + NLEAF));
  int *op = malloc(sizeof(int) * (size_t)n);
  uint32_t *ia = malloc(sizeof(uint32_t) * (size_t)n), *ib = malloc(sizeof(uint32_t) * (size_t)n);
  rng_state = seed;
  for (long i = 0; i < n; i++) {
    op[i] = intern_ops[rnd() % 8];
    ia[i] = (uint32_t)(rnd() % (uint64_t)(i + NLEAF));
    ib[i] = (uint32_t)(rnd() % (uint64_t)(i + NLEAF));
  }
  uop_pool_push();
  for (int i = 0; i < 16; i++) {
    char name[8];
    snprintf(name, sizeof name, "v%d", i);
    node[i] = uop_var(name, 0, 1000);
  }
  for (int i = 16; i < NLEAF; i++) node[i] = uop_const_int(DT_I32, i * 7 - 200);
  size_t live0 = uop_live_count();
  double t0 = now();
  for (long i = 0; i < n; i++) node[NLEAF + i] = uop_alu(op[i], node[ia[i]], node[ib[i]]);
  double t1 = now();
  *made = uop_live_count() - live0;
  uop *sum = NULL;
  for (long i = 0; i < n; i++) sum = uop_alu(op[i], node[ia[i]], node[ib[i]]);
  double t2 = now();
  if (uop_live_count() - live0 != *made || sum != node[NLEAF + n - 1]) fprintf(stderr, "lookups made new nodes\n"), exit(1);
  uop_pool_pop();
  *t_new = t1 - t0;
  *t_hit = t2 - t1;
  free(node), free(op), free(ia), free(ib);
}

static void bench_intern(long n, uint64_t seed) {
  double tn[RUNS], th[RUNS];
  size_t made = 0;
  intern_run(n, seed, &tn[0], &th[0], &made); /* warm-up */
  for (int r = 0; r < RUNS; r++) intern_run(n, seed, &tn[r], &th[r], &made);
  double mn = median(tn, RUNS), mh = median(th, RUNS);
  printf("(a) intern: %ld uop_alu calls over %d leaves (16 vars, %d consts), ops ADD MUL MAX IDIV MOD AND OR XOR,\n"
         "    sources drawn uniformly from all earlier nodes; %zu distinct new nodes\n",
         n, NLEAF, NLEAF - 16, made);
  printf("    new nodes:   %8.1f ms  %6.2f M nodes/s\n", mn * 1e3, (double)made / mn * 1e-6);
  printf("    lookups:     %8.1f ms  %6.2f M lookups/s (all %ld hit)\n", mh * 1e3, (double)n / mh * 1e-6, n);
}

/* ---- (b) rewriting ----------------------------------------------------------------- */

/* A random integer DAG of about m nodes: layers of `width` expressions, each over nodes
 * of the two layers before it or a variable; every node is reachable from one SINK. */
static uop *random_dag(long m, int width, uop **vars, int nvars) {
  long cap = m + 16;
  uop **node = malloc(sizeof(uop *) * (size_t)cap);
  char *used = calloc((size_t)cap, 1);
  uopset seen = {0}; /* a node built twice is kept once */
  long n = 0, s1 = 0, s2 = 0; /* starts of the previous layer and the one before */
  for (int i = 0; i < nvars; i++) node[n++] = vars[i];
  size_t live0 = uop_live_count();
  while ((long)(uop_live_count() - live0) < m - 8) {
    long lo = s2, hi = n; /* operands from the previous two layers */
    for (int k = 0; k < width && (long)(uop_live_count() - live0) < m - 8; k++) {
      long ai = rnd() % 4 == 0 ? (long)(rnd() % (uint64_t)nvars) : lo + (long)(rnd() % (uint64_t)(hi - lo));
      long bi = rnd() % 4 == 0 ? (long)(rnd() % (uint64_t)nvars) : lo + (long)(rnd() % (uint64_t)(hi - lo));
      uop *a = node[ai], *b = node[bi], *e;
      bool uses_b = true;
      switch (rnd() % 7) {
      case 0: e = uop_alu(OP_ADD, a, b); break;
      case 1: e = uop_alu(OP_ADD, a, uop_const_int(DT_I32, rnd_in(-8, 8))), uses_b = false; break;
      case 2: e = uop_alu(OP_MUL, a, uop_const_int(DT_I32, rnd_in(-4, 8))), uses_b = false; break;
      case 3: e = uop_alu(OP_IDIV, a, uop_const_int(DT_I32, rnd_in(1, 16))), uses_b = false; break;
      case 4: e = uop_alu(OP_MOD, a, uop_const_int(DT_I32, rnd_in(1, 16))), uses_b = false; break;
      case 5: e = uop_alu(OP_MAX, a, b); break;
      default: {
        uop *lim = rnd() % 2 ? b : uop_const_int(DT_I32, rnd_in(-20, 100));
        e = uop_where(uop_alu(OP_CMPLT, a, lim), a, b);
        break;
      }
      }
      used[ai] = 1;
      if (uses_b) used[bi] = 1;
      if (n == cap || !uopset_add(&seen, e)) continue;
      node[n++] = e;
    }
    s2 = s1;
    s1 = hi;
  }
  /* the roots: every node nothing else uses */
  long nroots = 0;
  for (long i = 0; i < n; i++) nroots += !used[i];
  uop **roots = malloc(sizeof(uop *) * (size_t)nroots);
  nroots = 0;
  for (long i = 0; i < n; i++)
    if (!used[i]) roots[nroots++] = node[i];
  uop *sink = uop_new(OP_SINK, dt_void(), roots, (int)nroots, arg_none());
  free(roots), free(used), free(node);
  uopset_free(&seen);
  return sink;
}

static int dag_depth_rec(uop *u, void **memo_keys, int *memo_vals, size_t cap) {
  size_t h = ((uintptr_t)u * 0x9e3779b97f4a7c15ull >> 20) & (cap - 1);
  while (memo_keys[h] && memo_keys[h] != u) h = (h + 1) & (cap - 1);
  if (memo_keys[h]) return memo_vals[h];
  int d = 0;
  for (uint32_t i = 0; i < u->nsrc; i++) {
    int s = dag_depth_rec(u->src[i], memo_keys, memo_vals, cap);
    if (s > d) d = s;
  }
  memo_keys[h] = u;
  memo_vals[h] = d + 1;
  return d + 1;
}
static int dag_depth(uop *u) {
  size_t cap = 1;
  while (cap < uop_dag_size(u) * 2) cap <<= 1;
  void **k = calloc(cap, sizeof *k);
  int *v = calloc(cap, sizeof *v);
  int d = dag_depth_rec(u, k, v, cap);
  free(k), free(v);
  return d;
}

static void bench_rewrite(long m, uint64_t seed) {
  const int width = 5000;
  rng_state = seed;
  uop_pool_push();
  uop *vars[4] = {uop_var("a", 0, 99), uop_var("b", 0, 15), uop_var("c", -8, 8), uop_var("d", 1, 1000)};
  uop *root = uop_retain(random_dag(m, width, vars, 4));
  uop_pool_pop();
  const char *err = rw_validate(&rs_symbolic);
  if (err) fprintf(stderr, "%s\n", err), exit(1);
  size_t in_nodes = uop_dag_size(root), out_nodes = 0;
  double t[RUNS];
  rw_stats d = {0};
  for (int r = -1; r < RUNS; r++) { /* r = -1: warm-up */
    uop_pool_push();
    rw_stats s0 = rw_get_stats();
    double t0 = now();
    uop *out = graph_rewrite(root, &rs_symbolic, NULL);
    double t1 = now();
    rw_stats s1 = rw_get_stats();
    d = (rw_stats){s1.visited - s0.visited, s1.fired - s0.fired, s1.tried - s0.tried};
    if (r < 0) out_nodes = uop_dag_size(out);
    uop_pool_pop();
    if (r >= 0) t[r] = t1 - t0;
  }
  double mt = median(t, RUNS);
  printf("(b) rewrite: rs_symbolic via graph_rewrite on a random int32 DAG: %zu nodes (SINK of %u roots), depth %d,\n"
         "    layers of %d over the 2 previous layers; vars a[0,99] b[0,15] c[-8,8] d[1,1000]; ops ADD, ADD/MUL/IDIV/MOD\n"
         "    by a constant, MAX, WHERE(CMPLT) (1/7 each); seed %llu\n",
         in_nodes, root->nsrc, dag_depth(root), width, (unsigned long long)seed);
  printf("    result: %zu nodes; per run: %llu nodes visited, %llu rules tried, %llu fired\n", out_nodes,
         (unsigned long long)d.visited, (unsigned long long)d.tried, (unsigned long long)d.fired);
  printf("    wall:        %8.1f ms  %6.2f M nodes visited/s  %6.2f M input nodes/s\n", mt * 1e3,
         (double)d.visited / mt * 1e-6, (double)in_nodes / mt * 1e-6);
  printf("    runs (ms):  ");
  for (int r = 0; r < RUNS; r++) printf(" %.1f", t[r] * 1e3);
  printf("\n");
  uop_release(root);
}

/* The machine's load, so a reader can judge the figures (Linux; empty elsewhere). */
static void print_load(const char *when) {
  char buf[128] = "";
  FILE *f = fopen("/proc/loadavg", "r");
  if (f) {
    if (!fgets(buf, sizeof buf, f)) buf[0] = 0;
    fclose(f);
  }
  buf[strcspn(buf, "\n")] = 0;
  if (buf[0]) printf("load average %s: %s\n", when, buf);
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 1000000, m = argc > 2 ? atol(argv[2]) : 1000000;
  uint64_t seed = argc > 3 ? strtoull(argv[3], NULL, 10) : 1;
  if (n < 1 || m < 100 || !seed) return fprintf(stderr, "usage: bench_rewrite [N>0] [M>=100] [seed>0]\n"), 2;
#ifdef NDEBUG
  const char *build = "release (NDEBUG: no uop_check per node)";
#else
  const char *build = "debug (uop_check on every node)";
#endif
  printf("bench_rewrite: N=%ld M=%ld seed=%llu, %s build, median of %d runs after 1 warm-up\n", n, m,
         (unsigned long long)seed, build, RUNS);
  print_load("before");
  bench_intern(n, seed);
  bench_rewrite(m, seed);
  print_load("after");
  return 0;
}
