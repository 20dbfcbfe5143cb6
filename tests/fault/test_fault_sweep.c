/* Allocation-failure sweep (issue 14): each scenario runs once to count its allocations
 * and record its result, then once per N with the N-th allocation failing (core/fault.h),
 * each run in a forked child. A run must end with the right result (the failure was
 * absorbed) or with CG_ERR_NOMEM from the public call that hit it, and the library must
 * then run the scenario again to the right result. A crash, an abort, another error, a
 * wrong result, a leak (LeakSanitizer's exit code in the ASan build) or a corrupted file
 * fails the sweep.
 *
 * Scenarios: ops (matmul, relu, softmax, reductions, checked against float64 too), train
 * (two SGD-momentum steps of a small MLP with cross-entropy), safetensors (save over an
 * existing checkpoint, load back), compile (a new kernel compiled by cc into an empty
 * disk cache and loaded with dlopen), jit (a JIT'd training step: capture, compare,
 * replay), interp (the ops on the INTERP device). ops, train, jit and interp load their
 * kernels from a warm disk cache; every allocation of scheduling, codegen and rendering
 * counts (a realize's checked pool).
 *
 * Environment: FAULT_STRIDE=k tries every k-th N (default: about 60 runs per scenario,
 * the CI sweep; 1 = every N), FAULT_PERSIST=1 makes every allocation from the N-th on fail,
 * FAULT_ONLY=name runs one scenario, FAULT_N=n only its n-th run, in this process. The parent never calls the library: every run starts
 * from a fresh fork. */
#include "check.h"
#include "cgrad.h"
#include "core/fault.h"
#include "runtime/disk_cache.h"
#include "runtime/device.h"
#include "tmpfiles.h"
#include <math.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAXV 512
typedef struct {
  long allocs;
  int n;
  double v[MAXV];
} result;

typedef cg_status (*scenario_fn)(result *r, const char *dir);

static void put(result *r, const float *x, int n) {
  for (int i = 0; i < n && r->n < MAXV; i++) r->v[r->n++] = x[i];
}

/* ---- scenarios ------------------------------------------------------------------------ */

static const float XS[4 * 5] = {0.5f, -1.f, 2.f, 0.25f, -0.75f, 1.5f, 0.f, -2.f, 1.f, 0.125f,
                                -0.5f, 0.75f, 1.25f, -1.5f, 2.5f, 0.f, 1.f, -0.25f, 0.5f, -1.f};
static const float WS[5 * 3] = {0.1f, -0.2f, 0.3f, 0.4f, 0.5f, -0.6f, -0.7f, 0.8f, 0.9f, 1.f, -1.1f, 0.2f, 0.3f, 0.05f, -0.4f};

/* softmax(relu(x @ w + 1), 1) and its column sums, in float64. */
static void ops_reference(double *y, double *colsum) {
  for (int i = 0; i < 4; i++) {
    double z[3], m = -INFINITY, s = 0;
    for (int j = 0; j < 3; j++) {
      z[j] = 1;
      for (int k = 0; k < 5; k++) z[j] += (double)XS[i * 5 + k] * WS[k * 3 + j];
      z[j] = z[j] > 0 ? z[j] : 0;
      m = z[j] > m ? z[j] : m;
    }
    for (int j = 0; j < 3; j++) s += exp(z[j] - m);
    for (int j = 0; j < 3; j++) y[i * 3 + j] = exp(z[j] - m) / s;
  }
  for (int j = 0; j < 3; j++) {
    colsum[j] = 0;
    for (int i = 0; i < 4; i++) colsum[j] += y[i * 3 + j];
  }
}

