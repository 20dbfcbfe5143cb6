/* IDX: hand-built big-endian files of all six types, round trips through idx_save, gzip
 * files (compressed with the gzip program) including truncated ones, corrupt files with
 * messages naming expected and found sizes, and -- when the Debian package
 * dataset-fashion-mnist is installed -- the real Fashion-MNIST files. */
#include "check.h"
#include "tmpfiles.h"
#include "core/error.h"
#include "nn/idx.h"
#include <dirent.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static unsigned long long rng = 0xDA942042E4DD58B5ull;
static uint64_t rnd(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return rng;
}

/* idx_parse must fail with a message containing want. */
static void expect_bad(const unsigned char *b, size_t n, const char *want, int line) {
  cg_clear_error();
  idx_array *a = idx_parse(b, n, "bad.idx");
  if (a || cg_last_status() != CG_ERR_FORMAT || !strstr(cg_last_error(), want) || !strstr(cg_last_error(), "bad.idx")) {
    t_fail++;
    fprintf(stderr, "FAIL line %d: expected an error mentioning \"%s\", got %s: \"%s\"\n", line, want,
            a ? "an array" : "NULL", cg_last_error());
  } else
    t_pass++;
  idx_free(a);
}
#define BAD(b, n, want) expect_bad(b, n, want, __LINE__)

/* ---- 1. hand-built big-endian files --------------------------------------------------- */
static void test_known_bytes(void) {
  static const unsigned char i32[] = {0, 0, 0x0C, 1, 0, 0, 0, 2, 0, 0, 1, 2, 0xFF, 0xFF, 0xFF, 0xFE};
  idx_array *a = idx_parse(i32, sizeof i32, "i32");
  CHECK(a && a->dtype == CG_INT32 && a->ndim == 1 && a->shape[0] == 2 && a->nbytes == 8, "int32: %s", cg_last_error());
  if (a) CHECK(((int32_t *)a->data)[0] == 258 && ((int32_t *)a->data)[1] == -2, "int32 values");
  idx_free(a);
  static const unsigned char f32[] = {0, 0, 0x0D, 2, 0, 0, 0, 1, 0, 0, 0, 2, 0x3F, 0x80, 0, 0, 0xC0, 0x20, 0, 0};
  a = idx_parse(f32, sizeof f32, "f32");
  CHECK(a && a->dtype == CG_FLOAT32 && a->ndim == 2 && a->shape[1] == 2, "float32: %s", cg_last_error());
  if (a) CHECK(((float *)a->data)[0] == 1.0f && ((float *)a->data)[1] == -2.5f, "float32 values");
  idx_free(a);
  static const unsigned char f64[] = {0, 0, 0x0E, 1, 0, 0, 0, 1, 0x40, 0x09, 0x21, 0xFB, 0x54, 0x44, 0x2D, 0x18};
  a = idx_parse(f64, sizeof f64, "f64");
  CHECK(a && a->dtype == CG_FLOAT64 && ((double *)a->data)[0] == 3.141592653589793, "float64: %s", cg_last_error());
  idx_free(a);
  static const unsigned char i16[] = {0, 0, 0x0B, 1, 0, 0, 0, 2, 0x80, 0x00, 0x01, 0x00};
  a = idx_parse(i16, sizeof i16, "i16");
  CHECK(a && a->dtype == CG_INT16 && ((int16_t *)a->data)[0] == -32768 && ((int16_t *)a->data)[1] == 256, "int16");
  idx_free(a);
  static const unsigned char u8[] = {0, 0, 0x08, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3, 4};
  a = idx_parse(u8, sizeof u8, "u8");
  CHECK(a && a->dtype == CG_UINT8 && a->ndim == 3 && a->nbytes == 4 && !memcmp(a->data, "\1\2\3\4", 4), "uint8");
  idx_free(a);
  static const unsigned char i8[] = {0, 0, 0x09, 1, 0, 0, 0, 1, 0xFF};
  a = idx_parse(i8, sizeof i8, "i8");
  CHECK(a && a->dtype == CG_INT8 && ((int8_t *)a->data)[0] == -1, "int8");
  idx_free(a);
  /* idx_save writes these same bytes */
  int32_t v32[2] = {258, -2};
  int64_t two = 2;
  size_t n;
  CHECK(idx_save(in_dir("i32.idx"), CG_INT32, 1, &two, v32) == CG_OK, "%s", cg_last_error());
  unsigned char *b = read_file(in_dir("i32.idx"), &n);
  CHECK(b && n == sizeof i32 && !memcmp(b, i32, n), "idx_save bytes");
  free(b);
}

