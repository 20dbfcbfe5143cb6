/* One meaning per op (ops.def): every ALU op x every dtype it accepts x edge values (NaN,
 * ±0, ±inf, denormals, the type's min and max, INT_MIN, -1, zero divisors, shift counts
 * past the width and negative), computed three ways:
 *   fold    the constant folder: the op over CONST operands, simplified (uop_simplify),
 *           must become a CONST — the reference (uop/alu.c)
 *   CPU     a generated C kernel reading the operands from buffers (nothing folds)
 *   INTERP  the interpreter device, on the same kind of kernel
 * float32 and int32 also with UPCAST(0, 8) forced, so ops take their vector forms.
 * They must agree bit for bit (any NaN matches any NaN), except the transcendentals EXP2,
 * LOG2, SIN, which may differ by 2 ulps of the result dtype (the folder and INTERP use
 * libm, the C kernels the polynomials of renderer/vmath.h, each within its stated bound
 * of the true value; tests/codegen/test_vmath.c sweeps them). SQRT, the division
 * RECIPROCAL and everything else must be exact.
 * The tensor API on constants (cg_full, cg_cast, cg_add, ...: folded before any kernel
 * runs) must give the kernels' answers too.
 * Then the NaN rules of MAX checked against torch's meaning (a fixed expectation, not
 * against ourselves): max/min reductions and elementwise maximum/minimum return NaN when
 * any operand is NaN, on both devices; and MAX is commutative on ±0.
 * White-box: the ops of one dtype go into one kernel (a SINK of STOREs over slots, as the
 * scheduler makes them) built with the internal UOp builders, since the tensor API has no
 * SHL, MOD, MULACC, ... and one kernel per op would cost hundreds of C compiles; it runs
 * through the real codegen pipeline and device. The MAX/NaN checks use the tensor API. */
#include "check.h"
#include "tensor/tensor.h"
#include "codegen/codegen.h"
#include "renderer/render.h"
#include "runtime/device.h"
#include "uop/symbolic.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

#define MAXV 64
typedef struct {
  int n;
  uint64_t b[MAXV]; /* raw storage bits, little end */
} vals;

/* Where each kernel runs: the device, and UPCAST(0, 8) forced (0: the heuristic's opts).
 * The forced upcast makes float32/int32 kernels vector code (GCC vector types; the
 * interpreter's lanes), whose spelling of each op differs from the scalar one. */
#define NCFG 4
static const struct {
  const char *dev, *name;
  int upcast;
} cfgs[NCFG] = {{"CPU", "CPU", 0}, {"INTERP", "INTERP", 0}, {"CPU", "CPU/UPCAST8", 8}, {"INTERP", "INTERP/UPCAST8", 8}};
static int nfail_print;

static int width(cg_dtype d) { return (int)cg_dtype_size(d) * 8; }
static bool is_float(cg_dtype d) { return dt_is_float(dt_of(d)); }
static uint64_t mask(cg_dtype d) { return width(d) == 64 ? ~0ull : (1ull << width(d)) - 1; }

/* ---- storage bits <-> the folder's values -------------------------------------------- */

static int64_t to_i(cg_dtype d, uint64_t b) {
  if (d == CG_BOOL) return b != 0;
  return alu_wrap(dt_of(d), (int64_t)b);
}
static double to_f(cg_dtype d, uint64_t b) {
  switch (d) {
  case CG_FLOAT16: return cg_f16_to_f32((uint16_t)b);
  case CG_BFLOAT16: return cg_bf16_to_f32((uint16_t)b);
  case CG_FP8E4M3: return cg_fp8e4m3_to_f32((uint8_t)b);
  case CG_FP8E5M2: return cg_fp8e5m2_to_f32((uint8_t)b);
  case CG_FLOAT32: { uint32_t u = (uint32_t)b; float f; memcpy(&f, &u, 4); return f; }
  default: { double f; memcpy(&f, &b, 8); return f; }
  }
}
/* A float of dtype d (a value d holds, or rounded to one) as d's bits. */
static uint64_t from_f(cg_dtype d, double v) {
  switch (d) {
  case CG_FLOAT16: return cg_f32_to_f16((float)v);
  case CG_BFLOAT16: return cg_f32_to_bf16((float)v);
  case CG_FP8E4M3: return cg_f32_to_fp8e4m3((float)v);
  case CG_FP8E5M2: return cg_f32_to_fp8e5m2((float)v);
  case CG_FLOAT32: { float f = (float)v; uint32_t u; memcpy(&u, &f, 4); return u; }
  default: { uint64_t u; memcpy(&u, &v, 8); return u; }
  }
}