static cg_status sc_ops(result *r, const char *dir) {
  (void)dir;
  int64_t sx[2] = {4, 5}, sw[2] = {5, 3};
  cg_scope_begin();
  cg_tensor *x = cg_from_data(XS, CG_FLOAT32, sx, 2), *w = cg_from_data(WS, CG_FLOAT32, sw, 2);
  cg_tensor *y = cg_softmax(cg_relu(cg_add(cg_matmul(x, w), cg_scalar(1))), 1);
  int ax0 = 0;
  cg_tensor *cs = cg_sum(y, &ax0, 1, false);
  float out[12 + 3];
  cg_status st = y && cs ? cg_read(y, CG_FLOAT32, out, 12 * sizeof(float)) : cg_last_status();
  if (st == CG_OK) st = cg_read(cs, CG_FLOAT32, out + 12, 3 * sizeof(float));
  cg_scope_end();
  if (st != CG_OK) return st;
  double ry[12], rc[3];
  ops_reference(ry, rc);
  for (int i = 0; i < 12; i++)
    if (fabs(out[i] - ry[i]) > 1e-5) return fprintf(stderr, "ops: y[%d] = %g, float64 says %g\n", i, out[i], ry[i]), CG_ERR_INVALID;
  for (int j = 0; j < 3; j++)
    if (fabs(out[12 + j] - rc[j]) > 1e-5) return CG_ERR_INVALID;
  put(r, out, 15);
  return CG_OK;
}

static cg_status sc_train(result *r, const char *dir) {
  (void)dir;
  cg_manual_seed(7);
  cg_module *layers[3] = {cg_linear(5, 8, true), cg_relu_layer(), cg_linear(8, 3, true)};
  cg_module *net = cg_sequential(layers, 3);
  if (!net) return cg_last_status();
  cg_tensor *params[8];
  int np = cg_module_parameters(net, params, 8);
  cg_optimizer *opt = cg_sgd(params, np, 0.1, 0.9, 0, 0, false);
  cg_status st = opt ? CG_OK : cg_last_status();
  int64_t sx[2] = {4, 5}, sy[1] = {4};
  int32_t ys[4] = {0, 2, 1, 2};
  for (int step = 0; step < 2 && st == CG_OK; step++) {
    cg_scope_begin();
    cg_tensor *x = cg_from_data(XS, CG_FLOAT32, sx, 2), *y = cg_from_data(ys, CG_INT32, sy, 1);
    cg_tensor *loss = cg_cross_entropy(cg_module_forward(net, x), y, 0);
    st = loss ? cg_backward(loss) : cg_last_status();
    if (st == CG_OK) st = cg_optimizer_step(opt);
    cg_optimizer_zero_grad(opt);
    cg_scope_end();
  }
  for (int i = 0; i < np && st == CG_OK; i++) {
    float buf[64];
    int64_t n = cg_numel(params[i]);
    st = cg_read(params[i], CG_FLOAT32, buf, (size_t)n * sizeof(float));
    if (st == CG_OK) put(r, buf, (int)n);
  }
  cg_optimizer_free(opt);
  cg_module_free(net);
  return st;
}

static const char *ST_NAMES[3] = {"a.weight", "b", "c.idx"};
static cg_status st_make(cg_tensor **ts, float scale) {
  int64_t s0[2] = {3, 4}, s1[1] = {5}, s2[1] = {3};
  float a[12], b[5];
  int64_t c[3] = {7, -8, 9};
  for (int i = 0; i < 12; i++) a[i] = scale * (float)i - 1.5f;
  for (int i = 0; i < 5; i++) b[i] = scale / (float)(i + 1);
  ts[0] = cg_from_data(a, CG_FLOAT32, s0, 2);
  ts[1] = cg_cast(cg_from_data(b, CG_FLOAT32, s1, 1), CG_FLOAT16);
  ts[2] = cg_from_data(c, CG_INT64, s2, 1);
  return ts[0] && ts[1] && ts[2] ? CG_OK : cg_last_status();
}

/* The checkpoint at path holds st_make(scale)'s tensors exactly. */
static bool st_holds(const char *path, float scale) {
  cg_scope_begin();
  cg_tensor *want[3], *got[3];
  bool ok = st_make(want, scale) == CG_OK && st_make(got, -1) == CG_OK &&
            cg_load_safetensors(path, ST_NAMES, got, 3) == CG_OK;
  for (int i = 0; i < 3 && ok; i++) {
    cg_tensor *eq = cg_all(cg_eq(want[i], got[i]), NULL, 0, false);
    ok = eq && cg_item(eq) == 1;
  }
  cg_scope_end();
  return ok;
}

