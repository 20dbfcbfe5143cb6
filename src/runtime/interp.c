/* The INTERP device: runs the interpreter renderer's text (renderer/render_interp.c) one
 * instruction at a time, with the constant folder's arithmetic (uop/alu.c) — so it is
 * the executable form of the op table's semantics, and the check on every other backend.
 * Host memory (the CPU device's allocator); one thread; slow by design. Select it with
 * DEVICE=INTERP. */
#include "device.h"
#include "core/config.h"
#include "core/error.h"
#include "uop/uop.h"
#include <inttypes.h>
#include <pthread.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LANES 16

typedef struct {
  int op, scalar, lanes, nsrc, src[LANES];
  int64_t a0, a1;
  double f;         /* a float CONST */
  int jump;         /* RANGE: the line after its END; END: its RANGE */
} ins;

typedef union { int64_t i; double f; } val;

typedef struct {
  ins *code;
  int n, nbufs;
} program;

/* The values of a run: one block per thread, grown when a program is compiled, so that a
 * launch on the compiling thread never allocates (a launch failing for want of memory in
 * the middle of a schedule would leave half an update behind). Freed at thread exit. */
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static _Thread_local val *scratch;
static _Thread_local size_t scratch_n;
static void scratch_free(void *p) { free(p); }
static void scratch_init(void) { pthread_key_create(&scratch_key, scratch_free); }
static val *scratch_reserve(size_t n) {
  if (n <= scratch_n) return scratch;
  pthread_once(&scratch_once, scratch_init);
  val *v = cg_realloc(scratch, n * sizeof(val));
  if (!v) return NULL;
  pthread_setspecific(scratch_key, v);
  scratch = v, scratch_n = n;
  return v;
}

static dtype dt_from(int scalar) { return (dtype){.scalar = (uint8_t)scalar, .count = 1}; }

static void program_destroy(program *p) {
  if (p) free(p->code);
  free(p);
}

static program *refuse(program *p, const char *name, const char *why) {
  int line = p->n;
  program_destroy(p);
  return cg_fail_null(CG_ERR_RUNTIME, "INTERP compile '%s': %s at line %d", name, why, line);
}

static program *parse(const char *name, const char *src) {
  char tag[32], nm[128];
  int nbufs, nout, used = 0;
  long long global;
  if (sscanf(src, "%31s %*d %127s %d %d %lld%n", tag, nm, &nbufs, &nout, &global, &used) != 5 || strcmp(tag, "cgrad-interp"))
    return cg_fail_null(CG_ERR_RUNTIME, "INTERP compile '%s': not interpreter code", name);
  program *p = cg_calloc(1, sizeof *p);
  if (!p) return cg_fail_null(CG_ERR_NOMEM, "out of memory");
  p->nbufs = nbufs;
  int cap = 0, stack[64], depth = 0;
  const char *s = src + used;
  while (*s) {
    while (*s == '\n' || *s == ' ') s++;
    if (!*s) break;
    if (p->n == cap) {
      cap = cap ? 2 * cap : 256;
      ins *c = cg_realloc(p->code, sizeof(ins) * (size_t)cap);
      if (!c) return program_destroy(p), cg_fail_null(CG_ERR_NOMEM, "out of memory");
      p->code = c;
    }
    ins *x = &p->code[p->n];
    char a0[64];
    int k = 0;
    if (sscanf(s, "%d %d %d %63s %" SCNd64 " %d%n", &x->op, &x->scalar, &x->lanes, a0, &x->a1, &x->nsrc, &k) != 6 || x->op < 0 || x->op >= OP_COUNT ||
        x->nsrc < 0 || x->nsrc > LANES || x->lanes < 1 || x->lanes > LANES)
      return refuse(p, name, "a malformed instruction");
    s += k;
    for (int i = 0; i < x->nsrc; i++) {
      if (sscanf(s, "%d%n", &x->src[i], &k) != 1) return refuse(p, name, "a missing source");
      s += k;
    }
    for (int i = 0; i < x->nsrc; i++) {
      if (x->src[i] < 0 || x->src[i] >= p->n) return refuse(p, name, "a source that is not an earlier line");
      /* an ASSIGN's value is its accumulator's (also when its loop ran no trip) */
      if (p->code[x->src[i]].op == OP_ASSIGN) x->src[i] = p->code[x->src[i]].src[0];
    }
    /* a float constant is read as C reads its literal: rounded to float32 (float64: as is) */
    if (x->op == OP_CONST && dt_is_float(dt_from(x->scalar))) x->f = x->scalar == CG_FLOAT64 ? strtod(a0, NULL) : (float)strtod(a0, NULL);
    else x->a0 = strtoll(a0, NULL, 10);
    if (x->op == OP_RANGE) {
      if (depth == 64) return refuse(p, name, "loops nested more than 64 deep");
      stack[depth++] = p->n;
    }
    if (x->op == OP_END) {
      if (!depth) return refuse(p, name, "an END without a RANGE");
      int r = stack[--depth];
      x->jump = r;
      p->code[r].jump = p->n + 1;
    }
    p->n++;
  }
  if (!scratch_reserve((size_t)(p->n ? p->n : 1) * LANES)) return program_destroy(p), NULL;
  return p;
}

