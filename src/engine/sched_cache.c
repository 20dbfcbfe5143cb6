/* The schedule cache (see sched_cache.h): keys over slots, entries as templates of a
 * schedule, LRU-bounded. */
#include "sched_cache.h"
#include "core/config.h"
#include "runtime/buffer.h"
#include "runtime/var.h"
#include "uop/uopset.h"
#include <pthread.h>
#include <string.h>

/* ---- the key ------------------------------------------------------------------------ */

bool sched_cache_on(void) { return cfg_int("CG_SCHED_CACHE", 1) != 0; }

typedef struct {
  sched_key *k;
  bool (*done)(uop *);
  uopset memo;      /* node -> its form over slots */
  bool failed;      /* out of memory */
  bool foreign;     /* a node that looks like a slot: not cacheable */
} norm_ctx;

static bool push(uop ***arr, int *n, int *cap, uop *u) {
  if (*n == *cap) {
    int c = *cap ? 2 * *cap : 16;
    uop **a = ir_realloc(*arr, sizeof(uop *) * (size_t)c);
    if (!a) return false;
    *arr = a, *cap = c;
  }
  (*arr)[(*n)++] = u;
  return true;
}

static uop *buffer_slot(norm_ctx *c, uop *u) {
  sched_key *k = c->k;
  int cap = k->capbufs;
  if (!push(&k->bufs, &k->nbufs, &k->capbufs, u)) return NULL;
  if (k->capbufs != cap) {
    rt_device **d = ir_realloc(k->devs, sizeof(rt_device *) * (size_t)k->capbufs);
    if (!d) return NULL;
    k->devs = d;
  }
  k->devs[k->nbufs - 1] = buffer_of(u)->dev;
  int64_t a[2] = {k->nbufs - 1, u->arg.v[1]};
  return uop_new0(OP_DEFINE_GLOBAL, u->dt, arg_ints(a, 2));
}

static uop *norm(norm_ctx *c, uop *u) {
  uop *r = uopset_get(&c->memo, u);
  if (r || c->failed || c->foreign) return r;
  sched_key *k = c->k;
  if (u->op == OP_BUFFER) r = buffer_slot(c, u);
  else if (var_is_tensor(u)) {
    if (push(&k->vars, &k->nvars, &k->capvars, u)) {
      int64_t a[3] = {u->arg.v[0], u->arg.v[1], k->nvars - 1};
      r = uop_new0(OP_DEFINE_VAR, u->dt, (uarg){.kind = ARG_VAR, .n = 3, .v = a, .s = u->arg.s});
    }
  } else if (u->op == OP_DEFINE_GLOBAL || u->op == OP_DEFINE_VAR) {
    c->foreign = true; /* kernel-level nodes never reach a realize; were one here, it could equal a slot */
    return NULL;
  } else if (u->op == OP_CUSTOM || (u->op == OP_ASSIGN && c->done(u))) {
    r = norm(c, u->src[0]); /* as realize rewrites them before scheduling */
  } else {
    if (u->op == OP_ASSIGN && !push(&k->assigns, &k->nassigns, &k->capassigns, u)) return c->failed = true, NULL;
    uop *small[8], **src = u->nsrc <= 8 ? small : ir_malloc(sizeof(uop *) * u->nsrc);
    bool same = src != NULL;
    for (uint32_t i = 0; src && i < u->nsrc && !c->failed && !c->foreign; i++) {
      src[i] = norm(c, u->src[i]);
      same = same && src[i] == u->src[i];
    }
    /* an assign's arg is its serial number (each is its own node): the key numbers them
     * in the order met, as it numbers buffers */
    if (src && !c->failed && !c->foreign)
      r = u->op == OP_ASSIGN ? uop_new(OP_ASSIGN, u->dt, src, (int)u->nsrc, arg_int(k->nassigns - 1)) : same ? u : uop_replace_src(u, src, (int)u->nsrc);
    if (src != small) free(src);
    if (c->foreign) return NULL;
  }
  if (!r || !uopset_put(&c->memo, u, r)) return c->failed = true, NULL;
  return r;
}

static uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  return h * 0xff51afd7ed558ccdull;
}

