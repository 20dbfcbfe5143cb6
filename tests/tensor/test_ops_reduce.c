/* Reductions and friends against the float64 reference (ref.h): sum prod max min mean
 * var std (correction 0 and 1) any all logsumexp over every axis subset of 1-4-d shapes,
 * size-0 dims included (sum of nothing 0, prod 1, mean/var NaN, any false, all true,
 * logsumexp -inf; max/min/argmax/argmin over an empty dim are errors, as in PyTorch),
 * keepdim both ways; argmax/argmin (first index on ties); cumsum; softmax/log_softmax;
 * matmul (batched, broadcasting, 1-d operands), dot; gather, index_select; float16 and
 * bfloat16 sum/max. Reduction tolerances scale with sqrt(n) (table in ref.h). */
#include "ref.h"

static cg_tensor *r_var0(cg_tensor *a, const int *x, int n, bool k) { return cg_var(a, x, n, 0, k); }
static cg_tensor *r_var1(cg_tensor *a, const int *x, int n, bool k) { return cg_var(a, x, n, 1, k); }
static cg_tensor *r_std0(cg_tensor *a, const int *x, int n, bool k) { return cg_std(a, x, n, 0, k); }
static cg_tensor *r_std1(cg_tensor *a, const int *x, int n, bool k) { return cg_std(a, x, n, 1, k); }

typedef struct {
  const char *name;
  cg_tensor *(*fn)(cg_tensor *, const int *, int, bool);
  red_op op;
  int correction;
  gen_t gen;
  int in;          /* 0: float32 input; 1: bool input (any/all) */
  bool empty_err;  /* reducing over a size-0 dim is an error */
} red_case;
static const red_case REDS[] = {
  {"sum", cg_sum, R_SUM, 0, {G_UNIF, -2, 2}, 0, false},
  {"prod", cg_prod, R_PROD, 0, {G_NONZERO, 0.7, 1.3}, 0, false},
  {"max", cg_max, R_MAX, 0, {G_SMALLINT, -3, 3}, 0, true},
  {"min", cg_min, R_MIN, 0, {G_UNIF, -3, 3}, 0, true},
  {"mean", cg_mean, R_MEAN, 0, {G_UNIF, -2, 2}, 0, false},
  {"var(correction 0)", r_var0, R_VAR, 0, {G_UNIF, -2, 2}, 0, false},
  {"var(correction 1)", r_var1, R_VAR, 1, {G_UNIF, -2, 2}, 0, false},
  {"std(correction 0)", r_std0, R_STD, 0, {G_UNIF, -2, 2}, 0, false},
  {"std(correction 1)", r_std1, R_STD, 1, {G_UNIF, -2, 2}, 0, false},
  {"any", cg_any, R_ANY, 0, {G_UNIF, 0, 1}, 1, false},
  {"all", cg_all, R_ALL, 0, {G_UNIF, 0, 1}, 1, false},
  {"logsumexp", cg_logsumexp, R_LSE, 0, {G_UNIF, -3, 3}, 0, false},
};
#define NREDS (int)(sizeof REDS / sizeof REDS[0])
static char g_msg[300];
#define MSG(...) (snprintf(g_msg, sizeof g_msg, __VA_ARGS__), g_msg)

/* Does reducing `axes` (naxes 0: all) of shape touch a size-0 dim? */
static bool reduces_empty(const int64_t *shape, int nd, const int *axes, int naxes) {
  if (naxes == 0) {
    for (int i = 0; i < nd; i++) if (shape[i] == 0) return true;
    return false;
  }
  for (int k = 0; k < naxes; k++) if (shape[axes[k] < 0 ? axes[k] + nd : axes[k]] == 0) return true;
  return false;
}

