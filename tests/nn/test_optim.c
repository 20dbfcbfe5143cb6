/* Optimizers against torch.optim: SGD (plain, momentum, dampening, Nesterov, weight decay),
 * Adam (with and without L2 decay), AdamW, and LAMB (against a torch transcription of
 * tinygrad's LAMB), one and ten steps on the same parameters and gradient sequences,
 * float32, relative error < 1e-5. The gradients are exact: loss = sum_i sum(p_i * G_i),
 * so d loss / d p_i = G_i, a fresh random G every step. The inputs go to a mkdtemp
 * directory as raw float32, /usr/bin/python3 (or CG_PYTHON) runs torch and writes the
 * parameters back; without torch the comparison is skipped with a note.
 *
 * Also: a learning-rate schedule compiles nothing (kernels_compiled stays flat against a
 * fresh kernel cache), the number of kernels a step launches, 30 parameters (more than
 * one cg_realize_many), and bad arguments. */
#include "check.h"
#include "cgrad.h"
#include <math.h>
#include <string.h>
#include <sys/wait.h>

enum { K_SGD, K_ADAM, K_ADAMW, K_LAMB };
static const char *const KNAMES[] = {"sgd", "adam", "adamw", "lamb"};
#define NSTEPS 10
#define MAXP 32

typedef struct {
  const char *name;
  int kind;
  double lr, mom, damp, wd;
  int nest;
  double b1, b2, eps;
  int sched; /* lr at step s (0-based) is lr / (1 + s) */
  int nparams; /* 0: two parameters (3, 4) and (5,); else that many of shape (2,) */
} ocase;

static const ocase CASES[] = {
    {"sgd", K_SGD, 0.1, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"sgd_wd", K_SGD, 0.1, 0, 0, 0.05, 0, 0, 0, 0, 0, 0},
    {"sgd_momentum", K_SGD, 0.05, 0.9, 0, 0, 0, 0, 0, 0, 0, 0},
    {"sgd_momentum_damp_wd", K_SGD, 0.05, 0.8, 0.3, 0.01, 0, 0, 0, 0, 0, 0},
    {"sgd_nesterov_wd", K_SGD, 0.05, 0.9, 0, 0.02, 1, 0, 0, 0, 0, 0},
    {"sgd_nesterov_sched", K_SGD, 0.05, 0.9, 0, 0, 1, 0, 0, 0, 1, 0},
    {"adam", K_ADAM, 0.01, 0, 0, 0, 0, 0.9, 0.999, 1e-8, 0, 0},
    {"adam_wd", K_ADAM, 0.01, 0, 0, 0.1, 0, 0.8, 0.99, 1e-6, 0, 0},
    {"adam_sched", K_ADAM, 0.02, 0, 0, 0, 0, 0.9, 0.999, 1e-8, 1, 0},
    {"adamw", K_ADAMW, 0.01, 0, 0, 0.1, 0, 0.9, 0.999, 1e-8, 0, 0},
    {"adamw_sched", K_ADAMW, 0.01, 0, 0, 0.5, 0, 0.9, 0.98, 1e-7, 1, 0},
    {"lamb", K_LAMB, 0.01, 0, 0, 0, 0, 0.9, 0.999, 1e-6, 0, 0},
    {"lamb_wd", K_LAMB, 0.02, 0, 0, 0.1, 0, 0.85, 0.99, 1e-6, 0, 0},
    {"adam_30_params", K_ADAM, 0.01, 0, 0, 0.01, 0, 0.9, 0.999, 1e-8, 0, 30},
    {"lamb_30_params", K_LAMB, 0.01, 0, 0, 0.01, 0, 0.9, 0.999, 1e-6, 0, 30},
};
#define NCASES ((int)(sizeof CASES / sizeof CASES[0]))

