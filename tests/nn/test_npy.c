/* .npy: round trips of every storable dtype with random data and shapes from 0-d to 8-d;
 * when numpy is present, files numpy wrote (versions 1.0, 2.0, 3.0) read in C, our header
 * bytes identical to numpy's, and numpy loading what we wrote; rejection of Fortran
 * order, big-endian, structured and unknown dtypes and of corrupt files with messages
 * that say what was expected; the atomic save under an injected disk-full. */
#include "check.h"
#include "tmpfiles.h"
#include "core/error.h"
#include "nn/npy.h"
#include <dirent.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static unsigned long long rng = 0x853C49E6748FEA9Bull;
static uint64_t rnd(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return rng;
}

/* The pattern the Python side computes too: (i*37 % 101) - 50; unsigned without -50;
 * floats divided by 4; bool i % 3 == 0. */
static void fill(cg_dtype dt, void *p, int64_t count) {
  for (int64_t i = 0; i < count; i++) {
    int64_t u = i * 37 % 101, s = u - 50;
    switch (dt) {
    case CG_BOOL: ((uint8_t *)p)[i] = i % 3 == 0; break;
    case CG_UINT8: ((uint8_t *)p)[i] = (uint8_t)u; break;
    case CG_UINT16: ((uint16_t *)p)[i] = (uint16_t)u; break;
    case CG_UINT32: ((uint32_t *)p)[i] = (uint32_t)u; break;
    case CG_UINT64: ((uint64_t *)p)[i] = (uint64_t)u; break;
    case CG_INT8: ((int8_t *)p)[i] = (int8_t)s; break;
    case CG_INT16: ((int16_t *)p)[i] = (int16_t)s; break;
    case CG_INT32: ((int32_t *)p)[i] = (int32_t)s; break;
    case CG_INT64: ((int64_t *)p)[i] = s; break;
    case CG_FLOAT16: ((uint16_t *)p)[i] = cg_f32_to_f16((float)s / 4.0f); break;
    case CG_FLOAT32: ((float *)p)[i] = (float)s / 4.0f; break;
    case CG_FLOAT64: ((double *)p)[i] = (double)s / 4.0; break;
    default: break;
    }
  }
}

static const cg_dtype storable[] = {CG_BOOL,   CG_INT8,   CG_UINT8,  CG_INT16,   CG_UINT16,  CG_INT32,
                                    CG_UINT32, CG_INT64,  CG_UINT64, CG_FLOAT16, CG_FLOAT32, CG_FLOAT64};
#define NSTORABLE (int)(sizeof storable / sizeof storable[0])

/* The shapes both sides use for the cross-check. */
static const int xs_ndim[4] = {0, 1, 2, 3};
static const int64_t xs_shape[4][3] = {{0}, {5}, {0, 4}, {2, 3, 4}};

static int64_t numel(int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) n *= shape[d];
  return n;
}

