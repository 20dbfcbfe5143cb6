/* Which float multiply-adds round once: one rule for every CPU renderer, so the C backend
 * (compiled with -ffp-contract=off, the pairs spelled as fma) and the x86 machine code
 * give the same bits for the same linear program, and tiering (runtime/x86.c) may swap
 * one for the other at any launch. A MUL is fused into the ADD that reads it when:
 *   - both are float32 or float64 (scalars or vectors) of one dtype (the small floats
 *     round every result, so a MUL of theirs is never fused);
 *   - the MUL has that one reader and reads no accumulator (x86 computes acc * v in
 *     place);
 *   - no loop starts or ends between them.
 * An ADD whose two sources both qualify fuses its first. Knob NOFMA=1: none (bisecting). */
#include "render.h"
#include "core/config.h"
#include "uop/uopset.h"

static bool fma_dtype(dtype d) { return !d.addr && (d.scalar == CG_FLOAT32 || d.scalar == CG_FLOAT64); }

bool *render_fma_pairs(const linear *l) {
  bool *fused = ir_calloc((size_t)l->n + 1, sizeof(bool));
  int *uses = ir_calloc((size_t)l->n + 1, sizeof(int));
  uopset at = {0}; /* uop -> its instruction + 1 */
  bool ok = fused && uses;
  for (int i = 0; ok && i < l->n; i++) ok = uopset_put(&at, l->ins[i], (void *)(uintptr_t)(i + 1));
  for (int i = 0; ok && i < l->n; i++)
    for (uint32_t s = 0; s < l->ins[i]->nsrc; s++) {
      uintptr_t d = (uintptr_t)uopset_get(&at, l->ins[i]->src[s]);
      if (d) uses[d - 1]++;
    }
  for (int i = 0; ok && !cfg_int("NOFMA", 0) && i < l->n; i++) {
    uop *u = l->ins[i];
    if (u->op != OP_ADD || !fma_dtype(u->dt) || u->src[0] == u->src[1]) continue;
    for (uint32_t s = 0; s < 2; s++) {
      int d = (int)(uintptr_t)uopset_get(&at, u->src[s]) - 1;
      uop *m = d >= 0 ? l->ins[d] : NULL;
      if (!m || m->op != OP_MUL || !dt_eq(m->dt, u->dt) || uses[d] != 1) continue;
      bool plain = true;
      for (uint32_t k = 0; k < m->nsrc; k++) plain &= m->src[k]->op != OP_DEFINE_ACC && m->src[k]->op != OP_ASSIGN;
      for (int k = d + 1; k < i && plain; k++) plain = l->ins[k]->op != OP_RANGE && l->ins[k]->op != OP_END;
      if (plain) {
        fused[d] = true;
        break;
      }
    }
  }
  uopset_free(&at);
  free(uses);
  if (!ok) {
    free(fused);
    return NULL;
  }
  return fused;
}
