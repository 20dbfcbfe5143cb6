/* safetensors: round trips of every dtype, a byte-exact file built by hand from the
 * spec, hand-written headers (escapes, unknown fields, any key order), a cross-check with
 * an independent Python reader and writer (json + struct + numpy) when numpy is present,
 * the rejection of bad files with messages that say what was expected, truncation and
 * byte-flip fuzzing under the sanitizers, and the atomic save under an injected
 * disk-full. */
#include "check.h"
#include "tmpfiles.h"
#include "core/error.h"
#include "nn/safetensors.h"
#include <dirent.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static unsigned long long rng = 0x2545F4914F6CDD1Dull;
static uint64_t rnd(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return rng;
}

/* The deterministic pattern both this test and the Python side compute:
 * element i = (i*37 % 101) - 50 (unsigned: without the -50; floats: divided by 4;
 * bool: i % 3 == 0), stored in dtype dt. */
static void fill(cg_dtype dt, void *p, int64_t count) {
  for (int64_t i = 0; i < count; i++) {
    int64_t u = i * 37 % 101, s = u - 50;
    float f = (float)s / 4.0f;
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
    case CG_FLOAT16: ((uint16_t *)p)[i] = cg_f32_to_f16(f); break;
    case CG_BFLOAT16: ((uint16_t *)p)[i] = cg_f32_to_bf16(f); break;
    case CG_FLOAT32: ((float *)p)[i] = f; break;
    case CG_FLOAT64: ((double *)p)[i] = (double)s / 4.0; break;
    case CG_FP8E4M3: ((uint8_t *)p)[i] = cg_f32_to_fp8e4m3(f); break;
    case CG_FP8E5M2: ((uint8_t *)p)[i] = cg_f32_to_fp8e5m2(f); break;
    default: break;
    }
  }
}

static int64_t numel(const st_tensor *t) {
  int64_t n = 1;
  for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
  return n;
}

/* Build a file image: 8-byte length, json padded with spaces to pad (0: no padding), data. */
static unsigned char *image(const char *json, int pad, const void *data, size_t dlen, size_t *size) {
  size_t j = strlen(json), h = pad ? (j + 7) / 8 * 8 : j;
  unsigned char *b = calloc(1, 8 + h + dlen + 1);
  for (int k = 0; k < 8; k++) b[k] = (unsigned char)((uint64_t)h >> (8 * k));
  memcpy(b + 8, json, j);
  memset(b + 8 + j, ' ', h - j);
  if (dlen) memcpy(b + 8 + h, data, dlen);
  *size = 8 + h + dlen;
  return b;
}

/* st_parse must fail with CG_ERR_FORMAT and a message containing want. */
static void expect_bad(const char *json, size_t dlen, const char *want, int line) {
  unsigned char zeros[256] = {0};
  size_t size;
  unsigned char *b = image(json, 1, zeros, dlen, &size);
  cg_clear_error();
  st_file *f = st_parse(b, size, "bad.safetensors");
  if (f || cg_last_status() != CG_ERR_FORMAT || !strstr(cg_last_error(), want) ||
      !strstr(cg_last_error(), "bad.safetensors")) {
    t_fail++;
    fprintf(stderr, "FAIL line %d: header %s\n  expected an error mentioning \"%s\", got %s: \"%s\"\n", line, json,
            want, f ? "a parsed file" : "NULL", cg_last_error());
  } else
    t_pass++;
  st_free(f);
  free(b);
}
#define BAD(json, dlen, want) expect_bad(json, dlen, want, __LINE__)

static bool same_tensor(const st_tensor *a, const st_tensor *b) {
  if (strcmp(a->name, b->name) || a->dtype != b->dtype || a->ndim != b->ndim || a->nbytes != b->nbytes) return false;
  for (int d = 0; d < a->ndim; d++)
    if (a->shape[d] != b->shape[d]) return false;
  return !a->nbytes || !memcmp(a->data, b->data, a->nbytes);
}

static bool file_is(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "rb");
  if (!f) return false;
  unsigned char *b = malloc(n + 1);
  size_t got = fread(b, 1, n + 1, f);
  fclose(f);
  bool eq = got == n && !memcmp(b, p, n);
  free(b);
  return eq;
}

