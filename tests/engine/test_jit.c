/* cg_jit: a training step (forward, backward, Adam, BatchNorm statistics) replayed is bit
 * for bit the eager step over 20 steps; two batch sizes alternating are two contexts, both
 * right; a scalar passed as a var input (cg_variable) or a constant changes every call with
 * no compile after warm-up; an Adam step with its learning rate from a cosine schedule
 * (cg_optimizer_set_lr: a kernel variable) replayed equals the eager one bit for bit, and
 * replays count its steps; constant and list inputs; the refusals (a JIT inside a JIT, a
 * function writing its input); intermediates in one slab shared by contexts, and no growth
 * over 1000 replays (the allocator's counters). */
#include "check.h"
#include "runtime/alloc.h"
#include "runtime/device.h"
#include "tensor/flash.h"
#include "tensor/tensor.h"
#include <math.h>
#include <string.h>

typedef struct {
  cg_module *net;
  cg_optimizer *opt;
  cg_tensor *params[16];
  int np;
} model;

static void model_init(model *m, uint64_t seed) {
  cg_manual_seed(seed);
  cg_module *layers[] = {cg_linear(8, 16, true), cg_batchnorm(16, 1e-5, 0.1), cg_relu_layer(), cg_linear(16, 4, true)};
  m->net = cg_sequential(layers, 4);
  m->np = cg_module_parameters(m->net, m->params, 16);
  m->opt = cg_adam(m->params, m->np, 1e-2, 0.9, 0.999, 1e-8, 0);
}
static void model_free(model *m) {
  cg_optimizer_free(m->opt);
  cg_module_free(m->net);
}

/* one step: in = {x (B, 8), y (B,) int32, g (0-d: a gradient scale)}; out = {loss * g} */
static cg_status step(cg_tensor *const *in, int n_in, cg_tensor **out, int n_out, void *user) {
  model *m = user;
  (void)n_in, (void)n_out;
  cg_optimizer_zero_grad(m->opt);
  cg_tensor *loss = cg_cross_entropy(cg_module_forward(m->net, in[0]), in[1], 0);
  cg_status st = loss ? cg_backward(loss) : cg_last_status();
  /* loss, gradients and BatchNorm's running statistics in one realize */
  cg_tensor *run[32];
  int nr = 0;
  run[nr++] = loss;
  for (int i = 0; i < m->np; i++) run[nr++] = cg_grad(m->params[i]);
  cg_tensor *state[16];
  int ns = cg_module_state(m->net, NULL, state, 16);
  for (int i = 0; i < ns && nr < 32; i++) run[nr++] = state[i];
  if (st == CG_OK) st = cg_realize_many(run, nr);
  if (st == CG_OK && n_in > 2) st = cg_assign(cg_grad(m->params[0]), cg_mul(cg_grad(m->params[0]), in[2])); /* reads g */
  if (st == CG_OK) st = cg_optimizer_step(m->opt);
  out[0] = n_in > 2 ? cg_mul(loss, in[2]) : loss;
  return st;
}

static cg_tensor *batch(int64_t b, int k, bool labels) {
  static float x[64 * 8];
  static int32_t y[64];
  uint64_t r = (uint64_t)k * 7919 + (uint64_t)b;
  for (int64_t i = 0; i < b * 8; i++) x[i] = (float)((r = r * 6364136223846793005ull + 1442695040888963407ull) >> 40) / 16777216.0f - 0.5f;
  for (int64_t i = 0; i < b; i++) y[i] = (int32_t)((r = r * 6364136223846793005ull + 1) >> 60) % 4;
  return labels ? cg_from_data(y, CG_INT32, &b, 1) : cg_from_data(x, CG_FLOAT32, (int64_t[]){b, 8}, 2);
}

static bool same_weights(model *a, model *b) {
  for (int i = 0; i < a->np; i++) {
    int64_t n = cg_numel(a->params[i]);
    float *pa = malloc(sizeof(float) * (size_t)n), *pb = malloc(sizeof(float) * (size_t)n);
    cg_read(a->params[i], CG_FLOAT32, pa, sizeof(float) * (size_t)n);
    cg_read(b->params[i], CG_FLOAT32, pb, sizeof(float) * (size_t)n);
    bool same = !memcmp(pa, pb, sizeof(float) * (size_t)n);
    free(pa), free(pb);
    if (!same) return false;
  }
  return true;
}

static cg_status sum_all(cg_tensor *const *in, int n_in, cg_tensor **out, int n_out, void *user) {
  (void)n_out, (void)user;
  cg_tensor *s = in[0];
  for (int i = 1; i < n_in; i++) s = cg_add(s, in[i]);
  out[0] = cg_mul(s, cg_scalar(2));
  return out[0] ? CG_OK : cg_last_status();
}

