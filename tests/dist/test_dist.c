/* MPI data parallelism (needs -DCG_MPI=ON and Open MPI's mpirun; skipped with a message
 * otherwise). This program is its own MPI worker: the test (no arguments) runs
 *   mpirun -np 2 <self> --worker MODE
 * under `timeout`, and checks what the ranks say:
 *   collectives  allreduce (sum, max, mean; several buckets), broadcast, all-to-all along
 *                two axes and barrier, against float64 references every rank computes from
 *                every rank's seeded inputs (the all-to-all against a gather of the whole);
 *   hang         rank 1 stops (SIGSTOP) before a collective: rank 0 must fail within
 *                CG_DIST_TIMEOUT_S=3 with a message, and the job end;
 *   die          rank 1 is killed (SIGKILL) before a collective: the job must end, not hang.
 * Then `cgrad train --model mlp`: 2 ranks x batch 256 (--distributed) against 1 process x
 * batch 512 over 20 steps: the losses agree within 5e-6 relative over the first 4 steps
 * and 2e-4 over all 20 (fp32 sums in another order: measured ~1e-6, up to 3.9e-5 late).
 * Fresh inputs: the seed is the time, passed to the workers. */
#include "check.h"
#include "run_cli.h"
#include "tmpfiles.h"
#include <cgrad.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t mix(uint64_t x) {
  x ^= x >> 33, x *= 0xff51afd7ed558ccdull, x ^= x >> 33, x *= 0xc4ceb9fe1a85ec53ull, x ^= x >> 33;
  return x;
}
/* element i of rank r's input (deterministic, so every rank knows every rank's) */
static float val(uint64_t seed, int r, int64_t i) { return (float)((double)(mix(seed * 1000003u + (uint64_t)r * 7919u + (uint64_t)i) >> 11) / 9007199254740992.0 * 2 - 1); }

static cg_tensor *input(uint64_t seed, int r, int64_t rows, int64_t cols, float *host) {
  for (int64_t i = 0; i < rows * cols; i++) host[i] = val(seed, r, i);
  return cg_from_data(host, CG_FLOAT32, (int64_t[]){rows, cols}, 2);
}

/* A JIT function with a collective between two realizes: y = 2x realized, allreduced
 * (sum), out = y + 1. Its replays must repeat the allreduce on the replay's buffers. */
static cg_status jit_fn(cg_tensor *const *in, int n_in, cg_tensor **out, int n_out, void *user) {
  (void)n_in, (void)n_out, (void)user;
  cg_tensor *y = cg_contiguous(cg_mul(in[0], cg_scalar(2)));
  cg_status st = y ? cg_realize(y) : cg_last_status();
  if (st == CG_OK) st = cg_dist_allreduce(&y, 1, CG_DIST_SUM, 0);
  out[0] = st == CG_OK ? cg_add(y, cg_scalar(1)) : NULL;
  return out[0] ? CG_OK : cg_last_status();
}

/* cg_dist_realize_allreduce: six tensors, each the output of its own reduction kernel
 * (sums of x along axis 1 scaled by k+1), realized with a seventh tensor that is not
 * reduced, in buckets of 256 bytes (so several start while later kernels still run):
 * against float64 sums over every rank's inputs. Run twice in a JIT as well (replays). */
enum { OR = 40, OC = 24, ON = 6 };
static cg_status overlap_fn(cg_tensor *const *in, int n_in, cg_tensor **out, int n_out, void *user) {
  (void)n_in, (void)user;
  cg_tensor *t[ON], *other = cg_max(in[0], (int[]){0}, 1, false);
  for (int k = 0; k < ON; k++) t[k] = cg_sum(cg_mul(in[0], cg_scalar(k + 1)), (int[]){1}, 1, false);
  cg_status st = cg_dist_realize_allreduce(t, ON, &other, 1, CG_DIST_SUM, 256);
  for (int k = 0; k < n_out; k++) out[k] = k < ON ? t[k] : other;
  return st;
}

