/* Checkpoints through the public API: safetensors round trips of every dtype and several
 * shapes (0-d, empty, lazy and realized tensors), loading by name in any order and into
 * tensors other handles share, the errors (missing name, wrong shape, wrong dtype,
 * truncated or corrupt file) with tensors left untouched, a save that fails part-way under
 * CG_FAULT_WRITE_BYTES leaving the previous checkpoint byte-identical, and .npy. */
#include "check.h"
#include "tmpfiles.h"
#include "cgrad.h"
#include <string.h>
#include <unistd.h>

/* A tensor of dt and shape whose bytes are a pattern of seed (valid values for every dtype). */
static cg_tensor *pattern(cg_dtype dt, const int64_t *shape, int ndim, int seed) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= shape[i];
  size_t sz = cg_dtype_size(dt);
  unsigned char *b = calloc((size_t)(n ? n : 1), sz);
  for (int64_t i = 0; i < n; i++) {
    double v = (double)((i * 37 + seed * 11) % 101) - 50;
    switch (dt) {
    case CG_BOOL: b[i] = (i + seed) % 3 == 0; break;
    case CG_INT8: ((int8_t *)b)[i] = (int8_t)v; break;
    case CG_INT16: ((int16_t *)b)[i] = (int16_t)(v * 100); break;
    case CG_INT32: ((int32_t *)b)[i] = (int32_t)(v * 1e6); break;
    case CG_INT64: ((int64_t *)b)[i] = (int64_t)(v * 1e12); break;
    case CG_UINT8: b[i] = (uint8_t)(v + 50); break;
    case CG_UINT16: ((uint16_t *)b)[i] = (uint16_t)(v + 50) * 300; break;
    case CG_UINT32: ((uint32_t *)b)[i] = (uint32_t)(v + 50) * 40000000u; break;
    case CG_UINT64: ((uint64_t *)b)[i] = (uint64_t)(v + 50) * 100000000000000000ull; break;
    case CG_FLOAT16: ((uint16_t *)b)[i] = cg_f32_to_f16((float)v / 8); break;
    case CG_BFLOAT16: ((uint16_t *)b)[i] = cg_f32_to_bf16((float)v / 8); break;
    case CG_FLOAT32: ((float *)b)[i] = (float)v / 3; break;
    case CG_FLOAT64: ((double *)b)[i] = v / 3; break;
    case CG_FP8E4M3: b[i] = cg_f32_to_fp8e4m3((float)v / 8); break;
    case CG_FP8E5M2: b[i] = cg_f32_to_fp8e5m2((float)v / 8); break;
    default: break;
    }
  }
  cg_tensor *t = cg_from_data(b, dt, shape, ndim);
  free(b);
  return t;
}

/* Whether a and b hold the same bytes (same dtype and shape). */
static bool same_bytes(cg_tensor *a, cg_tensor *b) {
  if (cg_dtype_of(a) != cg_dtype_of(b) || cg_ndim(a) != cg_ndim(b) || cg_numel(a) != cg_numel(b)) return false;
  size_t n = (size_t)cg_numel(a) * cg_dtype_size(cg_dtype_of(a));
  unsigned char *x = malloc(n + 1), *y = malloc(n + 1);
  bool ok = cg_read(a, cg_dtype_of(a), x, n) == CG_OK && cg_read(b, cg_dtype_of(b), y, n) == CG_OK && memcmp(x, y, n) == 0;
  free(x), free(y);
  return ok;
}

