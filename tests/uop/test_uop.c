/* The UOp node: interning (same structure => same pointer), pools and reference counts,
 * value bounds (vmin/vmax), the printer, uop_check and shape inference of movement ops.
 * Every test builds inside its own pool and ends by checking that the number of live
 * nodes is back where it started. */
#include "check.h"
#include "uop/shape.h"
#include "uop/uop.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

/* CHECK without a message of its own */
#define EXPECT(cond) CHECK(cond, "%s", "")

#define I32 DT_I32

static uop *ci(int64_t v) { return uop_const_int(I32, v); }
static uop *var(const char *name, int64_t lo, int64_t hi) { return uop_var(name, lo, hi); }
static uop *buffer(dtype dt, int64_t id, int64_t n) {
  int64_t a[2] = {id, n};
  return uop_new0(OP_BUFFER, dt, arg_ints(a, 2));
}
static uop *move(int op, uop *x, const int64_t *v, int n) { return uop_new1(op, x->dt, x, arg_ints(v, n)); }

/* ---- interning --------------------------------------------------------------------- */

static void test_intern_args(void) {
  size_t base = uop_live_count();
  uop_pool_push();

  /* ints */
  EXPECT(ci(5) == ci(5));
  EXPECT(ci(5) != ci(6));
  CHECK(ci(5) != uop_const_int(DT_I64, 5), "same value, other dtype");
  CHECK(uop_const_int(dt_of(CG_UINT8), 300) == uop_const_int(dt_of(CG_UINT8), 44), "ints wrap at the dtype's width");
  EXPECT(uop_const_int(DT_BOOL, 1) == uop_const_int(DT_BOOL, 7));

  /* floats: bitwise, so -0.0 and 0.0 differ and a NaN equals itself */
  EXPECT(uop_const_float(DT_F32, 1.5) == uop_const_float(DT_F32, 1.5));
  CHECK(uop_const_float(DT_F32, 0.0) != uop_const_float(DT_F32, -0.0), "-0.0 and 0.0 are distinct nodes");
  CHECK(uop_const_float(DT_F32, NAN) == uop_const_float(DT_F32, NAN), "a NaN is interned like any value");
  EXPECT(uop_const_float(DT_F32, 1.0) != uop_const_float(DT_F64, 1.0));
  CHECK(uop_const_float(DT_F32, 1.0) != uop_const_float(DT_F32, 1.0 + 1e-15), "no tolerance");

  /* ints tuples: copied into the node, compared by value and length */
  int64_t s1[3] = {2, 3, 4}, s2[3] = {2, 3, 4}, s3[3] = {2, 4, 3}, s4[2] = {6, 4};
  uop *buf = buffer(DT_F32, 0, 24);
  uop *r1 = move(OP_RESHAPE, buf, s1, 3);
  s1[0] = 99; /* the node keeps its own copy */
  EXPECT(r1 == move(OP_RESHAPE, buf, s2, 3));
  EXPECT(r1->arg.v[0] == 2);
  EXPECT(r1 != move(OP_RESHAPE, buf, s3, 3));
  EXPECT(r1 != move(OP_RESHAPE, buf, s4, 2));
  EXPECT(buf == buffer(DT_F32, 0, 24) && buf != buffer(DT_F32, 1, 24) && buf != buffer(dt_of(CG_FLOAT16), 0, 24));

  /* strings: copied, compared by content */
  char name[8] = "CPU";
  uop *cp = uop_new1(OP_COPY, DT_F32, buf, arg_str(name));
  strcpy(name, "GPU");
  CHECK(!strcmp(cp->arg.s, "CPU"), "the node keeps its own copy of the string");
  EXPECT(cp == uop_new1(OP_COPY, DT_F32, buf, arg_str("CPU")));
  EXPECT(cp != uop_new1(OP_COPY, DT_F32, buf, arg_str("GPU")));
  EXPECT(cp != uop_new1(OP_COPY, DT_F32, buf, arg_str("CPU1")));

  /* vars: name and both bounds */
  uop *i = var("i", 0, 10);
  EXPECT(i == var("i", 0, 10));
  EXPECT(i != var("i", 0, 11) && i != var("i", -1, 10) && i != var("j", 0, 10));
  EXPECT(i->arg.v[0] == 0 && i->arg.v[1] == 10 && !strcmp(i->arg.s, "i"));

  /* uarg_eq across kinds */
  uarg ai = arg_int(1), af = arg_float(1.0), an = arg_none(), an2 = arg_none();
  EXPECT(!uarg_eq(&ai, &af) && uarg_eq(&an, &an2));
  uarg st = arg_str("i"), va = {.kind = ARG_VAR, .n = 2, .v = (int64_t[]){0, 10}, .s = "i"};
  CHECK(!uarg_eq(&st, &va), "a string and a var of the same name differ");

  uop_pool_pop();
  CHECK(uop_live_count() == base, "leak: %zu live, expected %zu", uop_live_count(), base);
}

