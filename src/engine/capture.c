/* Capture and replay (see capture.h). */
#include "capture.h"
#include "programs.h"
#include "realize.h"
#include "core/config.h"
#include "runtime/buffer.h"
#include "runtime/var.h"
#include "uop/uopset.h"
#include <stdlib.h>
#include <string.h>

/* A launch; or (p NULL) a host step (host set) or a host update of var vars[0]: value =
 * value vop operand. */
typedef struct {
  capture_host_fn host; /* a host step: host(hctx, buffers) */
  void *hctx;
  size_t hsize;
  rt_device *dev;
  rt_program *p;
  prog_entry *e;        /* p's program-cache entry, with a reference (engine/programs.h) */
  int64_t global;
  uop **bufs;
  int nbufs, nout;   /* slots 0..nout-1 are written */
  uop **vars;        /* the tensor-level var behind each var slot (released in a replay) */
  int nvars;
  int vop;
  int64_t operand;
  dtype vdt;         /* the updated var's dtype */
} launch;

struct capture {
  launch *l;
  int n, cap;
  bool nomem; /* a launch could not be recorded: the capture is incomplete */
  int64_t var0; /* the last var id made before it began: later ones the captured call made */
};

static _Thread_local capture *current;

bool capture_begin(capture **c) {
  if (current) {
    cg_fail(CG_ERR_INVALID, "jit: a JIT function called from inside a JIT function (capture is already open on this thread)");
    return false;
  }
  *c = cg_calloc(1, sizeof **c);
  if (!*c) return cg_fail(CG_ERR_NOMEM, "out of memory"), false;
  (*c)->var0 = var_last_id();
  current = *c;
  return true;
}
void capture_end(void) { current = NULL; }
bool capture_active(void) { return current != NULL; }
bool capture_complete(const capture *c) { return !c->nomem; }
int capture_count(const capture *c) { return c->n; }

/* Out of memory recording a launch marks the capture incomplete (never replayed: the
 * call that made it ran eagerly and is right; cg_jit captures again next call). */
static launch *add_launch(void) {
  capture *c = current;
  if (c->nomem) return NULL;
  if (c->n == c->cap) {
    launch *l = cg_realloc(c->l, sizeof *l * (size_t)(c->cap ? 2 * c->cap : 64));
    if (!l) return c->nomem = true, NULL;
    c->l = l, c->cap = c->cap ? 2 * c->cap : 64;
  }
  return &c->l[c->n];
}

static uop **retained(uop *const *us, int n) {
  uop **r = cg_malloc(sizeof(uop *) * (size_t)(n ? n : 1));
  if (!r) return current->nomem = true, NULL;
  for (int i = 0; i < n; i++) r[i] = uop_retain(us[i]);
  return r;
}

/* l (the next slot) becomes a launch once both arrays are there */
static void commit(launch *l, launch v) {
  if (v.bufs && v.vars) {
    *l = v;
    current->n++;
    return;
  }
  for (int k = 0; v.bufs && k < v.nbufs; k++) uop_release(v.bufs[k]);
  for (int k = 0; v.vars && k < v.nvars; k++) uop_release(v.vars[k]);
  free(v.bufs), free(v.vars);
  programs_release(v.e);
}

void capture_launch(rt_device *dev, prog_entry *e, int64_t global, uop *const *bufs, int nbufs, int nout, uop *const *vars, int nvars) {
  launch *l = add_launch();
  if (l) programs_retain(e);
  if (l) commit(l, (launch){.dev = dev, .p = e->p, .e = e, .global = global, .bufs = retained(bufs, nbufs), .nbufs = nbufs, .nout = nout, .vars = retained(vars, nvars), .nvars = nvars});
}

void capture_var_update(uop *var, int op, int64_t operand) {
  launch *l = add_launch();
  if (l) commit(l, (launch){.bufs = retained(NULL, 0), .vars = retained(&var, 1), .nvars = 1, .vop = op, .operand = operand, .vdt = var->dt});
}

void capture_host(capture_host_fn fn, const void *ctx, size_t ctx_bytes, uop *const *bufs, int nbufs) {
  /* every buffer counts as written: the step works in place */
  capture_host_io(fn, ctx, ctx_bytes, bufs, nbufs, nbufs);
}

