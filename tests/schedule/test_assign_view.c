/* Assigns into part of a buffer (cg_assign with a view target: a slice at a constant or a
 * kernel-variable offset, a permute, a flip), against float64 in plain C on fresh random
 * data:
 *   - rows [2, 5) of a (3, 8, 5) buffer take x[rows] * 2 + y: those rows change, the rest
 *     keep their bits; a reader of the assign in the same realize sees the new rows;
 *   - a var offset: blocks of 2 rows, the var moved over [0, 3], x[block] += y[block]: one
 *     schedule (cache hits after the first block), every block right, the rest untouched;
 *     one graph at two constant offsets: each writes its own rows (the schedule cache's key
 *     holds the offset);
 *   - hazards: a value that reads the part it writes at other elements (its flip, the row
 *     above, a sum over it) reads the old value; two assigns to two parts of one buffer
 *     realized together, each reading its own part, and one reading the other's part;
 *   - a transposed target (permute) and a flipped one;
 *   - a JIT replay with the var as an input moving every call;
 *   - the refusals: an EXPAND target (not one to one), and the library keeps working. */
#include "cgrad.h"
#include "check.h"
#include <math.h>
#include <string.h>
#include <time.h>

enum { A = 3, R = 8, C = 5, N = A * R * C };
static uint64_t rng = 11;
static float frand(void) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((rng >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}
static const int64_t shape[] = {A, R, C};
static int at(int a, int r, int c) { return (a * R + r) * C + c; }

static bool read_near(cg_tensor *t, const double *ref, const char *what) {
  static float out[N];
  return cg_read(t, CG_FLOAT32, out, sizeof out) == CG_OK && near(out, ref, N, 1e-6, what);
}

typedef struct {
  cg_tensor *state;
} jit_ctx;
/* state[:, 2b : 2b + 2, :] += x (x: (A, 2, C)), the var b an input */
static cg_status jit_fn(cg_tensor *const *in, int n_in, cg_tensor **out, int n_out, void *user) {
  (void)n_in, (void)n_out;
  jit_ctx *j = user;
  cg_tensor *part = cg_slice_var(j->state, 1, in[1], 2, 2);
  cg_status st = cg_assign(part, cg_add(part, in[0]));
  if (st == CG_OK) st = cg_realize(part);
  out[0] = cg_sum(cg_mul(part, cg_scalar(1)), NULL, 0, false); /* reads the new rows */
  return st == CG_OK ? cg_realize(out[0]) : st;
}

int main(void) {
  rng = (uint64_t)test_env_long("CG_TEST_SEED", (long)time(NULL));
  printf("seed %llu (CG_TEST_SEED to repeat)\n", (unsigned long long)rng);
  static float X[N], Y[N], out[N];
  static double ref[N];
  for (int i = 0; i < N; i++) X[i] = frand(), Y[i] = frand();

  { /* constant offset, and a reader of the new rows in the same realize */
    cg_tensor *x = cg_from_data(X, CG_FLOAT32, shape, 3), *y = cg_from_data(Y, CG_FLOAT32, shape, 3);
    cg_tensor *part = cg_slice(x, 1, 2, 5, 1), *yp = cg_slice(y, 1, 2, 5, 1);
    CHECK(cg_assign(part, cg_add(cg_mul(part, cg_scalar(2)), yp)) == CG_OK, "assign: %s", cg_last_error());
    cg_tensor *tot = cg_sum(part, NULL, 0, false);
    cg_tensor *all[] = {tot, part};
    CHECK(cg_realize_many(all, 2) == CG_OK, "realize: %s", cg_last_error());
    double s = 0;
    for (int a = 0; a < A; a++)
      for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) {
          int i = at(a, r, c);
          ref[i] = r >= 2 && r < 5 ? 2.0 * X[i] + Y[i] : X[i];
          if (r >= 2 && r < 5) s += ref[i];
        }
    CHECK(read_near(x, ref, "x"), "rows 2..4 of x replaced, the rest kept");
    CHECK(fabs(cg_item(tot) - s) <= 1e-5 * (1 + fabs(s)), "the reader saw the new rows: %.9g, want %.9g", cg_item(tot), s);
    cg_free(x), cg_free(y), cg_free(part), cg_free(yp), cg_free(tot);
  }
  { /* a var offset: one schedule for every block */
    cg_tensor *x = cg_from_data(X, CG_FLOAT32, shape, 3), *y = cg_from_data(Y, CG_FLOAT32, shape, 3);
    cg_tensor *b = cg_variable_int("blk", 0, 0, R / 2 - 1);
    uint64_t hits = 0;
    for (int j = 0; j < R / 2; j++) {
      cg_variable_set(b, j);
      cg_tensor *part = cg_slice_var(x, 1, b, 2, 2), *yp = cg_slice_var(y, 1, b, 2, 2);
      CHECK(cg_assign(part, cg_add(part, yp)) == CG_OK, "assign: %s", cg_last_error());
      uint64_t h0 = cg_get_stats().schedule_hits;
      CHECK(cg_realize(part) == CG_OK, "realize block %d: %s", j, cg_last_error());
      if (j) hits += cg_get_stats().schedule_hits - h0;
      cg_free(part), cg_free(yp);
      if (j == 1) { /* blocks 0 and 1 done, 2 and 3 not */
        for (int i = 0; i < N; i++) ref[i] = (i / C) % R < 4 ? (double)X[i] + Y[i] : X[i];
        CHECK(read_near(x, ref, "x after two blocks"), "blocks 0, 1 added, 2, 3 untouched");
      }
    }
    CHECK(hits == R / 2 - 1 || !test_env_long("CG_SCHED_CACHE", 1), "blocks 1..3 hit the schedule cache: %llu hits", (unsigned long long)hits);
    for (int i = 0; i < N; i++) ref[i] = (double)X[i] + Y[i];
    CHECK(read_near(x, ref, "x"), "every block added once");
    cg_free(x), cg_free(y), cg_free(b);
  }
  { /* the same graph at two constant offsets: two schedules (the offset is in the key) */
    cg_tensor *x = cg_from_data(X, CG_FLOAT32, shape, 3);
    for (int off = 1; off <= 4; off += 3) {
      cg_tensor *part = cg_slice(x, 1, off, off + 2, 1);
      CHECK(cg_assign(part, cg_mul(part, cg_scalar(3))) == CG_OK && cg_realize(part) == CG_OK, "offset %d: %s", off, cg_last_error());
      cg_free(part);
    }
    for (int i = 0; i < N; i++) {
      int r = (i / C) % R;
      ref[i] = (r >= 1 && r < 3) || (r >= 4 && r < 6) ? 3.0 * X[i] : X[i];
    }
    CHECK(read_near(x, ref, "x"), "rows 1, 2 and 4, 5 tripled, no others");
    cg_free(x);
  }
  { /* hazards: the value reads other elements of the buffer it writes */
    cg_tensor *x = cg_from_data(X, CG_FLOAT32, shape, 3);
    cg_tensor *part = cg_slice(x, 1, 1, 7, 1);
    int d1 = 1;
    cg_tensor *above = cg_slice(x, 1, 0, 6, 1); /* row r - 1: already replaced were it read in place */
    cg_tensor *v = cg_add(cg_add(cg_flip(part, &d1, 1), above), cg_sum(part, &d1, 1, true));
    CHECK(cg_assign(part, v) == CG_OK, "assign: %s", cg_last_error());
    CHECK(cg_realize(part) == CG_OK, "realize: %s", cg_last_error());
    for (int a = 0; a < A; a++)
      for (int c = 0; c < C; c++) {
        double s = 0;
        for (int r = 1; r < 7; r++) s += X[at(a, r, c)];
        for (int r = 0; r < R; r++)
          ref[at(a, r, c)] = r >= 1 && r < 7 ? (double)X[at(a, 7 - r, c)] + X[at(a, r - 1, c)] + s : X[at(a, r, c)];
      }
    CHECK(read_near(x, ref, "x"), "flip, the row above and the sum read the old rows");
    cg_free(x), cg_free(part), cg_free(above), cg_free(v);
  }
  { /* two parts of one buffer realized together: each reads its own part; then one reads the other's */
    cg_tensor *x = cg_from_data(X, CG_FLOAT32, shape, 3), *y = cg_from_data(Y, CG_FLOAT32, shape, 3);
    cg_tensor *lo = cg_slice(x, 1, 0, 4, 1), *hi = cg_slice(x, 1, 4, 8, 1);
    CHECK(cg_assign(lo, cg_add(lo, cg_slice(y, 1, 0, 4, 1))) == CG_OK && cg_assign(hi, cg_mul(hi, cg_scalar(3))) == CG_OK, "assign: %s",
          cg_last_error());
    cg_tensor *both[] = {hi, lo};
    CHECK(cg_realize_many(both, 2) == CG_OK, "realize: %s", cg_last_error());
    for (int i = 0; i < N; i++) ref[i] = (i / C) % R < 4 ? (double)X[i] + Y[i] : 3.0 * X[i];
    CHECK(read_near(x, ref, "x"), "two disjoint parts in one realize");
    cg_free(lo), cg_free(hi);
    /* lo <- lo + hi (hi's old value) and hi <- 2 hi, together */
    memcpy(out, X, sizeof out);
    cg_free(x);
    x = cg_from_data(X, CG_FLOAT32, shape, 3);
    lo = cg_slice(x, 1, 0, 4, 1), hi = cg_slice(x, 1, 4, 8, 1);
    CHECK(cg_assign(lo, cg_add(lo, hi)) == CG_OK && cg_assign(hi, cg_mul(hi, cg_scalar(2))) == CG_OK, "assign: %s", cg_last_error());
    cg_tensor *both2[] = {hi, lo};
    CHECK(cg_realize_many(both2, 2) == CG_OK, "realize: %s", cg_last_error());
    for (int i = 0; i < N; i++) ref[i] = (i / C) % R < 4 ? (double)X[i] + X[i + 4 * C] : 2.0 * X[i];
    CHECK(read_near(x, ref, "x"), "lo read hi's old rows");
    cg_free(x), cg_free(y), cg_free(lo), cg_free(hi);
  }
  { /* a transposed target and a flipped one */
    cg_tensor *x = cg_from_data(X, CG_FLOAT32, shape, 3), *y = cg_from_data(Y, CG_FLOAT32, (int64_t[]){A, C, R}, 3);
    cg_tensor *xt = cg_transpose(x, 1, 2);
    CHECK(cg_assign(xt, cg_sub(y, xt)) == CG_OK, "assign: %s", cg_last_error());
    CHECK(cg_realize(xt) == CG_OK, "realize: %s", cg_last_error());
    for (int a = 0; a < A; a++)
      for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) ref[at(a, r, c)] = (double)Y[(a * C + c) * R + r] - X[at(a, r, c)];
    CHECK(read_near(x, ref, "x"), "x^T <- y - x^T");
    int d2 = 2;
    cg_tensor *xf = cg_flip(cg_slice(x, 1, 3, 5, 1), &d2, 1), *ramp = cg_reshape(cg_arange(0, C, 1, CG_FLOAT32), (int64_t[]){C}, 1);
    CHECK(cg_assign(xf, ramp) == CG_OK && cg_realize(xf) == CG_OK, "flipped target: %s", cg_last_error());
    for (int a = 0; a < A; a++)
      for (int r = 3; r < 5; r++)
        for (int c = 0; c < C; c++) ref[at(a, r, c)] = C - 1 - c;
    CHECK(read_near(x, ref, "x"), "rows 3, 4 reversed ramps");
    cg_free(x), cg_free(y), cg_free(xt), cg_free(xf), cg_free(ramp);
  }
  { /* a JIT replays the assign with the var it is given */
    jit_ctx jc = {cg_zeros(CG_FLOAT32, shape, 3)};
    CHECK(cg_realize(jc.state) == CG_OK, "%s", cg_last_error());
    cg_jit *j = cg_jit_new(jit_fn, 1, &jc);
    static double acc[N];
    memset(acc, 0, sizeof acc);
    for (int call = 0; call < 7; call++) {
      int blk = (call * 3) % (R / 2);
      float xs[A * 2 * C];
      for (int i = 0; i < A * 2 * C; i++) xs[i] = frand();
      cg_tensor *x = cg_from_data(xs, CG_FLOAT32, (int64_t[]){A, 2, C}, 3), *b = cg_variable_int("jit_blk", blk, 0, R / 2 - 1), *o[1] = {NULL};
      cg_tensor *in[] = {x, b};
      CHECK(cg_jit_call(j, in, 2, o) == CG_OK, "call %d: %s", call, cg_last_error());
      double s = 0;
      for (int a = 0; a < A; a++)
        for (int r = 0; r < 2; r++)
          for (int c = 0; c < C; c++) s += acc[at(a, 2 * blk + r, c)] += xs[(a * 2 + r) * C + c];
      CHECK(o[0] && fabs(cg_item(o[0]) - s) <= 1e-4 * (1 + fabs(s)), "call %d: sum of the block %.9g, want %.9g", call, o[0] ? cg_item(o[0]) : NAN, s);
      cg_free(x), cg_free(b), cg_free(o[0]);
    }
    CHECK(read_near(jc.state, acc, "state"), "every call added into its own block");
    CHECK(cg_jit_stats(j).replays >= 4 || !test_env_long("JIT", 1), "the calls replayed: %lld", (long long)cg_jit_stats(j).replays);
    cg_jit_free(j);
    cg_free(jc.state);
  }
  { /* refused: a broadcast target (two elements, one address) */
    cg_tensor *x = cg_from_data(X, CG_FLOAT32, (int64_t[]){1, C}, 2);
    cg_tensor *e = cg_expand(x, (int64_t[]){4, C}, 2);
    cg_status st = cg_assign(e, cg_ones(CG_FLOAT32, (int64_t[]){4, C}, 2));
    if (st == CG_OK) st = cg_realize(e);
    for (int i = 0; i < C; i++) ref[i] = X[i];
    CHECK(cg_read(x, CG_FLOAT32, out, sizeof(float) * C) == CG_OK && near(out, ref, C, 0, "x"), "x kept its value after the expand target");
    cg_free(x), cg_free(e);
    (void)st;
  }
  return test_summary();
}
