/* Copies between devices are lazy (cg_to builds a COPY node; the scheduler makes it an item
 * of its own between the two devices' kernels) and a schedule over several devices runs
 * each device on a lane of its own. Checked here:
 *   - a lazy copy equals the eager one (source realized first) bit for bit, for several
 *     dtypes and source kinds (a buffer, a computation, a leading-axis slice, a permuted
 *     view), on the right device with the right dtype, and the bytes counted (staged only
 *     for a view made contiguous);
 *   - a graph across devices is one realize, its kernels and copies counted;
 *   - cg_to to the tensor's own device copies nothing;
 *   - gradients through copies (CPU -> CPU:1 -> CPU:2) against float64 in plain C;
 *   - concurrency: a sharded matmul over 2 devices and a data-parallel SGD step (two
 *     replicas, gradients exchanged by copies, one realize) are bit-identical to the serial
 *     order (CG_CONCURRENT=0), and the matmul matches float64;
 *   - a JIT replays its copies (new inputs each call, bytes counted per replay);
 *   - bad input: unknown devices, ops across devices without cg_to, named in the message.
 * Tolerances: float32 vs float64, |err| <= 1e-5 * (1 + |ref|) per K terms summed. */
#include "check.h"
#include <cgrad.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

static float frand(void) { return (float)rand() / (float)RAND_MAX * 2.0f - 1.0f; }

static cg_tensor *rand_t(float *host, int64_t r, int64_t c) {
  for (int64_t i = 0; i < r * c; i++) host[i] = frand();
  return cg_from_data(host, CG_FLOAT32, (int64_t[]){r, c}, 2);
}

static int64_t sent(void) {
  int64_t t;
  cg_copy_stats(&t, NULL);
  return t;
}
static int64_t staged(void) {
  int64_t s;
  cg_copy_stats(NULL, &s);
  return s;
}

/* Lazy copies of four kinds of source against the eager copy, for several dtypes. */
static void test_lazy_equals_eager(void) {
  static const cg_dtype dts[] = {CG_FLOAT32, CG_INT32, CG_FLOAT16, CG_BOOL, CG_UINT8, CG_INT64, CG_BFLOAT16, CG_FLOAT64};
  static const size_t esz[] = {4, 4, 2, 1, 1, 8, 2, 8};
  enum { R = 6, C = 10 };
  for (size_t d = 0; d < sizeof dts / sizeof *dts; d++) {
    /* values every dtype holds exactly: small integers (bool: 0/1) */
    float hf[R * C];
    for (int i = 0; i < R * C; i++) hf[i] = dts[d] == CG_BOOL ? (float)(rand() & 1) : (float)(rand() % 100);
    cg_tensor *f = cg_from_data(hf, CG_FLOAT32, (int64_t[]){R, C}, 2), *x = cg_cast(f, dts[d]);
    CHECK(x && cg_realize(x) == CG_OK, "source of dtype %d", (int)dts[d]);
    cg_tensor *srcs[4] = {x, cg_cast(cg_add(f, cg_scalar(dts[d] == CG_BOOL ? 0.0 : 1.0)), dts[d]), cg_slice(x, 0, 2, 5, 1),
                          cg_permute(x, (int[]){1, 0}, 2)};
    const char *kind[4] = {"buffer", "computation", "leading slice", "permuted view"};
    for (int k = 0; k < 4; k++) {
      int64_t n = cg_numel(srcs[k]), t0 = sent(), s0 = staged();
      cg_tensor *lazy = cg_to(srcs[k], "CPU:1");
      CHECK(lazy && !strcmp(cg_device_of(lazy), "CPU:1") && cg_dtype_of(lazy) == dts[d] && cg_numel(lazy) == n, "%s: device, dtype, shape", kind[k]);
      uint8_t got[R * C * 8], want[R * C * 8];
      CHECK(cg_read(lazy, dts[d], got, (size_t)n * esz[d]) == CG_OK, "%s: %s", kind[k], cg_last_error());
      int64_t dt = sent() - t0, ds = staged() - s0;
      CHECK(dt == n * (int64_t)esz[d], "%s (dtype %d): %lld bytes sent, want %lld", kind[k], (int)dts[d], (long long)dt, (long long)(n * (int64_t)esz[d]));
      CHECK(ds == (k == 3 ? dt : 0), "%s: %lld bytes staged", kind[k], (long long)ds);
      /* eager: the source realized on CPU first, then copied */
      cg_tensor *src = cg_contiguous(srcs[k]);
      CHECK(src && cg_realize(src) == CG_OK, "realize the source");
      cg_tensor *eager = cg_to(src, "CPU:1");
      CHECK(cg_read(eager, dts[d], want, (size_t)n * esz[d]) == CG_OK && !memcmp(got, want, (size_t)n * esz[d]), "%s (dtype %d): lazy == eager",
            kind[k], (int)dts[d]);
      /* and == the source's own bytes */
      CHECK(cg_read(src, dts[d], want, (size_t)n * esz[d]) == CG_OK && !memcmp(got, want, (size_t)n * esz[d]), "%s: == the source", kind[k]);
      cg_free(lazy), cg_free(src), cg_free(eager);
    }
    for (int k = 1; k < 4; k++) cg_free(srcs[k]);
    cg_free(f), cg_free(x);
  }
}