static cg_status sc_safetensors(result *r, const char *dir) {
  char path[512];
  snprintf(path, sizeof path, "%s/ckpt.safetensors", dir);
  cg_scope_begin();
  cg_tensor *ts[3], *back[3];
  cg_status st = st_make(ts, 2.0f);
  if (st == CG_OK) st = cg_save_safetensors(path, ST_NAMES, ts, 3);
  if (st == CG_OK) st = st_make(back, -1);
  if (st == CG_OK) st = cg_load_safetensors(path, ST_NAMES, back, 3);
  for (int i = 0; i < 3 && st == CG_OK; i++) {
    float buf[12];
    cg_tensor *f = cg_cast(back[i], CG_FLOAT32);
    int64_t n = cg_numel(back[i]);
    st = f ? cg_read(f, CG_FLOAT32, buf, (size_t)n * sizeof(float)) : cg_last_status();
    if (st == CG_OK) put(r, buf, (int)n);
  }
  cg_scope_end();
  return st;
}

static cg_status sc_compile(result *r, const char *dir) {
  (void)dir;
  int64_t s[1] = {6};
  float a[6] = {1, 2, 3, 4, 5, 6}, out[6];
  cg_scope_begin();
  /* constants no other test uses: a kernel the disk cache cannot have */
  cg_tensor *x = cg_from_data(a, CG_FLOAT32, s, 1);
  cg_tensor *y = cg_add(cg_mul(x, cg_scalar(3.0625)), cg_scalar(-0.4375));
  cg_status st = y ? cg_read(y, CG_FLOAT32, out, sizeof out) : cg_last_status();
  cg_scope_end();
  if (st != CG_OK) return st;
  for (int i = 0; i < 6; i++)
    if (out[i] != a[i] * 3.0625f - 0.4375f) return CG_ERR_INVALID;
  put(r, out, 6);
  return CG_OK;
}

/* jit: a JIT'd SGD step of a linear model (matmul, squared error, backward, the update in
 * place) called three times: eager under capture, eager compared, then replayed; the
 * losses and the weights after, checked against float64. An out-of-memory anywhere (the
 * capture, the replay's plan, the compile inside) must end the call with CG_ERR_NOMEM or
 * be absorbed (the call ran eagerly). */
