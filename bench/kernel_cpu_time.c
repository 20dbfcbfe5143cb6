/* One generated kernel timed alone: thread CPU time of 1 thread, the best of 12 runs, so a
 * loaded machine (other processes on the cores) changes little. Used by
 * bench/profile_kernels_cpu.sh. usage: kernel_cpu_time file.so function trips n0 n1 ...
 * (trips: the THREAD range's size; n_i: float32 elements of buffer i, filled with values
 * in [-0.3, 0.7); iN: N int32 elements, zeros, for index buffers such as an embedding's). */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
typedef void (*kernel_fn)(void **, const int64_t *, int64_t, int64_t);
static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}
int main(int argc, char **argv) {
  if (argc < 5 || argc - 4 > 32) return fprintf(stderr, "usage: %s file.so function trips n0 [n1 ...]\n", argv[0]), 2;
  void *h = dlopen(argv[1], RTLD_NOW);
  kernel_fn f = h ? (kernel_fn)dlsym(h, argv[2]) : NULL;
  if (!f) return fprintf(stderr, "%s\n", dlerror()), 1;
  int64_t trips = atoll(argv[3]), vars[16] = {0};
  void *bufs[32];
  for (int i = 0; i < argc - 4; i++) {
    int ints = argv[4 + i][0] == 'i';
    int64_t n = atoll(argv[4 + i] + ints);
    float *p = aligned_alloc(64, (size_t)((n * 4 + 63) / 64 * 64 + 64));
    if (!p) return fprintf(stderr, "out of memory\n"), 1;
    for (int64_t j = 0; j < n; j++) p[j] = ints ? 0.0f : (float)((uint32_t)(j * 2654435761u) % 1000) / 1000.0f - 0.3f;
    bufs[i] = p;
  }
  double best = 1e30;
  for (int r = 0; r < 12; r++) {
    double t = now_ms();
    f(bufs, vars, 0, trips);
    t = now_ms() - t;
    if (t < best) best = t;
  }
  printf("%.3f\n", best);
  return 0;
}
