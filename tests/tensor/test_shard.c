/* Devices as data and sharded tensors: instances, cg_to, the one-device-per-op check,
 * cg_shard and ops on cg_multi against float64 references in plain C, the all-to-all of an
 * expert-parallel layout against a gather-based reference, and the bytes each copies.
 * Tolerances: float32 results vs float64, |err| <= 1e-5 * (1 + |ref|) * terms summed. */
#include "check.h"
#include <cgrad.h>
#include <math.h>
#include <string.h>
#include <time.h>
#include "runtime/alloc.h"
#include "runtime/device.h"

static float frand(void) { return (float)rand() / (float)RAND_MAX * 2.0f - 1.0f; }

static cg_tensor *rand_t(float *host, int64_t r, int64_t c) {
  for (int64_t i = 0; i < r * c; i++) host[i] = frand();
  return cg_from_data(host, CG_FLOAT32, (int64_t[]){r, c}, 2);
}

/* every shard (replicated) or the gathered whole equals ref (n elements) */
static double max_err(const float *got, const double *ref, int64_t n, double terms) {
  double worst = 0;
  for (int64_t i = 0; i < n; i++) {
    double e = fabs(got[i] - ref[i]) / ((1 + fabs(ref[i])) * terms);
    if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
  }
  return worst;
}

static bool read_gathered(cg_multi *m, float *out, int64_t n) {
  cg_tensor *g = cg_multi_gather(m, "CPU");
  bool ok = g && cg_read(g, CG_FLOAT32, out, sizeof(float) * (size_t)n) == CG_OK;
  cg_free(g);
  return ok;
}

static void test_devices(void) {
  CHECK(cg_device("cpu:1") && !strcmp(cg_device("cpu:1"), "CPU:1"), "instance name");
  CHECK(cg_device("CPU:0") && !strcmp(cg_device("CPU:0"), "CPU"), "CPU:0 is CPU");
  CHECK(!cg_device("GPU:1") && strstr(cg_last_error(), "unknown device 'GPU:1'"), "%s", cg_last_error());
  CHECK(!cg_device("CPU:x") && strstr(cg_last_error(), "NAME:N"), "%s", cg_last_error());
  float h[12];
  cg_tensor *a = rand_t(h, 3, 4);
  int64_t t0, s0, t1, s1;
  cg_copy_stats(&t0, &s0);
  cg_tensor *b = cg_to(a, "CPU:1");
  CHECK(b && !strcmp(cg_device_of(b), "CPU:1") && !strcmp(cg_device_of(a), "CPU"), "devices of a copy");
  cg_copy_stats(&t1, &s1);
  CHECK(t1 == t0, "a copy is lazy: nothing is copied before it is realized (%lld bytes)", (long long)(t1 - t0));
  CHECK(cg_realize(b) == CG_OK, "realize the copy: %s", cg_last_error());
  cg_copy_stats(&t1, &s1);
  CHECK(t1 - t0 == 48 && s1 == s0, "a whole buffer is copied straight: %lld bytes, staging %lld", (long long)(t1 - t0), (long long)(s1 - s0));
  rt_alloc_stats st = rt_lru_stats(rt_get_device("CPU:1")->allocator);
  CHECK(st.in_use >= 48, "CPU:1 has its own allocator (%zu bytes in use)", st.in_use);
  /* a result is computed where its inputs are */
  cg_tensor *c = cg_mul(b, cg_scalar(2.0));
  float out[12];
  CHECK(c && cg_read(c, CG_FLOAT32, out, sizeof out) == CG_OK && !strcmp(cg_device_of(c), "CPU:1"), "computed on CPU:1");
  bool eq = true;
  for (int i = 0; i < 12; i++) eq = eq && out[i] == 2 * h[i];
  CHECK(eq, "values through the copy");
  /* mixing devices is refused, naming both */
  CHECK(!cg_add(a, b) && strstr(cg_last_error(), "CPU:1") && strstr(cg_last_error(), "on CPU"), "%s", cg_last_error());
  CHECK(!cg_matmul(a, cg_reshape(b, (int64_t[]){4, 3}, 2)) && strstr(cg_last_error(), "matmul"), "%s", cg_last_error());
  /* a slice along a non-leading axis is not a contiguous range: staged */
  cg_copy_stats(&t0, &s0);
  cg_tensor *d = cg_to(cg_slice(a, 1, 1, 3, 1), "CPU:2");
  float dv[6];
  CHECK(d && cg_read(d, CG_FLOAT32, dv, sizeof dv) == CG_OK && dv[0] == h[1] && dv[5] == h[10], "slice copied");
  cg_copy_stats(&t1, &s1);
  CHECK(s1 - s0 == 24 && t1 - t0 == 24, "staged %lld, sent %lld", (long long)(s1 - s0), (long long)(t1 - t0));
  /* the interpreter's instances come from the same table */
  cg_tensor *ia = cg_to(a, "INTERP:1"), *ib = cg_add(ia, ia);
  CHECK(ib && cg_read(ib, CG_FLOAT32, out, sizeof out) == CG_OK && !strcmp(cg_device_of(ib), "INTERP:1") && out[7] == 2 * h[7], "INTERP:1: %s",
        cg_last_error());
  /* CG_DEVICES: the instances a program spreads over */
  const char *names[4];
  setenv("CG_DEVICES", "3", 1);
  CHECK(cg_devices(names, 4) == 3 && !strcmp(names[0], "CPU") && !strcmp(names[2], "CPU:2"), "CG_DEVICES=3");
  unsetenv("CG_DEVICES");
  CHECK(cg_devices(names, 4) == 1, "one device by default");
  cg_free(a), cg_free(b), cg_free(c), cg_free(d), cg_free(ia), cg_free(ib);
}