static const char PY[] =
    "import os, sys\n"
    "try:\n"
    "    import numpy as np, torch\n"
    "except Exception as e:\n"
    "    print('cannot import torch:', e); sys.exit(3)\n"
    "d = sys.argv[1]\n"
    "def rd(n, shape): return torch.from_numpy(np.fromfile(os.path.join(d, n), dtype=np.float32).reshape(shape))\n"
    "def lamb_step(ps, st, lr, b1, b2, eps, wd):\n"
    "    st['t'] += 1; t = st['t']\n"
    "    for i, p in enumerate(ps):\n"
    "        g, m, v = p.grad, st['m'][i], st['v'][i]\n"
    "        m.mul_(b1).add_(g, alpha=1 - b1)\n"
    "        v.mul_(b2).addcmul_(g, g, value=1 - b2)\n"
    "        u = (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt() + eps) + wd * p.detach()\n"
    "        r1, r2 = p.detach().square().sum().sqrt(), u.square().sum().sqrt()\n"
    "        r = torch.where(r1 > 0, torch.where(r2 > 0, r1 / r2, torch.ones_like(r1)), torch.ones_like(r1))\n"
    "        p.data.sub_(lr * r * u)\n"
    "for line in open(os.path.join(d, 'cases.txt')):\n"
    "    f = line.split()\n"
    "    name, kind = f[0], f[1]\n"
    "    lr, mom, damp, wd, nest, b1, b2, eps = map(float, f[2:10])\n"
    "    sched, nsteps = int(f[10]), int(f[11])\n"
    "    shapes = [tuple(int(x) for x in s.split(',')) for s in f[12].split(';')]\n"
    "    ps = [rd('p_%s_%d.bin' % (name, i), s).clone().requires_grad_() for i, s in enumerate(shapes)]\n"
    "    if kind == 'sgd': opt = torch.optim.SGD(ps, lr=lr, momentum=mom, dampening=damp, weight_decay=wd, nesterov=bool(nest))\n"
    "    elif kind == 'adam': opt = torch.optim.Adam(ps, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)\n"
    "    elif kind == 'adamw': opt = torch.optim.AdamW(ps, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)\n"
    "    else: st = {'t': 0, 'm': [torch.zeros_like(p) for p in ps], 'v': [torch.zeros_like(p) for p in ps]}\n"
    "    for s in range(nsteps):\n"
    "        cur = lr / (1 + s) if sched else lr\n"
    "        for i, p in enumerate(ps): p.grad = rd('g_%s_%d_%d.bin' % (name, s, i), shapes[i]).clone()\n"
    "        if kind == 'lamb':\n"
    "            with torch.no_grad(): lamb_step(ps, st, cur, b1, b2, eps, wd)\n"
    "        else:\n"
    "            for grp in opt.param_groups: grp['lr'] = cur\n"
    "            opt.step()\n"
    "        if s + 1 in (1, nsteps):\n"
    "            for i, p in enumerate(ps): p.detach().numpy().astype(np.float32).tofile(os.path.join(d, 'r_%s_%d_%d.bin' % (name, s + 1, i)))\n";

static char g_dir[64];

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float frand(void) { /* uniform in [-1, 1) */
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (float)((double)(rng >> 11) / 9007199254740992.0 * 2 - 1);
}

static bool write_f32(const char *name, const float *v, int64_t n) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", g_dir, name);
  FILE *f = fopen(path, "wb");
  if (!f) return false;
  bool ok = fwrite(v, sizeof(float), (size_t)n, f) == (size_t)n;
  return fclose(f) == 0 && ok;
}
static bool read_f32(const char *name, float *v, int64_t n) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", g_dir, name);
  FILE *f = fopen(path, "rb");
  if (!f) return false;
  bool ok = fread(v, sizeof(float), (size_t)n, f) == (size_t)n;
  fclose(f);
  return ok;
}

typedef struct {
  int np;
  int64_t shape[MAXP][2];
  int ndim[MAXP];
  int64_t numel[MAXP];
  float *got[2][MAXP]; /* parameters after step 1 and after NSTEPS */
} result;
static result g_res[NCASES];

static void case_shapes(const ocase *c, result *r, char *spec, size_t n) {
  size_t at = 0;
  spec[0] = 0;
  r->np = c->nparams ? c->nparams : 2;
  for (int i = 0; i < r->np; i++) {
    if (!c->nparams && i == 0) r->ndim[i] = 2, r->shape[i][0] = 3, r->shape[i][1] = 4;
    else r->ndim[i] = 1, r->shape[i][0] = c->nparams ? 2 : 5;
    r->numel[i] = r->ndim[i] == 2 ? r->shape[i][0] * r->shape[i][1] : r->shape[i][0];
    at += (size_t)snprintf(spec + at, n - at, "%s%lld", i ? ";" : "", (long long)r->shape[i][0]);
    if (r->ndim[i] == 2) at += (size_t)snprintf(spec + at, n - at, ",%lld", (long long)r->shape[i][1]);
  }
}