void capture_host_io(capture_host_fn fn, const void *ctx, size_t ctx_bytes, uop *const *bufs, int nbufs, int nout) {
  launch *l = add_launch();
  if (!l) return;
  void *h = cg_malloc(ctx_bytes ? ctx_bytes : 1);
  if (!h) {
    current->nomem = true;
    return;
  }
  memcpy(h, ctx, ctx_bytes);
  commit(l, (launch){.host = fn, .hctx = h, .hsize = ctx_bytes, .bufs = retained(bufs, nbufs), .nbufs = nbufs, .nout = nout, .vars = retained(NULL, 0)});
  if (current->n == 0 || current->l[current->n - 1].hctx != h) free(h); /* not committed */
}

static void capture_free(capture *c) {
  for (int i = 0; i < c->n; i++) {
    free(c->l[i].hctx);
    for (int k = 0; k < c->l[i].nbufs; k++)
      if (c->l[i].bufs[k]) uop_release(c->l[i].bufs[k]);
    for (int k = 0; k < c->l[i].nvars; k++)
      if (c->l[i].vars[k]) uop_release(c->l[i].vars[k]);
    free(c->l[i].bufs), free(c->l[i].vars);
    programs_release(c->l[i].e);
  }
  free(c->l);
  free(c);
}

/* Whether the vars u (capture a) and v (capture b) that two host updates change are the
 * same var: the same uop, or two vars each call made for itself (flash attention's
 * key-block counter is a new var every call) standing for each other in every update, a
 * bijection over the captures. pairs (2 per entry) grows as such vars are met. A var from
 * outside the call must be the same one. (Kernel launches' vars are not compared, as
 * before: a kernel reads whatever var its slot is bound to at replay.) */
static bool var_pair(const capture *a, const capture *b, uop *u, uop *v, uop ***pairs, int *n, int *cap, bool *nomem) {
  bool made_u = -u->arg.v[2] > a->var0, made_v = -v->arg.v[2] > b->var0;
  if (!made_u || !made_v) return u == v;
  for (int i = 0; i < *n; i++)
    if ((*pairs)[2 * i] == u || (*pairs)[2 * i + 1] == v) return (*pairs)[2 * i] == u && (*pairs)[2 * i + 1] == v;
  if (*n == *cap) {
    int nc = *cap ? 2 * *cap : 8;
    uop **np = realloc(*pairs, sizeof(uop *) * 2 * (size_t)nc);
    if (!np) return !(*nomem = true);
    *pairs = np, *cap = nc;
  }
  (*pairs)[2 * *n] = u, (*pairs)[2 * *n + 1] = v, (*n)++;
  return true;
}

bool capture_same(const capture *a, const capture *b) {
  if (a->n != b->n) return false;
  uop **pairs = NULL;
  int np = 0, cap = 0;
  bool same = true, nomem = false;
  for (int i = 0; i < a->n && same; i++) {
    const launch *x = &a->l[i], *y = &b->l[i];
    if (x->p != y->p || x->host != y->host || x->nbufs != y->nbufs || x->nvars != y->nvars) same = false;
    else if (x->host && (x->hsize != y->hsize || memcmp(x->hctx, y->hctx, x->hsize))) same = false;
    else if (!x->p && !x->host && (x->vop != y->vop || x->operand != y->operand)) same = false;
    else if (!x->p && !x->host) same = var_pair(a, b, x->vars[0], y->vars[0], &pairs, &np, &cap, &nomem);
  }
  free(pairs);
  return same && !nomem; /* out of memory comparing: not known the same, captured again */
}

void capture_discard(capture *c) {
  if (c) capture_free(c);
}

/* ---- replay ----------------------------------------------------------------------------- */

enum { B_INPUT, B_SLAB, B_FIXED };
typedef struct { int kind; int64_t at; } binding; /* input number, slab offset, or fixed index */
/* a var: input number (B_INPUT) or its value cell (B_FIXED) */
typedef struct { int kind; int at; int64_t *cell; } vbinding;

struct replay {
  launch *l;
  binding **bind;   /* per launch, per slot */
  vbinding **vbind; /* per launch, per var slot */
  int n;
  uop **fixed;      /* buffers kept (retained): weights, state, outputs */
  int nfixed;
  size_t slab, state;
  rt_device *dev;
};

