/* The heuristic's lanes for reductions without a vector along their output
 * (codegen/opt_reduce.c): every reduce loop that runs innermost gets UNROLL, one whose
 * length no 16, 8 or 4 divides gets PADTO 16 first, and a reduction to one value (a loss)
 * gets them too; the results against float64 in plain C, with the heuristic's opts (the
 * ordinary realize) and with NOOPT. Kernels: a row's max and exp-sum over 114 columns (two
 * loops, padded), a row's variance around its mean over 384 (two loops), the mean cross
 * entropy of (N, 114) logits (one value: a loop over rows holding three padded loops).
 * And a column sum (a bias gradient: 1536 columns over rows) reads 8 vectors of its row
 * per trip, 384 columns keep 2 (too few tiles of 128 to share among threads); a copy into
 * panels of 8 columns (a GEMM's packed A operand) takes two panels a step, whole cache
 * lines (opt_vector.c's opt_line_dim), its values exactly the input's; an elementwise
 * kernel storing bf16 rows of 114 is padded to 16-lane vectors (masked bf16 stores), its
 * values against float64 rounded to bf16 (within one bf16 ulp, 2^-8 relative). */
#include "check.h"
#include "codegen/codegen.h"
#include "schedule/schedule.h"
#include "tensor/tensor.h"
#include "cgrad.h"
#include <math.h>
#include <string.h>

static uint64_t seed = 0x5eed;
static float frand(void) {
  seed = seed * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((seed >> 40) & 0xffffff) / 16777216.0f * 8.0f - 4.0f;
}

/* The heuristic's opts for y's last kernel, as text. */
static void heuristic_text(cg_tensor *y, char *got, size_t ngot) {
  uop_pool_push();
  schedule s;
  bool ok = sched_build(&y->u, 1, &s);
  CHECK(ok && s.n > 0, "schedule: %s", cg_last_error());
  opt o[MAX_OPTS];
  int n = ok && s.n ? opt_heuristic(lower_kernel(s.k[s.n - 1].ast), o) : 0;
  opts_str(o, n, got, ngot);
  if (ok) sched_free(&s);
  uop_pool_pop();
}
static int count_of(const char *s, const char *what) {
  int n = 0;
  for (const char *p = strstr(s, what); p; p = strstr(p + 1, what)) n++;
  return n;
}
/* y (n floats) read with the heuristic's opts, then with NOOPT, each within tol of want */
static void check_both(cg_tensor *(*make)(cg_tensor **in), cg_tensor **in, const double *want, int n, double tol, const char *what) {
  float *got = malloc(sizeof(float) * (size_t)n);
  for (int noopt = 0; noopt < 2; noopt++) {
    cg_set_config("NOOPT", noopt ? "1" : "0");
    cg_tensor *y = make(in);
    CHECK(y && cg_read(y, CG_FLOAT32, got, sizeof(float) * (size_t)n) == CG_OK, "%s: %s", what, cg_last_error());
    CHECK(near(got, want, n, tol, what), "%s (%s) against float64", what, noopt ? "NOOPT" : "the heuristic's opts");
  }
  cg_set_config("NOOPT", "0");
  free(got);
}

static cg_tensor *row_stats(cg_tensor **in) { /* sum(exp(x - max(x))) per row: the softmax's statistics */
  cg_tensor *m = cg_max(in[0], (int[]){1}, 1, true);
  return cg_sum(cg_exp(cg_sub(in[0], m)), (int[]){1}, 1, true);
}
static cg_tensor *row_var(cg_tensor **in) { /* mean((x - mean(x))^2) per row: a layernorm's */
  cg_tensor *d = cg_sub(in[0], cg_mean(in[0], (int[]){1}, 1, true));
  return cg_mean(cg_mul(d, d), (int[]){1}, 1, true);
}
static cg_tensor *col_sum(cg_tensor **in) { return cg_sum(in[0], (int[]){0}, 1, false); }
static cg_tensor *xent(cg_tensor **in) { return cg_cross_entropy(in[0], in[1], 0); }

