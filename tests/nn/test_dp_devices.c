/* Data parallelism on two CPU devices in one process: replicas of an MLP on CPU and CPU:1,
 * each given half of every batch (cg_shard along the batch axis), gradients summed across
 * the devices (cg_multi_allreduce of CG_PARTIAL shards) and halved, then SGD on each
 * replica — against one model on one device taking the whole batch. The replicas stay
 * bit-identical (both sum the two halves in one order); against the one-device model the
 * parameters and losses agree within 1e-5 relative (float32 sums in another order). */
#include "check.h"
#include <cgrad.h>
#include <math.h>
#include <string.h>
#include <time.h>

enum { IN = 20, HID = 16, OUT = 5, B = 32, STEPS = 4, NP = 4 };

/* SGD with momentum: linear in the gradients, so the two sums' rounding stays at float32's
 * level (Adam divides by sqrt(v): a gradient near zero would turn a rounding difference
 * into a visible step; tests/dist compares Adam runs by their losses instead). */
#define SGD(p) cg_sgd(p, NP, 0.05, 0.9, 0, 0, false)

static cg_module *mlp(void) {
  return cg_sequential((cg_module *[]){cg_linear(IN, HID, true), cg_relu_layer(), cg_linear(HID, OUT, true)}, 3);
}

static void params_of(cg_module *m, cg_tensor **p) { CHECK(cg_module_parameters(m, p, NP) == NP, "4 parameters"); }

/* copy `from`'s values into `to`'s parameters (to's device) */
static void copy_params(cg_tensor **to, cg_tensor **from, const char *dev) {
  for (int i = 0; i < NP; i++) {
    CHECK(cg_realize(to[i]) == CG_OK && cg_assign(to[i], cg_to(from[i], dev)) == CG_OK && cg_realize(to[i]) == CG_OK, "copy parameter %d: %s", i,
          cg_last_error());
    CHECK(!strcmp(cg_device_of(to[i]), dev), "parameter %d on %s", i, dev);
  }
}

static double rel_diff(cg_tensor *a, cg_tensor *b) {
  static float x[IN * HID], y[IN * HID];
  size_t n = (size_t)cg_numel(a);
  if (cg_read(a, CG_FLOAT32, x, n * 4) || cg_read(b, CG_FLOAT32, y, n * 4)) return INFINITY;
  double worst = 0;
  for (size_t i = 0; i < n; i++) {
    double e = fabs((double)x[i] - y[i]) / (1e-3 + fabs((double)y[i]));
    if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
  }
  return worst;
}

