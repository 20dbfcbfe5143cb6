/* The schedule cache (engine/sched_cache.h): a realize whose graph differs from an earlier
 * one only in which buffers and vars it reads reuses that schedule; anything the schedule
 * depends on misses. Every result is checked against float64 in plain C, and the cached
 * runs against CG_SCHED_CACHE=0 bit for bit:
 *   - training loops (SGD on a linear model against a float64 reference; Adam on an MLP):
 *     every step from the second hits (a first gradient is added to zeros as every later
 *     one is, after zero_grad), and losses and weights equal the uncached run's bit for bit;
 *   - a changed shape, dtype or constant misses (a hit would compute the old graph);
 *   - aliasing: f(a, b) and f(a, a) are two entries; an assign realized with a read of x
 *     orders the read first only when x is the assigned buffer (a shared entry would
 *     read the updated value, or the other way round);
 *   - the assign target changes (a hit would write the wrong buffer); an assign already
 *     realized is its buffer (a hit on the pending form would apply it twice); a tensor
 *     realized vs lazy;
 *   - var values change with no miss;
 *   - knobs: NOOPT and DEBUG keep the schedule but NOOPT's programs are used (DEBUG=3
 *     prints their opts), CG_SCHED_CACHE=0 never hits;
 *   - bounded: 1000 realizes of distinct graphs keep at most CG_SCHED_CACHE_ENTRIES
 *     entries and the IR does not grow; 1000 hits of one graph do not grow either. */
