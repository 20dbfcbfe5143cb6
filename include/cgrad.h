/* cgrad.h — the public API of cgrad, a lazy tensor compiler in C11.
 *
 * Conventions (see ARCHITECTURE §10):
 *   - every public name starts with cg_; handles are opaque.
 *   - a failing call returns NULL (or a negative cg_status) and records a message that
 *     cg_last_error() returns; no call ever aborts the host program on bad input.
 */
#ifndef CGRAD_H
#define CGRAD_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CG_VERSION "0.1.0"

/* ---- errors ------------------------------------------------------------------------ */

typedef enum {
  CG_OK = 0,
  CG_ERR_INVALID = -1,  /* bad argument: shape, dtype, axis, NULL handle */
  CG_ERR_IO = -2,       /* a file could not be read or written */
  CG_ERR_FORMAT = -3,   /* a file's contents are not what its format requires */
  CG_ERR_NOMEM = -4,    /* an allocation failed */
  CG_ERR_RUNTIME = -5,  /* compiling or running a kernel failed */
} cg_status;

/* The message of the last failure on this thread ("" if none). Valid until the next call. */
const char *cg_last_error(void);
/* The status code of the last failure on this thread (CG_OK if none). */
cg_status cg_last_status(void);
/* Forget the last failure. */
void cg_clear_error(void);

/* ---- configuration ------------------------------------------------------------------ */

/* Knobs follow tinygrad's environment-variable habit: DEBUG, BEAM, NOOPT, CG_THREADS,
 * CG_CC ... Each is read from the environment unless set here; a value set here wins. */
cg_status cg_set_config(const char *name, const char *value);
/* The current value of a knob (set here or in the environment), or NULL if unset. */
const char *cg_get_config(const char *name);

/* ---- dtypes -------------------------------------------------------------------------- */

#define CG_DTYPES(X)                                   \
  X(BOOL, bool) X(INT8, int8) X(INT16, int16)          \
  X(INT32, int32) X(INT64, int64) X(UINT8, uint8)      \
  X(UINT16, uint16) X(UINT32, uint32) X(UINT64, uint64) \
  X(FLOAT16, float16) X(BFLOAT16, bfloat16)            \
  X(FLOAT32, float32) X(FLOAT64, float64)              \
  X(FP8E4M3, fp8e4m3) X(FP8E5M2, fp8e5m2)

typedef enum {
#define CG_DT_ENUM_(N, n) CG_##N,
  CG_DTYPES(CG_DT_ENUM_)
#undef CG_DT_ENUM_
  CG_NUM_DTYPES
} cg_dtype;

/* Bytes per element, e.g. 2 for CG_BFLOAT16. 0 for an invalid dtype. */
size_t cg_dtype_size(cg_dtype dt);
/* Lower-case name, e.g. "float32". "invalid" for an invalid dtype. */
const char *cg_dtype_name(cg_dtype dt);

/* Correctly rounded (round-to-nearest-even) conversions between float32 and the small
 * float formats. fp8 e4m3 saturates to ±448 and has no infinity; e5m2 overflows to ±inf. */
uint16_t cg_f32_to_f16(float x);
float cg_f16_to_f32(uint16_t h);
uint16_t cg_f32_to_bf16(float x);
float cg_bf16_to_f32(uint16_t h);
uint8_t cg_f32_to_fp8e4m3(float x);
float cg_fp8e4m3_to_f32(uint8_t b);
uint8_t cg_f32_to_fp8e5m2(float x);
float cg_fp8e5m2_to_f32(uint8_t b);

#ifdef __cplusplus
}
#endif
#endif