static void test_intern_structure(void) {
  size_t base = uop_live_count();
  uop_pool_push();
  uop *a = var("a", 0, 9), *b = var("b", 0, 9);

  EXPECT(uop_alu(OP_ADD, a, b) == uop_alu(OP_ADD, a, b));
  CHECK(uop_alu(OP_ADD, a, b) != uop_alu(OP_ADD, b, a), "source order matters (no canonical order)");
  EXPECT(uop_alu(OP_IDIV, a, b) != uop_alu(OP_IDIV, b, a));
  CHECK(uop_alu(OP_ADD, a, b) != uop_alu(OP_MUL, a, b), "op matters");
  EXPECT(uop_alu(OP_CMPLT, a, b) != uop_alu(OP_CMPNE, a, b));
  /* same op and sources, other dtype */
  uop *la = uop_new1(OP_CAST, DT_I64, a, arg_none()), *lb = uop_new1(OP_CAST, DT_I64, b, arg_none());
  EXPECT(uop_new1(OP_CAST, DT_I64, a, arg_none()) == la);
  EXPECT(uop_new1(OP_CAST, dt_of(CG_INT16), a, arg_none()) != la);
  EXPECT(uop_alu(OP_ADD, la, lb)->dt.scalar == CG_INT64);
  /* vectors and pointers are part of the dtype; a slot's arg is [slot, count] */
  int64_t s0[2] = {0, 16}, s1[2] = {1, 16};
  uop *g0 = uop_new0(OP_DEFINE_GLOBAL, DT_F32, arg_ints(s0, 2));
  EXPECT(g0 == uop_new0(OP_DEFINE_GLOBAL, DT_F32, arg_ints(s0, 2)));
  EXPECT(g0->ndim == 1 && g0->shape[0] == 16);
  EXPECT(g0 != uop_new0(OP_DEFINE_GLOBAL, DT_I32, arg_ints(s0, 2)));
  EXPECT(g0 != uop_new0(OP_DEFINE_GLOBAL, DT_F32, arg_ints(s1, 2)));
  uop *p0 = uop_new2(OP_INDEX, dt_ptr(DT_F32, ADDR_GLOBAL), g0, a);
  EXPECT(p0 != uop_new2(OP_INDEX, dt_ptr(DT_F32, ADDR_LOCAL), g0, a));
  EXPECT(p0 != uop_new2(OP_INDEX, dt_ptr(dt_vec(DT_F32, 4), ADDR_GLOBAL), g0, a));
  uop *v2 = uop_new2(OP_VECTORIZE, dt_vec(I32, 2), a, b);
  EXPECT(v2 == uop_new2(OP_VECTORIZE, dt_vec(I32, 2), a, b) && v2 != uop_new2(OP_VECTORIZE, dt_vec(I32, 2), b, a));
  /* number of sources */
  uop *s2[2] = {a, b};
  uop *k0 = uop_new(OP_SINK, dt_void(), NULL, 0, arg_none());
  uop *k1 = uop_new(OP_SINK, dt_void(), s2, 1, arg_none());
  uop *k2 = uop_new(OP_SINK, dt_void(), s2, 2, arg_none());
  EXPECT(k0 != k1 && k1 != k2 && k0 != k2);
  EXPECT(k2 == uop_new(OP_SINK, dt_void(), s2, 2, arg_none()));
  /* one structure reached two ways is one node */
  uop *x = uop_alu(OP_MUL, uop_alu(OP_ADD, a, ci(1)), uop_alu(OP_ADD, a, ci(1)));
  uop *s = uop_alu(OP_ADD, a, ci(1));
  EXPECT(x == uop_alu(OP_MUL, s, s) && x->src[0] == x->src[1]);
  CHECK(uop_dag_size(x) == 4, "dag size %zu", uop_dag_size(x));
  EXPECT(uop_replace_src(uop_alu(OP_ADD, a, b), (uop *[]){b, a}, 2) == uop_alu(OP_ADD, b, a));

  uop_pool_pop();
  CHECK(uop_live_count() == base, "leak: %zu live, expected %zu", uop_live_count(), base);
}