static void round_trip_all_dtypes(void) {
  static const int64_t shapes[][3] = {{0}, {7}, {2, 3}, {2, 0, 4}, {3, 1, 5}};
  static const int ndims[] = {0, 1, 2, 3, 3};
  enum { NS = 5 };
  cg_tensor *ts[CG_NUM_DTYPES * NS], *back[CG_NUM_DTYPES * NS];
  char names[CG_NUM_DTYPES * NS][48];
  const char *np[CG_NUM_DTYPES * NS];
  int n = 0;
  for (int d = 0; d < CG_NUM_DTYPES; d++)
    for (int s = 0; s < NS; s++, n++) {
      ts[n] = pattern((cg_dtype)d, shapes[s], ndims[s], n);
      back[n] = cg_zeros((cg_dtype)d, shapes[s], ndims[s]);
      snprintf(names[n], sizeof names[n], "%s.shape%d", cg_dtype_name((cg_dtype)d), s);
      np[n] = names[n];
    }
  /* lazy tensors are realized by the save */
  int64_t s23[2] = {2, 3};
  ts[2] = cg_logical_or(ts[2], cg_zeros(CG_BOOL, s23, 2)); /* a lazy bool tensor */
  cg_tensor *lazy = cg_mul(pattern(CG_FLOAT32, s23, 2, 99), cg_scalar(2));
  const char *lname = "lazy";
  CHECK(cg_save_safetensors(in_dir("all.safetensors"), np, ts, n) == CG_OK, "%s", cg_last_error());
  CHECK(cg_save_safetensors(in_dir("lazy.safetensors"), &lname, &lazy, 1) == CG_OK, "%s", cg_last_error());
  /* load by name in reverse order */
  const char *rn[CG_NUM_DTYPES * NS];
  cg_tensor *rb[CG_NUM_DTYPES * NS];
  for (int i = 0; i < n; i++) rn[i] = np[n - 1 - i], rb[i] = back[n - 1 - i];
  CHECK(cg_load_safetensors(in_dir("all.safetensors"), rn, rb, n) == CG_OK, "%s", cg_last_error());
  int same = 0;
  for (int i = 0; i < n; i++) {
    bool ok = same_bytes(ts[i], back[i]);
    same += ok;
    if (!ok) CHECK(ok, "%s differs after the round trip", np[i]);
  }
  CHECK(same == n, "%d of %d tensors round-tripped", same, n);
  cg_tensor *lz = cg_zeros(CG_FLOAT32, s23, 2);
  CHECK(cg_load_safetensors(in_dir("lazy.safetensors"), &lname, &lz, 1) == CG_OK, "%s", cg_last_error());
  float v[6];
  CHECK(cg_read(lz, CG_FLOAT32, v, sizeof v) == CG_OK && v[0] == 2 * ((float)((0 * 37 + 99 * 11) % 101) - 50) / 3, "%g", v[0]);
  /* a subset by name */
  const char *one = "float32.shape2";
  cg_tensor *f = cg_full(7, CG_FLOAT32, s23, 2);
  CHECK(cg_load_safetensors(in_dir("all.safetensors"), &one, &f, 1) == CG_OK, "%s", cg_last_error());
  CHECK(same_bytes(f, ts[CG_FLOAT32 * NS + 2]));
  printf("round trip: %d tensors of %d dtypes and %d shapes\n", n, (int)CG_NUM_DTYPES, NS);
}

/* A load into a tensor another handle views: the buffer is written in place. */
static void load_in_place(void) {
  int64_t s[1] = {4}, s22[2] = {2, 2};
  float a[4] = {1, 2, 3, 4}, z[4] = {0};
  cg_tensor *src = cg_from_data(a, CG_FLOAT32, s, 1);
  const char *nm = "w";
  CHECK(cg_save_safetensors(in_dir("w.safetensors"), &nm, &src, 1) == CG_OK, "%s", cg_last_error());
  cg_tensor *w = cg_from_data(z, CG_FLOAT32, s, 1);
  cg_tensor *view = cg_reshape(w, s22, 2);
  CHECK(cg_load_safetensors(in_dir("w.safetensors"), &nm, &w, 1) == CG_OK, "%s", cg_last_error());
  float got[4];
  CHECK(cg_read(view, CG_FLOAT32, got, sizeof got) == CG_OK && got[3] == 4, "a view of the loaded tensor reads %g", got[3]);
  /* a parameter keeps requiring grad and trains on from the loaded values */
  cg_tensor *p = cg_from_data(z, CG_FLOAT32, s, 1);
  cg_set_requires_grad(p, true);
  CHECK(cg_load_safetensors(in_dir("w.safetensors"), &nm, &p, 1) == CG_OK, "%s", cg_last_error());
  CHECK(cg_backward(cg_sum(cg_mul(p, p), NULL, 0, false)) == CG_OK, "%s", cg_last_error());
  CHECK(cg_read(cg_grad(p), CG_FLOAT32, got, sizeof got) == CG_OK && got[2] == 6, "grad %g", got[2]);
}

static void expect_fail(cg_status st, cg_status want, const char *const *needles, int line) {
  const char *msg = cg_last_error();
  bool ok = st == want;
  for (int i = 0; needles[i]; i++) ok &= strstr(msg, needles[i]) != NULL;
  CHECK(ok, "line %d: status %d (want %d), message '%s'", line, st, want, msg);
}
#define EXPECT_FAIL(call, want, ...) expect_fail((cg_clear_error(), (call)), want, (const char *[]){__VA_ARGS__, NULL}, __LINE__)