/* ---- 1. round trips --------------------------------------------------------------------- */
static void test_roundtrip(void) {
  for (int k = 0; k < NSTORABLE; k++)
    for (int rep = 0; rep < 6; rep++) {
      cg_dtype dt = storable[k];
      int ndim = rep == 0 ? 0 : rep == 5 ? NPY_MAX_DIMS : (int)(rnd() % 5);
      int64_t shape[NPY_MAX_DIMS];
      for (int d = 0; d < ndim; d++) shape[d] = ndim == NPY_MAX_DIMS ? 1 + (int64_t)(rnd() % 2) : (int64_t)(rnd() % 7);
      size_t nb = (size_t)numel(ndim, shape) * cg_dtype_size(dt);
      unsigned char *p = malloc(nb + 1);
      for (size_t i = 0; i < nb; i++) p[i] = dt == CG_BOOL ? (unsigned char)(rnd() & 1) : (unsigned char)rnd();
      const char *path = in_dir("rt.npy");
      CHECK(npy_save(path, dt, ndim, shape, p) == CG_OK, "save %s: %s", cg_dtype_name(dt), cg_last_error());
      npy_array *a = npy_load(path);
      CHECK(a != NULL, "load %s: %s", cg_dtype_name(dt), cg_last_error());
      if (a) {
        bool same = a->dtype == dt && a->ndim == ndim && a->nbytes == nb && a->version == 1 &&
                    (!nb || !memcmp(a->data, p, nb));
        for (int d = 0; d < ndim; d++) same = same && a->shape[d] == shape[d];
        CHECK(same, "%s %d-d round trip differs", cg_dtype_name(dt), ndim);
        CHECK((uintptr_t)a->data % 16 == 0, "data aligned");
      }
      npy_free(a);
      /* the file is what npy_serialize builds, and its data starts at a multiple of 64 */
      size_t fs, ms;
      unsigned char *fb = read_file(path, &fs), *mb = npy_serialize(dt, ndim, shape, p, &ms);
      CHECK(fb && mb && fs == ms && !memcmp(fb, mb, fs) && (fs - nb) % 64 == 0, "serialize vs file");
      free(fb);
      free(mb);
      free(p);
    }
  /* what .npy cannot hold */
  uint16_t h[2] = {0, 0};
  int64_t two = 2;
  cg_dtype no[] = {CG_BFLOAT16, CG_FP8E4M3, CG_FP8E5M2};
  for (int k = 0; k < 3; k++)
    CHECK(npy_save(in_dir("no.npy"), no[k], 1, &two, h) == CG_ERR_INVALID && strstr(cg_last_error(), "no .npy dtype") &&
              strstr(cg_last_error(), cg_dtype_name(no[k])),
          "%s", cg_last_error());
  int64_t neg = -1;
  CHECK(npy_save(in_dir("no.npy"), CG_FLOAT32, 1, &neg, h) == CG_ERR_INVALID && strstr(cg_last_error(), "expected >= 0"),
        "%s", cg_last_error());
  CHECK(npy_save(in_dir("no.npy"), CG_FLOAT32, 9, (int64_t[9]){1}, h) == CG_ERR_INVALID, "9 dims");
  CHECK(access(in_dir("no.npy"), F_OK) != 0, "a refused save created a file");
}

/* ---- 2. bad files ----------------------------------------------------------------------- */
static unsigned char *npy_image(const char *dict, int major, size_t dlen, size_t *size) {
  size_t hl = strlen(dict), pre = major == 1 ? 10 : 12;
  unsigned char *b = calloc(1, pre + hl + dlen + 1);
  memcpy(b, "\x93NUMPY", 6);
  b[6] = (unsigned char)major;
  for (size_t k = 0; k < pre - 8; k++) b[8 + k] = (unsigned char)(hl >> (8 * k));
  memcpy(b + pre, dict, hl);
  *size = pre + hl + dlen;
  return b;
}

static void expect_bad(const char *dict, size_t dlen, const char *want, int line) {
  size_t size;
  unsigned char *b = npy_image(dict, 1, dlen, &size);
  cg_clear_error();
  npy_array *a = npy_parse(b, size, "bad.npy");
  if (a || cg_last_status() != CG_ERR_FORMAT || !strstr(cg_last_error(), want) || !strstr(cg_last_error(), "bad.npy")) {
    t_fail++;
    fprintf(stderr, "FAIL line %d: header %s\n  expected an error mentioning \"%s\", got %s: \"%s\"\n", line, dict, want,
            a ? "an array" : "NULL", cg_last_error());
  } else
    t_pass++;
  npy_free(a);
  free(b);
}
#define BAD(dict, dlen, want) expect_bad(dict, dlen, want, __LINE__)

