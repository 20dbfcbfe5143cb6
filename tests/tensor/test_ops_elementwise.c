/* Elementwise ops against the float64 reference (ref.h): every unary and binary op of
 * cgrad.h, where, clamp, cast, bitcast, comparisons, logical ops, broadcasting, 0-d
 * tensors, weak scalars and type promotion — on contiguous and non-contiguous inputs
 * (permuted, sliced, expanded, flipped, padded, reshaped views), float32 / float16 /
 * bfloat16 / int32 / bool. Tolerances: the table at the top of ref.h. */
#include "ref.h"

/* ---- reference functions ------------------------------------------------------------ */
static double r_neg(double x) { return -x; }
static double r_abs(double x) { return fabs(x); }
static double r_exp(double x) { return exp(x); }
static double r_log(double x) { return log(x); }
static double r_exp2(double x) { return exp2(x); }
static double r_log2(double x) { return log2(x); }
static double r_sqrt(double x) { return sqrt(x); }
static double r_rsqrt(double x) { return 1.0 / sqrt(x); }
static double r_recip(double x) { return 1.0 / x; }
static double r_sin(double x) { return sin(x); }
static double r_cos(double x) { return cos(x); }
static double r_tan(double x) { return tan(x); }
static double r_tanh(double x) { return tanh(x); }
static double r_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
static double r_relu(double x) { return x > 0 ? x : 0; }
static double r_gelu(double x) { return 0.5 * x * (1 + erf(x / sqrt(2))); }
static double r_gelu_tanh(double x) { return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))); }
static double r_erf(double x) { return erf(x); }
static double r_log1p(double x) { return log1p(x); }
static double r_expm1(double x) { return expm1(x); }
static double r_silu(double x) { return x / (1.0 + exp(-x)); }
static double r_floor(double x) { return floor(x); }
static double r_ceil(double x) { return ceil(x); }
static double r_round(double x) { return nearbyint(x); } /* default rounding: half to even */
static double r_sign(double x) { return x > 0 ? 1 : x < 0 ? -1 : 0; }
static double r_not(double x) { return x == 0; }

static double r_add(double a, double b) { return a + b; }
static double r_sub(double a, double b) { return a - b; }
static double r_mul(double a, double b) { return a * b; }
static double r_div(double a, double b) { return a / b; }
static double r_idiv(double a, double b) { return trunc(a / b); }
static double r_pow(double a, double b) { return pow(a, b); }
static double r_max(double a, double b) { return a > b ? a : b; }
static double r_min(double a, double b) { return a < b ? a : b; }
static double r_lt(double a, double b) { return a < b; }
static double r_le(double a, double b) { return a <= b; }
static double r_gt(double a, double b) { return a > b; }
static double r_ge(double a, double b) { return a >= b; }
static double r_eq(double a, double b) { return a == b; }
static double r_ne(double a, double b) { return a != b; }
static double r_and(double a, double b) { return a != 0 && b != 0; }
static double r_or(double a, double b) { return a != 0 || b != 0; }
static double r_xor(double a, double b) { return (a != 0) != (b != 0); }

/* ---- the op tables ------------------------------------------------------------------- */
typedef struct {
  const char *name;
  cg_tensor *(*op)(cg_tensor *);
  fn1 ref;
  gen_t gen;     /* input domain */
  tol_kind tk;
  bool ints;     /* also defined on int32 (same dtype out) */
  bool to_bool;  /* result is bool */
} unary_case;
static const unary_case UNARY[] = {
  {"neg", cg_neg, r_neg, {G_UNIF, -3, 3}, TK_BASIC, true, false},
  {"abs", cg_abs, r_abs, {G_UNIF, -3, 3}, TK_BASIC, true, false},
  {"exp", cg_exp, r_exp, {G_UNIF, -4, 4}, TK_TRANSC, false, false},
  {"log", cg_log, r_log, {G_UNIF, 0.05, 8}, TK_TRANSC, false, false},
  {"exp2", cg_exp2, r_exp2, {G_UNIF, -5, 5}, TK_TRANSC, false, false},
  {"log2", cg_log2, r_log2, {G_UNIF, 0.05, 8}, TK_TRANSC, false, false},
  {"sqrt", cg_sqrt, r_sqrt, {G_UNIF, 0, 9}, TK_TRANSC, false, false},
  {"rsqrt", cg_rsqrt, r_rsqrt, {G_UNIF, 0.05, 9}, TK_TRANSC, false, false},
  {"reciprocal", cg_reciprocal, r_recip, {G_NONZERO, 0.1, 4}, TK_BASIC, false, false},
  {"sin", cg_sin, r_sin, {G_UNIF, -6.5, 6.5}, TK_TRANSC, false, false},
  {"cos", cg_cos, r_cos, {G_UNIF, -6.5, 6.5}, TK_TRANSC, false, false},
  {"tan", cg_tan, r_tan, {G_UNIF, -1.2, 1.2}, TK_TRANSC, false, false},
  {"tanh", cg_tanh, r_tanh, {G_UNIF, -4, 4}, TK_TRANSC, false, false},
  {"sigmoid", cg_sigmoid, r_sigmoid, {G_UNIF, -6, 6}, TK_TRANSC, false, false},
  {"relu", cg_relu, r_relu, {G_QUARTER, -2, 2}, TK_BASIC, true, false},
  {"gelu", cg_gelu, r_gelu, {G_UNIF, -4, 4}, TK_TRANSC, false, false},
  {"gelu_tanh", cg_gelu_tanh, r_gelu_tanh, {G_UNIF, -4, 4}, TK_TRANSC, false, false},
  {"erf", cg_erf, r_erf, {G_UNIF, -4.5, 4.5}, TK_TRANSC, false, false},
  {"log1p", cg_log1p, r_log1p, {G_UNIF, -0.9, 3}, TK_TRANSC, false, false},
  {"expm1", cg_expm1, r_expm1, {G_UNIF, -3, 3}, TK_TRANSC, false, false},
  {"silu", cg_silu, r_silu, {G_UNIF, -5, 5}, TK_TRANSC, false, false},
  {"floor", cg_floor, r_floor, {G_UNIF, -4, 4}, TK_BASIC, false, false},
  {"ceil", cg_ceil, r_ceil, {G_UNIF, -4, 4}, TK_BASIC, false, false},
  {"round", cg_round, r_round, {G_QUARTER, -3, 3}, TK_BASIC, false, false},
  {"sign", cg_sign, r_sign, {G_QUARTER, -2, 2}, TK_BASIC, true, false},
  {"logical_not", cg_logical_not, r_not, {G_QUARTER, -1, 1}, TK_EXACT, true, true},
};
#define NUNARY (int)(sizeof UNARY / sizeof UNARY[0])

