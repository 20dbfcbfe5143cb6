/* Kernel variables at the tensor level (runtime/var.h): cg_variable makes a 0-d tensor whose
 * value kernels read when they run, so a new value compiles nothing and fills no buffer. */
#include "tensor.h"
#include "engine/capture.h"
#include "runtime/var.h"
#include <math.h>
#include <string.h>

static bool var_dtype(cg_dtype dt) { return dt == CG_FLOAT32 || dt == CG_FLOAT64 || dt == CG_INT32 || dt == CG_INT64; }

static bool check_name(const char *who, const char *name) {
  if (!name) return cg_fail(CG_NULL_INPUT, "%s: the name is NULL", who), false;
  size_t n = strlen(name);
  bool ok = n > 0 && n <= 32;
  for (size_t i = 0; i < n && ok; i++) {
    char c = name[i];
    ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
  }
  if (!ok) cg_fail(CG_ERR_INVALID, "%s: expected a name of 1 to 32 letters, digits, '_' or '.', got \"%.40s\"", who, name);
  return ok;
}

/* value fits the var (an int var: an integer within its bounds) */
static bool check_value(const char *who, const char *name, dtype dt, int64_t min, int64_t max, double value) {
  if (dt_is_float(dt)) return true;
  if (!(value == floor(value)) || value < (double)min || value > (double)max) {
    cg_fail(CG_ERR_INVALID, "%s: var '%s' (%s) expected an integer in [%lld, %lld], got %.17g", who, name, cg_dtype_name((cg_dtype)dt.scalar),
            (long long)min, (long long)max, value);
    return false;
  }
  return true;
}

static cg_tensor *make(const char *who, const char *name, double value, cg_dtype dt, int64_t min, int64_t max) {
  if (!check_name(who, name)) return NULL;
  if ((int)dt < 0 || dt >= CG_NUM_DTYPES || !var_dtype(dt))
    return cg_fail_null(CG_ERR_INVALID, "%s: var '%s': expected dtype float32, float64, int32 or int64, got %s", who, name,
                        (int)dt >= 0 && dt < CG_NUM_DTYPES ? cg_dtype_name(dt) : "an invalid dtype");
  if (!check_value(who, name, dt_of(dt), min, max, value)) return NULL;
  op_begin();
  return op_end(var_new(name, dt_of(dt), min, max, var_bits_of(dt_of(dt), value)));
}

cg_tensor *cg_variable(const char *name, double value, cg_dtype dt) {
  bool i32 = dt == CG_INT32, i64 = dt == CG_INT64;
  int64_t min = i32 ? INT32_MIN : i64 ? INT64_MIN : 0, max = i32 ? INT32_MAX : i64 ? INT64_MAX : 0;
  return make("variable", name, value, dt, min, max);
}

cg_tensor *cg_variable_int(const char *name, int64_t value, int64_t min, int64_t max) {
  if (min > max || min < INT32_MIN || max > INT32_MAX)
    return cg_fail_null(CG_ERR_INVALID, "variable_int: expected int32 bounds min <= max, got [%lld, %lld]", (long long)min, (long long)max);
  return make("variable_int", name, (double)value, CG_INT32, min, max);
}

/* the var behind t, or NULL + error naming who */
static uop *var_of(const char *who, const cg_tensor *t) {
  if (!t) return cg_fail_null(CG_NULL_INPUT, "%s: the tensor is NULL", who);
  if (!var_is_tensor(t->u))
    return cg_fail_null(CG_ERR_INVALID, "%s: expected a var (made by cg_variable), got a tensor whose value is a %s", who, op_name(t->u->op));
  return t->u;
}

cg_status cg_variable_set(cg_tensor *t, double value) {
  uop *v = var_of("variable_set", t);
  if (!v) return cg_last_status();
  if (!check_value("variable_set", v->arg.s, v->dt, v->arg.v[0], v->arg.v[1], value)) return CG_ERR_INVALID;
  var_store(var_cell(v), var_bits_of(v->dt, value));
  return CG_OK;
}

double cg_variable_get(const cg_tensor *t) {
  uop *v = var_of("variable_get", t);
  return v ? var_value_of(v->dt, var_load(var_cell(v))) : NAN;
}

bool cg_is_variable(const cg_tensor *t) { return t && var_is_tensor(t->u); }

cg_status tensor_var_update(cg_tensor *t, int op, double operand) {
  uop *v = var_of("var_update", t);
  if (!v) return cg_last_status();
  int64_t *cell = var_cell(v), b = var_bits_of(v->dt, operand);
  var_store(cell, var_apply(v->dt, var_load(cell), op, b));
  if (capture_active()) capture_var_update(v, op, b);
  return CG_OK;
}
