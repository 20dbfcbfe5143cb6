/* Renderers: a kernel AST (SINK of STOREs over INDEX/LOAD/ALU/REDUCE/RANGE) to source. */
#ifndef CG_RENDERER_H
#define CG_RENDERER_H
#include "uop/uop.h"

/* C source for the CPU backend: one function `name` with the CPU kernel ABI
 * (runtime/device.h); bufs[i] becomes data<i>, the first nout are written. Caller frees. */
char *render_c(const char *name, uop *ast, uop **bufs, int nbufs, int nout);

#endif