static void run_reduce(const red_case *c, tp a, const int *axes, int naxes, bool keepdim, const char *desc) {
  const char *w = MSG("%s %s over %s%s keepdim=%d", c->name, desc, naxes ? "" : "all ", ints_str(axes, naxes), keepdim);
  cg_tensor *t = c->fn(a.t, axes, naxes, keepdim);
  if (c->empty_err && reduces_empty(a.r.shape, a.r.ndim, axes, naxes)) {
    EXPECT_ERROR(w, t, NULL, NULL);
    trace_clear();
    return;
  }
  rnd scale;
  int64_t nred;
  cg_dtype odt = c->in == 1 ? CG_BOOL : a.r.dt;
  rnd want = rn_reduce(&a.r, axes, naxes, keepdim, c->op, c->correction, odt, &scale, &nred);
  ref_check_at(__FILE__, __LINE__, w, t, odt, &want, odt == CG_BOOL ? TK_EXACT : TK_REDUCE, nred, &scale);
}

static void test_reductions(void) {
  for (int nd = 1; nd <= 4; nd++) {
    case_begin("reductions");
    for (long it = 0; it < test_iters(); it++) {
      int64_t s[RMAX];
      rand_shape(s, nd, nd <= 2 ? 6 : 4, false);
      if (nd >= 2 && (rng_u64() & 1) && !test_env_long("CG_TEST_NO_EMPTY", 0)) s[rng_int(0, nd - 1)] = 0; /* half have a size-0 dim */
      /* every axis subset; mask 0 is "naxes = 0: all axes" */
      for (int mask = 0; mask < (1 << nd); mask++) {
        int axes[RMAX], na = 0;
        for (int i = 0; i < nd; i++)
          if (mask >> i & 1) axes[na++] = (rng_u64() & 1) ? i - nd : i; /* negative axes too */
        for (int r = 0; r < NREDS; r++) {
          /* 1-d and 2-d shapes: every op on every subset; 3-d and 4-d: a third of the ops
           * per subset, rotating, so every op still meets many subsets (CG_TEST_ITERS > 1
           * rotates further) */
          if (nd >= 3 && (mask + r + it) % 3 != 0) continue;
          const red_case *c = &REDS[r];
          int kind = (int)rng_int(0, V_COUNT - 1);
          tp a = tp_view(c->in == 1 ? CG_BOOL : CG_FLOAT32, s, nd, c->gen, kind);
          char desc[96];
          snprintf(desc, sizeof desc, "%s %s", VIEW_NAMES[kind], shape_str(s, nd));
          run_reduce(c, a, axes, na, rng_u64() & 1, desc);
        }
      }
    }
    case_end();
  }
  /* keepdim both ways and every op on one fixed 3-d non-contiguous input */
  case_begin("reductions keepdim");
  {
    int64_t s[3] = {3, 4, 5};
    int axes[2] = {0, 2};
    for (int r = 0; r < NREDS; r++) {
      tp a = tp_view(REDS[r].in == 1 ? CG_BOOL : CG_FLOAT32, s, 3, REDS[r].gen, V_PERMUTE);
      run_reduce(&REDS[r], a, axes, 2, false, "permuted (3, 4, 5)");
      run_reduce(&REDS[r], a, axes, 2, true, "permuted (3, 4, 5)");
    }
  }
  case_end();

  /* flipped inputs of small shapes, every flip subset, summed over all / the last axis */
  case_begin("reductions of flipped inputs");
  {
    static const int64_t SH[][2] = {{4, 2}, {2, 4}, {3, 3}, {5, 2}};
    for (int i = 0; i < 4; i++) {
      for (int m = 1; m < 4; m++) {
        int dims[2], nf = 0, last = 1;
        if (m & 1) dims[nf++] = 0;
        if (m & 2) dims[nf++] = 1;
        tp a = tp_flip(tp_rand(CG_FLOAT32, SH[i], 2, GEN_STD), dims, nf);
        char desc[96];
        snprintf(desc, sizeof desc, "flipped %s dims %s", shape_str(SH[i], 2), ints_str(dims, nf));
        run_reduce(&REDS[0], a, NULL, 0, false, desc);
        run_reduce(&REDS[0], a, &last, 1, false, desc);
        run_reduce(&REDS[3], a, &last, 1, true, desc);
      }
    }
  }
  case_end();

  /* the empty cases named in PyTorch's terms */
  case_begin("empty reductions");
  {
    int64_t z = 0;
    tp a = tp_rand(CG_FLOAT32, &z, 1, GEN_STD);
    tp b = tp_rand(CG_BOOL, &z, 1, GEN_STD);
    rnd w0 = rn_scalar(CG_FLOAT32, 0), w1 = rn_scalar(CG_FLOAT32, 1), wn = rn_scalar(CG_FLOAT32, NAN);
    rnd wi = rn_scalar(CG_FLOAT32, -INFINITY), wf = rn_scalar(CG_BOOL, 0), wt = rn_scalar(CG_BOOL, 1);
    REF_CHECK("sum of empty = 0", cg_sum(a.t, NULL, 0, false), CG_FLOAT32, w0, TK_EXACT);
    REF_CHECK("prod of empty = 1", cg_prod(a.t, NULL, 0, false), CG_FLOAT32, w1, TK_EXACT);
    REF_CHECK("mean of empty = nan", cg_mean(a.t, NULL, 0, false), CG_FLOAT32, wn, TK_EXACT);
    REF_CHECK("var of empty = nan", cg_var(a.t, NULL, 0, 1, false), CG_FLOAT32, wn, TK_EXACT);
    REF_CHECK("logsumexp of empty = -inf", cg_logsumexp(a.t, NULL, 0, false), CG_FLOAT32, wi, TK_EXACT);
    REF_CHECK("any of empty = false", cg_any(b.t, NULL, 0, false), CG_BOOL, wf, TK_EXACT);
    REF_CHECK("all of empty = true", cg_all(b.t, NULL, 0, false), CG_BOOL, wt, TK_EXACT);
    EXPECT_ERROR("max of empty", cg_max(a.t, NULL, 0, false), NULL, NULL);
    EXPECT_ERROR("min of empty", cg_min(a.t, NULL, 0, false), NULL, NULL);
    EXPECT_ERROR("argmax of empty", cg_argmax(a.t, 0, false), NULL, NULL);
    int64_t one = 1;
    tp c = tp_rand(CG_FLOAT32, &one, 1, GEN_STD);
    REF_CHECK("var(correction 1) of one value = nan", cg_var(c.t, NULL, 0, 1, false), CG_FLOAT32, wn, TK_EXACT);
    rnd w00 = rn_scalar(CG_FLOAT32, 0);
    REF_CHECK("var(correction 0) of one value = 0", cg_var(c.t, NULL, 0, 0, false), CG_FLOAT32, w00, TK_EXACT);
  }
  case_end();
}

