/* The TC opt (src/codegen/tc.c): bf16 sums of products on the CPU's bf16 unit.
 *
 * Reference: float64 sums of the bf16-rounded inputs (exact products). The unit rounds
 * its inputs to bf16 and accumulates in float32, so an output may differ from the
 * reference by float32 rounding of the running sum only:
 *     |c - ref| <= max(1e-5, K * 2^-24) * sum_k |a_k b_k| + 1e-30
 * (K * 2^-24 bounds float32 summation of K terms in any order; random signs stay far
 * below it; an index error is off by O(1) of that sum). Fresh random inputs every run
 * (seeded from the clock; the seed is printed).
 *
 * The GEMM's cache recipe with TC (the float32 GEMM heuristic's list with TC in front:
 * B packed in panels, PADTO of columns and rows, TILE of column blocks for K >= 512): 1000^3,
 * primes (K 1009, 1021, 1031; 1013 columns), 1, 7 and 33 rows, checked the same way and
 * the heuristic's list checked for TC and TILE.
 *
 * What is checked: the heuristic's TC kernels on matmuls of awkward sizes (K odd: the
 * last pair padded with a zero; 1-row; batched); TC with other opts (UNROLL after it, a
 * register tile, no vectors: the plain-C form); the generic float32 pair path (rounding
 * fused into the kernel); the heuristic choosing TC for bf16 matmuls on a CPU with
 * AVX512-BF16 and not for float32 ones; DEBUG=2 naming the unit; BEAM putting TC lists
 * forward; CG_CPU_FEATURES=-avx512bf16 giving float32 FMAs with the same results; refusals
 * (TC on a float32 matmul, an unknown unit); AMX: the heuristic's plan, the kernel
 * generated and compiled everywhere, run only where the CPU has AMX (skipped with a
 * message elsewhere, as on this AMD CPU) and, on AVX-512 CPUs without it, run with the
 * tile instructions emulated in C (CG_TC_AMX_EMULATE) to check the kernel around them.
 * Where the CPU lacks AVX512-BF16 the unit-specific checks skip with a message and the
 * rest run. */
#include "capture.h"
#include "check.h"
#include "engine/run_kernel.h"
#include "renderer/render.h"
#include "runtime/buffer.h"
#include "runtime/cpu_features.h"
#include "runtime/device.h"
#include "tensor/tensor.h"
#include <math.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t rng;
static float frand(void) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((rng >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}
static float bf16r(float x) { return cg_bf16_to_f32(cg_f32_to_bf16(x)); }

/* A bf16 tensor (realized bf16 buffer) of random values; vals gets their float values. */
static cg_tensor *rand_bf16(const int64_t *shape, int nd, float **vals) {
  int64_t n = 1;
  for (int i = 0; i < nd; i++) n *= shape[i];
  float *h = malloc(sizeof(float) * (size_t)n);
  for (int64_t i = 0; i < n; i++) h[i] = bf16r(frand() * 4);
  cg_tensor *t = cg_contiguous(cg_cast(cg_from_data(h, CG_FLOAT32, shape, nd), CG_BFLOAT16));
  cg_realize(t);
  *vals = h;
  return t;
}

/* c (batch, m, n) against float64 sums of a (batch, m, k) @ b (batch, k, n) */
static bool check_mm(const char *what, const float *c, const float *a, const float *b, int64_t batch, int64_t m, int64_t k, int64_t n) {
  for (int64_t z = 0; z < batch; z++)
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++) {
        double s = 0, sa = 0;
        for (int64_t q = 0; q < k; q++) {
          double p = (double)a[(z * m + i) * k + q] * (double)b[(z * k + q) * n + j];
          s += p, sa += fabs(p);
        }
        double got = c[(z * m + i) * n + j];
        double tol = (double)k * 0x1p-24 > 1e-5 ? (double)k * 0x1p-24 : 1e-5;
        if (!(fabs(got - s) <= tol * sa + 1e-30)) {
          CHECK(0, "%s: c[%lld,%lld,%lld] = %.9g, float64 reference %.9g (sum|ab| %.4g)", what, (long long)z, (long long)i, (long long)j, got, s, sa);
          return false;
        }
      }
  CHECK(1, "");
  return true;
}

