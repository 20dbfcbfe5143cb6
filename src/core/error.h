/* Internal error reporting: user errors are recorded with cg_fail() and reported through
 * the public cg_last_error(); broken invariants are bugs and abort via CG_ASSERT. */
#ifndef CG_CORE_ERROR_H
#define CG_CORE_ERROR_H

#include "cgrad.h"
#include <stdio.h>
#include <stdlib.h>

/* Status for "an op was given a NULL tensor". A NULL input is most often the result of an
 * earlier failure in a chain of ops (ARCHITECTURE §10: check a chain once, at its end), so
 * when the last error recorded is out of memory that error is kept and CG_ERR_NOMEM
 * returned; otherwise it is recorded as CG_ERR_INVALID. */
#define CG_NULL_INPUT ((cg_status)-1000)

/* Record a failure (printf-style message) and return the status, so callers can write
 * `return cg_fail(CG_ERR_INVALID, "reshape: ...")`. */
cg_status cg_fail(cg_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Same, for functions returning a pointer: records and returns NULL. */
void *cg_fail_null(cg_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Internal invariants: a failure here is a bug in cgrad, never the user's input. */
#define CG_ASSERT(cond, ...)                                                   \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "cgrad: internal error at %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, "" __VA_ARGS__);                                         \
      fputc('\n', stderr);                                                     \
      abort();                                                                 \
    }                                                                          \
  } while (0)

/* Allocation helpers: on failure they record CG_ERR_NOMEM and return NULL. */
void *cg_malloc(size_t n);
void *cg_calloc(size_t count, size_t size);
void *cg_realloc(void *p, size_t n);
char *cg_strdup(const char *s);

#endif