int main(void) {
  unsigned seed = (unsigned)time(NULL);
  printf("seed %u\n", seed);
  srand(seed);
  cg_manual_seed(seed);
  const char *devs[2] = {"CPU", "CPU:1"};
  cg_module *ref = mlp(), *m0 = mlp(), *m1;
  cg_tensor *pr[NP], *p0[NP], *p1[NP];
  params_of(ref, pr), params_of(m0, p0);
  CHECK(cg_realize_many(pr, NP) == CG_OK, "init");
  CHECK(cg_set_device("CPU:1") && !strcmp(cg_set_device("CPU:1"), "CPU:1"), "this thread on CPU:1");
  m1 = mlp(); /* made while CPU:1 is the default: its parameters live there */
  params_of(m1, p1);
  CHECK(cg_realize_many(p1, NP) == CG_OK && !strcmp(cg_device_of(p1[0]), "CPU:1"), "replica on CPU:1");
  CHECK(cg_set_device(NULL) && !strcmp(cg_set_device(NULL), "CPU"), "back to the knob's device");
  copy_params(p0, pr, "CPU"), copy_params(p1, pr, "CPU:1"); /* every replica starts from ref's weights */
  cg_optimizer *or = SGD(pr), *o0 = SGD(p0);
  cg_set_device("CPU:1"); /* the replica's optimizer state lives there too */
  cg_optimizer *o1 = SGD(p1);
  cg_set_device(NULL);
  static float xh[B * IN];
  int32_t yh[B];
  for (int step = 0; step < STEPS; step++) {
    cg_scope_begin();
    for (int i = 0; i < B * IN; i++) xh[i] = (float)rand() / (float)RAND_MAX * 2 - 1;
    for (int i = 0; i < B; i++) yh[i] = rand() % OUT;
    cg_tensor *x = cg_from_data(xh, CG_FLOAT32, (int64_t[]){B, IN}, 2), *y = cg_from_data(yh, CG_INT32, (int64_t[]){B}, 1);
    /* one device, the whole batch */
    cg_tensor *lr = cg_cross_entropy(cg_module_forward(ref, x), y, 0.0);
    CHECK(cg_backward(lr) == CG_OK, "backward");
    double loss_ref = cg_item(lr);
    /* two devices, half each */
    cg_multi *xs = cg_shard(x, devs, 2, 0), *ys = cg_shard(y, devs, 2, 0);
    cg_tensor *l0 = cg_cross_entropy(cg_module_forward(m0, cg_multi_shard(xs, 0)), cg_multi_shard(ys, 0), 0.0);
    CHECK(cg_backward(l0) == CG_OK, "backward on CPU");
    /* the second replica's work with CPU:1 as this thread's device: the small buffers ops
     * make for themselves (the class indices of the cross entropy) are made there */
    cg_set_device("CPU:1");
    cg_tensor *l1 = cg_cross_entropy(cg_module_forward(m1, cg_multi_shard(xs, 1)), cg_multi_shard(ys, 1), 0.0);
    CHECK(l1 && !strcmp(cg_device_of(l1), "CPU:1"), "the second replica computes on CPU:1: %s", cg_last_error());
    CHECK(cg_backward(l1) == CG_OK, "backward on CPU:1");
    cg_set_device(NULL);
    double loss_dp = (cg_item(l0) + cg_item(l1)) / 2;
    CHECK(fabs(loss_dp - loss_ref) <= 1e-5 * fabs(loss_ref), "step %d: loss %.9g (2 devices) vs %.9g (1)", step, loss_dp, loss_ref);
    for (int i = 0; i < NP; i++) { /* gradients: sum of the halves' means, halved */
      cg_multi *g = cg_multi_from((cg_tensor *[]){cg_grad(p0[i]), cg_grad(p1[i])}, 2, CG_PARTIAL), *s = cg_multi_allreduce(g);
      CHECK(s && cg_assign(cg_grad(p0[i]), cg_mul(cg_multi_shard(s, 0), cg_scalar(0.5))) == CG_OK &&
                cg_assign(cg_grad(p1[i]), cg_mul(cg_multi_shard(s, 1), cg_scalar(0.5))) == CG_OK,
            "allreduce gradient %d: %s", i, cg_last_error());
      cg_multi_free(g), cg_multi_free(s);
    }
    CHECK(cg_optimizer_step(or) == CG_OK && cg_optimizer_step(o0) == CG_OK, "steps: %s", cg_last_error());
    cg_set_device("CPU:1");
    CHECK(cg_optimizer_step(o1) == CG_OK, "step on CPU:1: %s", cg_last_error());
    cg_set_device(NULL);
    cg_optimizer_zero_grad(or), cg_optimizer_zero_grad(o0), cg_optimizer_zero_grad(o1);
    cg_multi_free(xs), cg_multi_free(ys);
    cg_scope_end();
  }
  for (int i = 0; i < NP; i++) {
    cg_tensor *c1 = cg_to(p1[i], "CPU");
    CHECK(rel_diff(p0[i], c1) == 0, "parameter %d: the replicas are identical", i);
    double e = rel_diff(p0[i], pr[i]);
    CHECK(e <= 1e-5, "parameter %d: 2 devices vs 1 after %d steps: %g", i, STEPS, e);
    printf("parameter %d: 2 devices vs 1: %.2g relative\n", i, e);
    cg_free(c1);
  }
  cg_optimizer_free(or), cg_optimizer_free(o0), cg_optimizer_free(o1);
  cg_module_free(ref), cg_module_free(m0), cg_module_free(m1);
  return test_summary();
}
