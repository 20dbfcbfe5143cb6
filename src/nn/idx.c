/* IDX reader (raw and gzip) and raw writer.
 *
 *   idx_load:  sniff the first bytes -> gzip? zlib stream : whole file in memory
 *              -> magic 00 00, type code, ndim -> dims -> data size checked exactly
 *              -> data to host byte order */
#include "idx.h"
#include "core/error.h"
#include "core/fileio.h"
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#ifdef CG_HAVE_ZLIB
#include <zlib.h>
#endif

static const struct {
  unsigned char code;
  cg_dtype dt;
} idx_types[] = {
    {0x08, CG_UINT8}, {0x09, CG_INT8}, {0x0B, CG_INT16}, {0x0C, CG_INT32}, {0x0D, CG_FLOAT32}, {0x0E, CG_FLOAT64},
};
#define IDX_TYPES "0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64"

bool idx_have_gzip(void) {
#ifdef CG_HAVE_ZLIB
  return true;
#else
  return false;
#endif
}

void idx_free(idx_array *a) {
  if (!a) return;
  free(a->data);
  free(a);
}

static void *idx_fail(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void *idx_fail(const char *what, const char *fmt, ...) {
  char msg[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return cg_fail_null(CG_ERR_FORMAT, "idx '%s': %s", what, msg);
}

/* Big-endian (file) to host order, in place. */
static void to_host(void *data, size_t nbytes, size_t item) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  (void)data, (void)nbytes, (void)item;
#else
  unsigned char *p = data;
  for (size_t at = 0; item > 1 && at + item <= nbytes; at += item)
    for (size_t i = 0, j = item - 1; i < j; i++, j--) {
      unsigned char t = p[at + i];
      p[at + i] = p[at + j];
      p[at + j] = t;
    }
#endif
}

static void shape_str(const idx_array *a, char *buf, size_t cap) {
  size_t k = 0;
  buf[0] = 0;
  for (int d = 0; d < a->ndim && k < cap; d++)
    k += (size_t)snprintf(buf + k, cap - k, "%s%lld", d ? "x" : "", (long long)a->shape[d]);
  if (!a->ndim) snprintf(buf, cap, "scalar");
}

/* Parse the 4-byte magic; fills dtype and ndim. hdr has at least 4 bytes. */
static idx_array *parse_magic(const unsigned char *hdr, const char *what) {
  if (hdr[0] || hdr[1])
    return idx_fail(what, "not an IDX file: expected the magic to start with bytes 00 00, found %02X %02X", hdr[0],
                    hdr[1]);
  cg_dtype dt = CG_NUM_DTYPES;
  for (size_t k = 0; k < sizeof idx_types / sizeof idx_types[0]; k++)
    if (idx_types[k].code == hdr[2]) dt = idx_types[k].dt;
  if (dt == CG_NUM_DTYPES) return idx_fail(what, "unknown type code 0x%02X: expected one of " IDX_TYPES, hdr[2]);
  if (hdr[3] > IDX_MAX_DIMS)
    return idx_fail(what, "%d dimensions, more than the %d cgrad supports", hdr[3], IDX_MAX_DIMS);
  idx_array *a = cg_calloc(1, sizeof *a);
  if (!a) return NULL;
  a->dtype = dt;
  a->ndim = hdr[3];
  return a;
}

/* Read the dims (4*ndim bytes) and compute nbytes; false (message set) on overflow. */
static bool parse_dims(idx_array *a, const unsigned char *p, const char *what) {
  uint64_t nb = cg_dtype_size(a->dtype);
  for (int d = 0; d < a->ndim; d++) {
    uint32_t v = (uint32_t)p[4 * d] << 24 | (uint32_t)p[4 * d + 1] << 16 | (uint32_t)p[4 * d + 2] << 8 | p[4 * d + 3];
    a->shape[d] = v;
  }
  for (int d = 0; d < a->ndim; d++)
    if (!a->shape[d]) nb = 0;
  for (int d = 0; d < a->ndim && nb; d++) {
    if (nb > SIZE_MAX / (uint64_t)a->shape[d]) {
      char sh[200];
      shape_str(a, sh, sizeof sh);
      idx_fail(what, "shape %s is too large to hold in memory", sh);
      return false;
    }
    nb *= (uint64_t)a->shape[d];
  }
  a->nbytes = (size_t)nb;
  return true;
}

static void *size_fail(const idx_array *a, const char *what, size_t hdr, unsigned long long found) {
  char sh[200];
  shape_str(a, sh, sizeof sh);
  return idx_fail(what, "expected %zu data bytes (shape %s of %s) after the %zu-byte header, found %llu%s", a->nbytes,
                  sh, cg_dtype_name(a->dtype), hdr, found,
                  found < a->nbytes ? ": truncated or corrupt file" : ": extra bytes at the end");
}

/* A raw image we own (buf: size bytes + 1). Frees buf on failure. */
static idx_array *parse_owned(char *buf, size_t size, const char *what) {
  const unsigned char *u = (const unsigned char *)buf;
  if (size < 4) {
    free(buf);
    return idx_fail(what, "the file is %zu bytes, too short for the 4-byte IDX magic", size);
  }
  idx_array *a = parse_magic(u, what);
  if (!a) return free(buf), NULL;
  size_t hdr = 4 + 4 * (size_t)a->ndim;
  if (size < hdr) {
    idx_fail(what, "the header needs %zu bytes for %d dimensions, but the file is %zu bytes: truncated file", hdr,
             a->ndim, size);
    goto fail;
  }
  if (!parse_dims(a, u + 4, what)) goto fail;
  if (size - hdr != a->nbytes) {
    size_fail(a, what, hdr, size - hdr);
    goto fail;
  }
  memmove(buf, buf + hdr, a->nbytes);
  a->data = buf;
  to_host(a->data, a->nbytes, cg_dtype_size(a->dtype));
  return a;
fail:
  free(buf);
  free(a);
  return NULL;
}

idx_array *idx_parse(const void *bytes, size_t size, const char *what) {
  if (!bytes && size) return cg_fail_null(CG_ERR_INVALID, "idx_parse: expected bytes, got NULL");
  char *buf = cg_malloc(size + 1);
  if (!buf) return NULL;
  if (size) memcpy(buf, bytes, size);
  return parse_owned(buf, size, what ? what : "<memory>");
}

#ifdef CG_HAVE_ZLIB
/* Read up to n bytes; returns the count, or -1 with the zlib message in err. */
static long long gz_read_n(gzFile g, void *dst, size_t n, const char **err) {
  size_t got = 0;
  while (got < n) {
    unsigned chunk = n - got > (1u << 30) ? 1u << 30 : (unsigned)(n - got);
    int r = gzread(g, (char *)dst + got, chunk);
    int code;
    const char *m = gzerror(g, &code);
    if (r < 0 || code != Z_OK) { /* Z_BUF_ERROR: the stream ended early, a truncated .gz */
      *err = m;
      return -1;
    }
    if (r == 0) break;
    got += (size_t)r;
  }
  return (long long)got;
}

/* isize: the gzip trailer's uncompressed size mod 2^32; gz_bytes: the file's size. */
static idx_array *load_gz(const char *path, uint32_t isize, uint64_t gz_bytes) {
  errno = 0;
  gzFile g = gzopen(path, "rb");
  if (!g) return cg_fail_null(CG_ERR_IO, "could not open '%s': %s", path, strerror(errno ? errno : ENOMEM));
  gzbuffer(g, gz_bytes >= 1 << 17 ? 1 << 17 : 8192); /* big reads for a big file; zlib's 8 KiB (x3) for a small one, not 384 KiB */
  unsigned char hdr[4 + 4 * IDX_MAX_DIMS];
  const char *err = NULL;
  idx_array *a = NULL;
  char *data = NULL;
  long long r = gz_read_n(g, hdr, 4, &err);
  if (r < 0) goto corrupt;
  if (r < 4) {
    idx_fail(path, "the decompressed file is %lld bytes, too short for the 4-byte IDX magic", r);
    goto fail;
  }
  if (!(a = parse_magic(hdr, path))) goto fail;
  size_t hlen = 4 + 4 * (size_t)a->ndim;
  r = gz_read_n(g, hdr + 4, hlen - 4, &err);
  if (r < 0) goto corrupt;
  if ((size_t)r < hlen - 4) {
    idx_fail(path, "the header needs %zu bytes for %d dimensions, but the decompressed file is %lld bytes: truncated",
             hlen, a->ndim, 4 + r);
    goto fail;
  }
  if (!parse_dims(a, hdr + 4, path)) goto fail;
  /* Check the claimed size before inflating it: deflate cannot expand more than 1032:1,
   * and a (single-member) gzip file's trailer gives the inflated size mod 2^32. */
  uint64_t want = (uint64_t)hlen + a->nbytes;
  if (want / 1032 > gz_bytes) {
    idx_fail(path, "the header claims %llu bytes, but a gzip file of %llu bytes inflates to at most %llu", (unsigned long long)want,
             (unsigned long long)gz_bytes, (unsigned long long)gz_bytes * 1032);
    goto fail;
  }
  if ((uint32_t)want != isize && want < ((uint64_t)1 << 32) && isize >= hlen) { /* the trailer's count, as if inflated */
    size_fail(a, path, hlen, (unsigned long long)(isize - hlen));
    goto fail;
  }
  if ((uint32_t)want != isize) {
    idx_fail(path, "the header claims %llu bytes, but the gzip trailer says the file inflates to %u (mod 2^32)", (unsigned long long)want, isize);
    goto fail;
  }
  /* Grow the buffer as data arrives, so a corrupt header claiming terabytes fails on the
   * data it lacks rather than on one huge allocation. */
  size_t cap = a->nbytes < (1u << 24) ? a->nbytes : 1u << 24, got = 0;
  data = cg_malloc(cap ? cap : 1);
  if (!data) goto fail;
  for (;;) {
    r = gz_read_n(g, data + got, cap - got, &err);
    if (r < 0) goto corrupt;
    got += (size_t)r;
    if (got < cap || cap == a->nbytes) break;
    size_t ncap = cap > a->nbytes / 2 ? a->nbytes : cap * 2;
    char *nd = cg_realloc(data, ncap);
    if (!nd) goto fail;
    data = nd;
    cap = ncap;
  }
  if (got < a->nbytes) {
    size_fail(a, path, hlen, got);
    goto fail;
  }
  char extra[4096];
  long long more = 0;
  while ((r = gz_read_n(g, extra, sizeof extra, &err)) > 0) more += r;
  if (r < 0) goto corrupt;
  if (more) {
    size_fail(a, path, hlen, (unsigned long long)(got + (size_t)more));
    goto fail;
  }
  gzclose(g);
  a->data = data;
  to_host(a->data, a->nbytes, cg_dtype_size(a->dtype));
  return a;
corrupt: /* zlib's message starts with the path; say it once */
  if (err && !strncmp(err, path, strlen(path)) && !strncmp(err + strlen(path), ": ", 2)) err += strlen(path) + 2;
  idx_fail(path, "corrupt or truncated gzip data: %s", err ? err : "unknown zlib error");
fail:
  gzclose(g);
  free(data);
  free(a);
  return NULL;
}
#endif

idx_array *idx_load(const char *path) {
  if (!path || !*path) return cg_fail_null(CG_ERR_INVALID, "idx_load: expected a file path, got an empty one");
  /* only a regular file: /dev/zero or a FIFO would be read forever (O_NONBLOCK: opening a
   * FIFO does not wait for a writer) */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return cg_fail_null(CG_ERR_IO, "could not open '%s': %s", path, strerror(errno));
  struct stat sb;
  if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
    close(fd);
    return cg_fail_null(CG_ERR_IO, "could not read '%s': expected a regular file", path);
  }
  unsigned char magic[2] = {0, 0}, tail[4] = {0, 0, 0, 0};
  ssize_t got = pread(fd, magic, 2, 0);
  if (sb.st_size >= 4 && pread(fd, tail, 4, sb.st_size - 4) != 4) got = -1;
  close(fd);
  if (got == 2 && magic[0] == 0x1F && magic[1] == 0x8B) {
#ifdef CG_HAVE_ZLIB
    uint32_t isize = (uint32_t)tail[0] | (uint32_t)tail[1] << 8 | (uint32_t)tail[2] << 16 | (uint32_t)tail[3] << 24;
    return load_gz(path, isize, (uint64_t)sb.st_size);
#else
    return cg_fail_null(CG_ERR_FORMAT, "idx '%s' is gzip-compressed, but cgrad was built without zlib: expected a "
                                       "raw IDX file (gunzip it first, or rebuild with zlib)", path);
#endif
  }
  size_t size;
  char *buf = fio_read_all(path, &size);
  return buf ? parse_owned(buf, size, path) : NULL;
}

