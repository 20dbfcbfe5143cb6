/* The public tensor API driven by bytes: a little machine over up to 8 tensors runs random
 * ops (elementwise with broadcasting, reductions over random axes, reshape, permute,
 * expand, unsqueeze, casts) with random shapes, dtypes (float32, int32), axes and
 * arguments, valid and invalid, plus NULL inputs and bad enums. Every op is also computed
 * by a float64 model here, which predicts whether the call is valid and the result's shape
 * and values: a call the model calls valid must succeed with that shape, an invalid one
 * must fail with a message (never crash), and a checked tensor's realized values must
 * equal the model's exactly (small integers, exact in float32 and int32; a tensor whose
 * values leave the exact range is no longer compared).
 *
 * Speed: on the CPU device every new kernel is compiled by cc (tens of milliseconds each,
 * and the random shapes keep making new ones), which held the harness to ~3k executions/s
 * realizing one input in 64. So it runs on the INTERP device unless DEVICE says otherwise:
 * the same scheduler, codegen passes and linearizer, rendered to the interpreter's code
 * and run there, with no compiler process (~2k executions/s realizing every input). The
 * values are still checked exactly against the float64 model. FUZZ_API_REALIZE = how many
 * inputs in 1 realize their checked tensors (default 1: all; 0: never). The corpus replay
 * (test_fuzz_api) runs every input on both devices, CPU and INTERP. */
#include "fuzz.h"
#include <math.h>

#define NT 8
#define MAXE 64
typedef struct {
  cg_tensor *t;
  int ndim;
  int64_t shape[4];
  bool isint;
  bool exact; /* values[] is known exactly */
  double v[MAXE];
} slot;

typedef struct {
  const uint8_t *p;
  size_t n;
} input;
static int take(input *in) {
  if (!in->n) return 0;
  in->n--;
  return *in->p++;
}

static int64_t numel(const int64_t *s, int nd) {
  int64_t n = 1;
  for (int i = 0; i < nd; i++) n *= s[i];
  return n;
}

/* Check t against the model in s (shape always; values when asked and exact). */
static void check_shape(const slot *s) {
  FUZZ_CHECK(cg_ndim(s->t) == s->ndim);
  FUZZ_CHECK(!memcmp(cg_shape(s->t), s->shape, sizeof(int64_t) * (size_t)s->ndim));
  FUZZ_CHECK(cg_dtype_of(s->t) == (s->isint ? CG_INT32 : CG_FLOAT32));
}

static void check_values(const slot *s) {
  int64_t n = numel(s->shape, s->ndim);
  if (!s->exact || n > MAXE) return;
  if (s->isint) {
    int32_t out[MAXE];
    FUZZ_CHECK(cg_read(s->t, CG_INT32, out, sizeof(int32_t) * (size_t)n) == CG_OK);
    for (int64_t i = 0; i < n; i++) FUZZ_CHECK(out[i] == s->v[i]);
  } else {
    float out[MAXE];
    FUZZ_CHECK(cg_read(s->t, CG_FLOAT32, out, sizeof(float) * (size_t)n) == CG_OK);
    for (int64_t i = 0; i < n; i++) FUZZ_CHECK(out[i] == s->v[i]);
  }
}

static void settle(slot *s) {
  int64_t n = numel(s->shape, s->ndim);
  if (n > MAXE) s->exact = false;
  for (int64_t i = 0; s->exact && i < n; i++)
    if (fabs(s->v[i]) > (1 << 20)) s->exact = false; /* beyond float32's exact integers, or int32 wrap */
}

/* Row-major strides of a shape. */
static void strides(const int64_t *s, int nd, int64_t *st) {
  int64_t k = 1;
  for (int i = nd - 1; i >= 0; i--) st[i] = k, k *= s[i];
}

/* Element at flat index i of out (shape os, nd) broadcast from src (shape ss, snd <= nd). */
static double bcast_at(const slot *src, const int64_t *os, int nd, int64_t i) {
  int64_t ost[4], sst[4], off = 0;
  strides(os, nd, ost);
  strides(src->shape, src->ndim, sst);
  for (int d = 0; d < nd; d++) {
    int64_t c = (i / ost[d]) % os[d];
    int sd = d - (nd - src->ndim);
    if (sd >= 0 && src->shape[sd] != 1) off += c * sst[sd];
  }
  return off < MAXE ? src->v[off] : NAN; /* past the modelled values: the slot is not exact then */
}

