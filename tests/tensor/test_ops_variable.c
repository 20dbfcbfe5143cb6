/* Kernel variables (cg_variable, DEFINE_VAR): a var's value changed 50 times gives the
 * float64 reference's results each time with no compile after the first; int vars (a step
 * counter, bounded ones); float64 vars; vars in reductions, in vector lanes and in
 * gradients; graphs that differ only in which var or its value schedule to the same kernel
 * AST (pointer) and render to source with no literal of the value; bad input. Runs on the
 * CPU backend and, as test_ops_variable_interp, on the interpreter. */
#include "check.h"
#include "tensor/tensor.h"
#include "schedule/schedule.h"
#include "codegen/codegen.h"
#include "renderer/render.h"

#include <math.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Fresh random inputs (CG_TEST_SEED repeats a run): splitmix64. (Not tests/tensor/ref.h,
 * which cannot be included with the internal headers this white-box test needs.) */
static uint64_t seed, rng;
static uint64_t rng_u64(void) {
  uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static double rng_unif(double lo, double hi) { return lo + (hi - lo) * ((double)(rng_u64() >> 11) * 0x1p-53); }
static int64_t rng_int(int64_t lo, int64_t hi) { return lo + (int64_t)(rng_u64() % (uint64_t)(hi - lo + 1)); }
static void ref_init(void) {
  const char *s = getenv("CG_TEST_SEED");
  rng = seed = s && *s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL) * 1000003u;
  printf("seed = %llu (set CG_TEST_SEED to repeat)\n", (unsigned long long)seed);
}
/* float32 tolerances (tests/tensor/ref.h's): elementwise |d| <= 1e-6 + 1e-5 |want|; a sum
 * of n |d| <= sqrt(n) (1e-6 + 4 eps32 sum|x|); float64 1e-15 relative; ints exact. */
typedef struct { double rtol, atol; } tol_t;

static uint64_t compiles(void) {
  cg_stats s = cg_get_stats();
  return s.kernels_compiled + s.kernels_cached;
}

static bool close_to(double got, double want, double rtol, double atol) { return fabs(got - want) <= atol + rtol * fabs(want); }

/* The scheduled kernels of t's graph (white box: the AST the program cache keys on). */
static uop *kernel_ast(cg_tensor *t, int *nvars) {
  schedule s;
  uop *ast = NULL;
  if (sched_build(&t->u, 1, &s)) {
    ast = s.n == 1 ? s.k[0].ast : NULL;
    *nvars = s.n == 1 ? s.k[0].nvars : -1;
    sched_free(&s);
  }
  return ast;
}

/* The C source of t's (single) kernel. malloc'd. */
static char *kernel_source(cg_tensor *t) {
  int nv;
  uop *ast = kernel_ast(t, &nv);
  if (!ast) return NULL;
  ckernel k = {.ast = ast, .ren = renderer_find("c")};
  snprintf(k.name, sizeof k.name, "probe");
  char *src = codegen_run(&k) && k.src ? strdup(k.src) : NULL;
  ckernel_free(&k);
  return src;
}