/* ---- 2. round trips ---------------------------------------------------------------------- */
static const cg_dtype types[] = {CG_UINT8, CG_INT8, CG_INT16, CG_INT32, CG_FLOAT32, CG_FLOAT64};

static void test_roundtrip(void) {
  for (int k = 0; k < 6; k++)
    for (int rep = 0; rep < 5; rep++) {
      int ndim = rep == 4 ? IDX_MAX_DIMS : rep;
      int64_t shape[IDX_MAX_DIMS];
      for (int d = 0; d < ndim; d++) shape[d] = ndim == IDX_MAX_DIMS ? 2 : (int64_t)(rnd() % 9);
      size_t nb = cg_dtype_size(types[k]);
      for (int d = 0; d < ndim; d++) nb *= (size_t)shape[d];
      unsigned char *p = malloc(nb + 1);
      for (size_t i = 0; i < nb; i++) p[i] = (unsigned char)rnd();
      CHECK(idx_save(in_dir("rt.idx"), types[k], ndim, shape, p) == CG_OK, "%s", cg_last_error());
      idx_array *a = idx_load(in_dir("rt.idx"));
      bool same = a && a->dtype == types[k] && a->ndim == ndim && a->nbytes == nb && (!nb || !memcmp(a->data, p, nb));
      for (int d = 0; same && d < ndim; d++) same = a->shape[d] == shape[d];
      CHECK(same, "%s %d-d round trip: %s", cg_dtype_name(types[k]), ndim, a ? "differs" : cg_last_error());
      idx_free(a);
      free(p);
    }
  int64_t one = 1;
  float x = 0;
  CHECK(idx_save(in_dir("no.idx"), CG_FLOAT16, 1, &one, &x) == CG_ERR_INVALID && strstr(cg_last_error(), "float16"),
        "%s", cg_last_error());
  int64_t big = 1ll << 33;
  CHECK(idx_save(in_dir("no.idx"), CG_UINT8, 1, &big, &x) == CG_ERR_INVALID && strstr(cg_last_error(), "4294967295"),
        "%s", cg_last_error());
  CHECK(access(in_dir("no.idx"), F_OK) != 0, "a refused save created a file");
}

