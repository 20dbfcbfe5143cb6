/* TensorProto -> cg_tensor.
 *
 * The data is in exactly one place: raw_data (little-endian bytes), a typed repeated field
 * (float_data, int32_data for every type of 32 bits or fewer, int64_data, double_data,
 * uint64_data for uint32/uint64), or an external file (data_location EXTERNAL, with
 * location/offset/length entries). Every size is checked against the element count before
 * a byte is copied; the element count itself is checked for overflow. */
#include "onnx/onnx.h"
#include "onnx_data.pb-c.h"
#include "core/error.h"
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int onnx_dtype(int32_t t) {
  switch (t) {
  case 1: return CG_FLOAT32;
  case 2: return CG_UINT8;
  case 3: return CG_INT8;
  case 4: return CG_UINT16;
  case 5: return CG_INT16;
  case 6: return CG_INT32;
  case 7: return CG_INT64;
  case 9: return CG_BOOL;
  case 10: return CG_FLOAT16;
  case 11: return CG_FLOAT64;
  case 12: return CG_UINT32;
  case 13: return CG_UINT64;
  case 16: return CG_BFLOAT16;
  default: return -1;
  }
}

const char *onnx_dtype_name(int32_t t) {
  static const char *const names[] = {"UNDEFINED", "FLOAT",  "UINT8",  "INT8",   "UINT16",    "INT16",      "INT32",
                                      "INT64",     "STRING", "BOOL",   "FLOAT16", "DOUBLE",   "UINT32",     "UINT64",
                                      "COMPLEX64", "COMPLEX128", "BFLOAT16"};
  return t >= 0 && t < (int32_t)(sizeof names / sizeof *names) ? names[t] : "unknown";
}

/* The external data file's bytes [offset, offset+nbytes) into a new buffer *dst. The
 * location must be a relative path that stays inside base_dir, symlinks resolved; the file
 * must hold the bytes before anything is allocated. */
static bool read_external(const Onnx__TensorProto *tp, const char *base_dir, const char *what, void **dst, size_t nbytes) {
  const char *loc = NULL;
  int64_t offset = 0, length = -1;
  for (size_t i = 0; i < tp->n_external_data; i++) {
    const Onnx__StringStringEntryProto *e = tp->external_data[i];
    if (!e->key || !e->value) continue;
    char *end;
    if (!strcmp(e->key, "location")) loc = e->value;
    else if (!strcmp(e->key, "offset") || !strcmp(e->key, "length")) {
      errno = 0;
      long long v = strtoll(e->value, &end, 10);
      if (errno || *end || end == e->value || v < 0) {
        cg_fail(CG_ERR_FORMAT, "onnx: tensor '%s': external data %s '%s' is not a non-negative integer", what, e->key, e->value);
        return false;
      }
      if (!strcmp(e->key, "offset")) offset = v;
      else length = v;
    }
  }
  if (!loc || !*loc) return cg_fail(CG_ERR_FORMAT, "onnx: tensor '%s': external data without a location", what), false;
  if (!base_dir)
    return cg_fail(CG_ERR_FORMAT, "onnx: tensor '%s': external data '%s' but the model was not loaded from a file", what, loc),
           false;
  if (loc[0] == '/' || strstr(loc, ".."))
    return cg_fail(CG_ERR_FORMAT, "onnx: tensor '%s': external data location '%s' must be a relative path inside the model's directory",
                   what, loc),
           false;
  if (length >= 0 && (uint64_t)length != nbytes)
    return cg_fail(CG_ERR_FORMAT, "onnx: tensor '%s': external data length %lld, expected %zu bytes for its shape", what,
                   (long long)length, nbytes),
           false;
  size_t pl = strlen(base_dir) + strlen(loc) + 2;
  char *path = cg_malloc(pl);
  if (!path) return false;
  snprintf(path, pl, "%s/%s", base_dir, loc);
  char *real = realpath(path, NULL), *rdir = realpath(base_dir, NULL);
  bool ok = false;
  if (!real || !rdir) {
    cg_fail(CG_ERR_IO, "onnx: tensor '%s': external data '%s': %s", what, path, strerror(errno));
  } else if (strncmp(real, rdir, strlen(rdir)) || real[strlen(rdir)] != '/') {
    cg_fail(CG_ERR_FORMAT, "onnx: tensor '%s': external data '%s' resolves outside the model's directory", what, loc);
  } else {
    FILE *f = fopen(real, "rb");
    struct stat sb;
    if (!f) cg_fail(CG_ERR_IO, "onnx: tensor '%s': could not open external data '%s': %s", what, path, strerror(errno));
    else {
      if (fstat(fileno(f), &sb) || (uint64_t)sb.st_size < (uint64_t)offset || (uint64_t)sb.st_size - (uint64_t)offset < nbytes)
        cg_fail(CG_ERR_FORMAT, "onnx: tensor '%s': external data '%s' has fewer than %lld + %zu bytes", what, loc,
                (long long)offset, nbytes);
      else if ((*dst = cg_malloc(nbytes ? nbytes : 1))) {
        if (fseeko(f, (off_t)offset, SEEK_SET) || fread(*dst, 1, nbytes, f) != nbytes)
          cg_fail(CG_ERR_IO, "onnx: tensor '%s': could not read external data '%s'", what, loc);
        else ok = true;
      }
      fclose(f);
    }
  }
  free(path);
  free(real);
  free(rdir);
  return ok;
}

