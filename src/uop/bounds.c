/* vmin/vmax: the value range of every int and bool UOp, computed once when the node is
 * built from its sources' ranges. Exact arithmetic in 128 bits; a range that could wrap
 * at the dtype's width becomes the dtype's whole range (so rules that need "no overflow"
 * ask uop_fits). */
#include "uop.h"

typedef __int128 i128;

static i128 lo(const uop *u) { return u->vmin; }
static i128 hi(const uop *u) { return u->vmax; }
static i128 min2(i128 a, i128 b) { return a < b ? a : b; }
static i128 max2(i128 a, i128 b) { return a > b ? a : b; }

static void set(uop *u, i128 mn, i128 mx) {
  i128 dmin = dt_int_min(u->dt), dmax = dt_int_max(u->dt);
  if (mn < dmin || mx > dmax || mn > mx) mn = dmin, mx = dmax;
  u->vmin = (int64_t)mn;
  u->vmax = (int64_t)mx;
}

static i128 tdiv(i128 a, i128 b) { return a / b; } /* C truncation */

void uop_compute_bounds(uop *u) {
  u->vmin = u->vmax = 0;
  if (!(dt_is_int(u->dt) || dt_is_bool(u->dt)) || u->dt.addr) return;
  u->vmin = dt_int_min(u->dt);
  u->vmax = dt_int_max(u->dt);
  uop *a = u->nsrc > 0 ? u->src[0] : NULL, *b = u->nsrc > 1 ? u->src[1] : NULL;
  bool ints = a && (dt_is_int(a->dt) || dt_is_bool(a->dt)) && !a->dt.addr;
  switch (u->op) {
  case OP_CONST: set(u, u->arg.i, u->arg.i); return;
  case OP_DEFINE_VAR: set(u, u->arg.v[0], u->arg.v[1]); return;
  case OP_RANGE: set(u, 0, max2(hi(a) - 1, 0)); return;
  default: break;
  }
  if (!ints) return;
  if (op_has(u->op, F_CMP)) {
    bool t = false, f = false;
    if (u->op == OP_CMPLT) t = hi(a) < lo(b), f = lo(a) >= hi(b);
    if (u->op == OP_CMPNE || u->op == OP_CMPEQ) {
      bool disjoint = hi(a) < lo(b) || hi(b) < lo(a);
      bool same = lo(a) == hi(a) && lo(b) == hi(b) && lo(a) == lo(b);
      t = u->op == OP_CMPNE ? disjoint : same;
      f = u->op == OP_CMPNE ? same : disjoint;
    }
    set(u, t ? 1 : 0, f ? 0 : 1);
    return;
  }
  switch (u->op) {
  case OP_ADD: set(u, lo(a) + lo(b), hi(a) + hi(b)); break;
  case OP_NEG: if (dt_is_bool(u->dt)) set(u, 1 - hi(a), 1 - lo(a)); else set(u, -hi(a), -lo(a)); break;
  case OP_MUL: {
    i128 p[4] = {lo(a) * lo(b), lo(a) * hi(b), hi(a) * lo(b), hi(a) * hi(b)};
    set(u, min2(min2(p[0], p[1]), min2(p[2], p[3])), max2(max2(p[0], p[1]), max2(p[2], p[3])));
    break;
  }
  case OP_IDIV:
    if (lo(b) > 0 || hi(b) < 0) {
      i128 p[4] = {tdiv(lo(a), lo(b)), tdiv(lo(a), hi(b)), tdiv(hi(a), lo(b)), tdiv(hi(a), hi(b))};
      set(u, min2(min2(p[0], p[1]), min2(p[2], p[3])), max2(max2(p[0], p[1]), max2(p[2], p[3])));
    }
    break;
  case OP_MOD:
    if (lo(b) > 0 || hi(b) < 0) {
      i128 m = max2(lo(b) < 0 ? -lo(b) : lo(b), hi(b) < 0 ? -hi(b) : hi(b)) - 1;
      i128 mn = lo(a) >= 0 ? 0 : max2(lo(a), -m), mx = hi(a) <= 0 ? 0 : min2(hi(a), m);
      /* a range already inside [0, divisor) is unchanged by MOD */
      if (lo(a) >= 0 && lo(b) > 0 && hi(a) < lo(b)) mn = lo(a), mx = hi(a);
      set(u, mn, mx);
    }
    break;
  case OP_MAX: set(u, max2(lo(a), lo(b)), max2(hi(a), hi(b))); break;
  case OP_TRUNC: set(u, lo(a), hi(a)); break;
  case OP_CAST: set(u, lo(a), hi(a)); break; /* out of range => whole dtype range */
  case OP_WHERE: {
    uop *c = u->src[2];
    if (a->vmin == 1) set(u, lo(b), hi(b));
    else if (a->vmax == 0) set(u, lo(c), hi(c));
    else set(u, min2(lo(b), lo(c)), max2(hi(b), hi(c)));
    break;
  }
  case OP_AND:
    if (lo(a) >= 0 && lo(b) >= 0) set(u, 0, min2(hi(a), hi(b)));
    else if (lo(a) >= 0) set(u, 0, hi(a));
    else if (lo(b) >= 0) set(u, 0, hi(b));
    break;
  case OP_OR: case OP_XOR:
    if (lo(a) >= 0 && lo(b) >= 0) {
      i128 m = max2(hi(a), hi(b)), p = 1;
      while (p <= m) p <<= 1;
      set(u, u->op == OP_OR ? max2(lo(a), lo(b)) : 0, p - 1);
    }
    break;
  case OP_SHL:
    if (lo(b) == hi(b) && lo(b) >= 0 && lo(b) < 62) set(u, lo(a) * ((i128)1 << lo(b)), hi(a) * ((i128)1 << lo(b)));
    break;
  case OP_SHR:
    if (lo(b) == hi(b) && lo(b) >= 0 && lo(b) < 63) set(u, lo(a) >> lo(b), hi(a) >> lo(b));
    break;
  case OP_MULACC: {
    i128 p[4] = {lo(a) * lo(b), lo(a) * hi(b), hi(a) * lo(b), hi(a) * hi(b)};
    set(u, min2(min2(p[0], p[1]), min2(p[2], p[3])) + lo(u->src[2]), max2(max2(p[0], p[1]), max2(p[2], p[3])) + hi(u->src[2]));
    break;
  }
  default: break;
  }
}

bool uop_fits(const uop *u) {
  if (!dt_is_int(u->dt)) return true;
  return !(u->vmin == dt_int_min(u->dt) && u->vmax == dt_int_max(u->dt));
}
