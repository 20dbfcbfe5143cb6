/* JIT replay vs eager: host time per training step and per kernel launch, on a small MLP
 * (Linear-BatchNorm-ReLU-Linear, Adam) whose kernels are tiny, so the time is almost all
 * host work: graph building, scheduling, cache lookups (eager) against binding buffers and
 * launching (replay). Same process, same threads; medians.
 *
 * Then the replay with a scalar that changes every call (kernel variables): the learning
 * rate set with cg_optimizer_set_lr (a var: no kernel, no buffer), and a per-call scalar
 * input (a gradient scale) passed three ways: a 0-d buffer made each call (cg_from_data: a
 * host allocation and copy), a var set each call (cg_variable_set), and a constant
 * (cg_full: the context's var). Each against the plain replay, in the same run; and, for
 * comparison, what cg_optimizer_set_lr did before vars: assign a 0-d float32 buffer from
 * host data and realize it (one tiny kernel, a schedule) before each call.
 *   usage: bench_jit [steps] [batch] */
#include "cgrad.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

typedef struct {
  cg_module *net;
  cg_optimizer *opt;
} model;

static cg_status step(cg_tensor *const *in, int n_in, cg_tensor **out, int n_out, void *user) {
  model *m = user;
  (void)n_in, (void)n_out;
  cg_optimizer_zero_grad(m->opt);
  cg_tensor *loss = cg_cross_entropy(cg_module_forward(m->net, in[0]), in[1], 0);
  cg_status st = loss ? cg_backward(loss) : cg_last_status();
  cg_tensor *run[32], *params[16];
  int nr = 0, np = cg_module_parameters(m->net, params, 16);
  run[nr++] = loss;
  for (int i = 0; i < np; i++) run[nr++] = cg_grad(params[i]);
  nr += cg_module_state(m->net, NULL, run + nr, 32 - nr); /* BatchNorm's running stats with the step */
  if (st == CG_OK) st = cg_realize_many(run, nr);
  if (st == CG_OK && n_in > 2) st = cg_assign(cg_grad(params[0]), cg_mul(cg_grad(params[0]), in[2])); /* a per-call scale */
  if (st == CG_OK) st = cg_optimizer_step(m->opt);
  out[0] = loss;
  return st;
}

/* Median seconds per replay of j over steps calls (after 3 warm-up calls); mode: 0 plain,
 * 1 + set_lr, 2 scalar as a fresh 0-d buffer, 3 as a var, 4 as a constant, 5 + the old
 * set_lr (an assign into a 0-d buffer, realized). */
static double replays(cg_jit *j, model *m, int mode, int steps, int64_t batch, double *t, uint64_t *compiled) {
  cg_tensor *g = cg_variable("g", 1, CG_FLOAT32), *old_lr = cg_zeros(CG_FLOAT32, NULL, 0);
  cg_realize(old_lr);
  uint64_t c0 = 0;
  for (int s = 0; s < steps + 3; s++) {
    if (s == 3) c0 = cg_get_stats().kernels_compiled + cg_get_stats().kernels_cached;
    cg_scope_begin();
    cg_tensor *x = cg_randn(CG_FLOAT32, (int64_t[]){batch, 32}, 2), *y = cg_randint(0, 10, &batch, 1), *out[1];
    cg_realize(x), cg_realize(y);
    float v = 1.0f + 0.001f * (float)s;
    double t0 = now();
    cg_tensor *in[3] = {x, y, NULL};
    if (mode == 1) cg_optimizer_set_lr(m->opt, 1e-3 * v);
    if (mode == 2) in[2] = cg_from_data(&v, CG_FLOAT32, NULL, 0);
    if (mode == 3) cg_variable_set(g, v), in[2] = g;
    if (mode == 4) in[2] = cg_full(v, CG_FLOAT32, NULL, 0);
    if (mode == 5) cg_assign(old_lr, cg_from_data(&v, CG_FLOAT32, NULL, 0)), cg_realize(old_lr);
    cg_status st = cg_jit_call(j, in, mode >= 2 && mode <= 4 ? 3 : 2, out);
    if (st == CG_OK) st = cg_realize(out[0]);
    if (s >= 3) t[s - 3] = now() - t0;
    cg_scope_end();
    if (st != CG_OK) {
      fprintf(stderr, "step failed: %s\n", cg_last_error());
      exit(1);
    }
  }
  cg_free(g), cg_free(old_lr);
  *compiled = cg_get_stats().kernels_compiled + cg_get_stats().kernels_cached - c0;
  qsort(t, (size_t)steps, sizeof *t, cmp);
  return t[steps / 2];
}