/* cg_to(a*a, CPU:1) + b: one realize, two kernels (one per device) and one copy. */
static void test_one_realize(void) {
  enum { R = 16, C = 24 };
  float ha[R * C], hb[R * C], got[R * C];
  cg_tensor *a = rand_t(ha, R, C), *b0 = rand_t(hb, R, C), *b = cg_to(b0, "CPU:1");
  CHECK(cg_realize(a) == CG_OK && cg_realize(b) == CG_OK, "inputs");
  cg_stats s0 = cg_get_stats();
  int64_t t0 = sent();
  cg_tensor *c = cg_add(cg_to(cg_mul(a, a), "CPU:1"), b);
  CHECK(c && !strcmp(cg_device_of(c), "CPU:1"), "the sum is on CPU:1");
  CHECK(cg_realize(c) == CG_OK, "realize: %s", cg_last_error());
  cg_stats s1 = cg_get_stats();
  CHECK(s1.schedules - s0.schedules == 1, "one realize: %llu schedules", (unsigned long long)(s1.schedules - s0.schedules));
  CHECK(s1.kernels_run - s0.kernels_run == 2, "two kernels (a*a on CPU, + on CPU:1): %llu", (unsigned long long)(s1.kernels_run - s0.kernels_run));
  CHECK(sent() - t0 == R * C * 4, "one copy of a*a: %lld bytes", (long long)(sent() - t0));
  bool ok = cg_read(c, CG_FLOAT32, got, sizeof got) == CG_OK;
  for (int i = 0; ok && i < R * C; i++) ok = fabs(got[i] - ((double)ha[i] * ha[i] + hb[i])) <= 1e-6 * (1 + fabs((double)ha[i] * ha[i] + hb[i]));
  CHECK(ok, "values of to(a*a) + b");
  /* a detached buffer is copied straight (no kernel) */
  s0 = cg_get_stats(), t0 = sent();
  cg_tensor *da = cg_to(cg_detach(a), "CPU:1");
  CHECK(da && cg_read(da, CG_FLOAT32, got, sizeof got) == CG_OK && !memcmp(got, ha, sizeof got), "detached: %s", cg_last_error());
  CHECK(cg_get_stats().kernels_run == s0.kernels_run && sent() - t0 == R * C * 4, "detached: no kernel, one copy");
  cg_free(da);
  /* a chain over three devices and back in one realize: 3 copies, 2 kernels */
  s0 = cg_get_stats(), t0 = sent();
  cg_tensor *d = cg_to(cg_sum(cg_to(cg_exp(cg_to(a, "CPU:2")), "CPU:1"), (int[]){1}, 1, false), "CPU");
  float gd[R];
  CHECK(d && cg_read(d, CG_FLOAT32, gd, sizeof gd) == CG_OK && !strcmp(cg_device_of(d), "CPU"), "chain: %s", cg_last_error());
  s1 = cg_get_stats();
  CHECK(s1.schedules - s0.schedules == 1 && s1.kernels_run - s0.kernels_run == 2, "chain: %llu schedules, %llu kernels",
        (unsigned long long)(s1.schedules - s0.schedules), (unsigned long long)(s1.kernels_run - s0.kernels_run));
  CHECK(sent() - t0 == 2 * R * C * 4 + R * 4, "chain: %lld bytes", (long long)(sent() - t0));
  ok = true;
  for (int r = 0; r < R; r++) {
    double s = 0;
    for (int k = 0; k < C; k++) s += exp((double)ha[r * C + k]);
    ok = ok && fabs(gd[r] - s) <= 1e-5 * (1 + fabs(s)) * C;
  }
  CHECK(ok, "chain values");
  cg_free(a), cg_free(b0), cg_free(b), cg_free(c), cg_free(d);
}