typedef struct {
  cg_tensor *w;
} jit_model;
static cg_status jit_step(cg_tensor *const *in, int n_in, cg_tensor **out, int n_out, void *user) {
  (void)n_in, (void)n_out;
  jit_model *m = user;
  cg_tensor *d = cg_sub(cg_matmul(in[0], m->w), in[1]);
  cg_tensor *loss = cg_mean(cg_mul(d, d), NULL, 0, false);
  cg_status st = loss ? cg_backward(loss) : cg_last_status();
  cg_tensor *both[2] = {loss, cg_grad(m->w)}; /* the loss before the update reads w */
  if (st == CG_OK) st = cg_realize_many(both, 2);
  if (st == CG_OK) st = cg_assign(m->w, cg_sub(m->w, cg_mul(cg_grad(m->w), cg_scalar(0.25))));
  if (st == CG_OK) st = cg_realize(m->w);
  cg_zero_grad(m->w);
  out[0] = loss;
  return st;
}
static void jit_reference(double *losses, double *w) {
  for (int j = 0; j < 15; j++) w[j] = WS[j];
  for (int step = 0; step < 3; step++) {
    double d[12], g[15] = {0}, l = 0;
    for (int i = 0; i < 4; i++)
      for (int j = 0; j < 3; j++) {
        double z = 0;
        for (int k = 0; k < 5; k++) z += (double)(XS[i * 5 + k] + (float)step) * w[k * 3 + j];
        d[i * 3 + j] = z - (double)(0.5f * (float)(i - j));
        l += d[i * 3 + j] * d[i * 3 + j] / 12;
      }
    for (int k = 0; k < 5; k++)
      for (int j = 0; j < 3; j++)
        for (int i = 0; i < 4; i++) g[k * 3 + j] += 2 * (double)(XS[i * 5 + k] + (float)step) * d[i * 3 + j] / 12;
    for (int j = 0; j < 15; j++) w[j] -= 0.25 * g[j];
    losses[step] = l;
  }
}
static cg_status sc_jit(result *r, const char *dir) {
  (void)dir;
  int64_t sx[2] = {4, 5}, sw[2] = {5, 3}, sy[2] = {4, 3};
  jit_model m = {cg_from_data(WS, CG_FLOAT32, sw, 2)};
  cg_status st = m.w ? cg_set_requires_grad(m.w, true) : cg_last_status();
  cg_jit *j = st == CG_OK ? cg_jit_new(jit_step, 1, &m) : NULL;
  if (st == CG_OK && !j) st = cg_last_status();
  float out[3 + 15];
  for (int step = 0; step < 3 && st == CG_OK; step++) {
    float x[20], y[12];
    for (int i = 0; i < 20; i++) x[i] = XS[i] + (float)step;
    for (int i = 0; i < 12; i++) y[i] = 0.5f * (float)(i / 3 - i % 3);
    cg_scope_begin();
    cg_tensor *in[2] = {cg_from_data(x, CG_FLOAT32, sx, 2), cg_from_data(y, CG_FLOAT32, sy, 2)}, *loss = NULL;
    st = in[0] && in[1] ? cg_jit_call(j, in, 2, &loss) : cg_last_status();
    if (st == CG_OK) st = cg_read(loss, CG_FLOAT32, &out[step], sizeof(float));
    cg_free(loss);
    cg_scope_end();
  }
  if (st == CG_OK) st = cg_read(m.w, CG_FLOAT32, out + 3, sizeof(float) * 15);
  /* with no failure injected the third call is a replay (so the sweep covers replays) */
  if (st == CG_OK && !fault_fired() && cg_jit_stats(j).replays != 1)
    fprintf(stderr, "jit: %d replays, expected 1\n", (int)cg_jit_stats(j).replays), st = CG_ERR_INVALID;
  cg_jit_free(j);
  cg_free(m.w);
  if (st != CG_OK) return st;
  double rl[3], rw[15];
  jit_reference(rl, rw);
  for (int i = 0; i < 18; i++) {
    double want = i < 3 ? rl[i] : rw[i - 3];
    if (fabs(out[i] - want) > 1e-4 * (1 + fabs(want))) return fprintf(stderr, "jit: value %d = %g, float64 says %g\n", i, out[i], want), CG_ERR_INVALID;
  }
  put(r, out, 18);
  return CG_OK;
}

/* interp: the ops scenario on the INTERP device (render to its code, parse, run). */
static cg_status sc_interp(result *r, const char *dir) {
  cg_status st = cg_set_config("DEVICE", "INTERP");
  if (st == CG_OK) st = sc_ops(r, dir);
  cg_set_config("DEVICE", "CPU");
  return st;
}

/* Every file in the cache directory is a sound entry (no temporaries, nothing torn). */
static bool cache_clean(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return true; /* never made: nothing to corrupt */
  bool ok = true;
  struct dirent *e;
  while ((e = readdir(d)) && ok) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    const char *dash = strrchr(e->d_name, '-');
    uint64_t key[2] = {0, 0};
    if (!dash || sscanf(dash + 1, "%16lx%16lx", &key[0], &key[1]) != 2) {
      fprintf(stderr, "cache: unexpected file %s\n", e->d_name);
      ok = false;
      continue;
    }
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    if (rt_cache_check(p, key) != RT_CACHE_OK) fprintf(stderr, "cache: torn entry %s\n", e->d_name), ok = false;
  }
  closedir(d);
  return ok;
}

