/* Evaluating ALU ops on constants: the reference meaning of every op (written beside it in
 * ops.def), which constant folding, the interpreter (runtime/interp.c) and every renderer
 * must match bit for bit (tests/codegen/test_alu_agree.c). In short: ints wrap at their
 * width; IDIV/MOD truncate toward zero (C) and x/0, x%0 give 0; shift counts are taken
 * modulo the width; float MAX propagates NaN and orders -0 below +0; float results are
 * computed as the kernels compute them: float64 in double, every other float in float32
 * (libm's float functions) and then rounded to the format; float -> int casts saturate
 * (NaN gives 0). */
#include "uop.h"
#include <math.h>

int64_t alu_wrap(dtype dt, int64_t v) {
  if (dt_is_bool(dt)) return v != 0;
  if (!dt_is_int(dt)) return v;
  int bits = dt_scalar_size(dt) * 8;
  if (bits == 64) return v;
  uint64_t m = (1ull << bits) - 1, u = (uint64_t)v & m;
  if (dt_is_unsigned(dt)) return (int64_t)u;
  return (int64_t)(u ^ (1ull << (bits - 1))) - (int64_t)(1ull << (bits - 1));
}

bool alu_eval_int(int op, dtype dt, const int64_t *x, int n, int64_t *out) {
  uint64_t a = n > 0 ? (uint64_t)x[0] : 0, b = n > 1 ? (uint64_t)x[1] : 0;
  /* values are held sign- or zero-extended, so only 64-bit unsigned needs unsigned math */
  bool u = dt_is_unsigned(dt);
  int bits = dt_is_bool(dt) ? 1 : dt_scalar_size(dt) * 8;
  int64_t r;
  switch (op) {
  case OP_NEG: r = dt_is_bool(dt) ? !x[0] : (int64_t)(0 - a); break;
  case OP_TRUNC: case OP_CAST: r = x[0]; break;
  case OP_ADD: r = dt_is_bool(dt) ? (x[0] || x[1]) : (int64_t)(a + b); break;
  case OP_MUL: r = dt_is_bool(dt) ? (x[0] && x[1]) : (int64_t)(a * b); break;
  case OP_IDIV:
    if (b == 0) r = 0;
    else if (u) r = (int64_t)(a / b);
    else if (x[1] == -1) r = (int64_t)(0 - a);
    else r = x[0] / x[1];
    break;
  case OP_MOD:
    if (b == 0) r = 0;
    else if (u) r = (int64_t)(a % b);
    else r = x[1] == -1 ? 0 : x[0] % x[1];
    break;
  case OP_MAX: r = (u ? a > b : x[0] > x[1]) ? x[0] : x[1]; break;
  case OP_CMPLT: r = u ? a < b : x[0] < x[1]; break;
  case OP_CMPNE: r = x[0] != x[1]; break;
  case OP_CMPEQ: r = x[0] == x[1]; break;
  case OP_XOR: r = (int64_t)(a ^ b); break;
  case OP_OR: r = (int64_t)(a | b); break;
  case OP_AND: r = (int64_t)(a & b); break;
  case OP_SHL: r = (int64_t)(a << (b & (uint64_t)(bits - 1))); break;
  case OP_SHR: {
    unsigned s = (unsigned)(b & (uint64_t)(bits - 1));
    r = u ? (int64_t)(a >> s) : (x[0] < 0 ? ~(int64_t)(~a >> s) : (int64_t)(a >> s));
    break;
  }
  case OP_WHERE: r = x[0] ? x[1] : x[2]; break;
  case OP_MULACC: r = dt_is_bool(dt) ? ((x[0] && x[1]) || x[2]) : (int64_t)(a * b + (uint64_t)x[2]); break;
  default: return false;
  }
  *out = op_has(op, F_CMP) ? r : alu_wrap(dt, r);
  return true;
}

double alu_round(dtype dt, double v) {
  switch (dt.scalar) {
  case CG_FLOAT32: return (float)v;
  case CG_FLOAT16: return cg_f16_to_f32(cg_f32_to_f16((float)v));
  case CG_BFLOAT16: return cg_bf16_to_f32(cg_f32_to_bf16((float)v));
  case CG_FP8E4M3: return cg_fp8e4m3_to_f32(cg_f32_to_fp8e4m3((float)v));
  case CG_FP8E5M2: return cg_fp8e5m2_to_f32(cg_f32_to_fp8e5m2((float)v));
  default: return v;
  }
}

/* IEEE 754-2019 maximum: NaN if either is NaN, +0 over -0 (so MAX stays commutative, as
 * the op table says; torch.maximum leaves the sign of a zero tie to operand order). */
static double fmax_nan(double a, double b) {
  if (isnan(a) || a > b) return a;
  return a == b && a == 0 ? a + b : b;
}

bool alu_eval_float(int op, dtype dt, const double *x, int n, double *out) {
  (void)n;
  /* kernels compute every float but float64 in float32 (then round to the format): the
   * transcendentals and fma must come from the same float functions to agree bit for bit */
  bool d = dt.scalar == CG_FLOAT64;
  double r;
  switch (op) {
  case OP_EXP2: r = d ? exp2(x[0]) : exp2f((float)x[0]); break;
  case OP_LOG2: r = d ? log2(x[0]) : log2f((float)x[0]); break;
  case OP_SIN: r = d ? sin(x[0]) : sinf((float)x[0]); break;
  case OP_SQRT: r = sqrt(x[0]); break; /* correctly rounded either way */
  case OP_RECIPROCAL: r = 1.0 / x[0]; break;
  case OP_NEG: r = -x[0]; break;
  case OP_TRUNC: r = trunc(x[0]); break;
  case OP_CAST: r = x[0]; break;
  case OP_ADD: r = x[0] + x[1]; break; /* double then float32 rounds as float32 once would */
  case OP_MUL: r = x[0] * x[1]; break;
  case OP_MAX: r = fmax_nan(x[0], x[1]); break;
  case OP_CMPLT: *out = x[0] < x[1]; return true;
  case OP_CMPNE: *out = x[0] != x[1]; return true;
  case OP_CMPEQ: *out = x[0] == x[1]; return true;
  case OP_WHERE: r = x[0] != 0 ? x[1] : x[2]; break;
  case OP_MULACC: r = d ? fma(x[0], x[1], x[2]) : fmaf((float)x[0], (float)x[1], (float)x[2]); break;
  default: return false;
  }
  *out = alu_round(dt, r);
  return true;
}

int64_t alu_float_to_int(dtype to, double v) {
  if (dt_is_bool(to)) return v != 0;
  int bits = dt_scalar_size(to) * 8;
  bool u = dt_is_unsigned(to);
  /* [lo, hi): the values whose integral part fits; both bounds are powers of two */
  double lo = u ? 0 : -ldexp(1, bits - 1), hi = ldexp(1, u ? bits : bits - 1);
  if (isnan(v)) return 0;
  if (v >= hi) return u ? alu_wrap(to, -1) : (int64_t)(((uint64_t)1 << (bits - 1)) - 1);
  if (v < lo) return u ? 0 : alu_wrap(to, (int64_t)((uint64_t)1 << (bits - 1)));
  if (u && bits == 64) return (int64_t)(uint64_t)v;
  return (int64_t)v;
}

double alu_int_to_float(dtype to, dtype from, int64_t v) {
  bool u64 = from.scalar == CG_UINT64;
  if (to.scalar == CG_FLOAT64) return u64 ? (double)(uint64_t)v : (double)v;
  /* one rounding to float32, as C converts, then to the format */
  return alu_round(to, u64 ? (float)(uint64_t)v : (float)v);
}