cg_status sched_key_build(uop *const *outs, int n, bool (*done)(uop *), sched_key *k) {
  memset(k, 0, sizeof *k);
  norm_ctx c = {.k = k, .done = done};
  k->norm = ir_malloc(sizeof(uop *) * (size_t)(n ? n : 1));
  for (int i = 0; k->norm && i < n && !c.failed && !c.foreign; i++) k->norm[i] = norm(&c, outs[i]);
  k->nodes = c.memo.n;
  uopset_free(&c.memo);
  if (!k->norm || c.failed) {
    sched_key_free(k);
    return cg_fail(CG_ERR_NOMEM, "out of memory while looking up the schedule cache");
  }
  if (c.foreign) { /* no key: realize schedules as without the cache */
    sched_key_free(k);
    return CG_OK;
  }
  k->n = n;
  k->defdev = rt_default_device();
  k->multi = rt_multi_device();
  uint64_t h = mix((uint64_t)n, (uint64_t)(uintptr_t)k->defdev ^ (uint64_t)k->multi);
  for (int i = 0; i < n; i++) h = mix(h, (uint64_t)(uintptr_t)k->norm[i]);
  for (int i = 0; i < k->nbufs; i++) h = mix(h, (uint64_t)(uintptr_t)k->devs[i]);
  k->hash = h;
  return CG_OK;
}

void sched_key_free(sched_key *k) {
  free(k->norm), free(k->bufs), free(k->devs), free(k->vars), free(k->assigns);
  memset(k, 0, sizeof *k);
}

/* ---- entries ------------------------------------------------------------------------ */

/* A binding: >= 0 a key buffer slot, < 0 fresh intermediate -(b + 1). */
typedef struct {
  dtype dt;
  int64_t count;
  rt_device *dev;
  int64_t off; /* in the arena, or -1 */
} fresh_buf;

typedef struct {
  uop *ast; /* retained */
  int nbufs, nout, nvars;
  int32_t *bufs, *vars;
  rt_device *dev; /* NULL: nothing to run (an empty output, a copy) */
  prog_entry *prog;  /* with a reference (engine/programs.h) */
  bool copy_staged;
} tkernel;

struct sched_entry {
  uint64_t hash;
  uop **norm; /* retained */
  int n, nbufs;
  rt_device **devs, *defdev;
  bool multi;
  fresh_buf *fresh;
  int nfresh;
  rt_device *arena_dev;
  size_t arena_bytes;
  tkernel *k;
  int nk;
  int32_t *out, *keep;
  int nkeep;
  unsigned long gen; /* of the programs */
  size_t bytes;
  int refs;          /* users, + 1 while in the table */
  sched_entry *chain, *prev, *next;
};

enum { NBUCKETS = 1024 };
static struct {
  pthread_mutex_t lock;
  sched_entry *bucket[NBUCKETS];
  sched_entry *head, *tail; /* most recently used first */
  size_t n, bytes;
  uint64_t hits, misses, evictions;
} cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void entry_free(sched_entry *e) {
  if (!e) return;
  for (int i = 0; e->norm && i < e->n; i++) uop_release(e->norm[i]);
  for (int i = 0; e->k && i < e->nk; i++) { /* kernels not filled in are zeros */
    uop_release(e->k[i].ast);
    programs_release(e->k[i].prog);
    free(e->k[i].bufs), free(e->k[i].vars);
  }
  free(e->norm), free(e->devs), free(e->fresh), free(e->k), free(e->out), free(e->keep);
  free(e);
}

static bool key_eq(const sched_entry *e, const sched_key *k) {
  return e->hash == k->hash && e->n == k->n && e->nbufs == k->nbufs && e->defdev == k->defdev && e->multi == k->multi &&
         !memcmp(e->norm, k->norm, sizeof(uop *) * (size_t)k->n) && (!k->nbufs || !memcmp(e->devs, k->devs, sizeof(rt_device *) * (size_t)k->nbufs));
}

static void lru_unlink(sched_entry *e) {
  if (e->prev) e->prev->next = e->next;
  else cache.head = e->next;
  if (e->next) e->next->prev = e->prev;
  else cache.tail = e->prev;
  e->prev = e->next = NULL;
}
static void lru_front(sched_entry *e) {
  e->next = cache.head, e->prev = NULL;
  if (cache.head) cache.head->prev = e;
  cache.head = e;
  if (!cache.tail) cache.tail = e;
}

/* Out of the table (under the lock); the table's reference is dropped: the entry is
 * returned when it is to be freed now (no user holds it). */
