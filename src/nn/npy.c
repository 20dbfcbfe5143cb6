/* .npy reader and writer.
 *
 *   npy_load:  fio_read_all -> magic, version -> header length -> the header dict (a
 *              Python literal: {'descr': str, 'fortran_order': bool, 'shape': tuple})
 *              -> descr -> dtype -> data size against the file -> data moved to the front
 *   npy_save:  the header NumPy writes (keys sorted, growth space, padded to 64) ->
 *              fio_write_atomic */
#include "npy.h"
#include "core/error.h"
#include "core/fileio.h"
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>

static const char NPY_MAGIC[6] = {(char)0x93, 'N', 'U', 'M', 'P', 'Y'};

/* ---- dtypes ------------------------------------------------------------------------- */

static const struct {
  char kind;
  int size;
  cg_dtype dt;
} npy_kinds[] = {
    {'b', 1, CG_BOOL},   {'i', 1, CG_INT8},    {'u', 1, CG_UINT8},   {'i', 2, CG_INT16},
    {'u', 2, CG_UINT16}, {'i', 4, CG_INT32},   {'u', 4, CG_UINT32},  {'i', 8, CG_INT64},
    {'u', 8, CG_UINT64}, {'f', 2, CG_FLOAT16}, {'f', 4, CG_FLOAT32}, {'f', 8, CG_FLOAT64},
};
#define NPY_SUPPORTED "'<f2' '<f4' '<f8' '<i2' '<i4' '<i8' '<u2' '<u4' '<u8' '|i1' '|u1' '|b1'"

const char *npy_descr(cg_dtype dtype) {
  static const char *const names[CG_NUM_DTYPES] = {
      [CG_BOOL] = "|b1",    [CG_INT8] = "|i1",    [CG_UINT8] = "|u1",   [CG_INT16] = "<i2",
      [CG_UINT16] = "<u2",  [CG_INT32] = "<i4",   [CG_UINT32] = "<u4",  [CG_INT64] = "<i8",
      [CG_UINT64] = "<u8",  [CG_FLOAT16] = "<f2", [CG_FLOAT32] = "<f4", [CG_FLOAT64] = "<f8",
  };
  return (unsigned)dtype < CG_NUM_DTYPES ? names[dtype] : NULL;
}

/* ---- reading -------------------------------------------------------------------------- */

typedef struct {
  const char *s;
  size_t n, i;
  const char *what;
  bool failed;
} hp; /* the header parser */