static void op_new(slot *s, input *in) {
  s->isint = take(in) & 1;
  s->ndim = take(in) % 4;
  for (int i = 0; i < s->ndim; i++) s->shape[i] = take(in) % 4; /* 0 to 3: empty tensors too */
  int64_t n = numel(s->shape, s->ndim);
  float f[MAXE];
  int32_t k[MAXE];
  for (int64_t i = 0; i < n && i < MAXE; i++) {
    int v = (int)(take(in) % 9) - 4;
    f[i] = (float)v, k[i] = v, s->v[i] = v;
  }
  s->exact = n <= MAXE;
  if (n > MAXE) { s->t = NULL; return; } /* 3^3 = 27 < 64: never */
  s->t = s->isint ? cg_from_data(k, CG_INT32, s->shape, s->ndim) : cg_from_data(f, CG_FLOAT32, s->shape, s->ndim);
  FUZZ_CHECK(s->t);
  check_shape(s);
}

static void op_binary(slot *out, const slot *a, const slot *b, int which) {
  static cg_tensor *(*const fns[4])(cg_tensor *, cg_tensor *) = {cg_add, cg_sub, cg_mul, cg_maximum};
  int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
  int64_t os[4] = {0};
  bool ok = true;
  for (int d = 0; d < nd; d++) {
    int ia = d - (nd - a->ndim), ib = d - (nd - b->ndim);
    int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
    ok &= da == db || da == 1 || db == 1;
    os[d] = da == 1 ? db : da;
  }
  cg_tensor *r = fns[which](a->t, b->t);
  if (!ok || !a->t || !b->t) {
    FUZZ_CHECK(!r);
    fuzz_failed_with_message();
    out->t = NULL;
    return;
  }
  FUZZ_CHECK(r);
  slot s = {.t = r, .ndim = nd, .isint = a->isint && b->isint, .exact = a->exact && b->exact};
  memcpy(s.shape, os, sizeof os);
  int64_t n = numel(os, nd);
  for (int64_t i = 0; s.exact && i < n && i < MAXE; i++) {
    double x = bcast_at(a, os, nd, i), y = bcast_at(b, os, nd, i);
    s.v[i] = which == 0 ? x + y : which == 1 ? x - y : which == 2 ? x * y : (x > y ? x : y);
  }
  settle(&s);
  *out = s;
  check_shape(out);
}

static void op_unary(slot *out, const slot *a, int which) {
  cg_tensor *r = which == 0 ? cg_neg(a->t) : cg_abs(a->t);
  if (!a->t) {
    FUZZ_CHECK(!r);
    fuzz_failed_with_message();
    out->t = NULL;
    return;
  }
  FUZZ_CHECK(r);
  slot s = *a;
  s.t = r;
  for (int64_t i = 0; i < numel(s.shape, s.ndim) && i < MAXE; i++) s.v[i] = which == 0 ? -s.v[i] : fabs(s.v[i]);
  *out = s;
  check_shape(out);
}

static void op_reduce(slot *out, const slot *a, input *in) {
  int which = take(in) % 2, naxes = take(in) % 3, axes[2];
  bool keep = take(in) & 1, ok = a->t != NULL, seen[8] = {0};
  for (int i = 0; i < naxes; i++) {
    axes[i] = (int)(take(in) % 9) - 4; /* -4..4: out of range ones too */
    int ax = axes[i] < 0 ? axes[i] + a->ndim : axes[i];
    if (ax < 0 || ax >= a->ndim || seen[ax]) ok = false; /* a repeated axis is an error */
    else seen[ax] = true;
  }
  if (naxes == 0) for (int d = 0; d < a->ndim; d++) seen[d] = true; /* all axes */
  int64_t cnt = 1;
  for (int d = 0; d < a->ndim; d++) if (seen[d]) cnt *= a->shape[d];
  if (which == 1 && cnt == 0) ok = false; /* max over nothing */
  cg_tensor *r = which == 0 ? cg_sum(a->t, naxes ? axes : NULL, naxes, keep) : cg_max(a->t, naxes ? axes : NULL, naxes, keep);
  if (!ok) {
    FUZZ_CHECK(!r);
    fuzz_failed_with_message();
    out->t = NULL;
    return;
  }
  FUZZ_CHECK(r);
  slot s = {.t = r, .isint = a->isint, .exact = a->exact};
  if (which == 0 && a->isint) s.t = NULL; /* sum of int32 is int64: compared through a cast below */
  int64_t os[4] = {0};
  int nd = 0;
  for (int d = 0; d < a->ndim; d++) {
    if (!seen[d]) os[nd++] = a->shape[d];
    else if (keep) os[nd++] = 1;
  }
  s.ndim = nd;
  memcpy(s.shape, os, sizeof os);
  int64_t n = numel(os, nd), ast[4];
  strides(a->shape, a->ndim, ast);
  for (int64_t o = 0; o < n && o < MAXE; o++) s.v[o] = which == 0 ? 0 : -INFINITY;
  for (int64_t i = 0; s.exact && i < numel(a->shape, a->ndim); i++) {
    int64_t o = 0, k = 1;
    for (int d = a->ndim - 1; d >= 0; d--) {
      int64_t c = (i / ast[d]) % a->shape[d];
      if (!seen[d]) o += c * k, k *= a->shape[d];
    }
    s.v[o] = which == 0 ? s.v[o] + a->v[i] : (a->v[i] > s.v[o] ? a->v[i] : s.v[o]);
  }
  if (!s.t) { /* int sum: int64 result, look at it as int32 (values are small) */
    FUZZ_CHECK(cg_dtype_of(r) == CG_INT64);
    s.t = cg_cast(r, CG_INT32);
    FUZZ_CHECK(s.t);
  }
  settle(&s);
  *out = s;
  check_shape(out);
}

