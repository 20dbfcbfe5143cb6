/* Opts as data: each opt kind alone and in combinations, on matmul, convolution and
 * reduction kernels of awkward sizes (1, 7, 13, 33, 1000, 1023 and primes), gives the
 * results of the kernel with no opts (NOOPT); an opt that does not divide its axis or
 * names no axis of the kernel is refused with a message; the same kernel realized twice
 * is compiled once (the program cache is keyed by the kernel's structure). White-box: the
 * scheduler's kernels run through the engine with chosen opts. */
#include "check.h"
#include "engine/run_kernel.h"
#include "codegen/codegen.h"
#include "schedule/schedule.h"
#include "runtime/buffer.h"
#include "tensor/tensor.h"
#include <math.h>
#include <string.h>

static uint64_t rng = 11;
static float frand(void) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((rng >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}
static cg_tensor *rand_t(const int64_t *shape, int nd) {
  int64_t n = 1;
  for (int i = 0; i < nd; i++) n *= shape[i];
  float *h = malloc(sizeof(float) * (size_t)(n ? n : 1));
  for (int64_t i = 0; i < n; i++) h[i] = frand();
  cg_tensor *t = cg_from_data(h, CG_FLOAT32, shape, nd);
  free(h);
  return t;
}

/* The output of t's last kernel run with opts o (o NULL: the heuristic's), into out. */
static cg_status run_last(cg_tensor *t, const opt *o, int n, float *out, int64_t count) {
  uop_pool_push();
  schedule s;
  cg_status st = sched_build(&t->u, 1, &s) ? CG_OK : cg_last_status();
  for (int i = 0; st == CG_OK && i < s.n; i++) {
    bool last = i == s.n - 1;
    st = kernel_run_with_opts(&s.k[i], last ? o : NULL, last ? n : 0, NULL);
  }
  if (st == CG_OK) {
    cg_buffer *b = buffer_of(s.k[s.n - 1].bufs[0]);
    memcpy(out, b->ptr, sizeof(float) * (size_t)count);
  }
  if (s.k) sched_free(&s);
  uop_pool_pop();
  return st;
}

static int nchecked;
/* Compare t's last kernel under each opt list with its NOOPT result, within tol
 * (relative, plus absolute): an unrolled reduction adds in another order, so tol grows
 * with the length of the reduction (a wrong index is off by O(1)). */
static void check_opts(const char *what, cg_tensor *t, const opt *lists, const int *lens, int nlists, float tol) {
  int64_t count = cg_numel(t);
  float *ref = malloc(sizeof(float) * (size_t)count), *got = malloc(sizeof(float) * (size_t)count);
  opt none[1];
  CHECK(run_last(t, none, 0, ref, count) == CG_OK, "%s: NOOPT run: %s", what, cg_last_error());
  for (int l = 0, at = 0; l < nlists; at += lens[l++]) {
    char d[128];
    opts_str(lists + at, lens[l], d, sizeof d);
    cg_status st = run_last(t, lists + at, lens[l], got, count);
    CHECK(st == CG_OK, "%s with %s: %s", what, d, cg_last_error());
    if (st != CG_OK) continue;
    int64_t bad = -1;
    for (int64_t i = 0; i < count && bad < 0; i++)
      if (!(fabsf(got[i] - ref[i]) <= tol * (1 + fabsf(ref[i])))) bad = i;
    CHECK(bad < 0, "%s with %s: element %lld is %g, NOOPT gives %g", what, d, (long long)bad, bad < 0 ? 0 : got[bad], bad < 0 ? 0 : ref[bad]);
    nchecked++;
  }
  free(ref), free(got);
}

/* Every opt that applies to a kernel with output axes of these sizes and one reduce axis
 * (id 100) of size k: each alone, then all compatible ones together. */
static void matmul_case(int64_t m, int64_t k, int64_t n) {
  cg_tensor *a = rand_t((int64_t[]){m, k}, 2), *b = rand_t((int64_t[]){k, n}, 2);
  cg_realize(a), cg_realize(b);
  cg_tensor *c = cg_matmul(a, b);
  opt lists[96];
  int lens[48], nl = 0, at = 0;
  int64_t out[2] = {m, n};
  opt combo[MAX_OPTS];
  int nc = 0;
  static const int amounts[] = {16, 8, 4, 3, 2};
  for (int ax = 0; ax < 2; ax++) {
    bool first = true;
    for (int i = 0; i < 5; i++)
      if (out[ax] % amounts[i] == 0 && out[ax] > amounts[i]) {
        lists[at++] = (opt){OPT_UPCAST, (int16_t)ax, amounts[i]}, lens[nl++] = 1;
        if (first) combo[nc++] = lists[at - 1], first = false;
      }
    if (out[ax] > 1) lists[at++] = (opt){OPT_THREAD, (int16_t)ax, 0}, lens[nl++] = 1;
  }
  for (int i = 0; i < 5; i++)
    if (k % amounts[i] == 0 && k > amounts[i]) {
      lists[at++] = (opt){OPT_UNROLL, 100, amounts[i]}, lens[nl++] = 1;
      if (nc < MAX_OPTS - 1 && i >= 2) combo[nc++] = lists[at - 1], i = 5;
    }
  if (m > 1) combo[nc++] = (opt){OPT_THREAD, 0, 0};
  if (nc > 1) {
    memcpy(lists + at, combo, sizeof(opt) * (size_t)nc);
    at += nc, lens[nl++] = nc;
  }
  /* PADTO: every axis to a multiple it may not divide, alone and with the UPCAST / UNROLL
   * it makes possible (masked vector tails) */
  static const int pads[] = {16, 8, 3};
  for (int i = 0; i < 3; i++) {
    int p = pads[i];
    if (n > 1) lists[at++] = (opt){OPT_PADTO, 1, p}, lens[nl++] = 1;
    if (n > 1) lists[at++] = (opt){OPT_PADTO, 1, p}, lists[at++] = (opt){OPT_UPCAST, 1, p}, lens[nl++] = 2;
    if (m > 1) lists[at++] = (opt){OPT_PADTO, 0, p}, lists[at++] = (opt){OPT_UPCAST, 0, p}, lens[nl++] = 2;
    if (k > 1) lists[at++] = (opt){OPT_PADTO, 100, p}, lists[at++] = (opt){OPT_UNROLL, 100, p}, lens[nl++] = 2;
  }
  /* TILE of each output axis by a divisor, alone and under THREAD */
  for (int ax = 0; ax < 2; ax++)
    for (int t = 2; t <= out[ax]; t++)
      if (out[ax] % t == 0) {
        lists[at++] = (opt){OPT_TILE, (int16_t)ax, t}, lists[at++] = (opt){OPT_THREAD, 0, 0}, lens[nl++] = 2;
        break;
      }
  /* the GEMM tile the heuristic builds, on any size: columns padded to 32 and upcast
   * 16 x 2, rows padded to 8 and upcast, column blocks of 2 tiles outermost, threads */
  opt gemm[] = {{OPT_PADTO, 1, 64}, {OPT_UPCAST, 1, 16}, {OPT_UPCAST, 1, 2}, {OPT_PADTO, 0, 8}, {OPT_UPCAST, 0, 8}, {OPT_TILE, 1, 2}, {OPT_THREAD, 0, 0}};
  int ng = m > 8 ? 7 : 6; /* 8 rows or fewer: one row tile, no rows left to thread */
  if (m > 1 && n > 1) memcpy(lists + at, gemm, sizeof(opt) * (size_t)ng), at += ng, lens[nl++] = ng;
  CG_ASSERT(at <= 96 && nl <= 48, "test lists overflow");
  char what[64];
  snprintf(what, sizeof what, "matmul %lldx%lldx%lld", (long long)m, (long long)k, (long long)n);
  check_opts(what, c, lists, lens, nl, 1e-6f + 4e-7f * (float)k);
  /* TILE of the reduce axis (k blocks, each adding to what the output holds) by its
   * smallest and largest proper divisors: alone, under THREAD, and inside the GEMM tile
   * before and after its column blocks */
  opt kl[64];
  int kn[16], nk = 0, kat = 0;
  for (int64_t t = 2; t < k; t++) {
    if (k % t) continue;
    int32_t kt = (int32_t)t;
    kl[kat++] = (opt){OPT_TILE, 100, kt}, kn[nk++] = 1;
    if (m > 1) kl[kat++] = (opt){OPT_TILE, 100, kt}, kl[kat++] = (opt){OPT_THREAD, 0, 0}, kn[nk++] = 2;
    if (m > 1 && n > 1) {
      for (int before = 0; before < 2; before++) {
        for (int i = 0; i < ng; i++) {
          if (gemm[i].kind == OPT_TILE && before) kl[kat++] = (opt){OPT_TILE, 100, kt};
          kl[kat++] = gemm[i];
          if (gemm[i].kind == OPT_TILE && !before) kl[kat++] = (opt){OPT_TILE, 100, kt};
        }
        kn[nk++] = ng + 1;
      }
    }
    if (t * t >= k) break;
    t = k / t - 1; /* then the largest (the loop adds 1) */
  }
  CG_ASSERT(kat <= 64 && nk <= 16, "test lists overflow");
  if (nk) check_opts(what, c, kl, kn, nk, 1e-6f + 4e-7f * (float)k);
}

/* y scheduled: the number of its kernels (-1: scheduling failed, reported), and the
 * heuristic's opts for its last kernel in o / *no, as text in got. */
static int heuristic_of(cg_tensor *y, opt *o, int *no, char *got, size_t ngot) {
  uop_pool_push();
  schedule s;
  bool ok = sched_build(&y->u, 1, &s);
  CHECK(ok, "schedule: %s", cg_last_error());
  int n = ok ? s.n : -1;
  *no = ok && s.n ? opt_heuristic(lower_kernel(s.k[s.n - 1].ast), o) : 0;
  opts_str(o, *no, got, ngot);
  if (ok) sched_free(&s);
  uop_pool_pop();
  return n;
}

/* The heuristic's opts for the GEMM kernel of an (m x k) @ (k x n) product (b given
 * transposed: x @ w.T, as nn.Linear). */
static void pin_gemm(int64_t m, int64_t k, int64_t n, bool bt, const char *want) {
  cg_tensor *a = cg_empty(CG_FLOAT32, (int64_t[]){m, k}, 2);
  cg_tensor *b = bt ? cg_transpose(cg_empty(CG_FLOAT32, (int64_t[]){n, k}, 2), 0, 1) : cg_empty(CG_FLOAT32, (int64_t[]){k, n}, 2);
  opt o[MAX_OPTS];
  int no;
  char got[256];
  heuristic_of(cg_matmul(a, b), o, &no, got, sizeof got);
  CHECK(!strcmp(got, want), "%lldx%lldx%lld%s: heuristic gives %s, pinned %s", (long long)m, (long long)k, (long long)n, bt ? " (b transposed)" : "", got, want);
}

/* The whole path (packing copy, heuristic GEMM opts with PADTO tails) against float64,
 * for sizes no tile divides; b optionally transposed (x @ w.T). */
/* tr: 1 = b given transposed ((n, k), x @ w.T), 2 = a given transposed ((k, m), a weight
 * gradient's g^T @ x: packed in row panels where opt_gemm_pack_a says so) */
static void gemm_vs_f64(int64_t m, int64_t k, int64_t n, int tr) {
  bool bt = tr & 1, at = tr & 2;
  float *a = malloc(sizeof(float) * (size_t)(m * k)), *b = malloc(sizeof(float) * (size_t)(k * n)), *c = malloc(sizeof(float) * (size_t)(m * n));
  for (int64_t i = 0; i < m * k; i++) a[i] = frand(); /* (m, k), or (k, m) when at */
  for (int64_t i = 0; i < k * n; i++) b[i] = frand(); /* (k, n), or (n, k) when bt */
  cg_tensor *ta = at ? cg_transpose(cg_from_data(a, CG_FLOAT32, (int64_t[]){k, m}, 2), 0, 1) : cg_from_data(a, CG_FLOAT32, (int64_t[]){m, k}, 2);
  cg_tensor *tb = bt ? cg_transpose(cg_from_data(b, CG_FLOAT32, (int64_t[]){n, k}, 2), 0, 1) : cg_from_data(b, CG_FLOAT32, (int64_t[]){k, n}, 2);
  cg_status st = cg_read(cg_matmul(ta, tb), CG_FLOAT32, c, sizeof(float) * (size_t)(m * n));
  CHECK(st == CG_OK, "%s", cg_last_error());
  double worst = 0;
  for (int64_t i = 0; st == CG_OK && i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      double want = 0;
      for (int64_t q = 0; q < k; q++) want += (double)(at ? a[q * m + i] : a[i * k + q]) * (bt ? b[j * k + q] : b[q * n + j]);
      worst = fmax(worst, fabs(c[i * n + j] - want) / (1 + fabs(want)));
    }
  /* float32 sums of k products of |x| <= 1: 1e-6 per term is generous */
  CHECK(worst <= 1e-6 * (double)k, "%lldx%lldx%lld%s%s on %s: off by %g", (long long)m, (long long)k, (long long)n, bt ? " (b transposed)" : "",
        at ? " (a transposed)" : "", cg_get_config("DEVICE") ? cg_get_config("DEVICE") : "CPU", worst);
  free(a), free(b), free(c);
}

/* A weight gradient's product g^T @ x (a given transposed): packed into row panels (its
 * own copy kernel before B's and the GEMM) at sizes opt_gemm_pack_a takes, and the GEMM
 * keeps the GEMM branch's register tile. */
static void pin_packed_a(int64_t m, int64_t k, int64_t n, int want_kernels) {
  cg_tensor *a = cg_empty(CG_FLOAT32, (int64_t[]){k, m}, 2), *b = cg_empty(CG_FLOAT32, (int64_t[]){k, n}, 2);
  opt o[MAX_OPTS];
  int no;
  char got[256];
  int nk = heuristic_of(cg_matmul(cg_transpose(a, 0, 1), b), o, &no, got, sizeof got);
  CHECK(nk == want_kernels && strstr(got, "UPCAST(0,8)"), "g^T @ x (%lld, %lld, %lld): %d kernels (expected %d), heuristic gives %s", (long long)m, (long long)k,
        (long long)n, nk, want_kernels, got);
}

/* The same for a batched product q @ k.T, q (b, t, d), k (b, t, d) (attention scores). */
static void pin_batched(int64_t b, int64_t t, int64_t d, const char *want) {
  cg_tensor *q = cg_empty(CG_FLOAT32, (int64_t[]){b, t, d}, 3), *k = cg_empty(CG_FLOAT32, (int64_t[]){b, t, d}, 3);
  opt o[MAX_OPTS];
  int no;
  char got[256];
  int nk = heuristic_of(cg_matmul(q, cg_transpose(k, 1, 2)), o, &no, got, sizeof got);
  CHECK(nk == (strstr(want, "UNROLL") ? 1 : 2) && !strcmp(got, want), "q @ k.T (%lld, %lld, %lld): %d kernels, heuristic gives %s, pinned %s", (long long)b, (long long)t, (long long)d, nk,
        got, want);
}

/* An elementwise kernel whose small output dim selects between the pieces of a cat (8
 * rows, each a different sum of slices: Winograd's transforms are built so): the heuristic
 * unrolls that dim whole, so each lane's selection folds; a plain pad (two bounds) is not
 * unrolled. Both against NOOPT. */
static void selector_unroll(void) {
  cg_tensor *x = rand_t((int64_t[]){6, 8, 32}, 3);
  cg_realize(x);
  cg_tensor *rows[8];
  for (int i = 0; i < 8; i++) {
    /* b reversed along the last dim: the rows dim cannot merge with it (codegen/merge_dims.c) */
    cg_tensor *a = cg_slice(x, 1, i, i + 1, 1), *b = cg_flip(cg_slice(x, 1, (i * 3) % 8, (i * 3) % 8 + 1, 1), (const int[]){2}, 1);
    rows[i] = cg_add(cg_mul(a, cg_scalar(i + 1)), b);
  }
  cg_tensor *cat = cg_cat(rows, 8, 1), *pad = cg_pad(x, (const int64_t[]){0, 0, 1, 1, 0, 0}, 0);
  for (int k = 0; k < 2; k++) {
    cg_tensor *y = k ? pad : cat;
    opt h[MAX_OPTS];
    int nh;
    char d[128];
    CHECK(heuristic_of(y, h, &nh, d, sizeof d) == 1, "cat/pad: one kernel");
    bool unrolled = false;
    for (int i = 0; i < nh; i++) unrolled = unrolled || (h[i].kind == OPT_UPCAST && h[i].axis == 1 && h[i].amount == (k ? 10 : 8));
    CHECK(unrolled == !k, "%s: the heuristic gives %s", k ? "a plain pad: dim 1 not unrolled" : "a cat of 8 rows: dim 1 unrolled whole", d);
    check_opts(k ? "pad with the heuristic's opts" : "cat of 8 rows with the heuristic's opts", y, h, &nh, 1, 1e-6f);
  }
}

/* A transposed copy (x * y made contiguous as its transpose, float32 and bfloat16 out): the
 * heuristic unrolls the dim the loads are contiguous in (opt_transpose_tile) and, where
 * the two widths differ (no in-register transpose: gathers), puts the vector dim's loop
 * outermost; the result is the transpose, checked element by element, for sizes the
 * 16-wide tiles divide and for a 40-wide one (8-wide lanes). */
static void transpose_tile(int64_t m, int64_t n, const char *want_f32, const char *want_bf16) {
  cg_tensor *x = rand_t((int64_t[]){m, n}, 2), *y = rand_t((int64_t[]){m, n}, 2);
  float *hx = malloc(sizeof(float) * (size_t)(m * n)), *hy = malloc(sizeof(float) * (size_t)(m * n)), *got = malloc(sizeof(float) * (size_t)(m * n));
  cg_read(x, CG_FLOAT32, hx, sizeof(float) * (size_t)(m * n)), cg_read(y, CG_FLOAT32, hy, sizeof(float) * (size_t)(m * n));
  for (int bf = 0; bf < 2; bf++) {
    cg_tensor *t = cg_contiguous(cg_cast(cg_transpose(cg_mul(x, y), 0, 1), bf ? CG_BFLOAT16 : CG_FLOAT32));
    uop_pool_push();
    schedule s;
    CHECK(sched_build(&t->u, 1, &s) && s.n == 1, "transpose %lldx%lld: one kernel: %s", (long long)m, (long long)n, cg_last_error());
    opt h[MAX_OPTS];
    int nh = s.n ? opt_heuristic(lower_kernel(s.k[0].ast), h) : 0;
    char d[128];
    opts_str(h, nh, d, sizeof d);
    const char *want = bf ? want_bf16 : want_f32;
    CHECK(!strcmp(d, want), "transpose %lldx%lld%s: heuristic gives %s, pinned %s", (long long)m, (long long)n, bf ? " to bfloat16" : "", d, want);
    if (s.k) sched_free(&s);
    uop_pool_pop();
    cg_status st = cg_read(cg_cast(t, CG_FLOAT32), CG_FLOAT32, got, sizeof(float) * (size_t)(m * n));
    CHECK(st == CG_OK, "%s", cg_last_error());
    int64_t bad = -1;
    for (int64_t j = 0; st == CG_OK && j < n && bad < 0; j++)
      for (int64_t i = 0; i < m && bad < 0; i++) {
        float want_v = hx[i * n + j] * hy[i * n + j], g = got[j * m + i];
        if (!(fabsf(g - want_v) <= (bf ? 0x1p-8f * fabsf(want_v) : 0.0f))) bad = j * m + i;
      }
    CHECK(bad < 0, "transpose %lldx%lld%s: element %lld wrong", (long long)m, (long long)n, bf ? " to bfloat16" : "", (long long)bad);
    nchecked++;
  }
  free(hx), free(hy), free(got);
}

/* The same pieces along a dim that a reshape merged with the dim outside it, as Winograd
 * rows' output transform is stored: (6, 5, 4, 32) pieces of 4 rows seen as (6, 20, 32). The
 * selections are on r % 4: the heuristic upcasts the 20 rows by 4 (each lane one piece)
 * instead of evaluating every piece's gate per row. Against NOOPT. */
static void selector_unroll_merged(void) {
  cg_tensor *x = rand_t((int64_t[]){6, 5, 8, 32}, 4);
  cg_realize(x);
  cg_tensor *rows[4];
  for (int i = 0; i < 4; i++) {
    cg_tensor *a = cg_slice(x, 2, i, i + 1, 1), *b = cg_flip(cg_slice(x, 2, (i * 3 + 1) % 8, (i * 3 + 1) % 8 + 1, 1), (const int[]){3}, 1);
    rows[i] = cg_sub(cg_mul(a, cg_scalar(i + 2)), b);
  }
  cg_tensor *y = cg_reshape(cg_cat(rows, 4, 2), (const int64_t[]){6, 20, 32}, 3);
  opt h[MAX_OPTS];
  int nh;
  char d[128];
  CHECK(heuristic_of(y, h, &nh, d, sizeof d) == 1, "merged cat: one kernel");
  bool unrolled = false;
  for (int i = 0; i < nh; i++) unrolled = unrolled || (h[i].kind == OPT_UPCAST && h[i].axis == 1 && h[i].amount == 4);
  CHECK(unrolled, "a cat of 4 rows merged into 20: the heuristic gives %s, expected UPCAST(1,4) among them", d);
  check_opts("merged cat of 4 rows with the heuristic's opts", y, h, &nh, 1, 1e-6f);
}

int main(void) {
  cg_scope_begin();
  /* 16 x 16 tiles transposed in registers (expand.c): rows of the output in order */
  transpose_tile(96, 64, "UPCAST(1,16) UPCAST(0,16) THREAD(0)", "UPCAST(1,16) UPCAST(0,16) THREAD(0)");
  transpose_tile(40, 48, "UPCAST(1,8) UPCAST(0,16) TILE(1,1) THREAD(0)", "UPCAST(1,8) UPCAST(0,16) TILE(1,1) THREAD(0)");
  transpose_tile(33, 17, "PADTO(1,16) UPCAST(1,16) THREAD(0)", "THREAD(0)"); /* 17 wide: no 8-lane tile */
  pin_batched(8, 256, 64, "UPCAST(2,16) UPCAST(2,2) UPCAST(1,8) THREAD(0)"); /* packed k.T, the GEMM branch; 8 batches: threads take batches */
  pin_batched(4, 256, 64, "UPCAST(2,16) UPCAST(2,2) UPCAST(1,8) THREAD(1)"); /* 4 batches, 32 row tiles: threads take rows */
  pin_batched(64, 20, 64, "UPCAST(0,4) UNROLL(100,16) UPCAST(1,4) THREAD(0)"); /* too few rows to pack: k read in place */
  /* packed GEMMs end to end, against float64, on the C backend and the interpreter */
  cg_set_config("PACK", "2");
  for (int dev = 0; dev < 2; dev++) {
    if (dev) cg_set_config("DEVICE", "INTERP");
    gemm_vs_f64(33, 17, 1023, false);
    gemm_vs_f64(37, 29, 100, true);
    gemm_vs_f64(9, 64, 31, false);
    gemm_vs_f64(37, 45, 33, 2); /* a transposed: row panels, 37 rows padded to 40 */
    gemm_vs_f64(16, 19, 40, 3);
  }
  cg_set_config("DEVICE", "CPU");
  { /* batched, with a broadcast batch and with b transposed per batch (q @ k.T) */
    enum { B = 3, M = 37, K = 29, N = 70 };
    float *a = malloc(sizeof(float) * B * M * K), *b = malloc(sizeof(float) * B * K * N), *c = malloc(sizeof(float) * B * M * N);
    for (int i = 0; i < B * M * K; i++) a[i] = frand();
    for (int i = 0; i < B * K * N; i++) b[i] = frand();
    cg_tensor *ta = cg_from_data(a, CG_FLOAT32, (int64_t[]){B, M, K}, 3);
    for (int v = 0; v < 3; v++) {
      /* v 0: b (B, K, N); 1: b (K, N) broadcast; 2: b given as (B, N, K), transposed */
      cg_tensor *tb = v == 0 ? cg_from_data(b, CG_FLOAT32, (int64_t[]){B, K, N}, 3)
                      : v == 1 ? cg_from_data(b, CG_FLOAT32, (int64_t[]){K, N}, 2)
                               : cg_transpose(cg_from_data(b, CG_FLOAT32, (int64_t[]){B, N, K}, 3), 1, 2);
      cg_status st = cg_read(cg_matmul(ta, tb), CG_FLOAT32, c, sizeof(float) * B * M * N);
      CHECK(st == CG_OK, "%s", cg_last_error());
      double worst = 0;
      for (int q = 0; st == CG_OK && q < B; q++)
        for (int i = 0; i < M; i++)
          for (int j = 0; j < N; j++) {
            double want = 0;
            for (int k = 0; k < K; k++) {
              float bv = v == 0 ? b[(q * K + k) * N + j] : v == 1 ? b[k * N + j] : b[(q * N + j) * K + k];
              want += (double)a[(q * M + i) * K + k] * bv;
            }
            worst = fmax(worst, fabs(c[(q * M + i) * N + j] - want) / (1 + fabs(want)));
          }
      CHECK(worst <= 1e-6 * K, "batched GEMM variant %d: off by %g", v, worst);
    }
    free(a), free(b), free(c);
  }
  gemm_vs_f64(131, 257, 67, false);
  gemm_vs_f64(64, 1000, 48, true);
  cg_set_config("PACK", "1");
  pin_packed_a(1536, 2048, 384, 3); /* a GPT's c_fc weight gradient: A and B packed */
  pin_packed_a(64, 128, 64, 1);     /* small: read in place */
  gemm_vs_f64(200, 300, 96, 2);
  /* the heuristic's opts for the benchmark shapes (bench/bench_matmul.c), pinned */
  pin_gemm(512, 512, 512, false, "UPCAST(1,16) UPCAST(1,2) UPCAST(0,8) TILE(1,8) THREAD(0)");
  pin_gemm(1024, 1024, 1024, false, "UPCAST(1,16) UPCAST(1,2) UPCAST(0,8) TILE(1,8) THREAD(0)");
  pin_gemm(2048, 2048, 2048, false, "UPCAST(1,16) UPCAST(1,2) UPCAST(0,8) TILE(1,8) TILE(100,512) THREAD(0)");
  pin_gemm(4096, 4096, 4096, false, "UPCAST(1,16) UPCAST(1,2) UPCAST(0,8) TILE(1,8) TILE(100,512) THREAD(0)");
  pin_gemm(520, 2048, 512, false, "UPCAST(1,16) UPCAST(1,2) UPCAST(0,8) TILE(1,8) TILE(100,512) THREAD(0)");
  pin_gemm(2048, 1536, 2048, false, "UPCAST(1,16) UPCAST(1,2) UPCAST(0,8) TILE(1,8) THREAD(0)"); /* k < 2048: no k blocks */
  pin_gemm(256, 4096, 2048, false, "UPCAST(1,16) UPCAST(1,2) UPCAST(0,8) TILE(1,8) THREAD(0)"); /* few rows: none */
  { /* k blocks add to the output: none where an epilogue follows the sum (relu(a @ b)) */
    cg_tensor *c = cg_relu(cg_matmul(cg_empty(CG_FLOAT32, (int64_t[]){2048, 2048}, 2), cg_empty(CG_FLOAT32, (int64_t[]){2048, 2048}, 2)));
    uop_pool_push();
    schedule s;
    CHECK(sched_build(&c->u, 1, &s), "%s", cg_last_error());
    opt o[MAX_OPTS];
    uop *low = lower_kernel(s.k[s.n - 1].ast);
    int no = opt_heuristic(low, o);
    char got[256];
    opts_str(o, no, got, sizeof got);
    CHECK(!strcmp(got, "UPCAST(1,16) UPCAST(1,2) UPCAST(0,8) TILE(1,8) THREAD(0)") && opt_apply(low, o, no), "relu(a @ b) 2048^3: heuristic gives %s (%s)", got,
          cg_last_error());
    sched_free(&s);
    uop_pool_pop();
  }
  gemm_vs_f64(520, 2048, 512, false); /* the heuristic's k blocks, end to end */
  { /* BEAM's GEMM seeds at 2048^3: k blocks of 256 in column blocks of 16 first, then
     * the heuristic's list in row blocks of 512, its list without its k block among them,
     * and every one applies */
    cg_tensor *c = cg_matmul(cg_empty(CG_FLOAT32, (int64_t[]){2048, 2048}, 2), cg_empty(CG_FLOAT32, (int64_t[]){2048, 2048}, 2));
    uop_pool_push();
    schedule s;
    CHECK(sched_build(&c->u, 1, &s), "%s", cg_last_error());
    uop *low = lower_kernel(s.k[s.n - 1].ast);
    opt lists[32][MAX_OPTS];
    int lens[32], n = opt_gemm_candidates(low, lists, lens, 32), applied = 0;
    bool none = false, rowblocks = false;
    char first[256] = "", d[256];
    for (int i = 0; i < n; i++) {
      opts_str(lists[i], lens[i], d, sizeof d);
      if (!i) snprintf(first, sizeof first, "%s", d);
      none |= !strcmp(d, "UPCAST(1,16) UPCAST(1,2) UPCAST(0,8) TILE(1,8) THREAD(0)");
      rowblocks |= i < 3 && !strcmp(d, "UPCAST(1,16) UPCAST(1,2) UPCAST(0,8) TILE(0,64) TILE(1,8) TILE(100,512) THREAD(0)");
      applied += opt_apply(low, lists[i], lens[i]) != NULL;
    }
    CHECK(n >= 10 && applied == n && none && rowblocks && !strcmp(first, "UPCAST(1,16) UPCAST(1,2) UPCAST(0,8) TILE(1,16) TILE(100,256) THREAD(0)"),
          "2048^3 seeds: %d, %d apply, first %s, the heuristic's without k blocks %s, in row blocks %s", n, applied, first,
          none ? "there" : "missing", rowblocks ? "there" : "missing");
    sched_free(&s);
    uop_pool_pop();
  }
  pin_gemm(512, 576, 10, false, "PADTO(1,16) UPCAST(1,16) UPCAST(0,8) THREAD(0)");
  pin_gemm(8192, 384, 1536, false, "UPCAST(1,16) UPCAST(1,2) UPCAST(0,8) THREAD(0)");
  pin_gemm(8192, 1536, 384, false, "UPCAST(1,16) UPCAST(1,2) UPCAST(0,8) TILE(1,4) THREAD(0)");
  pin_gemm(1000, 1000, 1000, false, "PADTO(1,32) UPCAST(1,16) UPCAST(1,2) UPCAST(0,8) TILE(1,8) THREAD(0)");
  pin_gemm(1023, 1023, 1023, false, "PADTO(1,32) UPCAST(1,16) UPCAST(1,2) PADTO(0,8) UPCAST(0,8) TILE(1,8) THREAD(0)");
  pin_gemm(512, 784, 100, true, "PADTO(1,32) UPCAST(1,16) UPCAST(1,2) UPCAST(0,8) THREAD(0)");
  /* matmuls: sizes 1, 7, 13, 33, 1000, 1023 and primes */
  matmul_case(1, 1, 1);
  matmul_case(7, 13, 33);
  matmul_case(64, 1000, 48);
  matmul_case(33, 17, 1023);
  matmul_case(12, 8, 20);
  { /* a convolution: output (N, Cout, OH, OW) = (2, 4, 7, 7), reduced over (Cin, KH, KW) */
    cg_tensor *x = rand_t((int64_t[]){2, 3, 9, 9}, 4), *w = rand_t((int64_t[]){4, 3, 3, 3}, 4);
    cg_realize(x), cg_realize(w);
    cg_tensor *y = cg_conv2d(x, w, NULL, NULL, NULL, NULL, 1);
    opt lists[] = {
        {OPT_UPCAST, 1, 4},
        {OPT_UPCAST, 3, 7},
        {OPT_THREAD, 0, 0},
        {OPT_UPCAST, 1, 4}, {OPT_UPCAST, 3, 7}, {OPT_THREAD, 2, 0},
        {OPT_UPCAST, 1, 2}, {OPT_UPCAST, 0, 2}, {OPT_THREAD, 3, 0},
    };
    int lens[] = {1, 1, 1, 3, 3};
    check_opts("conv2d (2,3,9,9) * (4,3,3,3)", y, lists, lens, 5, 2e-5f);
  }
  { /* a convolution over weights laid out with the output channels innermost
     * (nn/functional_conv.c): a vector along the output channels, stored lane by lane
     * into the NCHW output (expand.c), alone and tiled; output (3, 16, 5, 5) */
    cg_tensor *x = rand_t((int64_t[]){3, 8, 7, 7}, 4), *w = rand_t((int64_t[]){16, 8, 3, 3}, 4);
    cg_realize(x), cg_realize(w);
    cg_tensor *y = cg_conv2d(x, w, NULL, NULL, NULL, NULL, 1);
    opt lists[] = {
        {OPT_UPCAST, 1, 16},
        {OPT_UPCAST, 1, 8}, {OPT_UPCAST, 0, 3}, {OPT_THREAD, 2, 0},
        {OPT_UPCAST, 1, 16}, {OPT_UPCAST, 3, 5}, {OPT_UNROLL, 102, 3},
    };
    int lens[] = {1, 3, 3};
    check_opts("conv2d (3,8,7,7) * (16,8,3,3), channels-inner weights", y, lists, lens, 3, 2e-5f);
    /* the heuristic picks that vector where there are enough outputs (opt_vector.c) */
    cg_tensor *x2 = rand_t((int64_t[]){2, 16, 12, 10}, 4), *w2 = rand_t((int64_t[]){32, 16, 3, 3}, 4);
    cg_realize(x2), cg_realize(w2);
    cg_tensor *y2 = cg_conv2d(x2, w2, NULL, NULL, (const int64_t[]){1, 1}, NULL, 1);
    opt h[MAX_OPTS];
    int nh;
    char d[128];
    heuristic_of(y2, h, &nh, d, sizeof d);
    CHECK(nh >= 1 && h[0].kind == OPT_UPCAST && h[0].axis == 1 && h[0].amount == 16,
          "conv2d (2,16,12,10) * (32,16,3,3): the heuristic's first opt is UPCAST(1,16), got %s", d);
    check_opts("conv2d (2,16,12,10) * (32,16,3,3) p1 with the heuristic's opts", y2, h, &nh, 1, 2e-5f);
  }
  { /* a transposed read: a vector along the output's last dim gathers at stride 48 (one
     * gather at a vector of offsets, codegen/expand.c), beside a contiguous operand */
    cg_tensor *x = rand_t((int64_t[]){32, 48}, 2), *z = rand_t((int64_t[]){48, 32}, 2);
    cg_realize(x), cg_realize(z);
    cg_tensor *y = cg_relu(cg_mul(cg_permute(x, (int[]){1, 0}, 2), z));
    opt lists[] = {
        {OPT_UPCAST, 1, 16},
        {OPT_UPCAST, 1, 8}, {OPT_UPCAST, 0, 3}, {OPT_THREAD, 0, 0},
        {OPT_UPCAST, 1, 4}, {OPT_UPCAST, 1, 2},
        {OPT_UPCAST, 1, 2},
    };
    int lens[] = {1, 3, 2, 1};
    check_opts("relu(x.T * z), x (32,48)", y, lists, lens, 4, 1e-6f);
  }
  { /* reductions over the batch axis and over the last axis */
    cg_tensor *x = rand_t((int64_t[]){1000, 33}, 2);
    cg_realize(x);
    cg_tensor *s0 = cg_sum(x, (int[]){0}, 1, true), *s1 = cg_max(x, (int[]){1}, 1, true);
    opt l0[] = {{OPT_UPCAST, 1, 3}, {OPT_UNROLL, 100, 8}, {OPT_UPCAST, 1, 11}, {OPT_UNROLL, 100, 4}, {OPT_THREAD, 1, 0}};
    int n0[] = {1, 1, 3};
    check_opts("sum over 1000 rows", s0, l0, n0, 3, 4e-4f);
    opt l1[] = {{OPT_UPCAST, 0, 8}, {OPT_UNROLL, 100, 3}, {OPT_UPCAST, 0, 4}, {OPT_UNROLL, 100, 11}, {OPT_THREAD, 0, 0}};
    int n1[] = {1, 1, 3};
    check_opts("max over 33 columns", s1, l1, n1, 3, 0);
  }
  selector_unroll();
  selector_unroll_merged();
  CHECK(nchecked >= 40, "only %d opt lists checked", nchecked);
  { /* refusals name the opt and the problem */
    cg_tensor *a = rand_t((int64_t[]){16, 12}, 2), *b = rand_t((int64_t[]){12, 10}, 2);
    cg_realize(a), cg_realize(b);
    cg_tensor *c = cg_matmul(a, b);
    float out[160];
    opt bad1[] = {{OPT_UPCAST, 1, 4}}, bad2[] = {{OPT_UPCAST, 7, 2}}, bad3[] = {{OPT_UNROLL, 0, 2}}, bad4[] = {{OPT_UNROLL, 100, 5}};
    CHECK(run_last(c, bad1, 1, out, 160) == CG_ERR_INVALID && strstr(cg_last_error(), "UPCAST(1,4)") && strstr(cg_last_error(), "does not divide"),
          "got: %s", cg_last_error());
    CHECK(run_last(c, bad2, 1, out, 160) == CG_ERR_INVALID && strstr(cg_last_error(), "no output range with axis id 7"), "got: %s", cg_last_error());
    CHECK(run_last(c, bad3, 1, out, 160) == CG_ERR_INVALID && strstr(cg_last_error(), "no reduce range"), "got: %s", cg_last_error());
    CHECK(run_last(c, bad4, 1, out, 160) == CG_ERR_INVALID && strstr(cg_last_error(), "size 12"), "got: %s", cg_last_error());
    /* k blocks add to the output: not where an epilogue follows the sum, nor for a max */
    opt bad5[] = {{OPT_TILE, 100, 4}};
    CHECK(run_last(cg_relu(c), bad5, 1, out, 160) == CG_ERR_INVALID && strstr(cg_last_error(), "TILE(100,4)") && strstr(cg_last_error(), "store writes its sum"),
          "got: %s", cg_last_error());
    float mx[16];
    CHECK(run_last(cg_max(a, (int[]){1}, 1, false), bad5, 1, mx, 16) == CG_ERR_INVALID && strstr(cg_last_error(), "(ADD)"), "got: %s", cg_last_error());
  }
  { /* the program cache: a kernel of the same structure over other buffers compiles nothing */
    cg_tensor *x = rand_t((int64_t[]){5, 6}, 2), *y = rand_t((int64_t[]){5, 6}, 2);
    cg_tensor *r1 = cg_sum(cg_relu(cg_mul(x, x)), (int[]){1}, 1, false);
    CHECK(cg_realize(r1) == CG_OK);
    uint64_t c0 = cg_get_stats().kernels_compiled + cg_get_stats().kernels_cached;
    cg_tensor *r2 = cg_sum(cg_relu(cg_mul(y, y)), (int[]){1}, 1, false);
    CHECK(cg_realize(r2) == CG_OK);
    CHECK(cg_get_stats().kernels_compiled + cg_get_stats().kernels_cached == c0, "a second kernel of the same structure was compiled again");
  }
  cg_scope_end();
  return test_summary();
}