/* ---- 3. corrupt files ------------------------------------------------------------------- */
static void test_bad(void) {
  /* a 2x3x4 uint8 file to damage */
  unsigned char good[16 + 24];
  unsigned char hdr[16] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4};
  memcpy(good, hdr, 16);
  for (int i = 0; i < 24; i++) good[16 + i] = (unsigned char)i;
  unsigned char b[64];
  memcpy(b, good, sizeof good);
  b[1] = 8;
  BAD(b, sizeof good, "expected the magic to start with bytes 00 00, found 00 08");
  memcpy(b, good, sizeof good);
  b[0] = 0x50, b[1] = 0x4B; /* a zip file, say */
  BAD(b, sizeof good, "not an IDX file");
  memcpy(b, good, sizeof good);
  b[2] = 0x0A;
  BAD(b, sizeof good, "unknown type code 0x0A: expected one of 0x08 uint8");
  memcpy(b, good, sizeof good);
  b[3] = 9;
  BAD(b, sizeof good, "9 dimensions, more than the 8");
  BAD(good, sizeof good - 1, "expected 24 data bytes (shape 2x3x4 of uint8) after the 16-byte header, found 23: truncated");
  BAD(good, 16, "found 0: truncated");
  memcpy(b, good, sizeof good);
  b[sizeof good] = 7;
  BAD(b, sizeof good + 1, "found 25: extra bytes");
  BAD(good, 10, "the header needs 16 bytes for 3 dimensions, but the file is 10 bytes");
  BAD(good, 3, "too short for the 4-byte IDX magic");
  static const unsigned char huge[] = {0, 0, 0x0E, 3, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
  BAD(huge, sizeof huge, "too large");
  for (size_t cut = 0; cut < sizeof good; cut++) CHECK(!idx_parse(good, cut, "cut"), "cut at %zu accepted", cut);
  /* a random-header fuzz: every outcome is a clean accept or reject */
  for (int it = 0; it < 2000; it++) {
    memcpy(b, good, sizeof good);
    b[rnd() % 16] = (unsigned char)rnd();
    idx_array *a = idx_parse(b, sizeof good, "fuzz");
    if (a) CHECK(a->nbytes == 24, "fuzz accepted %zu bytes", a->nbytes);
    else CHECK(cg_last_error()[0], "a rejection without a message");
    idx_free(a);
  }
  /* on disk: a missing file, a truncated file */
  CHECK(!idx_load(in_dir("missing-idx3-ubyte")) && strstr(cg_last_error(), "missing-idx3-ubyte") &&
            strstr(cg_last_error(), "No such file") && cg_last_status() == CG_ERR_IO,
        "%s", cg_last_error());
  write_file(in_dir("cut-idx3-ubyte"), good, sizeof good - 4);
  CHECK(!idx_load(in_dir("cut-idx3-ubyte")) && strstr(cg_last_error(), "cut-idx3-ubyte") &&
            strstr(cg_last_error(), "expected 24 data bytes") && strstr(cg_last_error(), "found 20"),
        "%s", cg_last_error());
}

