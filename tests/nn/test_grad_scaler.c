/* Dynamic loss scaling (cg_grad_scaler, cg_optimizer_step_lazy_unless) on an fp16-autocast
 * MLP trained with clipping and AdamW, then SGD with momentum and dampening (whose first
 * step differs: after skipped first steps, the next taken one is a first step), its step
 * one cg_jit function. Overflows are forced:
 * a huge initial scale (the float16 casts of the scaled gradients overflow until the scale
 * has been halved enough) and a poisoned batch (a target of 1e30). Checks:
 *   - a skipped step changes no parameter, moment or step count (bit for bit), a clean one
 *     changes them and counts;
 *   - the scale follows GradScaler's rules (x0.5 on a skip, x2 after `interval` clean steps
 *     in a row), replayed here on the host from the skip flags; the first step and the
 *     poisoned one skip; the scale grows at least once;
 *   - the reference: the same model stepped eagerly with plain cg_optimizer_step (no
 *     scaler, no mask, no JIT) on the clean steps' batches alone, each with the constant
 *     scale that step had: losses and final parameters and moments equal bit for bit
 *     (a power-of-two scale and its inverse are exact, so the two compute the same
 *     numbers; a skipped step that left anything behind, the Adam count included, shows);
 *   - JIT=0 gives the JIT's losses, norms and parameters bit for bit, and the JIT replayed;
 *   - bad arguments: a message, no crash. */
#include "cgrad.h"
#include "check.h"
#include <time.h>

