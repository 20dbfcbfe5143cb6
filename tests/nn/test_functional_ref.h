/* Comparing nn ops with PyTorch: each case writes its inputs (float32 or int64, raw) to a
 * temp dir, runs the op in cgrad, and backpropagates a random output gradient W (also
 * written); one Python run (/usr/bin/python3, or CG_PYTHON) then executes every case's
 * snippet, which sets `out` (and optionally `extra`, a list), calls out.backward(W), and
 * writes out, the gradients of the inputs that require grad, and the extras. The test
 * compares under each case's stated tolerances. Skipped, with a note, when torch cannot
 * be imported.
 *
 *   ref_case("conv2d s2", 1e-4, 1e-5);
 *   cg_tensor *x = ref_float("2,3,8,8", -1, 1, true), *w = ref_float("4,3,3,3", -1, 1, true);
 *   ref_out(cg_conv2d(x, w, NULL, S2, NULL, NULL, 1), "out = F.conv2d(x[0], x[1], stride=2)");
 *
 * Snippets are one line: separate statements with ';'. Available: x (inputs, in order),
 * torch, nn, F, fc (functional_call: fc(module, {name: tensor}, (input,))). */
#ifndef TEST_FUNCTIONAL_REF_H
#define TEST_FUNCTIONAL_REF_H
#include "check.h"
#include "cgrad.h"
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#define REF_FN static __attribute__((unused))
#define REF_MAX_IN 32
#define REF_MAX_EXTRA 8
#define REF_MAX_CASES 128

typedef struct {
  char name[96];
  int nin, nextra;
  double rtol, atol;
  bool grad[REF_MAX_IN];
  int64_t n_in[REF_MAX_IN];
  cg_tensor *in[REF_MAX_IN];
  double *out, *g[REF_MAX_IN], *extra[REF_MAX_EXTRA];
  int64_t nout, n_extra[REF_MAX_EXTRA];
  bool ok;
  char spec[1024];
} ref_case_t;

static char ref_dir[64];
static FILE *ref_spec;
static ref_case_t ref_cases[REF_MAX_CASES];
static int ref_n;
static uint64_t ref_rng = 0x9E3779B97F4A7C15ull;

REF_FN double ref_unif(double lo, double hi) {
  ref_rng ^= ref_rng << 13, ref_rng ^= ref_rng >> 7, ref_rng ^= ref_rng << 17;
  return lo + (hi - lo) * (double)(ref_rng >> 11) / 9007199254740992.0;
}

REF_FN int ref_parse(const char *s, int64_t *shape) {
  int n = 0;
  while (s && *s) {
    shape[n++] = strtoll(s, (char **)&s, 10);
    if (*s == ',') s++;
  }
  return n;
}

REF_FN bool ref_write(const char *name, const void *p, size_t bytes) {
  char path[160];
  snprintf(path, sizeof path, "%s/%s", ref_dir, name);
  FILE *f = fopen(path, "wb");
  if (!f) return false;
  bool ok = fwrite(p, 1, bytes, f) == bytes;
  return fclose(f) == 0 && ok;
}
REF_FN bool ref_read(const char *name, double *v, int64_t n) {
  char path[160];
  snprintf(path, sizeof path, "%s/%s", ref_dir, name);
  FILE *f = fopen(path, "rb");
  if (!f) return false;
  bool ok = fread(v, sizeof(double), (size_t)n, f) == (size_t)n;
  fclose(f);
  return ok;
}

REF_FN void ref_init(void) {
  snprintf(ref_dir, sizeof ref_dir, "/tmp/cg_nn_XXXXXX");
  if (!mkdtemp(ref_dir)) {
    perror("mkdtemp");
    exit(1);
  }
  char path[160];
  snprintf(path, sizeof path, "%s/cases.txt", ref_dir);
  ref_spec = fopen(path, "w");
  if (!ref_spec) exit(1);
  const char *seed = getenv("CG_TEST_SEED");
  if (seed && *seed) ref_rng = strtoull(seed, NULL, 10) * 2654435761ull + 1;
}

/* ref_init with fresh inputs each run: a seed from the clock (or CG_TEST_SEED, which then
 * replays that run's inputs), printed and returned. */
REF_FN uint64_t ref_init_seeded(void) {
  uint64_t seed = (uint64_t)time(NULL);
  if (getenv("CG_TEST_SEED")) seed = strtoull(getenv("CG_TEST_SEED"), NULL, 10);
  printf("seed %llu (CG_TEST_SEED to repeat)\n", (unsigned long long)seed);
  uint64_t base = ref_rng;
  ref_init(); /* it reads CG_TEST_SEED its own way: set the stream after it */
  ref_rng = base ^ seed * 0x9E3779B97F4A7C15ull;
  if (!ref_rng) ref_rng = 1;
  return seed;
}

