/* Fused attention (src/tensor/flash.c) against the unfused reference, both through
 * cg_scaled_dot_product_attention (knob CG_FLASH_ATTN = 1 / 0, blocks of 32 keys so that
 * several blocks and a ragged last one are used): outputs and the gradients of q, k, v,
 * for T in {1, 7, 64, 257}, plain, causal, with a padding mask (bool) that leaves whole
 * rows masked, and with an additive mask holding -inf; scores of +-1e4. float32:
 * rtol 1e-4, atol 1e-5 (the two sum in different orders); float64: rtol 1e-10. Fully masked
 * rows give zeros and zero gradients, nothing is NaN. Memory and kernels: see
 * memory_and_kernels. */
#include "attention_check.h"
#include "runtime/alloc.h"
#include "runtime/device.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

enum { M_NONE, M_CAUSAL, M_PAD, M_ADD };
static const char *MNAME[] = {"plain", "causal", "padding (bool)", "additive -inf"};

static void compare(int64_t T, int mk, cg_dtype dt, double amp) {
  int64_t B = 2, H = 2, E = 8, Ev = 6, S = T;
  cg_scope_begin();
  cg_tensor *q = rnd(dt, (int64_t[]){B, H, T, E}, 4, amp), *k = rnd(dt, (int64_t[]){B, 1, S, E}, 4, amp), *v = rnd(dt, (int64_t[]){B, H, S, Ev}, 4, 1);
  cg_tensor *w = rnd(dt, (int64_t[]){B, H, T, Ev}, 4, 1), *mask = NULL;
  if (mk == M_PAD) mask = pad_mask(B, T, S);
  else if (mk == M_ADD) {
    double *m = malloc(sizeof(double) * (size_t)(T * S));
    for (int64_t i = 0; i < T * S; i++) m[i] = unif(0, 1) < 0.3 ? -INFINITY : unif(-2, 2);
    for (int64_t j = 0; j < S; j++) m[(T - 1) * S + j] = -INFINITY; /* the last row: nothing */
    mask = cg_cast(cg_from_data(m, CG_FLOAT64, (int64_t[]){T, S}, 2), dt);
    free(m);
  }
  double *f[4] = {0}, *u[4] = {0};
  double scale = amp >= 50 ? 1 : 0;
  bool ok = run("1", dt, q, k, v, mask, mk == M_CAUSAL, scale, w, f) && run("0", dt, q, k, v, mask, mk == M_CAUSAL, scale, w, u);
  int64_t n[4] = {B * H * T * Ev, B * H * T * E, B * S * E, B * H * S * Ev};
  const char *what[4] = {"out", "dq", "dk", "dv"};
  double rtol = dt == CG_FLOAT64 ? 1e-10 : 1e-4, atol = dt == CG_FLOAT64 ? 1e-12 : 1e-5;
  if (amp >= 50) atol = dt == CG_FLOAT64 ? 1e-8 : 2e-3; /* saturated softmax: see test_transformer_ops */
  for (int a = 0; ok && a < 4; a++) {
    int bad = 0, nan = 0;
    double worst = 0;
    for (int64_t i = 0; i < n[a]; i++) {
      nan += isnan(f[a][i]);
      double e = fabs(f[a][i] - u[a][i]);
      if (!(e <= atol + rtol * fabs(u[a][i]))) bad++;
      if (e > worst) worst = e;
    }
    CHECK(bad == 0 && nan == 0, "T=%lld %s %s %s: %d of %lld differ (max |diff| %.3g), %d NaN", (long long)T, MNAME[mk], cg_dtype_name(dt),
          what[a], bad, (long long)n[a], worst, nan);
  }
  if (ok && mk == M_PAD) { /* batch 1, even rows: zeros, and no gradient into their q */
    bool zero = true;
    for (int64_t h = 0; h < H; h++)
      for (int64_t i = 0; i < T; i += 2) {
        for (int64_t e = 0; e < Ev; e++) zero &= f[0][((1 * H + h) * T + i) * Ev + e] == 0;
        for (int64_t e = 0; e < E; e++) zero &= f[1][((1 * H + h) * T + i) * E + e] == 0;
      }
    CHECK(zero, "T=%lld: fully masked rows must give zero output and zero dq", (long long)T);
  }
  for (int a = 0; a < 4; a++) free(f[a]), free(u[a]);
  cg_scope_end();
}

static uint64_t programs(void) { /* programs made: compiled, or loaded from the disk cache */
  cg_stats s = cg_get_stats();
  return s.kernels_compiled + s.kernels_cached;
}