/* Gradients flow back through copies: loss = sum(to(x, CPU:1)^2 * w) with w on CPU:1,
 * x on CPU: dx = 2 x w on CPU, dw = x^2 on CPU:1; and through a sharded matmul's shards. */
static void test_copy_grad(void) {
  float hx[12], hw[12], g[12];
  cg_tensor *x = rand_t(hx, 3, 4), *w0 = rand_t(hw, 3, 4), *w = cg_to(w0, "CPU:1");
  CHECK(cg_set_requires_grad(x, true) == CG_OK && cg_realize(w) == CG_OK && cg_set_requires_grad(w, true) == CG_OK, "requires grad");
  cg_tensor *y = cg_to(x, "CPU:1"), *loss = cg_sum(cg_mul(cg_mul(y, y), w), NULL, 0, false);
  CHECK(loss && !strcmp(cg_device_of(loss), "CPU:1") && cg_backward(loss) == CG_OK, "backward across devices: %s", cg_last_error());
  cg_tensor *gx = cg_grad(x), *gw = cg_grad(w);
  CHECK(gx && !strcmp(cg_device_of(gx), "CPU") && gw && !strcmp(cg_device_of(gw), "CPU:1"), "gradients on their tensors' devices");
  bool ok = gx && cg_read(gx, CG_FLOAT32, g, sizeof g) == CG_OK;
  for (int i = 0; ok && i < 12; i++) ok = fabs(g[i] - 2.0 * hx[i] * hw[i]) <= 1e-6 * (1 + fabs(2.0 * hx[i] * hw[i]));
  CHECK(ok, "dx = 2 x w");
  ok = gw && cg_read(gw, CG_FLOAT32, g, sizeof g) == CG_OK;
  for (int i = 0; ok && i < 12; i++) ok = fabs(g[i] - (double)hx[i] * hx[i]) <= 1e-6;
  CHECK(ok, "dw = x^2");
  /* the shards of x (rows over CPU and CPU:1): d sum(shard_i) / dx = 1 everywhere */
  cg_zero_grad(x);
  const char *devs[2] = {"CPU", "CPU:1"};
  cg_tensor *x6 = cg_reshape(x, (int64_t[]){6, 2}, 2);
  cg_multi *m = cg_shard(x6, devs, 2, 0);
  cg_tensor *s0 = cg_sum(cg_multi_shard(m, 0), NULL, 0, false), *s1 = cg_sum(cg_multi_shard(m, 1), NULL, 0, false);
  CHECK(s0 && s1 && cg_backward(s0) == CG_OK && cg_backward(s1) == CG_OK, "backward through shards: %s", cg_last_error());
  ok = cg_grad(x) && cg_read(cg_grad(x), CG_FLOAT32, g, sizeof g) == CG_OK;
  for (int i = 0; ok && i < 12; i++) ok = g[i] == 1.0f;
  CHECK(ok, "every element of x reached once through its shard");
  cg_multi_free(m);
  cg_free(x), cg_free(w0), cg_free(w), cg_free(y), cg_free(loss), cg_free(x6), cg_free(s0), cg_free(s1);
}