typedef struct {
  const char *name;
  scenario_fn fn;
  bool fresh_cache; /* an empty disk cache per run, so it compiles */
} scenario;
static const scenario SCENARIOS[] = {
    {"ops", sc_ops, false},
    {"train", sc_train, false},
    {"safetensors", sc_safetensors, false},
    {"compile", sc_compile, true},
    {"jit", sc_jit, false},
    {"interp", sc_interp, false},
};

/* ---- the driver ----------------------------------------------------------------------- */

enum { RUN_OK = 0, RUN_NOMEM = 10, RUN_WRONG = 11, RUN_OTHER_ERROR = 12, RUN_NOT_RECOVERED = 13, RUN_FILE = 14,
       RUN_SPURIOUS = 15 };

static char warm_cache[512];

/* In the child: the scenario with the n-th allocation failing (n = 0: none, counting). */
static int child(const scenario *sc, long n, bool persist, result *ref, int idx) {
  char dir[512];
  snprintf(dir, sizeof dir, "%s/run%d", tmp_dir, idx);
  mkdir(dir, 0700);
  char cache[600];
  snprintf(cache, sizeof cache, "%s/cache", dir);
  setenv("CG_CACHE_DIR", sc->fresh_cache ? cache : warm_cache, 1);
  if (!strcmp(sc->name, "safetensors") && n > 0) { /* an older checkpoint the save replaces */
    char path[600];
    snprintf(path, sizeof path, "%s/ckpt.safetensors", dir);
    cg_scope_begin();
    cg_tensor *ts[3];
    if (st_make(ts, 0.5f) != CG_OK || cg_save_safetensors(path, ST_NAMES, ts, 3) != CG_OK) return RUN_OTHER_ERROR;
    cg_scope_end();
  }
  result *r = calloc(1, sizeof *r);
  fault_arm(n, persist);
  cg_clear_error();
  cg_status st = sc->fn(r, dir);
  long counted = fault_count();
  bool fired = fault_fired();
  fault_arm(0, false);
  int code = RUN_OK;
  if (n == 0) {
    if (st != CG_OK) fprintf(stderr, "%s: the reference run failed: %s\n", sc->name, cg_last_error());
    *ref = *r;
    ref->allocs = counted;
    code = st == CG_OK ? RUN_OK : RUN_OTHER_ERROR;
  } else if (st == CG_OK) {
    if (r->n != ref->n || memcmp(r->v, ref->v, sizeof(double) * (size_t)r->n)) code = RUN_WRONG;
  } else if (st != CG_ERR_NOMEM || cg_last_status() != CG_ERR_NOMEM) {
    fprintf(stderr, "%s N=%ld: status %d, '%s'\n", sc->name, n, (int)st, cg_last_error());
    code = RUN_OTHER_ERROR;
  } else if (!fired) {
    code = RUN_SPURIOUS;
  } else {
    code = RUN_NOMEM;
  }
  if (n > 0 && !strcmp(sc->name, "safetensors")) { /* old or new checkpoint, never a torn one */
    char path[600];
    snprintf(path, sizeof path, "%s/ckpt.safetensors", dir);
    if (!st_holds(path, st == CG_OK ? 2.0f : 0.5f) && !st_holds(path, 2.0f)) code = RUN_FILE;
    if (count_entries(dir) != 1) code = RUN_FILE; /* no temporary left behind */
  }
  /* every cache entry sound, no temporary left: the run's own cache, or the warm one the
   * other scenarios share (a failed run must not have published a torn entry there) */
  rt_x86_tier_wait(); /* tiering's background compiles (their temporaries) are done */
  if (!cache_clean(sc->fresh_cache ? cache : warm_cache)) code = RUN_FILE;
  if (n > 0 && (code == RUN_NOMEM || code == RUN_OK)) { /* still usable: the same again, no failure */
    memset(r, 0, sizeof *r);
    cg_status again = sc->fn(r, dir);
    if (again != CG_OK || r->n != ref->n || memcmp(r->v, ref->v, sizeof(double) * (size_t)r->n)) {
      fprintf(stderr, "%s N=%ld: not usable after: %s\n", sc->name, n, cg_last_error());
      code = RUN_NOT_RECOVERED;
    }
  }
  free(r);
  return code;
}