static void test_same_device(void) {
  float h[12];
  cg_tensor *a = rand_t(h, 3, 4), *b = cg_to(a, "CPU:1");
  CHECK(cg_realize(a) == CG_OK && cg_realize(b) == CG_OK, "inputs");
  int64_t t0 = sent();
  cg_tensor *same[3] = {cg_to(a, "CPU"), cg_to(a, "cpu:0"), cg_to(b, "CPU:1")};
  for (int i = 0; i < 3; i++) CHECK(same[i] && cg_realize(same[i]) == CG_OK, "same device %d", i);
  CHECK(sent() == t0, "cg_to to the own device copies nothing (%lld bytes)", (long long)(sent() - t0));
  float got[12];
  CHECK(cg_read(same[2], CG_FLOAT32, got, sizeof got) == CG_OK && !memcmp(got, h, sizeof h) && !strcmp(cg_device_of(same[2]), "CPU:1"), "values");
  for (int i = 0; i < 3; i++) cg_free(same[i]);
  cg_free(a), cg_free(b);
}

/* loss = sum(exp(to(x, CPU:1)) * w) + sum(to(to(x, CPU:1), CPU:2)^2): x on CPU, w on CPU:1.
 * dx = exp(x) * w + 2x (on CPU), dw = exp(x) (on CPU:1). */
static void test_grad(void) {
  enum { R = 5, C = 7 };
  float hx[R * C], hw[R * C], g[R * C];
  cg_tensor *x = rand_t(hx, R, C), *w0 = rand_t(hw, R, C), *w = cg_to(w0, "CPU:1");
  CHECK(cg_realize(w) == CG_OK && cg_set_requires_grad(x, true) == CG_OK && cg_set_requires_grad(w, true) == CG_OK, "requires grad");
  cg_tensor *y = cg_to(x, "CPU:1"), *z = cg_to(y, "CPU:2");
  cg_tensor *l1 = cg_sum(cg_mul(cg_exp(y), w), NULL, 0, false), *l2 = cg_sum(cg_mul(z, z), NULL, 0, false);
  cg_tensor *loss = cg_add(l1, cg_to(l2, "CPU:1"));
  CHECK(loss && !strcmp(cg_device_of(loss), "CPU:1") && cg_backward(loss) == CG_OK, "backward: %s", cg_last_error());
  cg_tensor *gx = cg_grad(x), *gw = cg_grad(w);
  CHECK(gx && gw && !strcmp(cg_device_of(gx), "CPU") && !strcmp(cg_device_of(gw), "CPU:1"), "gradients on their tensors' devices");
  bool ok = gx && cg_read(gx, CG_FLOAT32, g, sizeof g) == CG_OK;
  for (int i = 0; ok && i < R * C; i++) {
    double ref = exp((double)hx[i]) * hw[i] + 2.0 * hx[i];
    ok = fabs(g[i] - ref) <= 1e-5 * (1 + fabs(ref));
  }
  CHECK(ok, "dx = exp(x) w + 2x");
  ok = gw && cg_read(gw, CG_FLOAT32, g, sizeof g) == CG_OK;
  for (int i = 0; ok && i < R * C; i++) ok = fabs(g[i] - exp((double)hx[i])) <= 1e-5 * (1 + exp((double)hx[i]));
  CHECK(ok, "dw = exp(x)");
  cg_free(x), cg_free(w0), cg_free(w), cg_free(y), cg_free(z), cg_free(l1), cg_free(l2), cg_free(loss);
}