static void test_bad_axis(void) {
  float h[20];
  cg_tensor *a = rand_t(h, 5, 4);
  const char *devs[2] = {"CPU", "CPU:1"};
  CHECK(!cg_shard(a, devs, 2, 0) && strstr(cg_last_error(), "not divisible by 2 devices"), "%s", cg_last_error());
  CHECK(!cg_shard(a, devs, 2, 2) && strstr(cg_last_error(), "out of range"), "%s", cg_last_error());
  const char *twice[2] = {"CPU:1", "cpu:1"};
  CHECK(!cg_shard(a, twice, 2, 1) && strstr(cg_last_error(), "twice"), "%s", cg_last_error());
  cg_multi *m = cg_shard(a, devs, 2, 1);
  CHECK(m && cg_multi_axis(m) == 1, "axis 1 of 4 splits");
  cg_multi_free(m);
  cg_free(a);
}

static void matmul_ref(const float *a, const float *b, double *c, int m, int k, int n) {
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      double s = 0;
      for (int x = 0; x < k; x++) s += (double)a[i * k + x] * b[x * n + j];
      c[i * n + j] = s;
    }
}

static void test_matmul(int nd) {
  const char *devs[4] = {"CPU", "CPU:1", "CPU:2", "CPU:3"};
  enum { M = 8, K = 12, N = 4 };
  float ha[M * K], hb[K * N], got[M * N];
  double ref[M * N];
  cg_tensor *a = rand_t(ha, M, K), *b = rand_t(hb, K, N);
  matmul_ref(ha, hb, ref, M, K, N);
  int layouts[][2] = {{0, CG_REPLICATED}, {CG_REPLICATED, 1}, {1, 0}, {0, 1}, {1, 1}, {CG_REPLICATED, CG_REPLICATED}, {CG_REPLICATED, 0}};
  for (size_t l = 0; l < sizeof layouts / sizeof *layouts; l++) {
    cg_multi *ma = cg_shard(a, devs, nd, layouts[l][0]), *mb = cg_shard(b, devs, nd, layouts[l][1]);
    cg_multi *mc = cg_multi_matmul(ma, mb);
    CHECK(mc && read_gathered(mc, got, M * N), "matmul %d %d over %d: %s", layouts[l][0], layouts[l][1], nd, cg_last_error());
    double e = max_err(got, ref, M * N, K);
    CHECK(e <= 1e-5, "matmul a axis %d, b axis %d over %d devices: error %g", layouts[l][0], layouts[l][1], nd, e);
    /* a replicated result: every shard holds it all */
    if (mc && cg_multi_axis(mc) == CG_REPLICATED) {
      cg_tensor *last = cg_multi_shard(mc, nd - 1);
      CHECK(last && cg_read(last, CG_FLOAT32, got, sizeof got) == CG_OK && max_err(got, ref, M * N, K) <= 1e-5, "replica %d", nd - 1);
      cg_free(last);
    }
    cg_multi_free(ma), cg_multi_free(mb), cg_multi_free(mc);
  }
  cg_free(a), cg_free(b);
}