static cg_status scale(cg_tensor *const *in, int n_in, cg_tensor **out, int n_out, void *user) {
  (void)n_in, (void)n_out, (void)user;
  out[0] = cg_mul(in[0], in[1]);
  return out[0] ? CG_OK : cg_last_status();
}

/* fused attention over key blocks of 8: its block counter is a var it makes on each call,
 * moved by host updates, so every call's capture names another var */
static cg_status attend(cg_tensor *const *in, int n_in, cg_tensor **out, int n_out, void *user) {
  (void)n_in, (void)n_out, (void)user;
  out[0] = flash_attention(in[0], in[1], in[2], NULL, 0, true, 0, 8, 1);
  return out[0] ? CG_OK : cg_last_status();
}

static cg_jit *inner;
static cg_status nested(cg_tensor *const *in, int n_in, cg_tensor **out, int n_out, void *user) {
  (void)user;
  return cg_jit_call(inner, in, n_in, out) == CG_OK ? CG_OK : cg_last_status();
  (void)n_out;
}
static cg_status writes_input(cg_tensor *const *in, int n_in, cg_tensor **out, int n_out, void *user) {
  (void)n_in, (void)n_out, (void)user;
  cg_status st = cg_assign(in[0], cg_add(in[0], cg_scalar(1)));
  out[0] = cg_mul(in[0], cg_scalar(3));
  return st;
}

