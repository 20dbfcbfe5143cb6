/* Copies and casts of permuted views: a transposed copy (loads contiguous along one dim,
 * stores along another) is expanded into vector loads along the first and an in-register
 * transpose (codegen/expand.c unroll_transposed, renderer/render_c.c transposes) instead of
 * a gather per lane; a bf16 -> bf16 copy (a GEMM's panel pack of a bf16 operand) moves
 * vectors of bits instead of rounding each element through float32. Checked here:
 *   - every element of copies/casts of permuted views, bit for bit, against plain C: 2-d
 *     transposes of sizes the 16- and 8-wide tiles divide and of odd sizes (tails), 3-d
 *     permutations, the 32-column panel pack (K, N) -> (N/32, K, 32), from and to
 *     float32 / bfloat16 / float16, with +-0, +-inf, denormals and float16 overflow among
 *     the values; on the C backend (CG_TIER=0), the x86 machine-code backend (DEVICE=X86:
 *     its float32 kernels; the others compile as C) and the interpreter;
 *   - each is one kernel, and the C source of a float32-source transpose uses the
 *     in-register transpose and no gather; a bf16 panel pack moves u16 vectors; a head
 *     merge (a permuted view reshaped) loads vectors, no MOD per lane;
 *   - bf16 copies of a broadcast column and of flipped rows, and a sum of more transposed
 *     bf16 inputs than expand transposes (lane by lane), bit for bit.
 * Rounding: float32 -> bfloat16 / float16 to nearest even, as the C reference does. */
#include "check.h"
#include "cgrad.h"
#include "codegen/codegen.h"
#include "renderer/render.h"
#include "schedule/schedule.h"
#include "tensor/tensor.h"
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

