/* Random tensors from Threefry-2x32 (20 rounds), a counter-based generator: element i of
 * the n-th draw is threefry(key = seed, counter = base + i), so the same seed gives the
 * same bits on every run, thread count and device. Values are made on the host. The
 * generator (seed, counter) is per host thread: two threads with fixed seeds each get
 * their own deterministic sequence, whatever the other does. */
#include "tensor.h"
#include <math.h>

static _Thread_local uint64_t rng_seed, rng_counter;

void cg_manual_seed(uint64_t seed) {
  rng_seed = seed;
  rng_counter = 0;
}

void cg_rng_get(uint64_t *seed, uint64_t *counter) {
  if (seed) *seed = rng_seed;
  if (counter) *counter = rng_counter;
}
void cg_rng_set(uint64_t seed, uint64_t counter) {
  rng_seed = seed;
  rng_counter = counter;
}

static uint32_t rotl(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }

/* Threefry-2x32-20 of the counter (x0, x1) under key (k0, k1). */
static void threefry(uint32_t k0, uint32_t k1, uint32_t *x0, uint32_t *x1) {
  static const int R[8] = {13, 15, 26, 6, 17, 29, 16, 24};
  uint32_t ks[3] = {k0, k1, 0x1BD11BDAu ^ k0 ^ k1};
  uint32_t a = *x0 + ks[0], b = *x1 + ks[1];
  for (int r = 0; r < 20; r++) {
    a += b;
    b = rotl(b, R[r % 8]) ^ a;
    if (r % 4 == 3) {
      int s = r / 4 + 1;
      a += ks[s % 3];
      b += ks[(s + 1) % 3] + (uint32_t)s;
    }
  }
  *x0 = a, *x1 = b;
}

/* n pairs of random words, advancing the generator. */
static void draw(uint32_t *w, int64_t n) {
  uint64_t base = rng_counter;
  rng_counter += (uint64_t)n;
  uint32_t k0 = (uint32_t)rng_seed, k1 = (uint32_t)(rng_seed >> 32);
  for (int64_t i = 0; i < n; i++) {
    uint64_t c = base + (uint64_t)i;
    uint32_t x0 = (uint32_t)c, x1 = (uint32_t)(c >> 32);
    threefry(k0, k1, &x0, &x1);
    w[2 * i] = x0, w[2 * i + 1] = x1;
  }
}

/* A uniform double in [0, 1) from 53 random bits. */
static double unit(uint32_t a, uint32_t b) { return (double)(((uint64_t)a << 21) ^ (b >> 11)) * 0x1p-53; }

typedef enum { K_UNIFORM, K_NORMAL, K_INT } rkind;

static cg_tensor *random_tensor(const char *who, rkind kind, double lo, double hi, cg_dtype dt, const int64_t *shape, int ndim) {
  if ((int)dt < 0 || dt >= CG_NUM_DTYPES) return cg_fail_null(CG_ERR_INVALID, "%s: invalid dtype %d", who, (int)dt);
  if (!check_shape(who, shape, ndim, dt_of(dt))) return NULL;
  if (kind != K_INT && !dt_is_float(dt_of(dt))) return cg_fail_null(CG_ERR_INVALID, "%s: expected a float dtype, got %s", who, cg_dtype_name(dt));
  int64_t n = shape_numel(shape, ndim);
  uint32_t *w = malloc(sizeof(uint32_t) * 2 * (size_t)(n ? n : 1));
  if (!w) return cg_fail_null(CG_ERR_NOMEM, "%s: out of memory for %lld values", who, (long long)n);
  draw(w, n);
  op_begin();
  dtype d = dt_of(dt);
  uop *b = buffer_new(d, n);
  if (!b || buffer_alloc(b) != CG_OK) {
    free(w);
    return op_end(NULL);
  }
  void *p = buffer_of(b)->ptr;
  for (int64_t i = 0; i < n; i++) {
    double v;
    if (kind == K_UNIFORM) {
      v = lo + (hi - lo) * unit(w[2 * i], w[2 * i + 1]);
    } else if (kind == K_NORMAL) { /* Box-Muller on two 26-bit uniforms */
      double u1 = ((double)(w[2 * i] >> 6) + 1.0) * 0x1p-26, u2 = (double)(w[2 * i + 1] >> 6) * 0x1p-26;
      v = sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
    } else {
      uint64_t span = (uint64_t)(hi - lo), r = ((uint64_t)w[2 * i] << 32) | w[2 * i + 1];
      v = (double)((int64_t)lo + (int64_t)(r % span));
    }
    if (kind == K_UNIFORM && alu_round(d, v) >= hi) v = lo; /* rounding to dt must not reach hi */
    host_store(d, p, i, v);
  }
  free(w);
  return op_end(view_reshape(b, shape, ndim));
}

cg_tensor *cg_rand(cg_dtype dt, const int64_t *shape, int ndim) { return random_tensor("rand", K_UNIFORM, 0, 1, dt, shape, ndim); }
cg_tensor *cg_randn(cg_dtype dt, const int64_t *shape, int ndim) { return random_tensor("randn", K_NORMAL, 0, 1, dt, shape, ndim); }
cg_tensor *cg_uniform(double lo, double hi, cg_dtype dt, const int64_t *shape, int ndim) {
  if (!(lo < hi)) return cg_fail_null(CG_ERR_INVALID, "uniform: expected lo < hi, got %g and %g", lo, hi);
  return random_tensor("uniform", K_UNIFORM, lo, hi, dt, shape, ndim);
}
cg_tensor *cg_randint(int64_t lo, int64_t hi, const int64_t *shape, int ndim) {
  if (!(lo < hi)) return cg_fail_null(CG_ERR_INVALID, "randint: expected lo < hi, got %lld and %lld", (long long)lo, (long long)hi);
  if (lo < INT32_MIN || hi - 1 > INT32_MAX) return cg_fail_null(CG_ERR_INVALID, "randint: bounds must fit int32, got [%lld, %lld)", (long long)lo, (long long)hi);
  return random_tensor("randint", K_INT, (double)lo, (double)hi, CG_INT32, shape, ndim);
}
