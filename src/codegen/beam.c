/* BEAM search over opt lists (ARCHITECTURE §6): BEAM=n keeps the n fastest lists each
 * round, extends each by one opt (an UPCAST, UNROLL, THREAD or TILE that divides its axis;
 * a GEMM starts from the heuristic's list and other register tiles and column blocks,
 * opt_gemm_candidates),
 * compiles the new candidates together (dev->compile_many: every core) and times them on
 * scratch buffers of the kernel's sizes; it stops when a round finds nothing faster or
 * BEAM_BUDGET_S (default 10) seconds have passed, or 2000 runs of its best time (at least
 * 1 s: a cheap kernel is worth little search). The winner is kept on disk in the
 * kernel cache directory, under a key of the kernel's structure, device, renderer,
 * compiler, flags, CPU, the device's thread count and cgrad version (tinygrad once served
 * BEAM results tuned under other flags from a key that omitted them; a tile chosen for
 * one thread is not the one for two), so a second process takes it with no search.
 * An entry that does not check out is deleted and searched again. */
#include "codegen.h"
#include "core/config.h"
#include "core/fileio.h"
#include "runtime/cpu_compile.h"
#include "runtime/cpu_features.h"
#include "runtime/device.h"
#include "runtime/disk_cache.h"
#include "runtime/hash128.h"
#include "runtime/threadpool.h"
#include "uop/uopset.h"
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static beam_stats stats;
beam_stats beam_get_stats(void) { return stats; }