static void add_val(vals *v, uint64_t b) {
  for (int i = 0; i < v->n; i++)
    if (v->b[i] == b) return;
  if (v->n < MAXV) v->b[v->n++] = b;
}

/* The edge values of a dtype. */
static vals edge_values(cg_dtype d) {
  vals v = {0};
  if (d == CG_BOOL) {
    add_val(&v, 0), add_val(&v, 1);
    return v;
  }
  if (!is_float(d)) {
    const int64_t c[] = {0, 1, -1, 2, -2, 3, -7, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, -100, 127, -127, -128, 255, 256,
                         32767, -32767, -32768, 65535, 65536, INT32_MAX, INT32_MIN + 1, INT32_MIN, 4294967295ll, 4294967296ll,
                         123456789, -987654321, (1ll << 53) + 1, (1ll << 60) + (1ll << 36) + 1, INT64_MAX, INT64_MIN + 1, INT64_MIN};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) add_val(&v, (uint64_t)c[i] & mask(d));
    return v;
  }
  /* the format's own specials by bit pattern: smallest and largest denormal, smallest
   * normal, largest finite, and their negatives */
  int w = width(d), mb = d == CG_FLOAT16 ? 10 : d == CG_BFLOAT16 ? 7 : d == CG_FLOAT32 ? 23 : d == CG_FLOAT64 ? 52 : d == CG_FP8E4M3 ? 3 : 2;
  uint64_t sign = 1ull << (w - 1), maxfin = d == CG_FP8E4M3 ? 0x7e : (((sign - 1) >> mb) - 1) << mb | ((1ull << mb) - 1);
  const uint64_t sp[] = {1, (1ull << mb) - 1, 1ull << mb, maxfin};
  const double c[] = {NAN, 0.0, -0.0, INFINITY, -INFINITY, 1, -1, 0.5, -0.5, 1.5, -2.5, 2, 3, 0.1, -7.75, 3.14159265358979, -1.5707963267948966,
                      100.25, 255.5, 256, -129, 300, 1000.5, 65504, 65520, 1e5, 2147483520.0, 2147483648.0, -2147483648.0,
                      -2147483904.0, 4294967296.0, 9223372036854775808.0, -9223372036854775808.0, 18446744073709551616.0, 1e30,
                      -1e30, 1e300, 1e-3, 1e-40, 1e-310};
  for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) add_val(&v, from_f(d, c[i]));
  for (size_t i = 0; i < 4; i++) add_val(&v, sp[i]), add_val(&v, sp[i] | sign);
  return v;
}

/* ---- the reference: the constant folder ------------------------------------------------- */

static uop *const_of(cg_dtype d, uint64_t b) {
  return is_float(d) ? uop_const_float(dt_of(d), to_f(d, b)) : uop_const_int(dt_of(d), to_i(d, b));
}

/* The folded value of op(out dtype) over constants, as out's bits; false if it did not
 * fold to a constant. */
static bool fold(int op, cg_dtype out, const cg_dtype *sd, const uint64_t *in, int n, uint64_t *res) {
  if (op == OP_BITCAST) { /* the definition: same bits (a bool is "not all zero") */
    *res = out == CG_BOOL ? in[0] != 0 : in[0] & mask(out);
    return true;
  }
  uop_pool_push();
  uop *s[3];
  for (int i = 0; i < n; i++) s[i] = const_of(sd[i], in[i]);
  uop *r = uop_simplify(uop_new(op, dt_of(out), s, n, arg_none()));
  bool ok = r->op == OP_CONST;
  if (ok) *res = is_float(out) ? from_f(out, r->arg.f) : (uint64_t)r->arg.i & mask(out);
  uop_pool_pop();
  return ok;
}

/* ---- comparing --------------------------------------------------------------------------- */

static bool transcendental(int op) { return op == OP_EXP2 || op == OP_LOG2 || op == OP_SIN; }