typedef struct {
  const char *name;
  cg_tensor *(*op)(cg_tensor *, cg_tensor *);
  fn2 ref;
  gen_t ga, gb;
  tol_kind tk;
  bool ints, floats;
  int out; /* 0: promoted input dtype; 1: bool; 2: float32 for ints (true division) */
} binary_case;
static const binary_case BINARY[] = {
  {"add", cg_add, r_add, {G_UNIF, -3, 3}, {G_UNIF, -3, 3}, TK_BASIC, true, true, 0},
  {"sub", cg_sub, r_sub, {G_UNIF, -3, 3}, {G_UNIF, -3, 3}, TK_BASIC, true, true, 0},
  {"mul", cg_mul, r_mul, {G_UNIF, -3, 3}, {G_UNIF, -3, 3}, TK_BASIC, true, true, 0},
  {"div", cg_div, r_div, {G_UNIF, -3, 3}, {G_NONZERO, 0.25, 4}, TK_BASIC, true, true, 2},
  {"idiv", cg_idiv, r_idiv, {G_UNIF, -30, 30}, {G_NONZERO, 1, 7}, TK_EXACT, true, false, 0},
  {"pow", cg_pow, r_pow, {G_UNIF, 0.25, 3}, {G_UNIF, -2, 2}, TK_TRANSC, false, true, 0},
  {"maximum", cg_maximum, r_max, {G_SMALLINT, -3, 3}, {G_UNIF, -3, 3}, TK_BASIC, true, true, 0},
  {"minimum", cg_minimum, r_min, {G_SMALLINT, -3, 3}, {G_UNIF, -3, 3}, TK_BASIC, true, true, 0},
  {"lt", cg_lt, r_lt, {G_SMALLINT, -2, 2}, {G_SMALLINT, -2, 2}, TK_EXACT, true, true, 1},
  {"le", cg_le, r_le, {G_SMALLINT, -2, 2}, {G_SMALLINT, -2, 2}, TK_EXACT, true, true, 1},
  {"gt", cg_gt, r_gt, {G_SMALLINT, -2, 2}, {G_SMALLINT, -2, 2}, TK_EXACT, true, true, 1},
  {"ge", cg_ge, r_ge, {G_SMALLINT, -2, 2}, {G_SMALLINT, -2, 2}, TK_EXACT, true, true, 1},
  {"eq", cg_eq, r_eq, {G_SMALLINT, -2, 2}, {G_SMALLINT, -2, 2}, TK_EXACT, true, true, 1},
  {"ne", cg_ne, r_ne, {G_SMALLINT, -2, 2}, {G_SMALLINT, -2, 2}, TK_EXACT, true, true, 1},
  {"logical_and", cg_logical_and, r_and, {G_QUARTER, -1, 1}, {G_QUARTER, -1, 1}, TK_EXACT, true, true, 1},
  {"logical_or", cg_logical_or, r_or, {G_QUARTER, -1, 1}, {G_QUARTER, -1, 1}, TK_EXACT, true, true, 1},
  {"logical_xor", cg_logical_xor, r_xor, {G_QUARTER, -1, 1}, {G_QUARTER, -1, 1}, TK_EXACT, true, true, 1},
};
#define NBINARY (int)(sizeof BINARY / sizeof BINARY[0])