cg_tensor *onnx_tensor_from_proto(const Onnx__TensorProto *tp, const char *base_dir, const char *what) {
  if (!what || !*what) what = tp->name && *tp->name ? tp->name : "?";
  int dt = onnx_dtype(tp->data_type);
  if (dt < 0)
    return cg_fail_null(CG_ERR_FORMAT, "onnx: tensor '%s': data type %s (%d) is not supported", what,
                        onnx_dtype_name(tp->data_type), (int)tp->data_type);
  if (tp->n_dims > CG_MAX_DIMS)
    return cg_fail_null(CG_ERR_FORMAT, "onnx: tensor '%s': %zu dims, at most %d are supported", what, tp->n_dims, CG_MAX_DIMS);
  uint64_t numel = 1;
  int64_t shape[CG_MAX_DIMS];
  for (size_t i = 0; i < tp->n_dims; i++) {
    if (tp->dims[i] < 0) return cg_fail_null(CG_ERR_FORMAT, "onnx: tensor '%s': dim %zu is %lld", what, i, (long long)tp->dims[i]);
    shape[i] = tp->dims[i];
    if (__builtin_mul_overflow(numel, (uint64_t)tp->dims[i], &numel) || numel > ((uint64_t)1 << 40))
      return cg_fail_null(CG_ERR_FORMAT, "onnx: tensor '%s': element count overflows (dim %zu = %lld)", what, i,
                          (long long)tp->dims[i]);
  }
  size_t esz = cg_dtype_size((cg_dtype)dt), nbytes = (size_t)numel * esz;
  /* the data must be there before its buffer is allocated: a hostile header cannot make
   * us allocate more than the file holds */
  bool external = tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
  size_t have = 0;
  switch (dt) {
  case CG_FLOAT32: have = tp->n_float_data; break;
  case CG_FLOAT64: have = tp->n_double_data; break;
  case CG_INT64: have = tp->n_int64_data; break;
  case CG_UINT32: case CG_UINT64: have = tp->n_uint64_data; break;
  default: have = tp->n_int32_data; break;
  }
  if (!external && tp->has_raw_data && tp->raw_data.len != nbytes)
    return cg_fail_null(CG_ERR_FORMAT, "onnx: tensor '%s': raw_data has %zu bytes, its shape and type need %zu", what, tp->raw_data.len,
                        nbytes);
  if (!external && !tp->has_raw_data && have != numel)
    return cg_fail_null(CG_ERR_FORMAT, "onnx: tensor '%s': %zu values for the %llu elements of its shape", what, have,
                        (unsigned long long)numel);
  void *buf = NULL;
  if (external) {
    if (!read_external(tp, base_dir, what, &buf, nbytes)) {
      free(buf);
      return NULL;
    }
  } else if (!(buf = cg_malloc(nbytes ? nbytes : 1))) return NULL;
  bool ok = true;
#define CG_TYPED(field, ctype)                                                                              \
  do {                                                                                                        \
    if (tp->n_##field != numel) {                                                                             \
      cg_fail(CG_ERR_FORMAT, "onnx: tensor '%s': " #field " has %zu values, its shape needs %llu", what, tp->n_##field, \
              (unsigned long long)numel);                                                                     \
      ok = false;                                                                                             \
      break;                                                                                                  \
    }                                                                                                         \
    for (uint64_t k = 0; k < numel; k++) {                                                                    \
      ctype v = (ctype)tp->field[k];                                                                          \
      memcpy((char *)buf + k * esz, &v, esz);                                                                 \
    }                                                                                                         \
  } while (0)
  if (external) {
    /* read above */
  } else if (tp->has_raw_data) {
    if (tp->raw_data.len != nbytes) {
      cg_fail(CG_ERR_FORMAT, "onnx: tensor '%s': raw_data has %zu bytes, its shape and type need %zu", what, tp->raw_data.len, nbytes);
      ok = false;
    } else if (nbytes) memcpy(buf, tp->raw_data.data, nbytes);
  } else {
    switch (dt) {
    case CG_FLOAT32: CG_TYPED(float_data, float); break;
    case CG_FLOAT64: CG_TYPED(double_data, double); break;
    case CG_INT64: CG_TYPED(int64_data, int64_t); break;
    case CG_UINT32: CG_TYPED(uint64_data, uint32_t); break;
    case CG_UINT64: CG_TYPED(uint64_data, uint64_t); break;
    case CG_INT32: CG_TYPED(int32_data, int32_t); break;
    case CG_INT16: CG_TYPED(int32_data, int16_t); break;
    case CG_INT8: CG_TYPED(int32_data, int8_t); break;
    case CG_UINT16: case CG_FLOAT16: case CG_BFLOAT16: CG_TYPED(int32_data, uint16_t); break;
    case CG_UINT8: CG_TYPED(int32_data, uint8_t); break;
    case CG_BOOL: CG_TYPED(int32_data, bool); break;
    default: ok = false; cg_fail(CG_ERR_FORMAT, "onnx: tensor '%s': no data", what);
    }
  }
#undef CG_TYPED
  if (ok && dt == CG_BOOL)
    for (size_t k = 0; k < nbytes; k++) ((uint8_t *)buf)[k] = ((uint8_t *)buf)[k] != 0; /* a bool is 0 or 1 */
  cg_tensor *t = ok ? cg_from_data(buf, (cg_dtype)dt, shape, (int)tp->n_dims) : NULL;
  free(buf);
  return t;
}