/* The heuristic's opts for t's last kernel (codegen only, nothing runs). */
static int heuristic_opts(cg_tensor *t, opt *out) {
  uop_pool_push();
  schedule s;
  int n = -1;
  if (sched_build(&t->u, 1, &s)) {
    ckernel k = {.ast = s.k[s.n - 1].ast, .ren = &renderer_c};
    snprintf(k.name, sizeof k.name, "tc_probe");
    if (codegen_run(&k)) {
      n = k.nopts;
      memcpy(out, k.opts, sizeof(opt) * (size_t)n);
    }
    ckernel_free(&k);
    sched_free(&s);
  }
  uop_pool_pop();
  return n;
}
static bool has_tc(const opt *o, int n) {
  for (int i = 0; i < n; i++)
    if (o[i].kind == OPT_TC) return true;
  return false;
}

/* t's last kernel run with opts o (o NULL: the heuristic's), output into out. */
static cg_status run_last(cg_tensor *t, const opt *o, int n, float *out, int64_t count) {
  uop_pool_push();
  schedule s;
  cg_status st = sched_build(&t->u, 1, &s) ? CG_OK : cg_last_status();
  for (int i = 0; st == CG_OK && i < s.n; i++) {
    bool last = i == s.n - 1;
    st = kernel_run_with_opts(&s.k[i], last ? o : NULL, last ? n : 0, NULL);
  }
  if (st == CG_OK) memcpy(out, buffer_of(s.k[s.n - 1].bufs[0])->ptr, sizeof(float) * (size_t)count);
  if (s.k) sched_free(&s);
  uop_pool_pop();
  return st;
}

/* A bf16 matmul (batch, m, k) @ (batch, k, n) realized with the heuristic and checked; with
 * `expect_tc` the heuristic must have chosen TC (a CPU with the unit), else must not. */
static bool has_kind(const opt *o, int n, int kind) {
  for (int i = 0; i < n; i++)
    if (o[i].kind == kind) return true;
  return false;
}
static int expect_tile; /* matmul_case: 1 = the heuristic's list must have a TILE too */
static void matmul_case(int64_t batch, int64_t m, int64_t k, int64_t n, int expect_tc) {
  float *av, *bv;
  int64_t sa[3] = {batch, m, k}, sb[3] = {batch, k, n};
  int nd = batch > 1 ? 3 : 2;
  cg_tensor *a = rand_bf16(nd == 3 ? sa : sa + 1, nd, &av), *b = rand_bf16(nd == 3 ? sb : sb + 1, nd, &bv);
  cg_tensor *c = cg_matmul(cg_cast(a, CG_FLOAT32), cg_cast(b, CG_FLOAT32));
  char what[96];
  snprintf(what, sizeof what, "bf16 matmul %lldx(%lldx%lld @ %lldx%lld)", (long long)batch, (long long)m, (long long)k, (long long)k, (long long)n);
  opt o[MAX_OPTS];
  int no = heuristic_opts(c, o);
  char d[128] = "?";
  if (no >= 0) opts_str(o, no, d, sizeof d);
  if (expect_tc >= 0) CHECK(no >= 0 && has_tc(o, no) == (expect_tc == 1), "%s: heuristic opts %s, expected %s TC", what, d, expect_tc ? "a" : "no");
  if (expect_tile) CHECK(no >= 0 && has_kind(o, no, OPT_TILE), "%s: heuristic opts %s, expected a TILE", what, d);
  float *cv = malloc(sizeof(float) * (size_t)(batch * m * n));
  CHECK(cg_realize(c) == CG_OK && cg_read(c, CG_FLOAT32, cv, sizeof(float) * (size_t)(batch * m * n)) == CG_OK, "%s: %s", what, cg_last_error());
  check_mm(what, cv, av, bv, batch, m, k, n);
  free(av), free(bv), free(cv);
}

/* The same bf16 matmul under explicit opt lists. */
static void opts_case(int64_t m, int64_t k, int64_t n, const opt *lists, const int *lens, int nl) {
  float *av, *bv;
  cg_tensor *a = rand_bf16((int64_t[]){m, k}, 2, &av), *b = rand_bf16((int64_t[]){k, n}, 2, &bv);
  cg_tensor *c = cg_matmul(cg_cast(a, CG_FLOAT32), cg_cast(b, CG_FLOAT32));
  float *cv = malloc(sizeof(float) * (size_t)(m * n));
  for (int l = 0, at = 0; l < nl; at += lens[l++]) {
    char d[128], what[200];
    opts_str(lists + at, lens[l], d, sizeof d);
    snprintf(what, sizeof what, "bf16 matmul %lldx%lldx%lld with %s", (long long)m, (long long)k, (long long)n, d);
    cg_status st = run_last(c, lists + at, lens[l], cv, m * n);
    CHECK(st == CG_OK, "%s: %s", what, cg_last_error());
    if (st == CG_OK) check_mm(what, cv, av, bv, 1, m, k, n);
  }
  free(av), free(bv), free(cv);
}