/* Many distinct nodes (the intern table grows several times), then the same again. */
static void test_intern_many(void) {
  size_t base = uop_live_count();
  enum { N = 100000 };
  uop_pool_push();
  uop **first = malloc(sizeof(uop *) * N);
  uop *a = var("a", -100, 100);
  for (int i = 0; i < N; i++) first[i] = uop_alu(i % 2 ? OP_ADD : OP_MUL, a, ci(i / 2));
  CHECK(uop_live_count() == base + 1 + N + N / 2, "%zu live", uop_live_count() - base);
  int same = 0, distinct = 1;
  for (int i = 0; i < N; i++) same += uop_alu(i % 2 ? OP_ADD : OP_MUL, a, ci(i / 2)) == first[i];
  for (int i = 1; i < N; i++) distinct &= first[i] != first[i - 1];
  EXPECT(same == N && distinct);
  CHECK(uop_live_count() == base + 1 + N + N / 2, "lookups created nodes");
  free(first);
  uop_pool_pop();
  CHECK(uop_live_count() == base, "leak: %zu live, expected %zu", uop_live_count(), base);
}

/* ---- references ------------------------------------------------------------------- */

static void test_pool_frees_all(void) {
  size_t base = uop_live_count();
  uop_pool_push();
  uop *a = var("a", 0, 9);
  uop *e = uop_alu(OP_ADD, uop_alu(OP_MUL, a, ci(3)), ci(1));
  EXPECT(uop_live_count() == base + 5);
  CHECK(e->refcnt == 1 && a->refcnt == 2, "pool ref + one parent: %u %u", e->refcnt, a->refcnt);
  uop_alu(OP_ADD, uop_alu(OP_MUL, a, ci(3)), ci(1)); /* a second reference from the pool */
  EXPECT(e->refcnt == 2);
  uop_pool_pop();
  CHECK(uop_live_count() == base, "leak: %zu live, expected %zu", uop_live_count(), base);
}

static void test_retain_survives_pool(void) {
  size_t base = uop_live_count();
  uop *kept, *sub, *a;
  uop_pool_push();
  a = var("a", 0, 9);
  sub = uop_alu(OP_MUL, a, ci(3));
  kept = uop_retain(uop_alu(OP_ADD, sub, ci(1)));
  uop_alu(OP_MAX, a, ci(100)); /* not kept: MAX and CONST 100 go with the pool */
  EXPECT(uop_live_count() == base + 7);
  uop_pool_pop();
  CHECK(uop_live_count() == base + 5, "kept node and its 4 sources live: %zu", uop_live_count() - base);
  EXPECT(kept->refcnt == 1 && kept->src[0] == sub && sub->src[0] == a && a->refcnt == 1);
  /* still interned: building it again finds it */
  uop_pool_push();
  EXPECT(uop_alu(OP_ADD, uop_alu(OP_MUL, var("a", 0, 9), ci(3)), ci(1)) == kept);
  EXPECT(uop_live_count() == base + 5);
  uop_pool_pop();
  uop_release(kept);
  CHECK(uop_live_count() == base, "release frees the node with its sources: %zu", uop_live_count() - base);
}