/* ---- 1. round trip of every dtype with random data ------------------------------------ */
static void test_roundtrip(void) {
  st_tensor ts[CG_NUM_DTYPES + 2];
  void *bufs[CG_NUM_DTYPES + 2];
  char names[CG_NUM_DTYPES + 2][48];
  int n = 0;
  for (int dt = 0; dt < CG_NUM_DTYPES; dt++, n++) {
    st_tensor *t = &ts[n];
    memset(t, 0, sizeof *t);
    snprintf(names[n], sizeof names[n], "layer.%d.%s", dt, cg_dtype_name((cg_dtype)dt));
    t->name = names[n];
    t->dtype = (cg_dtype)dt;
    t->ndim = (int)(rnd() % 5);
    for (int d = 0; d < t->ndim; d++) t->shape[d] = 1 + (int64_t)(rnd() % 6);
    t->nbytes = (size_t)numel(t) * cg_dtype_size(t->dtype);
    unsigned char *p = malloc(t->nbytes);
    for (size_t i = 0; i < t->nbytes; i++) p[i] = (unsigned char)rnd();
    if (dt == CG_BOOL)
      for (size_t i = 0; i < t->nbytes; i++) p[i] &= 1;
    t->data = bufs[n] = p;
  }
  /* a zero-size tensor and a scalar */
  ts[n] = (st_tensor){.name = "empty", .dtype = CG_FLOAT32, .ndim = 2, .shape = {0, 3}, .data = NULL, .nbytes = 0};
  bufs[n++] = NULL;
  double pi = 3.14159;
  ts[n] = (st_tensor){.name = "scalar", .dtype = CG_FLOAT64, .ndim = 0, .data = &pi, .nbytes = 8};
  bufs[n++] = NULL;
  const char *meta[] = {"format", "pt", "note", "caf\xc3\xa9 \"quoted\"\n\ttab \\ back"};
  char path[600];
  snprintf(path, sizeof path, "%s", in_dir("all.safetensors"));
  CHECK(st_save(path, ts, n, meta, 2) == CG_OK, "save: %s", cg_last_error());
  st_file *f = st_load(path);
  CHECK(f != NULL, "load: %s", cg_last_error());
  if (f) {
    CHECK(st_count(f) == n, "count %d, expected %d", st_count(f), n);
    for (int i = 0; i < n && i < st_count(f); i++) {
      CHECK(same_tensor(st_at(f, i), &ts[i]), "tensor %d (%s) differs after the round trip", i, ts[i].name);
      CHECK(st_find(f, ts[i].name) == st_at(f, i), "st_find(%s)", ts[i].name);
    }
    CHECK(st_at(f, n) == NULL && st_at(f, -1) == NULL, "out of range");
    CHECK(st_find(f, "nope") == NULL, "absent name");
    CHECK(((uintptr_t)st_at(f, 0)->data % 8) == 0, "the data section is 8-aligned");
    CHECK(st_meta_count(f) == 2, "meta count");
    CHECK(st_meta_get(f, "format") && !strcmp(st_meta_get(f, "format"), "pt"), "meta format");
    CHECK(st_meta_get(f, "note") && !strcmp(st_meta_get(f, "note"), meta[3]), "meta note: %s", st_meta_get(f, "note"));
    CHECK(!strcmp(st_meta_key(f, 1), "note") && st_meta_get(f, "x") == NULL, "meta order");
    st_free(f);
  }
  /* each dtype alone too (no metadata at all) */
  for (int i = 0; i < CG_NUM_DTYPES; i++) {
    const char *p1 = in_dir("one.safetensors");
    CHECK(st_save(p1, &ts[i], 1, NULL, 0) == CG_OK, "save %s: %s", ts[i].name, cg_last_error());
    st_file *g = st_load(p1);
    CHECK(g && st_count(g) == 1 && same_tensor(st_at(g, 0), &ts[i]) && st_meta_count(g) == 0, "%s alone: %s",
          ts[i].name, cg_last_error());
    st_free(g);
  }
  /* st_serialize gives the same bytes as st_save */
  size_t size;
  void *img = st_serialize(ts, n, meta, 2, &size);
  CHECK(img && file_is(path, img, size), "st_serialize matches the saved file");
  free(img);
  for (int i = 0; i < n; i++) free(bufs[i]);
}

