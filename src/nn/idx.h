/* IDX files: the format of MNIST and Fashion-MNIST, raw or gzip-compressed.
 *
 *   00 00 <type> <ndim> | ndim x u32 big-endian dimensions | data, big-endian, row-major
 *   type: 08 uint8, 09 int8, 0B int16, 0C int32, 0D float32, 0E float64
 *
 * A file starting with the gzip magic (1F 8B) is read through zlib when cgrad was built
 * with it (CG_HAVE_ZLIB); without zlib it is a clear error. The data size must match the
 * dimensions exactly: a truncated or padded file is an error naming both sizes. */
#ifndef CG_NN_IDX_H
#define CG_NN_IDX_H

#include "cgrad.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IDX_MAX_DIMS 8

typedef struct {
  cg_dtype dtype; /* CG_UINT8, CG_INT8, CG_INT16, CG_INT32, CG_FLOAT32 or CG_FLOAT64 */
  int ndim;
  int64_t shape[IDX_MAX_DIMS];
  void *data;    /* row-major, converted to host byte order; malloc-aligned */
  size_t nbytes; /* product(shape) * cg_dtype_size(dtype) */
} idx_array;

/* Read path (raw or .gz). NULL with a message on any problem. */
idx_array *idx_load(const char *path);
/* A raw (uncompressed) IDX image in memory (copied); what names it in messages. */
idx_array *idx_parse(const void *bytes, size_t size, const char *what);
void idx_free(idx_array *a);

/* Whether idx_load can read gzip-compressed files (cgrad built with zlib). */
bool idx_have_gzip(void);

/* Write a raw (uncompressed) IDX file atomically. dtype must be one of the six above. */
cg_status idx_save(const char *path, cg_dtype dtype, int ndim, const int64_t *shape, const void *data);

#endif