static const char *const DEVS[2] = {"CPU", "CPU:1"};

/* A row-sharded matmul over two devices, realized as one schedule: concurrent == serial,
 * bit for bit, and both == float64. */
static void test_concurrent_matmul(void) {
  enum { M = 96, K = 80, N = 72 };
  static float ha[M * K], hb[K * N], got[2][M * N];
  cg_tensor *a = rand_t(ha, M, K), *b = rand_t(hb, K, N);
  for (int serial = 0; serial < 2; serial++) {
    cg_set_config("CG_CONCURRENT", serial ? "0" : "1");
    cg_multi *ma = cg_shard(a, DEVS, 2, 0), *mb = cg_shard(b, DEVS, 2, CG_REPLICATED);
    CHECK(ma && mb && cg_multi_realize(ma) == CG_OK && cg_multi_realize(mb) == CG_OK, "shard");
    cg_stats s0 = cg_get_stats();
    cg_multi *mc = cg_multi_matmul(ma, mb);
    CHECK(mc && cg_multi_realize(mc) == CG_OK, "matmul: %s", cg_last_error());
    CHECK(cg_get_stats().schedules - s0.schedules == 1, "both shards in one realize");
    for (int i = 0; i < 2 && mc; i++) {
      cg_tensor *s = cg_multi_shard(mc, i);
      CHECK(s && !strcmp(cg_device_of(s), DEVS[i]) && cg_read(s, CG_FLOAT32, got[serial] + i * (M / 2) * N, sizeof(float) * (M / 2) * N) == CG_OK,
            "read shard %d", i);
      cg_free(s);
    }
    cg_multi_free(ma), cg_multi_free(mb), cg_multi_free(mc);
  }
  cg_set_config("CG_CONCURRENT", NULL);
  CHECK(!memcmp(got[0], got[1], sizeof got[0]), "concurrent == serial, bit for bit");
  double worst = 0;
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double s = 0;
      for (int k = 0; k < K; k++) s += (double)ha[i * K + k] * hb[k * N + j];
      double e = fabs(got[0][i * N + j] - s) / ((1 + fabs(s)) * K);
      if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
    }
  CHECK(worst <= 1e-5, "matmul vs float64: %g", worst);
  cg_free(a), cg_free(b);
}

/* Data parallel in one realize: replicas W0 (CPU) and W1 (CPU:1) of a linear model take
 * half of a batch each; the gradients meet by copies, are averaged, and both replicas
 * step (SGD, lr 0.1). Three steps, concurrent and serial: bit-identical, the replicas
 * identical to each other. */