int main(void) {
  cg_scope_begin();
  { /* a training step: replay == eager, bit for bit, over 20 steps; two batch sizes */
    model a, b;
    model_init(&a, 3), model_init(&b, 3);
    cg_jit *j = cg_jit_new(step, 1, &b);
    CHECK(j);
    float lr = 1;
    bool same = true;
    for (int s = 0; s < 20; s++) {
      cg_scope_begin();
      int64_t bs = s % 2 ? 16 : 24;
      /* the gradient scale, a new var each step (value and var both change) */
      cg_tensor *x = batch(bs, s, false), *y = batch(bs, s, true), *l = cg_variable("g", 0.5 + 0.25 * (s % 5), CG_FLOAT32);
      cg_tensor *in[3] = {x, y, l}, *eager[1], *jit[1];
      CHECK(step(in, 3, eager, 1, &a) == CG_OK, "%s", cg_last_error());
      CHECK(cg_jit_call(j, in, 3, jit) == CG_OK, "step %d: %s", s, cg_last_error());
      float le = (float)cg_item(eager[0]), lj = (float)cg_item(jit[0]);
      same &= !memcmp(&le, &lj, sizeof le);
      if (memcmp(&le, &lj, sizeof le)) fprintf(stderr, "step %d: eager loss %.9g, jit %.9g\n", s, le, lj);
      cg_scope_end();
    }
    CHECK(same, "jit losses equal eager ones bit for bit");
    CHECK(same_weights(&a, &b), "weights and state after 20 steps equal");
    cg_jit_info in = cg_jit_stats(j);
    CHECK(in.contexts == 2 && in.captures == 2 && in.replays == 16 && in.eager == 2, "contexts %d captures %lld replays %lld eager %lld", in.contexts,
          (long long)in.captures, (long long)in.replays, (long long)in.eager);
    /* replays compile nothing, even with the scale changing each call */
    uint64_t c0 = cg_get_stats().kernels_compiled + cg_get_stats().kernels_cached;
    rt_alloc_stats m0 = rt_lru_stats(rt_cpu_device.allocator);
    cg_tensor *g = cg_variable("g", 1, CG_FLOAT32);
    for (int s = 0; s < 1000; s++) {
      cg_scope_begin();
      lr = 1.0f + (float)(s % 7);
      /* the scalar as a var set to it, or a constant (never realized: the context's var) */
      cg_variable_set(g, lr);
      cg_tensor *lt = s % 2 ? g : cg_full(lr, CG_FLOAT32, NULL, 0);
      cg_tensor *in[3] = {batch(16, s, false), batch(16, s, true), lt}, *out[1];
      CHECK(cg_jit_call(j, in, 3, out) == CG_OK || s > 0, "%s", cg_last_error());
      cg_scope_end();
    }
    rt_alloc_stats m1 = rt_lru_stats(rt_cpu_device.allocator);
    CHECK(cg_get_stats().kernels_compiled + cg_get_stats().kernels_cached == c0, "replays compiled kernels");
    CHECK(m1.in_use == m0.in_use && m1.cached <= m0.cached + in.slab_bytes + 65536 && m1.sys_allocs - m0.sys_allocs < 100,
          "memory grew over 1000 replays: in use %zu -> %zu, cached %zu -> %zu, system allocations +%lld", m0.in_use, m1.in_use, m0.cached, m1.cached,
          (long long)(m1.sys_allocs - m0.sys_allocs));
    CHECK(in.slab_bytes > 0, "intermediates live in a slab");
    cg_jit_free(j);
    /* four contexts (batch sizes) share one slab: after warm-up, replays of all four take
     * it from the allocator's cache; the intermediates held between calls are one slab */
    j = cg_jit_new(step, 1, &b);
    static const int64_t sizes[4] = {8, 16, 24, 32};
    rt_alloc_stats w0 = {0}, w1;
    size_t slab4 = 0;
    for (int s = 0; s < 40; s++) {
      if (s == 12) w0 = rt_lru_stats(rt_cpu_device.allocator), slab4 = cg_jit_stats(j).slab_bytes;
      cg_scope_begin();
      float one = 1;
      cg_tensor *in3[3] = {batch(sizes[s % 4], s, false), batch(sizes[s % 4], s, true), cg_from_data(&one, CG_FLOAT32, NULL, 0)}, *out[1];
      CHECK(cg_jit_call(j, in3, 3, out) == CG_OK || s > 0, "%s", cg_last_error());
      cg_scope_end();
    }
    w1 = rt_lru_stats(rt_cpu_device.allocator);
    cg_jit_info i4 = cg_jit_stats(j);
    CHECK(i4.contexts == 4 && i4.replays == 32 && i4.slab_bytes == slab4, "4 contexts, 32 replays, one slab size: %d %lld", i4.contexts, (long long)i4.replays);
    CHECK(w1.sys_allocs == w0.sys_allocs && w1.in_use == w0.in_use, "replays of 4 contexts allocated from the system (%lld) or held memory (%zu -> %zu)",
          (long long)(w1.sys_allocs - w0.sys_allocs), w0.in_use, w1.in_use);
    cg_jit_free(j);
    model_free(&a), model_free(&b);
  }
  { /* list inputs of two lengths, and a constant (never realized) input */
    cg_jit *j = cg_jit_new(sum_all, 1, NULL);
    for (int s = 0; s < 4; s++) {
      cg_scope_begin();
      int n = s % 2 ? 3 : 2;
      cg_tensor *in[3] = {cg_full(1.5 + s, CG_FLOAT32, (int64_t[]){5}, 1), batch(5, s, false), batch(5, s + 1, false)}, *out[1];
      in[1] = cg_reshape(in[1], (int64_t[]){40}, 1), in[2] = cg_reshape(in[2], (int64_t[]){40}, 1);
      in[1] = cg_shrink(in[1], (int64_t[]){0, 5}), in[2] = cg_shrink(in[2], (int64_t[]){3, 8});
      float want[5], got[5], a[5], b[5], c[5];
      cg_read(cg_contiguous(in[1]), CG_FLOAT32, b, sizeof b), cg_read(cg_contiguous(in[2]), CG_FLOAT32, c, sizeof c);
      for (int i = 0; i < 5; i++) a[i] = 1.5f + (float)s, want[i] = 2 * (n == 3 ? (a[i] + b[i]) + c[i] : a[i] + b[i]);
      CHECK(cg_jit_call(j, in, n, out) == CG_OK, "%s", cg_last_error());
      CHECK(cg_read(out[0], CG_FLOAT32, got, sizeof got) == CG_OK && !memcmp(got, want, sizeof got), "list input of %d, call %d", n, s);
      cg_scope_end();
    }
    CHECK(cg_jit_stats(j).contexts == 2, "two list lengths, two contexts");
    cg_jit_free(j);
  }
  { /* a scalar passed as a constant tensor (cg_full, never realized) changes every call:
     * it takes effect, and nothing compiles after the first calls */
    cg_jit *j = cg_jit_new(scale, 1, NULL);
    float x[6] = {1, -2, 3.5f, 4, 0.25f, -8}, got[6];
    cg_tensor *tx = cg_from_data(x, CG_FLOAT32, (int64_t[]){6}, 1);
    uint64_t c0 = 0;
    bool right = true;
    for (int s = 0; s < 8; s++) {
      cg_scope_begin();
      if (s == 3) c0 = cg_get_stats().kernels_compiled + cg_get_stats().kernels_cached;
      cg_tensor *in[2] = {tx, cg_full(0.5 + s, CG_FLOAT32, NULL, 0)}, *out[1];
      CHECK(cg_jit_call(j, in, 2, out) == CG_OK, "%s", cg_last_error());
      CHECK(cg_read(out[0], CG_FLOAT32, got, sizeof got) == CG_OK);
      for (int i = 0; i < 6; i++) right &= got[i] == x[i] * (float)(0.5 + s);
      cg_scope_end();
    }
    CHECK(right, "the scalar's new value takes effect on every call");
    CHECK(cg_get_stats().kernels_compiled + cg_get_stats().kernels_cached == c0, "a new scalar value compiled a kernel");
    CHECK(cg_jit_stats(j).replays == 6, "replays %lld", (long long)cg_jit_stats(j).replays);
    cg_jit_free(j);
  }
  { /* a var input (cg_variable): one var set each call, or a new var each call; an int32
     * step counter too. Values right every call, nothing compiles after the first two. */
    cg_jit *j = cg_jit_new(scale, 1, NULL), *ji = cg_jit_new(scale, 1, NULL);
    float x[6] = {1, -2, 3.5f, 4, 0.25f, -8}, got[6];
    int32_t xi[6] = {1, -2, 3, 40000, 5, -7}, goti[6];
    cg_tensor *tx = cg_from_data(x, CG_FLOAT32, (int64_t[]){6}, 1), *txi = cg_from_data(xi, CG_INT32, (int64_t[]){6}, 1);
    cg_tensor *v = cg_variable("lr", 0, CG_FLOAT32), *step = cg_variable("step", 0, CG_INT32);
    uint64_t c0 = 0;
    int wrong = 0;
    for (int s = 0; s < 50; s++) {
      cg_scope_begin();
      if (s == 2) c0 = cg_get_stats().kernels_compiled + cg_get_stats().kernels_cached;
      double val = 0.1 * s - 2;
      cg_variable_set(v, val);
      cg_tensor *in[2] = {tx, s % 3 ? v : cg_variable("lr", val, CG_FLOAT32)}, *out[1];
      CHECK(cg_jit_call(j, in, 2, out) == CG_OK && cg_read(out[0], CG_FLOAT32, got, sizeof got) == CG_OK, "%s", cg_last_error());
      for (int i = 0; i < 6; i++) wrong += got[i] != x[i] * (float)val;
      cg_variable_set(step, s * 1000 + 1);
      cg_tensor *ini[2] = {txi, step};
      CHECK(cg_jit_call(ji, ini, 2, out) == CG_OK && cg_read(out[0], CG_INT32, goti, sizeof goti) == CG_OK, "%s", cg_last_error());
      for (int i = 0; i < 6; i++) wrong += goti[i] != (int32_t)((int64_t)xi[i] * (s * 1000 + 1));
      cg_scope_end();
    }
    CHECK(wrong == 0, "%d values wrong with var inputs", wrong);
    CHECK(cg_get_stats().kernels_compiled + cg_get_stats().kernels_cached == c0, "a new var value compiled a kernel");
    CHECK(cg_jit_stats(j).replays == 48 && cg_jit_stats(ji).replays == 48 && cg_jit_stats(j).contexts == 1, "replays %lld %lld",
          (long long)cg_jit_stats(j).replays, (long long)cg_jit_stats(ji).replays);
    cg_jit_free(j), cg_jit_free(ji);
  }
  { /* Adam with a cosine learning-rate schedule (warm-up, then decay): the JIT'd step is
     * the eager one bit for bit over 20 steps, compiles nothing after warm-up, and its
     * replays count the optimizer's steps (the step count and beta^t are vars updated on
     * the host: the capture records the updates, the replay repeats them) */
    model a, b;
    model_init(&a, 5), model_init(&b, 5);
    cg_jit *j = cg_jit_new(step, 1, &b);
    bool same = true;
    uint64_t c0 = 0;
    for (int s = 0; s < 20; s++) {
      cg_scope_begin();
      if (s == 2) c0 = cg_get_stats().kernels_compiled + cg_get_stats().kernels_cached;
      double lr = s < 4 ? 1e-2 * (s + 1) / 4 : 1e-3 + 0.5 * (1e-2 - 1e-3) * (1 + cos(M_PI * (s - 4) / 16.0));
      CHECK(cg_optimizer_set_lr(a.opt, lr) == CG_OK && cg_optimizer_set_lr(b.opt, lr) == CG_OK, "%s", cg_last_error());
      cg_tensor *in[2] = {batch(16, s, false), batch(16, s, true)}, *eager[1], *jit[1];
      CHECK(step(in, 2, eager, 1, &a) == CG_OK, "%s", cg_last_error());
      CHECK(cg_jit_call(j, in, 2, jit) == CG_OK, "step %d: %s", s, cg_last_error());
      float le = (float)cg_item(eager[0]), lj = (float)cg_item(jit[0]);
      same &= !memcmp(&le, &lj, sizeof le);
      cg_scope_end();
    }
    CHECK(same && same_weights(&a, &b), "Adam with a cosine schedule: jit == eager bit for bit over 20 steps");
    CHECK(cg_get_stats().kernels_compiled + cg_get_stats().kernels_cached == c0, "a new learning rate or step compiled a kernel");
    CHECK(cg_jit_stats(j).replays == 18, "replays %lld", (long long)cg_jit_stats(j).replays);
    CHECK(cg_optimizer_steps(a.opt) == 20 && cg_optimizer_steps(b.opt) == 20, "steps counted: eager %lld, jit %lld", (long long)cg_optimizer_steps(a.opt),
          (long long)cg_optimizer_steps(b.opt));
    /* set_steps (a resumed run) makes beta^t as that many steps would: a's recomputed,
     * b's as its replays left it, both continue the same */
    CHECK(cg_optimizer_set_steps(a.opt, 20) == CG_OK, "%s", cg_last_error());
    for (int s = 20; s < 23; s++) {
      cg_scope_begin();
      cg_tensor *in[2] = {batch(16, s, false), batch(16, s, true)}, *eager[1], *jit[1];
      CHECK(step(in, 2, eager, 1, &a) == CG_OK && cg_jit_call(j, in, 2, jit) == CG_OK, "%s", cg_last_error());
      cg_scope_end();
    }
    CHECK(same_weights(&a, &b), "after set_steps, still equal");
    cg_jit_free(j);
    model_free(&a), model_free(&b);
  }
  { /* refusals */
    inner = cg_jit_new(sum_all, 1, NULL);
    cg_jit *outer = cg_jit_new(nested, 1, NULL), *w = cg_jit_new(writes_input, 1, NULL);
    cg_tensor *x = batch(4, 0, false), *out[1];
    CHECK(cg_jit_call(outer, &x, 1, out) != CG_OK && strstr(cg_last_error(), "inside a JIT"), "got: %s", cg_last_error());
    CHECK(cg_jit_call(inner, &x, 1, out) == CG_OK, "the inner one alone works: %s", cg_last_error());
    cg_status st = CG_OK;
    for (int s = 0; s < 3 && st == CG_OK; s++) {
      cg_tensor *y = cg_contiguous(batch(4, 0, false));
      cg_realize(y);
      st = cg_jit_call(w, &y, 1, out);
    }
    CHECK(st == CG_ERR_INVALID && strstr(cg_last_error(), "writes into its input 0"), "got: %s", cg_last_error());
    CHECK(cg_jit_call(NULL, &x, 1, out) == CG_ERR_INVALID && cg_jit_call(inner, NULL, 2, out) == CG_ERR_INVALID, "NULL jit / inputs");
    cg_jit_free(outer), cg_jit_free(w), cg_jit_free(inner);
  }
  { /* a function that makes its own var each call (flash attention's block counter) is
     * replayed: its captures are the same up to that var, and each replay equals the eager
     * call bit for bit */
    cg_jit *j = cg_jit_new(attend, 1, NULL);
    bool equal = true;
    for (int s = 0; s < 6; s++) {
      cg_scope_begin();
      cg_tensor *qkv[3], *out[1];
      for (int i = 0; i < 3; i++) qkv[i] = cg_contiguous(cg_randn(CG_FLOAT32, (int64_t[]){1, 2, 30, 8}, 4)), cg_realize(qkv[i]);
      cg_tensor *want = flash_attention(qkv[0], qkv[1], qkv[2], NULL, 0, true, 0, 8, 1);
      float a[480], b[480];
      CHECK(cg_jit_call(j, qkv, 3, out) == CG_OK && cg_read(out[0], CG_FLOAT32, a, sizeof a) == CG_OK && cg_read(want, CG_FLOAT32, b, sizeof b) == CG_OK,
            "%s", cg_last_error());
      equal = equal && !memcmp(a, b, sizeof a);
      cg_scope_end();
    }
    cg_jit_info fi = cg_jit_stats(j);
    CHECK(equal, "replayed fused attention differs from the eager call");
    CHECK(fi.captures == 1 && fi.replays == 4, "fused attention: captures %lld replays %lld eager %lld (expected 1, 4)", (long long)fi.captures,
          (long long)fi.replays, (long long)fi.eager);
    cg_jit_free(j);
  }
  cg_scope_end();
  return test_summary();
}
