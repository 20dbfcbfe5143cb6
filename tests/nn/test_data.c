/* Data: Fashion-MNIST through cg_load_idx and cg_fashion_mnist (skipped with a note when
 * the Debian package dataset-fashion-mnist is not installed), corrupt and truncated IDX
 * files, the missing-dataset message, and the batcher: the same seed gives the same order,
 * another seed or epoch another; every index exactly once per epoch; drop_last; batches
 * feed cg_index_select. */
#include "check.h"
#include "cgrad.h"
#include <string.h>

#define FM "/usr/share/datasets/fashion-mnist"
static char dir[64];

static void spit(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  if (f) fwrite(p, 1, n, f), fclose(f);
}

static void real_dataset(void) {
  FILE *f = fopen(FM "/t10k-labels-idx1-ubyte.gz", "rb");
  if (!f) {
    printf("note: %s is missing (install the Debian package dataset-fashion-mnist); the real-data checks are skipped\n", FM);
    return;
  }
  fclose(f);
  cg_scope_begin();
  cg_tensor *y = cg_load_idx(FM "/t10k-labels-idx1-ubyte.gz");
  CHECK(y && cg_ndim(y) == 1 && cg_shape(y)[0] == 10000 && cg_dtype_of(y) == CG_UINT8, "%s", cg_last_error());
  cg_tensor *x = cg_load_idx(FM "/t10k-images-idx3-ubyte.gz");
  CHECK(x && cg_ndim(x) == 3 && cg_shape(x)[0] == 10000 && cg_shape(x)[1] == 28 && cg_shape(x)[2] == 28 && cg_dtype_of(x) == CG_UINT8,
        "%s", cg_last_error());
  if (y) {
    static uint8_t lab[10000];
    CHECK(cg_read(y, CG_UINT8, lab, sizeof lab) == CG_OK);
    int count[10] = {0}, bad = 0;
    for (int i = 0; i < 10000; i++) lab[i] < 10 ? count[lab[i]]++ : bad++;
    CHECK(bad == 0, "%d labels outside 0..9", bad);
    for (int c = 0; c < 10; c++) CHECK(count[c] == 1000, "class %d has %d test images", c, count[c]);
    /* the published first test labels: ankle boot, pullover, trouser, trouser, shirt */
    CHECK(lab[0] == 9 && lab[1] == 2 && lab[2] == 1 && lab[3] == 1 && lab[4] == 6, "%d %d %d %d %d", lab[0], lab[1], lab[2], lab[3], lab[4]);
  }
  if (x) {
    double mean = cg_item(cg_mean(cg_cast(x, CG_FLOAT32), NULL, 0, false));
    CHECK(mean > 60 && mean < 85, "mean pixel %g", mean); /* Fashion-MNIST: about 73 */
    printf("t10k: 10000 images, mean pixel %.2f\n", mean);
  }
  cg_tensor *trx = NULL, *try_ = NULL, *tex = NULL, *tey = NULL;
  CHECK(cg_fashion_mnist(NULL, &trx, &try_, &tex, &tey) == CG_OK, "%s", cg_last_error());
  CHECK(trx && cg_shape(trx)[0] == 60000 && cg_ndim(trx) == 3 && try_ && cg_shape(try_)[0] == 60000);
  CHECK(tex && cg_shape(tex)[0] == 10000 && tey && cg_shape(tey)[0] == 10000);
  /* a batch through index_select */
  cg_batcher *b = cg_batcher_new(60000, 32, 1, true, true);
  cg_tensor *idx;
  CHECK(cg_batcher_next(b, &idx) == 1);
  cg_tensor *xb = cg_index_select(trx, 0, idx), *yb = cg_index_select(try_, 0, idx);
  CHECK(xb && cg_shape(xb)[0] == 32 && cg_shape(xb)[1] == 28 && yb && cg_shape(yb)[0] == 32, "%s", cg_last_error());
  int32_t ix[32];
  uint8_t yl[32];
  CHECK(cg_read(idx, CG_INT32, ix, sizeof ix) == CG_OK && cg_read(yb, CG_UINT8, yl, sizeof yl) == CG_OK);
  cg_tensor *one = cg_index_select(try_, 0, cg_from_data(&ix[5], CG_INT32, (int64_t[]){1}, 1));
  CHECK(one && cg_item(one) == yl[5]);
  cg_batcher_free(b);
  cg_scope_end();
}