/* Position of a float's bits on the number line (sign-magnitude -> two's complement). */
static int64_t ordered(cg_dtype d, uint64_t b) {
  uint64_t sign = 1ull << (width(d) - 1);
  return b & sign ? -(int64_t)(b & (sign - 1)) : (int64_t)b;
}
static bool is_nan_bits(cg_dtype d, uint64_t b) { return is_float(d) && isnan(to_f(d, b)); }

static int ulp_hits; /* transcendental results that needed the 2-ulp allowance */

static bool agree(int op, cg_dtype d, uint64_t want, uint64_t got) {
  if (want == got) return true;
  if (!is_float(d)) return false;
  if (is_nan_bits(d, want) || is_nan_bits(d, got)) return is_nan_bits(d, want) && is_nan_bits(d, got);
  if (!transcendental(op) || isinf(to_f(d, want)) || isinf(to_f(d, got))) return false;
  int64_t diff = ordered(d, want) - ordered(d, got);
  if (diff >= -2 && diff <= 2) return ulp_hits++, true;
  return false;
}

static void show(char *s, size_t n, cg_dtype d, uint64_t b) {
  if (is_float(d)) snprintf(s, n, "%.17g (0x%llx)", to_f(d, b), (unsigned long long)b);
  else snprintf(s, n, "%lld", (long long)to_i(d, b));
}

/* ---- one group of single-op kernels over the same inputs --------------------------------- */

typedef struct {
  int op;
  cg_dtype out;
} job;

/* Which input operand k of an op with ns operands reads: in a group with a WHERE
 * condition (3 inputs: c, a, b), unary and binary ops skip the condition. */
static int src_of(int ns, int nsrc, int k) { return nsrc == 3 && ns < 3 ? k + 1 : k; }

static int jobs_nsrc(int op) { return op == OP_WHERE || op == OP_MULACC ? 3 : uop_table[op].nsrc == 2 ? 2 : 1; }

/* One kernel computing every job, built as the scheduler builds kernels (a SINK of STOREs
 * over numbered slots: outputs first, then the inputs) and run through the whole codegen
 * pipeline on device dev. res[j] gets job j's n results (bits). */
static bool run_kernel(const char *devname, int upcast, const job *jobs, int njobs, int nsrc, const cg_dtype *sd, uint64_t *const *in, int64_t n, uint64_t **res) {
  rt_device *dev = rt_get_device(devname);
  if (!dev) return false;
  uop_pool_push();
  uop *g[64 + 3], *st[64];
  int nb = njobs + nsrc;
  for (int i = 0; i < nb; i++) {
    int64_t arg[2] = {i, n};
    g[i] = uop_new0(OP_DEFINE_GLOBAL, dt_of(i < njobs ? jobs[i].out : sd[i - njobs]), arg_ints(arg, 2));
  }
  for (int j = 0; j < njobs; j++) {
    int ns = jobs_nsrc(jobs[j].op);
    uop *s[3];
    for (int k = 0; k < ns; k++) s[k] = g[njobs + src_of(ns, nsrc, k)];
    st[j] = uop_new2(OP_STORE, dt_void(), g[j], uop_new(jobs[j].op, dt_of(jobs[j].out), s, ns, arg_none()));
  }
  ckernel k = {.ast = uop_new(OP_SINK, dt_void(), st, njobs, arg_none()), .ren = renderer_find(dev->renderer)};
  if (upcast) k.opts[0] = (opt){OPT_UPCAST, 0, upcast}, k.nopts = 1, k.opts_given = true;
  snprintf(k.name, sizeof k.name, "E_alu_agree_%lld_%d", (long long)n, upcast);
  bool ok = k.ren && codegen_run(&k);
  rt_program *p = ok ? dev->compile(k.name, k.src) : NULL;
  ok = p != NULL;
  void *ptr[64 + 3] = {0};
  size_t bytes[64 + 3];
  for (int i = 0; i < nb && ok; i++) {
    cg_dtype d = i < njobs ? jobs[i].out : sd[i - njobs];
    size_t es = cg_dtype_size(d);
    bytes[i] = (size_t)n * es;
    unsigned char *h = calloc((size_t)n, es);
    ptr[i] = dev->alloc(bytes[i]);
    if (i >= njobs)
      for (int64_t e = 0; e < n; e++) memcpy(h + e * (int64_t)es, &in[i - njobs][e], es); /* little endian */
    ok = h && ptr[i] && dev->copyin(ptr[i], h, bytes[i]) == CG_OK;
    free(h);
  }
  ok = ok && dev->launch(p, ptr, NULL, k.lin.global) == CG_OK && dev->synchronize() == CG_OK;
  for (int j = 0; j < njobs && ok; j++) {
    size_t es = cg_dtype_size(jobs[j].out);
    unsigned char *h = malloc(bytes[j]);
    res[j] = calloc((size_t)n, 8);
    ok = h && res[j] && dev->copyout(h, ptr[j], bytes[j]) == CG_OK;
    for (int64_t e = 0; e < n && ok; e++) memcpy(&res[j][e], h + e * (int64_t)es, es);
    free(h);
  }
  for (int i = 0; i < nb; i++)
    if (ptr[i]) dev->free(ptr[i], bytes[i]);
  if (p) dev->program_free(p);
  ckernel_free(&k);
  uop_pool_pop();
  return ok;
}