#include "cgrad.h"
#include "capture.h"
#include "check.h"
#include "engine/sched_cache.h"
#include "uop/uop.h"
#include <math.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t rng = 7;
static float frand(void) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((rng >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}
static void fill(float *x, int n) {
  for (int i = 0; i < n; i++) x[i] = frand();
}
static uint64_t hits(void) { return cg_get_stats().schedule_hits; }
static cg_tensor *from(const float *x, int64_t n) { return cg_from_data(x, CG_FLOAT32, &n, 1); }
static bool read_near(cg_tensor *t, const double *want, int n, double tol, const char *what) {
  float got[4096];
  if (n > 4096 || cg_read(t, CG_FLOAT32, got, sizeof(float) * (size_t)n) != CG_OK) {
    fprintf(stderr, "  %s: read: %s\n", what, cg_last_error());
    return false;
  }
  return near(got, want, n, tol, what);
}

/* ---- training loops ------------------------------------------------------------------- */

enum { N = 64, D = 8, H = 16, STEPS = 6 };

/* SGD on mean((x w - y)^2); losses and the final w out; hit[s]: step s's realizes all hit. */
static void sgd_run(const float *xs, const float *ys, const float *w0, float *loss, float *w_end, bool *hit) {
  cg_scope_begin();
  int64_t sw[2] = {D, 1}, sx[2] = {N, D}, sy[2] = {N, 1};
  cg_tensor *w = cg_from_data(w0, CG_FLOAT32, sw, 2), *x = cg_from_data(xs, CG_FLOAT32, sx, 2), *y = cg_from_data(ys, CG_FLOAT32, sy, 2);
  CHECK(w && x && y && cg_set_requires_grad(w, true) == CG_OK, "setup: %s", cg_last_error());
  cg_optimizer *opt = cg_sgd(&w, 1, 0.1, 0, 0, 0, false);
  for (int s = 0; s < STEPS; s++) {
    uint64_t h0 = hits(), r0 = cg_get_stats().schedules;
    cg_scope_begin();
    cg_tensor *d = cg_sub(cg_matmul(x, w), y);
    cg_tensor *l = cg_mean(cg_mul(d, d), NULL, 0, false);
    CHECK(l && cg_backward(l) == CG_OK && cg_realize(l) == CG_OK && cg_optimizer_step(opt) == CG_OK, "step %d: %s", s, cg_last_error());
    loss[s] = (float)cg_item(l);
    cg_optimizer_zero_grad(opt);
    cg_scope_end();
    hit[s] = hits() - h0 == cg_get_stats().schedules - r0;
  }
  CHECK(cg_read(w, CG_FLOAT32, w_end, sizeof(float) * D) == CG_OK, "read w: %s", cg_last_error());
  cg_optimizer_free(opt);
  cg_scope_end();
}

/* Adam on an MLP relu(x w1) w2, one realize per step (loss, gradients and updates). */
static void adam_run(const float *xs, const float *ys, const float *w1, const float *w2, float *loss, float *w_end, bool *hit) {
  cg_scope_begin();
  int64_t s1[2] = {D, H}, s2[2] = {H, 1}, sx[2] = {N, D}, sy[2] = {N, 1};
  cg_tensor *p[2] = {cg_from_data(w1, CG_FLOAT32, s1, 2), cg_from_data(w2, CG_FLOAT32, s2, 2)};
  cg_tensor *x = cg_from_data(xs, CG_FLOAT32, sx, 2), *y = cg_from_data(ys, CG_FLOAT32, sy, 2);
  CHECK(p[0] && p[1] && x && y && cg_set_requires_grad(p[0], true) == CG_OK && cg_set_requires_grad(p[1], true) == CG_OK, "setup: %s", cg_last_error());
  cg_optimizer *opt = cg_adam(p, 2, 0.01, 0.9, 0.999, 1e-8, 0);
  for (int s = 0; s < STEPS; s++) {
    cg_scope_begin();
    cg_tensor *d = cg_sub(cg_matmul(cg_relu(cg_matmul(x, p[0])), p[1]), y);
    cg_tensor *l = cg_mean(cg_mul(d, d), NULL, 0, false);
    cg_tensor *const *upd = NULL;
    int nupd = 0;
    CHECK(l && cg_backward(l) == CG_OK && cg_optimizer_step_lazy(opt, &upd, &nupd) == CG_OK, "step %d: %s", s, cg_last_error());
    cg_tensor *all[8] = {l};
    for (int i = 0; i < nupd && i < 7; i++) all[i + 1] = upd[i];
    uint64_t h0 = hits();
    CHECK(cg_realize_many(all, 1 + (nupd < 7 ? nupd : 7)) == CG_OK, "step %d: %s", s, cg_last_error());
    hit[s] = hits() == h0 + 1;
    loss[s] = (float)cg_item(l);
    cg_optimizer_zero_grad(opt);
    cg_scope_end();
  }
  CHECK(cg_read(p[0], CG_FLOAT32, w_end, sizeof(float) * D * H) == CG_OK, "read w1: %s", cg_last_error());
  cg_optimizer_free(opt);
  cg_scope_end();
}

static void test_training(void) {
  static float xs[N * D], ys[N], w0[D], w1[D * H], w2[H];
  fill(xs, N * D), fill(ys, N), fill(w0, D), fill(w1, D * H), fill(w2, H);
  /* float64 reference of the SGD run */
  double wd[D], ref_loss[STEPS];
  for (int j = 0; j < D; j++) wd[j] = w0[j];
  for (int s = 0; s < STEPS; s++) {
    double l = 0, g[D] = {0};
    for (int i = 0; i < N; i++) {
      double e = -ys[i];
      for (int j = 0; j < D; j++) e += (double)xs[i * D + j] * wd[j];
      l += e * e / N;
      for (int j = 0; j < D; j++) g[j] += 2.0 / N * e * xs[i * D + j];
    }
    ref_loss[s] = l;
    for (int j = 0; j < D; j++) wd[j] -= 0.1 * g[j];
  }
  float la[STEPS], lb[STEPS], wa[D * H], wb[D * H];
  bool ha[STEPS], hb[STEPS];
  for (int pass = 0; pass < 2; pass++) { /* the cache on, then off */
    cg_set_config("CG_SCHED_CACHE", pass ? "0" : "1");
    sgd_run(xs, ys, w0, pass ? lb : la, pass ? wb : wa, pass ? hb : ha);
  }
  cg_set_config("CG_SCHED_CACHE", "1");
  /* every step's gradient is zeros (the first one's, then zero_grad's) plus the new one:
   * one graph from the first step on, so the second hits */
  for (int s = 1; s < STEPS; s++) CHECK(ha[s], "SGD step %d: a realize missed the schedule cache", s);
  for (int s = 0; s < STEPS; s++) CHECK(!hb[s], "SGD step %d hit with CG_SCHED_CACHE=0", s);
  CHECK(!memcmp(la, lb, sizeof la) && !memcmp(wa, wb, sizeof(float) * D), "SGD: cached and uncached runs differ");
  float lf[STEPS];
  for (int s = 0; s < STEPS; s++) lf[s] = la[s];
  CHECK(near(lf, ref_loss, STEPS, 1e-4, "SGD loss"), "SGD losses against float64");
  CHECK(near(wa, wd, D, 1e-4, "SGD w"), "SGD weights against float64");

  for (int pass = 0; pass < 2; pass++) {
    cg_set_config("CG_SCHED_CACHE", pass ? "0" : "1");
    adam_run(xs, ys, w1, w2, pass ? lb : la, pass ? wb : wa, pass ? hb : ha);
  }
  cg_set_config("CG_SCHED_CACHE", "1");
  for (int s = 1; s < STEPS; s++) CHECK(ha[s], "Adam step %d missed the schedule cache", s);
  for (int s = 0; s < STEPS; s++) CHECK(!hb[s], "Adam step %d hit with CG_SCHED_CACHE=0", s);
  CHECK(!memcmp(la, lb, sizeof la) && !memcmp(wa, wb, sizeof wa), "Adam: cached and uncached runs differ bit for bit");
  CHECK(la[STEPS - 1] < la[0], "Adam: the loss went from %g to %g", la[0], la[STEPS - 1]);
}

/* ---- misses ---------------------------------------------------------------------------- */

/* y = (a * 2 + b) * a - 1, realized; checked; returns whether it hit. */
static bool f_ab(const float *av, const float *bv, int64_t n, double c) {
  uint64_t h0 = hits();
  cg_scope_begin();
  cg_tensor *a = from(av, n), *b = from(bv, n);
  cg_tensor *y = cg_sub(cg_mul(cg_add(cg_mul(a, cg_scalar(c)), b), a), cg_scalar(1));
  double want[4096];
  for (int64_t i = 0; i < n; i++) want[i] = ((double)av[i] * c + bv[i]) * av[i] - 1;
  CHECK(cg_realize(y) == CG_OK, "%s", cg_last_error());
  bool h = hits() > h0;
  CHECK(read_near(y, want, (int)n, 1e-5, "(a*c+b)*a-1"), "n %lld, c %g", (long long)n, c);
  cg_scope_end();
  return h;
}

static void test_misses(void) {
  float a[300], b[300];
  fill(a, 300), fill(b, 300);
  f_ab(a, b, 100, 2);
  CHECK(f_ab(b, a, 100, 2), "the same graph on other buffers missed");
  CHECK(!f_ab(a, b, 120, 2), "another shape hit");
  CHECK(!f_ab(a, b, 100, 3), "another constant hit");
  CHECK(f_ab(a, b, 100, 3), "the same constant again missed");
  /* dtype: float64 inputs */
  for (int pass = 0; pass < 2; pass++) {
    uint64_t h0 = hits();
    cg_scope_begin();
    double ad[100], bd[100], want[100];
    for (int i = 0; i < 100; i++) ad[i] = a[i], bd[i] = b[i], want[i] = (ad[i] * 2 + bd[i]) * ad[i] - 1;
    int64_t n = 100;
    cg_tensor *x = cg_from_data(ad, CG_FLOAT64, &n, 1), *y = cg_from_data(bd, CG_FLOAT64, &n, 1);
    cg_tensor *z = cg_sub(cg_mul(cg_add(cg_mul(x, cg_scalar(2)), y), x), cg_scalar(1));
    double got[100];
    CHECK(cg_read(z, CG_FLOAT64, got, sizeof got) == CG_OK, "%s", cg_last_error());
    bool ok = true;
    for (int i = 0; i < 100; i++) ok &= fabs(got[i] - want[i]) <= 1e-12 * (1 + fabs(want[i]));
    CHECK(ok, "float64 values");
    CHECK(pass ? hits() > h0 : hits() == h0, "float64 inputs: pass %d %s", pass, pass ? "missed" : "hit the float32 entry");
    cg_scope_end();
  }
}

/* ---- aliasing ---------------------------------------------------------------------------- */

static void test_alias(void) {
  float a[64], b[64];
  fill(a, 64), fill(b, 64);
  /* y = a*2 + b*3 with b distinct, then b = a: two entries, both right */
  for (int rep = 0; rep < 2; rep++)
    for (int same = 0; same < 2; same++) {
      cg_scope_begin();
      uint64_t h0 = hits();
      size_t e0 = sched_cache_get_stats().entries;
      cg_tensor *x = from(a, 64), *y = same ? x : from(b, 64);
      cg_tensor *z = cg_add(cg_mul(x, cg_scalar(2)), cg_mul(y, cg_scalar(3)));
      double want[64];
      for (int i = 0; i < 64; i++) want[i] = 2.0 * a[i] + 3.0 * (same ? a[i] : b[i]);
      CHECK(cg_realize(z) == CG_OK, "%s", cg_last_error());
      uint64_t h1 = hits();
      CHECK(read_near(z, want, 64, 1e-6, "2a+3b"), "aliasing %d, rep %d", same, rep);
      if (rep) CHECK(h1 > h0, "aliasing %d: the second time missed", same);
      else CHECK(h1 == h0 && sched_cache_get_stats().entries > e0, "aliasing %d: hit the other form's entry", same);
      cg_scope_end();
    }
  /* an assign w <- w + 1 listed before y = x * 2: when x is w, y must read the old w (it
   * runs first); when x is another buffer, nothing orders them */
  for (int rep = 0; rep < 2; rep++)
    for (int same = 0; same < 2; same++) {
      cg_scope_begin();
      cg_tensor *w = from(a, 64), *x = same ? w : from(b, 64);
      cg_tensor *y = cg_mul(x, cg_scalar(2));
      CHECK(cg_assign(w, cg_add(w, cg_scalar(1))) == CG_OK, "%s", cg_last_error());
      cg_tensor *all[2] = {w, y};
      uint64_t h0 = hits();
      CHECK(cg_realize_many(all, 2) == CG_OK, "%s", cg_last_error());
      CHECK(rep ? hits() > h0 : hits() == h0, "assign beside a read, x %s w, rep %d: %s", same ? "is" : "is not", rep, rep ? "missed" : "hit");
      double wy[64], ww[64];
      for (int i = 0; i < 64; i++) wy[i] = 2.0 * (same ? a[i] : b[i]), ww[i] = (double)a[i] + 1;
      CHECK(read_near(y, wy, 64, 1e-6, "y = 2x"), "y read the %s (x %s w, rep %d)", "wrong value", same ? "is" : "is not", rep);
      CHECK(read_near(w, ww, 64, 1e-6, "w + 1"), "w updated once (x %s w, rep %d)", same ? "is" : "is not", rep);
      cg_scope_end();
    }
}

/* ---- assign targets, done assigns, realized vs lazy ----------------------------------------- */

static void test_assigns(void) {
  float a[50], b[50];
  fill(a, 50), fill(b, 50);
  /* the target: a <- a + 2b, then b <- a + 2b (the same value graph up to which is written) */
  for (int rep = 0; rep < 2; rep++)
    for (int into_b = 0; into_b < 2; into_b++) {
      cg_scope_begin();
      cg_tensor *x = from(a, 50), *y = from(b, 50);
      cg_tensor *t = into_b ? y : x;
      CHECK(cg_assign(t, cg_add(x, cg_mul(y, cg_scalar(2)))) == CG_OK, "%s", cg_last_error());
      uint64_t h0 = hits();
      CHECK(cg_realize(t) == CG_OK, "%s", cg_last_error());
      CHECK(rep ? hits() > h0 : hits() == h0, "assign into %s, rep %d: %s", into_b ? "b" : "a", rep, rep ? "missed" : "hit the other target's entry");
      double wx[50], wy[50];
      for (int i = 0; i < 50; i++) {
        double v = (double)a[i] + 2.0 * b[i];
        wx[i] = into_b ? a[i] : v, wy[i] = into_b ? v : b[i];
      }
      CHECK(read_near(x, wx, 50, 1e-6, "a") && read_near(y, wy, 50, 1e-6, "b"), "assign into %s, rep %d", into_b ? "b" : "a", rep);
      cg_scope_end();
    }
  /* u = (w <- w + 1) * 3 realized while the assign is pending (applies it), then the same
   * form with the assign realized first: u must not apply it again */
  for (int rep = 0; rep < 2; rep++)
    for (int done_first = 0; done_first < 2; done_first++) {
      cg_scope_begin();
      cg_tensor *w = from(a, 50);
      CHECK(cg_assign(w, cg_add(w, cg_scalar(1))) == CG_OK, "%s", cg_last_error());
      cg_tensor *u = cg_mul(w, cg_scalar(3)); /* built on the pending assign */
      double wu[50], ww[50];
      for (int i = 0; i < 50; i++) ww[i] = (double)a[i] + 1, wu[i] = 3 * ww[i];
      /* (reading w after u reads a done assign: the key must not be the pending form's,
       * or the pending form would later hit a schedule that does not apply it) */
      if (done_first) CHECK(cg_realize(w) == CG_OK && read_near(w, ww, 50, 1e-6, "w + 1"), "the assign realized alone, rep %d", rep);
      CHECK(cg_realize(u) == CG_OK, "%s", cg_last_error());
      CHECK(read_near(u, wu, 50, 1e-6, "3 (w + 1)") && read_near(w, ww, 50, 1e-6, "w + 1"), "the assign %s realized first, rep %d: applied once",
            done_first ? "was" : "was not", rep);
      cg_scope_end();
    }
  /* realized vs lazy: z = a + 1 lazy inside z * 2, then realized first */
  for (int rep = 0; rep < 2; rep++)
    for (int realized = 0; realized < 2; realized++) {
      cg_scope_begin();
      cg_tensor *x = from(a, 50), *z = cg_add(x, cg_scalar(1));
      if (realized) CHECK(cg_realize(z) == CG_OK, "%s", cg_last_error());
      cg_tensor *y = cg_mul(z, cg_scalar(2));
      double wy[50];
      for (int i = 0; i < 50; i++) wy[i] = 2 * ((double)a[i] + 1);
      CHECK(cg_realize(y) == CG_OK && read_near(y, wy, 50, 1e-6, "2 (a + 1)"), "z %s, rep %d", realized ? "realized" : "lazy", rep);
      cg_scope_end();
    }
}

/* ---- vars ------------------------------------------------------------------------------------ */

static void test_vars(void) {
  float a[40];
  fill(a, 40);
  cg_scope_begin();
  cg_tensor *v = cg_variable("scale", 0.5, CG_FLOAT32);
  uint64_t h0 = hits();
  for (int it = 0; it < 10; it++) {
    double s = 0.25 * it - 1;
    CHECK(cg_variable_set(v, s) == CG_OK, "%s", cg_last_error());
    cg_scope_begin();
    cg_tensor *y = cg_add(cg_mul(from(a, 40), v), cg_scalar(1));
    double want[40];
    for (int i = 0; i < 40; i++) want[i] = (double)a[i] * (float)s + 1;
    CHECK(cg_realize(y) == CG_OK && read_near(y, want, 40, 1e-6, "a * v + 1"), "var value %g", s);
    cg_scope_end();
  }
  CHECK(hits() - h0 >= 9, "a changed var value missed: %llu hits in 10 realizes", (unsigned long long)(hits() - h0));
  cg_scope_end();
}

/* ---- knobs ------------------------------------------------------------------------------------- */


enum { R = 64, C = 96 };
typedef struct {
  const float *x;
  float out[R];
} rowsum_job;
/* row sums of exp(x / 4), realized */
static void rowsum(void *arg) {
  rowsum_job *j = arg;
  cg_scope_begin();
  int64_t s[2] = {R, C};
  int ax = 1;
  cg_tensor *y = cg_sum(cg_exp(cg_div(cg_from_data(j->x, CG_FLOAT32, s, 2), cg_scalar(4))), &ax, 1, false);
  if (!y || cg_read(y, CG_FLOAT32, j->out, sizeof j->out) != CG_OK) memset(j->out, 0, sizeof j->out);
  cg_scope_end();
}

static void test_knobs(void) {
  static float x[R * C];
  fill(x, R * C);
  double want[R];
  for (int i = 0; i < R; i++) {
    want[i] = 0;
    for (int k = 0; k < C; k++) want[i] += exp(x[i * C + k] / 4.0);
  }
  rowsum_job heur = {.x = x}, noopt = {.x = x}, noopt_ref = {.x = x};
  rowsum(&heur);
  rowsum(&heur); /* an entry with the heuristic's programs */
  CHECK(near(heur.out, want, R, 1e-5, "row sums"), "heuristic row sums");
  cg_set_config("NOOPT", "1");
  uint64_t h0 = hits();
  cg_set_config("DEBUG", "3");
  char *log = capture_stderr(rowsum, &noopt);
  cg_set_config("DEBUG", "0");
  CHECK(hits() > h0, "NOOPT (or DEBUG) made the schedule miss: it does not depend on them");
  CHECK(log && strstr(log, "(opts: none)") && !strstr(log, "THREAD("), "NOOPT=1 after a hit: the kernel did not run without opts:\n%s", log ? log : "(no log)");
  free(log);
  cg_set_config("CG_SCHED_CACHE", "0");
  h0 = hits();
  rowsum(&noopt_ref);
  CHECK(hits() == h0, "CG_SCHED_CACHE=0 hit");
  cg_set_config("CG_SCHED_CACHE", "1");
  cg_set_config("NOOPT", "0");
  CHECK(!memcmp(noopt.out, noopt_ref.out, sizeof noopt.out), "NOOPT=1: cached and uncached row sums differ");
  CHECK(near(noopt.out, want, R, 1e-5, "row sums, NOOPT"), "NOOPT row sums");
}

/* ---- bounded ---------------------------------------------------------------------------------- */

static void test_bounded(void) {
  cg_set_config("CG_SCHED_CACHE_ENTRIES", "8");
  enum { M = 55440 }; /* 2^4 3^2 5 7 11: 2430 ordered 3-d factorizations */
  float a[64];
  fill(a, 64);
  cg_scope_begin();
  int64_t m = M;
  cg_tensor *big = cg_contiguous(cg_full(1.5, CG_FLOAT32, &m, 1));
  CHECK(big && cg_realize(big) == CG_OK, "%s", cg_last_error());
  int64_t shapes[1100][3];
  int ns = 0;
  for (int64_t d1 = 1; d1 <= M && ns < 1100; d1++)
    for (int64_t d2 = 1; M % d1 == 0 && d1 * d2 <= M && ns < 1100; d2++)
      if ((M / d1) % d2 == 0) shapes[ns][0] = d1, shapes[ns][1] = d2, shapes[ns++][2] = M / d1 / d2;
  CHECK(ns >= 1000, "only %d shapes", ns);
  size_t live0 = 0;
  uint64_t ev0 = sched_cache_get_stats().evictions;
  for (int i = 0; i < ns && i < 1000; i++) {
    if (i == 20) live0 = uop_live_count();
    cg_scope_begin();
    /* the same kernel every time (a * 2), beside a view of `big` shaped differently */
    cg_tensor *outs[2] = {cg_mul(from(a, 64), cg_scalar(2)), cg_reshape(big, shapes[i], 3)};
    CHECK(cg_realize_many(outs, 2) == CG_OK, "%s", cg_last_error());
    if (i % 100 == 0) {
      double want[64];
      for (int k = 0; k < 64; k++) want[k] = 2.0 * a[k];
      CHECK(read_near(outs[0], want, 64, 1e-6, "2a"), "iteration %d", i);
    }
    cg_scope_end();
  }
  sched_cache_stats st = sched_cache_get_stats();
  CHECK(st.entries <= 8, "%zu entries with CG_SCHED_CACHE_ENTRIES=8", st.entries);
  CHECK(st.evictions - ev0 >= 990, "%llu evictions in 1000 distinct graphs", (unsigned long long)(st.evictions - ev0));
  CHECK(uop_live_count() <= live0 + 8, "the IR grew from %zu to %zu nodes over 980 distinct graphs", live0, uop_live_count());
  CHECK(st.bytes <= (size_t)64 << 20, "%zu bytes", st.bytes);
  /* 1000 hits of one graph: nothing grows */
  cg_set_config("CG_SCHED_CACHE_ENTRIES", "256");
  uint64_t h0 = hits();
  for (int i = 0; i < 1000; i++) {
    if (i == 10) live0 = uop_live_count(), st = sched_cache_get_stats();
    cg_scope_begin();
    cg_tensor *y = cg_sub(cg_mul(from(a, 64), cg_scalar(3)), cg_scalar(1));
    CHECK(cg_realize(y) == CG_OK, "%s", cg_last_error());
    cg_scope_end();
  }
  CHECK(hits() - h0 >= 999, "%llu hits of one graph in 1000 realizes", (unsigned long long)(hits() - h0));
  CHECK(uop_live_count() == live0, "the IR grew from %zu to %zu nodes over 990 hits", live0, uop_live_count());
  CHECK(sched_cache_get_stats().entries == st.entries && sched_cache_get_stats().bytes == st.bytes, "the cache grew over hits");
  cg_scope_end();
}

int main(void) {
  rng = (uint64_t)test_env_long("CG_TEST_SEED", (long)time(NULL));
  printf("seed %llu (CG_TEST_SEED to repeat)\n", (unsigned long long)rng);
  cg_set_config("CG_SCHED_CACHE", "1");
  test_training();
  test_misses();
  test_alias();
  test_assigns();
  test_vars();
  test_knobs();
  test_bounded();
  return test_summary();
}