static void realize_fn(void *t) { cg_realize((cg_tensor *)t); }

/* x + a1 @ b1 + a2 @ b2 in one kernel (a residual stream's projections): both sums of
 * products get TC (with the unit), and the values match float64. */
static void two_products_case(int64_t m, int64_t k1, int64_t k2, int64_t n, bool unit) {
  float *a1, *b1, *a2, *b2, *xv;
  cg_tensor *ta1 = rand_bf16((int64_t[]){m, k1}, 2, &a1), *tb1 = rand_bf16((int64_t[]){k1, n}, 2, &b1);
  cg_tensor *ta2 = rand_bf16((int64_t[]){m, k2}, 2, &a2), *tb2 = rand_bf16((int64_t[]){k2, n}, 2, &b2);
  cg_tensor *tx = cg_cast(rand_bf16((int64_t[]){m, n}, 2, &xv), CG_FLOAT32);
  cg_tensor *c = cg_add(cg_add(tx, cg_matmul(cg_cast(ta1, CG_FLOAT32), cg_cast(tb1, CG_FLOAT32))), cg_matmul(cg_cast(ta2, CG_FLOAT32), cg_cast(tb2, CG_FLOAT32)));
  char what[96], d[128] = "?";
  snprintf(what, sizeof what, "x + a1 @ b1 + a2 @ b2 (%lldx%lld, K %lld and %lld)", (long long)m, (long long)n, (long long)k1, (long long)k2);
  opt o[MAX_OPTS];
  int no = heuristic_opts(c, o), ntc = 0;
  for (int i = 0; i < no; i++) ntc += o[i].kind == OPT_TC;
  if (no >= 0) opts_str(o, no, d, sizeof d);
  CHECK(no >= 0 && ntc == (unit ? 2 : 0), "%s: heuristic opts %s, expected %d TC", what, d, unit ? 2 : 0);
  float *cv = malloc(sizeof(float) * (size_t)(m * n));
  CHECK(cg_read(c, CG_FLOAT32, cv, sizeof(float) * (size_t)(m * n)) == CG_OK, "%s: %s", what, cg_last_error());
  double worst = 0;
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      double s = xv[i * n + j], sa = fabs(s);
      for (int64_t q = 0; q < k1; q++) s += (double)a1[i * k1 + q] * b1[q * n + j], sa += fabs((double)a1[i * k1 + q] * b1[q * n + j]);
      for (int64_t q = 0; q < k2; q++) s += (double)a2[i * k2 + q] * b2[q * n + j], sa += fabs((double)a2[i * k2 + q] * b2[q * n + j]);
      double e = fabs(cv[i * n + j] - s) / (sa + 1e-30);
      if (e > worst) worst = e;
    }
  double tol = (double)(k1 + k2 + 2) * 0x1p-24; /* float32 sums of the exact products */
  CHECK(worst <= tol, "%s: off by %g of sum|ab| (allowed %g)", what, worst, tol);
  free(a1), free(b1), free(a2), free(b2), free(xv), free(cv);
}

