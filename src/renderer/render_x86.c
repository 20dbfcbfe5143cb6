/* The x86-64 renderer: a linear program (codegen.h) becomes AVX-512 machine code with the
 * CPU kernel ABI (runtime/device.h), no compiler involved:
 *
 *   check     every instruction's op and dtype is one this file emits; else the kernel is
 *             refused with the reason and its C source is what gets compiled (never wrong
 *             code)
 *   liveness  each value's interval [def, last use]; a value read inside a loop it was
 *             defined outside lives to that loop's END (it is read again next trip); an
 *             ASSIGN is its accumulator's storage; a float MUL is fused into the ADD
 *             that reads it where contract.c says (the C backend spells the same fmas)
 *   regalloc  linear scan (Poletto & Sarkar): integer scalars in 9 general registers,
 *             floats and vectors in zmm6..zmm31; when none is free the interval ending
 *             last lives in a 64-byte stack slot for its whole life
 *   emit      one instruction sequence per op into rax / zmm0 (scratch), then to the
 *             value's home; loops are rotated (test at the bottom)
 *
 * Vectors of 2..16 lanes of float32 / int32 / bool live in zmm registers (lanes past the
 * width are don't-care; loads and stores touch only the width's lanes, through a mask);
 * a bool vector is an int32 mask (-1 / 0), as in the C renderer. Scalar floats live in
 * lane 0 of a zmm register. Every op means what ops.def says: MAX propagates NaN and puts
 * +0 over -0, float->int casts saturate with NaN -> 0, integer division by 0 gives 0.
 * EXP2 and LOG2 (float32) are polynomials after an exact range reduction (vscalefps,
 * vgetexp/vgetmant); tests/renderer/test_x86.c measures their error against libm.
 *
 * The output is text: "x86-64 N bytes" and the bytes in hex (the x86 device maps them
 * executable), then, when asked for (tiering) or when the kernel is refused, "#c" and the
 * C renderer's source for the same kernel. */
#include "render.h"
#include "vmath.h"
#include "core/config.h"
#include "runtime/cpu_features.h"
#include "runtime/x86_asm.h"
#include "uop/uopset.h"
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* ---- what is supported -------------------------------------------------------------- */

static bool sc_ok(int s) { return s == CG_BOOL || s == CG_INT32 || s == CG_INT64 || s == CG_FLOAT32 || s == CG_FLOAT64; }
static bool vec_ok(dtype d) { return d.scalar == CG_FLOAT32 || d.scalar == CG_INT32 || d.scalar == CG_BOOL; }

/* A value of d lives in a general register (int and bool scalars) or a zmm (the rest). */
static bool is_g(dtype d) { return d.count <= 1 && !dt_is_float(d); }
static bool is_f64(dtype d) { return d.scalar == CG_FLOAT64; }

/* NULL if l can be emitted, else why not. */
static const char *check(const linear *l, char *why, size_t n) {
  for (int i = 0; i < l->n; i++) {
    uop *u = l->ins[i];
    dtype d = u->dt;
    for (uint32_t s = 0; s <= u->nsrc; s++) {
      dtype t = s < u->nsrc ? u->src[s]->dt : d;
      if (dt_is_void(t) || t.addr) continue;
      if (!sc_ok(t.scalar) || (t.count > 1 && !vec_ok(t)) || t.count > 16) {
        if (t.count > 1) snprintf(why, n, "%s of dtype %s x%d", op_name(u->op), dt_name(t), t.count);
        else snprintf(why, n, "%s of dtype %s", op_name(u->op), dt_name(t));
        return why;
      }
    }
    switch (u->op) {
    case OP_RANGE: case OP_END: case OP_DEFINE_ACC: case OP_ASSIGN: case OP_INDEX: case OP_VECTORIZE: case OP_GEP:
    case OP_ADD: case OP_MUL: case OP_MAX: case OP_NEG: case OP_CMPLT: case OP_CMPNE: case OP_CMPEQ: case OP_WHERE:
    case OP_XOR: case OP_OR: case OP_AND: case OP_SQRT: case OP_RECIPROCAL: case OP_TRUNC: case OP_MULACC: case OP_CAST:
      break;
    case OP_LOAD: case OP_STORE: {
      uop *ix = u->src[0];
      dtype b = dt_base(ix->dt);
      if (b.scalar == CG_BOOL && b.count > 1) return snprintf(why, n, "a bool vector %s", op_name(u->op)), why;
      if (ix->src[1]->dt.count > 1 && b.scalar == CG_BOOL) return snprintf(why, n, "a bool gather"), why;
      break;
    }
    case OP_IDIV: case OP_MOD: case OP_SHL: case OP_SHR:
      if (d.count > 1 && (u->op == OP_IDIV || u->op == OP_MOD)) return snprintf(why, n, "vector %s", op_name(u->op)), why;
      break;
    case OP_EXP2: case OP_LOG2:
      if (d.scalar != CG_FLOAT32) return snprintf(why, n, "%s of %s", op_name(u->op), dt_name(d)), why;
      break;
    case OP_BITCAST:
      if (dt_scalar_size(d) != dt_scalar_size(u->src[0]->dt) || dt_is_bool(d) || dt_is_bool(u->src[0]->dt)) return snprintf(why, n, "BITCAST %s", dt_name(d)), why;
      break;
    default: snprintf(why, n, "op %s", op_name(u->op)); return why;
    }
  }
  return NULL;
}

/* ---- the program state ---------------------------------------------------------------- */

enum { LOC_NONE, LOC_REG, LOC_STACK };
typedef struct { int8_t kind, reg; int32_t off; } loc;

/* frame: [0] saved rsp, [8] lo, [16] hi, [64, 128) lane scratch, spill slots from 128 */
enum { F_SAVE = 0, F_LO = 8, F_HI = 16, F_TMP = 64, F_SPILL = 128 };

static const int greg[] = {RBX, RBP, R8, R9, R10, R12, R13, R14, R15};
#define NGREG ((int)(sizeof greg / sizeof greg[0]))
#define VREG0 6 /* zmm0..5 scratch */

typedef struct {
  const linear *l;
  xasm a;
  int *def;        /* instruction -> the def it stands for (itself; an ASSIGN its acc) */
  int *end;        /* def -> its interval's end */
  loc *at;         /* def -> home */
  int *uses;       /* def -> readers */
  bool *fused;     /* MUL emitted inside its ADD */
  int *user;       /* def -> its last reader */
  double *weight;  /* def -> its reads, each weighted 8^(loops around it): what a spill costs */
  int *srcoff, *srcdef; /* instruction k's source s read def srcdef[srcoff[k] + s] (-1 immediate) */
  int *loop_end;   /* RANGE -> its END */
  uopset cur;      /* uop -> def + 1 (latest appearance) */
  int nspill;
  int tmp_holds;   /* the def whose vector is in the lane scratch, -1 none */
  int r11_slot;    /* the buffer whose address r11 holds (within straight-line code), -1 none */
  int open_loops[64], nopen; /* liveness: the loops around the instruction (per kernel: threads render at once) */
  bool nomem;
} xr;

static int def_of(xr *x, uop *u) {
  uintptr_t v = (uintptr_t)uopset_get(&x->cur, u);
  return v ? (int)v - 1 : -1;
}

/* ---- liveness ------------------------------------------------------------------------------ */


static void use(xr *x, uop *u, int at) {
  int d = def_of(x, u);
  if (d < 0) return; /* an immediate */
  x->weight[d] += ldexp(1.0, 3 * (x->nopen < 8 ? x->nopen : 8));
  int p = at;
  for (int k = 0; k < x->nopen; k++) /* outermost loop around the use that the def is not in */
    if (x->open_loops[k] > d) {
      p = x->loop_end[x->open_loops[k]];
      break;
    }
  if (p > x->end[d]) x->end[d] = p;
}

static bool fusable_mul(xr *x, uop *u, int at) {
  (void)at;
  if (u->op != OP_MUL || !dt_is_float(u->dt)) return false;
  int d = def_of(x, u);
  return d >= 0 && x->fused[d];
}

