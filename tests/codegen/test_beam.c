/* BEAM search: its choice computes the same matmul as plain C; the choice is kept on disk
 * and a second search (as a second process would) takes it with no timing; a corrupt
 * entry is detected, deleted and searched again; a process with another thread count
 * searches for itself (the key holds it); with a broken compiler (CG_CC=/bin/false)
 * the search reports and the engine falls back to the heuristic's opts (which then fail
 * to compile, with a message, not a crash). */
#include "check.h"
#include "renderer/render.h"
#include "runtime/device.h"
#include "runtime/threadpool.h"
#include "schedule/schedule.h"
#include "tensor/tensor.h"
#include "tmpfiles.h"
#include <dirent.h>
#include <math.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *beam_entry(void) {
  static char path[1024];
  DIR *d = opendir(tmp_dir);
  struct dirent *e;
  path[0] = 0;
  while (d && (e = readdir(d)))
    if (!strncmp(e->d_name, "beam-", 5)) snprintf(path, sizeof path, "%s/%s", tmp_dir, e->d_name);
  if (d) closedir(d);
  return path;
}

/* The largest |c - a @ b| against a float64 product, a (m, k), b (k, n), row-major. */
static double gemm_off(const float *a, const float *b, const float *c, int m, int k, int n) {
  double worst = 0;
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      double want = 0;
      for (int q = 0; q < k; q++) want += (double)a[i * k + q] * b[q * n + j];
      worst = fmax(worst, fabs(c[i * n + j] - want));
    }
  return worst;
}

