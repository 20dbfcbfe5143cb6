/* Movement ops against the reference's own index math (ref.h): reshape (incl. -1),
 * permute, transpose, expand, pad (nonzero value), shrink, slice with steps (negative
 * start, stop past the end, negative step), flip, squeeze/unsqueeze, flatten, cat,
 * stack, split/chunk, repeat, contiguous/detach — each on contiguous and non-contiguous
 * inputs, then random chains of views stacked on top of each other. Values are moved,
 * never computed, so every comparison is exact, for float32, int32, bool and float16. */
#include "ref.h"

static const cg_dtype DTS[] = {CG_FLOAT32, CG_INT32, CG_BOOL, CG_FLOAT16};
static cg_dtype rand_dt(void) { return DTS[rng_int(0, 3)]; }
static int rand_kind(void) { return (int)rng_int(0, V_COUNT - 1); }
static char g_msg[256];
#define MSG(...) (snprintf(g_msg, sizeof g_msg, __VA_ARGS__), g_msg)
#define EXACT(what, t, want) ref_check_at(__FILE__, __LINE__, what, t, (want).dt, &(want), TK_EXACT, 1, NULL)

/* more pair views, with a trace line each */
static tp tp_transpose(tp a, int d0, int d1) {
  tp r = {cg_transpose(a.t, d0, d1), rn_transpose(&a.r, d0, d1), ++g_ntp};
  trace_add("t%d = transpose(t%d, %d, %d); ", r.id, a.id, d0, d1);
  return r;
}
static tp tp_squeeze(tp a, int d) {
  tp r = {cg_squeeze(a.t, d), rn_squeeze(&a.r, d), ++g_ntp};
  trace_add("t%d = squeeze(t%d, %d); ", r.id, a.id, d);
  return r;
}
static tp tp_unsqueeze(tp a, int d) {
  tp r = {cg_unsqueeze(a.t, d), rn_unsqueeze(&a.r, d), ++g_ntp};
  trace_add("t%d = unsqueeze(t%d, %d); ", r.id, a.id, d);
  return r;
}
static tp tp_flatten(tp a, int s, int e) {
  tp r = {cg_flatten(a.t, s, e), rn_flatten(&a.r, s, e), ++g_ntp};
  trace_add("t%d = flatten(t%d, %d, %d); ", r.id, a.id, s, e);
  return r;
}
static tp tp_repeat(tp a, const int64_t *reps, int n) {
  tp r = {cg_repeat(a.t, reps, n), rn_repeat(&a.r, reps, n), ++g_ntp};
  trace_add("t%d = repeat(t%d, %s); ", r.id, a.id, i64s_str(reps, n));
  return r;
}

/* A random shape with numel n (n > 0), ndim in [1, 4]; one entry may be -1. */
static int rand_factor_shape(int64_t n, int64_t *shape, bool minus1) {
  int nd = (int)rng_int(1, 4);
  int64_t rest = n;
  for (int i = 0; i < nd - 1; i++) {
    int64_t divs[64];
    int nd_ = 0;
    for (int64_t d = 1; d <= rest && nd_ < 64; d++) if (rest % d == 0) divs[nd_++] = d;
    shape[i] = divs[rng_int(0, nd_ - 1)];
    rest /= shape[i];
  }
  shape[nd - 1] = rest;
  if (minus1 && (rng_u64() & 1)) shape[rng_int(0, nd - 1)] = -1;
  return nd;
}

