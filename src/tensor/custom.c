/* Custom-gradient nodes (see custom.h). */
#include "custom.h"
#include <string.h>

uop *custom_node(const custom_kind *kind, uop *value, uop *const *srcs, int n, const int64_t *params, int np) {
  CG_ASSERT(n + 1 <= CUSTOM_MAX_SRC && np <= 15, "custom node with %d sources and %d params", n + 1, np);
  uop *src[CUSTOM_MAX_SRC];
  int64_t a[16];
  src[0] = value;
  memcpy(src + 1, srcs, sizeof(uop *) * (size_t)n);
  a[0] = (int64_t)(intptr_t)kind;
  if (np) memcpy(a + 1, params, sizeof(int64_t) * (size_t)np);
  return uop_new(OP_CUSTOM, value->dt, src, n + 1, arg_ints(a, np + 1));
}

const custom_kind *custom_kind_of(const uop *u) {
  CG_ASSERT(u->op == OP_CUSTOM && u->arg.kind == ARG_INTS && u->arg.n >= 1, "not a CUSTOM node");
  return (const custom_kind *)(intptr_t)u->arg.v[0];
}

static _Thread_local cg_status failure;
void custom_fail(cg_status st) {
  if (failure == CG_OK) failure = st;
}
cg_status custom_take_failure(void) {
  cg_status st = failure;
  failure = CG_OK;
  return st;
}
