/* cg_realize_stored: the value is x's, computed once and stored (the node reads a buffer),
 * and the gradient flows to x's graph as if the call were not there. Reference: float64
 * in plain C on fresh random inputs (seed printed), float32 tolerance 1e-5 relative.
 *   y = x*x + 1,  s = stored(y),  loss = sum(s * w + s)   =>   dloss/dx = 2x (w + 1)
 * cg_stored, an activation stored with its input (realized together):
 *   y = x*x + 1,  v = detach(y),  e = exp(v) (v and e realized in one call),
 *   out = stored(e, exp(stored(v, y))),  loss = sum(out * w)  =>  dloss/dx = 2x exp(y) w */
#include "check.h"
#include "cgrad.h"
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

enum { N = 37 };

int main(void) {
  uint64_t seed = (uint64_t)time(NULL), rs = seed;
  printf("seed %llu\n", (unsigned long long)seed);
  float x[N], w[N], got[N];
  for (int i = 0; i < N; i++) {
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    x[i] = (float)((double)(rs >> 11) * 0x1p-53 * 4 - 2);
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    w[i] = (float)((double)(rs >> 11) * 0x1p-53 * 2 - 1);
  }
  cg_tensor *tx = cg_from_data(x, CG_FLOAT32, (int64_t[]){N}, 1), *tw = cg_from_data(w, CG_FLOAT32, (int64_t[]){N}, 1);
  CHECK(tx && tw && cg_set_requires_grad(tx, true) == CG_OK, "inputs: %s", cg_last_error());
  cg_tensor *y = cg_add(cg_mul(tx, tx), cg_scalar(1));
  cg_tensor *s = cg_realize_stored(y);
  CHECK(s != NULL, "realize_stored: %s", cg_last_error());
  /* the gradient through it (before reading s: a read realizes s, and its graph with it) */
  int axis = 0;
  cg_tensor *loss = cg_sum(cg_add(cg_mul(s, tw), s), &axis, 1, false);
  CHECK(loss && cg_backward(loss) == CG_OK, "backward: %s", cg_last_error());
  CHECK(cg_grad(tx) && cg_read(cg_grad(tx), CG_FLOAT32, got, sizeof got) == CG_OK, "grad: %s", cg_last_error());
  for (int i = 0; i < N; i++) {
    double ref = 2.0 * x[i] * ((double)w[i] + 1);
    CHECK(fabs(got[i] - ref) <= 1e-5 * (fabs(ref) + 1e-3), "dx[%d] = %.9g, float64 reference %.9g", i, got[i], ref);
  }
  /* the value */
  CHECK(cg_read(s, CG_FLOAT32, got, sizeof got) == CG_OK, "read: %s", cg_last_error());
  for (int i = 0; i < N; i++) {
    double ref = (double)x[i] * x[i] + 1;
    CHECK(fabs(got[i] - ref) <= 1e-5 * fabs(ref), "value[%d] = %.9g, float64 reference %.9g", i, got[i], ref);
  }
  { /* cg_stored: the values given, the gradient through both stored nodes */
    cg_tensor *y2 = cg_add(cg_mul(tx, tx), cg_scalar(1)), *v = cg_detach(y2), *e = cg_exp(v), *both[2] = {v, e};
    CHECK(cg_realize_many(both, 2) == CG_OK, "realize: %s", cg_last_error());
    uint64_t k0 = cg_get_stats().kernels_run;
    cg_tensor *out = cg_stored(e, cg_exp(cg_stored(v, y2)));
    CHECK(out != NULL, "stored: %s", cg_last_error());
    /* v and e are buffers already: storing them (a realize of their detached views) shares
     * the buffers, no copy kernel (the GPT's GELU pair had two copies of 12.6 MB a layer) */
    CHECK(cg_get_stats().kernels_run == k0, "stored: %llu kernels run for values already realized", (unsigned long long)(cg_get_stats().kernels_run - k0));
    { /* and a detached realized tensor realizes to the same buffer's values, in no kernel */
      cg_tensor *d = cg_detach(cg_reshape(e, (int64_t[]){1, N}, 2));
      float dv[N], ev[N];
      CHECK(d && cg_realize(d) == CG_OK && cg_get_stats().kernels_run == k0, "detach(reshape(e)): a kernel ran");
      CHECK(cg_read(d, CG_FLOAT32, dv, sizeof dv) == CG_OK && cg_read(e, CG_FLOAT32, ev, sizeof ev) == CG_OK && !memcmp(dv, ev, sizeof dv), "detach(reshape(e)): other values");
    }
    cg_zero_grad(tx); /* a fresh gradient */
    cg_tensor *l2 = cg_sum(cg_mul(out, tw), &axis, 1, false);
    CHECK(l2 && cg_backward(l2) == CG_OK, "backward: %s", cg_last_error());
    CHECK(cg_grad(tx) && cg_read(cg_grad(tx), CG_FLOAT32, got, sizeof got) == CG_OK, "grad: %s", cg_last_error());
    for (int i = 0; i < N; i++) {
      double yi = (double)x[i] * x[i] + 1, ref = 2.0 * x[i] * exp(yi) * w[i];
      CHECK(fabs(got[i] - ref) <= 1e-5 * (fabs(ref) + 1e-3), "stored: dx[%d] = %.9g, float64 reference %.9g", i, got[i], ref);
    }
    CHECK(cg_read(out, CG_FLOAT32, got, sizeof got) == CG_OK, "read: %s", cg_last_error());
    for (int i = 0; i < N; i++) {
      double ref = exp((double)x[i] * x[i] + 1);
      CHECK(fabs(got[i] - ref) <= 1e-5 * fabs(ref), "stored: value[%d] = %.9g, float64 reference %.9g", i, got[i], ref);
    }
    /* a value of another shape or dtype is refused with both named */
    CHECK(cg_stored(cg_reshape(e, (int64_t[]){1, N}, 2), y2) == NULL && strstr(cg_last_error(), "shape"), "stored: a (1, N) value for (N,) accepted");
    CHECK(cg_stored(cg_cast(e, CG_FLOAT64), y2) == NULL && strstr(cg_last_error(), "float64"), "stored: a float64 value for float32 accepted");
    CHECK(cg_stored(NULL, y2) == NULL && cg_last_error()[0], "stored(NULL, x) gave a tensor");
  }
  /* NULL in: NULL out with a message */
  CHECK(cg_realize_stored(NULL) == NULL && cg_last_error()[0], "realize_stored(NULL) gave a tensor");
  return test_summary();
}