static void test_shared_sources(void) {
  size_t base = uop_live_count();
  uop *p1, *p2;
  uop_pool_push();
  uop *s = uop_alu(OP_ADD, var("s", 0, 9), ci(2)); /* 3 nodes, shared */
  p1 = uop_retain(uop_alu(OP_MUL, s, ci(5)));     /* +2 */
  p2 = uop_retain(uop_alu(OP_MAX, s, ci(7)));     /* +2 */
  uop_pool_pop();
  EXPECT(uop_live_count() == base + 7);
  EXPECT(s->refcnt == 2);
  uop_release(p1);
  CHECK(uop_live_count() == base + 5, "s survives while p2 holds it: %zu", uop_live_count() - base);
  EXPECT(p2->src[0]->op == OP_ADD && p2->src[0]->refcnt == 1 && p2->src[0]->src[1]->arg.i == 2);
  uop_release(p2);
  EXPECT(uop_live_count() == base);

  /* nested pools and uop_pool_keep */
  uop_pool_push();
  uop *outer = var("o", 0, 1);
  uop_pool_push();
  uop *inner = uop_alu(OP_ADD, outer, ci(1));
  uop *kept = uop_retain(uop_alu(OP_MUL, inner, inner));
  uop_alu(OP_MAX, outer, ci(3)); /* dies with the inner pool */
  uop_pool_pop();
  uop_pool_keep(kept); /* the caller's reference now belongs to the outer pool */
  CHECK(uop_live_count() == base + 4, "outer pool owns var, MUL and its sources: %zu", uop_live_count() - base);
  EXPECT(kept->refcnt == 1 && kept->src[0]->src[0] == outer);
  uop_pool_pop();
  EXPECT(uop_live_count() == base);
  uop_release(NULL); /* allowed, no effect */
  EXPECT(uop_retain(NULL) == NULL && uop_pool_keep(NULL) == NULL);
}

/* A million-node chain is freed with an explicit stack, not recursion. */
static void test_long_chain(void) {
  size_t base = uop_live_count();
  enum { N = 1000000 };
  uop_pool_push();
  uop *x = var("x", 0, 10), *one = ci(1);
  for (int i = 0; i < N; i++) x = uop_alu(OP_ADD, x, one);
  EXPECT(uop_live_count() == base + N + 2);
  CHECK(x->vmin == N && x->vmax == N + 10, "bounds along the chain: [%lld, %lld]", (long long)x->vmin, (long long)x->vmax);
  uop_pool_pop();
  CHECK(uop_live_count() == base, "pool pop of a long chain: %zu live", uop_live_count() - base);

  /* the same chain kept past its pool and released in one call */
  uop_pool_push();
  x = var("x", 0, 10), one = ci(1);
  for (int i = 0; i < N; i++) x = uop_alu(OP_MUL, x, one);
  uop *kept = uop_retain(x);
  uop_pool_pop();
  EXPECT(uop_live_count() == base + N + 2);
  uop_release(kept);
  CHECK(uop_live_count() == base, "release of a long chain: %zu live", uop_live_count() - base);
}

/* ---- value bounds ----------------------------------------------------------------- */

#define BOUNDS(u, lo, hi) CHECK((u)->vmin == (lo) && (u)->vmax == (hi), "%s: [%lld, %lld], expected [%lld, %lld]", #u, \
                                (long long)(u)->vmin, (long long)(u)->vmax, (long long)(lo), (long long)(hi))