/* A value: ints (and bools) as int64, floats as double holding a value of their dtype;
 * every instruction has LANES of them (a scalar uses lane 0). */
static double load_f(dtype d, const void *p, int64_t i) {
  switch (d.scalar) {
  case CG_FLOAT16: return cg_f16_to_f32(((const uint16_t *)p)[i]);
  case CG_BFLOAT16: return cg_bf16_to_f32(((const uint16_t *)p)[i]);
  case CG_FP8E4M3: return cg_fp8e4m3_to_f32(((const uint8_t *)p)[i]);
  case CG_FP8E5M2: return cg_fp8e5m2_to_f32(((const uint8_t *)p)[i]);
  case CG_FLOAT32: return ((const float *)p)[i];
  default: return ((const double *)p)[i];
  }
}
static int64_t load_i(dtype d, const void *p, int64_t i) {
  switch (d.scalar) {
  case CG_BOOL: return ((const uint8_t *)p)[i] != 0;
  case CG_INT8: return ((const int8_t *)p)[i];
  case CG_INT16: return ((const int16_t *)p)[i];
  case CG_INT32: return ((const int32_t *)p)[i];
  case CG_UINT8: return ((const uint8_t *)p)[i];
  case CG_UINT16: return ((const uint16_t *)p)[i];
  case CG_UINT32: return ((const uint32_t *)p)[i];
  default: return ((const int64_t *)p)[i];
  }
}
static void store(dtype d, void *p, int64_t i, val v) {
  switch (d.scalar) {
  case CG_BOOL: ((uint8_t *)p)[i] = v.i != 0; break;
  case CG_INT8: case CG_UINT8: ((uint8_t *)p)[i] = (uint8_t)v.i; break;
  case CG_INT16: case CG_UINT16: ((uint16_t *)p)[i] = (uint16_t)v.i; break;
  case CG_INT32: case CG_UINT32: ((uint32_t *)p)[i] = (uint32_t)v.i; break;
  case CG_INT64: case CG_UINT64: ((uint64_t *)p)[i] = (uint64_t)v.i; break;
  case CG_FLOAT16: ((uint16_t *)p)[i] = cg_f32_to_f16((float)v.f); break;
  case CG_BFLOAT16: ((uint16_t *)p)[i] = cg_f32_to_bf16((float)v.f); break;
  case CG_FP8E4M3: ((uint8_t *)p)[i] = cg_f32_to_fp8e4m3((float)v.f); break;
  case CG_FP8E5M2: ((uint8_t *)p)[i] = cg_f32_to_fp8e5m2((float)v.f); break;
  case CG_FLOAT32: ((float *)p)[i] = (float)v.f; break;
  default: ((double *)p)[i] = v.f; break;
  }
}

/* The bits of a value of dtype d, for BITCAST. */
static uint64_t bits_of(dtype d, val v) {
  uint64_t b = 0;
  switch (d.scalar) {
  case CG_FLOAT32: { float f = (float)v.f; memcpy(&b, &f, 4); break; }
  case CG_FLOAT64: memcpy(&b, &v.f, 8); break;
  case CG_FLOAT16: b = cg_f32_to_f16((float)v.f); break;
  case CG_BFLOAT16: b = cg_f32_to_bf16((float)v.f); break;
  case CG_FP8E4M3: b = cg_f32_to_fp8e4m3((float)v.f); break;
  case CG_FP8E5M2: b = cg_f32_to_fp8e5m2((float)v.f); break;
  default: b = (uint64_t)v.i; break;
  }
  return b;
}
static val from_bits(dtype d, uint64_t b) {
  val v;
  switch (d.scalar) {
  case CG_FLOAT32: { uint32_t u = (uint32_t)b; float f; memcpy(&f, &u, 4); v.f = f; break; }
  case CG_FLOAT64: memcpy(&v.f, &b, 8); break;
  case CG_FLOAT16: v.f = cg_f16_to_f32((uint16_t)b); break;
  case CG_BFLOAT16: v.f = cg_bf16_to_f32((uint16_t)b); break;
  case CG_FP8E4M3: v.f = cg_fp8e4m3_to_f32((uint8_t)b); break;
  case CG_FP8E5M2: v.f = cg_fp8e5m2_to_f32((uint8_t)b); break;
  default: v.i = alu_wrap(d, (int64_t)b); break;
  }
  return v;
}