static void liveness(xr *x) {
  const linear *l = x->l;
  int stack[64], ns = 0;
  for (int i = 0; i < l->n; i++) {
    if (l->ins[i]->op == OP_RANGE && ns < 64) stack[ns++] = i;
    if (l->ins[i]->op == OP_END && ns) x->loop_end[stack[--ns]] = i;
  }
  /* uses per instruction (for fusion: a MUL read once, by an ADD right after it in the same block) */
  uopset_free(&x->cur);
  x->cur = (uopset){0};
  for (int i = 0; i < l->n; i++) {
    uop *u = l->ins[i];
    for (uint32_t s = 0; s < u->nsrc; s++) {
      int d = def_of(x, u->src[s]);
      x->srcdef[x->srcoff[i] + (int)s] = d;
      if (d >= 0) x->uses[d]++, x->user[d] = i;
    }
    x->def[i] = i;
    if (u->op == OP_ASSIGN) x->def[i] = def_of(x, u->src[0]);
    /* acc = acc op v (ADD, MUL, MAX of vectors / floats) read once, by the ASSIGN to that
     * accumulator, with no other read of the accumulator in between: computed in place */
    if ((u->op == OP_ADD || u->op == OP_MUL || u->op == OP_MAX) && !is_g(u->dt) && !cfg_int("X86_NOINPLACE", 0))
      for (uint32_t s = 0; s < 2 && x->def[i] == i; s++) {
        int acc = x->srcdef[x->srcoff[i] + (int)s];
        if (acc >= 0 && l->ins[acc]->op == OP_DEFINE_ACC) x->def[i] = -2 - acc; /* a candidate, settled below */
      }
    if (x->def[i] <= -2) {
      if (!uopset_put(&x->cur, u, (void *)(uintptr_t)(i + 1))) x->nomem = true;
    } else if (!uopset_put(&x->cur, u, (void *)(uintptr_t)(x->def[i] + 1))) x->nomem = true;
  }
  for (int i = 0; i < l->n; i++) {
    if (x->def[i] > -2) continue;
    int acc = -2 - x->def[i], j = x->user[i];
    bool ok = x->uses[i] == 1 && l->ins[j]->op == OP_ASSIGN && x->def[j] == acc;
    for (int k = i + 1; k < j && ok; k++) {
      uop *v = l->ins[k];
      ok = v->op != OP_RANGE && v->op != OP_END;
      for (uint32_t s = 0; s < v->nsrc && ok; s++) ok = x->srcdef[x->srcoff[k] + (int)s] != acc;
    }
    x->def[i] = ok ? acc : i;
  }
  uopset_free(&x->cur);
  x->cur = (uopset){0};
  bool *pairs = render_fma_pairs(l);
  if (!pairs) x->nomem = true;
  for (int i = 0; i < l->n; i++) {
    uop *u = l->ins[i];
    if (pairs && pairs[i]) x->fused[i] = true; /* contract.c: the C backend fuses the same pairs */
    /* a scalar load read only by a broadcast right after it: one vbroadcastss from memory */
    if (u->op == OP_VECTORIZE && !cfg_int("X86_NOBLOAD", 0)) {
      bool same = true;
      for (uint32_t s = 1; s < u->nsrc; s++) same &= u->src[s] == u->src[0];
      int d = def_of(x, u->src[0]);
      uop *ld = d >= 0 ? l->ins[d] : NULL;
      if (same && ld && ld->op == OP_LOAD && ld->src[0]->nsrc == 2 && x->uses[d] == (int)u->nsrc && x->user[d] == i && ld->dt.count == 1 && dt_scalar_size(ld->dt) == 4 &&
          !dt_is_bool(ld->dt) && ld->src[0]->src[1]->dt.count == 1 && dt_eq(dt_scalar_of(u->dt), ld->dt)) {
        bool plain = true;
        for (int k = d + 1; k < i && plain; k++) plain = l->ins[k]->op != OP_RANGE && l->ins[k]->op != OP_END && l->ins[k]->op != OP_STORE;
        if (plain) x->fused[d] = true;
      }
    }
    if (!uopset_put(&x->cur, u, (void *)(uintptr_t)(x->def[i] + 1))) x->nomem = true;
  }
  free(pairs);
  uopset_free(&x->cur);
  x->cur = (uopset){0};
  x->nopen = 0;
  for (int i = 0; i < l->n; i++) {
    uop *u = l->ins[i];
    x->end[i] = i;
    if (u->op == OP_END) {
      use(x, u->src[0], i);
      if (u->src[0]->src[0]->op != OP_CONST) use(x, u->src[0]->src[0], i); /* the bound, tested at the bottom */
      if (x->nopen) x->nopen--;
      continue;
    }
    if (!x->fused[i])
      for (uint32_t s = 0; s < u->nsrc; s++) {
        uop *v = u->src[s];
        if (fusable_mul(x, v, i))
          for (uint32_t t = 0; t < v->nsrc; t++) use(x, v->src[t], i);
        else if (v->op == OP_LOAD && def_of(x, v) >= 0 && x->fused[def_of(x, v)])
          for (uint32_t t = 1; t < v->src[0]->nsrc; t++) use(x, v->src[0]->src[t], i);
        else use(x, v, i);
      }
    if (u->op == OP_INDEX) { /* read where it is loaded or stored: its sources live to there */
    }
    if (!uopset_put(&x->cur, u, (void *)(uintptr_t)(x->def[i] + 1))) x->nomem = true;
    if (u->op == OP_RANGE && x->nopen < 64) x->open_loops[x->nopen++] = i;
  }
}

/* INDEX is not emitted: its offset and gate are read by the LOAD / STORE. Make them live
 * there by treating the INDEX's sources as read at each of its users. */
static void index_uses(xr *x) {
  const linear *l = x->l;
  uopset_free(&x->cur);
  x->cur = (uopset){0};
  x->nopen = 0;
  for (int i = 0; i < l->n; i++) {
    uop *u = l->ins[i];
    if (u->op == OP_END) {
      if (x->nopen) x->nopen--;
      continue;
    }
    if ((u->op == OP_LOAD && !x->fused[i]) || u->op == OP_STORE)
      for (uint32_t s = 1; s < u->src[0]->nsrc; s++) use(x, u->src[0]->src[s], i);
    if (!uopset_put(&x->cur, u, (void *)(uintptr_t)(x->def[i] + 1))) x->nomem = true;
    if (u->op == OP_RANGE && x->nopen < 64) x->open_loops[x->nopen++] = i;
  }
}

/* ---- register allocation --------------------------------------------------------------- */

static bool has_value(uop *u) {
  return u->op != OP_STORE && u->op != OP_END && u->op != OP_INDEX && u->op != OP_ASSIGN && !dt_is_void(u->dt);
}

static void spill(xr *x, int d) {
  x->at[d] = (loc){LOC_STACK, -1, F_SPILL + 64 * x->nspill++};
}

static void regalloc(xr *x) {
  const linear *l = x->l;
  int *active = ir_calloc((size_t)l->n + 1, sizeof(int)), nact = 0;
  if (!active) {
    x->nomem = true;
    return;
  }
  bool gfree[16], vfree[32];
  for (int r = 0; r < 16; r++) gfree[r] = false;
  for (int r = 0; r < NGREG; r++) gfree[greg[r]] = true;
  for (int r = 0; r < 32; r++) vfree[r] = r >= VREG0;
  for (int i = 0; i < l->n; i++) {
    uop *u = l->ins[i];
    if (x->def[i] != i || !has_value(u) || x->fused[i]) continue;
    for (int k = 0; k < nact;) { /* expire */
      int d = active[k];
      if (x->end[d] < i) {
        if (x->at[d].kind == LOC_REG) (is_g(l->ins[d]->dt) ? gfree : vfree)[x->at[d].reg] = true;
        active[k] = active[--nact];
      } else k++;
    }
    bool g = is_g(u->dt);
    bool *fr = g ? gfree : vfree;
    int r = -1;
    for (int k = 0; k < (g ? 16 : 32) && r < 0; k++)
      if (fr[k]) r = k;
    if (r >= 0) {
      fr[r] = false;
      x->at[i] = (loc){LOC_REG, (int8_t)r, 0};
      active[nact++] = i;
      continue;
    }
    /* none free: the cheapest interval to keep in memory (reads weighted by loop depth,
     * per instruction it spans), this one or an active one */
    int far = -1;
    double wi = x->weight[i] / (x->end[i] - i + 1), wf = 0;
    for (int k = 0; k < nact; k++) {
      int d = active[k];
      if (x->at[d].kind != LOC_REG || is_g(l->ins[d]->dt) != g) continue;
      double w = x->weight[d] / (x->end[d] - d + 1);
      if (far < 0 || w < wf || (w == wf && x->end[d] > x->end[far])) far = d, wf = w;
    }
    if (far >= 0 && wf < wi) {
      x->at[i] = x->at[far];
      spill(x, far);
      active[nact++] = i;
    } else spill(x, i);
  }
  free(active);
  if (cfg_debug() >= 5) /* every value's interval and home */
    for (int i = 0; i < l->n; i++)
      if (x->def[i] == i && has_value(l->ins[i]) && !x->fused[i])
        fprintf(stderr, "%4d %-10s [%d, %d] %s %d\n", i, op_name(l->ins[i]->op), i, x->end[i], x->at[i].kind == LOC_REG ? "reg" : "stack", x->at[i].kind == LOC_REG ? x->at[i].reg : x->at[i].off);
}

/* ---- emitting helpers --------------------------------------------------------------------- */

/* where def d's result is computed: its home register, else scratch (rax / zmm0). A home
 * register never holds a source of the same instruction (an interval ending at i keeps its
 * register through i), except an accumulator updated in place. */
static int gtarget(xr *x, int d) { return x->at[d].kind == LOC_REG ? x->at[d].reg : RAX; }
static int vtarget(xr *x, int d) { return x->at[d].kind == LOC_REG ? x->at[d].reg : 0; }

static xop frame(int off) { return xa_mem(RSP, -1, 1, off); }

/* a general operand: an immediate (*imm set), or a register / memory operand */
static xop gsrc(xr *x, uop *u, bool *is_imm, int64_t *imm) {
  *is_imm = false;
  if (u->op == OP_CONST) {
    *is_imm = true, *imm = u->arg.i;
    return xa_reg(0);
  }
  if (u->op == OP_DEFINE_VAR) return xa_mem(RSI, -1, 1, (int32_t)(8 * (u->arg.n > 2 ? u->arg.v[2] : 0)));
  loc p = x->at[def_of(x, u)];
  return p.kind == LOC_REG ? xa_reg(p.reg) : frame(p.off);
}

/* load a general value into r (64-bit moves: an int32 is kept zero-extended) */
static void gload(xr *x, int r, uop *u) {
  bool imm;
  int64_t v;
  xop o = gsrc(x, u, &imm, &v);
  bool w = u->dt.scalar == CG_INT64;
  if (imm) xa_mov_imm(&x->a, w, r, w ? v : (int64_t)(uint32_t)v);
  else if (!o.mem && o.reg == r) return;
  else xa_mov_load(&x->a, w, r, o);
}

static void gput(xr *x, int d, int r) {
  loc p = x->at[d];
  if (p.kind == LOC_REG) {
    if (p.reg != r) xa_mov_load(&x->a, true, p.reg, xa_reg(r));
  } else if (p.kind == LOC_STACK) xa_mov_store(&x->a, true, frame(p.off), r);
}