static void test_reshape(void) {
  case_begin("reshape");
  for (long it = 0; it < 6 * test_iters(); it++) {
    int64_t s[RMAX], t[RMAX];
    int nd = rand_shape(s, (int)rng_int(1, 4), 5, false);
    int64_t n = shape_numel(s, nd);
    int nt = rand_factor_shape(n, t, true);
    int kind = rand_kind();
    cg_dtype dt = rand_dt();
    tp a = tp_view(dt, s, nd, GEN_STD, kind);
    tp r = tp_reshape(a, t, nt);
    EXACT(MSG("reshape %s %s %s -> %s", cg_dtype_name(dt), VIEW_NAMES[kind], shape_str(s, nd), shape_str(t, nt)), r.t, r.r);
  }
  /* 0-d <-> (1,) <-> (1, 1); size-0 shapes */
  int64_t one = 1, ones[2] = {1, 1}, z[3] = {2, 0, 3}, z2[2] = {0, 6}, z3[3] = {3, 2, 0};
  tp a = tp_rand(CG_FLOAT32, &one, 0, GEN_STD);
  tp b = tp_reshape(a, ones, 2);
  EXACT("reshape () -> (1, 1)", b.t, b.r);
  tp c = tp_reshape(b, &one, 0);
  EXACT("reshape (1, 1) -> ()", c.t, c.r);
  tp e = tp_rand(CG_INT32, z, 3, GEN_STD);
  tp f = tp_reshape(e, z2, 2);
  EXACT("reshape (2, 0, 3) -> (0, 6)", f.t, f.r);
  tp g = tp_reshape(tp_permute(e, (int[]){2, 0, 1}), z3, 3);
  EXACT("reshape permuted (3, 2, 0) -> (3, 2, 0)", g.t, g.r);
  case_end();
}

static void test_permute_transpose_expand(void) {
  case_begin("permute");
  for (long it = 0; it < 6 * test_iters(); it++) {
    int64_t s[RMAX];
    int nd = rand_shape(s, (int)rng_int(0, 5), 4, true);
    int perm[RMAX];
    rand_perm(perm, nd);
    if (nd && (rng_u64() & 1)) perm[rng_int(0, nd - 1)] -= nd; /* a negative dim */
    int kind = rand_kind();
    cg_dtype dt = rand_dt();
    tp a = tp_view(dt, s, nd, GEN_STD, kind);
    tp p = tp_permute(a, perm);
    EXACT(MSG("permute %s %s %s by %s", cg_dtype_name(dt), VIEW_NAMES[kind], shape_str(s, nd), ints_str(perm, nd)), p.t, p.r);
  }
  case_end();
  case_begin("transpose");
  for (long it = 0; it < 4 * test_iters(); it++) {
    int64_t s[RMAX];
    int nd = rand_shape(s, (int)rng_int(1, 4), 5, true);
    int d0 = (int)rng_int(-nd, nd - 1), d1 = (int)rng_int(-nd, nd - 1), kind = rand_kind();
    tp a = tp_view(CG_FLOAT32, s, nd, GEN_STD, kind);
    tp t = tp_transpose(a, d0, d1);
    EXACT(MSG("transpose %s %s (%d, %d)", VIEW_NAMES[kind], shape_str(s, nd), d0, d1), t.t, t.r);
  }
  case_end();
  case_begin("expand");
  for (long it = 0; it < 6 * test_iters(); it++) {
    int64_t s[RMAX], t[RMAX];
    int nd = rand_shape(s, (int)rng_int(0, 3), 4, true), lead = (int)rng_int(0, 2), nt = nd + lead;
    for (int i = 0; i < nd; i++) if (rng_int(0, 2) == 0) s[i] = 1;
    for (int i = 0; i < lead; i++) t[i] = rng_int(0, 3);
    for (int i = 0; i < nd; i++) {
      int64_t x = s[i] == 1 ? rng_int(0, 4) : s[i];
      t[lead + i] = (x == s[i] && (rng_u64() & 1)) ? -1 : x;
    }
    cg_dtype dt = rand_dt();
    int kind = rand_kind();
    tp a = tp_view(dt, s, nd, GEN_STD, kind);
    tp e = tp_expand(a, t, nt);
    EXACT(MSG("expand %s %s %s -> %s", cg_dtype_name(dt), VIEW_NAMES[kind], shape_str(s, nd), shape_str(t, nt)), e.t, e.r);
  }
  case_end();
}