REF_FN ref_case_t *ref_cur(void) { return &ref_cases[ref_n - 1]; }

/* Start a case; tolerances: |got - want| <= atol + rtol*|want|. */
REF_FN void ref_case(const char *name, double rtol, double atol) {
  if (ref_n == REF_MAX_CASES) {
    fprintf(stderr, "too many cases\n");
    exit(1);
  }
  ref_case_t *c = &ref_cases[ref_n++];
  memset(c, 0, sizeof *c);
  snprintf(c->name, sizeof c->name, "%s", name);
  c->rtol = rtol, c->atol = atol;
}

REF_FN void ref_spec_add(ref_case_t *c, char kind, const int64_t *shape, int nd, bool grad) {
  size_t at = strlen(c->spec);
  at += (size_t)snprintf(c->spec + at, sizeof c->spec - at, "%s%c:", c->nin ? "|" : "", kind);
  for (int i = 0; i < nd; i++) at += (size_t)snprintf(c->spec + at, sizeof c->spec - at, i ? ",%lld" : "%lld", (long long)shape[i]);
  snprintf(c->spec + at, sizeof c->spec - at, ":%s", grad ? "g" : "-");
}

/* Register an existing float32 or int64 tensor as the next input x[k] (realizes it). Its
 * gradient is compared when it requires grad (set it before calling, or pass grad). */
REF_FN cg_tensor *ref_tensor(cg_tensor *t, bool grad) {
  ref_case_t *c = ref_cur();
  int k = c->nin;
  if (k >= REF_MAX_IN) {
    fprintf(stderr, "%s: more than %d inputs (raise REF_MAX_IN)\n", c->name, REF_MAX_IN);
    exit(1);
  }
  int64_t n = cg_numel(t);
  cg_dtype dt = cg_dtype_of(t);
  if (grad) cg_set_requires_grad(t, true);
  void *buf = malloc((size_t)(n ? n : 1) * 8);
  cg_status st = cg_realize(t);
  if (st == CG_OK) st = cg_read(t, dt, buf, (size_t)n * cg_dtype_size(dt));
  CHECK(st == CG_OK, "%s: input %d: %s", c->name, k, cg_last_error());
  char fn[64];
  snprintf(fn, sizeof fn, "c%d_x%d.bin", ref_n - 1, k);
  ref_write(fn, buf, (size_t)n * cg_dtype_size(dt));
  free(buf);
  ref_spec_add(c, dt == CG_INT64 ? 'i' : 'f', cg_shape(t), cg_ndim(t), grad);
  c->in[k] = t, c->grad[k] = grad, c->n_in[k] = n;
  c->nin++;
  return t;
}

/* A new float32 input of shape "2,3,4" uniform in [lo, hi). */
REF_FN cg_tensor *ref_float(const char *shape, double lo, double hi, bool grad) {
  int64_t s[CG_MAX_DIMS];
  int nd = ref_parse(shape, s);
  int64_t n = 1;
  for (int i = 0; i < nd; i++) n *= s[i];
  float *v = malloc(sizeof(float) * (size_t)(n ? n : 1));
  for (int64_t i = 0; i < n; i++) v[i] = (float)ref_unif(lo, hi);
  cg_tensor *t = cg_from_data(v, CG_FLOAT32, s, nd);
  free(v);
  return ref_tensor(t, grad);
}

/* A new int64 input with values in [lo, hi). */
REF_FN cg_tensor *ref_int(const char *shape, int64_t lo, int64_t hi) {
  int64_t s[CG_MAX_DIMS];
  int nd = ref_parse(shape, s);
  int64_t n = 1;
  for (int i = 0; i < nd; i++) n *= s[i];
  int64_t *v = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
  for (int64_t i = 0; i < n; i++) v[i] = lo + (int64_t)ref_unif(0, (double)(hi - lo));
  cg_tensor *t = cg_from_data(v, CG_INT64, s, nd);
  free(v);
  return ref_tensor(t, false);
}