/* a vector / float value in a zmm: its register, or loaded into scratch s */
static int vsrc(xr *x, uop *u, int s) {
  xasm *a = &x->a;
  if (u->op == OP_CONST) {
    uint8_t b[8];
    if (is_f64(u->dt)) memcpy(b, &u->arg.f, 8);
    else {
      float f = (float)u->arg.f;
      memcpy(b, &f, 4);
    }
    xa_evex(a, XE_VMOVUPS_LOAD, 2, s, 0, xa_pool(xa_const(a, b, is_f64(u->dt) ? 8 : 4)), 0, false, -1);
    return s;
  }
  if (u->op == OP_DEFINE_VAR) { /* a float var: a double's bits */
    xa_evex(a, XE_VMOVSD_LOAD, 0, s, 0, xa_mem(RSI, -1, 1, (int32_t)(8 * (u->arg.n > 2 ? u->arg.v[2] : 0))), 0, false, -1);
    if (!is_f64(u->dt)) xa_evex(a, XE_VCVTSD2SS, 0, s, s, xa_reg(s), 0, false, -1);
    return s;
  }
  loc p = x->at[def_of(x, u)];
  if (p.kind == LOC_REG) return p.reg;
  xa_evex(a, XE_VMOVUPS_LOAD, 2, s, 0, frame(p.off), 0, false, -1);
  return s;
}

static void vput(xr *x, int d, int r) {
  loc p = x->at[d];
  if (p.kind == LOC_REG) {
    if (p.reg != r) xa_evex(&x->a, XE_VMOVAPS, 2, p.reg, 0, xa_reg(r), 0, false, -1);
  } else if (p.kind == LOC_STACK) xa_evex(&x->a, XE_VMOVUPS_STORE, 2, r, 0, frame(p.off), 0, false, -1);
  if (x->tmp_holds == d) x->tmp_holds = -1;
}

static int32_t vconst32(xasm *a, uint32_t bits) {
  uint32_t b[16];
  for (int i = 0; i < 16; i++) b[i] = bits;
  return xa_const(a, b, 64);
}
static int32_t vconstf(xasm *a, float f) {
  uint32_t b;
  memcpy(&b, &f, 4);
  return vconst32(a, b);
}

/* k (1..7) = the first n lanes */
static void lane_mask(xr *x, int k, int n) {
  xa_mov_imm(&x->a, false, RAX, n >= 16 ? 0xffff : (1 << n) - 1);
  xa_kmovw_kr(&x->a, k, RAX);
}

/* ---- transcendentals (float32, every lane) ---------------------------------------------------
 * exp2: t = clamp(x, -151, 130) (NaN kept), n = round(t), f = t - n in [-1/2, 1/2],
 *       2^f by vmath.h's degree-6 polynomial (the C backend's, same order), then
 *       vscalefps(p, n) = p * 2^n with one rounding (overflow to inf, gradual underflow).
 * log2: x = m * 2^e with m in [sqrt(1/2), sqrt(2)) (vgetmant / vgetexp, denormals
 *       included), r = m - 1, then vmath.h's polynomial and its e = 0 path (the C backend's);
 *       x < 0 or NaN -> NaN, +-0 -> -inf, +inf -> +inf by masks. */
static void emit_exp2(xr *x, int dst, int src) {
  xasm *a = &x->a;
  /* vmaxps / vminps return the second source when either is NaN: the constant first keeps a NaN */
  xa_evex(a, XE_VMOVUPS_LOAD, 2, 5, 0, xa_pool(vconstf(a, -151.0f)), 0, false, -1);
  xa_evex(a, XE(1, 0, 0x5f, 0), 2, 4, 5, xa_reg(src), 0, false, -1);   /* z4 = max(-151, x), NaN -> x */
  xa_evex(a, XE_VMOVUPS_LOAD, 2, 5, 0, xa_pool(vconstf(a, 130.0f)), 0, false, -1);
  xa_evex(a, XE(1, 0, 0x5d, 0), 2, 4, 5, xa_reg(4), 0, false, -1);     /* z4 = min(130, z4), NaN kept */
  xa_evex(a, XE_VRNDSCALEPS, 2, 5, 0, xa_reg(4), 0, false, 0);         /* z5 = n */
  xa_evex(a, XE_VSUBPS, 2, 4, 4, xa_reg(5), 0, false, -1);             /* z4 = f */
  /* the C backend's polynomial (vmath.h) in its order, so both give the same bits */
  static const float c[] = {1.0f, CG_VM_EXP2_E0, CG_VM_EXP2_E1, CG_VM_EXP2_E2, CG_VM_EXP2_E3, CG_VM_EXP2_E4, CG_VM_EXP2_E5};
  xa_evex(a, XE_VMOVUPS_LOAD, 2, dst, 0, xa_pool(vconstf(a, c[6])), 0, false, -1);
  for (int i = 5; i >= 0; i--) /* dst = dst * f + c[i] */
    xa_evex(a, XE_VFMADD213PS, 2, dst, 4, xa_pool(vconstf(a, c[i])), 0, false, -1);
  xa_evex(a, XE_VSCALEFPS, 2, dst, dst, xa_reg(5), 0, false, -1);
}

static void emit_log2(xr *x, int dst, int src) {
  xasm *a = &x->a; /* dst, src: neither is z2..z5 */
  xa_evex(a, XE_VGETMANTPS, 2, 4, 0, xa_reg(src), 0, false, 0x00);     /* z4 = m in [1, 2) */
  xa_evex(a, XE_VGETEXPPS, 2, 5, 0, xa_reg(src), 0, false, -1);        /* z5 = e = floor(log2 |x|) */
  /* m into vmath.h's [sqrt(1/2), sqrt(2)) as the C backend splits it (CG_VM_LOG2_MBASE) */
  uint32_t top = CG_VM_LOG2_MBASE + (1u << 23);
  float topf;
  memcpy(&topf, &top, 4);
  xa_evex(a, XE_VCMPPS, 2, 1, 4, xa_pool(vconstf(a, topf)), 0, false, 0x1d); /* k1 = m >= its top */
  xa_evex(a, XE_VMULPS, 2, 4, 4, xa_pool(vconstf(a, 0.5f)), 1, false, -1);   /* z4{k1} *= 1/2 */
  xa_evex(a, XE_VADDPS, 2, 5, 5, xa_pool(vconstf(a, 1.0f)), 1, false, -1);   /* z5{k1} += 1 */
  xa_evex(a, XE_VSUBPS, 2, 3, 4, xa_pool(vconstf(a, 1.0f)), 0, false, -1);   /* z3 = r = m - 1 (exact) */
  /* vmath.h's polynomial in the C backend's order: q = L9 r + L8, ..., q r + L1 */
  static const float l[] = {CG_VM_LOG2_L1, CG_VM_LOG2_L2, CG_VM_LOG2_L3, CG_VM_LOG2_L4, CG_VM_LOG2_L5,
                            CG_VM_LOG2_L6, CG_VM_LOG2_L7, CG_VM_LOG2_L8, CG_VM_LOG2_L9};
  xa_evex(a, XE_VMOVUPS_LOAD, 2, dst, 0, xa_pool(vconstf(a, l[8])), 0, false, -1);
  for (int i = 7; i >= 0; i--) xa_evex(a, XE_VFMADD213PS, 2, dst, 3, xa_pool(vconstf(a, l[i])), 0, false, -1);
  xa_evex(a, XE_VMULPS, 2, 2, dst, xa_reg(3), 0, false, -1);                 /* z2 = rr = q r */
  xa_evex(a, XE_VADDPS, 2, 4, 2, xa_pool(vconstf(a, CG_VM_LOG2_L0)), 0, false, -1); /* z4 = rr + L0 */
  xa_evex(a, XE_VFMADD213PS, 2, 4, 3, xa_reg(5), 0, false, -1);              /* z4 = yh = z4 r + e */
  /* e = 0: yl = r L0 + (r L0LO + r rr), keeping 1/ln2's bits past float near 1 */
  xa_evex(a, XE_VMULPS, 2, dst, 3, xa_reg(2), 0, false, -1);                 /* dst = r rr */
  xa_evex(a, XE_VFMADD231PS, 2, dst, 3, xa_pool(vconstf(a, CG_VM_LOG2_L0LO)), 0, false, -1);
  xa_evex(a, XE_VFMADD231PS, 2, dst, 3, xa_pool(vconstf(a, CG_VM_LOG2_L0)), 0, false, -1);
  xa_evex(a, XE_VCMPPS, 2, 1, 5, xa_pool(vconstf(a, 0.0f)), 0, false, 0x04); /* k1 = e != 0 */
  xa_evex(a, XE_VMOVAPS, 2, dst, 0, xa_reg(4), 1, false, -1);                /* dst{k1} = yh */
  /* specials */
  xa_evex(a, XE_VCMPPS, 2, 1, src, xa_pool(vconstf(a, 0.0f)), 0, false, 0x11);  /* x < 0 */
  xa_evex(a, XE_VCMPPS, 2, 2, src, xa_reg(src), 0, false, 0x03);                  /* NaN */
  xa_kop(a, 0x45, 1, 1, 2);
  xa_evex(a, XE_VMOVUPS_LOAD, 2, dst, 0, xa_pool(vconst32(a, 0x7fc00000)), 1, false, -1);
  xa_evex(a, XE_VCMPPS, 2, 1, src, xa_pool(vconstf(a, 0.0f)), 0, false, 0x00);  /* +-0 */
  xa_evex(a, XE_VMOVUPS_LOAD, 2, dst, 0, xa_pool(vconstf(a, -INFINITY)), 1, false, -1);
  xa_evex(a, XE_VCMPPS, 2, 1, src, xa_pool(vconstf(a, INFINITY)), 0, false, 0x00); /* +inf */
  xa_evex(a, XE_VMOVUPS_LOAD, 2, dst, 0, xa_pool(vconstf(a, INFINITY)), 1, false, -1);
}

