/* How fast can a GPT training step be on this CPU: the step's matrix products counted from
 * the model's shape, and the time they alone take at the arithmetic units' peaks measured
 * here (bench/peaks.h), next to the step times measured by bench_gpt.sh. A target below
 * that bound cannot be met by any schedule of the same products; the printed share says
 * how much of the peak a step time would need on its products alone (every other kernel of
 * the step, norms, softmax, GELU, the optimizer, takes time on top).
 *
 * Products: each linear (qkv, proj, fc, fc2 per block, and the tied head) costs 2 N in out
 * flops forward and twice that backward (dx and dw); causal attention, counting only the
 * scores at or below the diagonal and no recomputation, 2 products forward (q k^T, p v) and
 * 4 backward (dO v^T, ds k, ds^T q, p^T dO), each 2 B H (T (T + 1) / 2) D flops.
 *
 *   CG_THREADS=2 build/bench_gpt_bound L C H T B V [ms:name ...]
 * e.g. bench_gpt_bound 6 384 6 256 8 101 float32:pytorch=514 bf16:pytorch=290 float32:cgrad=385
 * (a "float32:" time is compared with the FMA peak, a "bf16:" one with vdpbf16ps's). */
#define _GNU_SOURCE
#include "bench_util.h"
#include "peaks.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  if (argc < 7) {
    fprintf(stderr, "usage: %s L C H T B V [float32|bf16:name=ms ...]\n", argv[0]);
    return 2;
  }
  double L = atof(argv[1]), C = atof(argv[2]), H = atof(argv[3]), T = atof(argv[4]), B = atof(argv[5]), V = atof(argv[6]);
  if (!(L > 0 && C > 0 && H > 0 && T > 0 && B > 0 && V > 0)) {
    fprintf(stderr, "%s: expected positive L C H T B V\n", argv[0]);
    return 2;
  }
  const char *th = getenv("CG_THREADS");
  int threads = th && atoi(th) > 0 ? atoi(th) : 2;
  double N = B * T, D = C / H;
  double lin = 3 * 2 * N * (L * (C * 3 * C + C * C + C * 4 * C + 4 * C * C) + C * V);
  double att = L * 6 * 2 * B * H * (T * (T + 1) / 2) * D;
  double tot = lin + att;
  double pf = fma_peak(threads), pb = dpbf16_peak(threads);
  printf("GPT step products (%g layers, width %g, %g heads, T %g, batch %g, vocabulary %g): linears %.1f GFLOP, causal attention %.1f GFLOP, "
         "%.1f GFLOP in all\n",
         L, C, H, T, B, V, lin * 1e-9, att * 1e-9, tot * 1e-9);
  printf("measured peaks on %d thread%s: float32 FMA %.1f GFLOP/s, vdpbf16ps %.1f GFLOP/s%s\n", threads, threads == 1 ? "" : "s", pf, pb,
         pb ? "" : " (no AVX512-BF16)");
  printf("products alone at the peak: float32 %.1f ms", tot * 1e-6 / pf);
  if (pb) printf(", bf16 %.1f ms", tot * 1e-6 / pb);
  printf("\n");
  for (int i = 7; i < argc; i++) {
    const char *colon = strchr(argv[i], ':'), *eq = strchr(argv[i], '=');
    if (!colon || !eq || eq < colon) {
      fprintf(stderr, "%s: expected float32:name=ms or bf16:name=ms, got %s\n", argv[0], argv[i]);
      return 2;
    }
    bool bf = !strncmp(argv[i], "bf16:", 5);
    double ms = atof(eq + 1), peak = bf ? pb : pf;
    if (!(ms > 0) || !(peak > 0)) continue;
    double need = tot * 1e-9 / (ms * 1e-3) / peak; /* a share of the peak */
    printf("  %-28.*s %8.1f ms: its products alone would run at %5.1f%% of the %s peak; half that time (2x) needs %5.1f%%\n", (int)(eq - argv[i]),
           argv[i], ms, 100 * need, bf ? "vdpbf16ps" : "FMA", 200 * need);
  }
  return 0;
}