static void test_pad_shrink_slice_flip(void) {
  case_begin("pad");
  for (long it = 0; it < 6 * test_iters(); it++) {
    int64_t s[RMAX], pads[2 * RMAX];
    int nd = rand_shape(s, (int)rng_int(0, 4), 4, true);
    for (int i = 0; i < 2 * nd; i++) pads[i] = rng_int(0, 3);
    cg_dtype dt = rand_dt();
    double value = dt == CG_BOOL ? 1 : dt == CG_INT32 ? -7 : 2.5;
    int kind = rand_kind();
    tp a = tp_view(dt, s, nd, GEN_STD, kind);
    tp p = tp_pad(a, pads, value);
    EXACT(MSG("pad %s %s %s by %s value %g", cg_dtype_name(dt), VIEW_NAMES[kind], shape_str(s, nd), i64s_str(pads, 2 * nd), value),
          p.t, p.r);
  }
  /* pad then op: the pad value takes part in the op */
  int64_t s2[2] = {2, 3}, pads2[4] = {1, 0, 2, 1};
  tp a = tp_rand(CG_FLOAT32, s2, 2, GEN_STD);
  tp p = tp_pad(a, pads2, -1.5);
  rnd w = rn_map1(&p.r, fabs, CG_FLOAT32);
  EXACT("abs(pad(x, -1.5))", cg_abs(p.t), w);
  case_end();

  case_begin("shrink");
  for (long it = 0; it < 6 * test_iters(); it++) {
    int64_t s[RMAX], box[2 * RMAX];
    int nd = rand_shape(s, (int)rng_int(0, 4), 6, true);
    for (int i = 0; i < nd; i++) {
      box[2 * i] = rng_int(0, s[i]);
      box[2 * i + 1] = rng_int(box[2 * i], s[i]);
    }
    cg_dtype dt = rand_dt();
    int kind = rand_kind();
    tp a = tp_view(dt, s, nd, GEN_STD, kind);
    tp r = tp_shrink(a, box);
    EXACT(MSG("shrink %s %s %s to %s", cg_dtype_name(dt), VIEW_NAMES[kind], shape_str(s, nd), i64s_str(box, 2 * nd)), r.t, r.r);
  }
  case_end();

  case_begin("slice");
  for (long it = 0; it < 10 * test_iters(); it++) {
    int64_t s[RMAX];
    int nd = rand_shape(s, (int)rng_int(1, 3), 8, true);
    int dim = (int)rng_int(-nd, nd - 1);
    int64_t len = s[dim < 0 ? dim + nd : dim];
    int64_t start = rng_int(-len - 2, len + 2), stop = rng_int(-len - 2, len + 2), step = rng_int(1, 4);
    int r = (int)rng_int(0, 5);
    if (r == 0) stop = INT64_MAX;      /* to the end */
    if (r == 1) step = -rng_int(1, 3); /* Python negative step */
    if (r == 2) start = -rng_int(1, len > 0 ? len : 1);
    int kind = rand_kind();
    cg_dtype dt = rand_dt();
    tp a = tp_view(dt, s, nd, GEN_STD, kind);
    tp b = tp_slice(a, dim, start, stop, step);
    EXACT(MSG("slice %s %s %s dim %d [%lld:%lld:%lld]", cg_dtype_name(dt), VIEW_NAMES[kind], shape_str(s, nd), dim, (long long)start,
              (long long)stop, (long long)step),
          b.t, b.r);
  }
  case_end();

  case_begin("flip");
  for (long it = 0; it < 6 * test_iters(); it++) {
    int64_t s[RMAX];
    int nd = rand_shape(s, (int)rng_int(1, 4), 5, true), dims[RMAX], n = 0;
    for (int i = 0; i < nd; i++) if (rng_u64() & 1) dims[n++] = (rng_u64() & 1) ? i - nd : i;
    cg_dtype dt = rand_dt();
    int kind = rand_kind();
    tp a = tp_view(dt, s, nd, GEN_STD, kind);
    tp f = tp_flip(a, dims, n);
    EXACT(MSG("flip %s %s %s dims %s", cg_dtype_name(dt), VIEW_NAMES[kind], shape_str(s, nd), ints_str(dims, n)), f.t, f.r);
  }
  case_end();
}