/* float MAX (ops.def): NaN if either is, +0 over -0; lanes of zmm a, b into dst (scratch 4).
 * (vrangeps keeps the sign of one operand and drops NaN: not this.) */
static void emit_fmax(xr *x, int dst, int ra, int rb, bool f64) {
  xasm *a = &x->a;
  xe_ins cmp = f64 ? XE(1, 1, 0xc2, 1) : XE_VCMPPS, blend = f64 ? XE(2, 1, 0x65, 1) : XE_VBLENDMPS, pand = f64 ? XE(1, 1, 0xdb, 1) : XE_VPANDD;
  xa_evex(a, cmp, 2, 1, ra, xa_reg(rb), 0, false, 0x1e); /* k1 = a > b */
  xa_evex(a, cmp, 2, 2, ra, xa_reg(ra), 0, false, 0x03); /* k2 = a is NaN */
  xa_kop(a, 0x45, 1, 1, 2);
  xa_evex(a, cmp, 2, 2, ra, xa_reg(rb), 0, false, 0x00); /* k2 = a == b */
  xa_evex(a, blend, 2, 4, rb, xa_reg(ra), 1, false, -1); /* z4 = k1 ? a : b */
  xa_evex(a, pand, 2, 4, ra, xa_reg(rb), 2, false, -1);  /* z4{k2} = a & b */
  if (dst != 4) xa_evex(a, XE_VMOVAPS, 2, dst, 0, xa_reg(4), 0, false, -1);
}

/* ---- one instruction --------------------------------------------------------------------- */

static int elem_size(dtype d) { return d.scalar == CG_BOOL ? 1 : dt_scalar_size(d); }

/* The address of INDEX ix: r11 = the buffer; *vidx >= 0 when the offset is a vector (a
 * gather / scatter: loaded into zmm *vidx). */
static xop address(xr *x, uop *ix, int *vidx) {
  xasm *a = &x->a;
  int slot = (int)ix->src[0]->arg.v[0], sz = elem_size(dt_base(ix->dt));
  if (x->r11_slot != slot) xa_mov_load(a, true, R11, xa_mem(RDI, -1, 1, 8 * slot));
  x->r11_slot = slot;
  uop *off = ix->src[1];
  *vidx = -1;
  if (off->dt.count > 1) {
    *vidx = vsrc(x, off, 1);
    return xa_mem(R11, *vidx, sz, 0);
  }
  if (off->op == OP_CONST && (int64_t)off->arg.i * sz < INT32_MAX && (int64_t)off->arg.i * sz > INT32_MIN)
    return xa_mem(R11, -1, 1, (int32_t)(off->arg.i * sz));
  bool imm;
  int64_t v;
  xop o = gsrc(x, off, &imm, &v);
  /* an int32 in a register is kept zero-extended: the index itself when it is never negative */
  if (!imm && !o.mem && (off->dt.scalar == CG_INT64 || off->vmin >= 0)) return xa_mem(R11, o.reg, sz, 0);
  if (imm) xa_mov_imm(a, true, RCX, v);
  else if (off->dt.scalar == CG_INT64) xa_mov_load(a, true, RCX, o);
  else xa_movsxd(a, RCX, o);
  return xa_mem(R11, RCX, sz, 0);
}

/* the mask of a vector gate (an int32 mask vector) and the width's lanes into k1 */
static void gate_mask(xr *x, uop *g, int lanes) {
  int r = vsrc(x, g, 2);
  xa_evex(&x->a, XE_VPMOVD2M, 2, 1, 0, xa_reg(r), 0, false, -1);
  if (lanes < 16) {
    lane_mask(x, 2, lanes);
    xa_kop(&x->a, 0x41, 1, 1, 2);
  }
}

static void emit_load(xr *x, int i, uop *u) {
  xasm *a = &x->a;
  uop *ix = u->src[0], *g = ix->nsrc > 2 ? ix->src[2] : NULL;
  dtype d = u->dt;
  int lanes = d.count, R = gtarget(x, i), T = vtarget(x, i);
  size_t skip = 0;
  if (g && g->op == OP_CONST && g->arg.i) g = NULL; /* always on */
  bool vg = g && g->dt.count > 1;
  if (g && !vg) { /* scalar gate: the alternative, and a jump over the load */
    if (is_g(d)) gload(x, R, u->src[1]);
    else {
      int r = vsrc(x, u->src[1], 0);
      if (r != T) xa_evex(a, XE_VMOVAPS, 2, T, 0, xa_reg(r), 0, false, -1);
    }
    bool imm;
    int64_t v;
    xop go = gsrc(x, g, &imm, &v);
    if (imm && !v) goto put;
    if (!imm) {
      xa_mov_load(a, false, RCX, go);
      xa_test(a, false, RCX, xa_reg(RCX));
      skip = xa_jcc(a, XCC_E);
    }
  }
  int vidx;
  xop m = address(x, ix, &vidx);
  if (is_g(d)) {
    if (d.scalar == CG_BOOL) xa_movzx8(a, R, m);
    else xa_mov_load(a, d.scalar == CG_INT64, R, m);
  } else if (lanes <= 1) xa_evex(a, is_f64(d) ? XE_VMOVSD_LOAD : XE_VMOVSS_LOAD, 0, T, 0, m, 0, false, -1);
  else if (vidx >= 0) { /* gather: merges into T where the mask is off */
    if (vg) {
      int r = vsrc(x, u->src[1], 0);
      if (r != T) xa_evex(a, XE_VMOVAPS, 2, T, 0, xa_reg(r), 0, false, -1);
      gate_mask(x, g, lanes);
    } else {
      if (!g) xa_evex(a, XE_VPXORD, 2, T, T, xa_reg(T), 0, false, -1);
      lane_mask(x, 1, lanes);
    }
    xa_evex(a, d.scalar == CG_FLOAT32 ? XE_VGATHERDPS : XE_VPGATHERDD, 2, T, 0, m, 1, false, -1);
  } else if (vg) {
    int r = vsrc(x, u->src[1], 0);
    if (r != T) xa_evex(a, XE_VMOVAPS, 2, T, 0, xa_reg(r), 0, false, -1);
    gate_mask(x, g, lanes);
    xa_evex(a, XE_VMOVUPS_LOAD, 2, T, 0, m, 1, false, -1);
  } else if (lanes == 2) xa_evex(a, XE_VMOVSD_LOAD, 0, T, 0, m, 0, false, -1); /* 8 bytes, the rest zeroed */
  else if (lanes == 4 || lanes == 8 || lanes == 16) xa_evex(a, XE_VMOVUPS_LOAD, lanes == 4 ? 0 : lanes == 8 ? 1 : 2, T, 0, m, 0, false, -1);
  else {
    lane_mask(x, 1, lanes);
    xa_evex(a, XE_VMOVUPS_LOAD, 2, T, 0, m, 1, true, -1);
  }
  if (skip) xa_patch(a, skip, a->len), x->r11_slot = -1;
put:
  if (is_g(d)) gput(x, i, R);
  else vput(x, i, T);
}

static void emit_store(xr *x, uop *u) {
  xasm *a = &x->a;
  uop *ix = u->src[0], *g = ix->nsrc > 2 ? ix->src[2] : NULL, *v = u->src[1];
  dtype d = dt_base(ix->dt);
  size_t skip = 0;
  if (g && g->op == OP_CONST) { /* a constant gate: always or never */
    if (!g->arg.i) return;
    g = NULL;
  }
  if (g && g->dt.count <= 1) {
    bool imm;
    int64_t gv;
    xop go = gsrc(x, g, &imm, &gv);
    if (imm && !gv) return;
    if (!imm) {
      xa_mov_load(a, false, RCX, go);
      xa_test(a, false, RCX, xa_reg(RCX));
      skip = xa_jcc(a, XCC_E);
    }
  }
  int r = 0;
  if (is_g(v->dt)) gload(x, RAX, v);
  else r = vsrc(x, v, 0);
  if (d.count > 1 && g && g->dt.count > 1) gate_mask(x, g, d.count); /* before address: it may load z2 */
  else if (d.count > 1 && ((d.count != 2 && d.count != 4 && d.count != 8 && d.count < 16) || ix->src[1]->dt.count > 1)) lane_mask(x, 1, d.count);
  int vidx;
  xop m = address(x, ix, &vidx);
  if (is_g(v->dt)) {
    if (d.scalar == CG_BOOL) xa_store8(a, m, RAX);
    else xa_mov_store(a, d.scalar == CG_INT64, m, RAX);
  } else if (d.count <= 1) xa_evex(a, is_f64(d) ? XE_VMOVSD_STORE : XE_VMOVSS_STORE, 0, r, 0, m, 0, false, -1);
  else if (vidx >= 0) xa_evex(a, d.scalar == CG_FLOAT32 ? XE_VSCATTERDPS : XE_VPSCATTERDD, 2, r, 0, m, 1, false, -1);
  else if (g && g->dt.count > 1) xa_evex(a, XE_VMOVUPS_STORE, 2, r, 0, m, 1, false, -1);
  else if (d.count == 2) xa_evex(a, XE_VMOVSD_STORE, 0, r, 0, m, 0, false, -1);
  else if (d.count == 4 || d.count == 8 || d.count == 16) xa_evex(a, XE_VMOVUPS_STORE, d.count == 4 ? 0 : d.count == 8 ? 1 : 2, r, 0, m, 0, false, -1);
  else xa_evex(a, XE_VMOVUPS_STORE, 2, r, 0, m, 1, false, -1);
  if (skip) xa_patch(a, skip, a->len), x->r11_slot = -1;
}