static void bad_files(void) {
  char p[128];
  /* a good tiny IDX: 2 labels */
  const unsigned char good[] = {0, 0, 8, 1, 0, 0, 0, 2, 7, 3};
  snprintf(p, sizeof p, "%s/good.idx", dir);
  spit(p, good, sizeof good);
  cg_tensor *t = cg_load_idx(p);
  CHECK(t && cg_numel(t) == 2 && cg_item(cg_sum(cg_cast(t, CG_INT32), NULL, 0, false)) == 10, "%s", cg_last_error());
  cg_free(t);
  snprintf(p, sizeof p, "%s/short.idx", dir);
  spit(p, good, sizeof good - 1);
  cg_clear_error();
  CHECK(cg_load_idx(p) == NULL && cg_last_status() == CG_ERR_FORMAT && strstr(cg_last_error(), "short.idx"), "%s", cg_last_error());
  const unsigned char badtype[] = {0, 0, 0x42, 1, 0, 0, 0, 1, 0};
  snprintf(p, sizeof p, "%s/type.idx", dir);
  spit(p, badtype, sizeof badtype);
  cg_clear_error();
  CHECK(cg_load_idx(p) == NULL && cg_last_status() == CG_ERR_FORMAT, "%s", cg_last_error());
  const unsigned char gz[] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3}; /* gzip cut short */
  snprintf(p, sizeof p, "%s/cut.idx.gz", dir);
  spit(p, gz, sizeof gz);
  cg_clear_error();
  CHECK(cg_load_idx(p) == NULL && cg_last_status() != CG_OK && strstr(cg_last_error(), "cut.idx.gz"), "%s", cg_last_error());
  cg_clear_error();
  CHECK(cg_load_idx(NULL) == NULL && cg_last_status() == CG_ERR_INVALID);
  /* the missing data set names the package */
  cg_tensor *a = (cg_tensor *)1, *b = a, *c = a, *d = a;
  cg_clear_error();
  CHECK(cg_fashion_mnist(dir, &a, &b, &c, &d) == CG_ERR_IO && strstr(cg_last_error(), "install the Debian package dataset-fashion-mnist") &&
            strstr(cg_last_error(), "train-images-idx3-ubyte"),
        "%s", cg_last_error());
  CHECK(a == (cg_tensor *)1 && d == (cg_tensor *)1, "outputs set on failure");
  printf("missing data set: %s\n", cg_last_error());
}

/* Read one epoch's order; returns how many batches, fills sizes. */
static int64_t epoch(cg_batcher *b, int32_t *out, int64_t *sizes, int64_t max_batches) {
  int64_t at = 0, nb = 0;
  cg_tensor *idx;
  int r;
  while ((r = cg_batcher_next(b, &idx)) == 1) {
    int64_t k = cg_numel(idx);
    CHECK(cg_ndim(idx) == 1 && cg_dtype_of(idx) == CG_INT32);
    CHECK(cg_read(idx, CG_INT32, out + at, sizeof(int32_t) * (size_t)k) == CG_OK);
    if (nb < max_batches) sizes[nb] = k;
    at += k, nb++;
    cg_free(idx);
  }
  CHECK(r == 0 && idx == NULL, "end of epoch gave %d", r);
  return nb;
}