static void test_reduce(int nd) {
  const char *devs[4] = {"CPU", "CPU:1", "CPU:2", "CPU:3"};
  enum { R = 8, C = 12 };
  float h[R * C], got[R * C];
  double ref[R * C];
  cg_tensor *a = rand_t(h, R, C);
  for (int axis = 0; axis < 2; axis++) {
    cg_multi *m = cg_shard(a, devs, nd, axis);
    for (int over = 0; over < 3; over++) { /* axis 0, axis 1, all */
      int ax = over, nax = over < 2 ? 1 : 0;
      int64_t n = over == 0 ? C : over == 1 ? R : 1;
      for (int64_t i = 0; i < n; i++) ref[i] = 0;
      double mx[R * C];
      for (int64_t i = 0; i < n; i++) mx[i] = -INFINITY;
      for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) {
          int64_t o = over == 0 ? c : over == 1 ? r : 0;
          ref[o] += h[r * C + c];
          if (h[r * C + c] > mx[o]) mx[o] = h[r * C + c];
        }
      cg_multi *s = cg_multi_sum(m, &ax, nax, false), *x = cg_multi_max(m, &ax, nax, false);
      CHECK(s && read_gathered(s, got, n) && max_err(got, ref, n, R * C) <= 1e-5, "sum over %d of axis-%d shards (%d devices)", over, axis, nd);
      CHECK(x && read_gathered(x, got, n) && max_err(got, mx, n, 1) == 0, "max over %d of axis-%d shards (%d devices)", over, axis, nd);
      CHECK(s && (cg_multi_axis(s) == CG_REPLICATED) == (over == axis || over == 2), "a reduction across the split axis is allreduced");
      cg_multi_free(s), cg_multi_free(x);
    }
    cg_multi_free(m);
  }
  /* elementwise with a replicated bias (sliced in place) and with another layout */
  float hb[C], hc[R * C];
  cg_tensor *bias = cg_from_data(hb, CG_FLOAT32, (int64_t[]){C}, 1);
  for (int i = 0; i < C; i++) hb[i] = frand();
  cg_free(bias);
  bias = cg_from_data(hb, CG_FLOAT32, (int64_t[]){C}, 1);
  cg_tensor *c = rand_t(hc, R, C);
  cg_multi *m0 = cg_shard(a, devs, nd, 0), *mb = cg_shard(bias, devs, nd, CG_REPLICATED), *m1 = cg_shard(c, devs, nd, 1);
  cg_multi *xb = cg_multi_add(m0, mb), *y = cg_multi_mul(xb, m1);
  CHECK(xb && cg_multi_axis(xb) == 0, "x + bias stays split by rows");
  for (int i = 0; i < R * C; i++) ref[i] = ((double)h[i] + hb[i % C]) * hc[i];
  CHECK(y && read_gathered(y, got, R * C) && max_err(got, ref, R * C, 2) <= 1e-6, "(x + bias) * z with three layouts: %s", cg_last_error());
  cg_multi *relu = cg_multi_map(m0, cg_relu);
  for (int i = 0; i < R * C; i++) ref[i] = h[i] > 0 ? h[i] : 0;
  CHECK(relu && read_gathered(relu, got, R * C) && max_err(got, ref, R * C, 1) == 0, "map relu");
  cg_multi_free(relu), cg_multi_free(xb), cg_multi_free(y), cg_multi_free(m0), cg_multi_free(mb), cg_multi_free(m1);
  cg_free(a), cg_free(bias), cg_free(c);
}

/* Expert parallelism: tokens (E experts, C slots, D features), each device holding its
 * slots for every expert (axis 1), become each device's experts (axis 0). */