/* lane k of an operand: a scalar reads lane 0 */
#define LANE(x, k) (&v[(size_t)(x) * LANES + (p->code[x].lanes > 1 ? (k) : 0)])

static bool alu_lane(program *p, val *v, ins *x, int k, val *out) {
  dtype d = dt_from(x->scalar);
  int64_t xi[3];
  double xf[3];
  /* operands are read in their own dtype (comparisons, WHERE's condition) */
  dtype od = dt_from(p->code[x->src[x->op == OP_WHERE ? 1 : 0]].scalar);
  for (int i = 0; i < x->nsrc; i++) {
    dtype sd = dt_from(p->code[x->src[i]].scalar);
    val *a = LANE(x->src[i], k);
    xi[i] = a->i;
    xf[i] = dt_is_float(sd) ? a->f : (double)a->i;
  }
  if (x->op == OP_CAST) {
    dtype sd = dt_from(p->code[x->src[0]].scalar);
    val *a = LANE(x->src[0], k);
    if (dt_is_float(d)) out->f = dt_is_float(sd) ? alu_round(d, a->f) : alu_int_to_float(d, sd, a->i);
    else if (dt_is_float(sd)) out->i = alu_float_to_int(d, a->f);
    else out->i = alu_wrap(d, a->i);
    return true;
  }
  if (x->op == OP_BITCAST) {
    *out = from_bits(d, bits_of(dt_from(p->code[x->src[0]].scalar), *LANE(x->src[0], k)));
    return true;
  }
  if (dt_is_float(od)) {
    double r;
    if (!alu_eval_float(x->op, op_has(x->op, F_CMP) ? od : d, xf, x->nsrc, &r)) return false;
    if (op_has(x->op, F_CMP)) out->i = r != 0;
    else out->f = r;
    return true;
  }
  return alu_eval_int(x->op, op_has(x->op, F_CMP) ? od : d, xi, x->nsrc, &out->i);
}

/* budget: at most this many instructions in one launch (INTERP_MAX_STEPS; 0, the default,
 * is no bound). The interpreter runs ~10^7 instructions a second, so a small model with one
 * large contraction can take minutes; a fuzzer or a server running untrusted models sets a
 * bound and gets an error instead. */