int main(void) {
  cg_scope_begin();
  enum { R = 300, V = 114, D = 384, N = 256 };
  float *x = malloc(sizeof(float) * R * D);
  double *want = malloc(sizeof(double) * R);
  char got[256];
  { /* row max and exp-sum over 114: two loops, each padded to 16 and unrolled */
    for (int i = 0; i < R * V; i++) x[i] = frand();
    cg_tensor *in[1] = {cg_from_data(x, CG_FLOAT32, (int64_t[]){R, V}, 2)};
    heuristic_text(row_stats(in), got, sizeof got);
    CHECK(count_of(got, "PADTO(") == 2 && count_of(got, "UNROLL(") == 2 && strstr(got, "THREAD(0)"), "row max + exp-sum over 114: got %s", got);
    for (int r = 0; r < R; r++) {
      double m = -INFINITY, s = 0;
      for (int c = 0; c < V; c++) m = fmax(m, x[r * V + c]);
      for (int c = 0; c < V; c++) s += exp((double)x[r * V + c] - m);
      want[r] = s;
    }
    check_both(row_stats, in, want, R, 1e-5, "exp-sum of 114 columns");
  }
  { /* a row's variance over 384: both loops (mean, then squares) unrolled by 16 */
    for (int i = 0; i < R * D; i++) x[i] = frand();
    cg_tensor *in[1] = {cg_from_data(x, CG_FLOAT32, (int64_t[]){R, D}, 2)};
    heuristic_text(row_var(in), got, sizeof got);
    CHECK(count_of(got, "UNROLL(") == 2 && count_of(got, ",16)") == 2 && !strstr(got, "PADTO"), "row variance over 384: got %s", got);
    for (int r = 0; r < R; r++) {
      double m = 0, v = 0;
      for (int c = 0; c < D; c++) m += x[r * D + c];
      m /= D;
      for (int c = 0; c < D; c++) v += (x[r * D + c] - m) * (x[r * D + c] - m);
      want[r] = v / D;
    }
    check_both(row_var, in, want, R, 1e-5, "variance of 384 columns");
  }
  { /* the mean cross entropy of (256, 114) logits, some targets ignored (-100): one output;
     * the rows' loop holds the max, exp-sum and pick loops, each padded and unrolled */
    for (int i = 0; i < N * V; i++) x[i] = frand();
    int32_t t[N];
    for (int i = 0; i < N; i++) t[i] = i % 17 == 3 ? -100 : (int32_t)((seed = seed * 6364136223846793005ull + 1) >> 33) % V;
    cg_tensor *in[2] = {cg_from_data(x, CG_FLOAT32, (int64_t[]){N, V}, 2), cg_from_data(t, CG_INT32, (int64_t[]){N}, 1)};
    heuristic_text(xent(in), got, sizeof got);
    CHECK(count_of(got, "PADTO(") >= 2 && count_of(got, "UNROLL(") >= 3 && !strstr(got, "THREAD"), "cross entropy to one value: got %s", got);
    double sum = 0;
    int cnt = 0;
    for (int r = 0; r < N; r++) {
      if (t[r] == -100) continue;
      double m = -INFINITY, s = 0;
      for (int c = 0; c < V; c++) m = fmax(m, x[r * V + c]);
      for (int c = 0; c < V; c++) s += exp((double)x[r * V + c] - m);
      sum += m + log(s) - x[r * V + t[r]], cnt++;
    }
    want[0] = sum / cnt;
    check_both(xent, in, want, 1, 1e-5, "cross entropy of (256, 114)");
  }
  for (int wide = 0; wide < 2; wide++) { /* column sums of (R, 1536) and (R, 384) */
    int C = wide ? 1536 : 384, rows = 2 * R;
    float *xc = malloc(sizeof(float) * (size_t)(rows * C));
    double *wc = malloc(sizeof(double) * (size_t)C);
    for (int i = 0; i < rows * C; i++) xc[i] = frand();
    cg_tensor *in[1] = {cg_from_data(xc, CG_FLOAT32, (int64_t[]){rows, C}, 2)};
    heuristic_text(col_sum(in), got, sizeof got);
    CHECK(strstr(got, wide ? ",16) UPCAST(0,8)" : ",16) UPCAST(0,2)") != NULL, "column sum over %d columns: got %s", C, got);
    for (int c = 0; c < C; c++) {
      wc[c] = 0;
      for (int r = 0; r < rows; r++) wc[c] += xc[r * C + c];
    }
    /* 600 float32 terms of magnitude up to 4: 2e-4 absolute covers their rounding */
    check_both(col_sum, in, wc, C, 2e-4, wide ? "column sums of (600, 1536)" : "column sums of (600, 384)");
    free(xc), free(wc);
  }
  { /* x (R, 48) packed into 6 panels of (R, 8) */
    for (int i = 0; i < R * 48; i++) x[i] = frand();
    cg_tensor *xt = cg_from_data(x, CG_FLOAT32, (int64_t[]){R, 48}, 2);
    cg_tensor *pk = cg_contiguous(cg_permute(cg_reshape(xt, (int64_t[]){R, 6, 8}, 3), (int[]){1, 0, 2}, 3));
    heuristic_text(pk, got, sizeof got);
    CHECK(strstr(got, "UPCAST(2,8) UPCAST(0,2)") != NULL, "panels of 8 columns: got %s", got);
    float *pv = malloc(sizeof(float) * R * 48);
    CHECK(cg_read(pk, CG_FLOAT32, pv, sizeof(float) * R * 48) == CG_OK, "panels: %s", cg_last_error());
    bool same = true;
    for (int p = 0; p < 6; p++)
      for (int r = 0; r < R; r++)
        for (int c = 0; c < 8; c++) same = same && pv[(p * R + r) * 8 + c] == x[r * 48 + p * 8 + c];
    CHECK(same, "panels of 8 columns: values differ from the input's");
    free(pv);
    /* the same copy of bf16 values into panels of 32 (a bf16 GEMM's packed B): vector moves
     * of the bits (expand.c), the bits exactly the input's */
    cg_tensor *xb = cg_contiguous(cg_cast(cg_from_data(x, CG_FLOAT32, (int64_t[]){R, 64}, 2), CG_BFLOAT16));
    uint16_t *bx = malloc(sizeof(uint16_t) * R * 64), *bp = malloc(sizeof(uint16_t) * R * 64);
    CHECK(cg_read(xb, CG_BFLOAT16, bx, sizeof(uint16_t) * R * 64) == CG_OK, "bf16 input: %s", cg_last_error());
    cg_tensor *pb = cg_contiguous(cg_permute(cg_reshape(xb, (int64_t[]){R, 2, 32}, 3), (int[]){1, 0, 2}, 3));
    CHECK(cg_read(pb, CG_BFLOAT16, bp, sizeof(uint16_t) * R * 64) == CG_OK, "bf16 panels: %s", cg_last_error());
    same = true;
    for (int p = 0; p < 2; p++)
      for (int r = 0; r < R; r++)
        for (int c = 0; c < 32; c++) same = same && bp[(p * R + r) * 32 + c] == bx[r * 64 + p * 32 + c];
    CHECK(same, "bf16 panels of 32 columns: bits differ from the input's");
    free(bx), free(bp);
  }
  { /* bf16(exp(x) * 0.5) over (33, 114) read from rows of 128 (dims that do not merge):
     * PADTO + 16 lanes, values within a bf16 ulp */
    enum { BR = 33 };
    for (int i = 0; i < BR * 128; i++) x[i] = frand();
    cg_tensor *xt = cg_slice(cg_from_data(x, CG_FLOAT32, (int64_t[]){BR, 128}, 2), 1, 0, V, 1);
    cg_tensor *y = cg_cast(cg_mul(cg_exp(xt), cg_scalar(0.5)), CG_BFLOAT16);
    heuristic_text(y, got, sizeof got);
    CHECK(strstr(got, "PADTO(1,16) UPCAST(1,16)") != NULL, "bf16 rows of 114: got %s", got);
    uint16_t *bits = malloc(sizeof(uint16_t) * BR * V);
    CHECK(cg_read(y, CG_BFLOAT16, bits, sizeof(uint16_t) * BR * V) == CG_OK, "bf16 rows: %s", cg_last_error());
    int bad = -1;
    for (int i = 0; i < BR * V && bad < 0; i++) {
      uint32_t u = (uint32_t)bits[i] << 16;
      float f;
      memcpy(&f, &u, 4);
      double ref = exp((double)x[i / V * 128 + i % V]) * 0.5;
      if (!(fabs(f - ref) <= ref * 0x1p-8)) bad = i;
    }
    CHECK(bad < 0, "bf16 rows of 114: element %d off by more than a bf16 ulp", bad);
    free(bits);
  }
  free(x), free(want);
  cg_scope_end();
  return test_summary();
}