/* ---- 2. a byte-exact file built from the spec ------------------------------------------- */
static void test_byte_exact(void) {
  float a[2] = {1.0f, -2.5f};
  uint8_t b[3] = {1, 2, 255};
  st_tensor ts[2] = {{.name = "a", .dtype = CG_FLOAT32, .ndim = 1, .shape = {2}, .data = a, .nbytes = 8},
                     {.name = "b", .dtype = CG_UINT8, .ndim = 2, .shape = {1, 3}, .data = b, .nbytes = 3}};
  const char *meta[] = {"format", "pt"};
  /* the reference writer: compact JSON, metadata first, spaces up to a multiple of 8 */
  const char *json = "{\"__metadata__\":{\"format\":\"pt\"},"
                     "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                     "\"b\":{\"dtype\":\"U8\",\"shape\":[1,3],\"data_offsets\":[8,11]}}";
  size_t jl = strlen(json), hl = (jl + 7) / 8 * 8;
  unsigned char want[512];
  size_t k = 0;
  for (int i = 0; i < 8; i++) want[k++] = (unsigned char)(hl >> (8 * i));
  memcpy(want + k, json, jl), k += jl;
  while (k < 8 + hl) want[k++] = ' ';
  const unsigned char fbytes[8] = {0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x20, 0xC0}; /* 1.0f, -2.5f LE */
  memcpy(want + k, fbytes, 8), k += 8;
  memcpy(want + k, b, 3), k += 3;
  const char *path = in_dir("exact.safetensors");
  CHECK(st_save(path, ts, 2, meta, 1) == CG_OK, "%s", cg_last_error());
  CHECK(file_is(path, want, k), "st_save's bytes differ from the hand-built file");
  st_file *f = st_parse(want, k, "hand-built");
  CHECK(f && st_count(f) == 2 && same_tensor(st_at(f, 0), &ts[0]) && same_tensor(st_at(f, 1), &ts[1]),
        "hand-built file: %s", cg_last_error());
  st_free(f);
}

/* ---- 3. headers other writers may produce ------------------------------------------------ */
static void test_lenient_but_valid(void) {
  /* spaces and newlines, keys in any order, unknown fields (skipped), tensors listed out of
   * offset order, escapes in names, no padding (so the data needs moving to be aligned) */
  const char *json =
      "{ \"z\\u00e9\\ud83d\\ude00\" : { \"shape\" : [ 2 ] , \"data_offsets\" : [ 4 , 12 ] ,"
      " \"dtype\" : \"I32\", \"extra\": {\"nested\": [1, -2.5e+3, true, false, null, \"s\"]} } ,\n"
      "\t\"first\\/x\": {\"dtype\": \"U16\", \"shape\": [2], \"data_offsets\": [0, 4]},\r\n"
      " \"__metadata__\": {\"k\\\"q\": \"v\\\\\\n\"}, \"empty\": {\"dtype\":\"BF16\",\"shape\":[3,0],\"data_offsets\":[12,12]} }";
  unsigned char data[12] = {1, 0, 2, 0, 7, 0, 0, 0, 0xF9, 0xFF, 0xFF, 0xFF};
  size_t size;
  unsigned char *img = image(json, 0, data, sizeof data, &size);
  CHECK((size - 12) % 8 != 0, "this image should have an unaligned data section");
  st_file *f = st_parse(img, size, "mem");
  CHECK(f != NULL, "valid header rejected: %s", cg_last_error());
  if (f) {
    CHECK(st_count(f) == 3, "count %d", st_count(f));
    const st_tensor *t0 = st_at(f, 0), *z = st_find(f, "z\xc3\xa9\xf0\x9f\x98\x80");
    CHECK(t0 && !strcmp(t0->name, "first/x") && t0->dtype == CG_UINT16, "offset order: %s", t0 ? t0->name : "-");
    CHECK(z && z->dtype == CG_INT32 && z->ndim == 1 && z->shape[0] == 2, "escaped name");
    if (z) {
      int32_t v[2];
      memcpy(v, z->data, 8);
      CHECK(v[0] == 7 && v[1] == -7 && (uintptr_t)z->data % 4 == 0, "values %d %d", v[0], v[1]);
    }
    const st_tensor *e = st_find(f, "empty");
    CHECK(e && e->nbytes == 0 && e->ndim == 2 && e->shape[1] == 0, "zero-size tensor");
    CHECK(st_meta_get(f, "k\"q") && !strcmp(st_meta_get(f, "k\"q"), "v\\\n"), "escaped metadata");
    st_free(f);
  }
  free(img);
  /* the empty file: {} and no data */
  img = image("{}", 1, NULL, 0, &size);
  f = st_parse(img, size, "empty");
  CHECK(f && st_count(f) == 0, "empty file: %s", cg_last_error());
  st_free(f);
  free(img);
  /* "__metadata__": null means no metadata (the reference reader's Option) */
  img = image("{\"__metadata__\": null}", 1, NULL, 0, &size);
  f = st_parse(img, size, "nullmeta");
  CHECK(f && st_count(f) == 0 && st_meta_count(f) == 0, "null metadata: %s", cg_last_error());
  st_free(f);
  free(img);
}