/* a scalar general op rax = rax op src */
static void galu(xr *x, xa_alu op, bool w, uop *s, int R) {
  bool imm;
  int64_t v;
  xop o = gsrc(x, s, &imm, &v);
  if (imm && v >= INT32_MIN && v <= INT32_MAX) xa_alu_imm(&x->a, op, w, xa_reg(R), (int32_t)v);
  else if (imm) {
    xa_mov_imm(&x->a, w, RCX, v);
    xa_rr(&x->a, op, w, R, RCX);
  } else xa_alu_rm(&x->a, op, w, R, o);
}

/* general (int / bool scalar) ALU ops into rax */
static void emit_galu(xr *x, uop *u, int R) {
  xasm *a = &x->a;
  dtype d = u->dt, sd = u->nsrc ? u->src[0]->dt : d;
  bool w = (op_has(u->op, F_CMP) ? sd : d).scalar == CG_INT64, b = dt_is_bool(d);
  if ((u->op == OP_ADD || u->op == OP_MUL) && !b) { /* three-operand forms: lea, imul r, rm, imm */
    bool i0, i1;
    int64_t v0, v1;
    xop o0 = gsrc(x, u->src[0], &i0, &v0), o1 = gsrc(x, u->src[1], &i1, &v1);
    if (i0 && !i1) { /* the immediate second */
      xop t = o0;
      o0 = o1, o1 = t;
      bool ti = i0;
      i0 = i1, i1 = ti;
      int64_t tv = v0;
      v0 = v1, v1 = tv;
    }
    bool fits = i1 && v1 >= INT32_MIN && v1 <= INT32_MAX;
    if (u->op == OP_MUL && fits && !i0) return xa_imul_imm(a, w, R, o0, (int32_t)v1);
    if (u->op == OP_ADD && !i0 && !o0.mem && (fits || (!i1 && !o1.mem))) {
      xop m = fits ? xa_mem(o0.reg, -1, 1, (int32_t)v1) : xa_mem(o0.reg, o1.reg, 1, 0);
      if (w) xa_lea(a, R, m);
      else xa_lea32(a, R, m);
      return;
    }
  }
  switch (u->op) {
  case OP_ADD: gload(x, R, u->src[0]), galu(x, b ? XA_OR : XA_ADD, w, u->src[1], R); return;
  case OP_XOR: gload(x, R, u->src[0]), galu(x, XA_XOR, w, u->src[1], R); return;
  case OP_OR: gload(x, R, u->src[0]), galu(x, XA_OR, w, u->src[1], R); return;
  case OP_AND: gload(x, R, u->src[0]), galu(x, XA_AND, w, u->src[1], R); return;
  case OP_MUL:
    gload(x, R, u->src[0]);
    if (b) galu(x, XA_AND, w, u->src[1], R);
    else {
      bool imm;
      int64_t v;
      xop o = gsrc(x, u->src[1], &imm, &v);
      if (imm && v >= INT32_MIN && v <= INT32_MAX) xa_imul_imm(a, w, R, xa_reg(R), (int32_t)v);
      else if (imm) xa_mov_imm(a, w, RCX, v), xa_imul(a, w, R, xa_reg(RCX));
      else xa_imul(a, w, R, o);
    }
    return;
  case OP_MAX:
    gload(x, R, u->src[0]), gload(x, RCX, u->src[1]);
    if (b) xa_rr(a, XA_OR, false, R, RCX);
    else xa_rr(a, XA_CMP, w, R, RCX), xa_cmov(a, XCC_L, w, R, xa_reg(RCX));
    return;
  case OP_NEG:
    gload(x, R, u->src[0]);
    if (b) xa_alu_imm(a, XA_XOR, false, xa_reg(R), 1);
    else xa_unary(a, 3, w, xa_reg(R));
    return;
  case OP_TRUNC: gload(x, R, u->src[0]); return;
  case OP_SHL: case OP_SHR:
    gload(x, R, u->src[0]);
    if (b) return;
    gload(x, RCX, u->src[1]); /* the count: the hardware takes it modulo the width */
    xa_shift_cl(a, u->op == OP_SHL ? 4 : 7, w, xa_reg(R));
    return;
  case OP_IDIV: case OP_MOD: { /* x/0 = 0, x/-1 = -x (MOD: 0), else idiv */
    gload(x, RAX, u->src[0]), gload(x, RCX, u->src[1]);
    xa_test(a, w, RCX, xa_reg(RCX));
    size_t z = xa_jcc(a, XCC_E);
    xa_alu_imm(a, XA_CMP, w, xa_reg(RCX), -1);
    size_t m1 = xa_jcc(a, XCC_E);
    xa_cqo(a, w);
    xa_unary(a, 7, w, xa_reg(RCX));
    if (u->op == OP_MOD) xa_mov_load(a, true, RAX, xa_reg(RDX));
    size_t out = xa_jmp(a);
    xa_patch(a, m1, a->len);
    if (u->op == OP_IDIV) {
      xa_unary(a, 3, w, xa_reg(RAX));
      size_t out2 = xa_jmp(a);
      xa_patch(a, z, a->len);
      xa_rr(a, XA_XOR, false, RAX, RAX);
      xa_patch(a, out2, a->len);
    } else {
      xa_patch(a, z, a->len);
      xa_rr(a, XA_XOR, false, RAX, RAX);
    }
    xa_patch(a, out, a->len);
    xa_mov_load(a, w, R, xa_reg(RAX)); /* 32-bit: zero-extended */
    return;
  }
  case OP_CMPLT: case OP_CMPNE: case OP_CMPEQ:
    if (dt_is_float(sd)) { /* ucomis: unordered sets ZF PF CF */
      int ra = vsrc(x, u->src[0], 1), rb = vsrc(x, u->src[1], 2);
      xe_ins uc = is_f64(sd) ? XE_VUCOMISD : XE_VUCOMISS;
      if (u->op == OP_CMPLT) xa_evex(a, uc, 0, rb, 0, xa_reg(ra), 0, false, -1), xa_setcc(a, XCC_A, R); /* b > a */
      else {
        xa_evex(a, uc, 0, ra, 0, xa_reg(rb), 0, false, -1);
        xa_setcc(a, u->op == OP_CMPEQ ? XCC_E : XCC_NE, R), xa_setcc(a, u->op == OP_CMPEQ ? XCC_NP : XCC_P, RCX);
        xa_rr(a, u->op == OP_CMPEQ ? XA_AND : XA_OR, false, R, RCX);
      }
    } else {
      gload(x, RCX, u->src[0]);
      bool imm;
      int64_t v;
      xop o = gsrc(x, u->src[1], &imm, &v);
      if (imm && v >= INT32_MIN && v <= INT32_MAX) xa_alu_imm(a, XA_CMP, w, xa_reg(RCX), (int32_t)v);
      else if (imm) xa_mov_imm(a, w, RDX, v), xa_rr(a, XA_CMP, w, RCX, RDX);
      else xa_alu_rm(a, XA_CMP, w, RCX, o);
      xa_setcc(a, u->op == OP_CMPNE ? XCC_NE : u->op == OP_CMPEQ ? XCC_E : dt_is_bool(sd) ? XCC_B : XCC_L, R);
    }
    xa_movzx8(a, R, xa_reg(R));
    return;
  case OP_WHERE:
    gload(x, R, u->src[2]), gload(x, RCX, u->src[1]), gload(x, RDX, u->src[0]);
    xa_test(a, false, RDX, xa_reg(RDX));
    xa_cmov(a, XCC_NE, true, R, xa_reg(RCX));
    return;
  case OP_MULACC:
    gload(x, R, u->src[0]);
    if (b) galu(x, XA_AND, false, u->src[1], R), galu(x, XA_OR, false, u->src[2], R);
    else {
      gload(x, RCX, u->src[1]);
      xa_imul(a, w, R, xa_reg(RCX));
      galu(x, XA_ADD, w, u->src[2], R);
    }
    return;
  case OP_BITCAST: { /* float -> int bits */
    int r = vsrc(x, u->src[0], 1);
    xa_evex(a, w ? XE_VMOVQ_FROMX : XE_VMOVD_FROMX, 0, r, 0, xa_reg(R), 0, false, -1);
    return;
  }
  case OP_CAST:
    if (dt_is_float(sd)) {
      int r = vsrc(x, u->src[0], 1);
      bool sf64 = is_f64(sd);
      if (b) { /* x != 0, NaN -> true */
        xa_evex(a, XE_VPXORD, 0, 2, 2, xa_reg(2), 0, false, -1);
        xa_evex(a, sf64 ? XE_VUCOMISD : XE_VUCOMISS, 0, r, 0, xa_reg(2), 0, false, -1);
        xa_setcc(a, XCC_NE, R), xa_setcc(a, XCC_P, RCX);
        xa_rr(a, XA_OR, false, R, RCX);
        xa_movzx8(a, R, xa_reg(R));
        return;
      }
      /* truncate; saturate at the top (the instruction gives INT_MIN there); NaN -> 0 */
      xe_ins cvt = sf64 ? XE_VCVTTSD2SI : XE_VCVTTSS2SI;
      cvt.w = w;
      xa_evex(a, cvt, 0, R, 0, xa_reg(r), 0, false, -1);
      double top = w ? 9223372036854775808.0 : 2147483648.0;
      uint8_t cb[8];
      if (sf64) memcpy(cb, &top, 8);
      else {
        float f = (float)top;
        memcpy(cb, &f, 4);
      }
      xa_mov_imm(a, w, RCX, w ? INT64_MAX : INT32_MAX);
      xa_evex(a, sf64 ? XE_VUCOMISD : XE_VUCOMISS, 0, r, 0, xa_pool(xa_const(a, cb, sf64 ? 8 : 4)), 0, false, -1);
      xa_cmov(a, XCC_AE, w, R, xa_reg(RCX));
      xa_rr(a, XA_XOR, false, RCX, RCX);
      xa_evex(a, sf64 ? XE_VUCOMISD : XE_VUCOMISS, 0, r, 0, xa_reg(r), 0, false, -1);
      xa_cmov(a, XCC_P, w, R, xa_reg(RCX));
      if (!w) xa_mov_load(a, false, R, xa_reg(R));
      return;
    }
    if (b) { /* int -> bool */
      gload(x, RCX, u->src[0]);
      xa_test(a, sd.scalar == CG_INT64, RCX, xa_reg(RCX));
      xa_setcc(a, XCC_NE, R);
      xa_movzx8(a, R, xa_reg(R));
      return;
    }
    gload(x, R, u->src[0]);
    if (d.scalar == CG_INT64 && sd.scalar == CG_INT32) xa_movsxd(a, R, xa_reg(R));
    else if (d.scalar == CG_INT32) xa_mov_load(a, false, R, xa_reg(R));
    return;
  default: CG_ASSERT(0, "x86: no general %s", op_name(u->op));
  }
}