REF_FN double *ref_read_tensor(cg_tensor *t, int64_t *n_out) {
  int64_t n = cg_numel(t);
  cg_dtype dt = cg_dtype_of(t);
  double *d = malloc(sizeof(double) * (size_t)(n ? n : 1));
  void *buf = malloc((size_t)(n ? n : 1) * 8);
  cg_status st = cg_realize(t);
  if (st == CG_OK) st = cg_read(t, dt, buf, (size_t)n * cg_dtype_size(dt));
  if (st != CG_OK) {
    free(d), free(buf);
    return NULL;
  }
  for (int64_t i = 0; i < n; i++)
    d[i] = dt == CG_FLOAT32 ? ((float *)buf)[i] : dt == CG_INT64 ? (double)((int64_t *)buf)[i] : dt == CG_FLOAT64 ? ((double *)buf)[i] : NAN;
  free(buf);
  *n_out = n;
  return d;
}

/* The case's cgrad output y (float32) and the snippet that computes torch's `out`:
 * backpropagates a random W through y, reads y and the input gradients. Call ref_extra
 * after it for tensors compared with torch's `extra` list. */
REF_FN void ref_out(cg_tensor *y, const char *code) {
  ref_case_t *c = ref_cur();
  int id = ref_n - 1;
  fprintf(ref_spec, "c%d\t%s\t%s\n", id, c->spec, code);
  CHECK(y != NULL, "%s: %s", c->name, cg_last_error());
  if (!y) return;
  bool any = false;
  for (int k = 0; k < c->nin; k++) any |= c->grad[k];
  if (any) {
    int64_t n = cg_numel(y);
    float *w = malloc(sizeof(float) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) w[i] = (float)ref_unif(-1, 1);
    char fn[64];
    snprintf(fn, sizeof fn, "c%d_w.bin", id);
    ref_write(fn, w, sizeof(float) * (size_t)n);
    cg_tensor *wt = cg_from_data(w, CG_FLOAT32, cg_shape(y), cg_ndim(y));
    free(w);
    cg_status st = cg_backward_with(y, wt);
    CHECK(st == CG_OK, "%s: backward: %s", c->name, cg_last_error());
    if (st != CG_OK) return;
  }
  c->out = ref_read_tensor(y, &c->nout);
  CHECK(c->out != NULL, "%s: reading the output: %s", c->name, cg_last_error());
  c->ok = c->out != NULL;
  for (int k = 0; k < c->nin && c->ok; k++) {
    if (!c->grad[k]) continue;
    cg_tensor *g = cg_grad(c->in[k]);
    int64_t n = 0;
    c->g[k] = g ? ref_read_tensor(g, &n) : NULL;
    CHECK(c->g[k] != NULL, "%s: no gradient for input %d: %s", c->name, k, cg_last_error());
    c->ok = c->g[k] != NULL;
  }
}

REF_FN void ref_extra(cg_tensor *t) {
  ref_case_t *c = ref_cur();
  int k = c->nextra++;
  c->extra[k] = t ? ref_read_tensor(t, &c->n_extra[k]) : NULL;
  CHECK(c->extra[k] != NULL, "%s: reading extra %d: %s", c->name, k, cg_last_error());
}

static const char *REF_PY =
    "import sys, os\n"
    "try:\n"
    "    import numpy as np, torch\n"
    "    import torch.nn as nn, torch.nn.functional as F\n"
    "except Exception as e:\n"
    "    print('cannot import torch:', e); sys.exit(3)\n"
    "try:\n"
    "    from torch.func import functional_call as fc\n"
    "except Exception:\n"
    "    from torch.nn.utils.stateless import functional_call as fc\n"
    "torch.set_num_threads(1)\n"
    "d = sys.argv[1]\n"
    "def dump(t, name):\n"
    "    torch.as_tensor(t).detach().to(torch.float64).contiguous().numpy().tofile(os.path.join(d, name))\n"
    "for line in open(os.path.join(d, 'cases.txt')):\n"
    "    cid, spec, code = line.rstrip('\\n').split('\\t')\n"
    "    try:\n"
    "        x = []\n"
    "        for k, s in enumerate(spec.split('|') if spec else []):\n"
    "            kind, shp, g = s.split(':')\n"
    "            shape = [int(v) for v in shp.split(',')] if shp else []\n"
    "            a = np.fromfile(os.path.join(d, '%s_x%d.bin' % (cid, k)), dtype=np.int64 if kind == 'i' else np.float32).reshape(shape)\n"
    "            t = torch.from_numpy(a.copy())\n"
    "            x.append(t.requires_grad_() if g == 'g' else t)\n"
    "        env = dict(x=x, torch=torch, nn=nn, F=F, fc=fc, extra=[])\n"
    "        exec(code, env)\n"
    "        out = env['out']\n"
    "        if out.requires_grad:\n"
    "            w = np.fromfile(os.path.join(d, '%s_w.bin' % cid), dtype=np.float32).reshape(list(out.shape))\n"
    "            out.backward(torch.from_numpy(w.copy()))\n"
    "        dump(out, '%s_out' % cid)\n"
    "        for k, t in enumerate(x):\n"
    "            if t.requires_grad: dump(t.grad if t.grad is not None else torch.zeros_like(t), '%s_g%d' % (cid, k))\n"
    "        for k, e in enumerate(env['extra']): dump(e, '%s_e%d' % (cid, k))\n"
    "    except Exception as e:\n"
    "        print('torch failed on case', cid, ':', repr(e))\n";