static cg_optimizer *make_opt(const ocase *c, cg_tensor **ps, int np) {
  switch (c->kind) {
  case K_SGD: return cg_sgd(ps, np, c->lr, c->mom, c->damp, c->wd, c->nest);
  case K_ADAM: return cg_adam(ps, np, c->lr, c->b1, c->b2, c->eps, c->wd);
  case K_ADAMW: return cg_adamw(ps, np, c->lr, c->b1, c->b2, c->eps, c->wd);
  default: return cg_lamb(ps, np, c->lr, c->b1, c->b2, c->eps, c->wd);
  }
}

/* One backward of loss = sum_i sum(p_i * G_i): the gradient of p_i is exactly G_i. */
static cg_status set_grads(cg_tensor **ps, int np, float *const *gs, const result *r) {
  cg_tensor *loss = NULL;
  for (int i = 0; i < np; i++) {
    cg_tensor *g = cg_from_data(gs[i], CG_FLOAT32, r->shape[i], r->ndim[i]);
    cg_tensor *term = cg_sum(cg_mul(ps[i], g), NULL, 0, false);
    loss = loss ? cg_add(loss, term) : term;
  }
  return cg_backward(loss);
}

static void run_case(int ci, FILE *spec) {
  const ocase *c = &CASES[ci];
  result *r = &g_res[ci];
  char shapes[512];
  case_shapes(c, r, shapes, sizeof shapes);
  fprintf(spec, "%s %s %.17g %.17g %.17g %.17g %d %.17g %.17g %.17g %d %d %s\n", c->name, KNAMES[c->kind], c->lr, c->mom, c->damp,
          c->wd, c->nest, c->b1, c->b2, c->eps, c->sched, NSTEPS, shapes);
  cg_tensor *ps[MAXP];
  char name[128];
  for (int i = 0; i < r->np; i++) {
    float v[64];
    for (int64_t k = 0; k < r->numel[i]; k++) v[k] = frand();
    snprintf(name, sizeof name, "p_%s_%d.bin", c->name, i);
    write_f32(name, v, r->numel[i]);
    ps[i] = cg_from_data(v, CG_FLOAT32, r->shape[i], r->ndim[i]);
    cg_set_requires_grad(ps[i], true);
  }
  cg_optimizer *o = make_opt(c, ps, r->np);
  CHECK(o != NULL, "%s: %s", c->name, cg_last_error());
  for (int s = 0; o && s < NSTEPS; s++) {
    float gbuf[MAXP][64], *gs[MAXP];
    for (int i = 0; i < r->np; i++) {
      gs[i] = gbuf[i];
      for (int64_t k = 0; k < r->numel[i]; k++) gbuf[i][k] = frand();
      snprintf(name, sizeof name, "g_%s_%d_%d.bin", c->name, s, i);
      write_f32(name, gbuf[i], r->numel[i]);
    }
    cg_scope_begin();
    if (c->sched) CHECK(cg_optimizer_set_lr(o, c->lr / (1 + s)) == CG_OK, "%s: %s", c->name, cg_last_error());
    cg_optimizer_zero_grad(o);
    CHECK(set_grads(ps, r->np, gs, r) == CG_OK, "%s: backward: %s", c->name, cg_last_error());
    cg_status st = cg_optimizer_step(o);
    CHECK(st == CG_OK, "%s: step %d: %s", c->name, s + 1, cg_last_error());
    cg_scope_end();
    if (s + 1 == 1 || s + 1 == NSTEPS)
      for (int i = 0; i < r->np; i++) {
        float *dst = r->got[s + 1 == 1 ? 0 : 1][i] = malloc(sizeof(float) * (size_t)r->numel[i]);
        CHECK(cg_read(ps[i], CG_FLOAT32, dst, sizeof(float) * (size_t)r->numel[i]) == CG_OK, "%s: %s", c->name, cg_last_error());
      }
  }
  CHECK(!o || cg_optimizer_steps(o) == NSTEPS, "%s: %lld steps", c->name, (long long)cg_optimizer_steps(o));
  cg_optimizer_free(o);
  for (int i = 0; i < r->np; i++) cg_free(ps[i]);
}