static void op_reshape(slot *out, const slot *a, input *in) {
  int nd = take(in) % 4;
  int64_t sh[4];
  int infer = -1;
  for (int i = 0; i < nd; i++) {
    sh[i] = (int64_t)(take(in) % 6) - 1; /* -1 .. 4 */
    if (sh[i] == -1 && infer < 0) infer = i;
  }
  int64_t known = 1, total = a->t ? numel(a->shape, a->ndim) : 0;
  bool ok = a->t != NULL;
  for (int i = 0; i < nd; i++) {
    if (i == infer) continue;
    if (sh[i] < 0) ok = false;
    else known *= sh[i];
  }
  int64_t want[4];
  memcpy(want, sh, sizeof sh);
  if (ok && infer >= 0) {
    if (known == 0 || total % known) ok = false;
    else want[infer] = total / known;
  }
  if (ok && numel(want, nd) != total) ok = false;
  cg_tensor *r = cg_reshape(a->t, sh, nd);
  if (!ok) {
    FUZZ_CHECK(!r);
    fuzz_failed_with_message();
    out->t = NULL;
    return;
  }
  FUZZ_CHECK(r);
  slot s = *a;
  s.t = r, s.ndim = nd;
  memcpy(s.shape, want, sizeof want);
  *out = s;
  check_shape(out);
}

static void op_permute(slot *out, const slot *a, input *in) {
  int perm[4], nd = a->ndim;
  bool ok = a->t != NULL, used[4] = {0};
  int seed = take(in);
  for (int i = 0; i < nd; i++) perm[i] = i;
  for (int i = nd - 1; i > 0; i--) { /* a permutation from the byte */
    int j = seed % (i + 1);
    seed /= i + 1;
    int t = perm[i];
    perm[i] = perm[j], perm[j] = t;
  }
  if (nd && (take(in) & 7) == 0) perm[0] = perm[nd - 1] == 0 && nd > 1 ? 0 : 5, ok = false; /* break it sometimes */
  for (int i = 0; i < nd && ok; i++) {
    if (perm[i] < 0 || perm[i] >= nd || used[perm[i]]) ok = false;
    else used[perm[i]] = true;
  }
  cg_tensor *r = cg_permute(a->t, perm, nd);
  if (!ok) {
    FUZZ_CHECK(!r);
    fuzz_failed_with_message();
    out->t = NULL;
    return;
  }
  FUZZ_CHECK(r);
  slot s = {.t = r, .ndim = nd, .isint = a->isint, .exact = a->exact};
  for (int i = 0; i < nd; i++) s.shape[i] = a->shape[perm[i]];
  int64_t ost[4], ast[4], n = numel(s.shape, nd);
  strides(s.shape, nd, ost);
  strides(a->shape, nd, ast);
  if (n > MAXE) s.exact = false; /* only the first MAXE values are modelled: a permutation reads past them */
  for (int64_t i = 0; s.exact && i < n; i++) {
    int64_t off = 0;
    for (int d = 0; d < nd; d++) off += ((i / ost[d]) % s.shape[d]) * ast[perm[d]];
    s.v[i] = a->v[off];
  }
  *out = s;
  check_shape(out);
}