static void errors_leave_tensors_untouched(void) {
  int64_t s23[2] = {2, 3}, s32[2] = {3, 2}, s4[1] = {4};
  cg_tensor *a = pattern(CG_FLOAT32, s23, 2, 1), *b = pattern(CG_INT32, s4, 1, 2);
  const char *names[2] = {"layer.weight", "layer.count"};
  cg_tensor *ts[2] = {a, b};
  char path[256];
  snprintf(path, sizeof path, "%s", in_dir("ck.safetensors"));
  CHECK(cg_save_safetensors(path, names, ts, 2) == CG_OK, "%s", cg_last_error());

  cg_tensor *x = cg_full(5, CG_FLOAT32, s23, 2), *y = cg_full(9, CG_INT32, s4, 1);
  cg_tensor *x0 = cg_full(5, CG_FLOAT32, s23, 2), *y0 = cg_full(9, CG_INT32, s4, 1);
  cg_tensor *dst[2] = {x, y};
  const char *missing[2] = {"layer.weight", "layer.bias"};
  EXPECT_FAIL(cg_load_safetensors(path, missing, dst, 2), CG_ERR_FORMAT, "'layer.bias'", "found none", "'layer.count'", "'layer.weight'");
  cg_tensor *wrong_shape[2] = {cg_zeros(CG_FLOAT32, s32, 2), y};
  EXPECT_FAIL(cg_load_safetensors(path, names, wrong_shape, 2), CG_ERR_FORMAT, "'layer.weight'", "expected shape (3, 2)", "found (2, 3)");
  cg_tensor *wrong_dt[2] = {x, cg_zeros(CG_INT64, s4, 1)};
  EXPECT_FAIL(cg_load_safetensors(path, names, wrong_dt, 2), CG_ERR_FORMAT, "'layer.count'", "expected dtype int64", "found int32");
  /* y comes before a bad x in the list: still untouched (everything is checked first) */
  cg_tensor *order[2] = {y, wrong_shape[0]};
  const char *onames[2] = {"layer.count", "layer.weight"};
  EXPECT_FAIL(cg_load_safetensors(path, onames, order, 2), CG_ERR_FORMAT, "expected shape (3, 2)");
  EXPECT_FAIL(cg_load_safetensors(in_dir("nope.safetensors"), names, dst, 2), CG_ERR_IO, "nope.safetensors");
  /* truncated: the header cut, then the data cut */
  size_t n;
  unsigned char *img = read_file(path, &n);
  CHECK(img != NULL && n > 40);
  write_file(in_dir("cut_header.safetensors"), img, 20);
  EXPECT_FAIL(cg_load_safetensors(in_dir("cut_header.safetensors"), names, dst, 2), CG_ERR_FORMAT, "cut_header.safetensors");
  write_file(in_dir("cut_data.safetensors"), img, n - 3);
  EXPECT_FAIL(cg_load_safetensors(in_dir("cut_data.safetensors"), names, dst, 2), CG_ERR_FORMAT, "cut_data.safetensors");
  write_file(in_dir("short.safetensors"), img, 5);
  EXPECT_FAIL(cg_load_safetensors(in_dir("short.safetensors"), names, dst, 2), CG_ERR_FORMAT, "short.safetensors");
  img[9] = '[';
  write_file(in_dir("corrupt.safetensors"), img, n);
  EXPECT_FAIL(cg_load_safetensors(in_dir("corrupt.safetensors"), names, dst, 2), CG_ERR_FORMAT, "corrupt.safetensors");
  free(img);
  CHECK(same_bytes(x, x0) && same_bytes(y, y0), "a failed load changed a tensor");
  /* arguments */
  EXPECT_FAIL(cg_save_safetensors(NULL, names, ts, 2), CG_ERR_INVALID, "path is NULL");
  cg_tensor *nul[1] = {NULL};
  EXPECT_FAIL(cg_save_safetensors(path, names, nul, 1), CG_ERR_INVALID, "tensor 0 ('layer.weight') is NULL");
  const char *dup[2] = {"same", "same"};
  EXPECT_FAIL(cg_save_safetensors(in_dir("dup.safetensors"), dup, ts, 2), CG_ERR_INVALID, "same");
  CHECK(access(in_dir("dup.safetensors"), F_OK) != 0, "a failed save left a file");
  /* the good load still works */
  CHECK(cg_load_safetensors(path, names, dst, 2) == CG_OK, "%s", cg_last_error());
  CHECK(same_bytes(x, a) && same_bytes(y, b));
}

