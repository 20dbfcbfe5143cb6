/* ref.h — the float64 reference for the op tests in tests/tensor/.
 *
 * A reference "ndarray" (rnd) holds float64 values behind explicit shape, strides and an
 * offset, so views (permute, expand, shrink, slice with step, flip) are index math on the
 * same storage, as they are in cgrad; pad and reshape-of-a-non-contiguous-array copy.
 * Nothing here calls cgrad to compute a value: cgrad is used only to build the tensors
 * under test and to read them back (cg_from_data, cg_read, the f16/bf16 converters).
 *
 * A tp ("tensor pair") is a cgrad tensor and the reference of the same value; the tp_*
 * view helpers apply one view to both, so a test can make permuted / expanded / padded /
 * flipped / sliced inputs and know what they hold.
 *
 * Inputs are random from a seeded generator: the seed is CG_TEST_SEED if set, else fresh
 * from the clock; it is printed at start and with every failure.
 *
 * Header-only (static functions); every test program includes it once.
 */
#ifndef CG_TEST_TENSOR_REF_H
#define CG_TEST_TENSOR_REF_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "cgrad.h"
#include "check.h"
#ifndef REF_NO_CG
#define REF_NO_CG 0 /* 1: build references only (self-test of ref.h) */
#endif

/* =========================================================================================
 * Tolerances, one table. A value passes when |got - want| <= atol + rtol * |want| for
 * elementwise ops; reductions (TK_REDUCE, and matmul/cumsum) use
 *     |got - want| <= sqrt(n) * (atol + rtol * scale)
 * where n is the number of elements reduced into that output and scale is the reference's
 * magnitude bound for it (sum |x| for a sum, |x|-mean squared for var, ...). Integers and
 * bool are exact. NaN matches only NaN; an infinity only the same infinity.
 * ========================================================================================= */
typedef enum { TK_BASIC, TK_TRANSC, TK_REDUCE, TK_EXACT, TK_COUNT } tol_kind;
typedef struct { double rtol, atol; } tol_t;
#define ULP32 1.1920928955078125e-7 /* float32 epsilon */
#define ULP16 9.765625e-4           /* float16 epsilon */
#define ULPBF 7.8125e-3             /* bfloat16 epsilon */
static const struct { cg_dtype dt; tol_t t[TK_COUNT]; } TOL_TABLE[] = {
  /* dtype        basic: + - * / cast ...   transcendental: exp sin tanh ...   reduce: per sqrt(n)   exact: movement, bitcast */
  {CG_FLOAT64,  {{1e-12, 1e-14},            {1e-12, 1e-14},                    {4e-16, 1e-14},       {0, 0}}},
  {CG_FLOAT32,  {{1e-5, 1e-6},              {32 * ULP32, 1e-6},                {4 * ULP32, 1e-6},    {0, 0}}},
  {CG_FLOAT16,  {{ULP16, 1e-3},             {2 * ULP16, 2e-3},                 {ULP16, 1e-3},        {0, 0}}},
  {CG_BFLOAT16, {{ULPBF, 1e-2},             {2 * ULPBF, 2e-2},                 {ULPBF, 1e-2},        {0, 0}}},
};
static inline tol_t tol_of(cg_dtype dt, tol_kind k) {
  for (size_t i = 0; i < sizeof TOL_TABLE / sizeof TOL_TABLE[0]; i++)
    if (TOL_TABLE[i].dt == dt) return TOL_TABLE[i].t[k];
  tol_t exact = {0, 0};
  return exact;
}
static inline bool dt_is_float(cg_dtype dt) {
  return dt == CG_FLOAT16 || dt == CG_BFLOAT16 || dt == CG_FLOAT32 || dt == CG_FLOAT64 ||
         dt == CG_FP8E4M3 || dt == CG_FP8E5M2;
}
static inline bool dt_is_int(cg_dtype dt) { return !dt_is_float(dt) && dt != CG_BOOL; }

/* ========================================================================================= 
 * Seeded random numbers (splitmix64).
 * ========================================================================================= */