/* The ops the C renderer spells as vector code (codegen/expand.c) whose kernels become
 * vector code (bool stores and loads keep comparisons and WHERE scalar); the others run
 * lane by lane with their scalar spelling, which the scalar runs check already. */
static bool has_vector_form(int op, cg_dtype out) {
  switch (op) {
  case OP_ADD: case OP_MUL: case OP_NEG: case OP_MAX: case OP_AND: case OP_OR: case OP_XOR: case OP_RECIPROCAL: return true;
  case OP_CAST: return out == CG_FLOAT32 || out == CG_INT32;
  default: return false;
  }
}

/* inputs: nsrc arrays of n values (bits) with dtypes sd; each job is op(srcs) into dtype
 * out, run on each device and against the folder. */
static void run_group(const char *what, const job *jobs, int njobs, int nsrc, const cg_dtype *sd, uint64_t *const *in, int64_t n) {
  uint64_t *res[NCFG][64] = {{0}};
  /* kernels run over n rounded up to a multiple of 8 (the inputs repeat) so UPCAST(0, 8)
   * applies; the first n results are checked */
  int64_t nr = (n + 7) / 8 * 8;
  uint64_t *pad[3];
  for (int s = 0; s < nsrc; s++) {
    pad[s] = malloc((size_t)nr * 8);
    for (int64_t i = 0; i < nr; i++) pad[s][i] = in[s][i % n];
  }
  /* the upcast runs only where vectors exist (float32, int32), over the ops with a vector
   * form, in a kernel of their own (a kernel is vector code only if all of it can be) */
  bool vec = sd[nsrc - 1] == CG_FLOAT32 || sd[nsrc - 1] == CG_INT32, ran[NCFG];
  for (int c = 0; c < NCFG; c++) {
    ran[c] = !cfgs[c].upcast || vec;
    if (!cfgs[c].upcast)
      CHECK(run_kernel(cfgs[c].dev, 0, jobs, njobs, nsrc, sd, pad, nr, res[c]), "%s on %s: the kernel did not run: %s", what, cfgs[c].name, cg_last_error());
    else if (vec) {
      job vj[64];
      int map[64], nv = 0;
      uint64_t *vr[64] = {0};
      for (int j = 0; j < njobs; j++)
        if (has_vector_form(jobs[j].op, jobs[j].out)) map[nv] = j, vj[nv++] = jobs[j];
      CHECK(!nv || run_kernel(cfgs[c].dev, cfgs[c].upcast, vj, nv, nsrc, sd, pad, nr, vr), "%s on %s: the kernel did not run: %s", what, cfgs[c].name, cg_last_error());
      for (int v = 0; v < nv; v++) res[c][map[v]] = vr[v];
    }
  }
  for (int s = 0; s < nsrc; s++) free(pad[s]);
  for (int j = 0; j < njobs; j++) {
    int op = jobs[j].op, bad[NCFG] = {0}, nofold = 0;
    cg_dtype od = jobs[j].out;
    int ns = jobs_nsrc(op);
    for (int64_t i = 0; i < n; i++) {
      uint64_t x[3];
      cg_dtype xd[3];
      for (int k = 0; k < ns; k++) {
        int s = src_of(ns, nsrc, k);
        x[k] = in[s][i], xd[k] = sd[s];
      }
      uint64_t want;
      if (!fold(op, od, xd, x, ns, &want)) {
        if (!nofold++) CHECK(0, "%s %s -> %s: the folder left it unfolded (element %lld)", what, op_name(op), cg_dtype_name(od), (long long)i);
        continue;
      }
      for (int dev = 0; dev < NCFG; dev++) {
        if (!res[dev][j]) continue;
        uint64_t got = res[dev][j][i];
        if (agree(op, od, want, got)) continue;
        bad[dev]++;
        if (nfail_print++ < 40) {
          char a[3][64], w[64], g[64];
          for (int k = 0; k < 3; k++) a[k][0] = 0;
          for (int k = 0; k < ns; k++) show(a[k], sizeof a[k], xd[k], x[k]);
          show(w, sizeof w, od, want), show(g, sizeof g, od, got);
          fprintf(stderr, "  %s(%s %s %s) %s->%s: fold %s, %s %s\n", op_name(op), a[0], a[1], a[2], cg_dtype_name(xd[ns == 3 ? 1 : 0]),
                  cg_dtype_name(od), w, cfgs[dev].name, g);
        }
      }
    }
    for (int dev = 0; dev < NCFG; dev++)
      if (ran[dev] && (!cfgs[dev].upcast || has_vector_form(op, od))) CHECK(res[dev][j] && bad[dev] == 0, "%s %s -> %s on %s: %d of %lld disagree with the folder", what, op_name(op), cg_dtype_name(od), cfgs[dev].name,
            bad[dev], (long long)n);
  }
  for (int dev = 0; dev < NCFG; dev++)
    for (int j = 0; j < njobs; j++) free(res[dev][j]);
}