/* PyTorch promotion of two tensors (no 0-d / weak rules): bool < ints < floats; within a
 * kind the wider wins; float16 with bfloat16 gives float32. */
static int dt_kind(cg_dtype dt) { return dt == CG_BOOL ? 0 : dt_is_int(dt) ? 1 : 2; }
static cg_dtype promote(cg_dtype a, cg_dtype b) {
  if (a == b) return a;
  if (dt_kind(a) != dt_kind(b)) return dt_kind(a) > dt_kind(b) ? a : b;
  if ((a == CG_FLOAT16 && b == CG_BFLOAT16) || (a == CG_BFLOAT16 && b == CG_FLOAT16)) return CG_FLOAT32;
  return cg_dtype_size(a) >= cg_dtype_size(b) ? a : b;
}

static int rand_ndim(void) { return (int)rng_int(0, 4); }
static char g_what[256];
static const char *what(const char *fmt, const char *a, const char *b, const char *c) {
  snprintf(g_what, sizeof g_what, fmt, a, b, c);
  return g_what;
}

/* ---- unary ----------------------------------------------------------------------------- */
static void test_unary(void) {
  static const cg_dtype FDT[] = {CG_FLOAT32, CG_FLOAT16, CG_BFLOAT16};
  long iters = test_iters();
  for (int i = 0; i < NUNARY; i++) {
    const unary_case *c = &UNARY[i];
    case_begin(c->name);
    for (long it = 0; it < iters; it++) {
      for (int d = 0; d < 3; d++) {
        cg_dtype dt = FDT[d];
        /* float32: contiguous and a random view; half types: one random view */
        for (int v = d == 0 ? 0 : 1; v < 2; v++) {
          int64_t shape[RMAX];
          int nd = rand_shape(shape, rand_ndim(), 5, true);
          int kind = v == 0 ? V_CONTIG : (int)rng_int(1, V_COUNT - 1);
          tp a = tp_view(dt, shape, nd, c->gen, kind);
          rnd want = rn_map1(&a.r, c->ref, c->to_bool ? CG_BOOL : dt);
          cg_dtype odt = c->to_bool ? CG_BOOL : dt;
          ref_check_at(__FILE__, __LINE__, what("%s %s %s", c->name, cg_dtype_name(dt), VIEW_NAMES[kind]), c->op(a.t), odt,
                       &want, c->tk, 1, NULL);
        }
      }
      if (c->ints) {
        int64_t shape[RMAX];
        int nd = rand_shape(shape, rand_ndim(), 5, true);
        int kind = (int)rng_int(0, V_COUNT - 1);
        gen_t g = c->gen;
        g.kind = G_UNIF;
        g.lo = -9, g.hi = 9;
        tp a = tp_view(CG_INT32, shape, nd, g, kind);
        cg_dtype odt = c->to_bool ? CG_BOOL : CG_INT32;
        rnd want = rn_map1(&a.r, c->ref, odt);
        ref_check_at(__FILE__, __LINE__, what("%s %s %s", c->name, "int32", VIEW_NAMES[kind]), c->op(a.t), odt, &want,
                     TK_EXACT, 1, NULL);
      }
    }
    case_end();
  }

  /* special values: exact results PyTorch defines */
  case_begin("unary special values");
  {
    const double xs[] = {-0.0, 0.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.0, -3.0};
    int64_t n = 10;
    tp a = tp_from_values(CG_FLOAT32, &n, 1, xs);
    rnd w = rn_map1(&a.r, r_round, CG_FLOAT32);
    REF_CHECK("round half to even", cg_round(a.t), CG_FLOAT32, w, TK_EXACT);
    w = rn_map1(&a.r, r_relu, CG_FLOAT32);
    REF_CHECK("relu at 0", cg_relu(a.t), CG_FLOAT32, w, TK_EXACT);
    w = rn_map1(&a.r, r_sign, CG_FLOAT32);
    REF_CHECK("sign of ±0", cg_sign(a.t), CG_FLOAT32, w, TK_EXACT);
    const double ps[] = {0.0, 1.0, 4.0, INFINITY};
    int64_t m = 4;
    tp p = tp_from_values(CG_FLOAT32, &m, 1, ps);
    w = rn_map1(&p.r, r_log, CG_FLOAT32);
    REF_CHECK("log(0) = -inf, log(inf) = inf", cg_log(p.t), CG_FLOAT32, w, TK_TRANSC);
    w = rn_map1(&p.r, r_sqrt, CG_FLOAT32);
    REF_CHECK("sqrt(0), sqrt(inf)", cg_sqrt(p.t), CG_FLOAT32, w, TK_TRANSC);
    const double ls[] = {-30, -10, 10, 30, 88};
    int64_t k = 5;
    tp l = tp_from_values(CG_FLOAT32, &k, 1, ls);
    w = rn_map1(&l.r, r_sigmoid, CG_FLOAT32);
    REF_CHECK("sigmoid saturates", cg_sigmoid(l.t), CG_FLOAT32, w, TK_TRANSC);
    w = rn_map1(&l.r, r_tanh, CG_FLOAT32);
    REF_CHECK("tanh saturates", cg_tanh(l.t), CG_FLOAT32, w, TK_TRANSC);
  }
  case_end();

  /* an int32 input to a float op gives float32, as in PyTorch */
  case_begin("int32 into float ops");
  {
    int64_t shape[2] = {3, 4};
    tp a = tp_rand(CG_INT32, shape, 2, (gen_t){G_UNIF, 1, 20});
    rnd w = rn_map1(&a.r, r_sqrt, CG_FLOAT32);
    REF_CHECK("sqrt(int32) -> float32", cg_sqrt(a.t), CG_FLOAT32, w, TK_TRANSC);
    w = rn_map1(&a.r, r_log, CG_FLOAT32);
    REF_CHECK("log(int32) -> float32", cg_log(a.t), CG_FLOAT32, w, TK_TRANSC);
  }
  case_end();
}

