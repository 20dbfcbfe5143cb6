/* MPI collectives: cgrad's against Open MPI's own, on the same buffers (needs -DCG_MPI=ON).
 *
 *   mpirun -np 2 ./bench_dist            (one machine: ranks talk through shared memory)
 *
 * allreduce: cg_dist_allreduce of one float32 tensor (packed into 4 MB buckets, polled
 * against the deadline) vs MPI_Allreduce in place on a plain buffer of the same size;
 * algbw = bytes / time, busbw = algbw * 2(n-1)/n (the bytes each rank moves in a ring,
 * as nccl-tests reports). all-to-all: cg_dist_alltoall along axis 0 (slices are contiguous
 * ranges) and along axis 1 (moved to the front and back: two extra copies) vs MPI_Alltoall
 * on a plain buffer, and the memcpy bound on one machine (each rank copying the same bytes
 * once). Times are medians of repeated runs. */
#include <cgrad.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef CG_HAVE_MPI
#include <mpi.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }
static double median(double *v, int n) { qsort(v, (size_t)n, sizeof *v, cmp); return v[n / 2]; }

enum { MAXIT = 50 };

int main(int argc, char **argv) {
  if (cg_dist_init(&argc, &argv) != CG_OK) return fprintf(stderr, "%s\n", cg_last_error()), 1;
  int rank = cg_dist_rank(), n = cg_dist_size();
  static const size_t sizes[] = {4 << 10, 64 << 10, 1 << 20, 8 << 20, 32 << 20};
  if (!rank) {
    printf("allreduce over %d ranks (float32, sum), median times\n", n);
    printf("%10s %12s %12s %12s %12s %8s\n", "bytes", "cgrad us", "MPI us", "cgrad busbw", "MPI busbw", "ratio");
  }
  for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
    size_t bytes = sizes[s], cnt = bytes / 4;
    float *h = malloc(bytes);
    for (size_t i = 0; i < cnt; i++) h[i] = (float)(i % 7) * 0.25f;
    cg_tensor *t = cg_from_data(h, CG_FLOAT32, (int64_t[]){(int64_t)cnt}, 1);
    int it = bytes >= (8u << 20) ? 10 : MAXIT;
    double tc[MAXIT], tm[MAXIT];
    for (int k = -2; k < it; k++) { /* two warm-up rounds */
      MPI_Barrier(MPI_COMM_WORLD);
      double a = now();
      cg_dist_allreduce(&t, 1, CG_DIST_SUM, 0);
      double b = now();
      MPI_Barrier(MPI_COMM_WORLD);
      double c = now();
      MPI_Allreduce(MPI_IN_PLACE, h, (int)cnt, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      double d = now();
      if (k >= 0) tc[k] = b - a, tm[k] = d - c;
      if (cnt > 1 << 20) { /* keep values finite */
        for (size_t i = 0; i < cnt; i++) h[i] = 0.5f;
        cg_free(t);
        t = cg_from_data(h, CG_FLOAT32, (int64_t[]){(int64_t)cnt}, 1);
      }
    }
    double mc = median(tc, it), mm = median(tm, it), f = 2.0 * (n - 1) / n;
    if (!rank) printf("%10zu %12.1f %12.1f %10.2f GB/s %8.2f GB/s %8.2f\n", bytes, 1e6 * mc, 1e6 * mm, f * (double)bytes / mc / 1e9, f * (double)bytes / mm / 1e9, mm / mc);
    cg_free(t);
    free(h);
  }
  if (!rank) {
    printf("\nall-to-all over %d ranks: bytes per rank, median times; GB/s = bytes per rank / time\n", n);
    printf("%10s %12s %12s %12s %12s %12s\n", "bytes", "cgrad ax0", "cgrad ax1", "MPI", "memcpy", "ax0/memcpy");
  }
  for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
    size_t bytes = sizes[s], cnt = bytes / 4;
    float *h = malloc(bytes), *r = malloc(bytes);
    for (size_t i = 0; i < cnt; i++) h[i] = (float)i;
    int64_t rows = 2 * n, cols = (int64_t)cnt / rows; /* axis 0 and 1 both divisible by n */
    cg_tensor *t = cg_from_data(h, CG_FLOAT32, (int64_t[]){rows, cols}, 2);
    int it = bytes >= (8u << 20) ? 10 : MAXIT;
    double t0[MAXIT], t1[MAXIT], tm[MAXIT], tc[MAXIT];
    for (int k = -2; k < it; k++) {
      double a, b;
      MPI_Barrier(MPI_COMM_WORLD);
      a = now();
      cg_tensor *o = cg_dist_alltoall(t, 0);
      cg_realize(o);
      b = now();
      if (k >= 0) t0[k] = b - a;
      cg_free(o);
      MPI_Barrier(MPI_COMM_WORLD);
      a = now();
      o = cg_dist_alltoall(t, 1);
      cg_realize(o);
      b = now();
      if (k >= 0) t1[k] = b - a;
      cg_free(o);
      MPI_Barrier(MPI_COMM_WORLD);
      a = now();
      MPI_Alltoall(h, (int)(cnt / (size_t)n), MPI_FLOAT, r, (int)(cnt / (size_t)n), MPI_FLOAT, MPI_COMM_WORLD);
      b = now();
      if (k >= 0) tm[k] = b - a;
      MPI_Barrier(MPI_COMM_WORLD);
      a = now();
      memcpy(r, h, bytes);
      b = now();
      if (k >= 0) tc[k] = b - a;
    }
    double m0 = median(t0, it), m1 = median(t1, it), mm = median(tm, it), mc = median(tc, it);
    if (!rank)
      printf("%10zu %7.2f GB/s %7.2f GB/s %7.2f GB/s %7.2f GB/s %12.2f\n", bytes, bytes / m0 / 1e9, bytes / m1 / 1e9, bytes / mm / 1e9, bytes / mc / 1e9, mc / m0);
    cg_free(t);
    free(h), free(r);
  }
  cg_dist_finalize();
  return 0;
}
#else
int main(void) {
  fprintf(stderr, "bench_dist: built without MPI (configure with -DCG_MPI=ON)\n");
  return 1;
}
#endif