enum { B = 16, I = 8, H = 32, O = 4, NP = 4, STEPS = 22, INTERVAL = 2, POISON = 15 };
static const int64_t shp[NP][2] = {{H, I}, {H, 1}, {O, H}, {O, 1}};
static const int nd[NP] = {2, 1, 2, 1};
static float init[NP][H * I];
static float xs[STEPS][B * I], ys[STEPS][B * O];
static uint64_t rng;
static float frand(void) { /* U(-1, 1) */
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((rng >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}

typedef struct {
  cg_tensor *p[NP];
  cg_optimizer *opt;
  cg_grad_scaler *s;
} mlp;

static cg_tensor *low(cg_tensor *t) { return cg_cast(cg_cast(t, CG_FLOAT16), CG_FLOAT32); }
static cg_tensor *loss_of(mlp *m, cg_tensor *x, cg_tensor *y) {
  cg_tensor *h = cg_tanh(cg_linear_fn(low(x), low(m->p[0]), m->p[1]));
  return cg_mse_loss(cg_linear_fn(low(h), low(m->p[2]), m->p[3]), y);
}

static int kind; /* 0: AdamW; 1: SGD with momentum and dampening (its first step copies the gradient) */
static bool make(mlp *m, double init_scale) {
  for (int i = 0; i < NP; i++) {
    m->p[i] = cg_from_data(init[i], CG_FLOAT32, shp[i], nd[i]);
    if (!m->p[i] || cg_set_requires_grad(m->p[i], true) != CG_OK) return false;
  }
  m->opt = kind ? cg_sgd(m->p, NP, 1e-2, 0.9, 0.25, 0.01, false) : cg_adamw(m->p, NP, 1e-2, 0.9, 0.95, 1e-8, 0.1);
  m->s = init_scale > 0 ? cg_grad_scaler_new(init_scale, 2, 0.5, INTERVAL) : NULL;
  return m->opt && (init_scale <= 0 || m->s);
}
static void drop(mlp *m) {
  cg_grad_scaler_free(m->s), cg_optimizer_free(m->opt);
  for (int i = 0; i < NP; i++) cg_free(m->p[i]);
}

/* the JIT'd step: (x, y) -> (loss, norm of the unscaled gradients before clipping) */
static cg_status step_fn(cg_tensor *const *in, int n_in, cg_tensor **out, int n_out, void *user) {
  (void)n_in, (void)n_out;
  mlp *m = user;
  cg_tensor *loss = loss_of(m, in[0], in[1]), *skip = NULL, *gn = NULL, *const *pend = NULL;
  int np = 0;
  cg_status st = loss ? cg_backward(cg_grad_scaler_scale(m->s, loss)) : cg_last_status();
  if (st == CG_OK && !(skip = cg_grad_scaler_unscale(m->s, m->p, NP))) st = cg_last_status();
  if (st == CG_OK && !(gn = cg_clip_grad_norm(m->p, NP, 1.0))) st = cg_last_status();
  if (st == CG_OK) st = cg_optimizer_step_lazy_unless(m->opt, skip, &pend, &np);
  cg_tensor *run[2 + 3 * NP] = {loss, gn};
  for (int i = 0; i < np; i++) run[2 + i] = pend[i];
  if (st == CG_OK) st = cg_realize_many(run, 2 + np);
  cg_optimizer_zero_grad(m->opt);
  out[0] = loss, out[1] = gn;
  return st;
}

/* parameters then optimizer state, as float32s (SGD's momentum buffers: a third less) */
enum { NV = 3 * (H * I + H + O * H + O) };
static bool snapshot(mlp *m, float *v) {
  cg_tensor *st[2 * NP];
  int ns = kind ? NP : 2 * NP, k = 0;
  if (cg_optimizer_state(m->opt, NULL, st, 2 * NP) != ns) return false;
  memset(v, 0, sizeof(float) * NV);
  for (int i = 0; i < NP + ns; i++) {
    cg_tensor *t = i < NP ? m->p[i] : st[i - NP];
    size_t n = (size_t)cg_numel(t);
    if (cg_read(t, CG_FLOAT32, v + k, n * sizeof(float)) != CG_OK) return false;
    k += (int)n;
  }
  return k == (kind ? NV / 3 * 2 : NV);
}

typedef struct {
  float loss[STEPS], norm[STEPS];
  double scale[STEPS]; /* before the step */
  bool skipped[STEPS];
  float final[NV];
  int64_t replays;
} trace;

static void run_scaled(trace *t, double init_scale) {
  mlp m;
  CHECK(make(&m, init_scale), "model: %s", cg_last_error());
  cg_jit *j = cg_jit_new(step_fn, 2, &m);
  static float before[NV], after[NV];
  for (int k = 0; k < STEPS; k++) {
    cg_scope_begin();
    cg_tensor *in[2] = {cg_from_data(xs[k], CG_FLOAT32, (int64_t[]){B, I}, 2), cg_from_data(ys[k], CG_FLOAT32, (int64_t[]){B, O}, 2)}, *out[2] = {0};
    int64_t t0 = cg_optimizer_steps(m.opt);
    t->scale[k] = cg_grad_scaler_get_scale(m.s);
    CHECK(snapshot(&m, before), "snapshot: %s", cg_last_error());
    cg_status st = cg_jit_call(j, in, 2, out);
    CHECK(st == CG_OK, "step %d: %s", k, cg_last_error());
    t->loss[k] = st == CG_OK ? (float)cg_item(out[0]) : NAN, t->norm[k] = st == CG_OK ? (float)cg_item(out[1]) : NAN;
    t->skipped[k] = !isfinite(t->norm[k]);
    CHECK(cg_grad_scaler_update(m.s, t->skipped[k], &m.opt, 1) == CG_OK, "update: %s", cg_last_error());
    CHECK(snapshot(&m, after), "snapshot: %s", cg_last_error());
    int64_t t1 = cg_optimizer_steps(m.opt);
    if (t->skipped[k]) {
      CHECK(!memcmp(before, after, sizeof before), "step %d skipped, but a parameter or moment changed", k);
      CHECK(t1 == t0, "step %d skipped, but the step count went %lld -> %lld", k, (long long)t0, (long long)t1);
    } else {
      CHECK(memcmp(before, after, sizeof before) != 0, "step %d taken, but nothing changed", k);
      CHECK(t1 == t0 + 1, "step %d taken: step count %lld -> %lld", k, (long long)t0, (long long)t1);
    }
    cg_scope_end();
  }
  CHECK(snapshot(&m, t->final), "snapshot");
  t->replays = cg_jit_stats(j).replays;
  cg_jit_free(j);
  drop(&m);
}

int main(void) {
  rng = (uint64_t)test_env_long("CG_TEST_SEED", (long)time(NULL));
  printf("seed %llu (CG_TEST_SEED to repeat)\n", (unsigned long long)rng);
  for (int i = 0; i < NP; i++)
    for (int k = 0; k < shp[i][0] * (nd[i] == 2 ? shp[i][1] : 1); k++) init[i][k] = frand() * (nd[i] == 2 ? 0.5f : 0.1f);
  for (int s = 0; s < STEPS; s++) {
    for (int k = 0; k < B * I; k++) xs[s][k] = frand() * 2;
    for (int k = 0; k < B * O; k++) ys[s][k] = frand();
  }
  ys[POISON][3] = 1e30f; /* its loss and gradients overflow whatever the scale */
  const double init_scale = 1 << 30;
  for (kind = 0; kind < 2; kind++) {
    printf("%s\n", kind ? "SGD, momentum 0.9, dampening 0.25" : "AdamW");
    static trace a, e;
    run_scaled(&a, init_scale);
    /* the scale, replayed on the host from the skip flags */
    double want = init_scale;
    int good = 0, nskip = 0, grew = 0;
    for (int k = 0; k < STEPS; k++) {
      CHECK(a.scale[k] == want, "step %d ran at scale %g, GradScaler's rules give %g", k, a.scale[k], want);
      printf("step %2d scale %-12g loss %-12.7g norm %-12.7g%s\n", k, a.scale[k], a.loss[k], a.norm[k], a.skipped[k] ? " skipped" : "");
      if (a.skipped[k]) want *= 0.5, good = 0, nskip++;
      else if (++good == INTERVAL) want *= 2, good = 0, grew++;
    }
    CHECK(a.skipped[0], "the first step at scale 2^30 must overflow float16");
    CHECK(a.skipped[POISON], "the poisoned batch (step %d) must be skipped", POISON);
    CHECK(grew >= 1 && nskip < STEPS - 4, "expected the scale to settle and grow: %d skips, %d growths", nskip, grew);
    CHECK(a.replays >= STEPS - 2, "the step replayed %lld times in %d calls", (long long)a.replays, STEPS);

    /* the reference: plain eager steps on the clean batches, each at its constant scale */
    {
      mlp m;
      CHECK(make(&m, 0), "reference model: %s", cg_last_error());
      for (int k = 0; k < STEPS; k++) {
        if (a.skipped[k]) continue;
        cg_scope_begin();
        cg_tensor *x = cg_from_data(xs[k], CG_FLOAT32, (int64_t[]){B, I}, 2), *y = cg_from_data(ys[k], CG_FLOAT32, (int64_t[]){B, O}, 2);
        cg_tensor *loss = loss_of(&m, x, y);
        CHECK(cg_backward(cg_mul(loss, cg_scalar(a.scale[k]))) == CG_OK && cg_scale_grads(m.p, NP, cg_scalar(1 / a.scale[k])) == CG_OK, "ref backward");
        cg_tensor *gn = cg_clip_grad_norm(m.p, NP, 1.0);
        float l = (float)cg_item(loss), n = (float)cg_item(gn); /* before the step overwrites the weights they read */
        CHECK(gn && cg_optimizer_step(m.opt) == CG_OK, "ref step %d: %s", k, cg_last_error());
        CHECK(f32_bits(l) == f32_bits(a.loss[k]) && f32_bits(n) == f32_bits(a.norm[k]), "step %d: loss %.9g norm %.9g, the plain step's %.9g %.9g", k,
              a.loss[k], a.norm[k], l, n);
        cg_optimizer_zero_grad(m.opt);
        cg_scope_end();
      }
      static float ref[NV];
      CHECK(snapshot(&m, ref), "ref snapshot");
      int diff = 0;
      for (int i = 0; i < NV; i++) diff += f32_bits(ref[i]) != f32_bits(a.final[i]);
      CHECK(diff == 0, "%d of %d parameter and moment values differ from the plain steps on the clean batches", diff, NV);
      drop(&m);
    }

    /* JIT=0: the same run, eagerly */
    CHECK(cg_set_config("JIT", "0") == CG_OK, "JIT=0");
    run_scaled(&e, init_scale);
    cg_set_config("JIT", "1");
    CHECK(e.replays == 0, "JIT=0 replayed");
    for (int k = 0; k < STEPS; k++)
      CHECK(f32_bits(e.loss[k]) == f32_bits(a.loss[k]) && f32_bits(e.norm[k]) == f32_bits(a.norm[k]) && e.skipped[k] == a.skipped[k],
            "step %d: JIT=0 loss %.9g norm %.9g, JIT %.9g %.9g", k, e.loss[k], e.norm[k], a.loss[k], a.norm[k]);
    CHECK(!memcmp(e.final, a.final, sizeof a.final), "JIT=0's parameters and moments differ from the JIT's");
  }

  /* bad input */
  CHECK(!cg_grad_scaler_new(3, 2, 0.5, 200) && strstr(cg_last_error(), "power of two"), "scale 3: '%s'", cg_last_error());
  CHECK(!cg_grad_scaler_new(65536, 2, 0.5, 0) && strstr(cg_last_error(), "interval"), "interval 0: '%s'", cg_last_error());
  CHECK(!cg_grad_scaler_new(65536, 1, 0.5, 1) && strstr(cg_last_error(), "growth"), "growth 1: '%s'", cg_last_error());
  CHECK(cg_grad_scaler_update(NULL, true, NULL, 0) != CG_OK, "update(NULL)");
  {
    cg_tensor *p = cg_zeros(CG_FLOAT32, (int64_t[]){3}, 1), *const *pend;
    int np;
    cg_optimizer *o = cg_adam(&p, 1, 1e-3, 0.9, 0.999, 1e-8, 0);
    cg_tensor *f = cg_scalar(1);
    CHECK(cg_optimizer_step_lazy_unless(o, f, &pend, &np) != CG_OK && strstr(cg_last_error(), "bool"), "float skip: '%s'", cg_last_error());
    CHECK(cg_optimizer_step_lazy_unless(o, NULL, &pend, &np) != CG_OK && strstr(cg_last_error(), "NULL"), "NULL skip: '%s'", cg_last_error());
    cg_optimizer_free(o), cg_free(p), cg_free(f);
  }
  return test_summary();
}