/* ---- writing -------------------------------------------------------------------------- */

typedef struct {
  unsigned char hdr[4 + 4 * IDX_MAX_DIMS];
  size_t hlen, item, nbytes;
  const unsigned char *data;
} save_ctx;

static cg_status save_write(FILE *f, void *ctx) {
  save_ctx *c = ctx;
  cg_status st = fio_put(f, c->hdr, c->hlen);
  unsigned char tmp[1 << 14];
  for (size_t at = 0; at < c->nbytes && st == CG_OK;) {
    size_t n = c->nbytes - at < sizeof tmp ? c->nbytes - at : sizeof tmp;
    memcpy(tmp, c->data + at, n);
    to_host(tmp, n, c->item); /* the same swap turns host order into big-endian */
    st = fio_put(f, tmp, n);
    at += n;
  }
  return st;
}

cg_status idx_save(const char *path, cg_dtype dtype, int ndim, const int64_t *shape, const void *data) {
  save_ctx c = {.item = cg_dtype_size(dtype), .data = data};
  int code = -1;
  for (size_t k = 0; k < sizeof idx_types / sizeof idx_types[0]; k++)
    if (idx_types[k].dt == dtype) code = idx_types[k].code;
  if (code < 0)
    return cg_fail(CG_ERR_INVALID, "idx_save: IDX cannot store %s: expected uint8, int8, int16, int32, float32 or float64",
                   cg_dtype_name(dtype));
  if (ndim < 0 || ndim > IDX_MAX_DIMS || (ndim && !shape))
    return cg_fail(CG_ERR_INVALID, "idx_save: expected 0..%d dimensions with a shape, got ndim %d", IDX_MAX_DIMS, ndim);
  c.hdr[2] = (unsigned char)code;
  c.hdr[3] = (unsigned char)ndim;
  c.nbytes = c.item;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] < 0 || shape[d] > (int64_t)UINT32_MAX)
      return cg_fail(CG_ERR_INVALID, "idx_save: shape[%d] is %lld, expected 0..4294967295", d, (long long)shape[d]);
    uint32_t v = (uint32_t)shape[d];
    for (int b = 0; b < 4; b++) c.hdr[4 + 4 * d + b] = (unsigned char)(v >> (24 - 8 * b));
    if (v && c.nbytes > SIZE_MAX / v) return cg_fail(CG_ERR_INVALID, "idx_save: the shape's byte size overflows");
    c.nbytes *= v;
  }
  if (c.nbytes && !data) return cg_fail(CG_ERR_INVALID, "idx_save: expected %zu bytes of data, got NULL", c.nbytes);
  c.hlen = 4 + 4 * (size_t)ndim;
  return fio_write_atomic(path, save_write, &c);
}
