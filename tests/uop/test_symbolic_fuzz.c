/* Differential fuzzing of the simplifier: random integer expression trees over 1-4
 * bounded variables (negative ranges included) are evaluated at random points before and
 * after rs_symbolic. Zero mismatches allowed, and the result may never be larger: its size
 * as a tree (the expression written out) is at most the input's. DAG sizes (distinct
 * nodes) are reported too.
 * The evaluator below is written from the IR's documented semantics (int32 wrap-around,
 * truncating IDIV, MOD with the sign of the dividend), independently of alu.c.
 * CG_FUZZ_N sets the number of trees (default 100000), CG_FUZZ_SEED the seed. */
#include "check.h"
#include "uop/symbolic.h"
#include "uop/uopset.h"
#include <string.h>

static uint64_t rng_state;
static uint64_t rnd(void) { /* splitmix64 */
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static int64_t rint_in(int64_t lo, int64_t hi) { return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1)); }

static uop *vars[4];
static int64_t vlo[4], vhi[4];
static int nvars;

static uop *cint(int64_t v) { return uop_const_int(DT_I32, v); }

static uop *gen_int(int depth);
static uop *gen_bool(int depth) {
  static const int cmp[] = {OP_CMPLT, OP_CMPNE, OP_CMPEQ};
  return uop_alu(cmp[rnd() % 3], gen_int(depth - 1), gen_int(depth - 1));
}
static uop *gen_int(int depth) {
  if (depth <= 0 || rnd() % 5 == 0) {
    if (rnd() % 3 == 0) return cint(rint_in(-10, 20));
    return vars[rnd() % (uint64_t)nvars];
  }
  switch (rnd() % 12) {
  case 0: case 1: case 2: return uop_alu(OP_ADD, gen_int(depth - 1), gen_int(depth - 1));
  case 3: return uop_alu(OP_MUL, gen_int(depth - 1), cint(rint_in(-4, 8)));
  case 4: return uop_alu(OP_MUL, gen_int(depth - 1), gen_int(depth - 1));
  case 5: case 6: {
    int64_t c = rint_in(-3, 12);
    return uop_alu(OP_IDIV, gen_int(depth - 1), cint(c ? c : 4));
  }
  case 7: case 8: {
    int64_t c = rint_in(-3, 12);
    return uop_alu(OP_MOD, gen_int(depth - 1), cint(c ? c : 3));
  }
  case 9: return uop_alu(OP_MAX, gen_int(depth - 1), gen_int(depth - 1));
  case 10: return uop_alu1(OP_NEG, gen_int(depth - 1));
  default: return uop_where(gen_bool(depth - 1), gen_int(depth - 1), gen_int(depth - 1));
  }
}

/* The reference evaluator. */
static int32_t wrap32(int64_t v) { return (int32_t)(uint32_t)(uint64_t)v; }
static int64_t eval(uop *u, const int64_t *val, int *bad) {
  int64_t a = u->nsrc > 0 ? eval(u->src[0], val, bad) : 0;
  int64_t b = u->nsrc > 1 ? eval(u->src[1], val, bad) : 0;
  switch (u->op) {
  case OP_CONST: return u->arg.i;
  case OP_DEFINE_VAR:
    for (int i = 0; i < nvars; i++)
      if (vars[i] == u) return val[i];
    *bad = 1;
    return 0;
  case OP_ADD: return wrap32(a + b);
  case OP_MUL: return wrap32(a * b);
  case OP_NEG: return dt_is_bool(u->dt) ? !a : wrap32(-a);
  case OP_IDIV:
    if (b == 0) { *bad = 1; return 0; }
    return wrap32(a / b);
  case OP_MOD:
    if (b == 0) { *bad = 1; return 0; }
    return a % b;
  case OP_MAX: return a > b ? a : b;
  case OP_CMPLT: return a < b;
  case OP_CMPNE: return a != b;
  case OP_CMPEQ: return a == b;
  case OP_AND: return a & b;
  case OP_OR: return a | b;
  case OP_WHERE: return a ? b : eval(u->src[2], val, bad);
  default:
    fprintf(stderr, "fuzz evaluator: unexpected op %s\n", op_name(u->op));
    *bad = 1;
    return 0;
  }
}

int main(void) {
  long n = test_env_long("CG_FUZZ_N", 100000);
  rng_state = (uint64_t)test_env_long("CG_FUZZ_SEED", 12345);
  long mismatches = 0, grew = 0, shrank = 0, bad_eval = 0;
  size_t nodes_in = 0, nodes_out = 0;
  size_t live0 = uop_live_count();
  for (long t = 0; t < n; t++) {
    uop_pool_push();
    nvars = 1 + (int)(rnd() % 4);
    for (int i = 0; i < nvars; i++) {
      char name[2] = {(char)('a' + i), 0};
      int64_t lo = rnd() % 3 == 0 ? rint_in(-20, 0) : 0, hi = lo + rint_in(0, 40);
      vlo[i] = lo, vhi[i] = hi;
      vars[i] = uop_var(name, lo, hi);
    }
    uop *e = gen_int(2 + (int)(rnd() % 4));
    uop *s = uop_simplify(e);
    size_t ne = e->tsize, ns = s->tsize;
    nodes_in += uop_dag_size(e), nodes_out += uop_dag_size(s);
    if (ns > ne) {
      if (grew++ < 5) {
        fprintf(stderr, "grew from %zu to %zu nodes:\n", ne, ns);
        uop_print(stderr, e);
        fprintf(stderr, "->\n");
        uop_print(stderr, s);
      }
    } else if (ns < ne) shrank++;
    for (int p = 0; p < 8; p++) {
      int64_t val[4];
      for (int i = 0; i < nvars; i++) val[i] = rint_in(vlo[i], vhi[i]);
      int bad1 = 0, bad2 = 0;
      int64_t want = eval(e, val, &bad1), got = eval(s, val, &bad2);
      if (bad1 || bad2) { bad_eval++; continue; }
      if (want != got && mismatches++ < 5) {
        fprintf(stderr, "mismatch: want %lld got %lld at", (long long)want, (long long)got);
        for (int i = 0; i < nvars; i++) fprintf(stderr, " %c=%lld", 'a' + i, (long long)val[i]);
        fprintf(stderr, "\nbefore:\n");
        uop_print(stderr, e);
        fprintf(stderr, "after:\n");
        uop_print(stderr, s);
      }
    }
    uop_pool_pop();
  }
  printf("%ld trees, %zu distinct nodes in, %zu out (%.1f%% fewer); %ld simplified, %ld mismatches, %ld grew, %ld skipped points\n",
         n, nodes_in, nodes_out, 100.0 * (1.0 - (double)nodes_out / (double)nodes_in), shrank, mismatches, grew, bad_eval);
  CHECK(mismatches == 0, "%ld mismatches", mismatches);
  CHECK(grew == 0, "%ld results larger than their input", grew);
  CHECK(bad_eval == 0, "%ld evaluations hit an unknown op or a zero divisor", bad_eval);
  CHECK(shrank > n / 4, "the simplifier simplifies (%ld of %ld)", shrank, n);
  CHECK(uop_live_count() == live0, "no node leaks");
  return test_summary();
}
