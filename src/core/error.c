/* Per-thread last-error message and status, plus checked allocation. */
#include "error.h"
#include <stdarg.h>
#include <string.h>

static _Thread_local char err_msg[1024];
static _Thread_local cg_status err_status = CG_OK;

/* An op given a NULL tensor ("cross_entropy: logits is NULL") usually got it from an op
 * that failed just before: keep that root cause in the message ("..., after: out of memory
 * ..."), so a chain checked once at its end still says what went wrong first. */
static void vrecord(cg_status st, const char *fmt, va_list ap) {
  char msg[sizeof err_msg];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg), k = strlen(" is NULL");
  if (err_status != CG_OK && err_msg[0] && n > k && !strcmp(msg + n - k, " is NULL")) {
    const char *root = strstr(err_msg, ", after: ");
    root = root ? root + strlen(", after: ") : err_msg;
    char prev[sizeof err_msg];
    memcpy(prev, root, strlen(root) + 1);
    size_t at = n < sizeof err_msg / 2 ? n : sizeof err_msg / 2; /* the root cause keeps at least half */
    memcpy(err_msg, msg, at);
    snprintf(err_msg + at, sizeof err_msg - at, ", after: %.1000s", prev);
    err_status = st == CG_ERR_INVALID ? err_status : st; /* the root cause's status */
    return;
  }
  err_status = st;
  memcpy(err_msg, msg, n + 1);
}

cg_status cg_fail(cg_status st, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vrecord(st, fmt, ap);
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
  void *p = malloc(n ? n : 1);
  if (!p) cg_fail(CG_ERR_NOMEM, "out of memory: could not allocate %zu bytes", n);
  return p;
}

void *cg_calloc(size_t count, size_t size) {
  void *p = calloc(count ? count : 1, size ? size : 1);
  if (!p) cg_fail(CG_ERR_NOMEM, "out of memory: could not allocate %zu x %zu bytes", count, size);
  return p;
}

void *cg_realloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) cg_fail(CG_ERR_NOMEM, "out of memory: could not grow a block to %zu bytes", n);
  return q;
}

char *cg_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = cg_malloc(n);
  if (p) memcpy(p, s, n);
  return p;
}