/* |got - want| <= 1e-5 |want|, with |want| floored at 1e-3 (parameters are O(1)). */
static void compare(int ci) {
  const ocase *c = &CASES[ci];
  result *r = &g_res[ci];
  for (int w = 0; w < 2; w++) {
    int step = w ? NSTEPS : 1;
    double worst = 0;
    for (int i = 0; i < r->np; i++) {
      float want[64];
      char name[128];
      snprintf(name, sizeof name, "r_%s_%d_%d.bin", c->name, step, i);
      bool ok = read_f32(name, want, r->numel[i]);
      CHECK(ok, "%s: torch wrote no %s", c->name, name);
      if (!ok || !r->got[w][i]) continue;
      for (int64_t k = 0; k < r->numel[i]; k++) {
        double e = fabs((double)r->got[w][i][k] - want[k]) / fmax(fabs((double)want[k]), 1e-3);
        if (e > worst) worst = e;
        if (!(e < 1e-5))
          CHECK(e < 1e-5, "%s: after %d step%s, param %d [%lld]: cgrad %.9g, torch %.9g (rel %.3g)", c->name, step, step > 1 ? "s" : "",
                i, (long long)k, r->got[w][i][k], want[k], e);
      }
    }
    CHECK(worst < 1e-5);
    printf("  %-22s %2d step%s  max rel err %.2e\n", c->name, step, step > 1 ? "s" : " ", worst);
  }
}

/* ---- kernels per step, and a schedule that compiles nothing ------------------------- */

/* The kernels a step launches today: per parameter, SGD 1, with momentum 2 (the buffer,
 * the parameter), Adam/AdamW 3 (m, v, parameter) plus 2 for beta^t, LAMB 5 (m, v, two
 * norms, parameter) plus 2. The state and the parameters run in two realizes until the
 * scheduler's merge of assigns is fixed (see OPTIM_STATE_FIRST in optim.c). */
static void kernels_per_step(const char *what, cg_optimizer *(*mk)(cg_tensor **, int), int per_param, int extra) {
  enum { NP = 3 };
  int64_t shapes[NP][2] = {{4, 8}, {8}, {16, 2}};
  int ndims[NP] = {2, 1, 2};
  cg_tensor *ps[NP];
  cg_manual_seed(7);
  for (int i = 0; i < NP; i++) {
    ps[i] = cg_randn(CG_FLOAT32, shapes[i], ndims[i]);
    cg_set_requires_grad(ps[i], true);
  }
  cg_optimizer *o = mk(ps, NP);
  CHECK(o != NULL, "%s: %s", what, cg_last_error());
  if (!o) return;
  uint64_t runs[6] = {0}, compiled_before = 0, compiled_start = cg_get_stats().kernels_compiled;
  for (int s = 0; s < 6; s++) {
    cg_scope_begin();
    if (s == 3) compiled_before = cg_get_stats().kernels_compiled;
    if (s >= 2) CHECK(cg_optimizer_set_lr(o, 0.01 / (s + 1)) == CG_OK, "%s", cg_last_error());
    cg_optimizer_zero_grad(o);
    cg_tensor *loss = NULL;
    for (int i = 0; i < NP; i++) {
      cg_tensor *t = cg_sum(cg_mul(cg_mul(ps[i], ps[i]), cg_scalar(0.5 + i)), NULL, 0, false);
      loss = loss ? cg_add(loss, t) : t;
    }
    CHECK(cg_backward(loss) == CG_OK, "%s", cg_last_error());
    cg_tensor *gs[NP];
    for (int i = 0; i < NP; i++) gs[i] = cg_grad(ps[i]);
    CHECK(cg_realize_many(gs, NP) == CG_OK, "%s", cg_last_error()); /* count the step alone */
    uint64_t k0 = cg_get_stats().kernels_run;
    CHECK(cg_optimizer_step(o) == CG_OK, "%s: %s", what, cg_last_error());
    runs[s] = cg_get_stats().kernels_run - k0;
    cg_scope_end();
  }
  uint64_t compiled_after = cg_get_stats().kernels_compiled;
  printf("  %-22s kernels per step: %llu, %llu, %llu (%d parameters); compiled in steps 1-3: %llu, in steps 4-6 (lr changed each): %llu\n", what,
         (unsigned long long)runs[0], (unsigned long long)runs[1], (unsigned long long)runs[5], NP,
         (unsigned long long)(compiled_before - compiled_start), (unsigned long long)(compiled_after - compiled_before));
  for (int s = 0; s < 6; s++)
    CHECK(runs[s] <= (uint64_t)(per_param * NP + extra), "%s: step %d ran %llu kernels, expected at most %d", what, s + 1,
          (unsigned long long)runs[s], per_param * NP + extra);
  CHECK(compiled_after == compiled_before, "%s: changing the learning rate compiled %llu kernels", what,
        (unsigned long long)(compiled_after - compiled_before));
  double lr = cg_optimizer_get_lr(o);
  CHECK(fabs(lr - 0.01 / 6) < 1e-12, "%g", lr);
  cg_optimizer_free(o);
  for (int i = 0; i < NP; i++) cg_free(ps[i]);
}