/* int32 and half-precision reductions. */
static void test_typed_reductions(void) {
  case_begin("int32 reductions");
  for (long it = 0; it < 2 * test_iters(); it++) {
    int64_t s[RMAX];
    int nd = rand_shape(s, (int)rng_int(1, 3), 5, false);
    int axis = (int)rng_int(0, nd - 1), kind = (int)rng_int(0, V_COUNT - 1);
    tp a = tp_view(CG_INT32, s, nd, (gen_t){G_UNIF, -50, 50}, kind);
    static const red_op OPS[] = {R_SUM, R_MAX, R_MIN};
    cg_tensor *(*FNS[])(cg_tensor *, const int *, int, bool) = {cg_sum, cg_max, cg_min};
    for (int o = 0; o < 3; o++) {
      cg_tensor *t = FNS[o](a.t, &axis, 1, false);
      /* PyTorch sums int32 into int64; int32 is accepted too (values here fit) */
      cg_dtype odt = t && o == 0 && cg_dtype_of(t) == CG_INT64 ? CG_INT64 : CG_INT32;
      rnd want = rn_reduce(&a.r, &axis, 1, false, OPS[o], 0, odt, NULL, NULL);
      ref_check_at(__FILE__, __LINE__, MSG("int32 %s %s %s axis %d", o == 0 ? "sum" : o == 1 ? "max" : "min", VIEW_NAMES[kind], shape_str(s, nd), axis),
                   t, odt, &want, TK_EXACT, 1, NULL);
    }
    tp p = tp_view(CG_INT32, s, nd, (gen_t){G_NONZERO, 1, 2}, kind);
    cg_tensor *t = cg_prod(p.t, &axis, 1, true);
    cg_dtype odt = t && cg_dtype_of(t) == CG_INT64 ? CG_INT64 : CG_INT32;
    rnd want = rn_reduce(&p.r, &axis, 1, true, R_PROD, 0, odt, NULL, NULL);
    ref_check_at(__FILE__, __LINE__, MSG("int32 prod %s axis %d", shape_str(s, nd), axis), t, odt, &want, TK_EXACT, 1, NULL);
    /* bool sum counts the trues */
    tp b = tp_view(CG_BOOL, s, nd, GEN_STD, kind);
    t = cg_sum(b.t, NULL, 0, false);
    odt = t && cg_dtype_of(t) == CG_INT64 ? CG_INT64 : CG_INT32;
    want = rn_reduce(&b.r, NULL, 0, false, R_SUM, 0, odt, NULL, NULL);
    ref_check_at(__FILE__, __LINE__, MSG("bool sum %s", shape_str(s, nd)), t, odt, &want, TK_EXACT, 1, NULL);
  }
  case_end();

  case_begin("half reductions");
  for (long it = 0; it < 2 * test_iters(); it++) {
    static const cg_dtype DT[] = {CG_FLOAT16, CG_BFLOAT16};
    for (int d = 0; d < 2; d++) {
      int64_t s[RMAX];
      int nd = rand_shape(s, (int)rng_int(1, 3), 6, false);
      int axes[RMAX], na = 0;
      for (int i = 0; i < nd; i++) if (rng_u64() & 1) axes[na++] = i;
      int kind = (int)rng_int(0, V_COUNT - 1);
      tp a = tp_view(DT[d], s, nd, GEN_STD, kind);
      char desc[96];
      snprintf(desc, sizeof desc, "%s %s %s", cg_dtype_name(DT[d]), VIEW_NAMES[kind], shape_str(s, nd));
      run_reduce(&REDS[0], a, axes, na, rng_u64() & 1, desc); /* sum */
      run_reduce(&REDS[2], a, axes, na, rng_u64() & 1, desc); /* max */
      run_reduce(&REDS[4], a, axes, na, rng_u64() & 1, desc); /* mean */
    }
    /* a long float16 sum: PyTorch accumulates in float32, so 4096 ones give 4096 exactly
     * (float16 accumulation would stop at 2048) */
    int64_t n = 4096;
    double *ones = (double *)ref_alloc((size_t)n * sizeof(double));
    for (int64_t i = 0; i < n; i++) ones[i] = 1;
    tp o = tp_from_values(CG_FLOAT16, &n, 1, ones);
    rnd w = rn_scalar(CG_FLOAT16, 4096);
    REF_CHECK("float16 sum of 4096 ones", cg_sum(o.t, NULL, 0, false), CG_FLOAT16, w, TK_EXACT);
  }
  case_end();
}