int main(void) {
  rng = (uint64_t)time(NULL);
  printf("seed %llu\n", (unsigned long long)rng);
  cg_scope_begin();
  unsigned hw = rt_cpu_features_hw();
  bool unit = rt_cpu_features() & RT_CPU_AVX512BF16; /* CPUID, less CG_CPU_FEATURES from the environment */
  printf("bf16 units on this CPU: %s (in use: %s)\n", rt_cpu_features_str(hw), rt_cpu_features_str(rt_cpu_features()));
  if (!unit) printf("SKIP (with a message): no AVX512-BF16 here (or masked); TC kernels are not run, the float32 fallback is\n");
  int want = unit ? 1 : 0;

  /* the heuristic's kernels: awkward sizes, K odd (padded pair), one row, batched */
  matmul_case(1, 64, 64, 64, want);
  matmul_case(1, 33, 67, 48, want);   /* K odd */
  matmul_case(1, 1, 31, 32, -1);      /* one row, K odd */
  matmul_case(1, 7, 13, 16, want);
  matmul_case(1, 40, 300, 96, want);
  matmul_case(3, 17, 30, 32, want);   /* batched */
  matmul_case(2, 5, 1, 16, -1);       /* K = 1: one pair, its second a zero */

  /* the GEMM recipe with TC: packed B, PADTO, column blocks (TILE) for K >= 512 */
  expect_tile = 1;
  matmul_case(1, 1000, 1000, 1000, want);
  matmul_case(1, 7, 1009, 512, want); /* K prime (odd: padded pair) */
  matmul_case(1, 33, 1021, 1013, want);
  expect_tile = 0;
  matmul_case(1, 1, 1031, 544, -1); /* one row: 17 panels, no block */

  /* two products in one kernel: TC on both (was the first one found only) */
  two_products_case(24, 48, 200, 32, unit);
  two_products_case(16, 37, 64, 48, unit);

  /* float32 matmuls never get TC */
  {
    cg_tensor *a = cg_randn(CG_FLOAT32, (int64_t[]){32, 64}, 2), *b = cg_randn(CG_FLOAT32, (int64_t[]){64, 48}, 2);
    cg_realize(a), cg_realize(b);
    opt o[MAX_OPTS];
    int no = heuristic_opts(cg_matmul(a, b), o);
    CHECK(no >= 0 && !has_tc(o, no), "float32 matmul got TC");
    /* and asking for it is refused with a message */
    float out[32 * 48];
    cg_status st = run_last(cg_matmul(a, b), (opt[]){{OPT_TC, 100, TC_AVX512BF16}}, 1, out, 32 * 48);
    CHECK(st != CG_OK && strstr(cg_last_error(), "bfloat16"), "TC on a float32 matmul: %s", cg_last_error());
    cg_clear_error();
  }

  if (unit) {
    /* TC with other opts: a register tile, UNROLL of the pairs, threads, no vector (the
     * plain-C form), UPCAST by 8 (the emulated 8-lane form) */
    opt lists[] = {
        {OPT_TC, 100, 1},
        {OPT_TC, 100, 1}, {OPT_UPCAST, 1, 16}, {OPT_UPCAST, 0, 4}, {OPT_THREAD, 0, 0},
        {OPT_TC, 100, 1}, {OPT_UPCAST, 1, 16}, {OPT_UNROLL, 100, 3},
        {OPT_UPCAST, 1, 16}, {OPT_UPCAST, 1, 2}, {OPT_TC, 100, 1}, {OPT_UPCAST, 0, 3},
        {OPT_TC, 100, 1}, {OPT_UPCAST, 1, 8},
    };
    int lens[] = {1, 4, 3, 4, 2};
    opts_case(24, 30, 64, lists, lens, 5);
    opt odd[] = {{OPT_TC, 100, 1}, {OPT_UPCAST, 1, 16}, {OPT_UPCAST, 0, 2}};
    opts_case(6, 45, 32, odd, (int[]){3}, 1);
    /* the generic float32 pair path: rounding fused into the kernel (a dot product of
     * rows: elementwise producers fuse into the reduction), lanes along the rows */
    {
      int64_t R = 32, K = 20;
      float *x = malloc(sizeof(float) * (size_t)(R * K)), *y = malloc(sizeof(float) * (size_t)(R * K)), ref_x[32 * 20], ref_y[32 * 20], got[32];
      for (int64_t i = 0; i < R * K; i++) x[i] = frand() * 3, y[i] = frand() * 3, ref_x[i] = bf16r(x[i]), ref_y[i] = bf16r(y[i]);
      cg_tensor *tx = cg_from_data(x, CG_FLOAT32, (int64_t[]){R, K}, 2), *ty = cg_from_data(y, CG_FLOAT32, (int64_t[]){R, K}, 2);
      cg_realize(tx), cg_realize(ty);
      cg_tensor *p = cg_mul(cg_cast(cg_cast(tx, CG_BFLOAT16), CG_FLOAT32), cg_cast(cg_cast(ty, CG_BFLOAT16), CG_FLOAT32));
      cg_tensor *d = cg_sum(p, (int[]){1}, 1, false);
      opt l[] = {{OPT_TC, 100, 1}, {OPT_UPCAST, 0, 16}, {OPT_TC, 100, 1}};
      for (int v = 0; v < 2; v++) {
        cg_status st = run_last(d, v ? l : l + 2, v ? 2 : 1, got, R);
        CHECK(st == CG_OK, "fused-rounding dot product with TC: %s", cg_last_error());
        for (int64_t i = 0; st == CG_OK && i < R; i++) {
          double s = 0, sa = 0;
          for (int64_t q = 0; q < K; q++) s += (double)ref_x[i * K + q] * ref_y[i * K + q], sa += fabs((double)ref_x[i * K + q] * ref_y[i * K + q]);
          if (!(fabs(got[i] - s) <= 1e-5 * sa + 1e-30)) {
            CHECK(0, "fused-rounding dot product %s: row %lld = %.9g, reference %.9g", v ? "(16 lanes)" : "(scalar)", (long long)i, got[i], s);
            break;
          }
        }
      }
      free(x), free(y);
    }
    /* DEBUG=2 names the unit */
    {
      float *av, *bv;
      cg_tensor *a = rand_bf16((int64_t[]){16, 18}, 2, &av), *b = rand_bf16((int64_t[]){18, 32}, 2, &bv);
      cg_tensor *c = cg_matmul(cg_cast(a, CG_FLOAT32), cg_cast(b, CG_FLOAT32));
      cg_set_config("DEBUG", "2");
      char *log = capture_stderr(realize_fn, c);
      cg_set_config("DEBUG", "0");
      CHECK(log && strstr(log, "bf16 sum of products on AVX512-BF16 (vdpbf16ps)"), "DEBUG=2 does not name the unit: %s", log ? log : "(no log)");
      free(log), free(av), free(bv);
    }
    /* BEAM puts TC lists forward (and the winner computes the right thing) */
    {
      char dir[] = "/tmp/cg_test_tc_beam_XXXXXX";
      CHECK(mkdtemp(dir) != NULL, "mkdtemp");
      cg_set_config("CG_CACHE_DIR", dir);
      cg_set_config("BEAM", "2");
      cg_set_config("BEAM_BUDGET_S", "1");
      int64_t before = beam_get_stats().tc_candidates;
      matmul_case(1, 32, 64, 64, -1);
      CHECK(beam_get_stats().tc_candidates > before, "BEAM put no TC list forward");
      cg_set_config("CG_CPU_FEATURES", "-avx512bf16");
      before = beam_get_stats().tc_candidates;
      matmul_case(1, 32, 64, 64, -1);
      CHECK(beam_get_stats().tc_candidates == before, "BEAM put TC forward with the unit masked");
      cg_set_config("CG_CPU_FEATURES", "");
      cg_set_config("BEAM", "0");
      char cmd[128];
      snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
      CHECK(system(cmd) == 0, "cleanup");
      cg_set_config("CG_CACHE_DIR", "");
    }
  }

  /* the fallback: the unit masked, float32 FMAs, same results, DEBUG says so */
  cg_set_config("CG_CPU_FEATURES", "-avx512bf16,-amx");
  CHECK(rt_cpu_features() == 0, "CG_CPU_FEATURES did not mask the units: %s", rt_cpu_features_str(rt_cpu_features()));
  matmul_case(1, 33, 67, 48, 0);
  matmul_case(3, 17, 30, 32, 0);
  {
    float *av, *bv;
    cg_tensor *a = rand_bf16((int64_t[]){16, 20}, 2, &av), *b = rand_bf16((int64_t[]){20, 32}, 2, &bv);
    cg_tensor *c = cg_matmul(cg_cast(a, CG_FLOAT32), cg_cast(b, CG_FLOAT32));
    cg_set_config("DEBUG", "2");
    char *log = capture_stderr(realize_fn, c);
    cg_set_config("DEBUG", "0");
    CHECK(log && strstr(log, "on float32 FMAs (this CPU has no bf16 unit under CG_CPU_FEATURES)"), "DEBUG=2 with the unit masked: %s", log ? log : "(no log)");
    free(log), free(av), free(bv);
  }
  cg_set_config("CG_CPU_FEATURES", getenv("CG_CPU_FEATURES") ? getenv("CG_CPU_FEATURES") : "");

  /* AMX (unit 2): the kernel is generated and compiled everywhere; it runs and is checked
   * only on a CPU with AMX (Intel Sapphire Rapids and later) */
  {
    bool amx = (hw & RT_CPU_AMX_BF16) && rt_amx_enable();
    if (!amx) printf("SKIP (with a message): no AMX here (%s); the AMX kernels are compiled, not run\n", hw & RT_CPU_AMX_BF16 ? "Linux refused the tile data" : "no amx_bf16/amx_tile in CPUID");
    int64_t shapes[][3] = {{32, 64, 48}, {16, 40, 32}}; /* K = 40: a partial last k block */
    for (int t = 0; t < 2; t++) {
      int64_t m = shapes[t][0], k = shapes[t][1], n = shapes[t][2];
      float *av, *bv;
      cg_tensor *a = rand_bf16((int64_t[]){m, k}, 2, &av), *b = rand_bf16((int64_t[]){k, n}, 2, &bv);
      cg_tensor *c = cg_matmul(cg_cast(a, CG_FLOAT32), cg_cast(b, CG_FLOAT32));
      opt plan[MAX_OPTS] = {{OPT_TC, 100, TC_AMX}, {OPT_UPCAST, 1, 16}, {OPT_UPCAST, 0, 16}, {OPT_THREAD, m > 16 ? 0 : 1, 0}};
      int np = m > 16 || n > 16 ? 4 : 3;
      { /* the heuristic's AMX plan is this one */
        uop_pool_push();
        schedule s;
        if (sched_build(&c->u, 1, &s)) {
          uop *low = lower_kernel(s.k[s.n - 1].ast);
          opt h[MAX_OPTS];
          int nh = low ? tc_amx_opts(low, h) : 0;
          char d1[128], d2[128];
          opts_str(h, nh, d1, sizeof d1), opts_str(plan, np, d2, sizeof d2);
          CHECK(opts_eq(h, nh, plan, np), "AMX plan for %lldx%lldx%lld: %s, expected %s", (long long)m, (long long)k, (long long)n, d1, d2);
          ckernel ck = {.ast = s.k[s.n - 1].ast, .ren = &renderer_c, .opts_given = true, .nopts = np};
          memcpy(ck.opts, plan, sizeof plan);
          snprintf(ck.name, sizeof ck.name, "tc_amx_probe");
          bool gen = codegen_run(&ck);
          CHECK(gen && strstr(ck.src, "tc_amx_tile(") && strstr(ck.src, "_tile_dpbf16ps"), "AMX kernel source: %s", gen ? "no AMX helper call" : cg_last_error());
          rt_program *prog = gen ? rt_cpu_device.compile(ck.name, ck.src) : NULL;
          CHECK(prog != NULL, "the AMX kernel does not compile: %s", cg_last_error());
          if (prog) rt_cpu_device.program_free(prog);
          ckernel_free(&ck);
          sched_free(&s);
        }
        uop_pool_pop();
      }
      /* run: on AMX; elsewhere (AVX-512 needed for the B layout) with the tile operations
       * emulated in C (CG_TC_AMX_EMULATE), which checks the kernel around them */
      if (amx || unit) {
        if (!amx) cg_set_config("CG_CFLAGS_ADD", "-DCG_TC_AMX_EMULATE");
        float *cv = malloc(sizeof(float) * (size_t)(m * n));
        cg_status st = run_last(c, plan, np, cv, m * n);
        CHECK(st == CG_OK, "AMX matmul: %s", cg_last_error());
        if (st == CG_OK) check_mm(amx ? "AMX matmul" : "AMX matmul (tiles emulated)", cv, av, bv, 1, m, k, n);
        free(cv);
        cg_set_config("CG_CFLAGS_ADD", getenv("CG_CFLAGS_ADD") ? getenv("CG_CFLAGS_ADD") : "");
      }
      free(av), free(bv);
    }
    /* and where it does not fit (rows not a multiple of 16), a message */
    float *av, *bv, out[8 * 16];
    cg_tensor *a = rand_bf16((int64_t[]){8, 32}, 2, &av), *b = rand_bf16((int64_t[]){32, 16}, 2, &bv);
    cg_status st = run_last(cg_matmul(cg_cast(a, CG_FLOAT32), cg_cast(b, CG_FLOAT32)), (opt[]){{OPT_TC, 100, TC_AMX}}, 1, out, 128);
    CHECK(st != CG_OK && strstr(cg_last_error(), "multiple of 16"), "AMX on 8 rows: %s", cg_last_error());
    cg_clear_error();
    free(av), free(bv);
  }
  {
    float *av, *bv, out[16 * 16];
    cg_tensor *a = rand_bf16((int64_t[]){16, 32}, 2, &av), *b = rand_bf16((int64_t[]){32, 16}, 2, &bv);
    cg_status st = run_last(cg_matmul(cg_cast(a, CG_FLOAT32), cg_cast(b, CG_FLOAT32)), (opt[]){{OPT_TC, 100, 7}}, 1, out, 256);
    CHECK(st != CG_OK && strstr(cg_last_error(), "unit 7"), "TC with unit 7: %s", cg_last_error());
    cg_clear_error();
    free(av), free(bv);
  }
  cg_scope_end();
  return test_summary();
}