int main(int argc, char **argv) {
  int steps = argc > 1 ? atoi(argv[1]) : 200;
  int64_t batch = argc > 2 ? atoll(argv[2]) : 32;
  cg_manual_seed(1);
  cg_module *layers[] = {cg_linear(32, 64, true), cg_batchnorm(64, 1e-5, 0.1), cg_relu_layer(), cg_linear(64, 10, true)};
  model m = {cg_sequential(layers, 4), NULL};
  cg_tensor *params[16];
  int np = cg_module_parameters(m.net, params, 16);
  m.opt = cg_adam(params, np, 1e-3, 0.9, 0.999, 1e-8, 0);
  cg_jit *j = cg_jit_new(step, 1, &m);
  double *te = malloc(sizeof(double) * (size_t)steps), *tj = malloc(sizeof(double) * (size_t)steps);
  uint64_t k0 = 0, k1 = 0;
  for (int pass = 0; pass < 2; pass++)
    for (int s = 0; s < steps + 3; s++) {
      cg_scope_begin();
      cg_tensor *x = cg_randn(CG_FLOAT32, (int64_t[]){batch, 32}, 2), *y = cg_randint(0, 10, &batch, 1), *out[1];
      cg_realize(x), cg_realize(y);
      cg_tensor *in[2] = {x, y};
      uint64_t r0 = cg_get_stats().kernels_run;
      double t = now();
      cg_status st = pass == 0 ? step(in, 2, out, 1, &m) : cg_jit_call(j, in, 2, out);
      if (st == CG_OK) st = cg_realize(out[0]);
      t = now() - t;
      if (st != CG_OK) {
        fprintf(stderr, "step failed: %s\n", cg_last_error());
        return 1;
      }
      if (s >= 3) (pass == 0 ? te : tj)[s - 3] = t;
      if (s == 3) *(pass == 0 ? &k0 : &k1) = cg_get_stats().kernels_run - r0;
      cg_scope_end();
    }
  qsort(te, (size_t)steps, sizeof *te, cmp);
  qsort(tj, (size_t)steps, sizeof *tj, cmp);
  /* a replay launches without counting through realize: use the eager step's count */
  double me = te[steps / 2], mj = tj[steps / 2];
  printf("eager step: %.3f ms (%llu kernels, %.2f us per kernel)\n", 1e3 * me, (unsigned long long)k0, 1e6 * me / (double)k0);
  printf("jit replay: %.3f ms (%llu kernels, %.2f us per kernel)  -> %.1fx faster\n", 1e3 * mj, (unsigned long long)k0, 1e6 * mj / (double)k0, me / mj);
  (void)k1;
  /* a scalar changing every call; nothing may compile after each mode's 3 warm-up calls */
  static const char *const what[] = {"plain replay", "+ set_lr (a var)", "+ scalar input: 0-d buffer", "+ scalar input: var", "+ scalar input: constant", "+ old set_lr (0-d assign)"};
  double base = 0;
  for (int mode = 0; mode < 6; mode++) {
    uint64_t compiled = 0;
    double t = replays(j, &m, mode, steps, batch, tj, &compiled);
    if (mode == 0) base = t;
    printf("%-28s %.3f ms per call (%.2f us per kernel), %.2fx the plain replay; %llu compiles after warm-up\n", what[mode], 1e3 * t, 1e6 * t / (double)k0,
           t / base, (unsigned long long)compiled);
  }
  cg_jit_free(j);
  cg_optimizer_free(m.opt);
  cg_module_free(m.net);
  free(te), free(tj);
  return 0;
}