static cg_optimizer *mk_sgd(cg_tensor **p, int n) { return cg_sgd(p, n, 0.01, 0, 0, 0, false); }
static cg_optimizer *mk_sgdn(cg_tensor **p, int n) { return cg_sgd(p, n, 0.01, 0.9, 0, 1e-4, true); }
static cg_optimizer *mk_adam(cg_tensor **p, int n) { return cg_adam(p, n, 0.01, 0.9, 0.999, 1e-8, 0); }
static cg_optimizer *mk_adamw(cg_tensor **p, int n) { return cg_adamw(p, n, 0.01, 0.9, 0.999, 1e-8, 0.01); }
static cg_optimizer *mk_lamb(cg_tensor **p, int n) { return cg_lamb(p, n, 0.01, 0.9, 0.999, 1e-6, 0.01); }

/* ---- bad arguments --------------------------------------------------------------------- */

static void expect_err(void *got, const char *want, int line) {
  const char *msg = cg_last_error();
  CHECK(got == NULL && strstr(msg, want) != NULL, "line %d: expected an error containing '%s', got %p '%s'", line, want, got, msg);
}
#define EXPECT_ERR(call, want) (cg_clear_error(), expect_err((void *)(call), want, __LINE__))

static void bad_arguments(void) {
  int64_t s[1] = {3};
  cg_tensor *p = cg_zeros(CG_FLOAT32, s, 1), *q = cg_zeros(CG_INT32, s, 1);
  cg_tensor *ps[2] = {p, p}, *qs[1] = {q}, *nul[1] = {NULL};
  EXPECT_ERR(cg_sgd(ps, 0, 0.1, 0, 0, 0, false), "at least one parameter");
  EXPECT_ERR(cg_sgd(nul, 1, 0.1, 0, 0, 0, false), "parameter 0 is NULL");
  EXPECT_ERR(cg_sgd(qs, 1, 0.1, 0, 0, 0, false), "expected a floating-point tensor, got int32");
  EXPECT_ERR(cg_sgd(ps, 2, 0.1, 0, 0, 0, false), "each parameter once");
  EXPECT_ERR(cg_sgd(ps, 1, -1, 0, 0, 0, false), "learning rate >= 0, got -1");
  EXPECT_ERR(cg_sgd(ps, 1, 0.1, 0, 0, 0, true), "Nesterov momentum expects momentum > 0 and dampening 0");
  EXPECT_ERR(cg_sgd(ps, 1, 0.1, 0.9, 0.1, 0, true), "dampening 0.1");
  EXPECT_ERR(cg_adam(ps, 1, 0.1, 1.0, 0.999, 1e-8, 0), "expected 0 <= beta1 < 1, got 1");
  EXPECT_ERR(cg_adamw(ps, 1, 0.1, 0.9, -0.5, 1e-8, 0), "beta2 < 1, got -0.5");
  EXPECT_ERR(cg_lamb(ps, 1, 0.1, 0.9, 0.999, NAN, 0), "eps >= 0, got nan");
  CHECK(cg_optimizer_step(NULL) == CG_ERR_INVALID);
  cg_optimizer *o = cg_adam(ps, 1, 0.1, 0.9, 0.999, 1e-8, 0);
  CHECK(o != NULL, "%s", cg_last_error());
  CHECK(cg_optimizer_set_lr(o, INFINITY) == CG_ERR_INVALID && strstr(cg_last_error(), "got inf"), "%s", cg_last_error());
  /* a step before any backward: no gradient, nothing changes (torch skips grad None) */
  CHECK(cg_optimizer_step(o) == CG_OK, "%s", cg_last_error());
  float v[3];
  CHECK(cg_read(p, CG_FLOAT32, v, sizeof v) == CG_OK && v[0] == 0 && v[2] == 0);
  cg_optimizer_zero_grad(o);
  cg_optimizer_free(o);
  cg_optimizer_free(NULL);
  cg_free(p), cg_free(q);
}