/* ---- binary ---------------------------------------------------------------------------- */
/* Two broadcast-compatible shapes for an output of nd dims. */
static void bcast_pair(int64_t *out, int nd, int64_t *sa, int *na, int64_t *sb, int *nb) {
  rand_shape(out, nd, 4, true);
  *na = nd - (int)rng_int(0, nd > 0 ? 1 : 0);
  *nb = nd - (int)rng_int(0, nd);
  for (int i = 0; i < *na; i++) sa[i] = (rng_int(0, 3) == 0) ? 1 : out[nd - *na + i];
  for (int i = 0; i < *nb; i++) sb[i] = (rng_int(0, 3) == 0) ? 1 : out[nd - *nb + i];
}
static void run_binary(const binary_case *c, cg_dtype da, cg_dtype db, int ka, int kb, bool bcast) {
  int64_t out[RMAX], sa[RMAX], sb[RMAX];
  int nd = rand_ndim(), na = nd, nb = nd;
  if (bcast) bcast_pair(out, nd, sa, &na, sb, &nb);
  else {
    rand_shape(out, nd, 5, true);
    memcpy(sa, out, sizeof sa);
    memcpy(sb, out, sizeof sb);
  }
  gen_t ga = c->ga, gb = c->gb;
  if (dt_is_int(da) && ga.kind == G_UNIF && c->ref != r_idiv) ga.lo = -20, ga.hi = 20;
  if (dt_is_int(db) && gb.kind == G_UNIF) gb.lo = -20, gb.hi = 20;
  tp a = tp_view(da, sa, na, ga, ka), b = tp_view(db, sb, nb, gb, kb);
  cg_dtype pt = promote(da, db);
  cg_dtype odt = c->out == 1 ? CG_BOOL : (c->out == 2 && !dt_is_float(pt)) ? CG_FLOAT32 : pt;
  rnd want = rn_map2(&a.r, &b.r, c->ref, odt);
  if (odt == CG_INT32) want = rn_quant(&want, CG_INT32);
  char w[200];
  snprintf(w, sizeof w, "%s %s %s %s %s%s", c->name, cg_dtype_name(da), VIEW_NAMES[ka], cg_dtype_name(db), VIEW_NAMES[kb],
           bcast ? " broadcast" : "");
  ref_check_at(__FILE__, __LINE__, w, c->op(a.t, b.t), odt, &want, dt_is_float(odt) ? c->tk : TK_EXACT, 1, NULL);
}
static void test_binary(void) {
  long iters = test_iters();
  for (int i = 0; i < NBINARY; i++) {
    const binary_case *c = &BINARY[i];
    case_begin(c->name);
    bool logical = c->ga.kind == G_QUARTER && c->out == 1;
    for (long it = 0; it < iters; it++) {
      if (c->floats) {
        run_binary(c, CG_FLOAT32, CG_FLOAT32, V_CONTIG, V_CONTIG, false);
        run_binary(c, CG_FLOAT32, CG_FLOAT32, (int)rng_int(1, V_COUNT - 1), (int)rng_int(0, V_COUNT - 1), true);
        run_binary(c, CG_FLOAT16, CG_FLOAT16, (int)rng_int(0, V_COUNT - 1), (int)rng_int(0, V_COUNT - 1), rng_u64() & 1);
        run_binary(c, CG_BFLOAT16, CG_BFLOAT16, (int)rng_int(0, V_COUNT - 1), (int)rng_int(0, V_COUNT - 1), rng_u64() & 1);
      }
      if (c->ints) run_binary(c, CG_INT32, CG_INT32, (int)rng_int(0, V_COUNT - 1), (int)rng_int(0, V_COUNT - 1), true);
      if (logical) run_binary(c, CG_BOOL, CG_BOOL, (int)rng_int(0, V_COUNT - 1), (int)rng_int(0, V_COUNT - 1), true);
    }
    case_end();
  }
}