static void check_overlap(uint64_t seed, cg_tensor **out, const char *what) {
  int rank = cg_dist_rank(), size = cg_dist_size();
  float got[OR > OC ? OR : OC];
  bool ok = true;
  for (int k = 0; k < ON && ok; k++) {
    ok = cg_read(out[k], CG_FLOAT32, got, sizeof(float) * OR) == CG_OK;
    for (int i = 0; ok && i < OR; i++) {
      double ref = 0;
      for (int r = 0; r < size; r++)
        for (int j = 0; j < OC; j++) ref += (k + 1) * (double)val(seed, r, (int64_t)i * OC + j);
      ok = fabs(got[i] - ref) <= 1e-5 * (1 + fabs(ref));
    }
  }
  CHECK(ok, "%s: the six reduced tensors", what);
  ok = cg_read(out[ON], CG_FLOAT32, got, sizeof(float) * OC) == CG_OK;
  for (int j = 0; ok && j < OC; j++) {
    float ref = -INFINITY;
    for (int i = 0; i < OR; i++) ref = fmaxf(ref, val(seed, rank, (int64_t)i * OC + j));
    ok = got[j] == ref;
  }
  CHECK(ok, "%s: the tensor realized with them, not reduced", what);
}

static void worker_overlap(uint64_t seed) {
  static float h[OR * OC];
  int64_t b0, e0, b1, e1;
  cg_dist_stats(&b0, &e0, NULL);
  cg_scope_begin();
  cg_tensor *x = input(seed + 200, cg_dist_rank(), OR, OC, h), *out[ON + 1];
  CHECK(overlap_fn(&x, 1, out, ON + 1, NULL) == CG_OK, "realize_allreduce: %s", cg_last_error());
  check_overlap(seed + 200, out, "realize_allreduce");
  cg_dist_stats(&b1, &e1, NULL);
  /* 160-byte tensors in 256-byte buckets: 3 buckets, 2 of them formed while kernels ran */
  CHECK(b1 - b0 == 3 && e1 - e0 >= 2, "buckets %lld, started during the realize %lld", (long long)(b1 - b0), (long long)(e1 - e0));
  cg_scope_end();
  cg_jit *j = cg_jit_new(overlap_fn, ON + 1, NULL);
  for (int call = 0; call < 4; call++) {
    cg_scope_begin();
    cg_tensor *xi = input(seed + 300 + (uint64_t)call, cg_dist_rank(), OR, OC, h);
    char what[64];
    snprintf(what, sizeof what, "JIT call %d", call + 1);
    CHECK(cg_jit_call(j, &xi, 1, out) == CG_OK, "%s: %s", what, cg_last_error());
    check_overlap(seed + 300 + (uint64_t)call, out, what);
    cg_scope_end();
  }
  CHECK(cg_jit_stats(j).replays == 2, "replayed (%lld)", (long long)cg_jit_stats(j).replays);
  cg_jit_free(j);
}

static void worker_jit(uint64_t seed) {
  int rank = cg_dist_rank(), size = cg_dist_size();
  enum { R = 16, C = 9 };
  static float h[R * C], got[R * C];
  cg_jit *j = cg_jit_new(jit_fn, 1, NULL);
  bool ok = j != NULL;
  for (int call = 0; call < 5 && ok; call++) { /* eager, capture, then replays */
    cg_scope_begin();
    cg_tensor *x = input(seed + 100 + (uint64_t)call, rank, R, C, h), *o = NULL;
    ok = cg_jit_call(j, &x, 1, &o) == CG_OK && cg_read(o, CG_FLOAT32, got, sizeof got) == CG_OK;
    for (int64_t i = 0; ok && i < R * C; i++) {
      double ref = 1;
      for (int r = 0; r < size; r++) ref += 2.0 * val(seed + 100 + (uint64_t)call, r, i);
      ok = fabs(got[i] - ref) <= 1e-5 * (1 + fabs(ref));
    }
    CHECK(ok, "JIT call %d with an allreduce inside: %s", call + 1, cg_last_error());
    cg_scope_end();
  }
  cg_jit_info info = cg_jit_stats(j);
  CHECK(info.replays == 3 && info.captures == 1, "the JIT replayed the step with its collective (%lld captures, %lld replays)",
        (long long)info.captures, (long long)info.replays);
  cg_jit_free(j);
}

