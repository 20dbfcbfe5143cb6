/* dtypes inside cgrad: a scalar kind (the public cg_dtype, or void), a vector width and
 * an address space for pointers. Packed in 32 bits and passed by value. */
#ifndef CG_CORE_DTYPE_H
#define CG_CORE_DTYPE_H

#include "cgrad.h"
#include <stdbool.h>
#include <stdint.h>

#define DT_VOID ((uint8_t)CG_NUM_DTYPES) /* no value: STORE, SINK, END ... */

enum { ADDR_NONE = 0, ADDR_GLOBAL = 1, ADDR_LOCAL = 2, ADDR_REG = 3 };

typedef struct {
  uint8_t scalar; /* a cg_dtype, or DT_VOID */
  uint8_t addr;   /* ADDR_NONE for a value; else the pointer's address space */
  uint16_t count; /* vector width, 1 for a scalar */
} dtype;

static inline dtype dt_of(cg_dtype s) { return (dtype){(uint8_t)s, ADDR_NONE, 1}; }
static inline dtype dt_void(void) { return (dtype){DT_VOID, ADDR_NONE, 1}; }
static inline dtype dt_vec(dtype d, int n) { d.count = (uint16_t)n; return d; }
static inline dtype dt_ptr(dtype d, int addr) { d.addr = (uint8_t)addr; return d; }
static inline dtype dt_base(dtype d) { d.addr = ADDR_NONE; return d; }  /* what a pointer points to */
static inline dtype dt_scalar_of(dtype d) { d.count = 1; return d; }     /* one lane of a vector */
static inline bool dt_eq(dtype a, dtype b) { return a.scalar == b.scalar && a.addr == b.addr && a.count == b.count; }
static inline uint32_t dt_bits(dtype d) { return (uint32_t)d.scalar | (uint32_t)d.addr << 8 | (uint32_t)d.count << 16; }

#define DT_BOOL dt_of(CG_BOOL)
#define DT_I32 dt_of(CG_INT32)
#define DT_I64 dt_of(CG_INT64)
#define DT_F32 dt_of(CG_FLOAT32)
#define DT_F64 dt_of(CG_FLOAT64)

/* Properties of the scalar kind (vector width and pointers ignored). */
bool dt_is_float(dtype d);    /* float16/bfloat16/float32/float64/fp8 */
/* a 16-bit float (bfloat16 or float16): stored as bits, computed in float32 */
static inline bool dt_is_half(dtype d) { return d.scalar == CG_BFLOAT16 || d.scalar == CG_FLOAT16; }
bool dt_is_int(dtype d);      /* signed or unsigned integer (not bool) */
bool dt_is_unsigned(dtype d); /* unsigned integer */
bool dt_is_bool(dtype d);
bool dt_is_void(dtype d);
/* Bytes of one scalar element. */
int dt_scalar_size(dtype d);
/* Bytes of the whole value (scalar size × vector width; 8 for a pointer). */
int dt_size(dtype d);
/* Integer range of the scalar kind (bool: 0..1). Only for bool and integer dtypes. */
int64_t dt_int_min(dtype d);
int64_t dt_int_max(dtype d);
/* Finite range of the scalar kind as double (e.g. ±65504 for float16). */
double dt_min(dtype d);
double dt_max(dtype d);
/* "float32", "int32x4", "float32*" (global), "float32[local]*". Static buffer ring: valid
 * for a few calls. */
const char *dt_name(dtype d);
/* Parse a short dtype name as dt_name writes scalars ("float32", "int32", "bool"...).
 * Returns false if unknown. */
bool dt_parse(const char *s, int len, dtype *out);

#endif