/* A fused causal forward + backward at length T (one head, E = 16, blocks of 128 keys):
 * the allocator's peak above the inputs, the programs the first run made and those a
 * second run made. false if it failed. */
static bool one_length(rt_device *dev, int64_t T, double *used, uint64_t *made, uint64_t *again, uint64_t *launched) {
  int64_t E = 16;
  bool ok = true;
  cg_scope_begin();
  cg_tensor *q = rnd(CG_FLOAT32, (int64_t[]){1, 1, T, E}, 4, 1), *k = rnd(CG_FLOAT32, (int64_t[]){1, 1, T, E}, 4, 1),
            *v = rnd(CG_FLOAT32, (int64_t[]){1, 1, T, E}, 4, 1);
  cg_set_requires_grad(q, true), cg_set_requires_grad(k, true), cg_set_requires_grad(v, true);
  for (int run = 0; run < 2 && ok; run++) {
    cg_scope_begin();
    size_t base = rt_lru_stats(dev->allocator).in_use;
    rt_lru_reset_peak(dev->allocator);
    uint64_t p0 = programs(), l0 = cg_get_stats().kernels_run;
    cg_tensor *o = cg_scaled_dot_product_attention(q, k, v, NULL, 0, true, 0);
    ok = o && cg_backward(cg_sum(o, NULL, 0, false)) == CG_OK;
    cg_tensor *gs[3] = {cg_grad(q), cg_grad(k), cg_grad(v)};
    ok = ok && cg_realize_many(gs, 3) == CG_OK;
    CHECK(ok, "fused T=%lld: %s", (long long)T, cg_last_error());
    if (run == 0) *used = (double)(rt_lru_stats(dev->allocator).peak - base), *made = programs() - p0, *launched = cg_get_stats().kernels_run - l0;
    else *again = programs() - p0;
    cg_zero_grad(q), cg_zero_grad(k), cg_zero_grad(v);
    cg_scope_end();
  }
  cg_scope_end();
  return ok;
}

/* Memory linear in T and one set of kernels for every length: at T = 1024 and 2048 (8 and
 * 16 key blocks) the allocator's peak during forward + backward stays under half of one
 * T x T float32 matrix and doubles (at most 2.5x) when T doubles, where the T x T scores
 * would quadruple it; the longer length runs more kernels (twice the blocks) but makes no
 * more programs than the shorter (the block index is a kernel variable, the causal rows
 * come in 4 groups; it makes fewer where a shape of the shorter recurs), and a second run
 * makes none. */
static void memory_and_kernels(void) {
  rt_device *dev = rt_get_device("CPU");
  if (!dev || !dev->allocator) {
    printf("SKIP: memory check (no CPU allocator)\n");
    return;
  }
  cg_set_config("CG_FLASH_ATTN", "1");
  cg_set_config("CG_FLASH_BLOCK", "128");
  double used[2] = {0};
  uint64_t made[2] = {0}, again[2] = {0}, launched[2] = {0};
  bool ok = one_length(dev, 1024, &used[0], &made[0], &again[0], &launched[0]) && one_length(dev, 2048, &used[1], &made[1], &again[1], &launched[1]);
  if (ok) {
    double tt = 2048.0 * 2048.0 * 4;
    printf("fused attention: peak %.2f MB at T=1024, %.2f MB at T=2048 above the inputs (one 2048 x 2048 float32 matrix: %.1f MB); "
           "%llu and %llu programs for the first run (%llu and %llu launches), %llu and %llu for the second\n",
           used[0] / 1e6, used[1] / 1e6, tt / 1e6, (unsigned long long)made[0], (unsigned long long)made[1], (unsigned long long)launched[0], (unsigned long long)launched[1], (unsigned long long)again[0],
           (unsigned long long)again[1]);
    CHECK(used[1] < tt / 2, "fused attention used %.1f MB at T=2048, a T x T matrix is %.1f MB", used[1] / 1e6, tt / 1e6);
    CHECK(used[1] <= 2.5 * used[0], "memory grew %.2fx from T=1024 to T=2048 (linear: 2x, the T x T scores: 4x)", used[1] / used[0]);
    CHECK(made[1] <= made[0] && launched[1] > launched[0], "programs made at T=1024: %llu, at T=2048: %llu, launches %llu and %llu (the programs must not grow with T)",
          (unsigned long long)made[0], (unsigned long long)made[1], (unsigned long long)launched[0], (unsigned long long)launched[1]);
    CHECK(again[0] == 0 && again[1] == 0, "a second run made %llu / %llu programs", (unsigned long long)again[0], (unsigned long long)again[1]);
  }
  cg_set_config("CG_FLASH_BLOCK", "32");
}