static void test_bounds(void) {
  size_t base = uop_live_count();
  uop_pool_push();
  uop *n = var("n", -5, 7), *m = var("m", -3, 2), *p = var("p", 0, 100), *d = var("d", 2, 3);
  BOUNDS(ci(-4), -4, -4);
  BOUNDS(n, -5, 7);
  uop *r10 = uop_new1(OP_RANGE, I32, ci(10), arg_ints((int64_t[]){0, 0}, 2));
  BOUNDS(r10, 0, 9);
  uop *rn = uop_new1(OP_RANGE, I32, p, arg_ints((int64_t[]){1, 0}, 2));
  BOUNDS(rn, 0, 99);
  BOUNDS(uop_alu(OP_ADD, n, m), -8, 9);
  BOUNDS(uop_alu(OP_MUL, n, m), -21, 15);
  BOUNDS(uop_alu(OP_MUL, n, ci(-2)), -14, 10);
  BOUNDS(uop_alu1(OP_NEG, n), -7, 5);
  /* IDIV and MOD truncate toward zero (C) */
  BOUNDS(uop_alu(OP_IDIV, n, ci(2)), -2, 3);
  BOUNDS(uop_alu(OP_IDIV, n, ci(-2)), -3, 2);
  BOUNDS(uop_alu(OP_IDIV, var("q", -7, 7), d), -3, 3);
  BOUNDS(uop_alu(OP_IDIV, p, d), 0, 50);
  BOUNDS(uop_alu(OP_IDIV, n, m), INT32_MIN, INT32_MAX); /* divisor range holds 0 */
  BOUNDS(uop_alu(OP_MOD, var("q", -10, 5), ci(3)), -2, 2);
  BOUNDS(uop_alu(OP_MOD, var("q", -10, -5), ci(3)), -2, 0);
  BOUNDS(uop_alu(OP_MOD, var("q", 3, 4), ci(5)), 3, 4);
  BOUNDS(uop_alu(OP_MOD, p, ci(7)), 0, 6);
  BOUNDS(uop_alu(OP_MOD, p, ci(-7)), 0, 6);
  BOUNDS(uop_alu(OP_MOD, r10, d), 0, 2);
  BOUNDS(uop_alu(OP_MAX, n, m), -3, 7);
  BOUNDS(uop_alu(OP_MAX, n, ci(0)), 0, 7);
  /* comparisons are bool ranges: decided when the ranges do not overlap */
  BOUNDS(uop_alu(OP_CMPLT, r10, ci(10)), 1, 1);
  BOUNDS(uop_alu(OP_CMPLT, r10, ci(0)), 0, 0);
  BOUNDS(uop_alu(OP_CMPLT, r10, ci(5)), 0, 1);
  BOUNDS(uop_alu(OP_CMPLT, n, m), 0, 1);
  BOUNDS(uop_alu(OP_CMPLT, m, var("big", 3, 9)), 1, 1);
  BOUNDS(uop_alu(OP_CMPNE, m, ci(5)), 1, 1);
  BOUNDS(uop_alu(OP_CMPEQ, m, ci(5)), 0, 0);
  /* WHERE: one branch when the condition is decided, else the union */
  uop *c = uop_alu(OP_CMPLT, n, m);
  BOUNDS(uop_where(c, n, var("w", 20, 30)), -5, 30);
  BOUNDS(uop_where(uop_alu(OP_CMPLT, r10, ci(10)), n, var("w", 20, 30)), -5, 7);
  BOUNDS(uop_where(uop_alu(OP_CMPLT, r10, ci(0)), n, var("w", 20, 30)), 20, 30);
  BOUNDS(uop_where(uop_const_int(DT_BOOL, 1), m, n), -3, 2);
  EXPECT(uop_fits(uop_alu(OP_MUL, n, m)));

  /* int32 overflow: the range could wrap, so it becomes the whole int32 range */
  uop *big = var("big", 0, 1 << 30);
  uop *x4 = uop_alu(OP_MUL, big, ci(4));
  BOUNDS(x4, INT32_MIN, INT32_MAX);
  CHECK(!uop_fits(x4), "a product that can wrap does not fit");
  EXPECT(uop_fits(uop_alu(OP_MUL, big, ci(1))));
  BOUNDS(uop_alu(OP_MUL, big, ci(1)), 0, 1 << 30);
  uop *edge = uop_alu(OP_ADD, ci(INT32_MAX), var("b", 0, 1));
  BOUNDS(edge, INT32_MIN, INT32_MAX);
  EXPECT(!uop_fits(edge));
  EXPECT(uop_fits(uop_alu(OP_ADD, ci(INT32_MAX), var("z", 0, 0))));
  BOUNDS(uop_alu(OP_MUL, ci(-1), ci(INT32_MIN)), INT32_MIN, INT32_MAX); /* -INT32_MIN wraps */
  /* int64 too: exact 128-bit arithmetic, then the whole range */
  uop *l = uop_new1(OP_CAST, DT_I64, big, arg_none());
  BOUNDS(l, 0, 1 << 30);
  uop *l2 = uop_alu(OP_MUL, l, uop_const_int(DT_I64, (int64_t)1 << 32));
  BOUNDS(l2, 0, (int64_t)1 << 62);
  EXPECT(uop_fits(l2));
  uop *l3 = uop_alu(OP_MUL, l2, uop_const_int(DT_I64, 4)); /* up to 2^64 */
  BOUNDS(l3, INT64_MIN, INT64_MAX);
  EXPECT(!uop_fits(l3));
  /* floats carry no bounds and always "fit" */
  uop *fl = uop_const_float(DT_F32, 3.0);
  EXPECT(uop_fits(fl) && fl->vmin == 0 && fl->vmax == 0);

  uop_pool_pop();
  CHECK(uop_live_count() == base, "leak: %zu live, expected %zu", uop_live_count(), base);
}

