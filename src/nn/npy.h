/* NumPy .npy files (format versions 1.0, 2.0 and 3.0), read and written at byte level.
 *
 *   "\x93NUMPY" major minor | header length (u16 LE in 1.0, u32 LE in 2.0/3.0)
 *   | "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" + spaces + "\n"
 *   | the data, row-major; the data starts at a multiple of 64 (16 in old files)
 *
 * Supported descr: '<f2' '<f4' '<f8' '<i2' '<i4' '<i8' '<u2' '<u4' '<u8' '|i1' '|u1' '|b1'
 * ('<' or '|' or '>' is fine for the one-byte kinds). Big-endian multi-byte data,
 * fortran_order True, structured and other dtypes are rejected with a message saying what
 * was expected. bfloat16 and fp8 have no .npy form. */
#ifndef CG_NN_NPY_H
#define CG_NN_NPY_H

#include "cgrad.h"
#include <stddef.h>
#include <stdint.h>

#define NPY_MAX_DIMS 8

typedef struct {
  cg_dtype dtype;
  int ndim;
  int64_t shape[NPY_MAX_DIMS];
  void *data;    /* row-major, host (little-endian) order; malloc-aligned */
  size_t nbytes; /* product(shape) * cg_dtype_size(dtype) */
  int version;   /* the file's major version: 1, 2 or 3 */
} npy_array;

/* Read and validate path. NULL with a message on any problem. */
npy_array *npy_load(const char *path);
/* The same from an image in memory (copied); what names it in messages. */
npy_array *npy_parse(const void *bytes, size_t size, const char *what);
void npy_free(npy_array *a);

/* Write an array as NumPy 1.24 does (version 1.0, the same header bytes), atomically. */
cg_status npy_save(const char *path, cg_dtype dtype, int ndim, const int64_t *shape, const void *data);
/* The same file image in memory (malloc'd, *size bytes). */
void *npy_serialize(cg_dtype dtype, int ndim, const int64_t *shape, const void *data, size_t *size);

/* The descr string for a dtype ("<f4", "|u1" ...), NULL if .npy cannot store it. */
const char *npy_descr(cg_dtype dtype);

#endif
