/* cg_onnx_run replays its runs through a JIT where the graph allows (model.c): models from
 * ONNX's node tests (Debian's libonnx-testdata; skipped where absent), fresh random inputs
 * every run (CG_TEST_SEED replays a seed).
 *   - Gemm (transB, alpha/beta defaults): 8 runs with new values each, every output equal
 *     to a float64 reference in plain C (rtol 1e-5, atol 1e-6: 6 products) and still equal
 *     after the later runs (a replay's buffers are not the caller's outputs); from the
 *     fourth run on the graph is not scheduled (its kernels are replayed: the first run is
 *     built, the second and third are the JIT's eager and recorded calls).
 *   - Reshape whose shape is an input value, NonZero whose output shape is the count of
 *     its input's nonzeros: the runs read input values on the host, so every run is built
 *     from the graph: a new shape value, or a new count, gives a new output shape.
 *   - Identity and Flatten, whose output is the input or a view of it (no kernel): every
 *     run's output is that run's input.
 *   - The same Gemm runs with JIT=0 (no replay, same results). */
#include <cgrad.h>
#include "check.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NODE "/usr/share/libonnx-testdata/data/node/"

static float frand(void) { return (float)(2.0 * rand() / RAND_MAX - 1.0); }

static void gemm_runs(const char *mode) {
  cg_onnx_model *m = cg_onnx_load(NODE "test_gemm_transposeB/model.onnx");
  CHECK(m != NULL, "%s", cg_last_error());
  if (!m) return;
  enum { M = 3, K = 6, N = 4, RUNS = 8 };
  float a[RUNS][M * K], b[RUNS][N * K], c[RUNS][N], y[M * N];
  cg_tensor *outs[RUNS] = {0};
  uint64_t first = 0;
  cg_scope_begin();
  for (int r = 0; r < RUNS; r++) {
    for (int i = 0; i < M * K; i++) a[r][i] = frand();
    for (int i = 0; i < N * K; i++) b[r][i] = frand();
    for (int i = 0; i < N; i++) c[r][i] = frand();
    cg_tensor *in[3] = {cg_from_data(a[r], CG_FLOAT32, (int64_t[]){M, K}, 2), cg_from_data(b[r], CG_FLOAT32, (int64_t[]){N, K}, 2),
                        cg_from_data(c[r], CG_FLOAT32, (int64_t[]){1, N}, 2)};
    CHECK(cg_realize_many(in, 3) == CG_OK, "%s", cg_last_error());
    uint64_t sched = cg_get_stats().schedules;
    CHECK(cg_onnx_run(m, in, 3, &outs[r], 1) == CG_OK, "%s run %d: %s", mode, r, cg_last_error());
    if (!outs[r] || cg_realize(outs[r]) != CG_OK) break;
    /* the graph's own schedule is the one a replay skips (copying the output out schedules
     * nothing that launches a kernel, but counts); the first run's output is lazy, realized
     * here like the others' */
    uint64_t ns = cg_get_stats().schedules - sched;
    if (r == 1) first = ns; /* the JIT's eager call: what a replay does, plus the graph */
    if (r >= 3 && !strcmp(mode, "jit")) CHECK(ns < first, "%s run %d scheduled %llu times, as many as the second run (not replayed)", mode, r, (unsigned long long)ns);
  }
  /* every output, after all the runs */
  for (int r = 0; r < RUNS && outs[r]; r++) {
    CHECK(cg_read(outs[r], CG_FLOAT32, y, sizeof y) == CG_OK, "%s", cg_last_error());
    double worst = 0;
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) {
        double ref = c[r][j];
        for (int k = 0; k < K; k++) ref += (double)a[r][i * K + k] * b[r][j * K + k];
        double e = fabs(y[i * N + j] - ref) - (1e-6 + 1e-5 * fabs(ref));
        if (e > worst) worst = e;
      }
    CHECK(worst <= 0, "%s run %d: off the reference by %g beyond the tolerance", mode, r, worst);
  }
  cg_scope_end();
  cg_onnx_free(m);
}