static int worker_collectives(uint64_t seed) {
  int rank = cg_dist_rank(), size = cg_dist_size();
  enum { R = 64, C = 33 }; /* odd sizes: buckets split tensors mid-way */
  static float h[3][R * C], got[R * C];
  cg_tensor *t[3];
  for (int k = 0; k < 3; k++) t[k] = input(seed + (uint64_t)k, rank, R, C, h[k]);
  /* tensors of 8 kB: over 1000-byte buckets, each reduced in place; over 20 kB ones, two
   * packed together and one alone */
  CHECK(cg_dist_allreduce(t, 3, CG_DIST_SUM, 1000) == CG_OK, "allreduce sum: %s", cg_last_error());
  for (int k = 0; k < 3; k++) {
    CHECK(cg_read(t[k], CG_FLOAT32, got, sizeof got) == CG_OK, "read");
    for (int64_t i = 0; i < R * C; i++) got[i] = 0.5f * got[i];
    cg_free(t[k]);
    t[k] = cg_from_data(got, CG_FLOAT32, (int64_t[]){R, C}, 2); /* sum/2 */
  }
  CHECK(cg_dist_allreduce(t, 3, CG_DIST_SUM, 20000) == CG_OK, "allreduce sum, packed: %s", cg_last_error());
  /* now sum over ranks of (sum/2) = size/2 * sum */
  for (int k = 0; k < 3; k++) {
    CHECK(cg_read(t[k], CG_FLOAT32, got, sizeof got) == CG_OK, "read");
    double worst = 0;
    for (int64_t i = 0; i < R * C; i++) {
      double ref = 0;
      for (int r = 0; r < size; r++) ref += val(seed + (uint64_t)k, r, i);
      ref *= 0.5 * size;
      double e = fabs(got[i] - ref) / (1 + fabs(ref));
      if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
    }
    CHECK(worst <= 1e-6 * size, "allreduce sum of tensor %d: error %g", k, worst);
  }
  cg_tensor *m = input(seed + 9, rank, R, C, h[0]), *mean = input(seed + 10, rank, R, C, h[1]);
  CHECK(cg_dist_allreduce(&m, 1, CG_DIST_MAX, 0) == CG_OK && cg_dist_allreduce(&mean, 1, CG_DIST_MEAN, 0) == CG_OK, "max, mean");
  bool ok = cg_read(m, CG_FLOAT32, got, sizeof got) == CG_OK;
  for (int64_t i = 0; ok && i < R * C; i++) {
    float ref = -INFINITY;
    for (int r = 0; r < size; r++) ref = fmaxf(ref, val(seed + 9, r, i));
    ok = got[i] == ref;
  }
  CHECK(ok, "allreduce max");
  ok = cg_read(mean, CG_FLOAT32, got, sizeof got) == CG_OK;
  for (int64_t i = 0; ok && i < R * C; i++) {
    double ref = 0;
    for (int r = 0; r < size; r++) ref += val(seed + 10, r, i);
    ok = fabs(got[i] - ref / size) <= 1e-6 * (1 + fabs(ref));
  }
  CHECK(ok, "allreduce mean");
  /* broadcast from the last rank */
  cg_tensor *b = input(seed + 20, rank, R, C, h[0]);
  CHECK(cg_dist_broadcast(&b, 1, size - 1) == CG_OK, "broadcast: %s", cg_last_error());
  ok = cg_read(b, CG_FLOAT32, got, sizeof got) == CG_OK;
  for (int64_t i = 0; ok && i < R * C; i++) ok = got[i] == val(seed + 20, size - 1, i);
  CHECK(ok, "broadcast from rank %d", size - 1);
  /* all-to-all along axis 0 (contiguous slices) and axis 1 (moved to the front): rank j's
   * result, slice r along the axis = rank r's input, slice j (a gather of the whole) */
  enum { E = 4, T = 6, D = 5 };
  static float x[E * T * D], y[E * T * D];
  for (int axis = 0; axis < 2; axis++) {
    for (int i = 0; i < E * T * D; i++) x[i] = val(seed + 30, rank, i);
    cg_tensor *xt = cg_from_data(x, CG_FLOAT32, (int64_t[]){E, T, D}, 3), *yt = cg_dist_alltoall(xt, axis);
    ok = yt && cg_read(yt, CG_FLOAT32, y, sizeof y) == CG_OK;
    int64_t n = axis == 0 ? E : T, k = n / size;
    for (int e = 0; ok && e < E; e++)
      for (int s = 0; s < T; s++)
        for (int d = 0; d < D; d++) {
          int64_t at = axis == 0 ? e : s, from = at / k, local = at % k; /* slice `from`, position `local` inside it */
          int64_t src_at = rank * k + local;
          int64_t src = axis == 0 ? (src_at * T + s) * D + d : ((int64_t)e * T + src_at) * D + d;
          ok = y[((int64_t)e * T + s) * D + d] == val(seed + 30, (int)from, src);
        }
    CHECK(ok, "all-to-all along axis %d: %s", axis, yt ? "values" : cg_last_error());
    cg_free(xt), cg_free(yt);
  }
  cg_tensor *bad = cg_from_data(x, CG_FLOAT32, (int64_t[]){3, 5}, 2);
  CHECK(size == 1 || (!cg_dist_alltoall(bad, 0) && strstr(cg_last_error(), "not divisible")), "bad all-to-all axis: %s", cg_last_error());
  worker_jit(seed);
  worker_overlap(seed);
  CHECK(cg_dist_barrier() == CG_OK, "barrier");
  printf("rank %d: %d passed, %d failed\n", rank, t_pass, t_fail);
  return t_fail ? 1 : 0;
}