static void test_arg_cum_softmax(void) {
  case_begin("argmax/argmin");
  for (long it = 0; it < 3 * test_iters(); it++) {
    int64_t s[RMAX];
    int nd = rand_shape(s, (int)rng_int(1, 4), 5, true);
    int axis = (int)rng_int(-nd, nd - 1), kind = (int)rng_int(0, V_COUNT - 1);
    bool keep = rng_u64() & 1;
    cg_dtype dt = (rng_u64() & 1) ? CG_FLOAT32 : CG_INT32;
    tp a = tp_view(dt, s, nd, (gen_t){G_SMALLINT, -2, 2}, kind); /* many ties */
    for (int m = 0; m < 2; m++) {
      const char *w = MSG("%s %s %s %s axis %d keepdim=%d", m ? "argmin" : "argmax", cg_dtype_name(dt), VIEW_NAMES[kind], shape_str(s, nd), axis, keep);
      cg_tensor *t = m ? cg_argmin(a.t, axis, keep) : cg_argmax(a.t, axis, keep);
      if (s[axis < 0 ? axis + nd : axis] == 0) {
        EXPECT_ERROR(w, t, NULL, NULL);
        trace_clear();
        continue;
      }
      rnd want = rn_reduce(&a.r, &axis, 1, keep, m ? R_ARGMIN : R_ARGMAX, 0, CG_INT32, NULL, NULL);
      ref_check_at(__FILE__, __LINE__, w, t, CG_INT32, &want, TK_EXACT, 1, NULL);
    }
  }
  case_end();

  case_begin("cumsum");
  for (long it = 0; it < 3 * test_iters(); it++) {
    int64_t s[RMAX];
    int nd = rand_shape(s, (int)rng_int(1, 3), 7, true);
    int axis = (int)rng_int(-nd, nd - 1), kind = (int)rng_int(0, V_COUNT - 1);
    tp a = tp_view(CG_FLOAT32, s, nd, GEN_STD, kind);
    rnd scale;
    rnd want = rn_axis_op(&a.r, axis, A_CUMSUM, &scale);
    ref_check_at(__FILE__, __LINE__, MSG("cumsum float32 %s %s axis %d", VIEW_NAMES[kind], shape_str(s, nd), axis), cg_cumsum(a.t, axis),
                 CG_FLOAT32, &want, TK_REDUCE, s[axis < 0 ? axis + nd : axis], &scale);
    tp b = tp_view(CG_INT32, s, nd, (gen_t){G_UNIF, -9, 9}, kind);
    cg_tensor *t = cg_cumsum(b.t, axis);
    cg_dtype odt = t && cg_dtype_of(t) == CG_INT64 ? CG_INT64 : CG_INT32;
    want = rn_axis_op(&b.r, axis, A_CUMSUM, NULL);
    want.dt = odt;
    ref_check_at(__FILE__, __LINE__, MSG("cumsum int32 %s %s axis %d", VIEW_NAMES[kind], shape_str(s, nd), axis), t, odt, &want, TK_EXACT, 1, NULL);
  }
  case_end();

  case_begin("softmax/log_softmax");
  for (long it = 0; it < 3 * test_iters(); it++) {
    int64_t s[RMAX];
    int nd = rand_shape(s, (int)rng_int(1, 3), 7, false);
    int axis = (int)rng_int(-nd, nd - 1), kind = (int)rng_int(0, V_COUNT - 1);
    tp a = tp_view(CG_FLOAT32, s, nd, (gen_t){G_UNIF, -5, 5}, kind);
    rnd scale;
    rnd want = rn_axis_op(&a.r, axis, A_SOFTMAX, &scale);
    int64_t n = s[axis < 0 ? axis + nd : axis];
    ref_check_at(__FILE__, __LINE__, MSG("softmax %s %s axis %d", VIEW_NAMES[kind], shape_str(s, nd), axis), cg_softmax(a.t, axis), CG_FLOAT32,
                 &want, TK_REDUCE, n, &scale);
    want = rn_axis_op(&a.r, axis, A_LOGSOFTMAX, &scale);
    ref_check_at(__FILE__, __LINE__, MSG("log_softmax %s %s axis %d", VIEW_NAMES[kind], shape_str(s, nd), axis), cg_log_softmax(a.t, axis),
                 CG_FLOAT32, &want, TK_REDUCE, n, &scale);
  }
  /* large logits must not overflow */
  const double big[] = {1000, 1001, 999, -1000};
  int64_t n4 = 4;
  tp b = tp_from_values(CG_FLOAT32, &n4, 1, big);
  rnd scale, want = rn_axis_op(&b.r, 0, A_SOFTMAX, &scale);
  ref_check_at(__FILE__, __LINE__, "softmax of large logits", cg_softmax(b.t, 0), CG_FLOAT32, &want, TK_REDUCE, 4, &scale);
  want = rn_reduce(&b.r, NULL, 0, false, R_LSE, 0, CG_FLOAT32, &scale, NULL);
  ref_check_at(__FILE__, __LINE__, "logsumexp of large values", cg_logsumexp(b.t, NULL, 0, false), CG_FLOAT32, &want, TK_REDUCE, 4, &scale);
  case_end();
}