/* vector / float ops into zmm0 */
/* T: the result register for ops whose last instruction writes it (the rest use zmm0);
 * returns where the result is */
static int emit_valu(xr *x, int i, uop *u, int T) {
  xasm *a = &x->a;
  dtype d = u->dt, sd = u->nsrc ? u->src[0]->dt : d;
  bool vec = d.count > 1, f = dt_is_float(d), f64 = is_f64(d), bv = dt_is_bool(d);
  int ll = 2;
  switch (u->op) {
  case OP_ADD: case OP_MUL: {
    uop *s0 = u->src[0], *s1 = u->src[1];
    int dm = def_of(x, s1), dm0 = def_of(x, s0);
    if (u->op == OP_ADD && f && ((dm >= 0 && x->fused[dm]) || (dm0 >= 0 && x->fused[dm0]))) { /* fma(mul's a, b, other) */
      uop *m = dm0 >= 0 && x->fused[dm0] ? s0 : s1, *o = m == s0 ? s1 : s0;
      int ro = vsrc(x, o, 3);
      int r1 = vsrc(x, m->src[0], 1), r2 = vsrc(x, m->src[1], 2);
      if (T == r1 || T == r2) T = 0; /* an accumulator times itself: not in place */
      if (ro != T) xa_evex(a, XE_VMOVAPS, 2, T, 0, xa_reg(ro), 0, false, -1);
      xa_evex(a, vec ? XE_VFMADD231PS : f64 ? XE_VFMADD231SD : XE_VFMADD231SS, vec ? 2 : 0, T, r1, xa_reg(r2), 0, false, -1);
      return T;
    }
    int r1 = vsrc(x, s0, 1), r2 = vsrc(x, s1, 2);
    xe_ins in;
    if (bv) in = u->op == OP_ADD ? XE_VPORD : XE_VPANDD;
    else if (!f) in = u->op == OP_ADD ? XE_VPADDD : XE_VPMULLD;
    else if (vec) in = u->op == OP_ADD ? XE_VADDPS : XE_VMULPS;
    else in = f64 ? (u->op == OP_ADD ? XE_VADDSD : XE_VMULSD) : (u->op == OP_ADD ? XE_VADDSS : XE_VMULSS);
    xa_evex(a, in, ll, T, r1, xa_reg(r2), 0, false, -1);
    return T;
  }
  case OP_MULACC: {
    int r0 = vsrc(x, u->src[2], 3), r1 = vsrc(x, u->src[0], 1), r2 = vsrc(x, u->src[1], 2);
    xa_evex(a, XE_VMOVAPS, 2, 0, 0, xa_reg(r0), 0, false, -1);
    if (!f) { /* ints: x*y + z; bools: (x & y) | z */
      xa_evex(a, bv ? XE_VPANDD : XE_VPMULLD, 2, 4, r1, xa_reg(r2), 0, false, -1);
      xa_evex(a, bv ? XE_VPORD : XE_VPADDD, 2, 0, 0, xa_reg(4), 0, false, -1);
    } else xa_evex(a, vec ? XE_VFMADD231PS : f64 ? XE_VFMADD231SD : XE_VFMADD231SS, vec ? 2 : 0, 0, r1, xa_reg(r2), 0, false, -1);
    return 0;
  }
  case OP_XOR: case OP_OR: case OP_AND: {
    int r1 = vsrc(x, u->src[0], 1), r2 = vsrc(x, u->src[1], 2);
    xa_evex(a, u->op == OP_XOR ? XE_VPXORD : u->op == OP_OR ? XE_VPORD : XE_VPANDD, 2, T, r1, xa_reg(r2), 0, false, -1);
    return T;
  }
  case OP_SHL: case OP_SHR: {
    int r1 = vsrc(x, u->src[0], 1), r2 = vsrc(x, u->src[1], 2);
    if (bv) {
      xa_evex(a, XE_VMOVAPS, 2, 0, 0, xa_reg(r1), 0, false, -1);
      return 0;
    }
    xa_evex(a, XE_VPANDD, 2, 2, r2, xa_pool(vconst32(a, 31)), 0, false, -1);
    xa_evex(a, u->op == OP_SHL ? XE_VPSLLVD : XE_VPSRAVD, 2, 0, r1, xa_reg(2), 0, false, -1);
    return 0;
  }
  case OP_MAX: {
    int r1 = vsrc(x, u->src[0], 1), r2 = vsrc(x, u->src[1], 2);
    if (f) {
      emit_fmax(x, T == r1 || T == r2 ? 0 : T, r1, r2, f64);
      return T == r1 || T == r2 ? 0 : T;
    } else {
      xa_evex(a, bv ? XE_VPORD : XE_VPMAXSD, 2, T, r1, xa_reg(r2), 0, false, -1);
      return T;
    }
    return 0;
  }
  case OP_NEG: {
    int r1 = vsrc(x, u->src[0], 1);
    if (f) xa_evex(a, f64 ? XE(1, 1, 0x57, 1) : XE_VXORPS, 2, 0, r1, xa_pool(f64 ? xa_const(a, (uint64_t[]){0x8000000000000000ull}, 8) : vconst32(a, 0x80000000u)), 0, false, -1);
    else if (bv) xa_evex(a, XE_VPXORD, 2, 0, r1, xa_pool(vconst32(a, 0xffffffffu)), 0, false, -1);
    else xa_evex(a, XE_VPXORD, 2, 2, 2, xa_reg(2), 0, false, -1), xa_evex(a, XE_VPSUBD, 2, 0, 2, xa_reg(r1), 0, false, -1);
    return 0;
  }
  case OP_SQRT: {
    int r1 = vsrc(x, u->src[0], 1);
    if (vec) xa_evex(a, XE_VSQRTPS, 2, 0, 0, xa_reg(r1), 0, false, -1);
    else xa_evex(a, f64 ? XE_VSQRTSD : XE_VSQRTSS, 0, 0, r1, xa_reg(r1), 0, false, -1);
    return 0;
  }
  case OP_RECIPROCAL: {
    int r1 = vsrc(x, u->src[0], 1);
    if (f64) {
      double one = 1.0;
      xa_evex(a, XE_VMOVUPS_LOAD, 2, 0, 0, xa_pool(xa_const(a, &one, 8)), 0, false, -1);
      xa_evex(a, XE_VDIVSD, 0, 0, 0, xa_reg(r1), 0, false, -1);
    } else {
      xa_evex(a, XE_VMOVUPS_LOAD, 2, 0, 0, xa_pool(vconstf(a, 1.0f)), 0, false, -1);
      xa_evex(a, vec ? XE_VDIVPS : XE_VDIVSS, vec ? 2 : 0, 0, 0, xa_reg(r1), 0, false, -1);
    }
    return 0;
  }
  case OP_TRUNC: {
    int r1 = vsrc(x, u->src[0], 1);
    if (f) xa_evex(a, f64 ? XE(3, 1, 0x09, 1) : XE_VRNDSCALEPS, 2, 0, 0, xa_reg(r1), 0, false, 0x0b); /* toward zero, no precision exception */
    else xa_evex(a, XE_VMOVAPS, 2, 0, 0, xa_reg(r1), 0, false, -1);
    return 0;
  }
  case OP_EXP2: case OP_LOG2: {
    int r1 = vsrc(x, u->src[0], 1);
    if (u->op == OP_EXP2) emit_exp2(x, 0, r1);
    else emit_log2(x, 0, r1);
    return 0;
  }
  case OP_CMPLT: case OP_CMPNE: case OP_CMPEQ: { /* vectors: an int32 mask */
    int r1 = vsrc(x, u->src[0], 1), r2 = vsrc(x, u->src[1], 2);
    if (dt_is_float(sd)) xa_evex(a, XE_VCMPPS, 2, 1, r1, xa_reg(r2), 0, false, u->op == OP_CMPLT ? 0x11 : u->op == OP_CMPEQ ? 0x00 : 0x04);
    else if (dt_is_bool(sd) && u->op == OP_CMPLT) /* a < b for bools: !a & b */
      xa_evex(a, XE_VPANDND, 2, 3, r1, xa_reg(r2), 0, false, -1), xa_evex(a, XE_VPTESTMD, 2, 1, 3, xa_reg(3), 0, false, -1);
    else xa_evex(a, XE_VPCMPD, 2, 1, r1, xa_reg(r2), 0, false, u->op == OP_CMPLT ? 1 : u->op == OP_CMPEQ ? 0 : 4);
    xa_evex(a, XE_VPMOVM2D, 2, T, 0, xa_reg(1), 0, false, -1);
    return T;
  }
  case OP_WHERE: {
    uop *c = u->src[0];
    int r1 = vsrc(x, u->src[1], 2), r2 = vsrc(x, u->src[2], 3);
    if (c->dt.count > 1) {
      int rc = vsrc(x, c, 1);
      xa_evex(a, XE_VPMOVD2M, 2, 1, 0, xa_reg(rc), 0, false, -1);
    } else { /* a scalar condition in a general register: broadcast its bit */
      gload(x, RAX, c);
      xa_unary(a, 3, false, xa_reg(RAX));
      xa_kmovw_kr(a, 1, RAX);
    }
    xa_evex(a, f64 ? XE(2, 1, 0x65, 1) : XE_VPBLENDMD, 2, T, r2, xa_reg(r1), 1, false, -1);
    return T;
  }
  case OP_CAST: {
    dtype s = sd;
    if (!vec) { /* to a float scalar */
      if (is_g(s)) {
        gload(x, RAX, u->src[0]);
        xe_ins cv = f64 ? XE_VCVTSI2SD : XE_VCVTSI2SS;
        cv.w = s.scalar == CG_INT64;
        xa_evex(a, XE_VPXORD, 0, 0, 0, xa_reg(0), 0, false, -1);
        xa_evex(a, cv, 0, 0, 0, xa_reg(RAX), 0, false, -1);
      } else {
        int r1 = vsrc(x, u->src[0], 1);
        if (is_f64(s) == f64) xa_evex(a, XE_VMOVAPS, 2, 0, 0, xa_reg(r1), 0, false, -1);
        else xa_evex(a, f64 ? XE_VCVTSS2SD : XE_VCVTSD2SS, 0, 0, r1, xa_reg(r1), 0, false, -1);
      }
      return 0;
    }
    int r1 = vsrc(x, u->src[0], 1);
    if (s.scalar == d.scalar) xa_evex(a, XE_VMOVAPS, 2, 0, 0, xa_reg(r1), 0, false, -1);
    else if (bv) { /* != 0 (NaN -> true) */
      if (s.scalar == CG_FLOAT32) xa_evex(a, XE_VPXORD, 2, 2, 2, xa_reg(2), 0, false, -1), xa_evex(a, XE_VCMPPS, 2, 1, r1, xa_reg(2), 0, false, 0x04);
      else xa_evex(a, XE_VPTESTMD, 2, 1, r1, xa_reg(r1), 0, false, -1);
      xa_evex(a, XE_VPMOVM2D, 2, 0, 0, xa_reg(1), 0, false, -1);
    } else if (s.scalar == CG_BOOL) { /* mask -> 1 / 0 */
      xa_evex(a, XE_VPSRLD_IMM, 2, 2, 0, xa_reg(r1), 0, false, 31);
      if (f) xa_evex(a, XE_VCVTDQ2PS, 2, 0, 0, xa_reg(0), 0, false, -1);
    } else if (f) xa_evex(a, XE_VCVTDQ2PS, 2, 0, 0, xa_reg(r1), 0, false, -1);
    else { /* float -> int32: saturate, NaN -> 0 */
      xa_evex(a, XE_VCVTTPS2DQ, 2, 0, 0, xa_reg(r1), 0, false, -1);
      xa_evex(a, XE_VCMPPS, 2, 1, r1, xa_pool(vconstf(a, 2147483648.0f)), 0, false, 0x1d); /* >= 2^31 */
      xa_evex(a, XE_VMOVUPS_LOAD, 2, 0, 0, xa_pool(vconst32(a, 0x7fffffff)), 1, false, -1);
      xa_evex(a, XE_VCMPPS, 2, 1, r1, xa_reg(r1), 0, false, 0x03);
      xa_evex(a, XE_VPXORD, 2, 0, 0, xa_reg(0), 1, false, -1);
    }
    return 0;
  }
  case OP_BITCAST: {
    if (is_g(sd)) {
      gload(x, RAX, u->src[0]);
      xa_evex(a, f64 ? XE_VMOVQ_TOX : XE_VMOVD_TOX, 0, 0, 0, xa_reg(RAX), 0, false, -1);
    } else xa_evex(a, XE_VMOVAPS, 2, 0, 0, xa_reg(vsrc(x, u->src[0], 1)), 0, false, -1);
    return 0;
  }
  default: CG_ASSERT(0, "x86: no vector %s", op_name(u->op));
  }
  (void)i;
  return 0;
}