/* Does op accept these operand dtypes (into out)? The op table's own check. */
static bool accepts(int op, cg_dtype out, const cg_dtype *sd, int n) {
  uop_pool_push();
  uop *s[3];
  for (int i = 0; i < n; i++) s[i] = uop_const_int(dt_of(sd[i]), 0);
  uarg none = arg_none();
  bool ok = uop_check(op, dt_of(out), s, n, &none) == NULL;
  uop_pool_pop();
  return ok;
}

static void test_dtype(cg_dtype d) {
  vals v = edge_values(d);
  char what[64];
  /* unary ops, binary ops over every pair, WHERE(c, x, y) with c alternating: one kernel */
  {
    int64_t n = (int64_t)v.n * v.n;
    uint64_t *c = malloc((size_t)n * 8), *a = malloc((size_t)n * 8), *b = malloc((size_t)n * 8);
    for (int64_t i = 0; i < n; i++) c[i] = (uint64_t)((i + i / v.n) & 1), a[i] = v.b[i / v.n], b[i] = v.b[i % v.n];
    job jobs[64];
    int nj = 0;
    /* unary ops, CAST and BITCAST to every dtype (over a: every value, n times) */
    const int un[] = {OP_EXP2, OP_LOG2, OP_SIN, OP_SQRT, OP_RECIPROCAL, OP_NEG, OP_TRUNC};
    for (size_t i = 0; i < sizeof un / sizeof un[0]; i++)
      if (accepts(un[i], d, &d, 1)) jobs[nj++] = (job){un[i], d};
    for (int t = 0; t < CG_NUM_DTYPES; t++) {
      if (t != (int)d && accepts(OP_CAST, (cg_dtype)t, &d, 1)) jobs[nj++] = (job){OP_CAST, (cg_dtype)t};
      if (t != (int)d && accepts(OP_BITCAST, (cg_dtype)t, &d, 1)) jobs[nj++] = (job){OP_BITCAST, (cg_dtype)t};
    }
    const int bin[] = {OP_ADD, OP_MUL, OP_IDIV, OP_MOD, OP_MAX, OP_CMPLT, OP_CMPNE, OP_CMPEQ, OP_XOR, OP_OR, OP_AND, OP_SHL, OP_SHR};
    cg_dtype dd[3] = {CG_BOOL, d, d};
    for (size_t i = 0; i < sizeof bin / sizeof bin[0]; i++) {
      cg_dtype out = op_has(bin[i], F_CMP) ? CG_BOOL : d;
      if (accepts(bin[i], out, dd + 1, 2)) jobs[nj++] = (job){bin[i], out};
    }
    if (accepts(OP_WHERE, d, dd, 3)) jobs[nj++] = (job){OP_WHERE, d};
    uint64_t *in[3] = {c, a, b};
    snprintf(what, sizeof what, "%s", cg_dtype_name(d));
    run_group(what, jobs, nj, 3, dd, in, n);
    free(c), free(a), free(b);
  }
  /* MULACC over triples of a subset (every value for small types) */
  {
    vals s = {0};
    for (int i = 0; i < v.n; i++)
      if (v.n <= 16 || i % 3 != 2) add_val(&s, v.b[i]);
    if (s.n > 24) s.n = 24;
    int64_t n = (int64_t)s.n * s.n * s.n;
    uint64_t *x = malloc((size_t)n * 8), *y = malloc((size_t)n * 8), *z = malloc((size_t)n * 8);
    for (int64_t i = 0; i < n; i++) x[i] = s.b[i / (s.n * s.n)], y[i] = s.b[(i / s.n) % s.n], z[i] = s.b[i % s.n];
    cg_dtype dd[3] = {d, d, d};
    job jobs[1] = {{OP_MULACC, d}};
    uint64_t *in[3] = {x, y, z};
    snprintf(what, sizeof what, "ternary %s", cg_dtype_name(d));
    if (accepts(OP_MULACC, d, dd, 3)) run_group(what, jobs, 1, 3, dd, in, n);
    free(x), free(y), free(z);
  }
}