int main(void) {
  snprintf(tmp_dir, sizeof tmp_dir, "/tmp/cgrad-beam-XXXXXX");
  if (!mkdtemp(tmp_dir)) return 1;
  cg_set_config("CG_CACHE_DIR", tmp_dir);
  cg_set_config("BEAM_BUDGET_S", "4");
  cg_set_config("CG_THREADS", "2"); /* the pool is made with the first launch */
  enum { M = 24, K = 40, N = 48 };
  static float a[M * K], b[K * N], c[M * N];
  uint64_t r = 5;
  for (int i = 0; i < M * K; i++) a[i] = (float)((r = r * 6364136223846793005ull + 1) >> 40) / 16777216.0f - 0.5f;
  for (int i = 0; i < K * N; i++) b[i] = (float)((r = r * 6364136223846793005ull + 1) >> 40) / 16777216.0f - 0.5f;
  cg_scope_begin();
  cg_tensor *ta = cg_from_data(a, CG_FLOAT32, (int64_t[]){M, K}, 2), *tb = cg_from_data(b, CG_FLOAT32, (int64_t[]){K, N}, 2);

  /* a search, and its choice computes the product */
  cg_set_config("BEAM", "2");
  beam_stats s0 = beam_get_stats();
  CHECK(cg_read(cg_matmul(ta, tb), CG_FLOAT32, c, sizeof c) == CG_OK, "%s", cg_last_error());
  beam_stats s1 = beam_get_stats();
  CHECK(s1.searches == s0.searches + 1 && s1.candidates > s0.candidates, "one search that timed candidates");
  double worst = gemm_off(a, b, c, M, K, N);
  CHECK(worst < 1e-5, "BEAM's kernel is off by %g", worst);
  CHECK(beam_entry()[0], "the choice is stored in the cache directory");

  /* as a second process: the scheduled kernel searched again finds the stored choice */
  uop_pool_push();
  cg_tensor *prod = cg_matmul(ta, tb);
  schedule s;
  CHECK(sched_build(&prod->u, 1, &s));
  opt o[MAX_OPTS], o2[MAX_OPTS];
  rt_device *cpu = rt_get_device("CPU");
  int n = beam_search(s.k[s.n - 1].ast, &renderer_c, cpu, 2, o);
  beam_stats s2 = beam_get_stats();
  CHECK(n >= 0 && s2.hits == s1.hits + 1 && s2.searches == s1.searches && s2.candidates == s1.candidates, "the stored choice, with no search");

  /* a corrupt entry: detected, deleted, searched again, stored again */
  write_file(beam_entry(), "cgrad-beam 1 garbage", 20);
  int n2 = beam_search(s.k[s.n - 1].ast, &renderer_c, cpu, 2, o2);
  beam_stats s3 = beam_get_stats();
  CHECK(n2 >= 0 && s3.rejects == s2.rejects + 1 && s3.searches == s2.searches + 1, "a corrupt entry is searched again");
  size_t size;
  unsigned char *text = read_file(beam_entry(), &size);
  CHECK(text && !memcmp(text, "cgrad-beam 1 ", 13) && !strstr((char *)text, "garbage"), "a fresh entry replaces it");
  free(text);

  /* a GEMM no register tile divides (37 x 100): the search starts from the heuristic's
   * list and the other tiles and column blocks (PADTO, TILE), its choice computes the
   * product and comes back from the disk with its PADTO */
  {
    enum { M2 = 37, K2 = 64, N2 = 100 };
    static float a2[M2 * K2], b2[K2 * N2], c2[M2 * N2];
    for (int i = 0; i < M2 * K2; i++) a2[i] = (float)((r = r * 6364136223846793005ull + 1) >> 40) / 16777216.0f - 0.5f;
    for (int i = 0; i < K2 * N2; i++) b2[i] = (float)((r = r * 6364136223846793005ull + 1) >> 40) / 16777216.0f - 0.5f;
    cg_tensor *ta2 = cg_from_data(a2, CG_FLOAT32, (int64_t[]){M2, K2}, 2), *tb2 = cg_from_data(b2, CG_FLOAT32, (int64_t[]){K2, N2}, 2);
    beam_stats g0 = beam_get_stats();
    cg_set_config("BEAM_BUDGET_S", "8"); /* room for the seeds' compiles on a loaded machine */
    CHECK(cg_read(cg_matmul(ta2, tb2), CG_FLOAT32, c2, sizeof c2) == CG_OK, "%s", cg_last_error());
    cg_set_config("BEAM_BUDGET_S", "4");
    beam_stats g1 = beam_get_stats();
    CHECK(g1.searches == g0.searches + 1 && g1.candidates >= g0.candidates + 3, "a search over the GEMM candidates (%lld timed)",
          (long long)(g1.candidates - g0.candidates));
    double worst2 = gemm_off(a2, b2, c2, M2, K2, N2);
    CHECK(worst2 < 1e-5, "BEAM's GEMM kernel is off by %g", worst2);
    uop_pool_push();
    cg_tensor *p2 = cg_matmul(ta2, tb2);
    schedule s5;
    CHECK(sched_build(&p2->u, 1, &s5));
    opt o5[MAX_OPTS];
    int n5 = beam_search(s5.k[s5.n - 1].ast, &renderer_c, cpu, 2, o5);
    bool padded = false;
    for (int i = 0; i < n5; i++) padded |= o5[i].kind == OPT_PADTO;
    char d5[256];
    opts_str(o5, n5 > 0 ? n5 : 0, d5, sizeof d5);
    CHECK(n5 > 0 && beam_get_stats().hits == g1.hits + 1 && padded, "the stored GEMM choice (%s) with its PADTO", d5);
    sched_free(&s5);
    uop_pool_pop();
  }

  /* the finalists timed again: with NOOPT=1 the heuristic's list is empty (scalar loops),
   * the GEMM seeds are far faster, so the search's winner is not the heuristic's and the
   * two are timed again in turns; the choice kept is a tile (not the empty list) and
   * computes the product */
  {
    enum { M3 = 64, K3 = 96, N3 = 64 };
    static float a3[M3 * K3], b3[K3 * N3], c3[M3 * N3];
    for (int i = 0; i < M3 * K3; i++) a3[i] = (float)((r = r * 6364136223846793005ull + 1) >> 40) / 16777216.0f - 0.5f;
    for (int i = 0; i < K3 * N3; i++) b3[i] = (float)((r = r * 6364136223846793005ull + 1) >> 40) / 16777216.0f - 0.5f;
    cg_tensor *ta3 = cg_from_data(a3, CG_FLOAT32, (int64_t[]){M3, K3}, 2), *tb3 = cg_from_data(b3, CG_FLOAT32, (int64_t[]){K3, N3}, 2);
    cg_realize(ta3), cg_realize(tb3);
    cg_set_config("NOOPT", "1");
    beam_stats v0 = beam_get_stats();
    CHECK(cg_read(cg_matmul(ta3, tb3), CG_FLOAT32, c3, sizeof c3) == CG_OK, "%s", cg_last_error());
    beam_stats v1 = beam_get_stats();
    CHECK(v1.searches == v0.searches + 1 && v1.verified == v0.verified + 1, "NOOPT's empty list lost the search: finalists timed again (%lld)",
          (long long)(v1.verified - v0.verified));
    double worst3 = gemm_off(a3, b3, c3, M3, K3, N3);
    CHECK(worst3 < 1e-5, "the verified choice is off by %g", worst3);
    uop_pool_push();
    schedule s6;
    CHECK(sched_build(&cg_matmul(ta3, tb3)->u, 1, &s6));
    opt o6[MAX_OPTS];
    int n6 = beam_search(s6.k[s6.n - 1].ast, &renderer_c, cpu, 2, o6);
    CHECK(n6 > 0 && beam_get_stats().hits == v1.hits + 1, "the stored choice is a tile, not the empty list (%d opts)", n6);
    sched_free(&s6);
    uop_pool_pop();
    cg_set_config("NOOPT", "0");
  }

  /* the thread count is in the key: a process with one thread does not take the choice
   * made for two, it searches and stores its own */
  CHECK(rt_pool_size() == 2, "2 threads here (%d)", rt_pool_size());
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    cg_set_config("CG_THREADS", "1");
    cg_set_config("BEAM_BUDGET_S", "2");
    beam_stats c0 = beam_get_stats();
    opt oc[MAX_OPTS];
    int nc = beam_search(s.k[s.n - 1].ast, &renderer_c, cpu, 2, oc);
    beam_stats c1 = beam_get_stats();
    _exit(nc >= 0 && rt_pool_size() == 1 && c1.searches == c0.searches + 1 && c1.hits == c0.hits ? 0 : 1);
  }
  int wst = -1;
  CHECK(pid > 0 && waitpid(pid, &wst, 0) == pid && WIFEXITED(wst) && WEXITSTATUS(wst) == 0, "a 1-thread process searched for itself (status %d)", wst);
  int entries = 0;
  DIR *dd = opendir(tmp_dir);
  for (struct dirent *e; dd && (e = readdir(dd));) entries += !strncmp(e->d_name, "beam-", 5);
  if (dd) closedir(dd);
  beam_stats h0 = beam_get_stats();
  CHECK(beam_search(s.k[s.n - 1].ast, &renderer_c, cpu, 2, o) >= 0 && beam_get_stats().hits == h0.hits + 1, "the 2-thread choice is still found");
  CHECK(entries == 4, "an entry per kernel and thread count (%d)", entries);

  /* a broken compiler: the search says so; realize falls back and reports the compiler */
  cg_set_config("CG_CC", "/bin/false");
  cg_tensor *x = cg_from_data(a, CG_FLOAT32, (int64_t[]){M * K / 8, 8}, 2);
  cg_tensor *y = cg_sum(cg_mul(x, x), (int[]){1}, 1, false);
  schedule s4;
  CHECK(sched_build(&y->u, 1, &s4));
  CHECK(beam_search(s4.k[s4.n - 1].ast, &renderer_c, cpu, 2, o) == -1 && strstr(cg_last_error(), "BEAM"), "got: %s", cg_last_error());
  cg_set_config("CG_TIER", "0"); /* every kernel waits for the compiler (tiering would run machine code: test_train_bits) */
  cg_status st = cg_realize(y);
  CHECK(st == CG_ERR_RUNTIME && strstr(cg_last_error(), "compile"), "realize with a broken compiler: %d %s", st, cg_last_error());
  cg_set_config("CG_TIER", NULL);
  sched_free(&s4);
  sched_free(&s);
  uop_pool_pop();
  cg_set_config("CG_CC", "cc");
  cg_set_config("BEAM", "0");
  cg_scope_end();
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
  if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmp_dir);
  return test_summary();
}