static uint16_t bf16_rne(float f) {
  uint32_t b;
  memcpy(&b, &f, 4);
  if ((b & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((b >> 16) | 0x40); /* NaN: quiet */
  return (uint16_t)((b + 0x7fffu + ((b >> 16) & 1)) >> 16);
}
static uint16_t f16_rne(float f) {
  _Float16 h = (_Float16)f; /* the compiler's conversion: to nearest even */
  uint16_t b;
  memcpy(&b, &h, 2);
  return b;
}
static size_t esize(cg_dtype d) { return d == CG_FLOAT32 ? 4 : 2; }
static const char *dname(cg_dtype d) { return d == CG_FLOAT32 ? "f32" : d == CG_BFLOAT16 ? "bf16" : "f16"; }

/* values: random in [-8, 8) with specials mixed in */
static float value(int64_t i) {
  static const float special[] = {0.0f, -0.0f, INFINITY, -INFINITY, 1e-40f, -3e-39f, 65504.0f, 1e5f, -7e4f, 1.0f + 0x1p-9f, 0x1p-20f};
  if (rand() % 7 == 0) return special[(size_t)(i * 7 + rand()) % (sizeof special / sizeof *special)];
  return (float)rand() / (float)RAND_MAX * 16.0f - 8.0f;
}

typedef struct {
  int nd;
  int64_t shape[3];
  int perm[3];
  bool pack;  /* (K, N) -> (K, N/32, 32) -> (N/32, K, 32) */
  bool merge; /* the permuted 3-d view reshaped to 2-d, its last two dims merged: attention's
               * head merge (H, T, D) -> (T, H*D) */
} view;

static int nchecked;

/* out = contiguous(cast(permute(x, perm), dst)) for x of dtype src, on the current device */
static void check_case(const view *v, cg_dtype src, cg_dtype dst, const char *dev) {
  int64_t n = 1;
  for (int i = 0; i < v->nd; i++) n *= v->shape[i];
  float *h = malloc(sizeof(float) * (size_t)n), *hs = malloc(sizeof(float) * (size_t)n);
  uint8_t *got = malloc(4 * (size_t)n), *want = malloc(4 * (size_t)n);
  for (int64_t i = 0; i < n; i++) h[i] = value(i);
  cg_tensor *x = cg_cast(cg_from_data(h, CG_FLOAT32, v->shape, v->nd), src);
  CHECK(x && cg_realize(x) == CG_OK, "source: %s", cg_last_error());
  /* its values, exact in float32 */
  CHECK(cg_read(x, src, got, esize(src) * (size_t)n) == CG_OK, "%s", cg_last_error());
  for (int64_t i = 0; i < n; i++) {
    uint16_t b;
    if (src == CG_FLOAT32) memcpy(&hs[i], got + 4 * i, 4);
    else if (memcpy(&b, got + 2 * i, 2), src == CG_BFLOAT16) {
      uint32_t w = (uint32_t)b << 16;
      memcpy(&hs[i], &w, 4);
    } else {
      _Float16 hf;
      memcpy(&hf, &b, 2);
      hs[i] = (float)hf;
    }
  }
  cg_tensor *p;
  int64_t oshape[3];
  int ond = v->nd;
  if (v->pack) {
    int64_t K = v->shape[0], N = v->shape[1];
    p = cg_permute(cg_reshape(x, (int64_t[]){K, N / 32, 32}, 3), (int[]){1, 0, 2}, 3);
    oshape[0] = N / 32, oshape[1] = K, oshape[2] = 32, ond = 3;
  } else {
    p = cg_permute(x, v->perm, v->nd);
    for (int i = 0; i < v->nd; i++) oshape[i] = v->shape[v->perm[i]];
  }
  if (v->merge) p = cg_reshape(p, (int64_t[]){oshape[0], oshape[1] * oshape[2]}, 2); /* the same elements in the same order */
  cg_tensor *out = cg_contiguous(cg_cast(p, dst));
  /* one kernel, and (on the C renderer) the fast forms */
  uop_pool_push();
  schedule s;
  bool ok = out && sched_build(&out->u, 1, &s);
  CHECK(ok && s.n == 1, "one kernel: %s", cg_last_error());
  char what[160];
  snprintf(what, sizeof what, "%s %s->%s %dd (%lld,%lld,%lld)%s", dev, dname(src), dname(dst), v->nd, (long long)v->shape[0], (long long)v->shape[1],
           (long long)(v->nd > 2 ? v->shape[2] : 1), v->pack ? " pack" : v->merge ? " merged" : "");
  if (ok && s.n == 1 && !strcmp(dev, "C")) {
    ckernel k = {.ast = s.k[0].ast, .ren = renderer_find("c")};
    snprintf(k.name, sizeof k.name, "k");
    bool run = codegen_run(&k);
    CHECK(run, "codegen: %s", cg_last_error());
    const char *body = run ? strstr(k.src, "void k(") : NULL; /* the kernel, after the prelude */
    int64_t rows = v->pack ? v->shape[0] : v->shape[v->perm[v->nd - 1]], cols = v->shape[v->nd - 1];
    /* a float32 source transposed in 16- or 8-wide tiles that divide both dims (to float32
     * or bfloat16: float16 has no vector form, so every lane is unrolled), and a bf16 one
     * to bf16 (bits) */
    if (run && (src == CG_FLOAT32 || (src == CG_BFLOAT16 && dst == CG_BFLOAT16)) && dst != CG_FLOAT16 && !v->pack && v->perm[v->nd - 1] != v->nd - 1 && rows % 16 == 0 && cols % 16 == 0)
      CHECK(body && strstr(body, src == CG_FLOAT32 ? "transpose_f32x" : "transpose_u16x") && !strstr(body, "gather_") && !strstr(body, "_to_f32("), "%s: an in-register transpose, no gather", what);
    /* a head merge whose rows are 16-wide runs: vector loads, no MOD per lane (symbolic.c's
     * x % c split takes the lane out of the MOD) */
    if (run && v->merge && src == CG_FLOAT32 && dst != CG_FLOAT16 && v->shape[2] % 16 == 0)
      CHECK(body && strstr(body, "f32x16_u *)(data1 + ") && !strstr(body, "gather_") && !strstr(body, "%32)"), "%s: vector loads, no gather or MOD per lane", what);
    if (run && src == CG_BFLOAT16 && dst == CG_BFLOAT16 && v->pack)
      CHECK(body && strstr(body, "u16x16") && !strstr(body, "bf16_to_f32"), "%s: bf16 bits moved as vectors", what);
    ckernel_free(&k);
  }
  if (ok) sched_free(&s);
  uop_pool_pop();
  /* the reference: the permuted index, the value rounded to dst */
  int64_t ostride[3], istride[3];
  istride[v->nd - 1] = 1;
  for (int i = v->nd - 2; i >= 0; i--) istride[i] = istride[i + 1] * v->shape[i + 1];
  ostride[ond - 1] = 1;
  for (int i = ond - 2; i >= 0; i--) ostride[i] = ostride[i + 1] * oshape[i + 1];
  for (int64_t o = 0; o < n; o++) {
    int64_t idx[3] = {0}, rem = o, in = 0;
    for (int i = 0; i < ond; i++) idx[i] = rem / ostride[i], rem %= ostride[i];
    if (v->pack) in = idx[1] * istride[0] + idx[0] * 32 + idx[2];
    else
      for (int i = 0; i < v->nd; i++) in += idx[i] * istride[v->perm[i]];
    float f = hs[in];
    if (dst == CG_FLOAT32) memcpy(want + 4 * o, &f, 4);
    else {
      uint16_t b = dst == CG_BFLOAT16 ? bf16_rne(f) : f16_rne(f);
      memcpy(want + 2 * o, &b, 2);
    }
  }
  cg_status st = out ? cg_read(out, dst, got, esize(dst) * (size_t)n) : CG_ERR_RUNTIME;
  CHECK(st == CG_OK, "%s: %s", what, cg_last_error());
  int64_t bad = -1;
  for (int64_t o = 0; st == CG_OK && o < n && bad < 0; o++)
    if (memcmp(got + esize(dst) * (size_t)o, want + esize(dst) * (size_t)o, esize(dst))) bad = o;
  CHECK(bad < 0, "%s: element %lld differs from plain C", what, (long long)bad);
  nchecked++;
  free(h), free(hs), free(got), free(want);
}

/* bf16 -> bf16 copies that are not a vector load along the output's rows: a broadcast
 * column (the value lane-invariant) and a flipped row, bit for bit */
static void bf16_broadcast_flip(void) {
  enum { R = 3, C = 32 };
  float h[R * C];
  for (int i = 0; i < R * C; i++) h[i] = value(i);
  cg_tensor *x = cg_cast(cg_from_data(h, CG_FLOAT32, (int64_t[]){R, C}, 2), CG_BFLOAT16);
  uint16_t xs[R * C], got[R * C];
  CHECK(x && cg_realize(x) == CG_OK && cg_read(x, CG_BFLOAT16, xs, sizeof xs) == CG_OK, "%s", cg_last_error());
  cg_tensor *col = cg_contiguous(cg_expand(cg_slice(x, 1, 5, 6, 1), (int64_t[]){R, C}, 2)), *flip = cg_contiguous(cg_flip(x, (int[]){1}, 1));
  CHECK(col && cg_read(col, CG_BFLOAT16, got, sizeof got) == CG_OK, "%s", cg_last_error());
  int bad = -1;
  for (int i = 0; i < R * C && bad < 0; i++) bad = got[i] == xs[i / C * C + 5] ? -1 : i;
  CHECK(bad < 0, "broadcast bf16 column: element %d", bad);
  CHECK(flip && cg_read(flip, CG_BFLOAT16, got, sizeof got) == CG_OK, "%s", cg_last_error());
  bad = -1;
  for (int i = 0; i < R * C && bad < 0; i++) bad = got[i] == xs[i / C * C + (C - 1 - i % C)] ? -1 : i;
  CHECK(bad < 0, "flipped bf16 rows: element %d", bad);
}

/* More transposed bf16 loads than expand replaces (MAX_TLOADS, 8): nine transposed bf16
 * inputs summed in float32 and rounded to bf16 -- no vector form for the rest, so the kernel
 * runs lane by lane, bit for bit with the same sums in C */
static void many_transposed_bf16(void) {
  enum { N = 9, R = 32, C = 16 };
  float h[R * C], xs[N][R * C];
  cg_tensor *sum = NULL;
  for (int t = 0; t < N; t++) {
    for (int i = 0; i < R * C; i++) h[i] = (float)rand() / (float)RAND_MAX * 4.0f - 2.0f;
    cg_tensor *x = cg_cast(cg_from_data(h, CG_FLOAT32, (int64_t[]){R, C}, 2), CG_BFLOAT16);
    uint16_t b[R * C];
    CHECK(x && cg_realize(x) == CG_OK && cg_read(x, CG_BFLOAT16, b, sizeof b) == CG_OK, "%s", cg_last_error());
    for (int i = 0; i < R * C; i++) {
      uint32_t w = (uint32_t)b[i] << 16;
      memcpy(&xs[t][i], &w, 4);
    }
    cg_tensor *xt = cg_cast(cg_transpose(x, 0, 1), CG_FLOAT32);
    sum = sum ? cg_add(sum, xt) : xt;
  }
  uint16_t got[R * C];
  cg_tensor *out = cg_contiguous(cg_cast(sum, CG_BFLOAT16));
  CHECK(out && cg_read(out, CG_BFLOAT16, got, sizeof got) == CG_OK, "%s", cg_last_error());
  int bad = -1;
  for (int o = 0; o < R * C && bad < 0; o++) {
    int j = o / R, i = o % R; /* out (C, R) */
    float acc = xs[0][i * C + j];
    for (int t = 1; t < N; t++) acc += xs[t][i * C + j];
    bad = got[o] == bf16_rne(acc) ? -1 : o;
  }
  CHECK(bad < 0, "nine transposed bf16 inputs summed: element %d: %04x", bad, bad >= 0 ? got[bad] : 0);
}

int main(void) {
  srand((unsigned)time(NULL));
  static const view views[] = {
      {2, {64, 48}, {1, 0}, false, false},      {2, {17, 33}, {1, 0}, false, false},       {3, {6, 17, 32}, {1, 0, 2}, false, false}, {2, {48, 128}, {0, 0}, true, false},
      {2, {5, 70}, {1, 0}, false, false},       {2, {128, 96}, {1, 0}, false, false},      {2, {40, 24}, {1, 0}, false, false},       {3, {4, 24, 40}, {0, 2, 1}, false, false},
      {3, {3, 20, 48}, {2, 1, 0}, false, false}, {3, {16, 5, 16}, {2, 0, 1}, false, false}, {2, {40, 96}, {0, 0}, true, false},
      {3, {6, 20, 32}, {1, 0, 2}, false, true}, {3, {3, 9, 24}, {1, 0, 2}, false, true},
  };
  static const cg_dtype all[][2] = {{CG_FLOAT32, CG_FLOAT32},   {CG_FLOAT32, CG_BFLOAT16}, {CG_BFLOAT16, CG_BFLOAT16}, {CG_FLOAT32, CG_FLOAT16},
                                    {CG_FLOAT16, CG_FLOAT16},   {CG_BFLOAT16, CG_FLOAT32}, {CG_FLOAT16, CG_BFLOAT16}};
  const char *devs[] = {"C", "X86", "INTERP"};
  for (int d = 0; d < 3; d++) {
    cg_set_config("CG_TIER", d == 0 ? "0" : "1");
    cg_set_config("DEVICE", d == 0 ? "CPU" : devs[d]);
    for (size_t v = 0; v < sizeof views / sizeof *views; v++)
      /* every dtype pair on the first three views, the GPT's three on the rest */
      for (size_t p = 0; p < (v < 3 ? sizeof all / sizeof *all : 3); p++) {
        cg_scope_begin();
        check_case(&views[v], all[p][0], all[p][1], devs[d]);
        cg_scope_end();
      }
    cg_scope_begin();
    bf16_broadcast_flip();
    many_transposed_bf16();
    cg_scope_end();
  }
  cg_set_config("DEVICE", "CPU");
  cg_set_config("CG_TIER", "1");
  printf("%d copies checked\n", nchecked);
  return test_summary();
}
