/* File input/output that cannot leave a half-written file behind.
 *
 * fio_write_atomic writes a file the way a checkpoint must be written: into a temporary
 * file beside the target, flushed and fsync'ed, then renamed over the target, then the
 * directory fsync'ed. A crash or a full disk at any point leaves either the old file or
 * the new one, never a mix; on failure the temporary file is removed.
 *
 * Fault injection (tests): the knob CG_FAULT_WRITE_BYTES=N (environment or
 * cg_set_config) makes the N+1-th byte written through fio_write_atomic fail with
 * ENOSPC, as a disk that fills part-way would. Unset or "" turns it off. Needs
 * fopencookie (glibc, musl); elsewhere the knob is ignored. */
#ifndef CG_CORE_FILEIO_H
#define CG_CORE_FILEIO_H

#include "cgrad.h"
#include <stdio.h>

/* The writer callback: writes the whole file to f with the stdio calls (fwrite, fputs,
 * fprintf ...) and returns CG_OK, or an error it recorded with cg_fail. Write errors do
 * not need checking in the callback: fio_write_atomic checks the stream at the end. */
typedef cg_status (*fio_writer)(FILE *f, void *ctx);

/* Write path atomically through fn(f, ctx). On any failure returns a negative status
 * with a message naming the path, removes the temporary file and leaves an existing file
 * at path untouched. */
cg_status fio_write_atomic(const char *path, fio_writer fn, void *ctx);

/* fwrite that reports a short write as CG_ERR_IO ("could not write N bytes: <strerror>"),
 * so a callback can stop early once the disk is full. */
cg_status fio_put(FILE *f, const void *p, size_t n);

/* The whole contents of path in a malloc'd buffer (free with free()), with one extra
 * NUL byte after the end so text can be parsed in place; *size gets the byte count
 * without that NUL. NULL with a message ("could not open 'x': No such file ...") on error. */
void *fio_read_all(const char *path, size_t *size);
/* The same with a size limit, and nofollow: a symbolic link is refused (O_NOFOLLOW). Only
 * regular files are read: a device, FIFO or directory is an error, never an endless read. */
void *fio_read_file(const char *path, size_t *size, size_t max, bool nofollow);

#endif