/* ---- matmul / dot ---------------------------------------------------------------------- */
static void run_matmul(cg_dtype dt, const int64_t *sa, int na, const int64_t *sb, int nb, int ka, int kb) {
  gen_t g = dt == CG_INT32 ? (gen_t){G_UNIF, -5, 5} : GEN_STD;
  tp a = tp_view(dt, sa, na, g, ka), b = tp_view(dt, sb, nb, g, kb);
  rnd scale;
  int64_t nk;
  rnd want = rn_matmul(&a.r, &b.r, dt, &scale, &nk);
  const char *w = MSG("matmul %s %s %s @ %s %s", cg_dtype_name(dt), VIEW_NAMES[ka], shape_str(sa, na), VIEW_NAMES[kb], shape_str(sb, nb));
  ref_check_at(__FILE__, __LINE__, w, cg_matmul(a.t, b.t), dt, &want, dt == CG_INT32 ? TK_EXACT : TK_REDUCE, nk, &scale);
}
static void test_matmul(void) {
  case_begin("matmul");
  static const struct { int na, nb; int64_t a[4], b[4]; } CASES[] = {
    {2, 2, {3, 4}, {4, 5}},          {2, 2, {1, 7}, {7, 1}},        {3, 2, {2, 3, 4}, {4, 5}},
    {1, 2, {4}, {4, 5}},             {2, 1, {3, 4}, {4}},           {1, 1, {6}, {6}},
    {4, 3, {2, 1, 3, 4}, {5, 4, 2}}, {3, 3, {1, 3, 4}, {2, 4, 3}},  {2, 2, {3, 0}, {0, 4}},
    {2, 2, {0, 3}, {3, 2}},          {1, 3, {3}, {2, 3, 5}},        {3, 1, {2, 5, 3}, {3}},
    {2, 2, {1, 1}, {1, 1}},          {2, 2, {17, 33}, {33, 9}},
  };
  for (long it = 0; it < test_iters(); it++) {
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
      run_matmul(CG_FLOAT32, CASES[i].a, CASES[i].na, CASES[i].b, CASES[i].nb, V_CONTIG, V_CONTIG);
      run_matmul(CG_FLOAT32, CASES[i].a, CASES[i].na, CASES[i].b, CASES[i].nb, (int)rng_int(1, V_COUNT - 1),
                 (int)rng_int(1, V_COUNT - 1));
    }
    run_matmul(CG_INT32, CASES[0].a, 2, CASES[0].b, 2, V_CONTIG, V_PERMUTE);
    run_matmul(CG_INT32, CASES[6].a, 4, CASES[6].b, 3, V_FLIP, V_CONTIG);
    run_matmul(CG_FLOAT16, CASES[2].a, 3, CASES[2].b, 2, V_CONTIG, V_SLICE);
    /* a transposed operand: x^T @ y with x (K, M) */
    int64_t sx[2] = {6, 3}, sy[2] = {6, 4};
    tp x = tp_rand(CG_FLOAT32, sx, 2, GEN_STD), y = tp_rand(CG_FLOAT32, sy, 2, GEN_STD);
    tp xt = tp_permute(x, (int[]){1, 0});
    rnd scale;
    int64_t nk;
    rnd want = rn_matmul(&xt.r, &y.r, CG_FLOAT32, &scale, &nk);
    ref_check_at(__FILE__, __LINE__, "matmul x^T @ y", cg_matmul(xt.t, y.t), CG_FLOAT32, &want, TK_REDUCE, nk, &scale);
  }
  case_end();

  case_begin("dot");
  for (long it = 0; it < 2 * test_iters(); it++) {
    int64_t n = rng_int(0, 3) == 0 ? 0 : rng_int(1, 40);
    int ka = (int)rng_int(0, V_COUNT - 1), kb = (int)rng_int(0, V_COUNT - 1);
    tp a = tp_view(CG_FLOAT32, &n, 1, GEN_STD, ka), b = tp_view(CG_FLOAT32, &n, 1, GEN_STD, kb);
    rnd scale;
    int64_t nk;
    rnd want = rn_matmul(&a.r, &b.r, CG_FLOAT32, &scale, &nk);
    ref_check_at(__FILE__, __LINE__, MSG("dot %s · %s of %lld", VIEW_NAMES[ka], VIEW_NAMES[kb], (long long)n), cg_dot(a.t, b.t), CG_FLOAT32, &want,
                 TK_REDUCE, nk, &scale);
  }
  case_end();
}