static void test_squeeze_flatten_repeat(void) {
  case_begin("squeeze/unsqueeze");
  for (long it = 0; it < 6 * test_iters(); it++) {
    int64_t s[RMAX];
    int nd = rand_shape(s, (int)rng_int(0, 4), 4, true);
    int kind = rand_kind();
    tp a = tp_view(CG_FLOAT32, s, nd, GEN_STD, kind);
    int ud = (int)rng_int(-nd - 1, nd);
    tp u = tp_unsqueeze(a, ud);
    EXACT(MSG("unsqueeze %s %s at %d", VIEW_NAMES[kind], shape_str(s, nd), ud), u.t, u.r);
    if (nd > 0) {
      int sd = (int)rng_int(-nd, nd - 1); /* squeezing a dim that is not 1 is a no-op */
      tp q = tp_squeeze(a, sd);
      EXACT(MSG("squeeze %s %s at %d", VIEW_NAMES[kind], shape_str(s, nd), sd), q.t, q.r);
    }
    tp q2 = tp_squeeze(u, ud);
    EXACT(MSG("squeeze(unsqueeze(x, %d), %d)", ud, ud), q2.t, q2.r);
  }
  case_end();

  case_begin("flatten");
  for (long it = 0; it < 5 * test_iters(); it++) {
    int64_t s[RMAX];
    int nd = rand_shape(s, (int)rng_int(1, 4), 4, true);
    int st = (int)rng_int(0, nd - 1), en = (int)rng_int(st, nd - 1);
    if (rng_u64() & 1) en -= nd;
    int kind = rand_kind();
    tp a = tp_view(rand_dt(), s, nd, GEN_STD, kind);
    tp f = tp_flatten(a, st, en);
    EXACT(MSG("flatten %s %s (%d, %d)", VIEW_NAMES[kind], shape_str(s, nd), st, en), f.t, f.r);
  }
  int64_t one = 1;
  tp z = tp_rand(CG_FLOAT32, &one, 0, GEN_STD);
  tp fz = tp_flatten(z, 0, -1);
  EXACT("flatten of a 0-d tensor is (1,)", fz.t, fz.r);
  case_end();

  case_begin("repeat");
  for (long it = 0; it < 5 * test_iters(); it++) {
    int64_t s[RMAX], reps[RMAX];
    int nd = rand_shape(s, (int)rng_int(0, 3), 3, true), nr = nd + (int)rng_int(0, 1);
    for (int i = 0; i < nr; i++) reps[i] = rng_int(0, 3) == 0 ? 1 : rng_int(0, 3);
    int kind = rand_kind();
    cg_dtype dt = rand_dt();
    tp a = tp_view(dt, s, nd, GEN_STD, kind);
    tp r = tp_repeat(a, reps, nr);
    EXACT(MSG("repeat %s %s %s by %s", cg_dtype_name(dt), VIEW_NAMES[kind], shape_str(s, nd), i64s_str(reps, nr)), r.t, r.r);
  }
  case_end();

  case_begin("contiguous/detach");
  {
    int64_t s[3] = {3, 4, 2};
    tp a = tp_view(CG_FLOAT32, s, 3, GEN_STD, V_PERMUTE);
    EXACT("contiguous(permuted)", cg_contiguous(a.t), a.r);
    EXACT("detach(permuted)", cg_detach(a.t), a.r);
    tp f = tp_view(CG_INT32, s, 3, GEN_STD, V_FLIP);
    EXACT("contiguous(flipped int32)", cg_contiguous(f.t), f.r);
  }
  case_end();
}