/* ---- printer ---------------------------------------------------------------------- */

static void check_print(uop *u, const char *want, int line) {
  char *got = uop_to_string(u);
  CHECK(got && !strcmp(got, want), "line %d: printed\n%s-- expected\n%s", line, got ? got : "(null)", want);
  free(got);
}

static void test_printer(void) {
  size_t base = uop_live_count();
  uop_pool_push();
  uop *a = var("a", 0, 9);
  uop *s = uop_alu(OP_ADD, a, ci(1));
  check_print(uop_alu(OP_MUL, s, s),
              "MUL int32\n"
              "  n0 = ADD int32\n"
              "    DEFINE_VAR int32 a[0..9]\n"
              "    CONST int32 1\n"
              "  ^n0\n",
              __LINE__);
  /* shared nodes at different depths, two of them; a leaf used twice is named too */
  uop *t = uop_alu(OP_MAX, s, a);
  check_print(uop_alu(OP_ADD, uop_alu(OP_MUL, t, ci(2)), uop_alu(OP_ADD, t, s)),
              "ADD int32\n"
              "  MUL int32\n"
              "    n0 = MAX int32\n"
              "      n1 = ADD int32\n"
              "        n2 = DEFINE_VAR int32 a[0..9]\n"
              "        CONST int32 1\n"
              "      ^n2\n"
              "    CONST int32 2\n"
              "  ADD int32\n"
              "    ^n0\n"
              "    ^n1\n",
              __LINE__);
  /* args of each kind */
  uop *sink = uop_new(OP_SINK, dt_void(),
                      (uop *[]){uop_const_float(DT_F32, 2.5), uop_const_int(DT_BOOL, 1),
                                uop_new1(OP_COPY, DT_F32, buffer(DT_F32, 3, 8), arg_str("CPU"))},
                      3, arg_none());
  check_print(sink,
              "SINK void\n"
              "  CONST float32 2.5\n"
              "  CONST bool true\n"
              "  COPY float32 \"CPU\" shape=(8)\n"
              "    BUFFER float32 (3, 8)\n",
              __LINE__);
  uop_pool_pop();
  CHECK(uop_live_count() == base, "leak: %zu live, expected %zu", uop_live_count(), base);
}

/* ---- uop_check -------------------------------------------------------------------- */