static void test_bad(void) {
  size_t size;
  unsigned char *b = npy_image("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n", 1, 8, &size);
  npy_array *a = npy_parse(b, size, "ok.npy");
  CHECK(a && a->ndim == 1 && a->shape[0] == 2 && a->dtype == CG_FLOAT32, "unpadded but valid: %s", cg_last_error());
  npy_free(a);
  b[0] = 0x92;
  CHECK(!npy_parse(b, size, "m.npy") && strstr(cg_last_error(), "expected the magic bytes 93 4E 55 4D 50 59") &&
            strstr(cg_last_error(), "found 92 4E"),
        "%s", cg_last_error());
  b[0] = 0x93;
  b[6] = 4;
  CHECK(!npy_parse(b, size, "v.npy") && strstr(cg_last_error(), "version 4.0 is not supported: expected 1.0, 2.0 or 3.0"),
        "%s", cg_last_error());
  b[6] = 1;
  CHECK(!npy_parse(b, 7, "t.npy") && strstr(cg_last_error(), "too short"), "%s", cg_last_error());
  CHECK(!npy_parse(b, 30, "t.npy") && strstr(cg_last_error(), "runs past the end"), "%s", cg_last_error());
  CHECK(!npy_parse(b, size - 1, "t.npy") && strstr(cg_last_error(), "expected 8 data bytes (shape 2 of float32)") &&
            strstr(cg_last_error(), "found 7: truncated"),
        "%s", cg_last_error());
  for (size_t cut = 0; cut < size; cut++) CHECK(!npy_parse(b, cut, "cut.npy"), "cut at %zu accepted", cut);
  free(b);

  BAD("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 9, "found 9: extra bytes");
  BAD("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 16, "fortran_order is True");
  BAD("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8, "big-endian");
  BAD("{'descr': '>i8', 'fortran_order': False, 'shape': (2,), }", 16, "expected little-endian '<i8'");
  BAD("{'descr': '|f4', 'fortran_order': False, 'shape': (2,), }", 8, "no byte order");
  BAD("{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", 16, "unsupported descr '<c8': expected one of");
  BAD("{'descr': '<f4x', 'fortran_order': False, 'shape': (2,), }", 8, "unsupported descr");
  BAD("{'descr': '<U5', 'fortran_order': False, 'shape': (2,), }", 40, "unsupported descr");
  BAD("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", 8, "structured");
  BAD("{'descr': '<f4', 'shape': (2,), }", 8, "no 'fortran_order' key");
  BAD("{'fortran_order': False, 'shape': (2,), }", 8, "no 'descr' key");
  BAD("{'descr': '<f4', 'fortran_order': False, }", 8, "no 'shape' key");
  BAD("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1, }", 8, "unexpected key 'extra'");
  BAD("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8, "twice");
  BAD("{'descr': '<f4', 'fortran_order': False, 'shape': (2), }", 8, "is not a tuple: expected '(2,)'");
  BAD("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", 8, "non-negative integer");
  BAD("{'descr': '<f4', 'fortran_order': False, 'shape': (2;), }", 8, "expected ',' or ')'");
  BAD("{'descr': '<f4', 'fortran_order': False, 'shape': (2,,), }", 8, "non-negative integer");
  BAD("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,), }", 8, "True or False");
  BAD("{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", 4, "more than 8 dimensions");
  BAD("{'descr': '<f4' 'fortran_order': False, 'shape': (2,), }", 8, "expected ',' or '}'");
  BAD("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } x", 8, "only space padding");
  BAD("['descr']", 0, "expected '{'");
  BAD("{'descr: '<f4'}", 0, "expected ':'");
  BAD("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", 0, "64 bits");
  BAD("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", 0, "overflows");

  CHECK(!npy_load(in_dir("missing.npy")) && strstr(cg_last_error(), "missing.npy") &&
            strstr(cg_last_error(), "No such file") && cg_last_status() == CG_ERR_IO,
        "%s", cg_last_error());
  /* versions 2.0 and 3.0 with a 4-byte header length; the Python 2 'L' suffix */
  for (int major = 2; major <= 3; major++) {
    b = npy_image("{'descr': '<i2', 'fortran_order': False, 'shape': (3L, 1L), }\n", major, 6, &size);
    a = npy_parse(b, size, "v2.npy");
    CHECK(a && a->version == major && a->ndim == 2 && a->shape[0] == 3 && a->dtype == CG_INT16, "version %d: %s", major,
          cg_last_error());
    npy_free(a);
    free(b);
  }
}

/* ---- 3. atomic save ----------------------------------------------------------------------- */
static void test_atomic(void) {
  char sub[600], path[700];
  snprintf(sub, sizeof sub, "%s/atomic", tmp_dir);
  mkdir(sub, 0755);
  snprintf(path, sizeof path, "%s/x.npy", sub);
  double a[10], b[1000];
  for (int i = 0; i < 10; i++) a[i] = i;
  for (int i = 0; i < 1000; i++) b[i] = -i;
  int64_t na = 10, nb = 1000;
  CHECK(npy_save(path, CG_FLOAT64, 1, &na, a) == CG_OK, "%s", cg_last_error());
  size_t s0, s1;
  unsigned char *before = read_file(path, &s0);
  const char *cuts[] = {"0", "9", "127", "128", "4000"};
  for (int k = 0; k < 5; k++) {
    cg_set_config("CG_FAULT_WRITE_BYTES", cuts[k]);
    CHECK(npy_save(path, CG_FLOAT64, 1, &nb, b) == CG_ERR_IO && strstr(cg_last_error(), "x.npy"), "cut %s: %s",
          cuts[k], cg_last_error());
    unsigned char *after = read_file(path, &s1);
    CHECK(after && s1 == s0 && !memcmp(before, after, s0), "cut %s: the previous file changed", cuts[k]);
    CHECK(count_entries(sub) == 1, "cut %s: temp file left behind", cuts[k]);
    free(after);
  }
  cg_set_config("CG_FAULT_WRITE_BYTES", "");
  CHECK(npy_save(path, CG_FLOAT64, 1, &nb, b) == CG_OK, "%s", cg_last_error());
  npy_array *x = npy_load(path);
  CHECK(x && x->shape[0] == 1000 && !memcmp(x->data, b, sizeof b), "after the real save");
  npy_free(x);
  free(before);
}

/* ---- 4. numpy as the independent reader and writer ----------------------------------------- */
static const char *PY_COMMON =
    "import sys, numpy as np\n"
    "d = sys.argv[1]\n"
    "types = [('bool', '|b1'), ('int8', '|i1'), ('uint8', '|u1'), ('int16', '<i2'), ('uint16', '<u2'),\n"
    "         ('int32', '<i4'), ('uint32', '<u4'), ('int64', '<i8'), ('uint64', '<u8'), ('float16', '<f2'),\n"
    "         ('float32', '<f4'), ('float64', '<f8')]\n"
    "shapes = [(), (5,), (0, 4), (2, 3, 4)]\n"
    "def pattern(name, descr, shape):\n"
    "    i = np.arange(int(np.prod(shape))).reshape(shape)\n"
    "    u = i * 37 % 101\n"
    "    if name == 'bool': return (i % 3 == 0).astype(descr)\n"
    "    if name[0] == 'u': return u.astype(descr)\n"
    "    if name[0] == 'i': return (u - 50).astype(descr)\n"
    "    return ((u - 50) / 4.0).astype(descr)\n";
static const char *PY_WRITE =
    "for name, descr in types:\n"
    "    for k, shape in enumerate(shapes):\n"
    "        np.save('%s/np_%s_%d.npy' % (d, name, k), pattern(name, descr, shape))\n"
    "a = pattern('float32', '<f4', (2, 3, 4))\n"
    "for v in (2, 3):\n"
    "    with open('%s/np_v%d.npy' % (d, v), 'wb') as f: np.lib.format.write_array(f, a, version=(v, 0))\n"
    "np.save(d + '/np_fortran.npy', np.asfortranarray(np.zeros((2, 3), '<f4')))\n"
    "np.save(d + '/np_big.npy', np.zeros(3, '>f4'))\n"
    "np.save(d + '/np_struct.npy', np.zeros(2, dtype=[('a', '<f4'), ('b', '<i4')]))\n"
    "np.save(d + '/np_complex.npy', np.zeros(2, '<c8'))\n";
static const char *PY_READ =
    "n = 0\n"
    "for name, descr in types:\n"
    "    for k, shape in enumerate(shapes):\n"
    "        a = np.load('%s/c_%s_%d.npy' % (d, name, k))\n"
    "        e = pattern(name, descr, shape)\n"
    "        assert a.dtype == e.dtype and a.shape == e.shape and np.array_equal(a, e), (name, k, a, e)\n"
    "        n += 1\n"
    "assert n == 48\n";

static int run_python(const char *body) {
  char sp[600], cmd[1400];
  snprintf(sp, sizeof sp, "%s/script.py", tmp_dir);
  FILE *f = fopen(sp, "w");
  fputs(PY_COMMON, f);
  fputs(body, f);
  fclose(f);
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s'", sp, tmp_dir);
  return system(cmd);
}

static void test_numpy(void) {
  if (system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0) {
    printf("skipped: the numpy cross-check (python3 with numpy not found)\n");
    return;
  }
  CHECK(run_python(PY_WRITE) == 0, "the numpy writer failed");
  char name[128];
  for (int k = 0; k < NSTORABLE; k++)
    for (int s = 0; s < 4; s++) {
      cg_dtype dt = storable[k];
      snprintf(name, sizeof name, "np_%s_%d.npy", cg_dtype_name(dt), s);
      npy_array *a = npy_load(in_dir(name));
      int64_t n = numel(xs_ndim[s], xs_shape[s]);
      size_t nb = (size_t)n * cg_dtype_size(dt);
      unsigned char *want = malloc(nb + 1);
      fill(dt, want, n);
      CHECK(a && a->dtype == dt && a->ndim == xs_ndim[s] && a->nbytes == nb && (!nb || !memcmp(a->data, want, nb)),
            "%s from numpy: %s", name, a ? "values differ" : cg_last_error());
      for (int d = 0; a && d < a->ndim; d++) CHECK(a->shape[d] == xs_shape[s][d], "%s shape", name);
      /* our writer produces numpy's bytes exactly */
      size_t fs, ms;
      unsigned char *fb = read_file(in_dir(name), &fs), *mb = npy_serialize(dt, xs_ndim[s], xs_shape[s], want, &ms);
      CHECK(fb && mb && fs == ms && !memcmp(fb, mb, fs), "%s: our bytes differ from numpy's", name);
      free(fb);
      free(mb);
      /* and numpy will read ours */
      snprintf(name, sizeof name, "c_%s_%d.npy", cg_dtype_name(dt), s);
      CHECK(npy_save(in_dir(name), dt, xs_ndim[s], xs_shape[s], want) == CG_OK, "%s", cg_last_error());
      free(want);
      npy_free(a);
    }
  CHECK(run_python(PY_READ) == 0, "numpy could not read what cgrad wrote");
  float want[24];
  fill(CG_FLOAT32, want, 24);
  for (int v = 2; v <= 3; v++) {
    snprintf(name, sizeof name, "np_v%d.npy", v);
    npy_array *a = npy_load(in_dir(name));
    CHECK(a && a->version == v && a->ndim == 3 && a->shape[2] == 4 && !memcmp(a->data, want, sizeof want),
          "version %d.0 from numpy: %s", v, cg_last_error());
    npy_free(a);
  }
  const struct {
    const char *file, *want;
  } bad[] = {{"np_fortran.npy", "fortran_order is True"},
             {"np_big.npy", "big-endian"},
             {"np_struct.npy", "structured"},
             {"np_complex.npy", "unsupported descr '<c8'"}};
  for (int k = 0; k < 4; k++) {
    npy_array *a = npy_load(in_dir(bad[k].file));
    CHECK(!a && strstr(cg_last_error(), bad[k].want) && strstr(cg_last_error(), bad[k].file), "%s: %s", bad[k].file,
          cg_last_error());
    npy_free(a);
  }
}

int main(void) {
  snprintf(tmp_dir, sizeof tmp_dir, "%s/cg_npy_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(tmp_dir)) {
    perror("mkdtemp");
    return 1;
  }
  test_roundtrip();
  test_bad();
  test_atomic();
  test_numpy();
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_dir);
  return test_summary();
}