static sched_entry *table_remove(sched_entry *e) {
  sched_entry **p = &cache.bucket[e->hash % NBUCKETS];
  while (*p != e) p = &(*p)->chain;
  *p = e->chain;
  lru_unlink(e);
  cache.n--, cache.bytes -= e->bytes;
  return --e->refs == 0 ? e : NULL;
}

sched_entry *sched_cache_get(const sched_key *k) {
  if (!k->norm) return NULL;
  pthread_mutex_lock(&cache.lock);
  sched_entry *e = cache.bucket[k->hash % NBUCKETS];
  while (e && !key_eq(e, k)) e = e->chain;
  if (e) {
    e->refs++, cache.hits++;
    lru_unlink(e), lru_front(e);
  } else cache.misses++;
  pthread_mutex_unlock(&cache.lock);
  return e;
}

void sched_cache_put(sched_entry *e) {
  if (!e) return;
  pthread_mutex_lock(&cache.lock);
  bool last = --e->refs == 0;
  pthread_mutex_unlock(&cache.lock);
  if (last) entry_free(e);
}

static uop *bound(const sched_key *k, uop *const *fresh, int32_t b) { return b >= 0 ? k->bufs[b] : fresh[-b - 1]; }

cg_status sched_entry_bind(sched_entry *e, const sched_key *k, schedule *s, rt_device **devs, prog_entry **progs, unsigned long *gen, uop ***keep, int *nkeep,
                           sched_arena *a) {
  memset(s, 0, sizeof *s);
  *keep = NULL, *nkeep = 0;
  uop **fresh = cg_malloc(sizeof(uop *) * (size_t)(e->nfresh ? e->nfresh : 1));
  if (!fresh) return CG_ERR_NOMEM;
  cg_status st = CG_OK;
  for (int j = 0; j < e->nfresh && st == CG_OK; j++)
    if (!(fresh[j] = buffer_new_on(e->fresh[j].dev, e->fresh[j].dt, e->fresh[j].count))) st = cg_last_status() ? cg_last_status() : CG_ERR_NOMEM;
  if (st == CG_OK && (!(s->k = cg_calloc((size_t)(e->nk ? e->nk : 1), sizeof *s->k)) || !(s->out_bufs = cg_malloc(sizeof(uop *) * (size_t)(e->n ? e->n : 1))) ||
                      !(*keep = cg_malloc(sizeof(uop *) * (size_t)(e->nkeep ? e->nkeep : 1)))))
    st = CG_ERR_NOMEM;
  pthread_mutex_lock(&cache.lock); /* the programs may be replaced meanwhile (sched_entry_set_progs) */
  *gen = e->gen;
  for (int i = 0; i < e->nk; i++) devs[i] = e->k[i].dev, progs[i] = e->k[i].prog, programs_retain(progs[i]); /* the caller's */
  pthread_mutex_unlock(&cache.lock);
  for (int i = 0; i < e->nk && st == CG_OK; i++) {
    const tkernel *t = &e->k[i];
    sched_kernel *sk = &s->k[s->n++];
    sk->ast = t->ast, sk->nbufs = t->nbufs, sk->nout = t->nout, sk->nvars = t->nvars, sk->copy_staged = t->copy_staged;
    if (!(sk->bufs = cg_malloc(sizeof(uop *) * (size_t)(t->nbufs ? t->nbufs : 1))) || (t->nvars && !(sk->vars = cg_malloc(sizeof(uop *) * (size_t)t->nvars)))) {
      st = CG_ERR_NOMEM;
      break;
    }
    for (int b = 0; b < t->nbufs; b++) sk->bufs[b] = bound(k, fresh, t->bufs[b]);
    for (int v = 0; v < t->nvars; v++) sk->vars[v] = k->vars[t->vars[v]];
  }
  for (int i = 0; i < e->n && st == CG_OK; i++) s->out_bufs[i] = bound(k, fresh, e->out[i]);
  for (int i = 0; i < e->nkeep && st == CG_OK; i++) (*keep)[(*nkeep)++] = bound(k, fresh, e->keep[i]);
  /* the memory plan: one block, the same offsets */
  if (st == CG_OK && e->arena_bytes) {
    a->dev = e->arena_dev, a->bytes = e->arena_bytes;
    if (!(a->mem = a->dev->alloc(a->bytes)) || !(a->bufs = cg_malloc(sizeof(uop *) * (size_t)e->nfresh))) st = cg_last_status() ? cg_last_status() : CG_ERR_NOMEM;
    for (int j = 0; j < e->nfresh && st == CG_OK; j++)
      if (e->fresh[j].off >= 0) buffer_borrow(fresh[j], (char *)a->mem + e->fresh[j].off), a->bufs[a->n++] = fresh[j];
  }
  free(fresh);
  return st;
}