size_t replay_slab_bytes(const replay *r) { return r->slab; }
size_t replay_state_bytes(const replay *r) { return r->state; }
int replay_launches(const replay *r) { return r->n; }
void replay_var_counts(const replay *r, int *reads, int *updates) {
  *reads = *updates = 0;
  for (int i = 0; i < r->n; i++) {
    if (r->l[i].host) continue;
    if (!r->l[i].p) (*updates)++;
    else if (r->l[i].nvars) (*reads)++;
  }
}

replay *replay_new(capture *c, uop *const *inputs, int n_in) {
  uop_pool_push_checked(); /* the uopset below fails softly (CG_ERR_NOMEM), as every allocation here */
  replay *r = cg_calloc(1, sizeof *r);
  uopset id = {0};          /* buffer -> 1 + its number */
  uop **bufs = NULL;
  int nb = 0, cap = 0;
  int *first = NULL, *last = NULL;
  if (!r) goto oom;
  for (int i = 0; i < c->n; i++)
    for (int k = 0; k < c->l[i].nbufs; k++) {
      uop *b = c->l[i].bufs[k];
      uintptr_t n = (uintptr_t)uopset_get(&id, b);
      if (!n) {
        if (nb == cap) { /* each kept on failure, so the frees below see every block */
          int ncap = cap ? 2 * cap : 64;
          uop **nbufs = cg_realloc(bufs, sizeof(uop *) * (size_t)ncap);
          if (nbufs) bufs = nbufs;
          int *nfirst = nbufs ? cg_realloc(first, sizeof(int) * (size_t)ncap) : NULL;
          if (nfirst) first = nfirst;
          int *nlast = nfirst ? cg_realloc(last, sizeof(int) * (size_t)ncap) : NULL;
          if (!nlast) goto oom;
          last = nlast, cap = ncap;
        }
        bufs[nb] = b, first[nb] = k < c->l[i].nout ? i : -1 - i, last[nb] = i; /* first < 0: read before any kernel wrote it */
        if (!uopset_put(&id, b, (void *)(uintptr_t)(nb + 1))) goto oom;
        nb++;
      } else last[n - 1] = i;
    }
  /* kinds: an input; else a buffer nobody else holds (the capture's retains and the
   * launches' are all its references) is an intermediate; else it is kept */
  int *kind = cg_calloc((size_t)(nb ? nb : 1), sizeof(int));
  int64_t *at = cg_calloc((size_t)(nb ? nb : 1), sizeof(int64_t));
  if (!kind || !at) {
    free(kind), free(at);
    goto oom;
  }
  int *uses = cg_calloc((size_t)(nb ? nb : 1), sizeof(int));
  if (!uses) {
    free(kind), free(at);
    goto oom;
  }
  for (int i = 0; i < c->n; i++)
    for (int k = 0; k < c->l[i].nbufs; k++) uses[(uintptr_t)uopset_get(&id, c->l[i].bufs[k]) - 1]++;
  for (int b = 0; b < nb; b++) {
    kind[b] = B_FIXED;
    for (int j = 0; j < n_in; j++)
      if (bufs[b] == inputs[j]) kind[b] = B_INPUT, at[b] = j;
    /* written by a kernel of the call before anything reads it, and nobody else holds it
     * (or the engine already gave its memory back after its last reader): its contents
     * live and die within the call. (A buffer read first holds data from outside the
     * kernels, e.g. written by the host inside fn: it is kept.) */
    if (kind[b] == B_FIXED && first[b] >= 0 && (bufs[b]->refcnt == (uint32_t)uses[b] || !buffer_of(bufs[b])->ptr)) kind[b] = B_SLAB;
  }
  free(uses);
  /* an input written by a kernel would change under the caller */
  for (int i = 0; i < c->n; i++) {
    for (int k = 0; k < c->l[i].nout && k < c->l[i].nbufs; k++)
      if (kind[(uintptr_t)uopset_get(&id, c->l[i].bufs[k]) - 1] == B_INPUT) {
        cg_fail(CG_ERR_INVALID, "jit: the function writes into its input %d (an input aliases an output or state); pass a copy",
                (int)at[(uintptr_t)uopset_get(&id, c->l[i].bufs[k]) - 1]);
        free(kind), free(at);
        goto fail;
      }
  }
  /* the slab: intermediates packed by lifetime, first fit (64-byte aligned) */
  typedef struct { int64_t off, end; int until; } placed;
  placed *live = cg_calloc((size_t)(nb ? nb : 1), sizeof *live);
  int nlive = 0;
  if (!live) {
    free(kind), free(at);
    goto oom;
  }
  for (int b = 0; b < nb; b++) {
    cg_buffer *cb = buffer_of(bufs[b]);
    if (kind[b] == B_FIXED) {
      r->state += cb->nbytes;
      continue;
    }
    if (kind[b] != B_SLAB) continue;
    int64_t size = (int64_t)((cb->nbytes + 63) / 64 * 64), off = 0;
    for (bool moved = true; moved;) { /* lowest offset clear of every overlapping lifetime */
      moved = false;
      for (int j = 0; j < nlive; j++)
        if (live[j].until >= first[b] && off < live[j].end && live[j].off < off + size) off = live[j].end, moved = true;
    }
    live[nlive++] = (placed){off, off + size, last[b]};
    at[b] = off;
    if ((size_t)(off + size) > r->slab) r->slab = (size_t)(off + size);
    if (buffer_of(bufs[b])->ptr) buffer_release_memory(bufs[b]); /* from now on it lives in the slab */
  }
  free(live);
  /* per launch, per slot: where its buffer is */
  r->l = c->l, r->n = c->n;
  r->bind = cg_calloc((size_t)(c->n ? c->n : 1), sizeof *r->bind);
  r->fixed = cg_malloc(sizeof(uop *) * (size_t)(nb ? nb : 1));
  if (!r->bind || !r->fixed) {
    free(kind), free(at);
    goto oom;
  }
  for (int b = 0; b < nb; b++)
    if (kind[b] == B_FIXED) r->fixed[r->nfixed++] = uop_retain(bufs[b]);
  for (int i = 0; i < c->n; i++) {
    r->bind[i] = cg_malloc(sizeof(binding) * (size_t)(c->l[i].nbufs ? c->l[i].nbufs : 1));
    if (!r->bind[i]) {
      free(kind), free(at);
      goto oom;
    }
    for (int k = 0; k < c->l[i].nbufs; k++) {
      int b = (int)(uintptr_t)uopset_get(&id, c->l[i].bufs[k]) - 1;
      r->bind[i][k] = (binding){kind[b], kind[b] == B_FIXED ? (int64_t)(intptr_t)buffer_of(bufs[b])->ptr : at[b]};
    }
    if (c->l[i].dev) r->dev = c->l[i].dev;
  }
  /* vars: an input's is bound to the var given at each replay; any other (an optimizer's
   * learning rate) is kept, and read at each launch */
  r->vbind = cg_calloc((size_t)(c->n ? c->n : 1), sizeof *r->vbind);
  if (!r->vbind) {
    free(kind), free(at);
    goto oom;
  }
  for (int i = 0; i < c->n; i++) {
    if (!c->l[i].nvars) continue;
    if (!(r->vbind[i] = cg_malloc(sizeof(vbinding) * (size_t)c->l[i].nvars))) {
      free(kind), free(at);
      goto oom;
    }
    for (int k = 0; k < c->l[i].nvars; k++) {
      uop *v = c->l[i].vars[k];
      int j = 0;
      while (j < n_in && inputs[j] != v) j++;
      r->vbind[i][k] = j < n_in ? (vbinding){B_INPUT, j, NULL} : (vbinding){B_FIXED, 0, var_cell(v)};
    }
  }
  free(kind), free(at);
  c->l = NULL, c->n = 0; /* the launches belong to the replay now (their buffers too) */
  for (int i = 0; i < r->n; i++) /* keep the programs and vars (their cells): buffers are bound above */
    for (int k = 0; k < r->l[i].nbufs; k++) uop_release(r->l[i].bufs[k]), r->l[i].bufs[k] = NULL;
  capture_free(c);
  uopset_free(&id);
  free(bufs), free(first), free(last);
  uop_pool_pop();
  return r;
oom:
  cg_fail(CG_ERR_NOMEM, "out of memory");
fail:
  uopset_free(&id);
  free(bufs), free(first), free(last);
  if (r && r->l == c->l) { /* the launches are still the capture's: freed with it */
    for (int i = 0; i < r->n; i++) {
      if (r->bind) free(r->bind[i]);
      if (r->vbind) free(r->vbind[i]);
    }
    r->l = NULL, r->n = 0;
  }
  replay_free(r);
  capture_free(c);
  uop_pool_pop();
  return NULL;
}