static void expect_bad(const char *msg, const char *part, int line) {
  CHECK(msg && strstr(msg, part), "line %d: message \"%s\", expected one containing \"%s\"", line, msg ? msg : "(none)",
        part);
}
#define BAD(call, part) expect_bad(call, part, __LINE__)
#define GOOD(call)                                                                          \
  do {                                                                                      \
    const char *m_ = call;                                                                  \
    CHECK(!m_, "line %d: %s rejected: %s", __LINE__, #call, m_);                            \
  } while (0)

static void test_check(void) {
  size_t base = uop_live_count();
  uop_pool_push();
  uop *a = var("a", 0, 9), *b = var("b", 0, 9), *f = uop_const_float(DT_F32, 1.0);
  uop *l = uop_new1(OP_CAST, DT_I64, a, arg_none());
  uop *c = uop_alu(OP_CMPLT, a, b);
  uarg none = arg_none();
  uop *ab[3] = {a, b, a};

  GOOD(uop_check(OP_ADD, I32, ab, 2, &none));
  BAD(uop_check(OP_ADD, I32, ab, 1, &none), "number of sources");
  BAD(uop_check(OP_ADD, I32, ab, 3, &none), "number of sources");
  BAD(uop_check(OP_NEG, I32, ab, 2, &none), "number of sources");
  BAD(uop_check(OP_CONST, I32, ab, 1, &none), "number of sources");
  BAD(uop_check(OP_ADD, I32, (uop *[]){a, NULL}, 2, &none), "NULL");
  BAD(uop_check(OP_ADD, I32, (uop *[]){a, l}, 2, &none), "dtype");
  BAD(uop_check(OP_ADD, DT_I64, ab, 2, &none), "dtype");
  BAD(uop_check(OP_COUNT, I32, ab, 2, &none), "unknown op");

  /* WHERE */
  GOOD(uop_check(OP_WHERE, I32, (uop *[]){c, a, b}, 3, &none));
  BAD(uop_check(OP_WHERE, I32, (uop *[]){a, a, b}, 3, &none), "condition must be bool");
  BAD(uop_check(OP_WHERE, I32, (uop *[]){c, a, l}, 3, &none), "branches");
  /* comparisons */
  GOOD(uop_check(OP_CMPLT, DT_BOOL, ab, 2, &none));
  BAD(uop_check(OP_CMPLT, DT_BOOL, (uop *[]){a, l}, 2, &none), "share a dtype");
  BAD(uop_check(OP_CMPLT, I32, ab, 2, &none), "bool");
  /* BITCAST keeps the size */
  GOOD(uop_check(OP_BITCAST, I32, &f, 1, &none));
  BAD(uop_check(OP_BITCAST, DT_I64, &f, 1, &none), "size");
  BAD(uop_check(OP_BITCAST, dt_of(CG_FLOAT16), &f, 1, &none), "size");
  /* REDUCE's arg */
  uop *t = move(OP_RESHAPE, buffer(DT_F32, 0, 6), (int64_t[]){2, 3}, 2);
  uarg red_ok = arg_ints((int64_t[]){OP_ADD, 1}, 2), red_op = arg_ints((int64_t[]){OP_IDIV, 1}, 2);
  uarg red_int = arg_int(OP_ADD), red_empty = arg_ints((int64_t[]){0}, 0);
  GOOD(uop_check(OP_REDUCE, DT_F32, &t, 1, &red_ok));
  BAD(uop_check(OP_REDUCE, DT_F32, &t, 1, &red_op), "ADD, MUL or MAX");
  BAD(uop_check(OP_REDUCE, DT_F32, &t, 1, &red_int), "REDUCE's arg");
  BAD(uop_check(OP_REDUCE, DT_F32, &t, 1, &red_empty), "REDUCE's arg");
  BAD(uop_check(OP_REDUCE, DT_F32, &t, 0, &red_ok), "REDUCE needs a value");
  /* dtype classes */
  BAD(uop_check(OP_EXP2, I32, &a, 1, &none), "float");
  BAD(uop_check(OP_IDIV, DT_F32, (uop *[]){f, f}, 2, &none), "integer");
  BAD(uop_check(OP_RANGE, DT_F32, &f, 1, &none), "integer");
  BAD(uop_check(OP_STORE, I32, ab, 2, &none), "void");
  BAD(uop_check(OP_DEFINE_GLOBAL, DT_F32, NULL, 0, &(uarg){.kind = ARG_INT}), "DEFINE_GLOBAL's [slot, count]");
  /* args */
  BAD(uop_check(OP_CONST, DT_F32, NULL, 0, &(uarg){.kind = ARG_INT, .i = 1}), "CONST's arg");
  BAD(uop_check(OP_CONST, I32, NULL, 0, &(uarg){.kind = ARG_FLOAT, .f = 1}), "CONST's arg");
  uarg badvar = {.kind = ARG_VAR, .n = 2, .v = (int64_t[]){5, 4}, .s = "v"};
  BAD(uop_check(OP_DEFINE_VAR, I32, NULL, 0, &badvar), "min <= max");
  BAD(uop_check(OP_BUFFER, DT_F32, NULL, 0, &red_int), "BUFFER's arg");
  uarg perm3 = arg_ints((int64_t[]){0, 1, 2}, 3), pad1 = arg_ints((int64_t[]){0, 0, 1}, 3);
  BAD(uop_check(OP_PERMUTE, DT_F32, &t, 1, &perm3), "one entry per axis");
  BAD(uop_check(OP_PAD, DT_F32, &t, 1, &pad1), "two ints per axis");
  BAD(uop_check(OP_RESHAPE, DT_F32, &t, 1, &none), "tuple of ints");
  uop_pool_pop();
  CHECK(uop_live_count() == base, "leak: %zu live, expected %zu", uop_live_count(), base);
}

/* ---- shapes of movement ops --------------------------------------------------------- */

static void check_shape(const uop *u, int ndim, const int64_t *want, int line) {
  CHECK(shape_eq(u->shape, u->ndim, want, ndim), "line %d: %s has shape %s (ndim %d), expected %s", line, op_name(u->op),
        shape_str(u->shape, u->ndim), u->ndim, shape_str(want, ndim));
}
#define SHAPE(u, ...) check_shape(u, (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__}, __LINE__)

static void test_shapes(void) {
  size_t base = uop_live_count();
  uop_pool_push();
  uop *buf = buffer(DT_F32, 0, 24);
  SHAPE(buf, 24);
  uop *t = move(OP_RESHAPE, buf, (int64_t[]){2, 3, 4}, 3);
  SHAPE(t, 2, 3, 4);
  SHAPE(move(OP_PERMUTE, t, (int64_t[]){2, 0, 1}, 3), 4, 2, 3);
  SHAPE(move(OP_PERMUTE, t, (int64_t[]){0, 1, 2}, 3), 2, 3, 4);
  uop *one = move(OP_RESHAPE, buf, (int64_t[]){1, 3, 8}, 3);
  SHAPE(move(OP_EXPAND, one, (int64_t[]){5, 3, 8}, 3), 5, 3, 8);
  SHAPE(move(OP_PAD, t, (int64_t[]){1, 0, 0, 2, 3, 3}, 6), 3, 5, 10);
  SHAPE(move(OP_SHRINK, t, (int64_t[]){0, 1, 1, 3, 0, 4}, 6), 1, 2, 4);
  SHAPE(move(OP_FLIP, t, (int64_t[]){0, 1, 0}, 3), 2, 3, 4);
  SHAPE(uop_new1(OP_REDUCE, DT_F32, t, arg_ints((int64_t[]){OP_ADD, 1}, 2)), 2, 1, 4);
  SHAPE(uop_new1(OP_REDUCE, DT_F32, t, arg_ints((int64_t[]){OP_MAX, 0, 2}, 3)), 1, 3, 1);
  SHAPE(uop_new1(OP_REDUCE, DT_F32, t, arg_ints((int64_t[]){OP_MUL}, 1)), 2, 3, 4);
  /* chains, elementwise ops and ops that keep the shape */
  uop *p = move(OP_PERMUTE, move(OP_PAD, t, (int64_t[]){0, 0, 1, 1, 0, 0}, 6), (int64_t[]){1, 2, 0}, 3);
  SHAPE(p, 5, 4, 2);
  SHAPE(uop_alu(OP_ADD, p, p), 5, 4, 2);
  SHAPE(uop_alu1(OP_EXP2, p), 5, 4, 2);
  SHAPE(uop_new1(OP_CONTIGUOUS, DT_F32, p, arg_none()), 5, 4, 2);
  SHAPE(move(OP_RESHAPE, p, (int64_t[]){40}, 1), 40);
  CHECK(move(OP_RESHAPE, buffer(DT_F32, 1, 1), (int64_t[]){0}, 0)->ndim == 0, "reshape to a scalar");
  /* a scalar constant has ndim 0, a kernel-level node none (-1) */
  EXPECT(uop_const_float(DT_F32, 1)->ndim == 0 && var("v", 0, 1)->ndim == 0);
  EXPECT(uop_new1(OP_RANGE, I32, ci(4), arg_ints((int64_t[]){0, 0}, 2))->ndim == -1);
  /* the printer shows shapes of ops whose arg is not the shape */
  char *s = uop_to_string(move(OP_PERMUTE, t, (int64_t[]){2, 0, 1}, 3));
  const char *want = "PERMUTE float32 (2, 0, 1) shape=(4,2,3)\n";
  CHECK(s && !strncmp(s, want, strlen(want)), "%s", s);
  free(s);
  uop_pool_pop();
  CHECK(uop_live_count() == base, "leak: %zu live, expected %zu", uop_live_count(), base);
}

int main(void) {
  test_intern_args();
  test_intern_structure();
  test_intern_many();
  test_pool_frees_all();
  test_retain_survives_pool();
  test_shared_sources();
  test_long_chain();
  test_bounds();
  test_printer();
  test_check();
  test_shapes();
  CHECK(uop_live_count() == 0, "%zu nodes live at exit", uop_live_count());
  return test_summary();
}