/* ---- gather / index_select --------------------------------------------------------------- */
static void test_gather(void) {
  case_begin("gather");
  for (long it = 0; it < 4 * test_iters(); it++) {
    int64_t s[RMAX], si[RMAX];
    int nd = rand_shape(s, (int)rng_int(1, 3), 5, false);
    int dim = (int)rng_int(-nd, nd - 1), ad = dim < 0 ? dim + nd : dim;
    for (int i = 0; i < nd; i++) si[i] = i == ad ? rng_int(0, 6) : rng_int(1, s[i]);
    int ka = (int)rng_int(0, V_COUNT - 1);
    cg_dtype dt = (rng_u64() & 1) ? CG_FLOAT32 : CG_INT32;
    tp a = tp_view(dt, s, nd, GEN_STD, ka);
    tp idx = tp_view(CG_INT32, si, nd, (gen_t){G_UNIF, 0, (double)(s[ad] - 1)}, (int)rng_int(0, V_COUNT - 1));
    rnd want = rn_gather(&a.r, dim, &idx.r);
    ref_check_at(__FILE__, __LINE__, MSG("gather %s %s %s dim %d index %s", cg_dtype_name(dt), VIEW_NAMES[ka], shape_str(s, nd), dim, shape_str(si, nd)),
                 cg_gather(a.t, dim, idx.t), dt, &want, TK_EXACT, 1, NULL);
  }
  case_end();

  case_begin("index_select");
  for (long it = 0; it < 4 * test_iters(); it++) {
    int64_t s[RMAX], n = rng_int(0, 7);
    int nd = rand_shape(s, (int)rng_int(1, 3), 5, false);
    int dim = (int)rng_int(-nd, nd - 1), ad = dim < 0 ? dim + nd : dim;
    int ka = (int)rng_int(0, V_COUNT - 1);
    tp a = tp_view(CG_FLOAT32, s, nd, GEN_STD, ka);
    tp idx = tp_view(CG_INT32, &n, 1, (gen_t){G_UNIF, 0, (double)(s[ad] - 1)}, (int)rng_int(0, V_COUNT - 1));
    rnd want = rn_index_select(&a.r, dim, &idx.r);
    ref_check_at(__FILE__, __LINE__, MSG("index_select %s %s dim %d, %lld indices", VIEW_NAMES[ka], shape_str(s, nd), dim, (long long)n),
                 cg_index_select(a.t, dim, idx.t), CG_FLOAT32, &want, TK_EXACT, 1, NULL);
  }
  case_end();
}

int main(void) {
  ref_init();
  test_reductions();
  test_typed_reductions();
  test_arg_cum_softmax();
  test_matmul();
  test_gather();
  ref_shutdown();
  return test_summary();
}
