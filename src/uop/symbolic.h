/* Symbolic arithmetic: the rule sets every later stage leans on.
 *   rs_symbolic  constant folding, identities, reassociation, div/mod folding by bounds,
 *                comparisons and MAX decided by bounds, WHERE folding (ints and floats).
 * Division semantics: IDIV truncates toward zero and MOD takes the sign of the dividend
 * (C), so every rule that moves terms across a division checks signs through vmin/vmax;
 * rules that cancel a multiplication check that it cannot wrap (uop_fits). */
#ifndef CG_UOP_SYMBOLIC_H
#define CG_UOP_SYMBOLIC_H
#include "rewrite.h"

extern rw_ruleset rs_symbolic;

/* Simplify an expression with rs_symbolic (owned by the current pool). */
uop *uop_simplify(uop *u);

#endif