/* ---- 4. bad files ------------------------------------------------------------------------ */
#define T1(dt, shape, off) "{\"t\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":" off "}}"
static void test_bad(void) {
  /* sizes */
  unsigned char tiny[5] = {1, 0, 0, 0, 0};
  CHECK(st_parse(tiny, 5, "tiny.st") == NULL && strstr(cg_last_error(), "expected at least 8"), "%s", cg_last_error());
  unsigned char past[16] = {200, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
  CHECK(st_parse(past, 16, "past.st") == NULL && strstr(cg_last_error(), "header length 200 is larger than the 8 bytes"),
        "%s", cg_last_error());
  unsigned char huge[16] = {0, 0, 0, 0, 1, 0, 0, 0, '{', '}'};
  CHECK(st_parse(huge, 16, "huge.st") == NULL && strstr(cg_last_error(), "limit"), "%s", cg_last_error());
  CHECK(cg_last_status() == CG_ERR_FORMAT, "status");

  /* JSON syntax */
  BAD("", 0, "expected '{'");
  BAD("[1,2]", 0, "expected '{'");
  BAD("{", 0, "expected a tensor name");
  BAD("{\"t\"", 0, "expected ':'");
  BAD("{\"t\":}", 0, "expected an object");
  BAD("{'t':{}}", 0, "expected a tensor name");
  BAD("{} x", 0, "after the closing '}'");
  BAD("{}{}", 0, "after the closing '}'");
  BAD("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},}", 4, "expected a tensor name");
  BAD("{\"t\":{\"dtype\":\"F32\" \"shape\":[1]}}", 0, "expected ',' or '}'");
  BAD("{\"a\nb\":{}}", 0, "control character");
  BAD("{\"a\\qb\":{}}", 0, "unknown escape");
  BAD("{\"a\\u12\":{}}", 0, "4 hex digits");
  BAD("{\"a\\udc00\":{}}", 0, "lone");
  BAD("{\"a\\ud800x\":{}}", 0, "low one");
  BAD("{\"a\\u0000\":{}}", 0, "NUL");
  BAD("{\"\xff\":{}}", 0, "UTF-8");
  BAD("{\"\xc0\xaf\":{}}", 0, "UTF-8"); /* overlong */
  BAD("{\"open", 0, "not closed");
  BAD(T1("F32", "[01]", "[0,4]"), 4, "leading zeros");
  BAD(T1("F32", "[1.0]", "[0,4]"), 4, "fraction");
  BAD(T1("F32", "[-1]", "[0,4]"), 4, "non-negative integer");
  BAD(T1("F32", "[1]", "[0,99999999999999999999]"), 4, "64 bits");
  BAD("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
      "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}",
      4, "nested deeper");
  BAD("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":tru}}", 4, "expected a value");
  BAD("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":-}}", 4, "malformed number");

  /* fields */
  BAD("{\"t\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "missing the field \"dtype\"");
  BAD("{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "missing the field \"shape\"");
  BAD("{\"t\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "missing the field \"data_offsets\"");
  BAD("{\"t\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "twice");
  BAD("{\"t\":[1]}", 0, "expected an object");
  BAD(T1("F33", "[1]", "[0,4]"), 4, "unknown dtype \"F33\" (expected one of BOOL");
  BAD(T1("f32", "[1]", "[0,4]"), 4, "unknown dtype");
  BAD("{\"t\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "expected a dtype string");
  BAD(T1("F32", "[1,1,1,1,1,1,1,1,1]", "[0,4]"), 4, "more than 8 dimensions");
  BAD(T1("F32", "[1]", "[0]"), 4, "exactly two numbers");
  BAD(T1("F32", "[1]", "[0,4,8]"), 8, "exactly two numbers");
  BAD(T1("F32", "[1]", "4"), 4, "'['");
  BAD("{\"__metadata__\":{\"a\":1}}", 0, "values must be strings");
  BAD("{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}}", 0, "twice");
  BAD("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "twice");

  /* offsets */
  BAD(T1("F32", "[2]", "[0,8]"), 4, "past the end of the 4-byte data buffer");
  BAD(T1("F32", "[2]", "[0,4]"), 4, "= 8 bytes, but its data_offsets [0, 4] span 4");
  BAD(T1("F32", "[1]", "[4,0]"), 4, "expected begin <= end");
  BAD(T1("F32", "[1]", "[0,4]"), 8, "cover 4: expected them to cover it exactly");
  BAD(T1("F32", "[1]", "[4,8]"), 8, "belong to no tensor");
  BAD(T1("F64", "[4294967296,4294967296]", "[0,8]"), 8, "overflows 64 bits");
  BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlap");
  BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
      "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "appears twice");

  /* a missing file */
  const char *missing = in_dir("missing.safetensors");
  CHECK(st_load(missing) == NULL && strstr(cg_last_error(), "missing.safetensors") &&
            strstr(cg_last_error(), "No such file") && cg_last_status() == CG_ERR_IO,
        "%s", cg_last_error());
  /* a file cut off in the middle of the data, and one cut in the header */
  float v[4] = {1, 2, 3, 4};
  st_tensor t = {.name = "v", .dtype = CG_FLOAT32, .ndim = 1, .shape = {4}, .data = v, .nbytes = 16};
  size_t size;
  unsigned char *img = st_serialize(&t, 1, NULL, 0, &size);
  CHECK(st_parse(img, size - 1, "cut.st") == NULL && strstr(cg_last_error(), "past the end"), "%s", cg_last_error());
  CHECK(st_parse(img, 20, "cut.st") == NULL && strstr(cg_last_error(), "truncated"), "%s", cg_last_error());
  FILE *fp = fopen(in_dir("cut.safetensors"), "wb");
  fwrite(img, 1, size - 5, fp);
  fclose(fp);
  CHECK(st_load(in_dir("cut.safetensors")) == NULL && strstr(cg_last_error(), "cut.safetensors"), "%s", cg_last_error());
  free(img);

  /* the writer refuses what it cannot write correctly */
  st_tensor w[2] = {t, t};
  CHECK(st_save(in_dir("w.st"), w, 2, NULL, 0) == CG_ERR_INVALID && strstr(cg_last_error(), "twice"), "%s",
        cg_last_error());
  w[1].name = "__metadata__";
  CHECK(st_save(in_dir("w.st"), w, 2, NULL, 0) == CG_ERR_INVALID && strstr(cg_last_error(), "reserves"), "%s",
        cg_last_error());
  w[1].name = "u";
  w[1].nbytes = 12;
  CHECK(st_save(in_dir("w.st"), w, 2, NULL, 0) == CG_ERR_INVALID && strstr(cg_last_error(), "expected nbytes = 16, found 12"),
        "%s", cg_last_error());
  w[1].nbytes = 16;
  w[1].dtype = (cg_dtype)99;
  CHECK(st_save(in_dir("w.st"), w, 2, NULL, 0) == CG_ERR_INVALID && strstr(cg_last_error(), "invalid dtype"), "%s",
        cg_last_error());
  w[1].dtype = CG_FLOAT32;
  w[1].name = "bad\xff";
  CHECK(st_save(in_dir("w.st"), w, 2, NULL, 0) == CG_ERR_INVALID && strstr(cg_last_error(), "UTF-8"), "%s",
        cg_last_error());
  const char *dupmeta[] = {"k", "1", "k", "2"};
  CHECK(st_save(in_dir("w.st"), &t, 1, dupmeta, 2) == CG_ERR_INVALID && strstr(cg_last_error(), "twice"), "%s",
        cg_last_error());
  CHECK(access(in_dir("w.st"), F_OK) != 0, "a refused save must not create the file");
}

/* ---- 5. fuzz: every truncation and many byte flips, no crash ------------------------------ */
static void test_fuzz(void) {
  int64_t v[6] = {1, 2, 3, 4, 5, 6};
  uint8_t m[3] = {1, 0, 1};
  st_tensor ts[2] = {{.name = "v", .dtype = CG_INT64, .ndim = 2, .shape = {2, 3}, .data = v, .nbytes = 48},
                     {.name = "mask", .dtype = CG_BOOL, .ndim = 1, .shape = {3}, .data = m, .nbytes = 3}};
  const char *meta[] = {"a", "b"};
  size_t size;
  unsigned char *img = st_serialize(ts, 2, meta, 1, &size);
  int accepted = 0;
  for (size_t cut = 0; cut < size; cut++) {
    st_file *f = st_parse(img, cut, "cut");
    accepted += f != NULL;
    st_free(f);
  }
  CHECK(accepted == 0, "%d truncated images accepted", accepted);
  unsigned char *mut = malloc(size);
  int parsed = 0;
  for (int it = 0; it < 3000; it++) {
    memcpy(mut, img, size);
    int flips = 1 + (int)(rnd() % 3);
    for (int k = 0; k < flips; k++) {
      size_t at = 8 + rnd() % (size - 8 - 51);
      mut[at] = rnd() % 3 ? (unsigned char)" \"{}[],:0123456789-eE.\\u"[rnd() % 24] : (unsigned char)rnd();
    }
    st_file *f = st_parse(mut, size, "flip");
    if (f) {
      parsed++;
      for (int i = 0; i < st_count(f); i++) { /* whatever parsed must be self-consistent */
        const st_tensor *t = st_at(f, i);
        int64_t n = numel(t);
        CHECK((size_t)n * cg_dtype_size(t->dtype) == t->nbytes, "fuzzed tensor %s inconsistent", t->name);
        CHECK(t->nbytes <= size, "fuzzed tensor %s claims %zu bytes", t->name, t->nbytes);
      }
    } else
      CHECK(cg_last_error()[0] != 0, "a rejection without a message");
    st_free(f);
  }
  printf("fuzz: %zu truncations rejected, %d of 3000 mutated headers still valid\n", size, parsed);
  free(mut);
  free(img);
}

/* ---- 6. atomic save under an injected disk-full ------------------------------------------ */
static void test_atomic(void) {
  float a[64], b[4096];
  for (int i = 0; i < 64; i++) a[i] = (float)i;
  for (int i = 0; i < 4096; i++) b[i] = -(float)i;
  st_tensor ta = {.name = "w", .dtype = CG_FLOAT32, .ndim = 1, .shape = {64}, .data = a, .nbytes = sizeof a};
  st_tensor tb = {.name = "w", .dtype = CG_FLOAT32, .ndim = 2, .shape = {64, 64}, .data = b, .nbytes = sizeof b};
  char sub[600];
  snprintf(sub, sizeof sub, "%s/atomic", tmp_dir);
  mkdir(sub, 0755);
  char path[700];
  snprintf(path, sizeof path, "%s/ckpt.safetensors", sub);
  CHECK(st_save(path, &ta, 1, NULL, 0) == CG_OK, "%s", cg_last_error());
  size_t size;
  unsigned char *before = st_serialize(&ta, 1, NULL, 0, &size);
  const char *cuts[] = {"0", "8", "100", "5000", "16000"};
  for (int k = 0; k < 5; k++) {
    cg_set_config("CG_FAULT_WRITE_BYTES", cuts[k]);
    cg_status st = st_save(path, &tb, 1, NULL, 0);
    CHECK(st == CG_ERR_IO && strstr(cg_last_error(), "ckpt.safetensors") && strstr(cg_last_error(), "unchanged"),
          "cut %s: %d %s", cuts[k], st, cg_last_error());
    CHECK(file_is(path, before, size), "cut %s: the previous checkpoint changed", cuts[k]);
    CHECK(count_entries(sub) == 1, "cut %s: temp file left behind (%d entries)", cuts[k], count_entries(sub));
  }
  cg_set_config("CG_FAULT_WRITE_BYTES", "");
  CHECK(st_save(path, &tb, 1, NULL, 0) == CG_OK, "%s", cg_last_error());
  st_file *f = st_load(path);
  CHECK(f && same_tensor(st_at(f, 0), &tb), "after the real save");
  st_free(f);
  free(before);
}

/* ---- 7. an independent reader and writer: Python's json + struct + numpy ---------------- */
static const char *PY_READ =
    "import sys, json, struct, numpy as np\n"
    "b = open(sys.argv[1], 'rb').read()\n"
    "n = struct.unpack('<Q', b[:8])[0]\n"
    "assert n % 8 == 0 and b[8 + n - 1:8 + n] in (b' ', b'}'), n\n"
    "h = json.loads(b[8:8 + n].decode('utf-8'))\n"
    "meta = h.pop('__metadata__')\n"
    "assert meta == {'format': 'pt', 'who': 'cgrad \\u00e9'}, meta\n"
    "npd = {'BOOL': '?', 'U8': 'u1', 'I8': 'i1', 'U16': '<u2', 'I16': '<i2', 'U32': '<u4', 'I32': '<i4',\n"
    "       'U64': '<u8', 'I64': '<i8', 'F16': '<f2', 'F32': '<f4', 'F64': '<f8', 'BF16': '<u2',\n"
    "       'F8_E4M3': 'u1', 'F8_E5M2': 'u1'}\n"
    "data, end, seen = b[8 + n:], 0, 0\n"
    "for name, t in h.items():\n"
    "    s, e = t['data_offsets']\n"
    "    assert s == end, (name, s, end)\n"
    "    end = e\n"
    "    dt, shape = t['dtype'], tuple(t['shape'])\n"
    "    a = np.frombuffer(data[s:e], dtype=npd[dt]).reshape(shape)\n"
    "    i = np.arange(int(np.prod(shape))).reshape(shape)\n"
    "    u = i * 37 % 101\n"
    "    v = u - 50\n"
    "    if dt == 'BOOL': exp = i % 3 == 0\n"
    "    elif dt[0] == 'U': exp = u\n"
    "    elif dt[0] == 'I': exp = v\n"
    "    elif dt == 'BF16': exp = ((v / 4.0).astype('<f4').view('<u4') >> 16).astype('<u2')\n"
    "    elif dt.startswith('F8'): exp = a\n"
    "    else: exp = (v / 4.0).astype(npd[dt])\n"
    "    assert a.shape == exp.shape and np.array_equal(a, exp), (name, a, exp)\n"
    "    seen += 1\n"
    "assert end == len(data) and seen == 15, (end, len(data), seen)\n";

static const char *PY_WRITE =
    "import sys, json, struct, numpy as np\n"
    "ts = [('w.f32', '<f4', 'F32', (3, 4)), ('b.i64', '<i8', 'I64', (5,)), ('m.bool', '?', 'BOOL', (2, 2)),\n"
    "      ('h.f16', '<f2', 'F16', (7,)), ('s.f64', '<f8', 'F64', ()), ('x.u16', '<u2', 'U16', (2, 3)),\n"
    "      ('x.i8', 'i1', 'I8', (1, 1, 9)), ('x.u64', '<u8', 'U64', (4,)), ('x.i16', '<i2', 'I16', (3,))]\n"
    "hdr, blobs, off = {}, [], 0\n"
    "for name, nd, st, shape in ts:\n"
    "    i = np.arange(int(np.prod(shape))).reshape(shape)\n"
    "    u = i * 37 % 101\n"
    "    a = i % 3 == 0 if st == 'BOOL' else u if st[0] == 'U' else u - 50 if st[0] == 'I' else (u - 50) / 4.0\n"
    "    raw = np.ascontiguousarray(a, dtype=nd).tobytes()\n"
    "    hdr[name] = {'shape': list(shape), 'dtype': st, 'data_offsets': [off, off + len(raw)]}\n"
    "    blobs.append(raw)\n"
    "    off += len(raw)\n"
    "hdr = dict(reversed(list(hdr.items())))\n"
    "hdr['__metadata__'] = {'source': 'numpy', 'n': str(len(ts))}\n"
    "j = json.dumps(hdr).encode()\n" /* default separators, no padding */
    "open(sys.argv[1], 'wb').write(struct.pack('<Q', len(j)) + j + b''.join(blobs))\n";

static int run_python(const char *script, const char *arg) {
  char sp[600], cmd[1400];
  snprintf(sp, sizeof sp, "%s/script.py", tmp_dir);
  FILE *f = fopen(sp, "w");
  fputs(script, f);
  fclose(f);
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s'", sp, arg);
  return system(cmd);
}

static void test_python(void) {
  if (system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0) {
    printf("skipped: the Python cross-check (python3 with numpy not found)\n");
    return;
  }
  /* cgrad writes, Python reads */
  st_tensor ts[CG_NUM_DTYPES];
  void *bufs[CG_NUM_DTYPES];
  char names[CG_NUM_DTYPES][32];
  for (int dt = 0; dt < CG_NUM_DTYPES; dt++) {
    st_tensor *t = &ts[dt];
    memset(t, 0, sizeof *t);
    snprintf(names[dt], sizeof names[dt], "p.%s", cg_dtype_name((cg_dtype)dt));
    t->name = names[dt];
    t->dtype = (cg_dtype)dt;
    t->ndim = 1 + dt % 3;
    for (int d = 0; d < t->ndim; d++) t->shape[d] = 2 + (dt + d) % 4;
    t->nbytes = (size_t)numel(t) * cg_dtype_size(t->dtype);
    t->data = bufs[dt] = malloc(t->nbytes);
    fill(t->dtype, bufs[dt], numel(t));
  }
  const char *meta[] = {"format", "pt", "who", "cgrad \xc3\xa9"};
  const char *path = in_dir("to_python.safetensors");
  CHECK(st_save(path, ts, CG_NUM_DTYPES, meta, 2) == CG_OK, "%s", cg_last_error());
  CHECK(run_python(PY_READ, path) == 0, "Python could not read what cgrad wrote");
  for (int dt = 0; dt < CG_NUM_DTYPES; dt++) free(bufs[dt]);

  /* Python writes (unpadded header, reversed order, metadata last), cgrad reads */
  const char *from = in_dir("from_python.safetensors");
  CHECK(run_python(PY_WRITE, from) == 0, "the Python writer failed");
  st_file *f = st_load(from);
  CHECK(f && st_count(f) == 9, "load the Python file: %s", cg_last_error());
  for (int i = 0; f && i < st_count(f); i++) {
    const st_tensor *t = st_at(f, i);
    void *want = malloc(t->nbytes + 1);
    fill(t->dtype, want, numel(t));
    CHECK(!memcmp(want, t->data, t->nbytes), "tensor %s from Python differs", t->name);
    free(want);
  }
  if (f) {
    CHECK(!strcmp(st_at(f, 0)->name, "w.f32") && st_find(f, "s.f64")->ndim == 0 &&
              st_find(f, "x.i8")->shape[2] == 9,
          "names and shapes from Python");
    CHECK(st_meta_get(f, "source") && !strcmp(st_meta_get(f, "source"), "numpy"), "metadata from Python");
  }
  st_free(f);
}

int main(void) {
  snprintf(tmp_dir, sizeof tmp_dir, "%s/cg_st_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(tmp_dir)) {
    perror("mkdtemp");
    return 1;
  }
  test_roundtrip();
  test_byte_exact();
  test_lenient_but_valid();
  test_bad();
  test_fuzz();
  test_atomic();
  test_python();
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_dir);
  return test_summary();
}
