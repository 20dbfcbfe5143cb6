/* Evaluating ALU ops on constants: the semantics that constant folding, the simplifier's
 * fuzzer and every backend must agree on. Ints wrap at their width; IDIV/MOD truncate
 * toward zero (C), x/0 and x%0 give 0 here (the IR leaves them undefined); shift counts
 * are taken modulo the width. */
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
  int bits = dt_is_bool(dt) ? 1 : dt_scalar_size(dt) * 8;
  int64_t r;
  switch (op) {
  case OP_NEG: r = dt_is_bool(dt) ? !x[0] : (int64_t)(0 - a); break;
  case OP_TRUNC: case OP_CAST: r = x[0]; break;
  case OP_ADD: r = dt_is_bool(dt) ? (x[0] || x[1]) : (int64_t)(a + b); break;
  case OP_MUL: r = dt_is_bool(dt) ? (x[0] && x[1]) : (int64_t)(a * b); break;
  case OP_IDIV:
    if (x[1] == 0) r = 0;
    else if (x[1] == -1) r = (int64_t)(0 - a);
    else r = x[0] / x[1];
    break;
  case OP_MOD: r = (x[1] == 0 || x[1] == -1) ? 0 : x[0] % x[1]; break;
  case OP_MAX: r = x[0] > x[1] ? x[0] : x[1]; break;
  case OP_CMPLT: r = x[0] < x[1]; break;
  case OP_CMPNE: r = x[0] != x[1]; break;
  case OP_CMPEQ: r = x[0] == x[1]; break;
  case OP_XOR: r = (int64_t)(a ^ b); break;
  case OP_OR: r = (int64_t)(a | b); break;
  case OP_AND: r = (int64_t)(a & b); break;
  case OP_SHL: r = (int64_t)(a << (b & (uint64_t)(bits - 1))); break;
  case OP_SHR: {
    unsigned s = (unsigned)(b & (uint64_t)(bits - 1));
    r = dt_is_unsigned(dt) ? (int64_t)(a >> s) : (x[0] < 0 ? ~(int64_t)(~a >> s) : (int64_t)(a >> s));
    break;
  }
  case OP_WHERE: r = x[0] ? x[1] : x[2]; break;
  case OP_MULACC: r = (int64_t)(a * b + (uint64_t)x[2]); break;
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

bool alu_eval_float(int op, dtype dt, const double *x, int n, double *out) {
  (void)n;
  double r;
  switch (op) {
  case OP_EXP2: r = exp2(x[0]); break;
  case OP_LOG2: r = log2(x[0]); break;
  case OP_SIN: r = sin(x[0]); break;
  case OP_SQRT: r = sqrt(x[0]); break;
  case OP_RECIPROCAL: r = 1.0 / x[0]; break;
  case OP_NEG: r = -x[0]; break;
  case OP_TRUNC: r = trunc(x[0]); break;
  case OP_CAST: r = x[0]; break;
  case OP_ADD: r = x[0] + x[1]; break;
  case OP_MUL: r = x[0] * x[1]; break;
  case OP_MAX: r = (x[0] > x[1] || isnan(x[0])) ? x[0] : x[1]; break;
  case OP_CMPLT: *out = x[0] < x[1]; return true;
  case OP_CMPNE: *out = x[0] != x[1]; return true;
  case OP_CMPEQ: *out = x[0] == x[1]; return true;
  case OP_WHERE: r = x[0] != 0 ? x[1] : x[2]; break;
  case OP_MULACC: r = x[0] * x[1] + x[2]; break;
  default: return false;
  }
  *out = alu_round(dt, r);
  return true;
}
