/* Per-thread last-error message and status, plus checked allocation. */
#include "error.h"
#include "fault.h"
#include <stdarg.h>
#include <string.h>

static _Thread_local char err_msg[1024];
static _Thread_local cg_status err_status = CG_OK;

static cg_status vrecord(cg_status st, const char *fmt, va_list ap) {
  if (st == CG_NULL_INPUT) {
    if (err_status == CG_ERR_NOMEM) return CG_ERR_NOMEM;
    st = CG_ERR_INVALID;
  }
  err_status = st;
  vsnprintf(err_msg, sizeof err_msg, fmt, ap);
  return st;
}

cg_status cg_fail(cg_status st, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  st = vrecord(st, fmt, ap);
  va_end(ap);
  return st;
}

void *cg_fail_null(cg_status st, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vrecord(st, fmt, ap);
  va_end(ap);
  return NULL;
}

const char *cg_last_error(void) { return err_msg; }
cg_status cg_last_status(void) { return err_status; }
void cg_clear_error(void) {
  err_status = CG_OK;
  err_msg[0] = 0;
}

void *cg_malloc(size_t n) {
  void *p = fault_hit() ? NULL : malloc(n ? n : 1);
  if (!p) cg_fail(CG_ERR_NOMEM, "out of memory: could not allocate %zu bytes", n);
  return p;
}

void *cg_calloc(size_t count, size_t size) {
  void *p = fault_hit() ? NULL : calloc(count ? count : 1, size ? size : 1);
  if (!p) cg_fail(CG_ERR_NOMEM, "out of memory: could not allocate %zu x %zu bytes", count, size);
  return p;
}

void *cg_realloc(void *p, size_t n) {
  void *q = fault_hit() ? NULL : realloc(p, n ? n : 1);
  if (!q) cg_fail(CG_ERR_NOMEM, "out of memory: could not grow a block to %zu bytes", n);
  return q;
}

char *cg_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = cg_malloc(n);
  if (p) memcpy(p, s, n);
  return p;
}