/* ---- 4. gzip ----------------------------------------------------------------------------- */
static void test_gzip(void) {
  int64_t shape[3] = {7, 5, 3};
  int32_t v[105];
  for (int i = 0; i < 105; i++) v[i] = (int32_t)(rnd() & 0xFFFFFFFF);
  CHECK(idx_save(in_dir("g.idx"), CG_INT32, 3, shape, v) == CG_OK, "%s", cg_last_error());
  if (system("command -v gzip >/dev/null 2>&1") != 0) {
    printf("skipped: the gzip tests (no gzip program to make the files)\n");
    return;
  }
  char cmd[1600];
  snprintf(cmd, sizeof cmd, "gzip -c '%s' > '%s'", in_dir("g.idx"), in_dir("g.idx.gz"));
  CHECK(system(cmd) == 0, "gzip");
  if (!idx_have_gzip()) {
    CHECK(!idx_load(in_dir("g.idx.gz")) && strstr(cg_last_error(), "without zlib") && strstr(cg_last_error(), "g.idx.gz"),
          "%s", cg_last_error());
    printf("skipped: reading gzip files (cgrad built without zlib); checked the error instead\n");
    return;
  }
  idx_array *a = idx_load(in_dir("g.idx.gz"));
  CHECK(a && a->dtype == CG_INT32 && a->ndim == 3 && a->shape[0] == 7 && a->shape[2] == 3 &&
            !memcmp(a->data, v, sizeof v),
        "gzip round trip: %s", cg_last_error());
  idx_free(a);
  /* truncated compressed stream, at several points */
  size_t gn;
  unsigned char *gz = read_file(in_dir("g.idx.gz"), &gn);
  size_t cuts[] = {1, 2, 10, gn / 2, gn - 9, gn - 1};
  for (int k = 0; k < 6; k++) {
    write_file(in_dir("cut.gz"), gz, cuts[k]);
    cg_clear_error();
    a = idx_load(in_dir("cut.gz"));
    CHECK(!a && strstr(cg_last_error(), "cut.gz"), "gzip cut at %zu/%zu: %s", cuts[k], gn, cg_last_error());
    idx_free(a);
  }
  free(gz);
  /* decompresses fine but the IDX inside is short, or long */
  int64_t s2[1] = {100};
  CHECK(idx_save(in_dir("short.idx"), CG_INT32, 1, s2, v) == CG_OK, "%s", cg_last_error());
  size_t sn;
  unsigned char *sb = read_file(in_dir("short.idx"), &sn);
  write_file(in_dir("short.idx"), sb, sn - 8);
  write_file(in_dir("long.idx"), sb, sn);
  FILE *f = fopen(in_dir("long.idx"), "ab");
  fputs("junk", f);
  fclose(f);
  free(sb);
  snprintf(cmd, sizeof cmd, "gzip -f '%s' '%s'", in_dir("short.idx"), in_dir("long.idx"));
  CHECK(system(cmd) == 0, "gzip");
  CHECK(!idx_load(in_dir("short.idx.gz")) && strstr(cg_last_error(), "expected 400 data bytes") &&
            strstr(cg_last_error(), "found 392: truncated"),
        "%s", cg_last_error());
  CHECK(!idx_load(in_dir("long.idx.gz")) && strstr(cg_last_error(), "found 404: extra bytes"), "%s", cg_last_error());
  /* a gzip of something that is not IDX */
  write_file(in_dir("text"), "hello, world\n", 13);
  snprintf(cmd, sizeof cmd, "gzip -f '%s'", in_dir("text"));
  CHECK(system(cmd) == 0, "gzip");
  CHECK(!idx_load(in_dir("text.gz")) && strstr(cg_last_error(), "not an IDX file"), "%s", cg_last_error());
  /* a header claiming 2 GB over 1000 bytes of data: refused from the sizes, before inflating */
  unsigned char huge[8 + 1000] = {0, 0, 0x08, 1, 0x77, 0x35, 0x94, 0x00}; /* uint8, dims (2000000000,) */
  write_file(in_dir("huge.idx"), huge, sizeof huge);
  snprintf(cmd, sizeof cmd, "gzip -f '%s'", in_dir("huge.idx"));
  CHECK(system(cmd) == 0, "gzip");
  CHECK(!idx_load(in_dir("huge.idx.gz")) && strstr(cg_last_error(), "claims 2000000008 bytes"), "%s", cg_last_error());
}

/* Not regular files: /dev/zero (directly or through a symlink) and a FIFO are refused at
 * once, never read forever; the same for the other loaders. */
static void test_not_regular(void) {
  CHECK(!idx_load("/dev/zero") && strstr(cg_last_error(), "regular file"), "%s", cg_last_error());
  CHECK(symlink("/dev/zero", in_dir("zero-link")) == 0);
  CHECK(!idx_load(in_dir("zero-link")) && strstr(cg_last_error(), "regular file"), "%s", cg_last_error());
  CHECK(mkfifo(in_dir("fifo"), 0600) == 0);
  CHECK(!idx_load(in_dir("fifo")) && strstr(cg_last_error(), "regular file"), "%s", cg_last_error());
  CHECK(!cg_load_npy(in_dir("zero-link")) && strstr(cg_last_error(), "character device"), "%s", cg_last_error());
  CHECK(!cg_load_npy(in_dir("fifo")) && strstr(cg_last_error(), "a FIFO"), "%s", cg_last_error());
  cg_tensor *t = cg_zeros(CG_FLOAT32, (int64_t[]){2}, 1);
  CHECK(cg_load_safetensors("/dev/zero", (const char *[]){"t"}, &t, 1) != CG_OK && strstr(cg_last_error(), "character device"), "%s",
        cg_last_error());
  cg_free(t);
}