/* ---- type promotion, 0-d tensors and weak scalars ------------------------------------ */
static void test_promotion(void) {
  case_begin("promotion");
  {
    static const struct { cg_dtype a, b; } PAIRS[] = {
      {CG_INT32, CG_FLOAT32}, {CG_FLOAT32, CG_INT32}, {CG_INT32, CG_FLOAT16}, {CG_FLOAT16, CG_BFLOAT16},
      {CG_FLOAT16, CG_FLOAT32}, {CG_BFLOAT16, CG_FLOAT32}, {CG_BOOL, CG_INT32}, {CG_BOOL, CG_FLOAT32},
    };
    for (size_t i = 0; i < sizeof PAIRS / sizeof PAIRS[0]; i++) {
      run_binary(&BINARY[0], PAIRS[i].a, PAIRS[i].b, (int)rng_int(0, V_COUNT - 1), V_CONTIG, true); /* add */
      run_binary(&BINARY[2], PAIRS[i].a, PAIRS[i].b, V_CONTIG, (int)rng_int(0, V_COUNT - 1), true); /* mul */
    }
    run_binary(&BINARY[3], CG_INT32, CG_INT32, V_CONTIG, V_PERMUTE, true);  /* int / int -> float32 */
    run_binary(&BINARY[8], CG_INT32, CG_FLOAT32, V_CONTIG, V_CONTIG, true); /* lt across kinds */
    /* bool + bool stays bool (logical or); bool * bool is logical and */
    int64_t s[2] = {3, 5};
    tp a = tp_rand(CG_BOOL, s, 2, GEN_STD), b = tp_rand(CG_BOOL, s, 2, GEN_STD);
    rnd w = rn_map2(&a.r, &b.r, r_or, CG_BOOL);
    REF_CHECK("bool + bool -> bool (or)", cg_add(a.t, b.t), CG_BOOL, w, TK_EXACT);
    w = rn_map2(&a.r, &b.r, r_and, CG_BOOL);
    REF_CHECK("bool * bool -> bool (and)", cg_mul(a.t, b.t), CG_BOOL, w, TK_EXACT);
  }
  case_end();

  case_begin("0-d tensors");
  {
    static const cg_dtype DT[] = {CG_FLOAT32, CG_INT32, CG_FLOAT16};
    for (int d = 0; d < 3; d++) {
      int64_t s[3];
      int nd = rand_shape(s, (int)rng_int(1, 3), 4, true);
      tp x = tp_view(DT[d], s, nd, GEN_STD, (int)rng_int(0, V_COUNT - 1));
      tp z = tp_rand(DT[d], s, 0, (gen_t){G_NONZERO, 0.5, 2});
      rnd w = rn_map2(&x.r, &z.r, r_mul, DT[d]);
      ref_check_at(__FILE__, __LINE__, what("tensor * 0-d %s", cg_dtype_name(DT[d]), 0, 0), cg_mul(x.t, z.t), DT[d], &w,
                   TK_BASIC, 1, NULL);
      w = rn_map2(&z.r, &x.r, r_sub, DT[d]);
      ref_check_at(__FILE__, __LINE__, what("0-d - tensor %s", cg_dtype_name(DT[d]), 0, 0), cg_sub(z.t, x.t), DT[d], &w,
                   TK_BASIC, 1, NULL);
      tp z2 = tp_rand(DT[d], s, 0, GEN_STD);
      w = rn_map2(&z.r, &z2.r, r_add, DT[d]);
      ref_check_at(__FILE__, __LINE__, what("0-d + 0-d %s", cg_dtype_name(DT[d]), 0, 0), cg_add(z.t, z2.t), DT[d], &w,
                   TK_BASIC, 1, NULL);
    }
  }
  case_end();

  case_begin("weak scalars");
  {
    int64_t s[2] = {4, 3};
    tp f = tp_view(CG_FLOAT32, s, 2, GEN_STD, V_PERMUTE);
    tp i = tp_view(CG_INT32, s, 2, (gen_t){G_UNIF, -9, 9}, V_FLIP);
    tp h = tp_view(CG_FLOAT16, s, 2, GEN_STD, V_SLICE);
    tp b = tp_view(CG_BFLOAT16, s, 2, GEN_STD, V_CONTIG);
    tp k = tp_view(CG_BOOL, s, 2, GEN_STD, V_EXPAND);
    tp p = tp_view(CG_FLOAT32, s, 2, (gen_t){G_UNIF, 0.1, 3}, V_PAD);
    rnd c25 = rn_scalar(CG_FLOAT64, 2.5), c2 = rn_scalar(CG_FLOAT64, 2), c1 = rn_scalar(CG_FLOAT64, 1);
    rnd c3 = rn_scalar(CG_FLOAT64, 3), c15 = rn_scalar(CG_FLOAT64, 1.5), c05 = rn_scalar(CG_FLOAT64, 0.5);
    rnd cm1 = rn_scalar(CG_FLOAT64, -1), c0 = rn_scalar(CG_FLOAT64, 0);
    rnd w;
    w = rn_map2(&f.r, &c25, r_add, CG_FLOAT32);
    REF_CHECK("float32 + scalar(2.5) -> float32", cg_add(f.t, cg_scalar(2.5)), CG_FLOAT32, w, TK_BASIC);
    w = rn_map2(&i.r, &c2, r_add, CG_INT32);
    REF_CHECK("int32 + scalar(2) -> int32", cg_add(i.t, cg_scalar(2)), CG_INT32, w, TK_EXACT);
    w = rn_map2(&i.r, &c25, r_add, CG_FLOAT32);
    REF_CHECK("int32 + scalar(2.5) -> float32", cg_add(i.t, cg_scalar(2.5)), CG_FLOAT32, w, TK_EXACT);
    w = rn_map2(&i.r, &c05, r_mul, CG_FLOAT32);
    REF_CHECK("int32 * scalar(0.5) -> float32", cg_mul(i.t, cg_scalar(0.5)), CG_FLOAT32, w, TK_EXACT);
    w = rn_map2(&h.r, &c1, r_add, CG_FLOAT16);
    REF_CHECK("float16 + scalar(1) -> float16", cg_add(h.t, cg_scalar(1)), CG_FLOAT16, w, TK_BASIC);
    w = rn_map2(&b.r, &c3, r_mul, CG_BFLOAT16);
    REF_CHECK("bfloat16 * scalar(3) -> bfloat16", cg_mul(b.t, cg_scalar(3)), CG_BFLOAT16, w, TK_BASIC);
    w = rn_map2(&c2, &i.r, r_sub, CG_INT32);
    REF_CHECK("scalar(2) - int32 -> int32", cg_sub(cg_scalar(2), i.t), CG_INT32, w, TK_EXACT);
    w = rn_map2(&i.r, &c15, r_lt, CG_BOOL);
    REF_CHECK("int32 < scalar(1.5) -> bool", cg_lt(i.t, cg_scalar(1.5)), CG_BOOL, w, TK_EXACT);
    w = rn_map2(&i.r, &c2, r_div, CG_FLOAT32);
    REF_CHECK("int32 / scalar(2) -> float32", cg_div(i.t, cg_scalar(2)), CG_FLOAT32, w, TK_BASIC);
    w = rn_map2(&p.r, &c2, r_pow, CG_FLOAT32);
    REF_CHECK("float32 ** scalar(2)", cg_pow(p.t, cg_scalar(2)), CG_FLOAT32, w, TK_TRANSC);
    w = rn_map2(&c2, &p.r, r_pow, CG_FLOAT32);
    REF_CHECK("scalar(2) ** float32", cg_pow(cg_scalar(2), p.t), CG_FLOAT32, w, TK_TRANSC);
    w = rn_map2(&h.r, &c0, r_max, CG_FLOAT16);
    REF_CHECK("maximum(float16, scalar(0)) -> float16", cg_maximum(h.t, cg_scalar(0)), CG_FLOAT16, w, TK_BASIC);
    w = rn_where(&k.r, &h.r, &cm1, CG_FLOAT16);
    REF_CHECK("where(bool, float16, scalar(-1)) -> float16", cg_where(k.t, h.t, cg_scalar(-1)), CG_FLOAT16, w, TK_EXACT);
    w = rn_where(&k.r, &c1, &i.r, CG_INT32);
    REF_CHECK("where(bool, scalar(1), int32) -> int32", cg_where(k.t, cg_scalar(1), i.t), CG_INT32, w, TK_EXACT);
    rnd fr = rn_map1(&f.r, r_relu, CG_FLOAT32);
    w = rn_map2(&fr, &c0, r_eq, CG_BOOL);
    REF_CHECK("relu(float32) == scalar(0)", cg_eq(cg_relu(f.t), cg_scalar(0)), CG_BOOL, w, TK_EXACT);
  }
  case_end();
}