/* Under a JIT (cgrad train gpt replays its step): the key-block var moves by recorded
 * updates, so each replay runs every block at its own offset. Four calls with fresh inputs
 * (eager, capture, two replays) against eager runs of the same inputs. */
static cg_status attn_step(cg_tensor *const *in, int n_in, cg_tensor **out, int n_out, void *user) {
  (void)n_in, (void)n_out, (void)user;
  cg_tensor *q = cg_contiguous(in[0]), *k = cg_contiguous(in[1]), *v = cg_contiguous(in[2]);
  cg_set_requires_grad(q, true), cg_set_requires_grad(k, true), cg_set_requires_grad(v, true);
  cg_tensor *o = cg_scaled_dot_product_attention(q, k, v, NULL, 0, true, 0);
  cg_status st = o ? cg_backward(cg_sum(cg_mul(o, in[3]), NULL, 0, false)) : cg_last_status();
  /* the gradients as tensors of their own (cg_grad's belong to q, k, v, freed with them) */
  out[0] = o, out[1] = cg_detach(cg_grad(q)), out[2] = cg_detach(cg_grad(k)), out[3] = cg_detach(cg_grad(v));
  return st;
}

static void under_jit(void) {
  /* compare()'s shapes at T = 257, so that its causal case reuses these programs */
  int64_t T = 257, sq[4] = {2, 2, T, 8}, sk[4] = {2, 1, T, 8}, sv[4] = {2, 2, T, 6};
  cg_set_config("CG_FLASH_ATTN", "1");
  cg_jit *j = cg_jit_new(attn_step, 4, NULL);
  CHECK(j != NULL, "jit: %s", cg_last_error());
  for (int call = 0; j && call < 4; call++) {
    cg_scope_begin();
    cg_tensor *in[4] = {rnd(CG_FLOAT32, sq, 4, 1), rnd(CG_FLOAT32, sk, 4, 1), rnd(CG_FLOAT32, sv, 4, 1), rnd(CG_FLOAT32, sv, 4, 1)};
    cg_tensor *got[4] = {0};
    bool ok = cg_jit_call(j, in, 4, got) == CG_OK;
    CHECK(ok, "jit call %d: %s", call, cg_last_error());
    double *g[4] = {0}, *w[4] = {0};
    for (int i = 0; ok && i < 4; i++) {
      ok = got[i] != NULL;
      CHECK(ok, "jit call %d: output %d is NULL", call, i);
      if (ok) g[i] = readd(got[i]), ok = g[i] != NULL;
    }
    ok = ok && run("1", CG_FLOAT32, in[0], in[1], in[2], NULL, true, 0, in[3], w);
    int bad = 0;
    for (int i = 0; ok && i < 4; i++)
      for (int64_t e = 0; e < cg_numel(got[i]); e++) bad += !(fabs(g[i][e] - w[i][e]) <= 1e-6 * (1 + fabs(w[i][e])));
    CHECK(ok && bad == 0, "jit call %d (%s): %d values differ from the eager run", call, call < 2 ? "eager / capture" : "replay", bad);
    for (int i = 0; i < 4; i++) free(g[i]), free(w[i]);
    cg_scope_end();
  }
  cg_jit_free(j);
}

int main(void) {
  const char *seed = getenv("CG_TEST_SEED");
  if (seed && *seed) rs = strtoull(seed, NULL, 10) * 2654435761ull + 1;
  memory_and_kernels();
  cg_set_config("CG_FLASH_BLOCK", "32");
  under_jit();
  const int64_t Ts[4] = {1, 7, 64, 257};
  for (int t = 0; t < 4; t++)
    for (int mk = 0; mk < 4; mk++) compare(Ts[t], mk, CG_FLOAT32, 1);
  compare(512, M_CAUSAL, CG_FLOAT32, 1); /* 4 row groups; the key blocks' gradients summed over chunks of rows */
  compare(70, M_PAD, CG_FLOAT64, 1);
  compare(70, M_CAUSAL, CG_FLOAT64, 1);
  compare(40, M_NONE, CG_FLOAT32, 60); /* scores of order +-1e4 (scale 1) */
  compare(40, M_ADD, CG_FLOAT32, 60);
  return test_summary();
}