static cg_status run(program *p, void **bufs, const int64_t *vars, int64_t lo, int64_t hi, uint64_t budget) {
  val *v = scratch_reserve((size_t)(p->n ? p->n : 1) * LANES);
  if (!v) return cg_fail(CG_ERR_NOMEM, "INTERP: out of memory for the values of %d instructions", p->n);
  memset(v, 0, sizeof(val) * (size_t)(p->n ? p->n : 1) * LANES);
  uint64_t steps = 0;
  for (int pc = 0; pc < p->n;) {
    if (budget && ++steps > budget)
      return cg_fail(CG_ERR_RUNTIME, "INTERP: the kernel ran past %llu instructions (INTERP_MAX_STEPS)", (unsigned long long)budget);
    ins *x = &p->code[pc];
    dtype d = dt_from(x->scalar);
    val *me = &v[(size_t)pc * LANES];
    switch (x->op) {
    case OP_CONST:
      if (dt_is_float(d)) me->f = x->f;
      else me->i = x->a0;
      break;
    case OP_DEFINE_GLOBAL: me->i = x->a0; break;
    case OP_DEFINE_VAR: /* ints as int64, floats as a double's bits (runtime/var.h) */
      if (!vars) return cg_fail(CG_ERR_RUNTIME, "INTERP: the kernel reads var %lld and the launch gave none", (long long)x->a0);
      if (dt_is_float(d)) {
        double f;
        memcpy(&f, &vars[x->a0], sizeof f);
        me->f = alu_round(d, f);
      } else me->i = alu_wrap(d, vars[x->a0]);
      break;
    case OP_RANGE: {
      int64_t start = x->a1 == 2 ? lo : 0, end = x->a1 == 2 ? hi : LANE(x->src[0], 0)->i;
      me->i = start;
      if (start >= end) {
        pc = x->jump;
        continue;
      }
      break;
    }
    case OP_END: {
      ins *r = &p->code[x->jump];
      int64_t end = r->a1 == 2 ? hi : LANE(r->src[0], 0)->i;
      if (++v[(size_t)x->jump * LANES].i < end) {
        pc = x->jump + 1;
        continue;
      }
      break;
    }
    case OP_DEFINE_ACC:
      for (int k = 0; k < x->lanes; k++) me[k] = *LANE(x->src[0], k);
      break;
    case OP_ASSIGN:
      for (int k = 0; k < x->lanes; k++) v[(size_t)x->src[0] * LANES + k] = *LANE(x->src[1], k);
      break;
    case OP_INDEX: me->i = LANE(x->src[1], 0)->i; break; /* the element; a gate is read by the LOAD */
    case OP_VECTORIZE:
      for (int k = 0; k < x->lanes; k++) me[k] = *LANE(x->src[k], 0);
      break;
    case OP_GEP: *me = *LANE(x->src[0], x->a0); break;
    case OP_LOAD: {
      ins *ix = &p->code[x->src[0]];
      ins *b = &p->code[ix->src[0]];
      dtype bd = dt_from(b->scalar);
      int64_t at = LANE(ix->src[1], 0)->i;
      bool gather = p->code[ix->src[1]].lanes > 1; /* a vector of offsets: lane k at offset k */
      for (int k = 0; k < x->lanes; k++) {
        if (gather) at = LANE(ix->src[1], k)->i - k;
        bool on = ix->nsrc < 3 || LANE(ix->src[2], k)->i; /* a gate per lane (PADTO's tail) */
        /* a load hoisted out of a loop that runs no trip may point past an empty buffer:
         * its value is never used */
        if (on && (at + k < 0 || at + k >= b->a1)) me[k].i = 0, me[k].f = 0;
        else if (!on) me[k] = *LANE(x->src[1], k);
        else if (dt_is_float(bd)) me[k].f = load_f(bd, bufs[b->a0], at + k);
        else me[k].i = load_i(bd, bufs[b->a0], at + k);
      }
      break;
    }
    case OP_STORE: {
      ins *ix = &p->code[x->src[0]];
      ins *b = &p->code[ix->src[0]];
      int64_t at = LANE(ix->src[1], 0)->i;
      bool scatter = p->code[ix->src[1]].lanes > 1; /* a vector of offsets: lane k at offset k */
      for (int k = 0; k < ix->lanes; k++) {
        if (scatter) at = LANE(ix->src[1], k)->i - k;
        if (ix->nsrc > 2 && !LANE(ix->src[2], k)->i) continue; /* masked off */
        if (at + k < 0 || at + k >= b->a1)
          return cg_fail(CG_ERR_RUNTIME, "INTERP: a store at element %lld of a buffer of %lld", (long long)(at + k), (long long)b->a1);
        store(dt_from(b->scalar), bufs[b->a0], at + k, *LANE(x->src[1], k));
      }
      break;
    }
    default:
      for (int k = 0; k < x->lanes; k++)
        if (!op_is_alu(x->op) || !alu_lane(p, v, x, k, &me[k])) return cg_fail(CG_ERR_RUNTIME, "INTERP: cannot run a %s", op_name(x->op));
    }
    pc++;
  }
  return CG_OK;
}

static rt_program *interp_compile(const char *name, const char *source) {
  program *code = parse(name, source);
  if (!code) return NULL;
  rt_program *p = cg_calloc(1, sizeof *p);
  char *nm = cg_strdup(name);
  if (!p || !nm) {
    free(p), free(nm), program_destroy(code);
    return cg_fail_null(CG_ERR_NOMEM, "out of memory");
  }
  p->dev = &rt_interp_device, p->name = nm, p->fn = code, p->refs = 1;
  __atomic_fetch_add(&rt_stats_mut()->compiled, 1, __ATOMIC_RELAXED); /* read without the lock by realize */
  return p;
}

static void interp_program_free(rt_program *p) {
  if (!p || --p->refs > 0) return;
  program_destroy(p->fn);
  free(p->name);
  free(p);
}

static cg_status interp_launch(rt_program *p, void **bufs, const int64_t *vars, int64_t global_size) {
  if (!p || p->dev != &rt_interp_device) return cg_fail(CG_ERR_INVALID, "INTERP launch: expected an INTERP program");
  __atomic_fetch_add(&rt_stats_mut()->launches, 1, __ATOMIC_RELAXED);
  long budget = cfg_int("INTERP_MAX_STEPS", 0);
  return run(p->fn, bufs, vars, 0, global_size, budget > 0 ? (uint64_t)budget : 0);
}

static cg_status interp_synchronize(void) { return CG_OK; }
/* host memory: the CPU device's */
static void *interp_alloc(size_t size) { return rt_cpu_device.alloc(size); }
static void interp_free(void *ptr, size_t size) { rt_cpu_device.free(ptr, size); }
static cg_status interp_copy(void *dst, const void *src, size_t size) { return rt_cpu_device.copyin(dst, src, size); }

rt_device rt_interp_device = {
    .name = "INTERP",
    .renderer = "interp",
    .alloc = interp_alloc,
    .free = interp_free,
    .copyin = interp_copy,
    .copyout = interp_copy,
    .compile = interp_compile,
    .program_free = interp_program_free,
    .launch = interp_launch,
    .synchronize = interp_synchronize,
};