/* Fork, run, classify: "ok", "nomem" or a failure description. */
static const char *run_one(const scenario *sc, long n, bool persist, result *ref, int idx, char *why, size_t nwhy) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) exit(child(sc, n, persist, ref, idx)); /* exit, not _exit: LeakSanitizer runs at exit */
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) return snprintf(why, nwhy, "killed by signal %d", WTERMSIG(status)), why;
  int code = WEXITSTATUS(status);
  if (code == RUN_OK) return "ok";
  if (code == RUN_NOMEM) return "nomem";
  static const char *names[] = {"wrong result", "another error", "not usable afterwards", "corrupted file", "an error with no failure injected"};
  if (code >= RUN_WRONG && code <= RUN_SPURIOUS) return snprintf(why, nwhy, "%s", names[code - RUN_WRONG]), why;
  return snprintf(why, nwhy, "exit code %d (%s)", code, code == 23 ? "LeakSanitizer found a leak" : code == 1 ? "a sanitizer error" : "?"), why;
}

int main(void) {
  snprintf(tmp_dir, sizeof tmp_dir, "/tmp/cg_fault_XXXXXX");
  CHECK(mkdtemp(tmp_dir) != NULL);
  snprintf(warm_cache, sizeof warm_cache, "%s/warm_cache", tmp_dir);
  long stride_env = test_env_long("FAULT_STRIDE", 0);
  bool persist = test_env_long("FAULT_PERSIST", 0) == 1;
  const char *only = getenv("FAULT_ONLY");
  result *ref = mmap(NULL, sizeof *ref, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  CHECK(ref != MAP_FAILED);
  int idx = 0;
  long total_runs = 0;
  for (size_t s = 0; s < sizeof SCENARIOS / sizeof SCENARIOS[0]; s++) {
    const scenario *sc = &SCENARIOS[s];
    if (only && strcmp(only, sc->name)) continue;
    char why[256];
    memset(ref, 0, sizeof *ref);
    const char *r0 = run_one(sc, 0, false, ref, idx++, why, sizeof why);
    CHECK(!strcmp(r0, "ok") && ref->n > 0 && ref->allocs > 0, "%s: reference run: %s", sc->name, r0);
    if (strcmp(r0, "ok")) continue;
    long one = test_env_long("FAULT_N", 0);
    if (one > 0) { /* one run, in this process: for a debugger or a sanitizer's stack */
      int code = child(sc, one, persist, ref, idx++);
      printf("%s N=%ld: code %d\n", sc->name, one, code);
      continue;
    }
    long count = ref->allocs, stride = stride_env > 0 ? stride_env : (count + 59) / 60;
    long ok = 0, nomem = 0, bad = 0;
    for (long n = 1; n <= count; n += stride) {
      const char *res = run_one(sc, n, persist, ref, idx++, why, sizeof why);
      if (!strcmp(res, "ok")) ok++;
      else if (!strcmp(res, "nomem")) nomem++;
      else {
        bad++;
        CHECK(0, "%s: allocation %ld of %ld failing%s: %s", sc->name, n, count, persist ? " (and all after)" : "", res);
      }
      total_runs++;
    }
    printf("%-12s %6ld allocations; N = 1..%ld step %ld%s: %ld right results, %ld CG_ERR_NOMEM, %ld failures\n", sc->name,
           count, count, stride, persist ? " (persistent)" : "", ok, nomem, bad);
    CHECK(nomem > 0, "%s: no run reported out of memory: the injection never reached the library", sc->name);
  }
  printf("%ld runs\n", total_runs);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
  CHECK(system(cmd) == 0);
  return test_summary();
}