/* ---- the tensor API on constants: folded before any kernel, must mean the same -------- */

/* Pieces (n elements in all) concatenated: one kernel for all of them (a kernel per
 * constant would be a C compile each). */
static bool read_cat(cg_tensor **pieces, int npieces, int n, cg_dtype d, uint64_t *out) {
  cg_tensor *t = cg_cat(pieces, npieces, 0);
  size_t es = cg_dtype_size(d);
  unsigned char *buf = calloc((size_t)n, es);
  bool ok = t && buf && cg_read(t, d, buf, (size_t)n * es) == CG_OK;
  for (int i = 0; i < n; i++) out[i] = 0, memcpy(&out[i], buf + (size_t)i * es, es);
  free(buf);
  return ok;
}

static void test_const_api(const char *dev) {
  cg_set_config("DEVICE", dev);
  cg_scope_begin();
  vals v = edge_values(CG_FLOAT32);
  int64_t one = 1;
  cg_dtype f = CG_FLOAT32;
  cg_tensor *p1[2 * MAXV], *p2[MAXV];
  uint64_t a[MAXV], b[MAXV];
  /* float -> int: cg_cast of a constant, and cg_full straight into the int dtype */
  for (int t = CG_BOOL; t <= CG_UINT64; t++) {
    for (int i = 0; i < v.n; i++) {
      p1[i] = cg_cast(cg_full(to_f(f, v.b[i]), f, &one, 1), (cg_dtype)t);
      p2[i] = cg_full(to_f(f, v.b[i]), (cg_dtype)t, &one, 1);
    }
    for (int i = 0; i < v.n; i++) p1[v.n + i] = p2[i];
    uint64_t ab[2 * MAXV];
    bool ok = read_cat(p1, 2 * v.n, 2 * v.n, (cg_dtype)t, ab);
    for (int i = 0; i < v.n; i++) a[i] = ab[i], b[i] = ab[v.n + i];
    CHECK(ok, "%s: %s", dev, cg_last_error());
    for (int i = 0; i < v.n && ok; i++) {
      uint64_t want = 0;
      fold(OP_CAST, (cg_dtype)t, &f, &v.b[i], 1, &want);
      CHECK(a[i] == want && b[i] == want, "%s: cast(full(%g, float32), %s) = %llu, full(%g, %s) = %llu, the CAST kernels give %llu", dev, to_f(f, v.b[i]),
            cg_dtype_name((cg_dtype)t), (unsigned long long)a[i], to_f(f, v.b[i]), cg_dtype_name((cg_dtype)t), (unsigned long long)b[i], (unsigned long long)want);
    }
  }
  /* add, mul, maximum of two constants, over pairs of every 5th value */
  for (int k = 0; k < 3; k++) {
    int np = 0, op = k == 0 ? OP_ADD : k == 1 ? OP_MUL : OP_MAX;
    cg_tensor *pp[MAXV * MAXV / 25 + 64];
    uint64_t in[MAXV * MAXV / 25 + 64][2], got[MAXV * MAXV / 25 + 64];
    for (int i = 0; i < v.n; i += 5)
      for (int j = 0; j < v.n; j += 5) {
        cg_tensor *x = cg_full(to_f(f, v.b[i]), f, &one, 1), *y = cg_full(to_f(f, v.b[j]), f, &one, 1);
        pp[np] = k == 0 ? cg_add(x, y) : k == 1 ? cg_mul(x, y) : cg_maximum(x, y);
        in[np][0] = v.b[i], in[np][1] = v.b[j], np++;
      }
    bool ok = read_cat(pp, np, np, f, got);
    CHECK(ok, "%s: %s", dev, cg_last_error());
    for (int i = 0; i < np && ok; i++) {
      uint64_t want = 0;
      cg_dtype ff[2] = {f, f};
      fold(op, f, ff, in[i], 2, &want);
      CHECK(agree(op, f, want, got[i]), "%s: %s(full(%g), full(%g)) = %g, the kernels give %g", dev, op_name(op), to_f(f, in[i][0]), to_f(f, in[i][1]), to_f(f, got[i]),
            to_f(f, want));
    }
  }
  /* a constant that its dtype cannot hold, against loaded values: a kernel reads it rounded
   * to float32 (float64: as is), as C reads its literal */
  const cg_dtype fd[] = {CG_FLOAT16, CG_BFLOAT16, CG_FLOAT32, CG_FLOAT64};
  const double cs[] = {0.1, 1.0 / 3, 1e-40, 65519.99};
  for (size_t di = 0; di < sizeof fd / sizeof fd[0]; di++) {
    cg_dtype d = fd[di];
    vals w = edge_values(d);
    unsigned char raw[MAXV * 8];
    for (int i = 0; i < w.n; i++) memcpy(raw + (size_t)i * cg_dtype_size(d), &w.b[i], cg_dtype_size(d));
    int64_t n = w.n;
    cg_tensor *x = cg_from_data(raw, d, &n, 1);
    for (size_t ci = 0; ci < sizeof cs / sizeof cs[0]; ci++) {
      int k = ci > 0; /* add 0.1, multiply by the others; a kernel each, since cg_cat
                         (PAD + ADD) turns -0 into +0 */
      cg_tensor *r = k ? cg_mul(x, cg_full(cs[ci], d, &one, 1)) : cg_add(x, cg_full(cs[ci], d, &one, 1));
      bool ok = cg_read(r, d, raw, (size_t)n * cg_dtype_size(d)) == CG_OK;
      CHECK(ok, "%s: %s", dev, cg_last_error());
      for (int i = 0; i < w.n && ok; i++) {
        uint64_t g = 0;
        memcpy(&g, raw + (size_t)i * cg_dtype_size(d), cg_dtype_size(d));
        double in[2] = {to_f(d, w.b[i]), d == CG_FLOAT64 ? cs[ci] : (float)cs[ci]}, res;
        alu_eval_float(k ? OP_MUL : OP_ADD, dt_of(d), in, 2, &res);
        CHECK(agree(OP_ADD, d, from_f(d, res), g), "%s: %s(%s %g, constant %.17g) = %g, want %g", dev, k ? "mul" : "add", cg_dtype_name(d), in[0], cs[ci], to_f(d, g), res);
      }
    }
  }
  cg_scope_end();
  cg_set_config("DEVICE", "CPU");
}

