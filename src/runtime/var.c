/* The var table (see var.h). */
#include "var.h"
#include "uop/uopset.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t var_lock = PTHREAD_MUTEX_INITIALIZER;
static uopset table;        /* var UOp -> its cell (malloc'd) */
static int64_t next_id;

static void on_free(uop *u) { /* free hook: runs under the intern lock */
  pthread_mutex_lock(&var_lock);
  int64_t *cell = uopset_get(&table, u);
  if (cell) uopset_del(&table, u);
  pthread_mutex_unlock(&var_lock);
  free(cell);
}
static pthread_once_t hook_once = PTHREAD_ONCE_INIT;
static void set_hook(void) { uop_set_free_hook(OP_DEFINE_VAR, on_free); }

uop *var_new(const char *name, dtype dt, int64_t min, int64_t max, int64_t bits) {
  pthread_once(&hook_once, set_hook);
  int64_t *cell = cg_malloc(sizeof *cell);
  if (!cell) return cg_fail_null(CG_ERR_NOMEM, "out of memory");
  *cell = bits;
  pthread_mutex_lock(&var_lock);
  int64_t id = ++next_id;
  pthread_mutex_unlock(&var_lock);
  int64_t a[3] = {min, max, -id};
  uop *u = uop_new0(OP_DEFINE_VAR, dt, (uarg){.kind = ARG_VAR, .n = 3, .v = a, .s = name});
  pthread_mutex_lock(&var_lock);
  bool kept = u && uopset_put(&table, u, cell);
  pthread_mutex_unlock(&var_lock);
  if (!kept) {
    free(cell);
    return u ? cg_fail_null(CG_ERR_NOMEM, "out of memory") : NULL;
  }
  return u;
}

int64_t var_last_id(void) {
  pthread_mutex_lock(&var_lock);
  int64_t id = next_id;
  pthread_mutex_unlock(&var_lock);
  return id;
}

int64_t *var_cell(uop *v) {
  pthread_mutex_lock(&var_lock);
  int64_t *cell = uopset_get(&table, v);
  pthread_mutex_unlock(&var_lock);
  CG_ASSERT(cell, "a DEFINE_VAR that is not in the var table");
  return cell;
}

int64_t var_bits_of(dtype dt, double value) {
  if (dt_is_int(dt)) return alu_float_to_int(dt_base(dt), value);
  double d = alu_round(dt_base(dt), value);
  int64_t b;
  memcpy(&b, &d, sizeof b);
  return b;
}

double var_value_of(dtype dt, int64_t bits) {
  if (dt_is_int(dt)) return (double)bits;
  double d;
  memcpy(&d, &bits, sizeof d);
  return d;
}

int64_t var_apply(dtype dt, int64_t bits, int op, int64_t operand) {
  if (dt_is_int(dt)) {
    int64_t x[2] = {bits, operand}, r = 0;
    alu_eval_int(op, dt_base(dt), x, 2, &r);
    return r;
  }
  double x[2] = {var_value_of(dt, bits), var_value_of(dt, operand)}, r = 0;
  alu_eval_float(op, dt_base(dt), x, 2, &r);
  return var_bits_of(dt, r);
}