static void emit_vectorize(xr *x, int i, uop *u) {
  xasm *a = &x->a;
  dtype d = u->dt;
  int T = vtarget(x, i);
  bool same = true, consts = true;
  for (uint32_t s = 0; s < u->nsrc; s++) {
    same &= u->src[s] == u->src[0];
    consts &= u->src[s]->op == OP_CONST;
  }
  if (consts) {
    uint32_t b[16] = {0};
    for (uint32_t s = 0; s < u->nsrc && s < 16; s++) {
      uop *c = u->src[s];
      if (d.scalar == CG_FLOAT32) {
        float fv = (float)c->arg.f;
        memcpy(&b[s], &fv, 4);
      } else b[s] = d.scalar == CG_BOOL ? (c->arg.i ? 0xffffffffu : 0) : (uint32_t)c->arg.i;
    }
    xa_evex(a, XE_VMOVUPS_LOAD, 2, T, 0, xa_pool(xa_const(a, b, 64)), 0, false, -1);
  } else if (same && d.scalar != CG_BOOL && def_of(x, u->src[0]) >= 0 && x->fused[def_of(x, u->src[0])]) { /* broadcast from memory */
    int vidx;
    xop m = address(x, u->src[0]->src[0], &vidx);
    xa_evex(a, d.scalar == CG_FLOAT32 ? XE_VBROADCASTSS : XE_VPBROADCASTD, 2, T, 0, m, 0, false, -1);
  } else if (same && d.scalar != CG_BOOL) {
    uop *s = u->src[0];
    if (is_g(s->dt)) {
      bool imm;
      int64_t v;
      xop o = gsrc(x, s, &imm, &v);
      if (o.mem && !imm) xa_evex(a, XE_VPBROADCASTD, 2, T, 0, o, 0, false, -1);
      else {
        gload(x, RAX, s);
        xa_evex(a, XE_VPBROADCASTD_GPR, 2, T, 0, xa_reg(RAX), 0, false, -1);
      }
    } else xa_evex(a, XE_VBROADCASTSS, 2, T, 0, xa_reg(vsrc(x, s, 1)), 0, false, -1);
  } else { /* lane by lane through the scratch block */
    for (uint32_t s = 0; s < u->nsrc; s++) {
      uop *v = u->src[s];
      if (is_g(v->dt)) {
        gload(x, RAX, v);
        if (d.scalar == CG_BOOL) xa_unary(a, 3, false, xa_reg(RAX));
        xa_mov_store(a, false, frame(F_TMP + 4 * (int)s), RAX);
      } else xa_evex(a, XE_VMOVSS_STORE, 0, vsrc(x, v, 1), 0, frame(F_TMP + 4 * (int)s), 0, false, -1);
    }
    xa_evex(a, XE_VMOVUPS_LOAD, 2, T, 0, frame(F_TMP), 0, false, -1);
    x->tmp_holds = -1;
  }
  vput(x, i, T);
}

static void emit_gep(xr *x, int i, uop *u) {
  xasm *a = &x->a;
  uop *v = u->src[0];
  int lane = (int)u->arg.i, dv = def_of(x, v);
  if (dv >= 0 && x->at[dv].kind == LOC_STACK) { /* straight from its slot */
    xop m = frame(x->at[dv].off + 4 * lane);
    if (is_g(u->dt)) {
      int R = gtarget(x, i);
      xa_mov_load(a, false, R, m);
      if (dt_is_bool(u->dt)) xa_alu_imm(a, XA_AND, false, xa_reg(R), 1);
      gput(x, i, R);
    } else {
      int T = vtarget(x, i);
      xa_evex(a, XE_VMOVSS_LOAD, 0, T, 0, m, 0, false, -1);
      vput(x, i, T);
    }
    return;
  }
  /* lane k to lane 0: valignd t, v, v, k (a rotation of the 16 lanes) */
  int r = vsrc(x, v, 1), T = is_g(u->dt) ? 0 : vtarget(x, i);
  if (lane) xa_evex(a, XE(3, 1, 0x03, 0), 2, T, r, xa_reg(r), 0, false, lane);
  else if (T != r) xa_evex(a, XE_VMOVAPS, 2, T, 0, xa_reg(r), 0, false, -1);
  if (is_g(u->dt)) {
    int R = gtarget(x, i);
    xa_evex(a, XE_VMOVD_FROMX, 0, T, 0, xa_reg(R), 0, false, -1);
    if (dt_is_bool(u->dt)) xa_alu_imm(a, XA_AND, false, xa_reg(R), 1);
    gput(x, i, R);
  } else vput(x, i, T);
}

/* ---- the kernel --------------------------------------------------------------------------- */

typedef struct {
  size_t top, exit; /* loop top, the rel32 of the zero-trip jump */
} loopfix;