static bool hfail(hp *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool hfail(hp *p, const char *fmt, ...) {
  if (p->failed) return false;
  char msg[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  cg_fail(CG_ERR_FORMAT, "npy '%s': %s", p->what, msg);
  p->failed = true;
  return false;
}

static bool hexpect(hp *p, const char *expected) {
  char b[16];
  const char *found = "the end of the header";
  if (p->i < p->n) {
    unsigned char c = (unsigned char)p->s[p->i];
    snprintf(b, sizeof b, c >= 0x20 && c < 0x7F ? "'%c'" : "byte 0x%02X", c);
    found = b;
  }
  return hfail(p, "bad header at byte %zu: expected %s but found %s", p->i, expected, found);
}

static void hws(hp *p) {
  while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r')) p->i++;
}
static bool hpeek(hp *p, char c) {
  hws(p);
  return p->i < p->n && p->s[p->i] == c;
}
static bool heat(hp *p, char c, const char *expected) {
  if (!hpeek(p, c)) return hexpect(p, expected);
  p->i++;
  return true;
}

/* A Python string literal without escapes ('...' or "..."), copied into out (cap). */
static bool hstring(hp *p, char *out, size_t cap) {
  hws(p);
  if (p->i >= p->n || (p->s[p->i] != '\'' && p->s[p->i] != '"')) return hexpect(p, "a quoted string");
  char q = p->s[p->i++];
  size_t k = 0;
  while (p->i < p->n && p->s[p->i] != q) {
    if (p->s[p->i] == '\\') return hfail(p, "bad header at byte %zu: escapes in strings are not supported", p->i);
    if (k + 1 < cap) out[k++] = p->s[p->i];
    p->i++;
  }
  if (p->i >= p->n) return hfail(p, "bad header: a string is not closed");
  p->i++;
  out[k] = 0;
  return true;
}

static bool hint(hp *p, int64_t *out) {
  hws(p);
  size_t at = p->i;
  int64_t v = 0;
  if (at >= p->n || p->s[at] < '0' || p->s[at] > '9') return hexpect(p, "a non-negative integer in the shape");
  while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
    int d = p->s[p->i++] - '0';
    if (v > (INT64_MAX - d) / 10) return hfail(p, "bad header at byte %zu: a dimension does not fit in 64 bits", at);
    v = v * 10 + d;
  }
  if (p->i < p->n && p->s[p->i] == 'L') p->i++; /* Python 2 long, in old files */
  *out = v;
  return true;
}

/* Parse descr like "<f4" into a dtype. */
static bool parse_descr(hp *p, const char *d, cg_dtype *out) {
  size_t len = strlen(d);
  char order = len ? d[0] : 0;
  if (len >= 3 && strchr("<>|=", order)) {
    char kind = d[1];
    long size = 0;
    bool digits = true;
    for (size_t k = 2; k < len && digits; k++) {
      digits = d[k] >= '0' && d[k] <= '9' && k < 6;
      size = size * 10 + (d[k] - '0');
    }
    if (digits)
      for (size_t k = 0; k < sizeof npy_kinds / sizeof npy_kinds[0]; k++) {
        if (npy_kinds[k].kind != kind || npy_kinds[k].size != size) continue;
        if (size > 1 && order == '>')
          return hfail(p, "descr '%s' is big-endian, which cgrad does not read: expected little-endian '<%c%ld' "
                          "(convert with a.astype('<%c%ld'))", d, kind, size, kind, size);
        if (size > 1 && order == '|')
          return hfail(p, "descr '%s' has no byte order for a %ld-byte type: expected '<%c%ld'", d, size, kind, size);
        *out = npy_kinds[k].dt;
        return true;
      }
  }
  return hfail(p, "unsupported descr '%s': expected one of " NPY_SUPPORTED, d);
}

/* The header dict: exactly the keys descr, fortran_order and shape. */
static bool parse_dict(hp *p, npy_array *a) {
  bool have_descr = false, have_fortran = false, have_shape = false;
  if (!heat(p, '{', "'{' starting the header dict")) return false;
  while (!hpeek(p, '}')) {
    char key[32];
    if (!hstring(p, key, sizeof key) || !heat(p, ':', "':'")) return false;
    if (!strcmp(key, "descr")) {
      char d[64];
      if (have_descr) return hfail(p, "the header has 'descr' twice");
      have_descr = true;
      if (hpeek(p, '[')) return hfail(p, "structured dtypes (descr is a list) are not supported: expected one of " NPY_SUPPORTED);
      if (!hstring(p, d, sizeof d) || !parse_descr(p, d, &a->dtype)) return false;
    } else if (!strcmp(key, "fortran_order")) {
      if (have_fortran) return hfail(p, "the header has 'fortran_order' twice");
      have_fortran = true;
      hws(p);
      if (p->n - p->i >= 4 && !memcmp(p->s + p->i, "True", 4))
        return hfail(p, "fortran_order is True (column-major data), which cgrad does not read: expected False "
                        "(save np.ascontiguousarray(a) instead)");
      if (p->n - p->i < 5 || memcmp(p->s + p->i, "False", 5)) return hexpect(p, "True or False for fortran_order");
      p->i += 5;
    } else if (!strcmp(key, "shape")) {
      if (have_shape) return hfail(p, "the header has 'shape' twice");
      have_shape = true;
      if (!heat(p, '(', "'(' starting the shape tuple")) return false;
      bool comma = false;
      while (!hpeek(p, ')')) {
        if (a->ndim == NPY_MAX_DIMS)
          return hfail(p, "the array has more than %d dimensions, the most cgrad supports", NPY_MAX_DIMS);
        if (!hint(p, &a->shape[a->ndim++])) return false;
        comma = hpeek(p, ',');
        if (comma) p->i++;
        else if (!hpeek(p, ')')) return hexpect(p, "',' or ')' in the shape tuple");
      }
      if (a->ndim == 1 && !comma) return hfail(p, "the shape '(%lld)' is not a tuple: expected '(%lld,)'",
                                               (long long)a->shape[0], (long long)a->shape[0]);
      p->i++;
    } else {
      return hfail(p, "unexpected key '%s' in the header: expected only 'descr', 'fortran_order' and 'shape'", key);
    }
    if (hpeek(p, ',')) p->i++;
    else if (!hpeek(p, '}')) return hexpect(p, "',' or '}' in the header dict");
  }
  p->i++;
  const char *missing = !have_descr ? "descr" : !have_fortran ? "fortran_order" : !have_shape ? "shape" : NULL;
  if (missing) return hfail(p, "the header has no '%s' key (expected 'descr', 'fortran_order' and 'shape')", missing);
  hws(p);
  if (p->i != p->n) return hexpect(p, "only space padding and '\\n' after the header dict");
  return true;
}

/* Parse an image we own (buf: size bytes + 1). Frees buf on failure. */
static npy_array *parse_owned(char *buf, size_t size, const char *what) {
  npy_array *a = cg_calloc(1, sizeof *a);
  if (!a) return free(buf), NULL;
  hp p = {.what = what};
  const unsigned char *u = (const unsigned char *)buf;
  if (size < 10 || memcmp(buf, NPY_MAGIC, 6)) {
    if (size < 10) hfail(&p, "the file is %zu bytes, too short for a .npy header (expected at least 10)", size);
    else
      hfail(&p, "not a .npy file: expected the magic bytes 93 4E 55 4D 50 59 (\"\\x93NUMPY\"), found "
                "%02X %02X %02X %02X %02X %02X", u[0], u[1], u[2], u[3], u[4], u[5]);
    goto fail;
  }
  a->version = u[6];
  if ((u[6] != 1 && u[6] != 2 && u[6] != 3) || u[7] != 0) {
    hfail(&p, "format version %d.%d is not supported: expected 1.0, 2.0 or 3.0", u[6], u[7]);
    goto fail;
  }
  size_t lenbytes = u[6] == 1 ? 2 : 4, at = 8 + lenbytes;
  if (size < at) {
    hfail(&p, "the file is %zu bytes, too short for a version %d.0 header (expected at least %zu)", size, u[6], at);
    goto fail;
  }
  uint64_t hlen = 0;
  for (size_t k = lenbytes; k-- > 0;) hlen = hlen << 8 | u[8 + k];
  if (hlen > size - at) {
    hfail(&p, "the header length %llu runs past the end of the file (%zu bytes follow it): truncated file?",
          (unsigned long long)hlen, size - at);
    goto fail;
  }
  p.s = buf + at;
  p.n = (size_t)hlen;
  if (!parse_dict(&p, a)) goto fail;
  size_t data_at = at + (size_t)hlen;
  uint64_t nb = cg_dtype_size(a->dtype);
  bool zero = false, overflow = false;
  for (int d = 0; d < a->ndim; d++) {
    uint64_t s = (uint64_t)a->shape[d];
    if (!s) zero = true;
    else if (nb > UINT64_MAX / s) overflow = true;
    else nb *= s;
  }
  if (zero) nb = 0;
  else if (overflow) {
    hfail(&p, "the shape's byte size overflows 64 bits");
    goto fail;
  }
  if (nb != size - data_at) {
    char sh[200];
    size_t k = 0;
    for (int d = 0; d < a->ndim && k < sizeof sh; d++)
      k += (size_t)snprintf(sh + k, sizeof sh - k, "%s%lld", d ? "x" : "", (long long)a->shape[d]);
    if (!a->ndim) snprintf(sh, sizeof sh, "scalar");
    hfail(&p, "expected %llu data bytes (shape %s of %s) after the %zu-byte header, found %zu%s",
          (unsigned long long)nb, sh, cg_dtype_name(a->dtype), data_at, size - data_at,
          nb > size - data_at ? ": truncated file" : ": extra bytes at the end");
    goto fail;
  }
  a->nbytes = (size_t)nb;
  memmove(buf, buf + data_at, a->nbytes); /* the data to the aligned start of the block */
  a->data = buf;
  return a;
fail:
  free(buf);
  free(a);
  return NULL;
}

npy_array *npy_load(const char *path) {
  size_t size;
  char *buf = fio_read_all(path, &size);
  return buf ? parse_owned(buf, size, path) : NULL;
}

npy_array *npy_parse(const void *bytes, size_t size, const char *what) {
  if (!bytes && size) return cg_fail_null(CG_ERR_INVALID, "npy_parse: expected bytes, got NULL");
  char *buf = cg_malloc(size + 1);
  if (!buf) return NULL;
  if (size) memcpy(buf, bytes, size);
  return parse_owned(buf, size, what ? what : "<memory>");
}

void npy_free(npy_array *a) {
  if (!a) return;
  free(a->data);
  free(a);
}

/* ---- writing -------------------------------------------------------------------------- */

#define NPY_ALIGN 64
#define NPY_GROWTH_DIGITS 21 /* NumPy leaves room to rewrite shape[0] in place */

/* The 10-byte preamble plus header, exactly as NumPy 1.24 writes it; returns its length
 * (0 with a message on bad arguments). */
static size_t build_header(cg_dtype dtype, int ndim, const int64_t *shape, const void *data, char *out, size_t cap,
                           size_t *nbytes) {
  const char *descr = npy_descr(dtype);
  if (!descr)
    return cg_fail(CG_ERR_INVALID, "npy_save: %s has no .npy dtype: expected one of bool, int8..int64, uint8..uint64, "
                                   "float16, float32, float64", cg_dtype_name(dtype)), 0;
  if (ndim < 0 || ndim > NPY_MAX_DIMS || (ndim && !shape))
    return cg_fail(CG_ERR_INVALID, "npy_save: expected 0..%d dimensions with a shape, got ndim %d", NPY_MAX_DIMS, ndim), 0;
  uint64_t nb = cg_dtype_size(dtype);
  bool zero = false, overflow = false; /* as the reader: a zero dim makes the others' product harmless */
  for (int d = 0; d < ndim; d++) {
    if (shape[d] < 0)
      return cg_fail(CG_ERR_INVALID, "npy_save: shape[%d] is %lld, expected >= 0", d, (long long)shape[d]), 0;
    if (!shape[d]) zero = true;
    else if (nb > SIZE_MAX / (uint64_t)shape[d]) overflow = true;
    else nb *= (uint64_t)shape[d];
  }
  if (zero) nb = 0;
  else if (overflow) return cg_fail(CG_ERR_INVALID, "npy_save: the shape's byte size overflows"), 0;
  if (nb && !data) return cg_fail(CG_ERR_INVALID, "npy_save: %llu bytes of data expected, got NULL", (unsigned long long)nb), 0;
  *nbytes = (size_t)nb;

  char dict[512];
  int k = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
  for (int d = 0; d < ndim; d++) k += snprintf(dict + k, sizeof dict - (size_t)k, "%s%lld", d ? ", " : "", (long long)shape[d]);
  k += snprintf(dict + k, sizeof dict - (size_t)k, "%s), }", ndim == 1 ? "," : "");
  if (ndim > 0) {
    int digits = snprintf(NULL, 0, "%lld", (long long)shape[0]);
    for (int s = digits; s < NPY_GROWTH_DIGITS; s++) dict[k++] = ' ';
  }
  size_t hlen = (size_t)k + 1; /* + '\n' */
  size_t pad = NPY_ALIGN - (10 + hlen) % NPY_ALIGN;
  size_t total = 10 + hlen + pad;
  CG_ASSERT(total <= cap && total - 10 <= 0xFFFF, "npy header of %zu bytes", total);
  memcpy(out, NPY_MAGIC, 6);
  out[6] = 1, out[7] = 0;
  out[8] = (char)((total - 10) & 0xFF), out[9] = (char)((total - 10) >> 8);
  memcpy(out + 10, dict, (size_t)k);
  memset(out + 10 + k, ' ', pad);
  out[total - 1] = '\n';
  return total;
}

typedef struct {
  const char *hdr;
  size_t hlen;
  const void *data;
  size_t nbytes;
} save_ctx;

static cg_status save_write(FILE *f, void *ctx) {
  save_ctx *c = ctx;
  cg_status st = fio_put(f, c->hdr, c->hlen);
  return st == CG_OK ? fio_put(f, c->data, c->nbytes) : st;
}

cg_status npy_save(const char *path, cg_dtype dtype, int ndim, const int64_t *shape, const void *data) {
  char hdr[1024];
  save_ctx c = {hdr, 0, data, 0};
  c.hlen = build_header(dtype, ndim, shape, data, hdr, sizeof hdr, &c.nbytes);
  if (!c.hlen) return cg_last_status();
  return fio_write_atomic(path, save_write, &c);
}

void *npy_serialize(cg_dtype dtype, int ndim, const int64_t *shape, const void *data, size_t *size) {
  char hdr[1024];
  size_t nbytes, hlen = build_header(dtype, ndim, shape, data, hdr, sizeof hdr, &nbytes);
  if (size) *size = 0;
  if (!hlen) return NULL;
  char *out = cg_malloc(hlen + nbytes);
  if (!out) return NULL;
  memcpy(out, hdr, hlen);
  if (nbytes) memcpy(out + hlen, data, nbytes);
  if (size) *size = hlen + nbytes;
  return out;
}