static void test_cat_stack_split(void) {
  case_begin("cat");
  for (long it = 0; it < 6 * test_iters(); it++) {
    int64_t s[RMAX];
    int nd = rand_shape(s, (int)rng_int(1, 4), 4, true), n = (int)rng_int(1, 4);
    int dim = (int)rng_int(-nd, nd - 1), ad = dim < 0 ? dim + nd : dim;
    cg_dtype dt = rand_dt();
    tp parts[4];
    cg_tensor *ts[4];
    const rnd *rs[4];
    for (int k = 0; k < n; k++) {
      s[ad] = rng_int(0, 4) == 0 ? 0 : rng_int(1, 4);
      parts[k] = tp_view(dt, s, nd, GEN_STD, rand_kind());
      ts[k] = parts[k].t;
      rs[k] = &parts[k].r;
    }
    rnd w = rn_cat(rs, n, dim);
    EXACT(MSG("cat %d %s tensors along %d, out %s", n, cg_dtype_name(dt), dim, shape_str(w.shape, w.ndim)), cg_cat(ts, n, dim), w);
  }
  case_end();

  case_begin("stack");
  for (long it = 0; it < 5 * test_iters(); it++) {
    int64_t s[RMAX];
    int nd = rand_shape(s, (int)rng_int(0, 3), 4, true), n = (int)rng_int(1, 4);
    int dim = (int)rng_int(-nd - 1, nd);
    cg_dtype dt = rand_dt();
    tp parts[4];
    cg_tensor *ts[4];
    rnd us[4];
    const rnd *rs[4];
    for (int k = 0; k < n; k++) {
      parts[k] = tp_view(dt, s, nd, GEN_STD, rand_kind());
      ts[k] = parts[k].t;
      us[k] = rn_unsqueeze(&parts[k].r, dim);
      rs[k] = &us[k];
    }
    rnd w = rn_cat(rs, n, dim < 0 ? dim + nd + 1 : dim);
    EXACT(MSG("stack %d %s %s along %d", n, cg_dtype_name(dt), shape_str(s, nd), dim), cg_stack(ts, n, dim), w);
  }
  case_end();

  case_begin("split/chunk");
  for (long it = 0; it < 5 * test_iters(); it++) {
    int64_t s[RMAX];
    int nd = rand_shape(s, (int)rng_int(1, 3), 4, false);
    int dim = (int)rng_int(-nd, nd - 1), ad = dim < 0 ? dim + nd : dim;
    s[ad] = rng_int(1, 9);
    int kind = rand_kind();
    tp a = tp_view(CG_FLOAT32, s, nd, GEN_STD, kind);
    int64_t size = rng_int(1, 4), len = s[ad];
    cg_tensor *out[16];
    int npieces = (int)((len + size - 1) / size);
    int got = cg_split(a.t, size, dim, out, 16);
    CHECK(got == npieces, "split %s %s size %lld dim %d: %d pieces, want %d (seed %llu)", VIEW_NAMES[kind], shape_str(s, nd),
          (long long)size, dim, got, npieces, (unsigned long long)g_seed);
    for (int k = 0; k < got && k < npieces; k++) {
      rnd w = rn_slice(&a.r, ad, k * size, (k + 1) * size, 1);
      EXACT(MSG("split piece %d of %s size %lld dim %d", k, shape_str(s, nd), (long long)size, dim), out[k], w);
    }
    /* torch.chunk: pieces of ceil(len / chunks); there may be fewer than chunks */
    int chunks = (int)rng_int(1, 5);
    int64_t csize = (len + chunks - 1) / chunks;
    int cwant = (int)((len + csize - 1) / csize);
    got = cg_chunk(a.t, chunks, dim, out, 16);
    CHECK(got == cwant, "chunk %s into %d along %d: %d pieces, want %d (seed %llu)", shape_str(s, nd), chunks, dim, got, cwant,
          (unsigned long long)g_seed);
    for (int k = 0; k < got && k < cwant; k++) {
      rnd w = rn_slice(&a.r, ad, k * csize, (k + 1) * csize, 1);
      EXACT(MSG("chunk piece %d of %s into %d dim %d", k, shape_str(s, nd), chunks, dim), out[k], w);
    }
    /* max_out smaller than the number of pieces: the count is still returned */
    if (npieces > 1) {
      got = cg_split(a.t, size, dim, out, 1);
      CHECK(got == npieces, "split with max_out 1 returns %d, want %d", got, npieces);
    }
  }
  case_end();
}