int main(void) {
  ref_init();
  cg_scope_begin();
  enum { N = 257 }; /* odd: vector lanes and a tail */
  float x[N];
  int32_t xi[N];
  for (int i = 0; i < N; i++) x[i] = (float)rng_unif(-4, 4), xi[i] = (int32_t)rng_int(-1000, 1000);
  cg_tensor *tx = cg_from_data(x, CG_FLOAT32, (int64_t[]){N}, 1), *ti = cg_from_data(xi, CG_INT32, (int64_t[]){N}, 1);
  tol_t tb = {1e-5, 1e-6}, tr = {4 * 1.1920928955078125e-7, 1e-6};

  { /* float32 var: 50 values, right each time, compiled once */
    cg_tensor *lr = cg_variable("lr", 0.5, CG_FLOAT32);
    CHECK(lr && cg_is_variable(lr) && cg_ndim(lr) == 0 && cg_dtype_of(lr) == CG_FLOAT32, "%s", cg_last_error());
    uint64_t c0 = 0;
    int bad = 0, badsum = 0;
    for (int s = 0; s < 50; s++) {
      cg_scope_begin();
      double v = rng_unif(-3, 3);
      CHECK(cg_variable_set(lr, v) == CG_OK, "%s", cg_last_error());
      float vf = (float)v;
      CHECK(cg_variable_get(lr) == (double)vf, "get gives the value rounded to float32: %.17g vs %.17g", cg_variable_get(lr), (double)vf);
      /* elementwise (vectorized) and a reduction, both reading the var (twice) */
      cg_tensor *y = cg_add(cg_mul(tx, lr), cg_mul(lr, lr)), *sum = cg_sum(cg_mul(tx, lr), NULL, 0, false);
      float got[N], gs = 0;
      CHECK(cg_read(y, CG_FLOAT32, got, sizeof got) == CG_OK && cg_read(sum, CG_FLOAT32, &gs, sizeof gs) == CG_OK, "%s", cg_last_error());
      double ws = 0, scale = 0;
      for (int i = 0; i < N; i++) {
        double want = (double)x[i] * vf + (double)vf * vf;
        bad += !close_to(got[i], want, tb.rtol, tb.atol);
        ws += (double)x[i] * vf, scale += fabs((double)x[i] * vf);
      }
      badsum += !(fabs(gs - ws) <= sqrt(N) * (tr.atol + tr.rtol * scale));
      if (s == 0) c0 = compiles();
      cg_scope_end();
    }
    CHECK(bad == 0 && badsum == 0, "float32 var: %d elements and %d sums off the float64 reference", bad, badsum);
    CHECK(compiles() == c0, "50 values of a var compiled %llu kernels after the first", (unsigned long long)(compiles() - c0));
  }
  { /* int32 step counter and float64 var: exact / float64 tolerance; a new var each time
     * (same name) is the same kernel too */
    uint64_t c0 = 0;
    int bad = 0;
    double y64[8];
    for (int s = 0; s < 50; s++) {
      cg_scope_begin();
      int64_t step = s * 37 - 900;
      double d = rng_unif(-1, 1);
      cg_tensor *t = cg_variable("step", (double)step, CG_INT32), *dv = cg_variable("decay", d, CG_FLOAT64);
      cg_tensor *y = cg_add(cg_mul(ti, t), t);
      int32_t got[N];
      CHECK(cg_read(y, CG_INT32, got, sizeof got) == CG_OK, "%s", cg_last_error());
      for (int i = 0; i < N; i++) bad += got[i] != (int32_t)((int64_t)xi[i] * step + step);
      /* float64: 1 - d^2 over a small vector */
      double xs[8];
      for (int i = 0; i < 8; i++) xs[i] = rng_unif(-2, 2);
      cg_tensor *z = cg_sub(cg_from_data(xs, CG_FLOAT64, (int64_t[]){8}, 1), cg_mul(dv, dv));
      CHECK(cg_read(z, CG_FLOAT64, y64, sizeof y64) == CG_OK, "%s", cg_last_error());
      for (int i = 0; i < 8; i++) bad += !close_to(y64[i], xs[i] - d * d, 1e-15, 1e-15);
      if (s == 0) c0 = compiles();
      cg_scope_end();
    }
    CHECK(bad == 0, "int32 and float64 vars: %d values off the reference", bad);
    CHECK(compiles() == c0, "new vars of other values compiled %llu kernels", (unsigned long long)(compiles() - c0));
  }
  { /* a bounded int var, and int64 */
    cg_tensor *k = cg_variable_int("k", 3, 0, 100), *big = cg_variable("big", 5e12, CG_INT64);
    CHECK(k && big, "%s", cg_last_error());
    int64_t got = 0;
    CHECK(cg_read(cg_add(cg_cast(k, CG_INT64), big), CG_INT64, &got, sizeof got) == CG_OK && got == 5000000000003ll, "int64: %lld", (long long)got);
    CHECK(cg_variable_set(k, 100) == CG_OK && cg_variable_set(k, 101) == CG_ERR_INVALID && strstr(cg_last_error(), "[0, 100]") &&
              strstr(cg_last_error(), "101"),
          "out of bounds: %s", cg_last_error());
    CHECK(cg_variable_get(k) == 100, "a refused set leaves the value");
    CHECK(cg_variable_int("k", 7, 0, 5) == NULL && strstr(cg_last_error(), "got 7"), "%s", cg_last_error());
  }
  { /* gradients: d/dx sum(x * lr) = lr, and the graph reads the value at realize */
    cg_scope_begin();
    cg_tensor *lr = cg_variable("lr", 1.5, CG_FLOAT32), *p = cg_contiguous(tx);
    cg_realize(p);
    cg_set_requires_grad(p, true);
    cg_tensor *loss = cg_sum(cg_mul(p, lr), NULL, 0, false);
    CHECK(cg_backward(loss) == CG_OK, "%s", cg_last_error());
    float g[N];
    int bad = 0;
    CHECK(cg_read(cg_grad(p), CG_FLOAT32, g, sizeof g) == CG_OK, "%s", cg_last_error());
    for (int i = 0; i < N; i++) bad += g[i] != 1.5f;
    cg_variable_set(lr, -0.25);
    float later = 0;
    cg_tensor *lazy = cg_mul(cg_sum(p, NULL, 0, false), lr); /* built before or after: read at realize */
    cg_variable_set(lr, 2);
    CHECK(cg_read(lazy, CG_FLOAT32, &later, sizeof later) == CG_OK, "%s", cg_last_error());
    double ws = 0;
    for (int i = 0; i < N; i++) ws += x[i];
    CHECK(bad == 0 && close_to(later, 2 * ws, 1e-5, 1e-4), "gradient %d off; lazy value %g want %g", bad, later, 2 * ws);
    cg_scope_end();
  }
  { /* white box: same AST for two vars / values; no literal in the source */
    cg_scope_begin();
    uop_pool_push();
    cg_tensor *a = cg_variable("lr", 0.8125, CG_FLOAT32), *b = cg_variable("lr", -7.375, CG_FLOAT32);
    int na = 0, nb = 0;
    uop *ka = kernel_ast(cg_add(cg_mul(tx, a), a), &na), *kb = kernel_ast(cg_add(cg_mul(tx, b), b), &nb);
    CHECK(ka && ka == kb && na == 1 && nb == 1, "graphs differing only in their var are one kernel AST (%p %p, %d %d vars)", (void *)ka, (void *)kb, na, nb);
    char *src = kernel_source(cg_add(cg_mul(tx, a), a)), *csrc = kernel_source(cg_add(cg_mul(tx, cg_full(0.8125, CG_FLOAT32, NULL, 0)), cg_scalar(0.8125)));
    CHECK(src && !strstr(src, "0.8125") && strstr(src, "vars[0]") && strstr(src, "/* lr */"), "the var's source has no literal of its value:\n%s", src ? src : "(none)");
    CHECK(csrc && strstr(csrc, "0.8125"), "the constant's does (so the check above can fail)");
    free(src), free(csrc);
    uop_pool_pop();
    cg_scope_end();
  }
  { /* a checkpoint holds a var's value, and loading sets it */
    char path[64];
    snprintf(path, sizeof path, "/tmp/cg_test_var_%d.safetensors", (int)getpid());
    cg_tensor *lr = cg_variable("lr", 0.375, CG_FLOAT32), *n = cg_variable("n", -12, CG_INT32);
    const char *names[2] = {"lr", "n"};
    cg_tensor *ts[2] = {lr, n};
    CHECK(cg_save_safetensors(path, names, ts, 2) == CG_OK, "%s", cg_last_error());
    cg_variable_set(lr, 9), cg_variable_set(n, 4);
    CHECK(cg_load_safetensors(path, names, ts, 2) == CG_OK && cg_variable_get(lr) == 0.375 && cg_variable_get(n) == -12 && cg_is_variable(lr),
          "loaded: %g %g (%s)", cg_variable_get(lr), cg_variable_get(n), cg_last_error());
    unlink(path);
  }
  { /* bad input */
    cg_clear_error();
    CHECK(cg_variable(NULL, 1, CG_FLOAT32) == NULL && strstr(cg_last_error(), "variable: the name is NULL"), "%s", cg_last_error());
    CHECK(cg_variable("", 1, CG_FLOAT32) == NULL && strstr(cg_last_error(), "expected a name"), "%s", cg_last_error());
    CHECK(cg_variable("a b", 1, CG_FLOAT32) == NULL && strstr(cg_last_error(), "\"a b\""), "%s", cg_last_error());
    CHECK(cg_variable("lr", 1, CG_FLOAT16) == NULL && strstr(cg_last_error(), "float32, float64, int32 or int64, got float16"), "%s", cg_last_error());
    CHECK(cg_variable("lr", 1, CG_BOOL) == NULL && strstr(cg_last_error(), "got bool"), "%s", cg_last_error());
    CHECK(cg_variable("lr", 1, (cg_dtype)99) == NULL && strstr(cg_last_error(), "invalid dtype"), "%s", cg_last_error());
    CHECK(cg_variable("n", 2.5, CG_INT32) == NULL && strstr(cg_last_error(), "expected an integer") && strstr(cg_last_error(), "2.5"), "%s", cg_last_error());
    cg_tensor *v = cg_variable("lr", 1, CG_FLOAT32);
    CHECK(cg_variable_set(cg_scalar(2), 1) == CG_ERR_INVALID && strstr(cg_last_error(), "expected a var") && strstr(cg_last_error(), "CONST"), "%s", cg_last_error());
    CHECK(cg_variable_set(tx, 1) == CG_ERR_INVALID && strstr(cg_last_error(), "BUFFER"), "%s", cg_last_error());
    CHECK(cg_variable_set(cg_reshape(v, (int64_t[]){1}, 1), 1) == CG_ERR_INVALID, "a view of a var is not a var: %s", cg_last_error());
    cg_clear_error();
    CHECK(cg_variable_set(NULL, 1) == CG_ERR_INVALID && strstr(cg_last_error(), "variable_set: the tensor is NULL"), "NULL: %s", cg_last_error());
    CHECK(isnan(cg_variable_get(tx)) && strstr(cg_last_error(), "variable_get"), "%s", cg_last_error());
    CHECK(!cg_is_variable(tx) && !cg_is_variable(NULL) && cg_is_variable(v), "cg_is_variable");
    CHECK(cg_set_requires_grad(v, true) == CG_ERR_INVALID && strstr(cg_last_error(), "no gradient"), "%s", cg_last_error());
    CHECK(cg_assign(v, cg_scalar(3)) == CG_ERR_INVALID && strstr(cg_last_error(), "cg_variable_set") && cg_is_variable(v), "assigning to a var: %s",
          cg_last_error());
    float one = 0;
    CHECK(cg_realize(v) == CG_OK && cg_is_variable(v) && cg_read(v, CG_FLOAT32, &one, sizeof one) == CG_OK && one == 1, "realizing a var keeps it one");
  }
  cg_scope_end();
  return test_summary();
}