/* ---- 5. atomic save -------------------------------------------------------------------- */
static void test_atomic(void) {
  char sub[600], path[700];
  snprintf(sub, sizeof sub, "%s/atomic", tmp_dir);
  mkdir(sub, 0755);
  snprintf(path, sizeof path, "%s/labels-idx1-ubyte", sub);
  uint8_t a[10] = {1, 2, 3}, b[5000] = {9};
  int64_t na = 10, nb = 5000;
  CHECK(idx_save(path, CG_UINT8, 1, &na, a) == CG_OK, "%s", cg_last_error());
  cg_set_config("CG_FAULT_WRITE_BYTES", "1000");
  CHECK(idx_save(path, CG_UINT8, 1, &nb, b) == CG_ERR_IO && strstr(cg_last_error(), "labels-idx1-ubyte"), "%s",
        cg_last_error());
  cg_set_config("CG_FAULT_WRITE_BYTES", "");
  idx_array *x = idx_load(path);
  CHECK(x && x->nbytes == 10 && !memcmp(x->data, a, 10), "the previous file changed");
  CHECK(count_entries(sub) == 1, "temp file left behind");
  idx_free(x);
}

/* ---- 6. the real Fashion-MNIST ------------------------------------------------------------ */
static const char *find_dataset(char *buf, size_t cap, const char *base) {
  const char *dirs[] = {getenv("CG_FASHION_MNIST"), "/usr/share/datasets/fashion-mnist",
                        "/usr/share/dataset-fashion-mnist", "/usr/share/fashion-mnist"};
  const char *ext[] = {".gz", ""};
  for (int d = 0; d < 4; d++)
    for (int e = 0; dirs[d] && e < 2; e++) {
      snprintf(buf, cap, "%s/%s%s", dirs[d], base, ext[e]);
      if (access(buf, R_OK) == 0 && (e == 1 || idx_have_gzip())) return buf;
    }
  return NULL;
}

static void check_split(const char *images, const char *labels, int64_t n) {
  char ip[600], lp[600];
  if (!find_dataset(ip, sizeof ip, images) || !find_dataset(lp, sizeof lp, labels)) {
    printf("skipped: Fashion-MNIST %s / %s not found (install dataset-fashion-mnist; gzip files need zlib)\n", images,
           labels);
    return;
  }
  idx_array *x = idx_load(ip), *y = idx_load(lp);
  CHECK(x && x->dtype == CG_UINT8 && x->ndim == 3 && x->shape[0] == n && x->shape[1] == 28 && x->shape[2] == 28,
        "%s: %s", ip, x ? "wrong shape" : cg_last_error());
  CHECK(y && y->dtype == CG_UINT8 && y->ndim == 1 && y->shape[0] == n, "%s: %s", lp, y ? "wrong shape" : cg_last_error());
  if (x && y) {
    int64_t hist[256] = {0};
    const uint8_t *l = y->data;
    for (int64_t i = 0; i < n; i++) hist[l[i]]++;
    int64_t out = 0;
    for (int c = 10; c < 256; c++) out += hist[c];
    CHECK(out == 0, "%lld labels outside 0..9", (long long)out);
    for (int c = 0; c < 10; c++) CHECK(hist[c] == n / 10, "class %d has %lld examples, expected %lld", c, (long long)hist[c], (long long)n / 10);
    double sum = 0;
    const uint8_t *px = x->data;
    for (size_t i = 0; i < x->nbytes; i++) sum += px[i];
    double mean = sum / (double)x->nbytes;
    CHECK(mean > 70 && mean < 76, "mean pixel %.2f, expected about 73 (0.286 * 255)", mean);
    printf("Fashion-MNIST %s: %lldx28x28 images, mean pixel %.2f; labels 0..9, %lld each\n", ip, (long long)n, mean,
           (long long)n / 10);
  }
  idx_free(x);
  idx_free(y);
}

int main(void) {
  snprintf(tmp_dir, sizeof tmp_dir, "%s/cg_idx_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(tmp_dir)) {
    perror("mkdtemp");
    return 1;
  }
  test_known_bytes();
  test_roundtrip();
  test_bad();
  test_gzip();
  test_not_regular();
  test_atomic();
  check_split("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60000);
  check_split("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10000);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_dir);
  return test_summary();
}