cg_status replay_run(replay *r, uop *const *inputs, int n_in, size_t slab_bytes) {
  void *slab = NULL, *small[64], **ptrs = small;
  int cap = 64;
  if (slab_bytes < r->slab) slab_bytes = r->slab;
  if (!r->dev) slab_bytes = 0; /* no kernels (only var updates) */
  if (slab_bytes && !(slab = r->dev->alloc(slab_bytes))) return cg_last_status();
  cg_status st = CG_OK;
  void **in = cg_malloc(sizeof(void *) * (size_t)(n_in ? n_in : 1));
  if (!in) st = cg_fail(CG_ERR_NOMEM, "out of memory");
  for (int j = 0; j < n_in && st == CG_OK; j++) {
    if (var_is_tensor(inputs[j])) { /* a var input: its value cell */
      in[j] = var_cell(inputs[j]);
      continue;
    }
    st = buffer_alloc(inputs[j]);
    in[j] = buffer_of(inputs[j])->ptr;
  }
  int64_t vsmall[16], *vals = vsmall;
  int vcap = 16;
  for (int i = 0; i < r->n && st == CG_OK; i++) {
    launch *l = &r->l[i];
    if (l->nvars > vcap) {
      if (vals != vsmall) free(vals);
      if (!(vals = cg_malloc(sizeof(int64_t) * (size_t)(vcap = l->nvars)))) {
        vals = vsmall, vcap = 16;
        st = cg_fail(CG_ERR_NOMEM, "out of memory");
        break;
      }
    }
    for (int k = 0; k < l->nvars; k++) {
      vbinding b = r->vbind[i][k];
      vals[k] = var_load(b.kind == B_INPUT ? (int64_t *)in[b.at] : b.cell);
    }
    if (!l->p && !l->host) { /* a host update of a var */
      vbinding b = r->vbind[i][0];
      int64_t *cell = b.kind == B_INPUT ? (int64_t *)in[b.at] : b.cell;
      var_store(cell, var_apply(l->vdt, vals[0], l->vop, l->operand));
      continue;
    }
    if (l->nbufs > cap) {
      if (ptrs != small) free(ptrs);
      if (!(ptrs = cg_malloc(sizeof(void *) * (size_t)(cap = l->nbufs)))) {
        ptrs = small, cap = 64;
        st = cg_fail(CG_ERR_NOMEM, "out of memory");
        break;
      }
    }
    for (int k = 0; k < l->nbufs; k++) {
      binding b = r->bind[i][k];
      ptrs[k] = b.kind == B_INPUT ? in[b.at] : b.kind == B_SLAB ? (char *)slab + b.at : (void *)(intptr_t)b.at;
    }
    if (l->host) { /* a host step: the launches before it have finished */
      if (r->dev) st = r->dev->synchronize();
      if (st == CG_OK) st = l->host(l->hctx, ptrs, l->nbufs);
      continue;
    }
    rt_program_settle(l->p); /* tiering: a replay runs the compiled code (runtime/x86.c) */
    st = l->dev->launch(l->p, ptrs, vals, l->global);
    realize_progress();
  }
  if (st == CG_OK) st = r->dev ? r->dev->synchronize() : CG_OK;
  if (vals != vsmall) free(vals);
  if (ptrs != small) free(ptrs);
  free(in);
  if (slab) r->dev->free(slab, slab_bytes);
  return st;
}

void replay_free(replay *r) {
  if (!r) return;
  for (int i = 0; i < r->n; i++) {
    if (r->bind) free(r->bind[i]);
    if (r->vbind) free(r->vbind[i]);
    for (int k = 0; k < r->l[i].nvars; k++) uop_release(r->l[i].vars[k]);
    free(r->l[i].bufs), free(r->l[i].vars), free(r->l[i].hctx);
    programs_release(r->l[i].e);
  }
  free(r->bind), free(r->vbind);
  free(r->l);
  for (int i = 0; i < r->nfixed; i++) uop_release(r->fixed[i]);
  free(r->fixed);
  free(r);
}
