/* Simplify a flattened-and-unflattened 4-d index with cgrad's symbolic rules and print
 * the expression before and after. */
#include "uop/symbolic.h"
#include <stdio.h>

int main(void) {
  uop_pool_push();
  uop *i = uop_var("i", 0, 2 * 3 * 4 * 5 - 1);
  /* unflatten i over shape (2, 3, 4, 5), then flatten again */
  int64_t dims[4] = {2, 3, 4, 5}, stride = 1;
  uop *idx = NULL;
  for (int d = 3; d >= 0; d--) {
    uop *coord = uop_alu(OP_IDIV, i, uop_const_int(DT_I32, stride));
    if (d) coord = uop_alu(OP_MOD, coord, uop_const_int(DT_I32, dims[d]));
    uop *term = uop_alu(OP_MUL, coord, uop_const_int(DT_I32, stride));
    idx = idx ? uop_alu(OP_ADD, idx, term) : term;
    stride *= dims[d];
  }
  printf("before (%u nodes as a tree):\n", idx->tsize);
  uop_print(stdout, idx);
  uop *s = uop_simplify(idx);
  printf("after (%u):\n", s->tsize);
  uop_print(stdout, s);
  uop_pool_pop();
  return 0;
}