static void test_dp_step(void) {
  enum { B = 32, IN = 24, OUT = 8, STEPS = 3 };
  static float hx[STEPS][B * IN], hy[STEPS][B * OUT], hw[IN * OUT], res[2][2][IN * OUT];
  for (int s = 0; s < STEPS; s++) {
    for (int i = 0; i < B * IN; i++) hx[s][i] = frand();
    for (int i = 0; i < B * OUT; i++) hy[s][i] = frand();
  }
  for (int i = 0; i < IN * OUT; i++) hw[i] = frand() * 0.3f;
  for (int serial = 0; serial < 2; serial++) {
    cg_set_config("CG_CONCURRENT", serial ? "0" : "1");
    cg_tensor *w[2];
    w[0] = cg_from_data(hw, CG_FLOAT32, (int64_t[]){IN, OUT}, 2);
    w[1] = cg_to(w[0], "CPU:1");
    CHECK(cg_realize(w[0]) == CG_OK && cg_realize(w[1]) == CG_OK, "replicas");
    for (int s = 0; s < STEPS; s++) {
      cg_scope_begin();
      cg_tensor *x = cg_from_data(hx[s], CG_FLOAT32, (int64_t[]){B, IN}, 2), *y = cg_from_data(hy[s], CG_FLOAT32, (int64_t[]){B, OUT}, 2);
      cg_multi *xs = cg_shard(x, DEVS, 2, 0), *ys = cg_shard(y, DEVS, 2, 0);
      cg_tensor *g[2], *upd[2];
      for (int r = 0; r < 2; r++) { /* d/dW mean((xW - y)^2) = 2 x^T (xW - y) / n */
        cg_tensor *xr = cg_multi_shard(xs, r), *err = cg_sub(cg_matmul(xr, w[r]), cg_multi_shard(ys, r));
        g[r] = cg_mul(cg_matmul(cg_permute(xr, (int[]){1, 0}, 2), err), cg_scalar(2.0 / ((B / 2) * OUT)));
      }
      for (int r = 0; r < 2; r++) { /* each replica sums the two halves in the same order */
        cg_tensor *avg = cg_mul(cg_add(cg_to(g[0], DEVS[r]), cg_to(g[1], DEVS[r])), cg_scalar(0.5));
        upd[r] = cg_sub(w[r], cg_mul(avg, cg_scalar(0.1)));
      }
      cg_stats s0 = cg_get_stats();
      CHECK(cg_realize_many(upd, 2) == CG_OK, "step %d: %s", s, cg_last_error());
      CHECK(cg_get_stats().schedules - s0.schedules == 1, "the step is one realize");
      for (int r = 0; r < 2; r++) {
        cg_tensor *old = w[r];
        w[r] = cg_keep(upd[r]);
        cg_free(old);
      }
      cg_multi_free(xs), cg_multi_free(ys);
      cg_scope_end();
    }
    for (int r = 0; r < 2; r++) CHECK(cg_read(w[r], CG_FLOAT32, res[serial][r], sizeof res[0][0]) == CG_OK, "read replica %d", r);
    cg_free(w[0]), cg_free(w[1]);
  }
  cg_set_config("CG_CONCURRENT", NULL);
  CHECK(!memcmp(res[0][0], res[0][1], sizeof res[0][0]), "the replicas are identical");
  CHECK(!memcmp(res[0][0], res[1][0], sizeof res[0][0]) && !memcmp(res[0][1], res[1][1], sizeof res[0][0]), "concurrent == serial, bit for bit");
}

/* f(x) = to(x, CPU:1) * 2 + bias (bias on CPU:1), and that copied back: the replays copy. */
static cg_status jit_fn(cg_tensor *const *in, int n_in, cg_tensor **out, int n_out, void *user) {
  (void)n_in, (void)n_out;
  cg_tensor *y = cg_add(cg_mul(cg_to(in[0], "CPU:1"), cg_scalar(2.0)), (cg_tensor *)user);
  out[0] = cg_to(y, "CPU");
  return out[0] && cg_realize(out[0]) == CG_OK ? CG_OK : cg_last_status();
}

static void test_jit(void) {
  enum { N = 40 };
  float hb[N], hx[N], got[N];
  for (int i = 0; i < N; i++) hb[i] = frand();
  cg_tensor *b0 = cg_from_data(hb, CG_FLOAT32, (int64_t[]){N}, 1), *bias = cg_to(b0, "CPU:1");
  CHECK(cg_realize(bias) == CG_OK, "bias");
  cg_jit *j = cg_jit_new(jit_fn, 1, bias);
  for (int call = 0; call < 5; call++) {
    cg_scope_begin();
    for (int i = 0; i < N; i++) hx[i] = frand();
    cg_tensor *x = cg_from_data(hx, CG_FLOAT32, (int64_t[]){N}, 1), *out = NULL;
    CHECK(cg_realize(x) == CG_OK, "input");
    int64_t t0 = sent();
    CHECK(cg_jit_call(j, &x, 1, &out) == CG_OK, "call %d: %s", call, cg_last_error());
    CHECK(sent() - t0 == 2 * N * 4, "call %d copied %lld bytes (want %d)", call, (long long)(sent() - t0), 2 * N * 4);
    bool ok = out && cg_read(out, CG_FLOAT32, got, sizeof got) == CG_OK && !strcmp(cg_device_of(out), "CPU");
    for (int i = 0; ok && i < N; i++) ok = got[i] == hx[i] * 2.0f + hb[i];
    CHECK(ok, "call %d values", call);
    cg_scope_end();
  }
  cg_jit_info info = cg_jit_stats(j);
  CHECK(info.replays >= 2, "replayed %lld times", (long long)info.replays);
  cg_jit_free(j);
  cg_free(b0), cg_free(bias);
}

