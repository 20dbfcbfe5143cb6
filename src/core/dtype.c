/* The dtype table: sizes, names, ranges. Conversions of small floats are in fpconv.c. */
#include "dtype.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

enum { K_BOOL, K_INT, K_UINT, K_FLOAT };

static const struct {
  const char *name;
  int size, kind;
  int64_t imin, imax;
  double fmax; /* largest finite value */
} dt_table[CG_NUM_DTYPES + 1] = {
    [CG_BOOL] = {"bool", 1, K_BOOL, 0, 1, 1},
    [CG_INT8] = {"int8", 1, K_INT, INT8_MIN, INT8_MAX, INT8_MAX},
    [CG_INT16] = {"int16", 2, K_INT, INT16_MIN, INT16_MAX, INT16_MAX},
    [CG_INT32] = {"int32", 4, K_INT, INT32_MIN, INT32_MAX, INT32_MAX},
    [CG_INT64] = {"int64", 8, K_INT, INT64_MIN, INT64_MAX, 9223372036854775807.0},
    [CG_UINT8] = {"uint8", 1, K_UINT, 0, UINT8_MAX, UINT8_MAX},
    [CG_UINT16] = {"uint16", 2, K_UINT, 0, UINT16_MAX, UINT16_MAX},
    [CG_UINT32] = {"uint32", 4, K_UINT, 0, UINT32_MAX, UINT32_MAX},
    /* uint64's top half does not fit int64: ranges of uint64 are clamped to int64 here */
    [CG_UINT64] = {"uint64", 8, K_UINT, 0, INT64_MAX, 18446744073709551615.0},
    [CG_FLOAT16] = {"float16", 2, K_FLOAT, 0, 0, 65504.0},
    [CG_BFLOAT16] = {"bfloat16", 2, K_FLOAT, 0, 0, 3.38953138925153547590470800371487866880e38},
    [CG_FLOAT32] = {"float32", 4, K_FLOAT, 0, 0, 3.40282346638528859811704183484516925440e38},
    [CG_FLOAT64] = {"float64", 8, K_FLOAT, 0, 0, 1.7976931348623157e308},
    [CG_FP8E4M3] = {"fp8e4m3", 1, K_FLOAT, 0, 0, 448.0},
    [CG_FP8E5M2] = {"fp8e5m2", 1, K_FLOAT, 0, 0, 57344.0},
    [CG_NUM_DTYPES] = {"void", 0, -1, 0, 0, 0},
};

static int kind(dtype d) { return d.scalar <= CG_NUM_DTYPES ? dt_table[d.scalar].kind : -1; }
bool dt_is_float(dtype d) { return kind(d) == K_FLOAT; }
bool dt_is_int(dtype d) { return kind(d) == K_INT || kind(d) == K_UINT; }
bool dt_is_unsigned(dtype d) { return kind(d) == K_UINT; }
bool dt_is_bool(dtype d) { return kind(d) == K_BOOL; }
bool dt_is_void(dtype d) { return d.scalar == DT_VOID; }
int dt_scalar_size(dtype d) { return d.scalar <= CG_NUM_DTYPES ? dt_table[d.scalar].size : 0; }
int dt_size(dtype d) { return d.addr ? 8 : dt_scalar_size(d) * d.count; }
int64_t dt_int_min(dtype d) { return dt_table[d.scalar].imin; }
int64_t dt_int_max(dtype d) { return dt_table[d.scalar].imax; }
double dt_max(dtype d) { return dt_table[d.scalar].fmax; }
double dt_min(dtype d) {
  int k = kind(d);
  return k == K_FLOAT ? -dt_table[d.scalar].fmax : (double)dt_table[d.scalar].imin;
}

const char *dt_name(dtype d) {
  static _Thread_local char ring[8][48];
  static _Thread_local int at;
  char *b = ring[at++ & 7];
  const char *base = d.scalar <= CG_NUM_DTYPES ? dt_table[d.scalar].name : "?";
  int n = snprintf(b, 48, "%s", base);
  if (d.count != 1) n += snprintf(b + n, 48 - n, "x%d", d.count);
  if (d.addr == ADDR_LOCAL) n += snprintf(b + n, 48 - n, "[local]");
  if (d.addr == ADDR_REG) n += snprintf(b + n, 48 - n, "[reg]");
  if (d.addr) snprintf(b + n, 48 - n, "*");
  return b;
}

bool dt_parse(const char *s, int len, dtype *out) {
  for (int i = 0; i <= CG_NUM_DTYPES; i++) {
    const char *nm = dt_table[i].name;
    if ((int)strlen(nm) == len && !memcmp(nm, s, (size_t)len)) {
      *out = (dtype){(uint8_t)i, ADDR_NONE, 1};
      return true;
    }
  }
  return false;
}

size_t cg_dtype_size(cg_dtype dt) { return dt >= 0 && dt < CG_NUM_DTYPES ? (size_t)dt_table[dt].size : 0; }
const char *cg_dtype_name(cg_dtype dt) { return dt >= 0 && dt < CG_NUM_DTYPES ? dt_table[dt].name : "invalid"; }