static void failed_save_keeps_old_checkpoint(void) {
  int64_t s[2] = {16, 16};
  cg_tensor *a = pattern(CG_FLOAT32, s, 2, 3), *b = pattern(CG_FLOAT32, s, 2, 4);
  const char *nm = "w";
  char path[256];
  snprintf(path, sizeof path, "%s", in_dir("atomic.safetensors"));
  CHECK(cg_save_safetensors(path, &nm, &a, 1) == CG_OK, "%s", cg_last_error());
  size_t n0, n1;
  unsigned char *before = read_file(path, &n0);
  int fails = 0;
  for (int cut = 0; cut < (int)n0; cut += 97) {
    char knob[32];
    snprintf(knob, sizeof knob, "%d", cut);
    cg_set_config("CG_FAULT_WRITE_BYTES", knob);
    cg_clear_error();
    cg_status st = cg_save_safetensors(path, &nm, &b, 1);
    cg_set_config("CG_FAULT_WRITE_BYTES", "");
    fails += st != CG_OK;
    if (st == CG_OK) CHECK(st != CG_OK, "a save with the disk full after %d bytes succeeded", cut);
    else if (cut == 0) CHECK(strstr(cg_last_error(), "atomic.safetensors") != NULL, "%s", cg_last_error());
    unsigned char *after = read_file(path, &n1);
    CHECK(after && n1 == n0 && memcmp(before, after, n0) == 0, "disk full after %d bytes: the old checkpoint changed", cut);
    free(after);
  }
  printf("atomic save: %d injected disk-full failures, the old checkpoint intact each time\n", fails);
  /* no temporary files left beside it */
  char cmd[512];
  snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | grep -c atomic) -eq 1", tmp_dir);
  CHECK(system(cmd) == 0, "temporary files left in %s", tmp_dir);
  CHECK(cg_save_safetensors(path, &nm, &b, 1) == CG_OK, "%s", cg_last_error());
  cg_tensor *c = cg_zeros(CG_FLOAT32, s, 2);
  CHECK(cg_load_safetensors(path, &nm, &c, 1) == CG_OK && same_bytes(c, b), "%s", cg_last_error());
  free(before);
}

static void npy(void) {
  const cg_dtype ok[] = {CG_BOOL, CG_INT8, CG_INT16, CG_INT32, CG_INT64, CG_UINT8, CG_UINT16, CG_UINT32, CG_UINT64,
                         CG_FLOAT16, CG_FLOAT32, CG_FLOAT64};
  int64_t s[3] = {2, 3, 2};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    cg_tensor *t = pattern(ok[i], s, 3, (int)i);
    CHECK(cg_save_npy(in_dir("t.npy"), t) == CG_OK, "%s: %s", cg_dtype_name(ok[i]), cg_last_error());
    cg_tensor *u = cg_load_npy(in_dir("t.npy"));
    CHECK(u && same_bytes(t, u), "%s: %s", cg_dtype_name(ok[i]), cg_last_error());
  }
  cg_tensor *sc = cg_mul(cg_full(3, CG_FLOAT32, NULL, 0), cg_scalar(2)); /* lazy 0-d */
  CHECK(cg_save_npy(in_dir("s.npy"), sc) == CG_OK, "%s", cg_last_error());
  cg_tensor *sb = cg_load_npy(in_dir("s.npy"));
  CHECK(sb && cg_ndim(sb) == 0 && cg_item(sb) == 6);
  EXPECT_FAIL(cg_save_npy(in_dir("b.npy"), cg_zeros(CG_BFLOAT16, s, 3)), CG_ERR_INVALID, "got bfloat16");
  cg_clear_error();
  CHECK(cg_load_npy(in_dir("missing.npy")) == NULL && strstr(cg_last_error(), "missing.npy"), "%s", cg_last_error());
  write_file(in_dir("bad.npy"), "\x93NUMPY\x01\x00", 8);
  cg_clear_error();
  CHECK(cg_load_npy(in_dir("bad.npy")) == NULL && cg_last_status() == CG_ERR_FORMAT, "%s", cg_last_error());
}

int main(void) {
  snprintf(tmp_dir, sizeof tmp_dir, "/tmp/cg_state_XXXXXX");
  if (!mkdtemp(tmp_dir)) {
    CHECK(0, "mkdtemp failed");
    return test_summary();
  }
  cg_scope_begin();
  round_trip_all_dtypes();
  load_in_place();
  errors_leave_tensors_untouched();
  failed_save_keeps_old_checkpoint();
  npy();
  cg_scope_end();
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_dir);
  return test_summary();
}