/* The whole file in a malloc'd buffer; NULL + message. */
static uint8_t *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return cg_fail_null(CG_ERR_IO, "onnx: could not open '%s': %s", path, strerror(errno));
  size_t cap = 1 << 16;
  *n = 0;
  uint8_t *buf = cg_malloc(cap);
  while (buf) {
    *n += fread(buf + *n, 1, cap - *n, f);
    if (*n < cap) break;
    uint8_t *nb = cg_realloc(buf, cap *= 2);
    if (!nb) free(buf);
    buf = nb;
  }
  fclose(f);
  return buf;
}

/* The directory of path ("." if none), malloc'd. */
static char *dir_of(const char *path) {
  char *dir = cg_strdup(path), *slash = dir ? strrchr(dir, '/') : NULL;
  if (slash) *slash = 0;
  else if (dir) strcpy(dir, ".");
  return dir;
}

cg_tensor *cg_onnx_load_tensor(const char *path) {
  if (!path) return cg_fail_null(CG_ERR_INVALID, "onnx_load_tensor: path is NULL");
  size_t n;
  uint8_t *buf = slurp(path, &n);
  if (!buf) return NULL;
  Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, n, buf);
  free(buf);
  if (!tp) return cg_fail_null(CG_ERR_FORMAT, "onnx: '%s' is not a valid TensorProto (protobuf decoding failed)", path);
  char *dir = dir_of(path);
  cg_tensor *t = dir ? onnx_tensor_from_proto(tp, dir, path) : NULL;
  free(dir);
  onnx__tensor_proto__free_unpacked(tp, NULL);
  return t;
}

cg_tensor **cg_onnx_load_sequence(const char *path, int *count) {
  if (!path || !count) return cg_fail_null(CG_ERR_INVALID, "onnx_load_sequence: path or count is NULL");
  size_t n;
  uint8_t *buf = slurp(path, &n);
  if (!buf) return NULL;
  Onnx__SequenceProto *sp = onnx__sequence_proto__unpack(NULL, n, buf);
  free(buf);
  if (!sp) return cg_fail_null(CG_ERR_FORMAT, "onnx: '%s' is not a valid SequenceProto (protobuf decoding failed)", path);
  cg_tensor **items = NULL;
  if (sp->elem_type != 1 && !(sp->elem_type == 0 && sp->n_tensor_values == 0))
    cg_fail(CG_ERR_FORMAT, "onnx: '%s': only sequences of tensors are supported (elem_type %d)", path, (int)sp->elem_type);
  else if (sp->n_tensor_values > (1u << 20)) cg_fail(CG_ERR_FORMAT, "onnx: '%s': too many items", path);
  else if ((items = cg_calloc(sp->n_tensor_values + 1, sizeof *items))) {
    char *dir = dir_of(path);
    for (size_t i = 0; i < sp->n_tensor_values; i++)
      if (!dir || !(items[i] = onnx_tensor_from_proto(sp->tensor_values[i], dir, path))) {
        for (size_t k = 0; k < i; k++) cg_free(items[k]);
        free(items);
        items = NULL;
        break;
      }
    free(dir);
    *count = (int)sp->n_tensor_values;
  }
  onnx__sequence_proto__free_unpacked(sp, NULL);
  return items;
}
