/* safetensors: the Hugging Face tensor file format, read and written at the byte level.
 *
 *   [8 bytes: N, little-endian u64]
 *   [N bytes: JSON header, padded with spaces]
 *       {"__metadata__": {"k": "v", ...},
 *        "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
 *   [the byte buffer: every tensor's bytes, little-endian, row-major; offsets are
 *    relative to the buffer's start and cover it exactly, without holes or overlaps]
 *
 * st_load validates everything (header size, JSON syntax, fields, dtypes, offsets
 * against shapes, duplicate names) and returns NULL with a message on any problem.
 * st_save writes atomically (core/fileio.h). The tensor layer wraps these. */
#ifndef CG_NN_SAFETENSORS_H
#define CG_NN_SAFETENSORS_H

#include "cgrad.h"
#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER 100000000 /* bytes; the same limit as the reference implementation */

typedef struct {
  const char *name;
  cg_dtype dtype;
  int ndim;
  int64_t shape[ST_MAX_DIMS];
  /* Row-major little-endian bytes. In a loaded file, data is aligned to 8 bytes only if
   * the tensor's offset is (the format has no padding between tensors): read with memcpy
   * unless ((uintptr_t)data % itemsize) == 0. */
  const void *data;
  size_t nbytes; /* product(shape) * cg_dtype_size(dtype) */
} st_tensor;

typedef struct st_file st_file; /* a loaded file: owns the names, metadata and bytes */

/* Read and validate path. NULL with a message naming what was expected and found. */
st_file *st_load(const char *path);
/* Parse a safetensors image already in memory (size bytes; copied). what names it in
 * messages (e.g. a path). */
st_file *st_parse(const void *bytes, size_t size, const char *what);
void st_free(st_file *f);

/* Tensors in file order (increasing data offset). */
int st_count(const st_file *f);
const st_tensor *st_at(const st_file *f, int i);         /* NULL if i is out of range */
const st_tensor *st_find(const st_file *f, const char *name); /* NULL if absent (no error) */

/* __metadata__ (string -> string), in file order. */
int st_meta_count(const st_file *f);
const char *st_meta_key(const st_file *f, int i);
const char *st_meta_value(const st_file *f, int i);
const char *st_meta_get(const st_file *f, const char *key); /* NULL if absent */

/* The format's dtype names: "F32", "BF16", "F8_E4M3" ... NULL for none. */
const char *st_dtype_name(cg_dtype dt);
/* Parse a format dtype name (len bytes); false if unknown. */
int st_dtype_parse(const char *s, size_t len, cg_dtype *out);

/* Write n tensors (in the order given) and nmeta metadata pairs, where meta_kv holds
 * 2*nmeta strings: key0, value0, key1, value1 ... (meta_kv may be NULL if nmeta is 0).
 * Names must be unique, valid UTF-8 and not "__metadata__"; each tensor's
 * nbytes must equal product(shape) * itemsize. The header is padded with spaces to a
 * multiple of 8 bytes. Atomic: on failure an existing file at path is untouched. */
cg_status st_save(const char *path, const st_tensor *ts, int n, const char *const *meta_kv, int nmeta);
/* The same file image in memory (malloc'd, *size bytes), for tests and for streaming. */
void *st_serialize(const st_tensor *ts, int n, const char *const *meta_kv, int nmeta, size_t *size);

#endif
