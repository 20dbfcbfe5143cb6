/* Read bandwidth over a working set read again and again, as a decode step reads the
 * model's weights once per token: the bound on sampling tokens/s is this bandwidth divided
 * by the weight bytes (bench/bench_sample.sh). Plain C (GCC vectors, 4 accumulators per
 * thread), 1 and 2 threads, best of 30 passes.
 *   usage: bench_read_bw [MB] (default 43: the 10.7M-parameter GPT's float32 weights) */
#include "bench_util.h"
#include <pthread.h>
#include <string.h>

typedef float f32x16 __attribute__((vector_size(64)));

typedef struct {
  const f32x16 *p;
  size_t n;
  float sum;
  pthread_barrier_t *go;
} part;

static void *reader(void *arg) {
  part *w = arg;
  pthread_barrier_wait(w->go);
  f32x16 a = {0}, b = {0}, c = {0}, d = {0};
  size_t i = 0;
  for (; i + 4 <= w->n; i += 4) a += w->p[i], b += w->p[i + 1], c += w->p[i + 2], d += w->p[i + 3];
  for (; i < w->n; i++) a += w->p[i];
  f32x16 s = a + b + c + d;
  float t = 0;
  for (int k = 0; k < 16; k++) t += s[k];
  w->sum = t;
  return NULL;
}

/* one pass over the buffer by nt threads (the first is the caller) */
static double pass(const f32x16 *buf, size_t nvec, int nt, float *sum) {
  pthread_t th[2];
  part w[2];
  pthread_barrier_t go;
  pthread_barrier_init(&go, NULL, (unsigned)nt);
  size_t per = nvec / (size_t)nt;
  for (int t = 0; t < nt; t++) w[t] = (part){buf + per * (size_t)t, t == nt - 1 ? nvec - per * (size_t)t : per, 0, &go};
  for (int t = 1; t < nt; t++) pthread_create(&th[t], NULL, reader, &w[t]);
  double t0 = now();
  reader(&w[0]);
  for (int t = 1; t < nt; t++) pthread_join(th[t], NULL);
  double el = now() - t0;
  pthread_barrier_destroy(&go);
  *sum = 0;
  for (int t = 0; t < nt; t++) *sum += w[t].sum;
  return el;
}

int main(int argc, char **argv) {
  double mb = argc > 1 ? atof(argv[1]) : 43;
  if (!(mb > 0 && mb < 1e5)) {
    fprintf(stderr, "usage: bench_read_bw [MB]\n");
    return 2;
  }
  size_t nvec = (size_t)(mb * 1e6 / 64);
  f32x16 *buf = aligned_alloc(64, nvec * 64);
  if (!buf) return 1;
  for (size_t i = 0; i < nvec; i++)
    for (int k = 0; k < 16; k++) buf[i][k] = (float)((i * 16 + (size_t)k) % 7) * 0.25f;
  for (int nt = 1; nt <= 2; nt++) {
    double best = 1e30;
    float s = 0;
    for (int r = 0; r < 30; r++) {
      double t = pass(buf, nvec, nt, &s);
      if (t < best) best = t;
    }
    printf("read bandwidth, %.1f MB re-read, %d thread%s: %.1f GB/s (checksum %g)\n", (double)nvec * 64 / 1e6, nt, nt > 1 ? "s" : "",
           (double)nvec * 64 / best / 1e9, (double)s);
  }
  free(buf);
  return 0;
}
