/* Kernel opts (see opt.c). */
#ifndef CG_CODEGEN_OPT_H
#define CG_CODEGEN_OPT_H
#include "uop/uop.h"
#include <stddef.h>

/* Apply the heuristic's opts to a lowered kernel (SINK of STOREs); updates the size of
 * the outermost parallel range and writes a description of the opts ("none" if none). */
uop *opt_apply(uop *sink, int64_t *global, char *desc, size_t ndesc);

#endif