static void test_alltoall(void) {
  const char *devs[2] = {"CPU", "CPU:1"};
  enum { E = 4, C = 6, D = 8, ND = 2 };
  float h[E * C * D], got[E * C * D];
  for (int i = 0; i < E * C * D; i++) h[i] = frand();
  cg_tensor *x = cg_from_data(h, CG_FLOAT32, (int64_t[]){E, C, D}, 3);
  cg_multi *tok = cg_shard(x, devs, ND, 1);
  CHECK(tok && cg_multi_realize(tok) == CG_OK, "shard tokens");
  int64_t t0, s0, t1, s1;
  cg_copy_stats(&t0, &s0);
  cg_multi *exp = cg_multi_reshard(tok, 0);
  CHECK(exp && cg_multi_realize(exp) == CG_OK, "reshard to experts");
  cg_copy_stats(&t1, &s1);
  /* each device keeps its own piece and receives the other's: E/2 * C/2 * D floats */
  CHECK(t1 - t0 == 2 * (E / 2) * (C / 2) * D * 4 && s1 == s0, "all-to-all bytes: sent %lld (want %d), staged %lld (want 0)",
        (long long)(t1 - t0), 2 * (E / 2) * (C / 2) * D * 4, (long long)(s1 - s0));
  for (int j = 0; j < ND && exp; j++) { /* reference: gather expert rows of the whole */
    cg_tensor *s = cg_multi_shard(exp, j);
    bool ok = s && cg_read(s, CG_FLOAT32, got, sizeof(float) * (E / ND) * C * D) == CG_OK && !strcmp(cg_device_of(s), devs[j]);
    for (int e = 0; ok && e < E / ND; e++)
      for (int c = 0; c < C; c++)
        for (int d = 0; d < D; d++) ok = ok && got[(e * C + c) * D + d] == h[((j * (E / ND) + e) * C + c) * D + d];
    CHECK(ok, "expert shard %d equals the gathered rows", j);
    cg_free(s);
  }
  /* back: slices along axis 1 of a (E/2, C, D) shard are not contiguous: staged */
  cg_copy_stats(&t0, &s0);
  cg_multi *back = cg_multi_reshard(exp, 1);
  CHECK(back && read_gathered(back, got, E * C * D) && !memcmp(got, h, sizeof h), "round trip");
  cg_copy_stats(&t1, &s1);
  CHECK(s1 > s0, "the other direction stages its pieces (%lld bytes)", (long long)(s1 - s0));
  /* allreduce of partials: 2(n-1)/n of the data per device */
  cg_tensor *parts[2] = {cg_multi_shard(tok, 0), cg_multi_shard(tok, 1)};
  cg_multi *p = cg_multi_from(parts, 2, CG_PARTIAL);
  cg_copy_stats(&t0, &s0);
  cg_multi *sum = cg_multi_allreduce(p);
  CHECK(sum && cg_multi_realize(sum) == CG_OK, "allreduce");
  cg_copy_stats(&t1, &s1);
  int64_t bytes = E * (C / 2) * D * 4;
  CHECK(t1 - t0 == 2 * bytes && s1 == s0, "allreduce sent %lld bytes (want %lld)", (long long)(t1 - t0), (long long)(2 * bytes));
  for (int j = 0; j < 2 && sum; j++) {
    cg_tensor *s = cg_multi_shard(sum, j);
    bool ok = s && cg_read(s, CG_FLOAT32, got, (size_t)bytes) == CG_OK;
    for (int e = 0; ok && e < E; e++)
      for (int c = 0; c < C / 2; c++)
        for (int d = 0; d < D; d++) ok = ok && got[(e * (C / 2) + c) * D + d] == h[(e * C + c) * D + d] + h[(e * C + c + C / 2) * D + d];
    CHECK(ok, "allreduced replica %d", j);
    cg_free(s);
  }
  cg_multi_free(sum), cg_multi_free(p), cg_free(parts[0]), cg_free(parts[1]);
  cg_multi_free(back), cg_multi_free(exp), cg_multi_free(tok);
  cg_free(x);
}

int main(void) {
  unsigned seed = (unsigned)time(NULL);
  srand(seed);
  printf("seed %u\n", seed);
  test_devices();
  test_bad_axis();
  test_copy_grad();
  test_matmul(2);
  test_matmul(4);
  test_reduce(2);
  test_reduce(4);
  test_alltoall();
  return test_summary();
}