/* The optimizer's state survives a scope it was made in. */
static void made_in_scope(void) {
  int64_t s[1] = {4};
  float one[4] = {1, 2, 3, 4};
  cg_tensor *p = cg_from_data(one, CG_FLOAT32, s, 1);
  cg_set_requires_grad(p, true);
  cg_scope_begin();
  cg_optimizer *o = cg_sgd(&p, 1, 0.5, 0.9, 0, 0, false);
  cg_scope_end();
  CHECK(o != NULL, "%s", cg_last_error());
  for (int k = 0; k < 2 && o; k++) {
    cg_scope_begin();
    CHECK(cg_backward(cg_sum(p, NULL, 0, false)) == CG_OK, "%s", cg_last_error());
    CHECK(cg_optimizer_step(o) == CG_OK, "%s", cg_last_error());
    cg_optimizer_zero_grad(o);
    cg_scope_end();
  }
  float v[4];
  /* g = 1: step 1 buf 1, p -= 0.5; step 2 buf 1.9, p -= 0.95 */
  CHECK(cg_read(p, CG_FLOAT32, v, sizeof v) == CG_OK && fabsf(v[0] - (1 - 0.5f - 0.95f)) < 1e-6f, "%g", v[0]);
  cg_optimizer_free(o);
  cg_free(p);
}

int main(void) {
  snprintf(g_dir, sizeof g_dir, "/tmp/cg_optim_XXXXXX");
  if (!mkdtemp(g_dir)) {
    CHECK(0, "mkdtemp failed");
    return test_summary();
  }
  /* a fresh kernel cache: kernels_compiled then counts every new kernel source */
  char path[256];
  snprintf(path, sizeof path, "%s/cache", g_dir);
  cg_set_config("CG_CACHE_DIR", path);

  bad_arguments();
  made_in_scope();
  printf("kernels per optimizer step:\n");
  kernels_per_step("sgd", mk_sgd, 1, 0);
  kernels_per_step("sgd nesterov + wd", mk_sgdn, 2, 0);
  kernels_per_step("adam", mk_adam, 3, 2);
  kernels_per_step("adamw", mk_adamw, 3, 2);
  kernels_per_step("lamb", mk_lamb, 5, 2);

  snprintf(path, sizeof path, "%s/cases.txt", g_dir);
  FILE *spec = fopen(path, "w");
  CHECK(spec != NULL, "cannot write %s", path);
  if (!spec) return test_summary();
  for (int i = 0; i < NCASES; i++) run_case(i, spec);
  fclose(spec);
  snprintf(path, sizeof path, "%s/optim.py", g_dir);
  FILE *f = fopen(path, "w");
  if (f) {
    fputs(PY, f);
    fclose(f);
    const char *py = getenv("CG_PYTHON");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s %s %s", py && *py ? py : "/usr/bin/python3", path, g_dir);
    int rc = system(cmd);
    if (rc != 0 && (!WIFEXITED(rc) || WEXITSTATUS(rc) == 3 || WEXITSTATUS(rc) == 127)) {
      printf("note: torch is not available (%s exited with %d); the comparison with torch.optim is skipped\n", cmd, rc);
    } else {
      CHECK(rc == 0, "%s failed with %d", cmd, rc);
      printf("against torch.optim (float32):\n");
      if (rc == 0)
        for (int i = 0; i < NCASES; i++) compare(i);
    }
  }
  for (int i = 0; i < NCASES; i++)
    for (int w = 0; w < 2; w++)
      for (int k = 0; k < MAXP; k++) free(g_res[i].got[w][k]);
  snprintf(path, sizeof path, "rm -rf '%s'", g_dir);
  if (system(path) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
  return test_summary();
}
