/* Data: IDX files as tensors, the Fashion-MNIST set, and seeded shuffling into batches.
 *
 * The batcher gives, per batch, an int32 (B,) tensor of sample indices for
 * cg_index_select(x, 0, idx). Epoch e's order is a function of (seed, e) only: a
 * Fisher-Yates shuffle driven by SplitMix64 seeded from both, so the same seed gives the
 * same order on every run and a run resumed at epoch e sees what it would have seen. */
#include "core/error.h"
#include "nn/idx.h"
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

cg_tensor *cg_load_idx(const char *path) {
  if (!path) return cg_fail_null(CG_NULL_INPUT, "load_idx: path is NULL");
  idx_array *a = idx_load(path);
  if (!a) return NULL;
  cg_tensor *t = cg_from_data(a->data, a->dtype, a->shape, a->ndim);
  idx_free(a);
  return t;
}

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"

/* dir/name.gz or dir/name, whichever exists (the .gz first); false if neither. */
static bool find_file(const char *dir, const char *name, char *out, size_t n) {
  struct stat sb;
  snprintf(out, n, "%s/%s.gz", dir, name);
  if (stat(out, &sb) == 0) return true;
  snprintf(out, n, "%s/%s", dir, name);
  return stat(out, &sb) == 0;
}

/* Load one images/labels pair and check it is MNIST-shaped. */
static cg_status load_pair(const char *dir, const char *split, cg_tensor **x, cg_tensor **y) {
  char ip[4096], lp[4096], iname[64], lname[64];
  snprintf(iname, sizeof iname, "%s-images-idx3-ubyte", split);
  snprintf(lname, sizeof lname, "%s-labels-idx1-ubyte", split);
  if (!find_file(dir, iname, ip, sizeof ip) || !find_file(dir, lname, lp, sizeof lp))
    return cg_fail(CG_ERR_IO, "fashion_mnist: expected %s/%s.gz, found no such file: install the Debian package dataset-fashion-mnist",
                   dir, find_file(dir, iname, ip, sizeof ip) ? lname : iname);
  *x = cg_load_idx(ip);
  if (!*x) return cg_last_status();
  *y = cg_load_idx(lp);
  if (!*y) return cg_free(*x), cg_last_status();
  const int64_t *xs = cg_shape(*x), *ys = cg_shape(*y);
  cg_status st = CG_OK;
  if (cg_dtype_of(*x) != CG_UINT8 || cg_ndim(*x) != 3 || xs[1] != 28 || xs[2] != 28)
    st = cg_fail(CG_ERR_FORMAT, "fashion_mnist '%s': expected uint8 images of shape (N, 28, 28), found %s with %d dims", ip,
                 cg_dtype_name(cg_dtype_of(*x)), cg_ndim(*x));
  else if (cg_dtype_of(*y) != CG_UINT8 || cg_ndim(*y) != 1 || ys[0] != xs[0])
    st = cg_fail(CG_ERR_FORMAT, "fashion_mnist '%s': expected %lld uint8 labels (one per image), found %s with %d dims, %lld entries", lp,
                 (long long)xs[0], cg_dtype_name(cg_dtype_of(*y)), cg_ndim(*y), (long long)(cg_ndim(*y) ? ys[0] : 1));
  if (st != CG_OK) {
    cg_free(*x), cg_free(*y);
    *x = *y = NULL;
  }
  return st;
}

cg_status cg_fashion_mnist(const char *dir, cg_tensor **train_x, cg_tensor **train_y, cg_tensor **test_x, cg_tensor **test_y) {
  if (!train_x || !train_y || !test_x || !test_y) return cg_fail(CG_NULL_INPUT, "fashion_mnist: an output pointer is NULL");
  if (!dir) dir = FMNIST_DIR;
  cg_tensor *a = NULL, *b = NULL, *c = NULL, *d = NULL;
  cg_status st = load_pair(dir, "train", &a, &b);
  if (st == CG_OK && (st = load_pair(dir, "t10k", &c, &d)) != CG_OK) cg_free(a), cg_free(b);
  if (st != CG_OK) return st;
  *train_x = a, *train_y = b, *test_x = c, *test_y = d;
  return CG_OK;
}