static void batcher(void) {
  enum { N = 103, B = 10 };
  int32_t o1[N], o2[N], o3[N], o4[N];
  int64_t sz[16];
  cg_batcher *a = cg_batcher_new(N, B, 42, true, false), *b = cg_batcher_new(N, B, 42, true, false);
  CHECK(cg_batcher_count(a) == 11);
  CHECK(epoch(a, o1, sz, 16) == 11 && sz[0] == B && sz[10] == 3, "last batch %lld", (long long)sz[10]);
  CHECK(epoch(b, o2, sz, 16) == 11);
  CHECK(memcmp(o1, o2, sizeof o1) == 0, "the same seed gave another order");
  int seen[N] = {0}, in_order = 0;
  for (int i = 0; i < N; i++) seen[o1[i]]++, in_order += o1[i] == i;
  int once = 0;
  for (int i = 0; i < N; i++) once += seen[i] == 1;
  CHECK(once == N, "%d of %d indices seen exactly once", once, N);
  CHECK(in_order < N / 4, "%d of %d indices in place: not shuffled", in_order, N);
  /* epoch 1: another permutation, again complete; and resuming at epoch 1 repeats it */
  CHECK(cg_batcher_reset(a, 1) == CG_OK && cg_batcher_epoch(a) == 1);
  epoch(a, o3, sz, 16);
  CHECK(memcmp(o1, o3, sizeof o1) != 0, "epoch 1 repeated epoch 0");
  memset(seen, 0, sizeof seen);
  for (int i = 0; i < N; i++) seen[o3[i]]++;
  once = 0;
  for (int i = 0; i < N; i++) once += seen[i] == 1;
  CHECK(once == N);
  cg_batcher *c = cg_batcher_new(N, B, 42, true, false);
  cg_batcher_reset(c, 1);
  epoch(c, o4, sz, 16);
  CHECK(memcmp(o3, o4, sizeof o3) == 0, "epoch 1 differs between runs");
  /* another seed, another order */
  cg_batcher *d = cg_batcher_new(N, B, 43, true, false);
  epoch(d, o4, sz, 16);
  CHECK(memcmp(o1, o4, sizeof o1) != 0);
  /* the same seed, reset to epoch 0 again */
  cg_batcher_reset(a, 0);
  epoch(a, o4, sz, 16);
  CHECK(memcmp(o1, o4, sizeof o1) == 0);
  /* no shuffle: 0..N-1; drop_last: 10 full batches */
  cg_batcher *e = cg_batcher_new(N, B, 0, false, true);
  CHECK(cg_batcher_count(e) == 10);
  CHECK(epoch(e, o4, sz, 16) == 10 && sz[9] == B);
  bool ident = true;
  for (int i = 0; i < 10 * B; i++) ident &= o4[i] == i;
  CHECK(ident);
  /* edge cases */
  cg_batcher *f = cg_batcher_new(5, 8, 1, true, true);
  CHECK(cg_batcher_count(f) == 0 && epoch(f, o4, sz, 16) == 0);
  cg_batcher *g = cg_batcher_new(0, 8, 1, true, false);
  CHECK(g && epoch(g, o4, sz, 16) == 0);
  cg_clear_error();
  CHECK(cg_batcher_new(10, 0, 1, true, false) == NULL && strstr(cg_last_error(), "batch size >= 1, got 0"), "%s", cg_last_error());
  CHECK(cg_batcher_new(-1, 4, 1, true, false) == NULL && strstr(cg_last_error(), "got -1"), "%s", cg_last_error());
  CHECK(cg_batcher_reset(a, -2) == CG_ERR_INVALID);
  cg_tensor *idx;
  CHECK(cg_batcher_next(NULL, &idx) == CG_ERR_INVALID);
  cg_batcher_free(a), cg_batcher_free(b), cg_batcher_free(c), cg_batcher_free(d), cg_batcher_free(e), cg_batcher_free(f),
      cg_batcher_free(g), cg_batcher_free(NULL);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/cg_data_XXXXXX");
  if (!mkdtemp(dir)) {
    CHECK(0, "mkdtemp failed");
    return test_summary();
  }
  batcher();
  bad_files();
  real_dataset();
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return test_summary();
}