static void reshape_runs(void) {
  cg_onnx_model *m = cg_onnx_load(NODE "test_reshape_reordered_all_dims/model.onnx");
  CHECK(m != NULL, "%s", cg_last_error());
  if (!m) return;
  static const int64_t shapes[5][3] = {{4, 2, 3}, {4, 2, 3}, {4, 2, 3}, {3, 8, 1}, {2, 12, 1}};
  float d[24], y[24];
  for (int r = 0; r < 5; r++) {
    cg_scope_begin();
    for (int i = 0; i < 24; i++) d[i] = frand();
    cg_tensor *in[2] = {cg_from_data(d, CG_FLOAT32, (int64_t[]){2, 3, 4}, 3), cg_from_data(shapes[r], CG_INT64, (int64_t[]){3}, 1)}, *out = NULL;
    CHECK(cg_onnx_run(m, in, 2, &out, 1) == CG_OK, "reshape run %d: %s", r, cg_last_error());
    if (out) {
      CHECK(cg_ndim(out) == 3 && !memcmp(cg_shape(out), shapes[r], sizeof shapes[r]), "reshape run %d: the output does not have the shape given", r);
      CHECK(cg_read(out, CG_FLOAT32, y, sizeof y) == CG_OK && !memcmp(y, d, sizeof d), "reshape run %d: the values changed", r);
    }
    cg_scope_end();
  }
  cg_onnx_free(m);
}

static void nonzero_runs(void) {
  cg_onnx_model *m = cg_onnx_load(NODE "test_nonzero_example/model.onnx");
  CHECK(m != NULL, "%s", cg_last_error());
  if (!m) return;
  for (int r = 0; r < 6; r++) {
    cg_scope_begin();
    uint8_t v[4];
    int cnt = 0;
    for (int i = 0; i < 4; i++) cnt += v[i] = (uint8_t)(rand() % 2);
    cg_tensor *in = cg_from_data(v, CG_BOOL, (int64_t[]){2, 2}, 2), *out = NULL;
    CHECK(cg_onnx_run(m, &in, 1, &out, 1) == CG_OK, "nonzero run %d: %s", r, cg_last_error());
    if (out) {
      CHECK(cg_ndim(out) == 2 && cg_shape(out)[0] == 2 && cg_shape(out)[1] == cnt, "nonzero run %d: %d nonzeros, output shape (%lld, %lld)", r, cnt,
            (long long)cg_shape(out)[0], (long long)(cg_ndim(out) > 1 ? cg_shape(out)[1] : -1));
      int64_t idx[8] = {0};
      if (cnt && cg_read(out, CG_INT64, idx, sizeof(int64_t) * 2 * (size_t)cnt) == CG_OK)
        for (int k = 0; k < cnt; k++) CHECK(v[idx[k] * 2 + idx[cnt + k]], "nonzero run %d: index %d points at a zero", r, k);
    }
    cg_scope_end();
  }
  cg_onnx_free(m);
}


/* Outputs that are the input itself (Identity) or a view of it (Flatten: a reshape, no
 * kernel): every run's output holds that run's input. */
static void view_runs(const char *model, int nd, const int64_t *shape) {
  cg_onnx_model *m = cg_onnx_load(model);
  CHECK(m != NULL, "%s", cg_last_error());
  if (!m) return;
  int64_t n = 1;
  for (int d = 0; d < nd; d++) n *= shape[d];
  float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n);
  for (int r = 0; r < 5; r++) {
    cg_scope_begin();
    for (int64_t i = 0; i < n; i++) x[i] = frand();
    cg_tensor *in = cg_from_data(x, CG_FLOAT32, shape, nd), *out = NULL;
    CHECK(cg_onnx_run(m, &in, 1, &out, 1) == CG_OK, "%s run %d: %s", model, r, cg_last_error());
    if (out) CHECK(cg_numel(out) == n && cg_read(out, CG_FLOAT32, y, sizeof(float) * (size_t)n) == CG_OK && !memcmp(x, y, sizeof(float) * (size_t)n),
                   "%s run %d: the output is not this run's input", model, r);
    cg_scope_end();
  }
  free(x), free(y);
  cg_onnx_free(m);
}

int main(void) {
#ifndef CG_HAVE_ONNX
  printf("SKIP: built without ONNX support\n");
  return 0;
#else
  if (access(NODE "test_gemm_transposeB/model.onnx", R_OK)) {
    printf("SKIP: no ONNX node test data (apt-get install libonnx-testdata)\n");
    return 0;
  }
  unsigned seed = (unsigned)test_env_long("CG_TEST_SEED", (long)time(NULL) % 100000);
  printf("seed %u (CG_TEST_SEED replays it)\n", seed);
  srand(seed);
  cg_set_config("JIT", "1"); /* whatever the environment says */
  gemm_runs("jit");
  reshape_runs();
  nonzero_runs();
  view_runs(NODE "test_identity/model.onnx", 4, (const int64_t[]){1, 1, 2, 2});
  view_runs(NODE "test_flatten_axis1/model.onnx", 4, (const int64_t[]){2, 3, 4, 5});
  cg_set_config("JIT", "0");
  gemm_runs("JIT=0");
  return test_summary();
#endif
}