int sched_entry_kernels(const sched_entry *e) { return e->nk; }

void sched_entry_set_progs(sched_entry *e, prog_entry *const *progs, unsigned long gen) {
  prog_entry **old = cg_malloc(sizeof *old * (size_t)(e->nk ? e->nk : 1));
  if (!old) {
    cg_clear_error(); /* the cache is a shortcut: the next hit fetches them again */
    return;
  }
  pthread_mutex_lock(&cache.lock);
  for (int i = 0; i < e->nk; i++) old[i] = e->k[i].prog, programs_retain(e->k[i].prog = progs[i]);
  e->gen = gen;
  pthread_mutex_unlock(&cache.lock);
  for (int i = 0; i < e->nk; i++) programs_release(old[i]); /* outside the lock, as entry_free */
  free(old);
}

/* The binding of buffer b (see fresh_buf); a kernel output met for the first time becomes
 * the next fresh intermediate when `make`. false: not expressible. */
static bool bind_of(uopset *map, uop *b, bool make, sched_entry *e, int32_t *out) {
  intptr_t v = (intptr_t)uopset_get(map, b);
  if (!v && make) {
    fresh_buf *f = &e->fresh[e->nfresh];
    *f = (fresh_buf){b->dt, b->arg.v[1], buffer_of(b)->dev, -1};
    v = -(intptr_t)++e->nfresh;
    if (!uopset_put(map, b, (void *)v)) return false;
  }
  if (!v) return false;
  *out = (int32_t)(v > 0 ? v - 1 : v);
  return true;
}

static size_t limit(const char *name, long dflt) {
  long v = cfg_int(name, dflt);
  return v < 0 ? 0 : (size_t)v;
}