static double clock_s(clockid_t id) {
  struct timespec t;
  clock_gettime(id, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
static double now(void) { return clock_s(CLOCK_MONOTONIC); }

/* ---- the disk entry: "cgrad-beam 1 <key> <n> kind axis amount ... <check>" ----------- */

static void beam_key(uop *ast, const renderer *ren, rt_device *dev, uint64_t key[2]) {
  char *s = uop_to_string(ast);
  uint64_t cc[2];
  rt_cc_key("beam", "", cc); /* compiler, its version, flags, CPU model and features */
  key[0] = 0x6265616d2d6b6579ULL, key[1] = 3; /* 2: lowering merges output dims (merge_dims.c): axis ids of older entries differ; 3: the thread count */
  rt_hash128_str(s ? s : "", key);
  rt_hash128_str(dev->name, key);
  rt_hash128_str(ren->name, key);
  rt_hash128(cc, sizeof cc, key);
  rt_hash128_str(CG_VERSION, key);
  rt_hash128_str(rt_cpu_features_str(rt_cpu_features()), key); /* the TC units it may use (CG_CPU_FEATURES) */
  int64_t threads = rt_pool_threads(rt_pool_of(dev->index)); /* the pool its launches split over */
  rt_hash128(&threads, sizeof threads, key);
  free(s);
}

static char *entry_path(const uint64_t key[2]) {
  char *dir = rt_cache_dir();
  if (!dir) return NULL;
  size_t n = strlen(dir) + 64;
  char *p = cg_malloc(n);
  if (p) snprintf(p, n, "%s/beam-%016" PRIx64 "%016" PRIx64 ".txt", dir, key[0], key[1]);
  free(dir);
  return p;
}

static uint64_t check_of(const uint64_t key[2], const opt *o, int n) {
  uint64_t h[2] = {key[0], key[1]};
  for (int i = 0; i < n; i++) { /* field by field: a struct's padding is not data */
    int64_t f[3] = {o[i].kind, o[i].axis, o[i].amount};
    rt_hash128(f, sizeof f, h);
  }
  return h[0] ^ h[1];
}

/* The opts stored for key: how many (>= 0), or -1 when there is no sound entry (a corrupt
 * one is deleted). */
static int load_entry(const char *path, const uint64_t key[2], opt *out) {
  size_t size;
  char *text = access(path, F_OK) == 0 ? fio_read_all(path, &size) : NULL;
  if (!text) return -1;
  uint64_t k0, k1, check;
  int n, used, ok = sscanf(text, "cgrad-beam 1 %" SCNx64 " %" SCNx64 " %d%n", &k0, &k1, &n, &used) == 3 && k0 == key[0] && k1 == key[1] && n >= 0 &&
                         n <= MAX_OPTS;
  const char *s = text + (ok ? used : 0);
  for (int i = 0; ok && i < n; i++) {
    int kind, axis, amount, u;
    ok = sscanf(s, " %d %d %d%n", &kind, &axis, &amount, &u) == 3 && kind >= 0 && kind < OPT_NKINDS;
    out[i] = (opt){(uint8_t)kind, (int16_t)axis, amount};
    s += ok ? u : 0;
  }
  ok = ok && sscanf(s, " %" SCNx64, &check) == 1 && check == check_of(key, out, n);
  free(text);
  if (!ok) {
    unlink(path);
    stats.rejects++;
    return -1;
  }
  return n;
}

typedef struct { const uint64_t *key; const opt *o; int n; } entry_ctx;
static cg_status write_entry(FILE *f, void *arg) {
  entry_ctx *c = arg;
  fprintf(f, "cgrad-beam 1 %016" PRIx64 " %016" PRIx64 " %d", c->key[0], c->key[1], c->n);
  for (int i = 0; i < c->n; i++) fprintf(f, " %d %d %d", c->o[i].kind, c->o[i].axis, c->o[i].amount);
  fprintf(f, " %016" PRIx64 "\n", check_of(c->key, c->o, c->n));
  return CG_OK;
}

/* ---- the search ---------------------------------------------------------------------- */

typedef struct {
  opt o[MAX_OPTS];
  int n;
  double t;          /* seconds, +inf when it failed */
} cand;

static bool same_list(const cand *a, const cand *b) { return opts_eq(a->o, a->n, b->o, b->n); }

static void find_ranges(uop *u, uopset *seen, uop **out, int *n) {
  if (uopset_add(seen, u) <= 0 || u->op == OP_DEFINE_GLOBAL) return;
  if (u->op == OP_RANGE && *n < 32) {
    for (int i = 0; i < *n; i++)
      if (out[i]->arg.v[0] == u->arg.v[0]) return;
    out[(*n)++] = u;
  }
  for (uint32_t i = 0; i < u->nsrc; i++) find_ranges(u->src[i], seen, out, n);
}

static void find_slots(uop *u, uopset *seen, uop **slot, int max) {
  if (uopset_add(seen, u) <= 0) return;
  if (u->op == OP_DEFINE_GLOBAL && u->arg.v[0] < max) slot[u->arg.v[0]] = u;
  for (uint32_t i = 0; i < u->nsrc; i++) find_slots(u->src[i], seen, slot, max);
}

typedef struct {
  uop *ast;
  const renderer *ren;
  rt_device *dev;
  void **bufs;
  int nbufs;
  int64_t *vars;     /* zeros for the kernel's var slots (timing does not depend on them) */
  int64_t tries;
  double deadline;   /* BEAM_BUDGET_S after the start: candidates after it are not timed */
  double compile_s;  /* wall seconds one candidate's compile took, per core (measured) */
  clockid_t clock;   /* the timing clock: the thread's CPU time where launches run on the
                      * calling thread alone (a 1-thread pool): time slices taken by other
                      * processes do not count; wall time otherwise */
} search;

/* 1 + the largest var slot in u (0: none). */
static int var_slots(uop *u, uopset *seen) {
  if (uopset_add(seen, u) <= 0) return 0;
  int n = u->op == OP_DEFINE_VAR && u->arg.n > 2 ? (int)u->arg.v[2] + 1 : 0;
  for (uint32_t i = 0; i < u->nsrc; i++) {
    int m = var_slots(u->src[i], seen);
    if (m > n) n = m;
  }
  return n;
}

/* Time each candidate (in place): generate, compile all together, run each 1 + 3 times
 * (1 + 2 once the best so far takes 100 ms) on the scratch buffers and keep the fastest
 * timed run (what the kernel takes when nothing else takes its cores: on a loaded machine
 * the median of three timed other processes' time slices as often as the kernel). */
static void time_all(search *s, cand *c, int n, double best) {
  ckernel *k = cg_calloc((size_t)n, sizeof *k);
  const char **names = cg_calloc((size_t)n, sizeof(char *)), **srcs = cg_calloc((size_t)n, sizeof(char *));
  rt_program **progs = cg_calloc((size_t)n, sizeof(rt_program *));
  int *which = cg_calloc((size_t)n, sizeof(int)), m = 0;
  if (!k || !names || !srcs || !progs || !which) goto done;
  double tg = now();
  for (int i = 0; i < n; i++) {
    c[i].t = INFINITY;
    k[i].ast = s->ast, k[i].ren = s->ren, k[i].opts_given = true, k[i].nopts = c[i].n;
    memcpy(k[i].opts, c[i].o, sizeof(opt) * (size_t)c[i].n);
    snprintf(k[i].name, sizeof k[i].name, "beam_%d", i);
    if (!codegen_run(&k[i])) continue; /* an opt that does not apply */
    names[m] = k[i].name, srcs[m] = k[i].src, which[m++] = i;
  }
  if (cfg_debug() >= 3) fprintf(stderr, "*** BEAM: %d candidates generated in %.2f s\n", m, now() - tg);
  cg_clear_error();
  /* compiled a few at a time, the deadline looked at between them: one compile_many of
   * every candidate ran 23 GEMM candidates in 42.6 s at load 17 against a 10 s budget (the
   * time one compile took, measured alone, did not foresee 23 under load) */
  enum { PER_BATCH = 4 };
  for (int j0 = 0; j0 < m; j0 += PER_BATCH) {
    if (j0 && now() > s->deadline) break; /* out of time: the rest count as not found */
    int mb = m - j0 < PER_BATCH ? m - j0 : PER_BATCH;
    double tc = now();
    if (mb > 1 && s->dev->compile_many) s->dev->compile_many(names + j0, srcs + j0, mb, progs + j0);
    else
      for (int j = j0; j < j0 + mb; j++) progs[j] = s->dev->compile(names[j], srcs[j]);
    s->compile_s = (now() - tc) / mb;
    if (cfg_debug() >= 3) {
      fprintf(stderr, "*** BEAM: compiled %d in %.2f s:", mb, now() - tc);
      for (int j = j0; j < j0 + mb; j++) {
        char d[256];
        opts_str(c[which[j]].o, c[which[j]].n, d, sizeof d);
        fprintf(stderr, " [%s]", d);
      }
      fprintf(stderr, "\n");
    }
    for (int j = j0; j < j0 + mb; j++) {
      if (!progs[j]) continue;
      int i = which[j];
      if (now() > s->deadline) { /* out of time: the rest count as not found */
        s->dev->program_free(progs[j]);
        continue;
      }
      double t[4];
      bool ok = true;
      int r = 0, runs = isfinite(best) && best > 0.1 ? 3 : 4; /* a kernel of 100 ms and more: two timed runs (verify times the finalists again) */
      for (; r < runs && ok; r++) {
        double t0 = clock_s(s->clock);
        ok = s->dev->launch(progs[j], s->bufs, s->vars, k[i].lin.global) == CG_OK && s->dev->synchronize() == CG_OK;
        t[r] = clock_s(s->clock) - t0;
        if (r == 0 && t[0] > 3 * best) break; /* far slower than the best: no need to know how much */
      }
      s->tries++;
      if (ok && r < runs) c[i].t = t[0];
      else if (ok) c[i].t = runs == 4 ? fmin(t[1], fmin(t[2], t[3])) : fmin(t[1], t[2]); /* the fastest after the warm-up */
      s->dev->program_free(progs[j]);
    }
  }
done:
  for (int i = 0; k && i < n; i++) ckernel_free(&k[i]);
  free(k), free(names), free(srcs), free(progs), free(which);
}

/* The two fastest lists seen so far (top[0] fastest), from the candidates just timed. */
static void keep_top(cand *top, const cand *c, int n) {
  for (int i = 0; i < n; i++) {
    if (!isfinite(c[i].t) || same_list(&c[i], &top[0]) || same_list(&c[i], &top[1])) continue;
    if (c[i].t < top[0].t) top[1] = top[0], top[0] = c[i];
    else if (c[i].t < top[1].t) top[1] = c[i];
  }
}

/* The finalists timed again, in turns: a round runs each once, two rounds at least and
 * more while time is left before until; each gets the fastest of its runs after the first
 * round (a warm-up). The search's own figures came from different moments of a
 * machine whose load moves, and the fastest of many candidates' three runs favours a
 * lucky one (on 2 threads at 4096^3, a list the search timed at 285.7 ms ran 312 ms in
 * the benchmark, 7% behind the heuristic's list it had timed slower). Compiled programs
 * come from the program cache. */
static void verify(search *s, cand *f, int nf, double until) {
  ckernel k[3] = {0};
  rt_program *p[3] = {0};
  for (int i = 0; i < nf; i++) {
    k[i].ast = s->ast, k[i].ren = s->ren, k[i].opts_given = true, k[i].nopts = f[i].n;
    memcpy(k[i].opts, f[i].o, sizeof(opt) * (size_t)f[i].n);
    snprintf(k[i].name, sizeof k[i].name, "beam_v%d", i);
    if (codegen_run(&k[i])) p[i] = s->dev->compile(k[i].name, k[i].src);
    f[i].t = INFINITY;
  }
  cg_clear_error();
  for (int r = 0; r < 2 || (r < 6 && now() < until); r++)
    for (int i = 0; i < nf; i++) {
      if (!p[i]) continue;
      double t0 = clock_s(s->clock);
      bool ok = s->dev->launch(p[i], s->bufs, s->vars, k[i].lin.global) == CG_OK && s->dev->synchronize() == CG_OK;
      double t = clock_s(s->clock) - t0;
      s->tries++;
      if (!ok) s->dev->program_free(p[i]), p[i] = NULL, f[i].t = INFINITY;
      else if (r > 0 && t < f[i].t) f[i].t = t;
    }
  for (int i = 0; i < nf; i++) {
    if (p[i]) s->dev->program_free(p[i]);
    ckernel_free(&k[i]);
  }
}

static int by_time(const void *a, const void *b) {
  double x = ((const cand *)a)->t, y = ((const cand *)b)->t;
  return x < y ? -1 : x > y;
}

int beam_search(uop *ast, const renderer *ren, rt_device *dev, int width, opt *out) {
  uint64_t key[2];
  beam_key(ast, ren, dev, key);
  char *path = entry_path(key);
  int n = path ? load_entry(path, key, out) : -1;
  if (cfg_debug() >= 3) fprintf(stderr, "*** BEAM: %s %s\n", path ? path : "(no cache)", n >= 0 ? "found" : "not found");
  if (n >= 0) {
    stats.hits++;
    free(path);
    return n;
  }
  double t0 = now(), budget = (double)cfg_int("BEAM_BUDGET_S", 10), until = t0 + budget;
  budget *= 0.8; /* the last fifth: the finalists timed again (verify) */
  stats.searches++;
  /* the kernel's axes, and scratch buffers of its slots' sizes */
  uop_pool_push_inherit();
  uop *low = lower_kernel(ast), *rng[32], *slot[256] = {0};
  int nr = 0, nslots = 0;
  uopset seen = {0};
  if (low) find_ranges(low, &seen, rng, &nr);
  uopset_free(&seen);
  find_slots(ast, &seen, slot, 256);
  uopset_free(&seen);
  while (nslots < 256 && slot[nslots]) nslots++;
  int nvars = var_slots(ast, &seen);
  uopset_free(&seen);
  search s = {ast, ren, dev, cg_calloc((size_t)(nslots ? nslots : 1), sizeof(void *)), nslots, cg_calloc((size_t)nvars + 1, sizeof(int64_t)), 0, t0 + budget, 0,
              !strcmp(dev->renderer, "c") && rt_pool_threads(rt_pool_of(dev->index)) == 1 ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC};
  bool ok = s.bufs != NULL && s.vars != NULL && low;
  for (int i = 0; i < nslots && ok; i++) {
    size_t bytes = (size_t)slot[i]->arg.v[1] * dt_scalar_size(slot[i]->dt);
    void *zeros = cg_calloc(bytes ? bytes : 1, 1);
    ok = zeros && (s.bufs[i] = dev->alloc(bytes ? bytes : 1)) && dev->copyin(s.bufs[i], zeros, bytes) == CG_OK;
    free(zeros);
  }
  /* round 0: the heuristic's list (no opts at all is never close on a kernel worth a
   * search, and timing it would take most of the budget) */
  int cap = 1024, nc = 0;
  cand *c = cg_calloc((size_t)cap, sizeof *c), best = {.t = INFINITY}, heur = {.t = INFINITY}, top[2] = {{.t = INFINITY}, {.t = INFINITY}};
  ok = ok && c;
  /* a bf16 sum of products: TC is a candidate where the unit is (tc.c) */
  uop *tcr = strcmp(ren->name, "c") ? NULL : tc_find(low);
  int tcu = tcr ? tc_unit() : 0, tc_axis = -1;
  for (uint32_t i = 1; tcu && i < tcr->nsrc; i++)
    if (tcr->src[i]->arg.v[0] > tc_axis) tc_axis = (int)tcr->src[i]->arg.v[0];
  if (!tcu) tcr = NULL;
  if (ok) {
    c[nc].n = opt_heuristic(low, c[nc].o);
    if (strcmp(ren->name, "c")) { /* the heuristic's TC only where the renderer spells it */
      int m = 0;
      for (int i = 0; i < c[nc].n; i++)
        if (c[nc].o[i].kind != OPT_TC) c[nc].o[m++] = c[nc].o[i];
      c[nc].n = m;
    }
    for (int i = 0; i < c[nc].n; i++) stats.tc_candidates += c[nc].o[i].kind == OPT_TC;
    nc++;
    time_all(&s, c, nc, INFINITY); /* also measures what one compile takes */
    heur = c[0];
    /* a GEMM: other register tiles and column blocks too, as many as compile in half the
     * time left */
    opt alt[32][MAX_OPTS];
    int lens[32], na = opt_gemm_candidates(low, alt, lens, 32), fit = s.compile_s > 0 ? (int)((s.deadline - now()) / 2 / s.compile_s) : na;
    if (fit < 2) fit = 2; /* as a round: at least two */
    for (int i = 0; i < na && nc - 1 < fit; i++) {
      cand x = {.n = lens[i]};
      memcpy(x.o, alt[i], sizeof(opt) * (size_t)lens[i]);
      if (!same_list(&x, &c[0])) c[nc++] = x;
    }
    if (nc > 1) time_all(&s, c + 1, nc - 1, c[0].t);
    qsort(c, (size_t)nc, sizeof *c, by_time);
    keep_top(top, c, nc);
    best = c[0];
    /* a kernel that takes little time is worth little search: at most 2000 runs of the best
     * so far (at least 1 s); a 1024^2 GEMM's packing copy (0.06 ms) searched 62 candidates
     * for 5.9 s */
    double worth = 2000 * best.t;
    if (isfinite(worth) && t0 + (worth > 1 ? worth : 1) < s.deadline) s.deadline = t0 + (worth > 1 ? worth : 1);
  }
  int nbeam = nc < width ? nc : width;
  for (int round = 0; ok && round < MAX_OPTS && now() < s.deadline; round++) {
    /* extend every list of the beam by one opt */
    cand *next = cg_calloc((size_t)cap, sizeof *next);
    int nn = 0;
    if (!next) break;
    for (int b = 0; b < nbeam && isfinite(c[b].t); b++) {
      if (c[b].n >= MAX_OPTS - 1) continue;
      bool threaded = false, tiled = false;
      for (int i = 0; i < c[b].n; i++) threaded |= c[b].o[i].kind == OPT_THREAD, tiled |= c[b].o[i].kind == OPT_TILE;
      /* TC on a bf16 sum of products's reduce axis, where the CPU has a unit and the
       * renderer spells it (tc.c) */
      bool has_tc = false;
      for (int i = 0; i < c[b].n; i++) has_tc |= c[b].o[i].kind == OPT_TC;
      if (tcr && !has_tc && nn < 32) {
        cand x = c[b];
        x.o[x.n++] = (opt){OPT_TC, (int16_t)tc_axis, tcu};
        next[nn++] = x;
        stats.tc_candidates++;
      }
      for (int r = 0; r < nr; r++) {
        bool red = rng[r]->arg.v[1] == RANGE_REDUCE;
        int64_t size = rng[r]->src[0]->arg.i;
        static const int amounts[] = {2, 3, 4, 5, 7, 8, 16};
        for (int a = -6; a < 7 && nn < 32; a++) { /* a round compiles at most 32 */
          cand x = c[b];
          if (a < -1) { /* cache blocks of an output axis: 1, 2, 4, 8, 16 trips (opt_apply
                         * refuses those that do not divide what the list left) */
            if (red || tiled) continue;
            x.o[x.n++] = (opt){OPT_TILE, (int16_t)rng[r]->arg.v[0], 1 << (a + 6)};
          } else if (a < 0) {
            if (red || threaded) continue;
            x.o[x.n++] = (opt){OPT_THREAD, (int16_t)rng[r]->arg.v[0], 0};
          } else {
            if (size % amounts[a] || size < amounts[a] || (red && amounts[a] > 8)) continue;
            x.o[x.n++] = (opt){red ? OPT_UNROLL : OPT_UPCAST, (int16_t)rng[r]->arg.v[0], amounts[a]};
          }
          /* register tiles beyond 384 lanes, the unrolled steps counted (24 of the 32
           * vector registers), spill and take seconds to compile: UNROLL(k, 8) on a GEMM's
           * 6 x 64 tile took 15-23 s (load 17) of a 10 s budget; UPCAST(cols, 2) and
           * UNROLL(k, 2 / 4) on the 8 x 32 tile compiled 4 in 11.3 s (load 17), and the
           * unrolled ones ran at 13.5 / 9.4 GFLOP/s against the tile's 240 */
          int64_t up = 1, unr = 1;
          for (int i = 0; i < x.n; i++) {
            if (x.o[i].kind == OPT_UPCAST) up *= x.o[i].amount;
            if (x.o[i].kind == OPT_UNROLL) unr *= x.o[i].amount;
          }
          if (up * unr > 384) continue;
          bool dup = false;
          for (int i = 0; i < nn && !dup; i++) dup = same_list(&next[i], &x);
          if (!dup) next[nn++] = x;
        }
      }
    }
    /* as many as can compile in the time left (on every core), at least two */
    int fit = s.compile_s > 0 ? (int)((s.deadline - now()) / s.compile_s) : nn;
    if (fit < 2) fit = 2;
    if (nn > fit) nn = fit;
    if (!nn || now() > s.deadline) {
      free(next);
      break;
    }
    time_all(&s, next, nn, best.t);
    qsort(next, (size_t)nn, sizeof *next, by_time);
    keep_top(top, next, nn);
    bool better = next[0].t < best.t;
    if (better) best = next[0];
    free(c);
    c = next, nc = nn, nbeam = nn < width ? nn : width;
    if (!better) break;
  }
  /* the search's winner, the runner-up and the heuristic's list again, in turns, where
   * the winner is not the heuristic's */
  if (ok && isfinite(best.t) && isfinite(heur.t) && !same_list(&best, &heur) && cfg_int("BEAM_VERIFY", 1)) {
    cand f[3] = {best, heur};
    int nf = 2;
    for (int i = 0; i < 2; i++)
      if (nf == 2 && isfinite(top[i].t) && !same_list(&top[i], &best) && !same_list(&top[i], &heur)) f[nf++] = top[i];
    double t_best = best.t;
    verify(&s, f, nf, until);
    qsort(f, (size_t)nf, sizeof *f, by_time);
    if (isfinite(f[0].t)) best = f[0];
    stats.verified++;
    if (cfg_debug() >= 3) {
      char d[256];
      opts_str(best.o, best.n, d, sizeof d);
      fprintf(stderr, "*** BEAM: %d finalists timed again; the search's best %.3f ms, now %s (%.3f ms)\n", nf, 1e3 * t_best, d, 1e3 * best.t);
    }
  }
  for (int i = 0; i < nslots && s.bufs; i++) {
    size_t bytes = (size_t)slot[i]->arg.v[1] * dt_scalar_size(slot[i]->dt);
    if (s.bufs[i]) dev->free(s.bufs[i], bytes ? bytes : 1);
  }
  free(s.bufs), free(s.vars);
  free(c);
  uop_pool_pop();
  stats.candidates += s.tries;
  stats.seconds += now() - t0;
  if (!ok || !isfinite(best.t)) {
    free(path);
    cg_fail(CG_ERR_RUNTIME, "BEAM: no candidate compiled and ran (%s)", cg_last_error()[0] ? cg_last_error() : "out of memory");
    return -1;
  }
  if (cfg_debug() >= 2) {
    char d[256];
    opts_str(best.o, best.n, d, sizeof d);
    fprintf(stderr, "*** BEAM=%d: %" PRId64 " candidates in %.2f s, best %s (%.3f ms)\n", width, s.tries, now() - t0, d, 1e3 * best.t);
  }
  if (path) {
    entry_ctx e = {key, best.o, best.n};
    fio_write_atomic(path, write_entry, &e); /* a cache that cannot be written is only slower */
  }
  free(path);
  memcpy(out, best.o, sizeof(opt) * (size_t)best.n);
  return best.n;
}