static uint64_t g_seed, g_rng;
static const char *g_case = ""; /* what is being tested, printed with failures */
static inline uint64_t rng_u64(void) {
  uint64_t z = (g_rng += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static inline double rng_unif(double lo, double hi) { return lo + (hi - lo) * ((double)(rng_u64() >> 11) * 0x1p-53); }
static inline int64_t rng_int(int64_t lo, int64_t hi) { /* inclusive */
  return lo + (int64_t)(rng_u64() % (uint64_t)(hi - lo + 1));
}
static const char *g_cur = ""; /* the check being run (realize happens inside it) */
/* How the inputs of the next check were built ("t1 = rand(float32, (2, 3)); t2 = flip(t1,
 * [0]); ..."), printed with a failure so it can be rebuilt by hand; cleared after a check. */
static char g_trace[2048];
static int g_ntp;
static inline void trace_add(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#include <stdarg.h>
static inline void trace_add(const char *fmt, ...) {
  size_t o = strlen(g_trace);
  if (o >= sizeof g_trace - 8) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_trace + o, sizeof g_trace - o, fmt, ap);
  va_end(ap);
}
static inline void trace_clear(void) { g_trace[0] = 0; }
/* On a crash, say which check was running and the seed, then die as before. */
static inline void ref_crash(int sig) {
  fprintf(stderr, "CRASH (signal %d) in [%s] %s (seed %llu)\n    inputs: %s\n", sig, g_case, g_cur, (unsigned long long)g_seed,
          g_trace);
  signal(sig, SIG_DFL);
  raise(sig);
}
static inline void ref_init(void) {
  signal(SIGILL, ref_crash);
  signal(SIGSEGV, ref_crash);
  signal(SIGFPE, ref_crash);
  signal(SIGABRT, ref_crash);
  signal(SIGBUS, ref_crash);
  const char *s = getenv("CG_TEST_SEED");
  g_seed = s && *s ? strtoull(s, NULL, 0) : ((uint64_t)time(NULL) * 1000003u) ^ ((uint64_t)getpid() << 20);
  g_rng = g_seed;
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("seed = %llu (set CG_TEST_SEED to repeat)\n", (unsigned long long)g_seed);
}
/* Iteration scale for the random sweeps (CG_TEST_ITERS, default 1). */
static inline long test_iters(void) { return test_env_long("CG_TEST_ITERS", 1); }

/* ========================================================================================= 
 * Storage: every reference array is allocated here and freed together by ref_free_all().
 * ========================================================================================= */
static void **g_blocks;
static size_t g_nblocks, g_capblocks;
static inline void *ref_alloc(size_t nbytes) {
  void *p = calloc(nbytes ? nbytes : 1, 1);
  if (!p) { fprintf(stderr, "ref.h: out of memory\n"); abort(); }
  if (g_nblocks == g_capblocks) {
    g_capblocks = g_capblocks ? 2 * g_capblocks : 256;
    g_blocks = (void **)realloc(g_blocks, g_capblocks * sizeof *g_blocks);
    if (!g_blocks) { fprintf(stderr, "ref.h: out of memory\n"); abort(); }
  }
  g_blocks[g_nblocks++] = p;
  return p;
}
static inline void ref_free_all(void) {
  for (size_t i = 0; i < g_nblocks; i++) free(g_blocks[i]);
  g_nblocks = 0;
}
static inline void ref_shutdown(void) {
  cg_stats st = cg_get_stats();
  printf("kernels: %llu run, %llu compiled, %llu from the disk cache; %llu schedules\n", (unsigned long long)st.kernels_run,
         (unsigned long long)st.kernels_compiled, (unsigned long long)st.kernels_cached, (unsigned long long)st.schedules);
  ref_free_all(); free(g_blocks); g_blocks = NULL; g_capblocks = 0; }

/* One test case: a cgrad scope plus the reference arena. */
static inline void case_begin(const char *name) { g_case = name; cg_scope_begin(); }
static inline void case_end(void) { cg_scope_end(); ref_free_all(); g_case = ""; }

/* ========================================================================================= 
 * The reference ndarray.
 * ========================================================================================= */
#define RMAX CG_MAX_DIMS
typedef struct {
  cg_dtype dt;  /* the dtype the cgrad value has (decides the tolerance) */
  int ndim;
  int64_t shape[RMAX], strides[RMAX], offset;
  double *base; /* storage (arena) */
} rnd;

static inline int64_t shape_numel(const int64_t *shape, int ndim) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= shape[i];
  return n;
}
static inline int64_t rn_numel(const rnd *a) { return shape_numel(a->shape, a->ndim); }
/* "(2, 3)", "()" or "(5,)" — like cgrad and Python print shapes. Uses one of 4 buffers. */
static inline const char *shape_str(const int64_t *shape, int ndim) {
  static char bufs[4][160];
  static int k;
  char *b = bufs[k++ & 3];
  int o = snprintf(b, 160, "(");
  for (int i = 0; i < ndim && o < 150; i++)
    o += snprintf(b + o, (size_t)(160 - o), "%s%lld", i ? ", " : "", (long long)shape[i]);
  snprintf(b + o, (size_t)(160 - o), ndim == 1 ? ",)" : ")");
  return b;
}
static inline rnd rn_new(cg_dtype dt, const int64_t *shape, int ndim) {
  rnd r;
  memset(&r, 0, sizeof r);
  r.dt = dt;
  r.ndim = ndim;
  int64_t st = 1;
  for (int i = ndim - 1; i >= 0; i--) {
    r.shape[i] = shape[i];
    r.strides[i] = st;
    st *= shape[i] > 0 ? shape[i] : 1;
  }
  r.base = (double *)ref_alloc((size_t)shape_numel(shape, ndim) * sizeof(double));
  return r;
}
static inline rnd rn_scalar(cg_dtype dt, double v) {
  rnd r = rn_new(dt, NULL, 0);
  r.base[0] = v;
  return r;
}
static inline double rn_at(const rnd *a, const int64_t *idx) {
  int64_t o = a->offset;
  for (int i = 0; i < a->ndim; i++) o += idx[i] * a->strides[i];
  return a->base[o];
}
static inline double *rn_ptr(const rnd *a, const int64_t *idx) {
  int64_t o = a->offset;
  for (int i = 0; i < a->ndim; i++) o += idx[i] * a->strides[i];
  return &a->base[o];
}
/* Odometer over shape; idx starts all zero; returns false after the last index. */
static inline bool idx_next(int64_t *idx, const int64_t *shape, int ndim) {
  for (int i = ndim - 1; i >= 0; i--) {
    if (++idx[i] < shape[i]) return true;
    idx[i] = 0;
  }
  return false;
}
static inline void idx_unravel(int64_t flat, const int64_t *shape, int ndim, int64_t *idx) {
  for (int i = ndim - 1; i >= 0; i--) {
    int64_t d = shape[i] > 0 ? shape[i] : 1;
    idx[i] = flat % d;
    flat /= d;
  }
}
/* Row-major values of a (a fresh contiguous array). */
static inline rnd rn_contig(const rnd *a) {
  rnd r = rn_new(a->dt, a->shape, a->ndim);
  int64_t n = rn_numel(a), idx[RMAX] = {0};
  for (int64_t i = 0; i < n; i++) {
    r.base[i] = rn_at(a, idx);
    idx_next(idx, a->shape, a->ndim);
  }
  return r;
}
static inline double rn_flat(const rnd *a, int64_t i) {
  int64_t idx[RMAX];
  idx_unravel(i, a->shape, a->ndim, idx);
  return rn_at(a, idx);
}

/* ---- value conversion between dtypes (PyTorch semantics) ---------------------------- */
/* The value v becomes as a dtype dt (round to nearest for floats; wrap for ints; !=0). */
static inline double quant(cg_dtype dt, double v) {
  switch (dt) {
  case CG_BOOL: return v != 0;
  case CG_FLOAT32: return (double)(float)v;
  case CG_FLOAT16: return (double)cg_f16_to_f32(cg_f32_to_f16((float)v));
  case CG_BFLOAT16: return (double)cg_bf16_to_f32(cg_f32_to_bf16((float)v));
  case CG_INT32: return (double)(int32_t)(uint32_t)(int64_t)v;
  case CG_INT64: return (double)(int64_t)v;
  case CG_INT8: return (double)(int8_t)(int64_t)v;
  case CG_UINT8: return (double)(uint8_t)(int64_t)v;
  default: return v;
  }
}
/* Encode v (already representable) into one element of dt at dst. */
static inline void enc(cg_dtype dt, double v, void *dst) {
  switch (dt) {
  case CG_BOOL: { uint8_t x = v != 0; memcpy(dst, &x, 1); break; }
  case CG_INT8: { int8_t x = (int8_t)v; memcpy(dst, &x, 1); break; }
  case CG_UINT8: { uint8_t x = (uint8_t)v; memcpy(dst, &x, 1); break; }
  case CG_INT16: { int16_t x = (int16_t)v; memcpy(dst, &x, 2); break; }
  case CG_UINT16: { uint16_t x = (uint16_t)v; memcpy(dst, &x, 2); break; }
  case CG_INT32: { int32_t x = (int32_t)v; memcpy(dst, &x, 4); break; }
  case CG_UINT32: { uint32_t x = (uint32_t)v; memcpy(dst, &x, 4); break; }
  case CG_INT64: { int64_t x = (int64_t)v; memcpy(dst, &x, 8); break; }
  case CG_UINT64: { uint64_t x = (uint64_t)v; memcpy(dst, &x, 8); break; }
  case CG_FLOAT16: { uint16_t x = cg_f32_to_f16((float)v); memcpy(dst, &x, 2); break; }
  case CG_BFLOAT16: { uint16_t x = cg_f32_to_bf16((float)v); memcpy(dst, &x, 2); break; }
  case CG_FLOAT32: { float x = (float)v; memcpy(dst, &x, 4); break; }
  case CG_FLOAT64: memcpy(dst, &v, 8); break;
  default: fprintf(stderr, "ref.h: enc of %d unsupported\n", (int)dt); abort();
  }
}
/* Decode one element of dt at src. bool gives its raw byte (so a 2 would show). */
static inline double dec(cg_dtype dt, const void *src) {
  switch (dt) {
  case CG_BOOL: { uint8_t x; memcpy(&x, src, 1); return x; }
  case CG_INT8: { int8_t x; memcpy(&x, src, 1); return x; }
  case CG_UINT8: { uint8_t x; memcpy(&x, src, 1); return x; }
  case CG_INT16: { int16_t x; memcpy(&x, src, 2); return x; }
  case CG_UINT16: { uint16_t x; memcpy(&x, src, 2); return x; }
  case CG_INT32: { int32_t x; memcpy(&x, src, 4); return x; }
  case CG_UINT32: { uint32_t x; memcpy(&x, src, 4); return x; }
  case CG_INT64: { int64_t x; memcpy(&x, src, 8); return (double)x; }
  case CG_UINT64: { uint64_t x; memcpy(&x, src, 8); return (double)x; }
  case CG_FLOAT16: { uint16_t x; memcpy(&x, src, 2); return cg_f16_to_f32(x); }
  case CG_BFLOAT16: { uint16_t x; memcpy(&x, src, 2); return bits_f32((uint32_t)x << 16); }
  case CG_FLOAT32: { float x; memcpy(&x, src, 4); return x; }
  case CG_FLOAT64: { double x; memcpy(&x, src, 8); return x; }
  default: fprintf(stderr, "ref.h: dec of %d unsupported\n", (int)dt); abort();
  }
}

/* ---- reading a cgrad tensor --------------------------------------------------------- */
/* Realize and read t as dt into a fresh double array of numel entries; NULL on error
 * (the error is reported as a failure with `what`). */
static inline double *read_values(cg_tensor *t, cg_dtype dt, int64_t numel, const char *what) {
  size_t es = cg_dtype_size(dt), nb = (size_t)numel * es;
  unsigned char *raw = (unsigned char *)malloc(nb ? nb : 1);
  if (!raw) abort();
  cg_status st = cg_read(t, dt, raw, nb);
  if (st != CG_OK) {
    t_fail++;
    fprintf(stderr, "FAIL [%s] %s: cg_read -> %d: %s (seed %llu)\n", g_case, what, (int)st, cg_last_error(),
            (unsigned long long)g_seed);
    free(raw);
    return NULL;
  }
  double *v = (double *)ref_alloc((size_t)numel * sizeof(double));
  for (int64_t i = 0; i < numel; i++) v[i] = dec(dt, raw + (size_t)i * es);
  free(raw);
  return v;
}

/* ---- comparison -------------------------------------------------------------------- */
static inline bool close_enough(double got, double want, double tol) {
  if (isnan(want)) return isnan(got);
  if (isinf(want)) return got == want;
  if (isnan(got) || isinf(got)) return false;
  return fabs(got - want) <= tol;
}
/* Compare cgrad tensor t with `want`: t must be non-NULL, of dtype dt, of want's shape, and
 * every value within tolerance kind k of dt. For reductions pass nred (elements reduced
 * into each output, >= 1) and scale (per-output magnitude bound, same shape as want);
 * elementwise checks pass nred 1 and scale NULL (|want| is used). Counts one check. */
static inline bool ref_check_impl(const char *file, int line, const char *what, cg_tensor *t, cg_dtype dt, const rnd *want,
                         tol_kind k, int64_t nred, const rnd *scale) {
  g_cur = what;
#define RFAIL_HDR() fprintf(stderr, "FAIL %s:%d [%s] %s (seed %llu): ", file, line, g_case, what, (unsigned long long)g_seed)
  if (!t) {
    t_fail++;
    RFAIL_HDR();
    fprintf(stderr, "got NULL; cg_last_error: %s\n", cg_last_error());
    cg_clear_error();
    return false;
  }
  if (cg_dtype_of(t) != dt) {
    t_fail++;
    RFAIL_HDR();
    fprintf(stderr, "dtype %s, want %s\n", cg_dtype_name(cg_dtype_of(t)), cg_dtype_name(dt));
    return false;
  }
  bool same = cg_ndim(t) == want->ndim;
  for (int i = 0; same && i < want->ndim; i++) same = cg_shape(t)[i] == want->shape[i];
  if (!same) {
    t_fail++;
    RFAIL_HDR();
    fprintf(stderr, "shape %s, want %s\n", shape_str(cg_shape(t), cg_ndim(t)), shape_str(want->shape, want->ndim));
    return false;
  }
  int64_t n = rn_numel(want);
  double *got = read_values(t, dt, n, what);
  if (!got) return false;
  tol_t tl = tol_of(dt, k);
  double sq = nred > 1 ? sqrt((double)nred) : 1.0;
  int bad = 0;
  int64_t idx[RMAX] = {0};
  for (int64_t i = 0; i < n; i++, idx_next(idx, want->shape, want->ndim)) {
    double w = rn_at(want, idx), g = got[i];
    if (dt == CG_BOOL && g != 0 && g != 1) w = NAN; /* a bool must be stored as 0 or 1 */
    double tol;
    if (k == TK_REDUCE || scale) {
      double s = scale ? fabs(rn_at(scale, idx)) : fabs(w);
      if (!(s >= fabs(w))) s = fabs(w);
      tol = sq * (tl.atol + tl.rtol * s);
    } else {
      tol = tl.atol + tl.rtol * fabs(w);
    }
    if (close_enough(g, w, tol)) continue;
    if (bad == 0) {
      RFAIL_HDR();
      fprintf(stderr, "shape %s %s, mismatches:\n", shape_str(want->shape, want->ndim), cg_dtype_name(dt));
    }
    if (bad < 6) {
      char ib[160];
      int o = snprintf(ib, sizeof ib, "[");
      for (int d = 0; d < want->ndim && o < 150; d++) o += snprintf(ib + o, sizeof ib - (size_t)o, "%s%lld", d ? ", " : "", (long long)idx[d]);
      snprintf(ib + o, sizeof ib - (size_t)o, "]");
      fprintf(stderr, "    at %s: got %.9g want %.9g (tol %.3g)\n", ib, g, w, tol);
    }
    bad++;
  }
  if (bad) {
    fprintf(stderr, "    %d of %lld values differ\n", bad, (long long)n);
    t_fail++;
    return false;
  }
  t_pass++;
  return true;
#undef RFAIL_HDR
}
static inline bool ref_check_at(const char *file, int line, const char *what, cg_tensor *t, cg_dtype dt, const rnd *want,
                                tol_kind k, int64_t nred, const rnd *scale) {
  bool ok = ref_check_impl(file, line, what, t, dt, want, k, nred, scale);
  if (!ok && g_trace[0]) fprintf(stderr, "    inputs: %s\n", g_trace);
  trace_clear();
  return ok;
}
#define REF_CHECK(what, t, dt, want, k) ref_check_at(__FILE__, __LINE__, what, t, dt, &(want), k, 1, NULL)
#define REF_CHECK_RED(what, t, dt, want, nred, scale) \
  ref_check_at(__FILE__, __LINE__, what, t, dt, &(want), TK_REDUCE, nred, &(scale))

/* ========================================================================================= 
 * Reference views. Each returns a new rnd header; storage is shared unless said.
 * ========================================================================================= */
static inline rnd rn_permute(const rnd *a, const int *perm) {
  rnd r = *a;
  for (int i = 0; i < a->ndim; i++) {
    int p = perm[i] < 0 ? perm[i] + a->ndim : perm[i];
    r.shape[i] = a->shape[p];
    r.strides[i] = a->strides[p];
  }
  return r;
}
static inline rnd rn_transpose(const rnd *a, int d0, int d1) {
  int perm[RMAX];
  if (d0 < 0) d0 += a->ndim;
  if (d1 < 0) d1 += a->ndim;
  for (int i = 0; i < a->ndim; i++) perm[i] = i;
  perm[d0] = d1;
  perm[d1] = d0;
  return rn_permute(a, perm);
}
/* Broadcast to shape (ndim >= a's): new leading dims and size-1 dims get stride 0;
 * a -1 keeps the dim. */
static inline rnd rn_expand(const rnd *a, const int64_t *shape, int ndim) {
  rnd r = *a;
  int lead = ndim - a->ndim;
  r.ndim = ndim;
  for (int i = 0; i < ndim; i++) {
    int j = i - lead;
    if (j < 0) { r.shape[i] = shape[i]; r.strides[i] = 0; continue; }
    int64_t want = shape[i] == -1 ? a->shape[j] : shape[i];
    r.shape[i] = want;
    r.strides[i] = a->shape[j] == want ? a->strides[j] : 0;
  }
  return r;
}
/* box: [begin0, end0, ...] */
static inline rnd rn_shrink(const rnd *a, const int64_t *box) {
  rnd r = *a;
  for (int i = 0; i < a->ndim; i++) {
    r.offset += box[2 * i] * a->strides[i];
    r.shape[i] = box[2 * i + 1] - box[2 * i];
  }
  return r;
}
/* Python slice semantics (PySlice_AdjustIndices). */
static inline void py_slice(int64_t len, int64_t *start, int64_t *stop, int64_t step, int64_t *count) {
  int64_t s = *start, e = *stop;
  if (step > 0) {
    if (s < 0) { s += len; if (s < 0) s = 0; } else if (s > len) s = len;
    if (e < 0) { e += len; if (e < 0) e = 0; } else if (e > len) e = len;
    *count = e > s ? (e - s + step - 1) / step : 0;
  } else {
    if (s < 0) { s += len; if (s < 0) s = -1; } else if (s >= len) s = len - 1;
    if (e < 0) { e += len; if (e < 0) e = -1; } else if (e >= len) e = len - 1;
    *count = s > e ? (s - e + (-step) - 1) / (-step) : 0;
  }
  *start = s;
  *stop = e;
}
static inline rnd rn_slice(const rnd *a, int dim, int64_t start, int64_t stop, int64_t step) {
  if (dim < 0) dim += a->ndim;
  rnd r = *a;
  int64_t cnt;
  py_slice(a->shape[dim], &start, &stop, step, &cnt);
  r.shape[dim] = cnt;
  if (cnt > 0) r.offset += start * a->strides[dim];
  r.strides[dim] = a->strides[dim] * step;
  return r;
}
static inline rnd rn_flip(const rnd *a, const int *dims, int nd) {
  rnd r = *a;
  for (int k = 0; k < nd; k++) {
    int d = dims[k] < 0 ? dims[k] + a->ndim : dims[k];
    if (r.shape[d] > 0) r.offset += (r.shape[d] - 1) * r.strides[d];
    r.strides[d] = -r.strides[d];
  }
  return r;
}
/* Copies. pads: [before0, after0, ...], all >= 0. */
static inline rnd rn_pad(const rnd *a, const int64_t *pads, double value) {
  int64_t shape[RMAX];
  for (int i = 0; i < a->ndim; i++) shape[i] = a->shape[i] + pads[2 * i] + pads[2 * i + 1];
  rnd r = rn_new(a->dt, shape, a->ndim);
  int64_t n = rn_numel(&r), idx[RMAX] = {0}, src[RMAX];
  for (int64_t i = 0; i < n; i++, idx_next(idx, shape, a->ndim)) {
    bool in = true;
    for (int d = 0; d < a->ndim; d++) {
      src[d] = idx[d] - pads[2 * d];
      if (src[d] < 0 || src[d] >= a->shape[d]) in = false;
    }
    r.base[i] = in ? rn_at(a, src) : value;
  }
  return r;
}
/* Reshape (a -1 is inferred); copies when a is not contiguous. */
static inline rnd rn_reshape(const rnd *a, const int64_t *shape_in, int ndim) {
  int64_t shape[RMAX], known = 1;
  int neg = -1;
  for (int i = 0; i < ndim; i++) {
    shape[i] = shape_in[i];
    if (shape[i] == -1) neg = i; else known *= shape[i];
  }
  if (neg >= 0) shape[neg] = known ? rn_numel(a) / known : 0;
  rnd c = rn_contig(a);
  rnd r = rn_new(a->dt, shape, ndim);
  r.base = c.base;
  return r;
}
static inline rnd rn_unsqueeze(const rnd *a, int dim) {
  if (dim < 0) dim += a->ndim + 1;
  rnd r = *a;
  r.ndim = a->ndim + 1;
  for (int i = 0, j = 0; i < r.ndim; i++) {
    if (i == dim) { r.shape[i] = 1; r.strides[i] = 0; continue; }
    r.shape[i] = a->shape[j];
    r.strides[i] = a->strides[j];
    j++;
  }
  return r;
}
static inline rnd rn_squeeze(const rnd *a, int dim) {
  if (dim < 0) dim += a->ndim;
  if (a->ndim == 0 || a->shape[dim] != 1) return *a;
  rnd r = *a;
  r.ndim = a->ndim - 1;
  for (int i = 0, j = 0; j < a->ndim; j++) {
    if (j == dim) continue;
    r.shape[i] = a->shape[j];
    r.strides[i] = a->strides[j];
    i++;
  }
  return r;
}
static inline rnd rn_flatten(const rnd *a, int s, int e) {
  if (a->ndim == 0) { int64_t one = 1; return rn_reshape(a, &one, 1); }
  if (s < 0) s += a->ndim;
  if (e < 0) e += a->ndim;
  int64_t shape[RMAX];
  int nd = 0;
  for (int i = 0; i < s; i++) shape[nd++] = a->shape[i];
  int64_t m = 1;
  for (int i = s; i <= e; i++) m *= a->shape[i];
  shape[nd++] = m;
  for (int i = e + 1; i < a->ndim; i++) shape[nd++] = a->shape[i];
  return rn_reshape(a, shape, nd);
}
/* Concatenate along dim (copies). */
static inline rnd rn_cat(const rnd *const *as, int n, int dim) {
  int nd = as[0]->ndim;
  if (dim < 0) dim += nd;
  int64_t shape[RMAX];
  memcpy(shape, as[0]->shape, sizeof shape);
  shape[dim] = 0;
  for (int k = 0; k < n; k++) shape[dim] += as[k]->shape[dim];
  rnd r = rn_new(as[0]->dt, shape, nd);
  int64_t total = rn_numel(&r), idx[RMAX] = {0}, src[RMAX];
  for (int64_t i = 0; i < total; i++, idx_next(idx, shape, nd)) {
    memcpy(src, idx, sizeof src);
    int k = 0;
    while (src[dim] >= as[k]->shape[dim]) src[dim] -= as[k++]->shape[dim];
    r.base[i] = rn_at(as[k], src);
  }
  return r;
}
/* torch.repeat: repeats has nr >= ndim entries. */
static inline rnd rn_repeat(const rnd *a, const int64_t *reps, int nr) {
  int64_t shape[RMAX], ash[RMAX];
  int lead = nr - a->ndim;
  for (int i = 0; i < nr; i++) {
    ash[i] = i < lead ? 1 : a->shape[i - lead];
    shape[i] = ash[i] * reps[i];
  }
  rnd r = rn_new(a->dt, shape, nr);
  int64_t n = rn_numel(&r), idx[RMAX] = {0}, src[RMAX];
  for (int64_t i = 0; i < n; i++, idx_next(idx, shape, nr)) {
    for (int d = lead; d < nr; d++) src[d - lead] = idx[d] % ash[d];
    r.base[i] = rn_at(a, src);
  }
  return r;
}

/* ========================================================================================= 
 * Reference compute.
 * ========================================================================================= */
/* NumPy broadcast of two shapes; false if incompatible. */
static inline bool bcast_shape(const int64_t *a, int na, const int64_t *b, int nb, int64_t *out, int *nout) {
  int n = na > nb ? na : nb;
  for (int i = 0; i < n; i++) {
    int64_t x = i - (n - na) >= 0 ? a[i - (n - na)] : 1, y = i - (n - nb) >= 0 ? b[i - (n - nb)] : 1;
    if (x != y && x != 1 && y != 1) return false;
    out[i] = x == 1 ? y : x;
  }
  *nout = n;
  return true;
}
typedef double (*fn1)(double);
typedef double (*fn2)(double, double);
static inline rnd rn_map1(const rnd *a, fn1 f, cg_dtype out) {
  rnd r = rn_new(out, a->shape, a->ndim);
  int64_t n = rn_numel(a), idx[RMAX] = {0};
  for (int64_t i = 0; i < n; i++, idx_next(idx, a->shape, a->ndim)) r.base[i] = f(rn_at(a, idx));
  return r;
}
static inline rnd rn_map2(const rnd *a, const rnd *b, fn2 f, cg_dtype out) {
  int64_t shape[RMAX];
  int nd;
  if (!bcast_shape(a->shape, a->ndim, b->shape, b->ndim, shape, &nd)) abort();
  rnd ea = rn_expand(a, shape, nd), eb = rn_expand(b, shape, nd);
  rnd r = rn_new(out, shape, nd);
  int64_t n = rn_numel(&r), idx[RMAX] = {0};
  for (int64_t i = 0; i < n; i++, idx_next(idx, shape, nd)) r.base[i] = f(rn_at(&ea, idx), rn_at(&eb, idx));
  return r;
}
static inline rnd rn_where(const rnd *c, const rnd *a, const rnd *b, cg_dtype out) {
  int64_t s1[RMAX], shape[RMAX];
  int n1, nd;
  if (!bcast_shape(c->shape, c->ndim, a->shape, a->ndim, s1, &n1) || !bcast_shape(s1, n1, b->shape, b->ndim, shape, &nd))
    abort();
  rnd ec = rn_expand(c, shape, nd), ea = rn_expand(a, shape, nd), eb = rn_expand(b, shape, nd);
  rnd r = rn_new(out, shape, nd);
  int64_t n = rn_numel(&r), idx[RMAX] = {0};
  for (int64_t i = 0; i < n; i++, idx_next(idx, shape, nd)) r.base[i] = rn_at(&ec, idx) != 0 ? rn_at(&ea, idx) : rn_at(&eb, idx);
  return r;
}
/* Apply quant(dt) to every value (e.g. after an op whose result cgrad rounds to dt). */
static inline rnd rn_quant(const rnd *a, cg_dtype dt) {
  rnd r = rn_contig(a);
  r.dt = dt;
  int64_t n = rn_numel(a);
  for (int64_t i = 0; i < n; i++) r.base[i] = quant(dt, r.base[i]);
  return r;
}

/* ---- reductions ---------------------------------------------------------------------- */
typedef enum { R_SUM, R_PROD, R_MAX, R_MIN, R_MEAN, R_VAR, R_STD, R_ANY, R_ALL, R_LSE, R_ARGMAX, R_ARGMIN } red_op;
/* Reduce one list of values; *scale gets the magnitude bound used for the tolerance. */
static inline double red_list(red_op op, const double *v, int64_t n, int correction, double *scale) {
  double s = 0, sa = 0, m;
  int64_t i;
  switch (op) {
  case R_SUM: case R_MEAN:
    for (i = 0; i < n; i++) { s += v[i]; sa += fabs(v[i]); }
    if (op == R_MEAN) { s = n ? s / (double)n : NAN; sa = n ? sa / (double)n : 0; }
    *scale = sa;
    return s;
  case R_PROD:
    for (s = 1, i = 0; i < n; i++) s *= v[i];
    *scale = fabs(s);
    return s;
  case R_MAX: case R_MIN:
    m = n ? v[0] : NAN;
    for (i = 1; i < n; i++) m = op == R_MAX ? (v[i] > m ? v[i] : m) : (v[i] < m ? v[i] : m);
    *scale = fabs(m);
    return m;
  case R_VAR: case R_STD: {
    double mean = 0, ss = 0, ma = 0;
    for (i = 0; i < n; i++) { mean += v[i]; ma += fabs(v[i]); }
    mean = n ? mean / (double)n : NAN;
    ma = n ? ma / (double)n : 0;
    for (i = 0; i < n; i++) ss += (v[i] - mean) * (v[i] - mean);
    double var = ss / (double)(n - correction); /* n <= correction: 0/0 or x/-1 -> as torch: nan */
    if (n - correction <= 0) var = NAN;
    if (op == R_VAR) { *scale = fabs(var) + ma * ma; return var; }
    *scale = sqrt(fabs(var)) + ma;
    return sqrt(var);
  }
  case R_ANY:
    for (i = 0; i < n; i++) if (v[i] != 0) { *scale = 0; return 1; }
    *scale = 0;
    return 0;
  case R_ALL:
    for (i = 0; i < n; i++) if (v[i] == 0) { *scale = 0; return 0; }
    *scale = 0;
    return 1;
  case R_LSE: {
    if (n == 0) { *scale = 0; return -INFINITY; }
    m = v[0];
    for (i = 1; i < n; i++) if (v[i] > m) m = v[i];
    double ma = 0;
    for (i = 0; i < n; i++) { s += exp(v[i] - m); if (fabs(v[i]) > ma) ma = fabs(v[i]); }
    double r = m + log(s);
    *scale = 1 + fabs(r) + ma;
    return r;
  }
  case R_ARGMAX: case R_ARGMIN: {
    int64_t best = 0;
    for (i = 1; i < n; i++) if (op == R_ARGMAX ? v[i] > v[best] : v[i] < v[best]) best = i;
    *scale = 0;
    return (double)best;
  }
  }
  return NAN;
}
/* Reduce a over axes (naxes 0: all). Returns the result (dtype out) and, in *scale, the
 * per-output tolerance scale; *nred gets the number of elements reduced per output. */
static inline rnd rn_reduce(const rnd *a, const int *axes, int naxes, bool keepdim, red_op op, int correction, cg_dtype out,
                     rnd *scale, int64_t *nred) {
  bool red[RMAX] = {false};
  if (naxes == 0) for (int i = 0; i < a->ndim; i++) red[i] = true;
  for (int k = 0; k < naxes; k++) red[axes[k] < 0 ? axes[k] + a->ndim : axes[k]] = true;
  int64_t kshape[RMAX] = {0}, rshape[RMAX] = {0}, oshape[RMAX] = {0};
  int nr = 0, no = 0;
  int64_t nred_ = 1;
  for (int i = 0; i < a->ndim; i++) {
    kshape[i] = red[i] ? 1 : a->shape[i];
    if (red[i]) { rshape[nr++] = a->shape[i]; nred_ *= a->shape[i]; }
    if (!red[i]) oshape[no++] = a->shape[i];
    else if (keepdim) oshape[no++] = 1;
  }
  rnd r = rn_new(out, oshape, no), sc = rn_new(CG_FLOAT64, oshape, no);
  double *vals = (double *)malloc((size_t)(nred_ ? nred_ : 1) * sizeof(double));
  int64_t nout = shape_numel(kshape, a->ndim), kidx[RMAX] = {0}, ridx[RMAX], full[RMAX];
  for (int64_t o = 0; o < nout; o++, idx_next(kidx, kshape, a->ndim)) {
    memset(ridx, 0, sizeof ridx);
    for (int64_t j = 0; j < nred_; j++, idx_next(ridx, rshape, nr)) {
      for (int d = 0, q = 0; d < a->ndim; d++) full[d] = red[d] ? ridx[q++] : kidx[d];
      vals[j] = rn_at(a, full);
    }
    r.base[o] = red_list(op, vals, nred_, correction, &sc.base[o]);
  }
  free(vals);
  if (scale) *scale = sc;
  if (nred) *nred = nred_;
  return r;
}
/* Along one axis: cumsum / softmax / log_softmax (same shape). */
typedef enum { A_CUMSUM, A_SOFTMAX, A_LOGSOFTMAX } axis_op;
static inline rnd rn_axis_op(const rnd *a, int axis, axis_op op, rnd *scale) {
  if (a->ndim == 0) {
    rnd r = rn_new(a->dt, a->shape, 0), sc = rn_new(CG_FLOAT64, a->shape, 0);
    double x = a->base[a->offset];
    r.base[0] = op == A_CUMSUM ? x : op == A_SOFTMAX ? 1.0 : 0.0;
    sc.base[0] = fabs(x) + 1;
    if (scale) *scale = sc;
    return r;
  }
  if (axis < 0) axis += a->ndim;
  rnd r = rn_new(a->dt, a->shape, a->ndim), sc = rn_new(CG_FLOAT64, a->shape, a->ndim);
  int64_t n = a->shape[axis], outer[RMAX];
  memcpy(outer, a->shape, sizeof outer);
  outer[axis] = 1;
  int64_t no = shape_numel(outer, a->ndim), idx[RMAX] = {0}, j[RMAX];
  for (int64_t o = 0; o < no; o++, idx_next(idx, outer, a->ndim)) {
    memcpy(j, idx, sizeof j);
    double m = -INFINITY, s = 0, sa = 0;
    for (j[axis] = 0; j[axis] < n; j[axis]++) if (rn_at(a, j) > m) m = rn_at(a, j);
    for (j[axis] = 0; j[axis] < n; j[axis]++) s += exp(rn_at(a, j) - m);
    for (j[axis] = 0; j[axis] < n; j[axis]++) {
      double x = rn_at(a, j), *out = rn_ptr(&r, j), *so = rn_ptr(&sc, j);
      if (op == A_CUMSUM) {
        sa += fabs(x);
        double acc = 0;
        int64_t k[RMAX];
        memcpy(k, j, sizeof k);
        for (k[axis] = 0; k[axis] <= j[axis]; k[axis]++) acc += rn_at(a, k);
        *out = acc;
        *so = sa;
      } else if (op == A_SOFTMAX) {
        *out = exp(x - m) / s;
        *so = fabs(*out);
      } else {
        *out = x - m - log(s);
        *so = fabs(*out) + fabs(m) + 1;
      }
    }
  }
  if (scale) *scale = sc;
  return r;
}

/* ---- matmul / gather ---------------------------------------------------------------- */
/* numpy.matmul. *scale gets sum |a_ik b_kj| per output; *nk the inner size. */
static inline rnd rn_matmul(const rnd *a0, const rnd *b0, cg_dtype out, rnd *scale, int64_t *nk) {
  rnd a = *a0, b = *b0;
  bool a1 = a.ndim == 1, b1 = b.ndim == 1;
  if (a1) a = rn_unsqueeze(&a, 0);
  if (b1) b = rn_unsqueeze(&b, 1);
  int64_t M = a.shape[a.ndim - 2], K = a.shape[a.ndim - 1], N = b.shape[b.ndim - 1];
  int64_t bs[RMAX];
  int nb;
  if (!bcast_shape(a.shape, a.ndim - 2, b.shape, b.ndim - 2, bs, &nb)) abort();
  int64_t fa[RMAX], fb[RMAX];
  memcpy(fa, bs, sizeof(int64_t) * (size_t)nb);
  memcpy(fb, bs, sizeof(int64_t) * (size_t)nb);
  fa[nb] = M; fa[nb + 1] = K;
  fb[nb] = K; fb[nb + 1] = N;
  rnd ea = rn_expand(&a, fa, nb + 2), eb = rn_expand(&b, fb, nb + 2);
  int64_t oshape[RMAX];
  int no = 0;
  for (int i = 0; i < nb; i++) oshape[no++] = bs[i];
  if (!a1) oshape[no++] = M;
  if (!b1) oshape[no++] = N;
  rnd r = rn_new(out, oshape, no), sc = rn_new(CG_FLOAT64, oshape, no);
  int64_t full[RMAX] = {0};
  memcpy(full, bs, sizeof(int64_t) * (size_t)nb);
  full[nb] = M;
  full[nb + 1] = N;
  int64_t nout = shape_numel(full, nb + 2), idx[RMAX] = {0}, ia[RMAX], ib[RMAX];
  for (int64_t o = 0; o < nout; o++, idx_next(idx, full, nb + 2)) {
    memcpy(ia, idx, sizeof ia);
    memcpy(ib, idx, sizeof ib);
    double s = 0, sa = 0;
    for (int64_t k = 0; k < K; k++) {
      ia[nb + 1] = k;
      ib[nb] = k;
      ib[nb + 1] = idx[nb + 1];
      double p = rn_at(&ea, ia) * rn_at(&eb, ib);
      s += p;
      sa += fabs(p);
    }
    r.base[o] = s;
    sc.base[o] = sa;
  }
  if (scale) *scale = sc;
  if (nk) *nk = K;
  return r;
}
/* torch.gather: out[i..] = a[i.. with index[i..] at dim]. */
static inline rnd rn_gather(const rnd *a, int dim, const rnd *index) {
  if (dim < 0) dim += a->ndim;
  rnd r = rn_new(a->dt, index->shape, index->ndim);
  int64_t n = rn_numel(index), idx[RMAX] = {0}, src[RMAX];
  for (int64_t i = 0; i < n; i++, idx_next(idx, index->shape, index->ndim)) {
    memcpy(src, idx, sizeof src);
    src[dim] = (int64_t)rn_at(index, idx);
    r.base[i] = rn_at(a, src);
  }
  return r;
}
static inline rnd rn_index_select(const rnd *a, int dim, const rnd *index) {
  if (dim < 0) dim += a->ndim;
  int64_t shape[RMAX];
  memcpy(shape, a->shape, sizeof shape);
  shape[dim] = rn_numel(index);
  rnd r = rn_new(a->dt, shape, a->ndim);
  int64_t n = rn_numel(&r), idx[RMAX] = {0}, src[RMAX];
  for (int64_t i = 0; i < n; i++, idx_next(idx, shape, a->ndim)) {
    memcpy(src, idx, sizeof src);
    src[dim] = (int64_t)rn_flat(index, idx[dim]);
    r.base[i] = rn_at(a, src);
  }
  return r;
}

/* ========================================================================================= 
 * Tensor pairs: a cgrad tensor with its reference.
 * ========================================================================================= */
typedef struct {
  cg_tensor *t;
  rnd r;
  int id; /* its name in the trace: t<id> */
} tp;

/* How random values are drawn (then rounded to the dtype):
 *   G_UNIF     uniform in [lo, hi]      (integers: uniform integer in [lo, hi])
 *   G_NONZERO  ±uniform in [lo, hi], lo > 0 (integers: ±[lo, hi])
 *   G_QUARTER  multiples of 0.25 in [lo, hi] (ties for round, exact zeros for sign)
 *   G_SMALLINT integer values in [lo, hi] (ties for comparisons / argmax)
 * bool draws 0/1 whatever the kind. */
typedef enum { G_UNIF, G_NONZERO, G_QUARTER, G_SMALLINT } gen_kind;
typedef struct { gen_kind kind; double lo, hi; } gen_t;
static const gen_t GEN_STD = {G_UNIF, -2, 2};

static inline double gen_value(cg_dtype dt, gen_t g) {
  if (dt == CG_BOOL) return (double)(rng_u64() & 1);
  double v;
  if (dt_is_int(dt)) {
    int64_t lo = (int64_t)ceil(g.lo), hi = (int64_t)floor(g.hi);
    v = (double)rng_int(lo, hi);
    if (g.kind == G_NONZERO) { if (v == 0) v = 1; if (rng_u64() & 1) v = -v; }
    return quant(dt, v);
  }
  switch (g.kind) {
  case G_UNIF: v = rng_unif(g.lo, g.hi); break;
  case G_NONZERO: v = rng_unif(g.lo, g.hi) * ((rng_u64() & 1) ? -1 : 1); break;
  case G_QUARTER: v = 0.25 * (double)rng_int((int64_t)ceil(4 * g.lo), (int64_t)floor(4 * g.hi)); break;
  default: v = (double)rng_int((int64_t)ceil(g.lo), (int64_t)floor(g.hi)); break;
  }
  return quant(dt, v);
}
/* A contiguous tensor of values given in row-major order (already representable in dt). */
static inline tp tp_from_values(cg_dtype dt, const int64_t *shape, int ndim, const double *vals) {
  tp p;
  p.r = rn_new(dt, shape, ndim);
  int64_t n = rn_numel(&p.r);
  size_t es = cg_dtype_size(dt);
  unsigned char *raw = (unsigned char *)malloc((size_t)n * es + 1);
  if (!raw) abort();
  for (int64_t i = 0; i < n; i++) {
    p.r.base[i] = vals[i];
    enc(dt, vals[i], raw + (size_t)i * es);
  }
  p.t = REF_NO_CG ? NULL : cg_from_data(raw, dt, shape, ndim);
  free(raw);
  p.id = ++g_ntp;
  trace_add("t%d = from_data(%s, %s); ", p.id, cg_dtype_name(dt), shape_str(shape, ndim));
  return p;
}
static inline tp tp_rand(cg_dtype dt, const int64_t *shape, int ndim, gen_t g) {
  int64_t n = shape_numel(shape, ndim);
  double *v = (double *)ref_alloc((size_t)n * sizeof(double));
  for (int64_t i = 0; i < n; i++) v[i] = gen_value(dt, g);
  /* never all zeros: put one nonzero in if the draw gave none */
  bool any = false;
  for (int64_t i = 0; i < n; i++) any |= v[i] != 0;
  if (!any && n > 0 && !(g.lo == 0 && g.hi == 0)) {
    for (int k = 0; k < 64 && v[0] == 0; k++) v[0] = gen_value(dt, g);
    if (v[0] == 0) v[0] = dt == CG_BOOL ? 1 : quant(dt, g.hi != 0 ? g.hi : g.lo);
  }
  return tp_from_values(dt, shape, ndim, v);
}

/* Views on both sides. */
static inline const char *ints_str(const int *v, int n) {
  static char bufs[4][160];
  static int k;
  char *b = bufs[k++ & 3];
  int o = snprintf(b, 160, "[");
  for (int i = 0; i < n && o < 150; i++) o += snprintf(b + o, (size_t)(160 - o), "%s%d", i ? ", " : "", v[i]);
  snprintf(b + o, (size_t)(160 - o), "]");
  return b;
}
static inline const char *i64s_str(const int64_t *v, int n) {
  static char bufs[4][200];
  static int k;
  char *b = bufs[k++ & 3];
  int o = snprintf(b, 200, "[");
  for (int i = 0; i < n && o < 190; i++) o += snprintf(b + o, (size_t)(200 - o), "%s%lld", i ? ", " : "", (long long)v[i]);
  snprintf(b + o, (size_t)(200 - o), "]");
  return b;
}
static inline tp tp_permute(tp a, const int *perm) {
  tp r = {cg_permute(a.t, perm, a.r.ndim), rn_permute(&a.r, perm), ++g_ntp};
  trace_add("t%d = permute(t%d, %s); ", r.id, a.id, ints_str(perm, a.r.ndim));
  return r;
}
static inline tp tp_expand(tp a, const int64_t *shape, int ndim) {
  tp r = {cg_expand(a.t, shape, ndim), rn_expand(&a.r, shape, ndim), ++g_ntp};
  trace_add("t%d = expand(t%d, %s); ", r.id, a.id, shape_str(shape, ndim));
  return r;
}
static inline tp tp_shrink(tp a, const int64_t *box) {
  tp r = {cg_shrink(a.t, box), rn_shrink(&a.r, box), ++g_ntp};
  trace_add("t%d = shrink(t%d, %s); ", r.id, a.id, i64s_str(box, 2 * a.r.ndim));
  return r;
}
static inline tp tp_slice(tp a, int dim, int64_t start, int64_t stop, int64_t step) {
  tp r = {cg_slice(a.t, dim, start, stop, step), rn_slice(&a.r, dim, start, stop, step), ++g_ntp};
  trace_add("t%d = slice(t%d, %d, %lld, %lld, %lld); ", r.id, a.id, dim, (long long)start, (long long)stop, (long long)step);
  return r;
}
static inline tp tp_flip(tp a, const int *dims, int nd) {
  tp r = {cg_flip(a.t, dims, nd), rn_flip(&a.r, dims, nd), ++g_ntp};
  trace_add("t%d = flip(t%d, %s); ", r.id, a.id, ints_str(dims, nd));
  return r;
}
static inline tp tp_pad(tp a, const int64_t *pads, double value) {
  tp r = {cg_pad(a.t, pads, value), rn_pad(&a.r, pads, quant(a.r.dt, value)), ++g_ntp};
  trace_add("t%d = pad(t%d, %s, %g); ", r.id, a.id, i64s_str(pads, 2 * a.r.ndim), value);
  return r;
}
static inline tp tp_reshape(tp a, const int64_t *shape, int ndim) {
  tp r = {cg_reshape(a.t, shape, ndim), rn_reshape(&a.r, shape, ndim), ++g_ntp};
  trace_add("t%d = reshape(t%d, %s); ", r.id, a.id, shape_str(shape, ndim));
  return r;
}

/* Names of the view kinds tp_view makes (for messages). */
static const char *const VIEW_NAMES[] = {"contiguous", "permuted", "sliced", "expanded", "flipped", "padded", "reshaped"};
enum { V_CONTIG, V_PERMUTE, V_SLICE, V_EXPAND, V_FLIP, V_PAD, V_RESHAPE, V_COUNT };

static inline void rand_perm(int *perm, int n) {
  for (int i = 0; i < n; i++) perm[i] = i;
  for (int i = n - 1; i > 0; i--) {
    int j = (int)rng_int(0, i), t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
}
/* A tensor of `shape` whose values are random, built as view `kind` (V_*) of a random base;
 * depth > 0 builds that base the same way again (kind chosen at random), so views stack. */
static inline tp tp_view_kind(cg_dtype dt, const int64_t *shape, int ndim, gen_t g, int kind, int depth);
static inline tp tp_base(cg_dtype dt, const int64_t *shape, int ndim, gen_t g, int depth) {
  if (depth <= 0) return tp_rand(dt, shape, ndim, g);
  return tp_view_kind(dt, shape, ndim, g, (int)rng_int(0, V_COUNT - 1), depth - 1);
}
static inline tp tp_view_kind(cg_dtype dt, const int64_t *shape, int ndim, gen_t g, int kind, int depth) {
  int64_t bs[RMAX];
  memcpy(bs, shape, sizeof(int64_t) * (size_t)ndim);
  switch (kind) {
  case V_PERMUTE: {
    int perm[RMAX];
    rand_perm(perm, ndim);
    for (int i = 0; i < ndim; i++) bs[perm[i]] = shape[i];
    return tp_permute(tp_base(dt, bs, ndim, g, depth), perm);
  }
  case V_SLICE: {
    int64_t start[RMAX], step[RMAX];
    for (int i = 0; i < ndim; i++) {
      step[i] = rng_int(1, 3);
      start[i] = rng_int(0, 2);
      bs[i] = start[i] + (shape[i] > 0 ? (shape[i] - 1) * step[i] + 1 : 0) + rng_int(0, 2);
    }
    tp p = tp_base(dt, bs, ndim, g, depth);
    for (int i = 0; i < ndim; i++) {
      /* half the time a negative start, counted from the end */
      int64_t s = (rng_u64() & 1) && start[i] < bs[i] ? start[i] - bs[i] : start[i];
      p = tp_slice(p, i, s, start[i] + shape[i] * step[i], step[i]);
    }
    return p;
  }
  case V_EXPAND: {
    for (int i = 0; i < ndim; i++) if (shape[i] != 1 && (rng_u64() & 1)) bs[i] = 1;
    return tp_expand(tp_base(dt, bs, ndim, g, depth), shape, ndim);
  }
  case V_FLIP: {
    int dims[RMAX], nd = 0;
    for (int i = 0; i < ndim; i++) if (rng_u64() & 1) dims[nd++] = i;
    if (nd == 0 && ndim > 0) dims[nd++] = ndim - 1;
    return tp_flip(tp_base(dt, bs, ndim, g, depth), dims, nd);
  }
  case V_PAD: {
    int64_t pads[2 * RMAX];
    for (int i = 0; i < ndim; i++) {
      pads[2 * i] = rng_int(0, shape[i] < 2 ? shape[i] : 2);
      pads[2 * i + 1] = rng_int(0, shape[i] - pads[2 * i] < 2 ? shape[i] - pads[2 * i] : 2);
      bs[i] = shape[i] - pads[2 * i] - pads[2 * i + 1];
    }
    double value = gen_value(dt, g);
    return tp_pad(tp_base(dt, bs, ndim, g, depth), pads, value);
  }
  case V_RESHAPE: {
    /* a flat (or 2-d) base reshaped to shape */
    int64_t n = shape_numel(shape, ndim), fs[2] = {n, 1};
    tp p = tp_base(dt, fs, (rng_u64() & 1) ? 1 : 2, g, depth);
    return tp_reshape(p, shape, ndim);
  }
  default:
    return tp_rand(dt, shape, ndim, g);
  }
}
/* A random non-contiguous (or, for kind V_CONTIG, contiguous) input of `shape`, with a
 * chain of up to two views. */
static inline tp tp_view(cg_dtype dt, const int64_t *shape, int ndim, gen_t g, int kind) {
  return tp_view_kind(dt, shape, ndim, g, kind, kind == V_CONTIG ? 0 : (int)rng_int(0, 1));
}

/* A random shape of ndim dims, each in [0, maxd] with size 0 rare, size 1 common. */
static inline int rand_shape(int64_t *shape, int ndim, int maxd, bool allow0) {
  if (test_env_long("CG_TEST_NO_EMPTY", 0)) allow0 = false; /* triage knob: no size-0 dims */
  for (int i = 0; i < ndim; i++) {
    int r = (int)rng_int(0, 9);
    shape[i] = r == 0 && allow0 ? 0 : r <= 2 ? 1 : rng_int(2, maxd);
  }
  return ndim;
}

/* Expect NULL with cg_last_error() containing every non-NULL needle. Counts one check. */
static inline bool expect_error_at(const char *file, int line, const char *what, const void *result, const char *n1, const char *n2) {
  const char *e = cg_last_error();
  bool ok = result == NULL && e && *e && (!n1 || strstr(e, n1)) && (!n2 || strstr(e, n2));
  if (ok) t_pass++;
  else {
    t_fail++;
    fprintf(stderr, "FAIL %s:%d [%s] %s: want NULL and an error mentioning '%s'%s%s%s; got %s, error \"%s\"\n", file, line,
            g_case, what, n1 ? n1 : "", n2 ? " and '" : "", n2 ? n2 : "", n2 ? "'" : "", result ? "non-NULL" : "NULL", e ? e : "(null)");
  }
  cg_clear_error();
  return ok;
}
#define EXPECT_ERROR(what, result, n1, n2) expect_error_at(__FILE__, __LINE__, what, result, n1, n2)

#endif
