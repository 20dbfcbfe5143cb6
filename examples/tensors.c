/* A first cgrad program: lazy tensor code is fused into a few kernels, compiled by the
 * system C compiler, run on every core, and checked here against plain C.
 * Run with DEBUG=2 to see the kernels. */
#include <cgrad.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
  enum { N = 256, M = 128 };
  static float x[N * M], w[M * 10];
  for (int i = 0; i < N * M; i++) x[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
  for (int i = 0; i < M * 10; i++) w[i] = (float)((i * 13) % 17) / 8.0f - 1.0f;

  cg_scope_begin();
  cg_tensor *tx = cg_from_data(x, CG_FLOAT32, (int64_t[]){N, M}, 2);
  cg_tensor *tw = cg_from_data(w, CG_FLOAT32, (int64_t[]){M, 10}, 2);
  /* a tiny classifier head: relu(x) @ w, softmax over classes, mean confidence */
  cg_tensor *logits = cg_matmul(cg_relu(tx), tw);
  cg_tensor *probs = cg_softmax(logits, -1);
  cg_tensor *conf = cg_mean(cg_max(probs, (int[]){1}, 1, false), NULL, 0, false);
  double got = cg_item(conf);
  if (isnan(got)) {
    fprintf(stderr, "cgrad: %s\n", cg_last_error());
    return 1;
  }

  double want = 0; /* the same in plain C */
  for (int i = 0; i < N; i++) {
    double l[10], m = -INFINITY, s = 0;
    for (int c = 0; c < 10; c++) {
      l[c] = 0;
      for (int k = 0; k < M; k++) l[c] += (x[i * M + k] > 0 ? x[i * M + k] : 0) * w[k * 10 + c];
      m = fmax(m, l[c]);
    }
    for (int c = 0; c < 10; c++) s += exp(l[c] - m);
    want += 1.0 / s / N;
  }
  cg_stats st = cg_get_stats();
  printf("mean max-probability: cgrad %.6f, plain C %.6f (%s)\n", got, want, fabs(got - want) < 1e-4 ? "match" : "MISMATCH");
  printf("kernels run: %llu, compiled now: %llu, loaded from cache: %llu\n", (unsigned long long)st.kernels_run,
         (unsigned long long)st.kernels_compiled, (unsigned long long)st.kernels_cached);
  cg_scope_end();
  return fabs(got - want) < 1e-4 ? 0 : 1;
}