static void test_bad_input(void) {
  float h[6];
  cg_tensor *a = rand_t(h, 2, 3), *b = cg_to(a, "CPU:1");
  CHECK(!cg_to(a, "GPU:1") && strstr(cg_last_error(), "unknown device 'GPU:1'"), "%s", cg_last_error());
  CHECK(!cg_to(a, "CPU:-1") && strstr(cg_last_error(), "NAME:N"), "%s", cg_last_error());
  CHECK(!cg_to(NULL, "CPU:1") && strstr(cg_last_error(), "NULL"), "%s", cg_last_error());
  CHECK(!cg_to(a, NULL), "NULL device: %s", cg_last_error());
  /* lazily copied or realized: an op across devices names both */
  CHECK(!cg_mul(a, b) && strstr(cg_last_error(), "CPU:1") && strstr(cg_last_error(), "on CPU") && strstr(cg_last_error(), "cg_to"), "%s", cg_last_error());
  CHECK(cg_realize(b) == CG_OK, "realize b");
  CHECK(!cg_add(b, cg_exp(a)) && strstr(cg_last_error(), "on CPU:1") && strstr(cg_last_error(), "on CPU ("), "%s", cg_last_error());
  CHECK(!cg_matmul(cg_to(a, "CPU:2"), cg_permute(b, (int[]){1, 0}, 2)) && strstr(cg_last_error(), "CPU:2") && strstr(cg_last_error(), "CPU:1"), "%s",
        cg_last_error());
  cg_free(a), cg_free(b);
}

/* Before any instance exists: a copy between two table devices (CPU -> INTERP) makes the
 * graphs after it place their buffers by device too. */
static void test_table_devices(void) {
  float h[12], got[12];
  cg_tensor *a = rand_t(h, 3, 4), *b = cg_to(a, "INTERP"), *c = cg_add(b, b);
  CHECK(b && c && !strcmp(cg_device_of(c), "INTERP"), "on INTERP: %s", cg_last_error());
  CHECK(!cg_mul(c, a) && strstr(cg_last_error(), "on INTERP") && strstr(cg_last_error(), "on CPU"), "mixed: %s", cg_last_error());
  bool ok = c && cg_read(c, CG_FLOAT32, got, sizeof got) == CG_OK;
  for (int i = 0; ok && i < 12; i++) ok = got[i] == h[i] + h[i];
  CHECK(ok, "CPU -> INTERP, then a kernel on INTERP: %s", cg_last_error());
  cg_tensor *back = cg_to(c, "CPU");
  ok = back && cg_read(back, CG_FLOAT32, got, sizeof got) == CG_OK && !strcmp(cg_device_of(back), "CPU");
  for (int i = 0; ok && i < 12; i++) ok = got[i] == h[i] + h[i];
  CHECK(ok, "and back");
  cg_free(a), cg_free(b), cg_free(c), cg_free(back);
}

int main(void) {
  unsigned seed = (unsigned)time(NULL);
  srand(seed);
  printf("seed %u\n", seed);
  test_table_devices();
  test_lazy_equals_eager();
  test_one_realize();
  test_same_device();
  test_grad();
  test_concurrent_matmul();
  test_dp_step();
  test_jit();
  test_bad_input();
  return test_summary();
}