static bool emit_all(xr *x) {
  const linear *l = x->l;
  xasm *a = &x->a;
  static const int saved[] = {RBX, RBP, R12, R13, R14, R15};
  for (int k = 0; k < 6; k++) xa_push(a, saved[k]);
  int frame_sz = F_SPILL + 64 * x->nspill + 64;
  xa_mov_load(a, true, RAX, xa_reg(RSP));
  xa_alu_imm(a, XA_SUB, true, xa_reg(RSP), frame_sz);
  xa_alu_imm(a, XA_AND, true, xa_reg(RSP), -64);
  xa_mov_store(a, true, frame(F_SAVE), RAX);
  xa_mov_store(a, true, frame(F_LO), RDX);
  xa_mov_store(a, true, frame(F_HI), RCX);
  loopfix *lf = ir_calloc((size_t)l->n + 1, sizeof *lf);
  if (!lf) return false;
  x->tmp_holds = -1, x->r11_slot = -1;
  uopset_free(&x->cur);
  x->cur = (uopset){0};
  for (int i = 0; i < l->n && !x->nomem; i++) { /* a lost map entry (out of memory) would misplace a value */
    uop *u = l->ins[i];
    switch (u->op) {
    case OP_RANGE: {
      bool th = u->arg.v[1] == RANGE_THREAD;
      if (th) xa_mov_load(a, false, RAX, frame(F_LO));
      else xa_rr(a, XA_XOR, false, RAX, RAX);
      if (!uopset_put(&x->cur, u, (void *)(uintptr_t)(i + 1))) x->nomem = true;
      gput(x, i, RAX);
      /* zero trips? */
      if (th) xa_alu_rm(a, XA_CMP, false, RAX, frame(F_HI));
      else {
        bool imm;
        int64_t v;
        xop o = gsrc(x, u->src[0], &imm, &v);
        if (imm) xa_alu_imm(a, XA_CMP, false, xa_reg(RAX), (int32_t)v);
        else xa_alu_rm(a, XA_CMP, false, RAX, o);
      }
      lf[i].exit = xa_jcc(a, XCC_GE);
      lf[i].top = a->len;
      x->tmp_holds = -1, x->r11_slot = -1;
      continue;
    }
    case OP_END: {
      uop *r = u->src[0];
      int ri = def_of(x, r);
      loc p = x->at[ri];
      xop c = p.kind == LOC_REG ? xa_reg(p.reg) : frame(p.off);
      xa_alu_imm(a, XA_ADD, false, c, 1);
      if (p.kind == LOC_REG) {
        if (r->arg.v[1] == RANGE_THREAD) xa_alu_rm(a, XA_CMP, false, p.reg, frame(F_HI));
        else {
          bool imm;
          int64_t v;
          xop o = gsrc(x, r->src[0], &imm, &v);
          if (imm) xa_alu_imm(a, XA_CMP, false, c, (int32_t)v);
          else xa_alu_rm(a, XA_CMP, false, p.reg, o);
        }
      } else {
        xa_mov_load(a, false, RAX, c);
        if (r->arg.v[1] == RANGE_THREAD) xa_alu_rm(a, XA_CMP, false, RAX, frame(F_HI));
        else {
          bool imm;
          int64_t v;
          xop o = gsrc(x, r->src[0], &imm, &v);
          if (imm) xa_alu_imm(a, XA_CMP, false, xa_reg(RAX), (int32_t)v);
          else xa_alu_rm(a, XA_CMP, false, RAX, o);
        }
      }
      size_t j = xa_jcc(a, XCC_L);
      xa_patch(a, j, lf[ri].top);
      xa_patch(a, lf[ri].exit, a->len);
      x->tmp_holds = -1, x->r11_slot = -1;
      continue;
    }
    default: break;
    }
    int d = x->def[i];
    if (u->op == OP_ASSIGN) { /* the accumulator takes the value (already there when computed in place) */
      uop *v = u->src[1];
      if (def_of(x, v) == d) {
      } else if (is_g(u->dt)) gload(x, RAX, v), gput(x, d, RAX);
      else vput(x, d, vsrc(x, v, 0));
    } else if (u->op == OP_DEFINE_ACC) {
      if (is_g(u->dt)) gload(x, RAX, u->src[0]), gput(x, i, RAX);
      else vput(x, i, vsrc(x, u->src[0], 0));
    } else if (u->op == OP_INDEX || x->fused[i]) {
    } else if (u->op == OP_LOAD) emit_load(x, i, u);
    else if (u->op == OP_STORE) emit_store(x, u);
    else if (u->op == OP_VECTORIZE) emit_vectorize(x, i, u);
    else if (u->op == OP_GEP) emit_gep(x, i, u);
    else if (is_g(u->dt)) {
      int R = gtarget(x, d);
      emit_galu(x, u, R), gput(x, d, R);
    } else vput(x, d, emit_valu(x, i, u, vtarget(x, d)));
    if (!uopset_put(&x->cur, u, (void *)(uintptr_t)(d + 1))) x->nomem = true;
  }
  free(lf);
  xa_mov_load(a, true, RSP, frame(F_SAVE));
  for (int k = 5; k >= 0; k--) xa_pop(a, saved[k]);
  xa_vzeroupper(a);
  xa_ret(a);
  return !a->oom && !x->nomem;
}

/* ---- the output text ------------------------------------------------------------------------ */

static long long emitted_count, refused_count, emit_ns; /* atomic adds and loads */

void render_x86_counts(long long *emitted, long long *refused) {
  *emitted = __atomic_load_n(&emitted_count, __ATOMIC_RELAXED), *refused = __atomic_load_n(&refused_count, __ATOMIC_RELAXED);
}
double render_x86_emit_seconds(void) { return 1e-9 * (double)__atomic_load_n(&emit_ns, __ATOMIC_RELAXED); }

/* The machine code of l, or NULL and why not (in why). *n its size. */
static uint8_t *emit_kernel(const linear *l, size_t *n, char *why, size_t nwhy, xasm *a_out) {
  if (!rt_cpu_avx512()) return snprintf(why, nwhy, "this CPU lacks AVX-512 F/BW/DQ/VL"), NULL;
  if (check(l, why, nwhy)) return NULL;
  xr x = {.l = l};
  size_t n1 = (size_t)l->n + 1;
  x.def = ir_calloc(n1, sizeof(int)), x.end = ir_calloc(n1, sizeof(int)), x.uses = ir_calloc(n1, sizeof(int)),
  x.loop_end = ir_calloc(n1, sizeof(int)), x.at = ir_calloc(n1, sizeof(loc)), x.fused = ir_calloc(n1, sizeof(bool));
  x.user = ir_calloc(n1, sizeof(int)), x.srcoff = ir_calloc(n1, sizeof(int)), x.weight = ir_calloc(n1, sizeof(double));
  size_t nsrc = 1;
  for (int i = 0; x.srcoff && i < l->n; i++) x.srcoff[i] = (int)nsrc, nsrc += l->ins[i]->nsrc;
  x.srcdef = ir_calloc(nsrc, sizeof(int));
  uint8_t *code = NULL;
  if (x.def && x.end && x.uses && x.loop_end && x.at && x.fused && x.user && x.srcoff && x.srcdef && x.weight) {
    liveness(&x);
    if (!x.nomem) index_uses(&x);
    if (!x.nomem) regalloc(&x);
    if (!x.nomem && emit_all(&x)) code = xa_finish(&x.a, n);
  }
  if (!code) snprintf(why, nwhy, "out of memory");
  free(x.def), free(x.end), free(x.uses), free(x.loop_end), free(x.at), free(x.fused), free(x.user), free(x.srcoff), free(x.srcdef), free(x.weight);
  uopset_free(&x.cur);
  *a_out = x.a;
  return code;
}

static char *render_x86_with(const char *name, const linear *l, bool tier) {
  char why[200] = "";
  size_t n = 0;
  xasm a = {0};
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  uint8_t *code = emit_kernel(l, &n, why, sizeof why, &a);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  long long ns = (long long)(t1.tv_sec - t0.tv_sec) * 1000000000ll + (t1.tv_nsec - t0.tv_nsec);
  __atomic_fetch_add(&emit_ns, ns, __ATOMIC_RELAXED);
  if (code && cfg_debug() >= 3) fprintf(stderr, "*** x86: %s: %zu bytes of machine code in %.1f us\n", name, n, 1e-3 * (double)ns);
  bool with_c = !code || tier;
  char *c = with_c ? renderer_c.render(name, l) : NULL;
  if (with_c && !c) {
    xa_free(&a);
    return NULL;
  }
  if (code) __atomic_fetch_add(&emitted_count, 1, __ATOMIC_RELAXED);
  else {
    __atomic_fetch_add(&refused_count, 1, __ATOMIC_RELAXED);
    if (cfg_debug() >= 2) fprintf(stderr, "*** x86: %s goes to the C compiler: it has %s\n", name, why);
  }
  size_t cap = 64 + 2 * n + n / 32 + (c ? strlen(c) + 8 : 0) + sizeof why;
  char *out = ir_malloc(cap);
  if (out) {
    size_t w = code ? (size_t)snprintf(out, cap, "x86-64 %zu bytes\n", n) : (size_t)snprintf(out, cap, "x86-64 refused: %s\n", why);
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; code && i < n; i++) {
      out[w++] = hx[code[i] >> 4], out[w++] = hx[code[i] & 15];
      if (i % 32 == 31 || i == n - 1) out[w++] = '\n';
    }
    if (c) w += (size_t)snprintf(out + w, cap - w, "#c\n%s", c);
    out[w] = 0;
  }
  free(c);
  xa_free(&a);
  return out;
}

static char *render_x86(const char *name, const linear *l) { return render_x86_with(name, l, cfg_int("CG_TIER", 0) > 0); }
static char *render_x86_tier(const char *name, const linear *l) { return render_x86_with(name, l, true); }

const renderer renderer_x86 = {"x86", NULL, render_x86};
const renderer renderer_x86_tier = {"x86+c", NULL, render_x86_tier};