static int worker_fault(bool hang) {
  int rank = cg_dist_rank();
  float h[64];
  cg_tensor *t = input(1, rank, 8, 8, h);
  for (int i = 0; i < 1000; i++) {
    if (rank == 1 && i == 2) {
      fflush(stdout);
      raise(hang ? SIGSTOP : SIGKILL);
    }
    if (cg_dist_allreduce(&t, 1, CG_DIST_SUM, 0) != CG_OK) {
      fprintf(stderr, "rank %d: %s\n", rank, cg_last_error());
      cg_dist_abort(3);
    }
  }
  printf("rank %d: finished, which it should not have\n", rank);
  return 0;
}

/* Run cmd, its output into *out (malloc'd); returns the exit status; *secs its wall time. */
static int run(const char *cmd, char **out, double *secs) {
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  FILE *p = popen(cmd, "r");
  size_t n = 0, cap = 1 << 16;
  char *buf = malloc(cap);
  while (p && buf && n + 1 < cap) {
    size_t got = fread(buf + n, 1, cap - 1 - n, p);
    if (!got) break;
    n += got;
  }
  if (buf) buf[n] = 0;
  int st = p ? pclose(p) : -1;
  clock_gettime(CLOCK_MONOTONIC, &b);
  *secs = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
  *out = buf;
  return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static const char *MPIRUN = "timeout 120 mpirun --allow-run-as-root --oversubscribe -np 2";

static void test_train(void) {
  const char *bin = getenv("CG_BIN_DIR");
  char cgrad[600], cmd[2400], *out = NULL;
  double secs, one[32], two[32];
  snprintf(cgrad, sizeof cgrad, "%s/cgrad", bin ? bin : ".");
  if (access("/usr/share/datasets/fashion-mnist", R_OK)) {
    printf("skipped the training comparison: Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)\n");
    return;
  }
  const char *common = "--model mlp --steps 20 --eval-images 100 --seed";
  unsigned seed = (unsigned)time(NULL) % 100000;
  snprintf(cmd, sizeof cmd, "CG_PRINT_LOSS=1 %s train %s %u --batch 512 --out %s 2>&1", cgrad, common, seed, in_dir("one.st"));
  int rc = run(cmd, &out, &secs);
  int n1 = parse_losses(out ? out : "", one, 32);
  CHECK(rc == 0 && n1 == 20, "1 process: rc %d, %d losses:\n%s", rc, n1, out ? out : "");
  free(out);
  snprintf(cmd, sizeof cmd, "CG_PRINT_LOSS=1 %s %s train --distributed %s %u --batch 256 --out %s 2>&1", MPIRUN, cgrad, common, seed, in_dir("two.st"));
  rc = run(cmd, &out, &secs);
  int n2 = parse_losses(out ? out : "", two, 32);
  CHECK(rc == 0 && n2 == 20, "2 ranks: rc %d, %d losses:\n%s", rc, n2, out ? out : "");
  CHECK(out && strstr(out, "data-parallel over 2 ranks, 256 examples each"), "the run says it is data-parallel");
  free(out);
  /* the first steps agree to float32 rounding; later ones drift apart faster where a ReLU
   * input near 0 takes the other side in one run (over 63 seeds: steps 1-4 within 1.1e-6,
   * steps 5-20 within 1.3e-6 but 1e-5 and 3.9e-5 at two seeds). A wrong sum or average of
   * the gradients moves the loss by ~1e-2 from step 2 on. */
  double first = 0, worst = 0;
  for (int i = 0; i < 20 && n1 == 20 && n2 == 20; i++) {
    double e = fabs(one[i] - two[i]) / fabs(one[i]);
    if (isnan(e)) e = INFINITY;
    if (i < 4 && !(e <= first)) first = e;
    if (!(e <= worst)) worst = e;
  }
  CHECK(n1 == 20 && n2 == 20 && first <= 5e-6, "losses of 2 ranks x 256 vs 1 x 512, steps 1-4: worst relative difference %g (seed %u)", first, seed);
  CHECK(n1 == 20 && n2 == 20 && worst <= 2e-4, "losses of 2 ranks x 256 vs 1 x 512, steps 1-20: worst relative difference %g (seed %u)", worst, seed);
  CHECK(one[19] < 0.7 * one[0], "it trains: %g -> %g", one[0], one[19]);
  printf("training: 20 losses agree within %.2g relative (seed %u)\n", worst, seed);
  size_t sz;
  unsigned char *ck = read_file(in_dir("two.st"), &sz);
  CHECK(ck && sz > 1000, "rank 0 wrote the checkpoint");
  free(ck);
}

int main(int argc, char **argv) {
  if (argc >= 3 && !strcmp(argv[1], "--worker")) {
    if (cg_dist_init(&argc, &argv) != CG_OK) {
      fprintf(stderr, "%s\n", cg_last_error());
      return 2;
    }
    int rc = !strcmp(argv[2], "hang") ? worker_fault(true) : !strcmp(argv[2], "die") ? worker_fault(false)
                                                                                       : worker_collectives(strtoull(argv[3], NULL, 10));
    cg_dist_finalize();
    return rc;
  }
  if (!cg_dist_available()) {
    printf("skipped: cgrad was built without MPI (configure with -DCG_MPI=ON; apt-get install libopenmpi-dev openmpi-bin)\n");
    return test_summary();
  }
  if (system("command -v mpirun >/dev/null 2>&1")) {
    printf("skipped: mpirun is not installed (apt-get install openmpi-bin)\n");
    return test_summary();
  }
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1), setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
  setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 1);
  /* containers often forbid the cross-process memory reads Open MPI's shared-memory
   * transport tries first (CMA); plain copies work everywhere */
  setenv("OMPI_MCA_btl_vader_single_copy_mechanism", "none", 0);
  snprintf(tmp_dir, sizeof tmp_dir, "/tmp/cg_dist_XXXXXX");
  if (!mkdtemp(tmp_dir)) return fprintf(stderr, "mkdtemp failed\n"), 1;
  char self[1024], cmd[2400], *out;
  double secs;
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  self[len > 0 ? len : 0] = 0;
  unsigned long long seed = (unsigned long long)time(NULL);
  printf("seed %llu\n", seed);
  snprintf(cmd, sizeof cmd, "%s %s --worker collectives %llu 2>&1", MPIRUN, self, seed);
  int rc = run(cmd, &out, &secs);
  CHECK(rc == 0 && out && strstr(out, "rank 0: ") && strstr(out, "rank 1: ") && !strstr(out, "FAIL"), "collectives (rc %d):\n%s", rc, out ? out : "");
  if (out) fputs(out, stdout);
  free(out);
  snprintf(cmd, sizeof cmd, "CG_DIST_TIMEOUT_S=3 %s %s --worker hang 2>&1", MPIRUN, self);
  rc = run(cmd, &out, &secs);
  CHECK(rc != 0 && rc != 124 && out && strstr(out, "did not finish within 3 s") && strstr(out, "another rank died or hangs"),
        "a hung rank: rc %d after %.1f s:\n%s", rc, secs, out ? out : "");
  printf("hung rank: the other exited (rc %d) after %.1f s\n", rc, secs);
  free(out);
  snprintf(cmd, sizeof cmd, "CG_DIST_TIMEOUT_S=3 %s %s --worker die 2>&1", MPIRUN, self);
  rc = run(cmd, &out, &secs);
  CHECK(rc != 0 && rc != 124 && out && !strstr(out, "finished, which"), "a killed rank: rc %d after %.1f s:\n%s", rc, secs, out ? out : "");
  printf("killed rank: the job ended (rc %d) after %.1f s\n", rc, secs);
  free(out);
  test_train();
  char rm[400];
  snprintf(rm, sizeof rm, "rm -rf %s", tmp_dir);
  if (system(rm)) {}
  return test_summary();
}