/* ---- MAX and NaN, against torch's meaning ------------------------------------------------ */

static double read1(cg_tensor *t) {
  float f = 0;
  if (!t || cg_read(t, CG_FLOAT32, &f, 4) != CG_OK) return -12345;
  return f;
}

static void test_max_nan(const char *dev) {
  cg_set_config("DEVICE", dev);
  cg_scope_begin();
  /* reductions: NaN anywhere, over sizes that take the unrolled and the plain paths */
  const int64_t sizes[] = {3, 8, 37, 1000};
  for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
    int64_t n = sizes[si];
    float *x = malloc((size_t)n * 4);
    for (int64_t pos = 0; pos < n; pos += n > 8 ? n / 7 : 1) {
      for (int64_t i = 0; i < n; i++) x[i] = (float)((i * 37) % 11) - 5.0f;
      x[pos] = NAN;
      cg_tensor *t = cg_from_data(x, CG_FLOAT32, &n, 1);
      double mx = read1(cg_max(t, NULL, 0, false)), mn = read1(cg_min(t, NULL, 0, false));
      CHECK(isnan(mx) && isnan(mn), "%s: max/min of %lld floats with NaN at %lld gave %g / %g, torch gives nan", dev, (long long)n, (long long)pos, mx, mn);
    }
    /* no NaN: the ordinary answer (the reference is plain C) */
    float ref = -INFINITY;
    for (int64_t i = 0; i < n; i++) x[i] = (float)((i * 37) % 11) - 5.0f, ref = x[i] > ref ? x[i] : ref;
    cg_tensor *t = cg_from_data(x, CG_FLOAT32, &n, 1);
    CHECK(read1(cg_max(t, NULL, 0, false)) == ref, "%s: max of %lld floats", dev, (long long)n);
    free(x);
  }
  /* a reduction along one axis of a matrix: NaN only in row 1 */
  {
    float m[4 * 9];
    for (int i = 0; i < 36; i++) m[i] = (float)(i % 7);
    m[9 + 4] = NAN;
    int64_t shp[2] = {4, 9};
    int ax = 1;
    float r[4];
    cg_tensor *t = cg_from_data(m, CG_FLOAT32, shp, 2);
    CHECK(cg_read(cg_max(t, &ax, 1, false), CG_FLOAT32, r, sizeof r) == CG_OK, "%s", cg_last_error());
    CHECK(!isnan(r[0]) && isnan(r[1]) && !isnan(r[2]) && !isnan(r[3]), "%s: row max with NaN in row 1: %g %g %g %g", dev, r[0], r[1], r[2], r[3]);
  }
  /* elementwise maximum/minimum: NaN from either side; ±0 does not depend on the order */
  {
    float a[6] = {1, NAN, NAN, -0.0f, 0.0f, -INFINITY}, b[6] = {NAN, 1, NAN, 0.0f, -0.0f, -INFINITY};
    int64_t n = 6;
    float mx[6], mn[6];
    cg_tensor *ta = cg_from_data(a, CG_FLOAT32, &n, 1), *tb = cg_from_data(b, CG_FLOAT32, &n, 1);
    CHECK(cg_read(cg_maximum(ta, tb), CG_FLOAT32, mx, sizeof mx) == CG_OK, "%s", cg_last_error());
    CHECK(cg_read(cg_minimum(ta, tb), CG_FLOAT32, mn, sizeof mn) == CG_OK, "%s", cg_last_error());
    for (int i = 0; i < 3; i++) CHECK(isnan(mx[i]) && isnan(mn[i]), "%s: maximum/minimum(%g, %g) gave %g / %g, torch gives nan", dev, a[i], b[i], mx[i], mn[i]);
    CHECK(mx[3] == 0 && !signbit(mx[3]) && mx[4] == 0 && !signbit(mx[4]), "%s: maximum(-0, +0) and (+0, -0) must both be +0: %g %g", dev, mx[3], mx[4]);
    CHECK(mn[3] == 0 && signbit(mn[3]) && mn[4] == 0 && signbit(mn[4]), "%s: minimum(-0, +0) and (+0, -0) must both be -0: %g %g", dev, mn[3], mn[4]);
    CHECK(mx[5] == -INFINITY && mn[5] == -INFINITY, "%s: maximum/minimum(-inf, -inf)", dev);
  }
  cg_scope_end();
  cg_set_config("DEVICE", "CPU");
}

int main(void) {
  for (int d = 0; d < CG_NUM_DTYPES; d++) test_dtype((cg_dtype)d);
  if (ulp_hits) printf("transcendentals: %d results 1-2 ulps off the folder (allowed)\n", ulp_hits);
  test_const_api("CPU");
  test_const_api("INTERP");
  test_max_nan("CPU");
  test_max_nan("INTERP");
  return test_summary();
}