/* ---- where / clamp ---------------------------------------------------------------------- */
static double g_lo, g_hi;
static double r_clamp(double x) { return x < g_lo ? g_lo : x > g_hi ? g_hi : x; }
static void test_where_clamp(void) {
  case_begin("where");
  for (long it = 0; it < test_iters(); it++) {
    static const cg_dtype DT[] = {CG_FLOAT32, CG_INT32, CG_FLOAT16, CG_BOOL};
    for (int d = 0; d < 4; d++) {
      int64_t out[RMAX], sc[RMAX], sa[RMAX], sb[RMAX];
      int nd = rand_ndim(), nc, na, nb;
      bcast_pair(out, nd, sa, &na, sb, &nb);
      nc = nd - (int)rng_int(0, nd);
      for (int j = 0; j < nc; j++) sc[j] = rng_int(0, 2) == 0 ? 1 : out[nd - nc + j];
      tp c = tp_view(CG_BOOL, sc, nc, GEN_STD, (int)rng_int(0, V_COUNT - 1));
      tp a = tp_view(DT[d], sa, na, GEN_STD, (int)rng_int(0, V_COUNT - 1));
      tp b = tp_view(DT[d], sb, nb, (gen_t){G_UNIF, 5, 9}, (int)rng_int(0, V_COUNT - 1));
      rnd w = rn_where(&c.r, &a.r, &b.r, DT[d]);
      ref_check_at(__FILE__, __LINE__, what("where %s %s", cg_dtype_name(DT[d]), shape_str(out, nd), 0),
                   cg_where(c.t, a.t, b.t), DT[d], &w, TK_EXACT, 1, NULL);
    }
    /* a float condition means != 0 */
    int64_t s[2] = {3, 4};
    tp c = tp_rand(CG_FLOAT32, s, 2, (gen_t){G_QUARTER, -0.5, 0.5});
    tp a = tp_rand(CG_FLOAT32, s, 2, GEN_STD), b = tp_rand(CG_FLOAT32, s, 2, GEN_STD);
    rnd w = rn_where(&c.r, &a.r, &b.r, CG_FLOAT32);
    REF_CHECK("where with a float condition", cg_where(c.t, a.t, b.t), CG_FLOAT32, w, TK_EXACT);
  }
  case_end();

  case_begin("clamp");
  for (long it = 0; it < test_iters(); it++) {
    for (int v = 0; v < 3; v++) {
      int64_t s[RMAX];
      int nd = rand_shape(s, rand_ndim(), 5, true);
      int kind = (int)rng_int(0, V_COUNT - 1);
      tp a = tp_view(CG_FLOAT32, s, nd, (gen_t){G_QUARTER, -3, 3}, kind);
      g_lo = 0.25 * (double)rng_int(-8, 0);
      g_hi = g_lo + 0.25 * (double)rng_int(0, 12);
      rnd w = rn_map1(&a.r, r_clamp, CG_FLOAT32);
      ref_check_at(__FILE__, __LINE__, what("clamp float32 %s", VIEW_NAMES[kind], 0, 0), cg_clamp(a.t, g_lo, g_hi), CG_FLOAT32,
                   &w, TK_EXACT, 1, NULL);
      tp ai = tp_view(CG_INT32, s, nd, (gen_t){G_UNIF, -9, 9}, kind);
      g_lo = (double)rng_int(-5, 0);
      g_hi = g_lo + (double)rng_int(0, 8);
      w = rn_map1(&ai.r, r_clamp, CG_INT32);
      ref_check_at(__FILE__, __LINE__, what("clamp int32 %s", VIEW_NAMES[kind], 0, 0), cg_clamp(ai.t, g_lo, g_hi), CG_INT32,
                   &w, TK_EXACT, 1, NULL);
      tp ah = tp_view(CG_FLOAT16, s, nd, GEN_STD, kind);
      g_lo = -1, g_hi = 0.5;
      w = rn_map1(&ah.r, r_clamp, CG_FLOAT16);
      ref_check_at(__FILE__, __LINE__, what("clamp float16 %s", VIEW_NAMES[kind], 0, 0), cg_clamp(ah.t, g_lo, g_hi), CG_FLOAT16,
                   &w, TK_EXACT, 1, NULL);
    }
  }
  case_end();
}