void sched_cache_add(const sched_key *k, const schedule *s, rt_device *const *devs, prog_entry *const *progs, unsigned long gen, uop *const *keep, int nkeep,
                     const sched_arena *a) {
  if (!k->norm) return;
  size_t max_entries = limit("CG_SCHED_CACHE_ENTRIES", 256), max_bytes = limit("CG_SCHED_CACHE_MB", 64) << 20;
  int nout_bufs = 0;
  for (int i = 0; i < s->n; i++) nout_bufs += s->k[i].nout;
  sched_entry *e = cg_calloc(1, sizeof *e);
  uopset map = {0}, vmap = {0};
  bool ok = e && (e->norm = cg_malloc(sizeof(uop *) * (size_t)(k->n ? k->n : 1))) && (e->devs = cg_malloc(sizeof(rt_device *) * (size_t)(k->nbufs ? k->nbufs : 1))) &&
            (e->fresh = cg_malloc(sizeof(fresh_buf) * (size_t)(nout_bufs ? nout_bufs : 1))) && (e->k = cg_calloc((size_t)(s->n ? s->n : 1), sizeof *e->k)) &&
            (e->out = cg_malloc(sizeof(int32_t) * (size_t)(k->n ? k->n : 1))) && (e->keep = cg_malloc(sizeof(int32_t) * (size_t)(nkeep ? nkeep : 1)));
  /* the key's buffers and vars by slot */
  for (int i = 0; ok && i < k->nbufs; i++) ok = uopset_put(&map, k->bufs[i], (void *)(intptr_t)(i + 1));
  for (int i = 0; ok && i < k->nvars; i++) ok = uopset_put(&vmap, k->vars[i], (void *)(intptr_t)(i + 1));
  if (ok) e->nk = s->n;
  for (int i = 0; ok && i < s->n; i++) {
    const sched_kernel *sk = &s->k[i];
    tkernel *t = &e->k[i];
    t->nbufs = sk->nbufs, t->nout = sk->nout, t->nvars = sk->nvars, t->dev = devs[i], t->prog = progs[i], t->copy_staged = sk->copy_staged;
    ok = (t->bufs = cg_malloc(sizeof(int32_t) * (size_t)(sk->nbufs ? sk->nbufs : 1))) && (!sk->nvars || (t->vars = cg_malloc(sizeof(int32_t) * (size_t)sk->nvars)));
    for (int b = 0; ok && b < sk->nbufs; b++) ok = bind_of(&map, sk->bufs[b], b < sk->nout, e, &t->bufs[b]);
    for (int v = 0; ok && v < sk->nvars; v++) {
      intptr_t x = (intptr_t)uopset_get(&vmap, sk->vars[v]);
      ok = x > 0;
      if (ok) t->vars[v] = (int32_t)(x - 1);
    }
    if (ok) t->ast = uop_retain(sk->ast);
    programs_retain(t->prog); /* released with the entry, filled in or not */
  }
  for (int i = 0; ok && i < k->n; i++) ok = bind_of(&map, s->out_bufs[i], false, e, &e->out[i]);
  for (int i = 0; ok && i < nkeep; i++) ok = bind_of(&map, keep[i], false, e, &e->keep[i]);
  if (ok && a && a->n) {
    e->arena_dev = a->dev, e->arena_bytes = a->bytes;
    for (int j = 0; ok && j < a->n; j++) {
      int32_t b;
      ok = bind_of(&map, a->bufs[j], false, e, &b) && b < 0;
      if (ok) e->fresh[-b - 1].off = (char *)buffer_of(a->bufs[j])->ptr - (char *)a->mem;
    }
  }
  uopset_free(&map), uopset_free(&vmap);
  if (!ok) { /* out of memory, or a buffer outside the key: not remembered */
    entry_free(e);
    cg_clear_error();
    return;
  }
  e->hash = k->hash, e->n = k->n, e->nbufs = k->nbufs, e->defdev = k->defdev, e->multi = k->multi, e->gen = gen, e->nkeep = nkeep;
  if (k->nbufs) memcpy(e->devs, k->devs, sizeof(rt_device *) * (size_t)k->nbufs);
  for (int i = 0; i < k->n; i++) e->norm[i] = uop_retain(k->norm[i]);
  /* the size: the nodes the key keeps alive, plus the template */
  e->bytes = sizeof *e + k->nodes * (sizeof(uop) + 64) + (size_t)e->nfresh * sizeof(fresh_buf) + (size_t)k->n * (sizeof(uop *) + 2 * sizeof(int32_t));
  for (int i = 0; i < e->nk; i++) e->bytes += sizeof(tkernel) + sizeof(int32_t) * (size_t)(e->k[i].nbufs + e->k[i].nvars);
  e->refs = 1;
  sched_entry *evict[64];
  int nevict = 0;
  pthread_mutex_lock(&cache.lock);
  sched_entry *old = cache.bucket[e->hash % NBUCKETS];
  while (old && !key_eq(old, k)) old = old->chain;
  if (old) { /* another thread was first */
    pthread_mutex_unlock(&cache.lock);
    entry_free(e);
    return;
  }
  e->chain = cache.bucket[e->hash % NBUCKETS];
  cache.bucket[e->hash % NBUCKETS] = e;
  lru_front(e);
  cache.n++, cache.bytes += e->bytes;
  /* least recently used out, this one last (one larger than the bound is not kept) */
  while (cache.tail && (cache.n > max_entries || cache.bytes > max_bytes) && nevict < 64) {
    sched_entry *x = table_remove(cache.tail);
    cache.evictions++;
    if (x) evict[nevict++] = x;
  }
  pthread_mutex_unlock(&cache.lock);
  for (int i = 0; i < nevict; i++) entry_free(evict[i]); /* outside the lock: releasing UOps runs free hooks */
}

sched_cache_stats sched_cache_get_stats(void) {
  pthread_mutex_lock(&cache.lock);
  sched_cache_stats st = {cache.hits, cache.misses, cache.evictions, cache.n, cache.bytes};
  pthread_mutex_unlock(&cache.lock);
  return st;
}

void sched_cache_clear(void) {
  for (;;) {
    sched_entry *evict[64];
    int nevict = 0;
    pthread_mutex_lock(&cache.lock);
    while (cache.tail && nevict < 64) {
      sched_entry *x = table_remove(cache.tail);
      if (x) evict[nevict++] = x;
    }
    bool more = cache.tail != NULL;
    pthread_mutex_unlock(&cache.lock);
    for (int i = 0; i < nevict; i++) entry_free(evict[i]);
    if (!more) return;
  }
}