/* ---- batches ------------------------------------------------------------------------- */

struct cg_batcher {
  int64_t n, batch, at, epoch;
  uint64_t seed;
  bool shuffle, drop_last;
  int32_t *order;
};

static uint64_t splitmix64(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* Uniform in [0, bound) without modulo bias (Lemire's method). */
static uint64_t below(uint64_t *s, uint64_t bound) {
  uint64_t x = splitmix64(s);
  unsigned __int128 m = (unsigned __int128)x * bound;
  uint64_t lo = (uint64_t)m;
  if (lo < bound) {
    uint64_t t = -bound % bound;
    while (lo < t) {
      x = splitmix64(s);
      m = (unsigned __int128)x * bound;
      lo = (uint64_t)m;
    }
  }
  return (uint64_t)(m >> 64);
}

static void make_order(cg_batcher *b) {
  for (int64_t i = 0; i < b->n; i++) b->order[i] = (int32_t)i;
  if (!b->shuffle) return;
  uint64_t s = b->seed ^ 0x5851F42D4C957F2Dull;
  splitmix64(&s);
  s ^= (uint64_t)b->epoch * 0xD1342543DE82EF95ull;
  for (int64_t i = b->n - 1; i > 0; i--) {
    int64_t j = (int64_t)below(&s, (uint64_t)i + 1);
    int32_t t = b->order[i];
    b->order[i] = b->order[j], b->order[j] = t;
  }
}

cg_batcher *cg_batcher_new(int64_t n, int64_t batch, uint64_t seed, bool shuffle, bool drop_last) {
  if (n < 0 || n > INT32_MAX) return cg_fail_null(CG_ERR_INVALID, "batcher_new: expected 0 <= n <= %d samples, got %lld", INT32_MAX, (long long)n);
  if (batch < 1) return cg_fail_null(CG_ERR_INVALID, "batcher_new: expected a batch size >= 1, got %lld", (long long)batch);
  cg_batcher *b = cg_calloc(1, sizeof *b);
  if (!b) return NULL;
  *b = (cg_batcher){.n = n, .batch = batch, .seed = seed, .shuffle = shuffle, .drop_last = drop_last};
  b->order = cg_malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
  if (!b->order) return free(b), NULL;
  make_order(b);
  return b;
}

void cg_batcher_free(cg_batcher *b) {
  if (!b) return;
  free(b->order);
  free(b);
}

int64_t cg_batcher_count(const cg_batcher *b) {
  if (!b) return -1;
  return b->drop_last ? b->n / b->batch : (b->n + b->batch - 1) / b->batch;
}

int64_t cg_batcher_epoch(const cg_batcher *b) { return b ? b->epoch : -1; }

cg_status cg_batcher_reset(cg_batcher *b, int64_t epoch) {
  if (!b) return cg_fail(CG_NULL_INPUT, "batcher_reset: batcher is NULL");
  if (epoch < 0) return cg_fail(CG_ERR_INVALID, "batcher_reset: expected an epoch >= 0, got %lld", (long long)epoch);
  b->epoch = epoch;
  b->at = 0;
  make_order(b);
  return CG_OK;
}

int cg_batcher_next(cg_batcher *b, cg_tensor **idx) {
  if (!b || !idx) return cg_fail(CG_NULL_INPUT, "batcher_next: %s is NULL", b ? "the output pointer" : "batcher");
  *idx = NULL;
  int64_t left = b->n - b->at;
  int64_t take = left < b->batch ? left : b->batch;
  if (take <= 0 || (b->drop_last && take < b->batch)) return 0;
  int64_t shape[1] = {take};
  cg_tensor *t = cg_from_data(b->order + b->at, CG_INT32, shape, 1);
  if (!t) return cg_last_status();
  b->at += take;
  *idx = t;
  return 1;
}
