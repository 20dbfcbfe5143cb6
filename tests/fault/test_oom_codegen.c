/* Out of memory in every codegen pass of a padded GEMM kernel (issue 14): PADTO / UPCAST
 * opts on a 9x3 @ 3x10 matmul (every axis padded), with every
 * allocation from the N-th on failing, for each N until the pipeline needs no more. Each
 * run must fail with CG_ERR_NOMEM (or absorb the failure and render the same source as the
 * run without failures), never dereference a node that failed to build: PADTO built its
 * gated kernel from a NULL substitution (found by the train sweep, N = 22601 of 27909,
 * a UBSan null member access in pad_gate). */
#include "check.h"
#include "cgrad.h"
#include "codegen/codegen.h"
#include "core/fault.h"
#include "renderer/render.h"
#include "schedule/schedule.h"
#include "tensor/tensor.h"
#include "uop/uop.h"
#include <string.h>

static char *render_padded(uop *ast, bool *fired, long n) {
  uop_pool_push_checked(); /* as a realize: IR nodes fail softly */
  ckernel k = {.ast = ast, .ren = renderer_find("c"), .opts_given = true};
  /* both output axes and the reduction padded (10 -> 12, 9 -> 10, 3 -> 4), small upcasts:
   * every PADTO path (gated stores, gated loads, the reduce identity) in few allocations */
  static const opt o[] = {{OPT_PADTO, 1, 4}, {OPT_UPCAST, 1, 4}, {OPT_PADTO, 0, 2}, {OPT_UPCAST, 0, 2}, {OPT_PADTO, 100, 2}};
  memcpy(k.opts, o, sizeof o), k.nopts = 5;
  snprintf(k.name, sizeof k.name, "padded");
  uint64_t nomem0 = uop_nomem_events();
  fault_arm(n, true);
  bool ok = codegen_run(&k);
  *fired = fault_fired();
  fault_arm(0, false);
  char *src = ok && uop_nomem_events() == nomem0 && k.src ? strdup(k.src) : NULL;
  ckernel_free(&k);
  uop_pool_pop();
  return src;
}

int main(void) {
  int64_t sa[2] = {9, 3}, sb[2] = {3, 10};
  /* realized inputs: a kernel reading no buffer may merge its output dims into one */
  cg_tensor *a = cg_ones(CG_FLOAT32, sa, 2), *b = cg_ones(CG_FLOAT32, sb, 2);
  CHECK(cg_realize(a) == CG_OK && cg_realize(b) == CG_OK, "%s", cg_last_error());
  cg_tensor *c = cg_matmul(a, b);
  CHECK(c != NULL, "%s", cg_last_error());
  uop_pool_push();
  schedule s;
  CHECK(c && sched_build(&c->u, 1, &s), "%s", cg_last_error());
  uop *ast = s.k[s.n - 1].ast;
  bool fired;
  char *ref = render_padded(ast, &fired, 0);
  CHECK(ref != NULL, "the run without failures: %s", cg_last_error());
  long n = 1, nomem = 0, same = 0;
  for (; ref && n < 200000; n++) {
    cg_clear_error();
    char *src = render_padded(ast, &fired, n);
    if (!fired) { /* past the pipeline's last allocation */
      CHECK(src && !strcmp(src, ref), "N=%ld: no failure injected, yet %s", n, src ? "another source" : cg_last_error());
      free(src);
      break;
    }
    if (src) {
      same++;
      CHECK(!strcmp(src, ref), "N=%ld: a failure absorbed, but another kernel rendered", n);
    } else {
      nomem++;
      CHECK(cg_last_status() == CG_ERR_NOMEM, "N=%ld: status %d: %s", n, (int)cg_last_status(), cg_last_error());
    }
    free(src);
  }
  printf("padded GEMM codegen: %ld allocations, %ld runs failed with CG_ERR_NOMEM, %ld absorbed the failure\n", n - 1, nomem, same);
  CHECK(nomem > 100, "the injection reached the codegen passes");
  free(ref);
  sched_free(&s);
  uop_pool_pop();
  cg_free(a), cg_free(b), cg_free(c);
  return test_summary();
}