static void op_expand(slot *out, const slot *a, input *in) {
  int nd = a->ndim + take(in) % 2;
  if (nd > 3) nd = 3;
  int64_t sh[4];
  bool ok = a->t != NULL && nd >= a->ndim;
  for (int i = 0; i < nd; i++) sh[i] = take(in) % 4;
  for (int d = 0; d < nd && ok; d++) {
    int ia = d - (nd - a->ndim);
    if (ia >= 0 && a->shape[ia] != sh[d] && a->shape[ia] != 1) ok = false;
  }
  cg_tensor *r = cg_expand(a->t, sh, nd);
  if (!ok) {
    FUZZ_CHECK(!r);
    fuzz_failed_with_message();
    out->t = NULL;
    return;
  }
  FUZZ_CHECK(r);
  slot s = {.t = r, .ndim = nd, .isint = a->isint, .exact = a->exact};
  memcpy(s.shape, sh, sizeof sh);
  for (int64_t i = 0; i < numel(sh, nd) && i < MAXE; i++) s.v[i] = bcast_at(a, sh, nd, i);
  settle(&s);
  *out = s;
  check_shape(out);
}

static void op_cast(slot *out, const slot *a) {
  cg_tensor *r = cg_cast(a->t, a->isint ? CG_FLOAT32 : CG_INT32);
  if (!a->t) {
    FUZZ_CHECK(!r);
    fuzz_failed_with_message();
    out->t = NULL;
    return;
  }
  FUZZ_CHECK(r);
  slot s = *a;
  s.t = r, s.isint = !a->isint;
  *out = s;
  check_shape(out);
}

static void op_invalid(input *in, const slot *a) {
  int64_t neg[2] = {-1, 2};
  int which = take(in) % 5;
  cg_tensor *r = which == 0 ? cg_zeros((cg_dtype)(CG_NUM_DTYPES + take(in)), neg + 1, 1)
               : which == 1 ? cg_zeros(CG_FLOAT32, neg, 2)
               : which == 2 ? cg_zeros(CG_FLOAT32, neg, -1)
               : which == 3 ? cg_unsqueeze(a->t, 5 + take(in) % 4)
                            : cg_add(NULL, a->t);
  FUZZ_CHECK(!r);
  fuzz_failed_with_message();
}

static long realize_every = -1, inputs;

static int run_input(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (realize_every < 0) {
    const char *e = getenv("FUZZ_API_REALIZE");
    realize_every = e && *e ? strtol(e, NULL, 10) : 1;
    if (!getenv("DEVICE")) FUZZ_CHECK(cg_set_config("DEVICE", "INTERP") == CG_OK);
  }
#ifdef FUZZ_API_BOTH_DEVICES
  if (!getenv("DEVICE")) {
    FUZZ_CHECK(cg_set_config("DEVICE", "CPU") == CG_OK);
    run_input(data, size);
    FUZZ_CHECK(cg_set_config("DEVICE", "INTERP") == CG_OK);
  }
#endif
  return run_input(data, size);
}

static int run_input(const uint8_t *data, size_t size) {
  bool may_realize = realize_every > 0 && inputs++ % realize_every == 0;
  input in = {data, size};
  slot s[NT];
  memset(s, 0, sizeof s);
  cg_scope_begin();
  for (int i = 0; i < 2; i++) op_new(&s[i], &in);
  for (int steps = 0; in.n && steps < 24; steps++) {
    int op = take(&in) % 11, dst = take(&in) % NT, x = take(&in) % NT, y = take(&in) % NT;
    slot a = s[x], b = s[y], r = {0};
    switch (op) {
    case 0: op_new(&r, &in); break;
    case 1: case 2: op_binary(&r, &a, &b, take(&in) % 4); break;
    case 3: op_unary(&r, &a, take(&in) % 2); break;
    case 4: op_reduce(&r, &a, &in); break;
    case 5: op_reshape(&r, &a, &in); break;
    case 6: op_permute(&r, &a, &in); break;
    case 7: op_expand(&r, &a, &in); break;
    case 8: op_cast(&r, &a); break;
    case 9: op_invalid(&in, &a); continue;
    case 10: /* check a tensor's values */
      if (a.t && may_realize) check_values(&a);
      continue;
    }
    s[dst] = r;
  }
  cg_scope_end();
  cg_clear_error();
  return 0;
}