/* Run torch on every case; false (with a note) if torch is not available. */
REF_FN bool ref_run_torch(void) {
  fclose(ref_spec);
  ref_spec = NULL;
  char path[160];
  snprintf(path, sizeof path, "%s/ref.py", ref_dir);
  FILE *f = fopen(path, "w");
  if (!f) return false;
  fputs(REF_PY, f);
  fclose(f);
  const char *py = getenv("CG_PYTHON");
  char cmd[512];
  snprintf(cmd, sizeof cmd, "%s %s %s", py && *py ? py : "/usr/bin/python3", path, ref_dir);
  int rc = system(cmd);
  if (rc == -1 || !WIFEXITED(rc) || WEXITSTATUS(rc) != 0) {
    printf("SKIP: torch comparisons (python/torch not available, exit %d)\n", rc == -1 ? -1 : WEXITSTATUS(rc));
    return false;
  }
  return true;
}

REF_FN void ref_cmp(ref_case_t *c, const char *what, const double *got, int64_t n, const char *file) {
  double *want = malloc(sizeof(double) * (size_t)(n ? n : 1));
  bool rd = ref_read(file, want, n);
  CHECK(rd, "%s: torch wrote no %s (%lld values)", c->name, what, (long long)n);
  int bad = 0;
  double worst = 0;
  for (int64_t i = 0; rd && i < n; i++) {
    double err = fabs(got[i] - want[i]), lim = c->atol + c->rtol * fabs(want[i]);
    bool ok = err <= lim || (isnan(got[i]) && isnan(want[i])) || (isinf(want[i]) && got[i] == want[i]);
    if (!ok) {
      if (bad < 3) fprintf(stderr, "  %s %s[%lld]: got %.9g, torch %.9g\n", c->name, what, (long long)i, got[i], want[i]);
      bad++;
    }
    if (lim > 0 && err / lim > worst) worst = err / lim;
  }
  CHECK(rd && bad == 0, "%s: %s: %d of %lld values differ from torch", c->name, what, bad, (long long)n);
  free(want);
}

REF_FN void ref_compare_all(void) {
  for (int i = 0; i < ref_n; i++) {
    ref_case_t *c = &ref_cases[i];
    char fn[64];
    if (!c->ok) continue;
    snprintf(fn, sizeof fn, "c%d_out", i);
    ref_cmp(c, "output", c->out, c->nout, fn);
    for (int k = 0; k < c->nin; k++) {
      if (!c->grad[k]) continue;
      char what[32];
      snprintf(fn, sizeof fn, "c%d_g%d", i, k);
      snprintf(what, sizeof what, "grad x[%d]", k);
      ref_cmp(c, what, c->g[k], c->n_in[k], fn);
    }
    for (int k = 0; k < c->nextra; k++) {
      if (!c->extra[k]) continue;
      char what[32];
      snprintf(fn, sizeof fn, "c%d_e%d", i, k);
      snprintf(what, sizeof what, "extra[%d]", k);
      ref_cmp(c, what, c->extra[k], c->n_extra[k], fn);
    }
  }
}

/* Compare (or skip), free everything and remove the temp dir. */
REF_FN void ref_finish(void) {
  if (ref_run_torch()) ref_compare_all();
  for (int i = 0; i < ref_n; i++) {
    ref_case_t *c = &ref_cases[i];
    free(c->out);
    for (int k = 0; k < REF_MAX_IN; k++) free(c->g[k]);
    for (int k = 0; k < REF_MAX_EXTRA; k++) free(c->extra[k]);
  }
  if (!getenv("CG_KEEP_TMP")) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", ref_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", ref_dir);
  } else {
    printf("kept %s\n", ref_dir);
  }
}

/* cg_last_error() contains every needle (NULL-terminated list). */
REF_FN bool ref_error_has(const char *const *needles) {
  const char *e = cg_last_error();
  for (; *needles; needles++)
    if (!strstr(e, *needles)) return false;
  return true;
}

#endif