/* Random chains: 2-6 view ops stacked, on a random base; realized once at the end. */
static tp random_view_op(tp a) {
  int nd = a.r.ndim;
  for (;;) {
    switch (rng_int(0, 10)) {
    case 0: if (nd) { int p[RMAX]; rand_perm(p, nd); return tp_permute(a, p); } break;
    case 1: if (nd) { int d = (int)rng_int(0, nd - 1); int64_t len = a.r.shape[d];
              return tp_slice(a, d, rng_int(-len, len), (rng_u64() & 1) ? INT64_MAX : rng_int(-len, len), rng_int(1, 3)); } break;
    case 2: if (nd) { int d[1] = {(int)rng_int(0, nd - 1)}; return tp_flip(a, d, 1); } break;
    case 3: { int64_t t[RMAX]; bool any = false;
              for (int i = 0; i < nd; i++) { t[i] = a.r.shape[i]; if (t[i] == 1 && (rng_u64() & 1)) { t[i] = rng_int(2, 3); any = true; } }
              if (any) return tp_expand(a, t, nd); } break;
    case 4: if (nd) { int64_t pads[2 * RMAX]; for (int i = 0; i < 2 * nd; i++) pads[i] = rng_int(0, 1); return tp_pad(a, pads, 1); } break;
    case 5: if (nd) { int64_t box[2 * RMAX];
              for (int i = 0; i < nd; i++) { box[2 * i] = rng_int(0, a.r.shape[i]); box[2 * i + 1] = rng_int(box[2 * i], a.r.shape[i]); }
              return tp_shrink(a, box); } break;
    case 6: { int64_t n = rn_numel(&a.r); if (n > 0) { int64_t t[RMAX]; int nt = rand_factor_shape(n, t, true); return tp_reshape(a, t, nt); } } break;
    case 7: if (nd < 5) return tp_unsqueeze(a, (int)rng_int(0, nd)); break;
    case 8: if (nd) return tp_squeeze(a, (int)rng_int(0, nd - 1)); break;
    case 9: if (nd > 1) return tp_transpose(a, (int)rng_int(0, nd - 1), (int)rng_int(0, nd - 1)); break;
    default: if (nd && nd < 5) { int64_t r[RMAX]; for (int i = 0; i < nd; i++) r[i] = rng_int(1, 2); return tp_repeat(a, r, nd); } break;
    }
  }
}
static void test_chains(void) {
  case_begin("view chains");
  cg_stats before = cg_get_stats();
  for (long it = 0; it < 25 * test_iters(); it++) {
    int64_t s[RMAX];
    int nd = rand_shape(s, (int)rng_int(1, 4), 5, true);
    cg_dtype dt = rand_dt();
    tp a = tp_view(dt, s, nd, GEN_STD, rand_kind());
    int n = (int)rng_int(2, 6);
    for (int k = 0; k < n; k++) a = random_view_op(a);
    char tr[256];
    snprintf(tr, sizeof tr, "chain of %d views on %s %s, out %s", n, cg_dtype_name(dt), shape_str(s, nd), shape_str(a.r.shape, a.r.ndim));
    EXACT(tr, a.t, a.r);
  }
  (void)before;
  case_end();

  /* views build no kernels; realizing a chain over a buffer costs at most one */
  case_begin("views are free");
  {
    int64_t s[3] = {4, 3, 5};
    tp a = tp_rand(CG_FLOAT32, s, 3, GEN_STD);
    cg_realize(a.t);
    cg_stats s0 = cg_get_stats();
    tp b = tp_permute(a, (int[]){2, 0, 1});
    b = tp_flip(b, (int[]){0}, 1);
    b = tp_slice(b, 1, 1, 4, 2);
    b = tp_pad(b, (int64_t[]){1, 1, 0, 0, 2, 0}, 9);
    cg_stats s1 = cg_get_stats();
    CHECK(s1.kernels_run == s0.kernels_run, "building views ran %llu kernels", (unsigned long long)(s1.kernels_run - s0.kernels_run));
    EXACT("permute/flip/slice/pad chain", b.t, b.r);
    cg_stats s2 = cg_get_stats();
    CHECK(s2.kernels_run - s1.kernels_run <= 1, "realizing one view chain ran %llu kernels",
          (unsigned long long)(s2.kernels_run - s1.kernels_run));
  }
  case_end();
}

int main(void) {
  ref_init();
  test_reshape();
  test_permute_transpose_expand();
  test_pad_shrink_slice_flip();
  test_squeeze_flatten_repeat();
  test_cat_stack_split();
  test_chains();
  ref_shutdown();
  return test_summary();
}