/* ---- cast / bitcast --------------------------------------------------------------------- */
static cg_dtype g_cast_to;
static double r_cast(double x) {
  if (g_cast_to == CG_BOOL) return x != 0;
  if (dt_is_int(g_cast_to)) return trunc(x); /* PyTorch: float -> int truncates */
  return x;                                  /* to a float: the tolerance covers rounding */
}
static void test_cast(void) {
  static const cg_dtype DT[] = {CG_FLOAT32, CG_INT32, CG_BOOL, CG_FLOAT16, CG_BFLOAT16};
  case_begin("cast");
  for (long it = 0; it < test_iters(); it++) {
    for (int s = 0; s < 5; s++) {
      for (int d = 0; d < 5; d++) {
        cg_dtype from = DT[s], to = DT[d];
        int64_t sh[RMAX];
        int nd = rand_shape(sh, rand_ndim(), 5, true);
        int kind = (int)rng_int(0, V_COUNT - 1);
        /* floats in [-300, 300] with fractions and exact zeros; ints in f16's exact range */
        gen_t g = dt_is_int(from) ? (gen_t){G_UNIF, -2000, 2000} : (gen_t){G_QUARTER, -300, 300};
        if (rng_u64() & 1) g = (gen_t){G_QUARTER, -2, 2};
        tp a = tp_view(from, sh, nd, g, kind);
        g_cast_to = to;
        rnd w = rn_map1(&a.r, r_cast, to);
        char msg[128];
        snprintf(msg, sizeof msg, "cast %s -> %s (%s)", cg_dtype_name(from), cg_dtype_name(to), VIEW_NAMES[kind]);
        ref_check_at(__FILE__, __LINE__, msg, cg_cast(a.t, to), to, &w, dt_is_float(to) ? TK_BASIC : TK_EXACT, 1, NULL);
      }
    }
    /* truncation toward zero, and the float->bool of tiny values */
    const double xs[] = {-2.75, -2.5, -0.5, -0.25, 0.0, 0.25, 0.5, 2.5, 2.75, (double)(float)1e-30};
    int64_t n = 10;
    tp a = tp_from_values(CG_FLOAT32, &n, 1, xs);
    g_cast_to = CG_INT32;
    rnd w = rn_map1(&a.r, r_cast, CG_INT32);
    REF_CHECK("float32 -> int32 truncates", cg_cast(a.t, CG_INT32), CG_INT32, w, TK_EXACT);
    g_cast_to = CG_BOOL;
    w = rn_map1(&a.r, r_cast, CG_BOOL);
    REF_CHECK("float32 -> bool is != 0", cg_cast(a.t, CG_BOOL), CG_BOOL, w, TK_EXACT);
    /* a cast into a chain: (int32 -> float32) / 2 */
    int64_t sh[2] = {3, 5};
    tp i = tp_view(CG_INT32, sh, 2, (gen_t){G_UNIF, -50, 50}, V_PERMUTE);
    rnd two = rn_scalar(CG_FLOAT64, 2);
    w = rn_map2(&i.r, &two, r_div, CG_FLOAT32);
    REF_CHECK("cast(int32 -> float32) / 2", cg_div(cg_cast(i.t, CG_FLOAT32), cg_full(2, CG_FLOAT32, sh, 2)), CG_FLOAT32, w,
              TK_BASIC);
  }
  case_end();

  case_begin("bitcast");
  for (long it = 0; it < test_iters(); it++) {
    int64_t sh[RMAX];
    int nd = rand_shape(sh, (int)rng_int(1, 3), 5, true);
    int64_t n = shape_numel(sh, nd);
    int kind = (int)rng_int(0, V_COUNT - 1);
    /* float32 -> int32: the bits */
    tp f = tp_view(CG_FLOAT32, sh, nd, GEN_STD, kind);
    rnd fc = rn_contig(&f.r), w = rn_new(CG_INT32, sh, nd);
    for (int64_t j = 0; j < n; j++) w.base[j] = (double)(int32_t)f32_bits((float)fc.base[j]);
    ref_check_at(__FILE__, __LINE__, what("bitcast float32 -> int32 (%s)", VIEW_NAMES[kind], 0, 0), cg_bitcast(f.t, CG_INT32),
                 CG_INT32, &w, TK_EXACT, 1, NULL);
    /* int32 -> float32: ints that are the bits of normal floats */
    double *iv = (double *)ref_alloc((size_t)(n ? n : 1) * sizeof(double));
    for (int64_t j = 0; j < n; j++) iv[j] = (double)(int32_t)f32_bits((float)rng_unif(-100, 100));
    tp ib = tp_from_values(CG_INT32, sh, nd, iv);
    int perm[RMAX];
    rand_perm(perm, nd);
    tp ip = tp_permute(ib, perm);
    rnd ipc = rn_contig(&ip.r);
    w = rn_new(CG_FLOAT32, ip.r.shape, nd);
    for (int64_t j = 0; j < n; j++) w.base[j] = bits_f32((uint32_t)(int32_t)ipc.base[j]);
    REF_CHECK("bitcast permuted int32 -> float32", cg_bitcast(ip.t, CG_FLOAT32), CG_FLOAT32, w, TK_EXACT);
    /* float16 -> bfloat16: the same 16 bits read as bfloat16 (finite values only) */
    double *hv = (double *)ref_alloc((size_t)(n ? n : 1) * sizeof(double));
    for (int64_t j = 0; j < n; j++) hv[j] = quant(CG_FLOAT16, rng_unif(-1, 1) * 1e-3);
    tp h = tp_from_values(CG_FLOAT16, sh, nd, hv);
    w = rn_new(CG_BFLOAT16, sh, nd);
    for (int64_t j = 0; j < n; j++) w.base[j] = bits_f32((uint32_t)cg_f32_to_f16((float)hv[j]) << 16);
    REF_CHECK("bitcast float16 -> bfloat16", cg_bitcast(h.t, CG_BFLOAT16), CG_BFLOAT16, w, TK_EXACT);
    /* round trip through int32 after an op */
    rnd fw = rn_map1(&f.r, r_neg, CG_FLOAT32);
    REF_CHECK("bitcast(bitcast(-x)) round trip", cg_bitcast(cg_bitcast(cg_neg(f.t), CG_INT32), CG_FLOAT32), CG_FLOAT32, fw,
              TK_EXACT);
  }
  case_end();
}

int main(void) {
  ref_init();
  test_unary();
  test_binary();
  test_promotion();
  test_where_clamp();
  test_cast();
  ref_shutdown();
  return test_summary();
}
