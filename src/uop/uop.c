/* Interning, pools and reference counting of UOps.
 *
 * The intern table is a hash set of live nodes; it holds no references. A node is freed
 * (and leaves the table) when its count reaches zero; freeing drops its sources' counts
 * with an explicit stack, so long chains do not recurse. */
#include "uop.h"
#include "shape.h"
#include "core/fault.h"
#include <math.h>
#include <pthread.h>
#include <string.h>

const uop_info uop_table[OP_COUNT] = {
#define OP(name, group, nsrc, dr, flags, doc) {#name, doc, group, nsrc, dr, flags},
#include "ops.def"
#undef OP
};

/* ---- intern table ------------------------------------------------------------------- */

static pthread_mutex_t intern_lock = PTHREAD_MUTEX_INITIALIZER;
static uop **buckets;
static size_t nbuckets, nlive;

static uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  return h * 0xff51afd7ed558ccdull;
}

static uint64_t hash_arg(uint64_t h, const uarg *a) {
  h = mix(h, a->kind);
  switch (a->kind) {
  case ARG_INT: h = mix(h, (uint64_t)a->i); break;
  case ARG_FLOAT: { uint64_t b; memcpy(&b, &a->f, 8); h = mix(h, b); break; }
  case ARG_VAR:
  case ARG_STR:
    for (const char *p = a->s; *p; p++) h = mix(h, (uint8_t)*p);
    if (a->kind == ARG_STR) break;
    __attribute__((fallthrough)); /* ARG_VAR hashes its bounds too */
  case ARG_INTS:
    h = mix(h, (uint64_t)a->n);
    for (int i = 0; i < a->n; i++) h = mix(h, (uint64_t)a->v[i]);
    break;
  default: break;
  }
  return h;
}

bool uarg_eq(const uarg *a, const uarg *b) {
  if (a->kind != b->kind) return false;
  switch (a->kind) {
  case ARG_INT: return a->i == b->i;
  case ARG_FLOAT: return memcmp(&a->f, &b->f, 8) == 0; /* bitwise: -0.0 and NaNs stay distinct */
  case ARG_STR: return strcmp(a->s, b->s) == 0;
  case ARG_VAR: if (strcmp(a->s, b->s)) return false; __attribute__((fallthrough));
  case ARG_INTS: return a->n == b->n && (!a->n || !memcmp(a->v, b->v, sizeof(int64_t) * (size_t)a->n));
  default: return true;
  }
}

static uint64_t node_hash(int op, dtype dt, uop *const *src, int nsrc, const uarg *arg) {
  uint64_t h = mix((uint64_t)op, dt_bits(dt));
  for (int i = 0; i < nsrc; i++) h = mix(h, src[i]->hash);
  return hash_arg(h, arg);
}

/* Double the table; false when that memory is not there (the table then just gets fuller,
 * which is only fatal while it has no buckets at all). */
static bool table_grow(void) {
  size_t n = nbuckets ? nbuckets * 2 : 4096;
  uop **nb = uop_inject_fault() ? NULL : calloc(n, sizeof *nb);
  if (!nb) return false;
  for (size_t i = 0; i < nbuckets; i++)
    for (uop *u = buckets[i], *next; u; u = next) {
      next = u->chain;
      u->chain = nb[u->hash & (n - 1)];
      nb[u->hash & (n - 1)] = u;
    }
  free(buckets);
  buckets = nb;
  nbuckets = n;
  return true;
}

/* ---- pools ------------------------------------------------------------------------ */

/* Pools live in a per-thread stack so that opening one never allocates (and so never fails). */
#define MAX_POOLS 256
typedef struct pool {
  uop **items;
  size_t n, cap;
  bool checked;      /* IR allocations here may fail (see uop.h) */
  uint64_t nomem0;   /* nomem_events when the pool was opened */
} pool;
static _Thread_local pool pools[MAX_POOLS];
static _Thread_local int npools;
static _Thread_local uint64_t nomem_events;
#define top_pool (npools ? &pools[npools - 1] : NULL)

static void pool_push(bool checked) {
  CG_ASSERT(npools < MAX_POOLS, "more than %d nested UOp pools", MAX_POOLS);
  pools[npools++] = (pool){.checked = checked, .nomem0 = nomem_events};
}
void uop_pool_push(void) { pool_push(false); }
void uop_pool_push_checked(void) { pool_push(true); }
void uop_pool_push_inherit(void) { pool_push(uop_pool_checked()); }
bool uop_pool_checked(void) { return npools && pools[npools - 1].checked; }
bool uop_pool_failed(void) { return npools && pools[npools - 1].nomem0 != nomem_events; }
uint64_t uop_nomem_events(void) { return nomem_events; }

void uop_pool_pop(void) {
  CG_ASSERT(npools > 0, "uop_pool_pop without a pool");
  pool p = pools[--npools];
  for (size_t i = 0; i < p.n; i++) uop_release(p.items[i]);
  free(p.items);
}

/* ---- IR memory: fails softly in a checked pool, aborts elsewhere -------------------- */

bool uop_inject_fault(void) { return uop_pool_checked() && fault_hit(); }

static void *ir_failed(size_t n) {
  CG_ASSERT(uop_pool_checked(), "out of memory (%zu bytes) outside a checked pool", n);
  nomem_events++;
  return cg_fail_null(CG_ERR_NOMEM, "out of memory: could not allocate %zu bytes for the graph", n);
}
void *ir_malloc(size_t n) {
  void *p = uop_inject_fault() ? NULL : malloc(n ? n : 1);
  return p ? p : ir_failed(n);
}
void *ir_calloc(size_t n, size_t size) {
  void *p = uop_inject_fault() ? NULL : calloc(n ? n : 1, size ? size : 1);
  return p ? p : ir_failed(n * size);
}
void *ir_realloc(void *old, size_t n) {
  void *p = uop_inject_fault() ? NULL : realloc(old, n ? n : 1);
  return p ? p : ir_failed(n);
}

/* Hand the reference to the innermost pool; NULL (reference dropped) when it cannot grow. */
static uop *pool_own(uop *u) {
  pool *p = top_pool;
  CG_ASSERT(p, "a UOp was built outside any pool: wrap the code in uop_pool_push/pop");
  if (p->n == p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 256;
    uop **items = ir_realloc(p->items, cap * sizeof *items);
    if (!items) {
      uop_release(u);
      return NULL;
    }
    p->items = items, p->cap = cap;
  }
  p->items[p->n++] = u;
  return u;
}

uop *uop_pool_keep(uop *u) { return u ? pool_own(u) : u; }

/* ---- creation ---------------------------------------------------------------------- */

static size_t arg_extra(const uarg *a) {
  size_t n = 0;
  if (a->kind == ARG_INTS || a->kind == ARG_VAR) n += sizeof(int64_t) * (size_t)a->n;
  if (a->kind == ARG_STR || a->kind == ARG_VAR) n += strlen(a->s) + 1;
  return n;
}

uop *uop_new(int op, dtype dt, uop *const *src, int nsrc, uarg arg) {
  for (int i = 0; i < nsrc; i++)
    if (!src[i]) return NULL; /* a source failed to build (out of memory): already recorded */
#ifndef NDEBUG
  const char *bad = uop_check(op, dt, src, nsrc, &arg);
  CG_ASSERT(!bad, "malformed %s %s: %s", op_name(op), dt_name(dt), bad);
#endif
  uint64_t h = node_hash(op, dt, src, nsrc, &arg);
  pthread_mutex_lock(&intern_lock);
  if (nbuckets) {
    for (uop *u = buckets[h & (nbuckets - 1)]; u; u = u->chain) {
      if (u->hash != h || u->op != op || !dt_eq(u->dt, dt) || (int)u->nsrc != nsrc) continue;
      int same = 1;
      for (int i = 0; i < nsrc && same; i++) same = u->src[i] == src[i];
      if (same && uarg_eq(&u->arg, &arg)) {
        u->refcnt++;
        pthread_mutex_unlock(&intern_lock);
        return pool_own(u);
      }
    }
  }
  int64_t shp[UOP_MAX_DIMS];
  int ndim = shape_infer(op, src, nsrc, &arg, shp);
  size_t ndims = ndim > 0 ? (size_t)ndim : 0;
  size_t size = sizeof(uop) + sizeof(uop *) * (size_t)nsrc + sizeof(int64_t) * ndims + arg_extra(&arg);
  if (nlive * 2 >= nbuckets && !table_grow() && !nbuckets) {
    pthread_mutex_unlock(&intern_lock);
    return ir_failed(sizeof(uop *) * 4096);
  }
  uop *u = uop_inject_fault() ? NULL : malloc(size);
  if (!u) {
    pthread_mutex_unlock(&intern_lock);
    return ir_failed(size);
  }
  u->op = (uint16_t)op;
  u->dt = dt;
  u->refcnt = 1;
  u->nsrc = (uint32_t)nsrc;
  u->hash = h;
  uint64_t tsize = 1;
  for (int i = 0; i < nsrc; i++) src[i]->refcnt++, u->src[i] = src[i], tsize += src[i]->tsize;
  u->tsize = tsize > UINT32_MAX ? UINT32_MAX : (uint32_t)tsize;
  char *extra = (char *)&u->src[nsrc];
  u->ndim = ndim;
  u->shape = (const int64_t *)extra;
  if (ndims) memcpy(extra, shp, sizeof(int64_t) * ndims);
  extra += sizeof(int64_t) * ndims;
  u->arg = arg;
  if (arg.kind == ARG_INTS || arg.kind == ARG_VAR) {
    if (arg.n) memcpy(extra, arg.v, sizeof(int64_t) * (size_t)arg.n);
    u->arg.v = (const int64_t *)extra;
    extra += sizeof(int64_t) * (size_t)arg.n;
  }
  if (arg.kind == ARG_STR || arg.kind == ARG_VAR) {
    strcpy(extra, arg.s);
    u->arg.s = extra;
  }
  uop_compute_bounds(u);
  u->chain = buckets[h & (nbuckets - 1)];
  buckets[h & (nbuckets - 1)] = u;
  nlive++;
  pthread_mutex_unlock(&intern_lock);
  return pool_own(u);
}

uop *uop_retain(uop *u) {
  if (!u) return u;
  pthread_mutex_lock(&intern_lock);
  u->refcnt++;
  pthread_mutex_unlock(&intern_lock);
  return u;
}

static void (*free_hooks[OP_COUNT])(uop *);
/* atomic: a hook is (re)set by every realize on any thread, and read under the intern lock */
void uop_set_free_hook(int op, void (*fn)(uop *u)) { __atomic_store_n(&free_hooks[op], fn, __ATOMIC_RELEASE); }

static void unlink_node(uop *u) {
  uop **pp = &buckets[u->hash & (nbuckets - 1)];
  while (*pp != u) pp = &(*pp)->chain;
  *pp = u->chain;
  nlive--;
}

/* Drop one reference (intern lock held). An explicit stack keeps long chains from
 * recursing; when it cannot grow (out of memory) the rest is released by recursion. */
static void release_locked(uop *u) {
  uop *stack_small[64], **stack = stack_small;
  size_t n = 0, cap = 64;
  stack[n++] = u;
  while (n) {
    uop *x = stack[--n];
    CG_ASSERT(x->refcnt > 0, "released a dead %s node", op_name(x->op));
    if (--x->refcnt) continue;
    unlink_node(x);
    void (*hook)(uop *) = __atomic_load_n(&free_hooks[x->op], __ATOMIC_ACQUIRE);
    if (hook) hook(x);
    for (uint32_t i = 0; i < x->nsrc; i++) {
      if (n == cap) {
        uop **bigger = uop_inject_fault() ? NULL : malloc(sizeof *bigger * cap * 2);
        if (!bigger) {
          release_locked(x->src[i]);
          continue;
        }
        memcpy(bigger, stack, sizeof *bigger * n);
        if (stack != stack_small) free(stack);
        stack = bigger;
        cap *= 2;
      }
      stack[n++] = x->src[i];
    }
    free(x);
  }
  if (stack != stack_small) free(stack);
}

void uop_release(uop *u) {
  if (!u) return;
  pthread_mutex_lock(&intern_lock);
  release_locked(u);
  pthread_mutex_unlock(&intern_lock);
}

size_t uop_live_count(void) {
  pthread_mutex_lock(&intern_lock);
  size_t n = nlive;
  pthread_mutex_unlock(&intern_lock);
  return n;
}

/* ---- shorthands -------------------------------------------------------------------- */

uop *uop_new0(int op, dtype dt, uarg arg) { return uop_new(op, dt, NULL, 0, arg); }
uop *uop_new1(int op, dtype dt, uop *a, uarg arg) { return uop_new(op, dt, &a, 1, arg); }
uop *uop_new2(int op, dtype dt, uop *a, uop *b) { uop *s[2] = {a, b}; return uop_new(op, dt, s, 2, arg_none()); }
uop *uop_new3(int op, dtype dt, uop *a, uop *b, uop *c) { uop *s[3] = {a, b, c}; return uop_new(op, dt, s, 3, arg_none()); }
uop *uop_replace_src(uop *u, uop *const *src, int nsrc) { return u ? uop_new(u->op, u->dt, src, nsrc, u->arg) : NULL; }

uop *uop_const_int(dtype dt, int64_t v) {
  if (dt_is_float(dt)) return uop_const_float(dt, (double)v);
  return uop_new0(OP_CONST, dt, arg_int(alu_wrap(dt, v)));
}
/* A float given for an int dtype converts as CAST does (saturating, NaN gives 0). A float
 * constant keeps the double it is given: the folder computes with it exactly, kernels read
 * it rounded to float32 (float64: as is), as a C literal is (ops.def, CONST). */
uop *uop_const_float(dtype dt, double v) {
  if (!dt_is_float(dt)) return uop_const_int(dt, alu_float_to_int(dt_base(dt), v));
  return uop_new0(OP_CONST, dt, arg_float(v));
}
uop *uop_const_like(uop *like, double v) {
  if (!like) return NULL;
  dtype d = dt_base(like->dt);
  return uop_const_float(d, v);
}
uop *uop_var(const char *name, int64_t min, int64_t max) {
  int64_t b[2] = {min, max};
  uarg a = {.kind = ARG_VAR, .n = 2, .v = b, .s = name};
  return uop_new0(OP_DEFINE_VAR, DT_I32, a);
}
uop *uop_alu(int op, uop *a, uop *b) { return !a ? NULL : uop_new2(op, op_has(op, F_CMP) ? dt_vec(DT_BOOL, a->dt.count) : a->dt, a, b); }
uop *uop_alu1(int op, uop *a) { return !a ? NULL : uop_new1(op, a->dt, a, arg_none()); }
uop *uop_where(uop *c, uop *a, uop *b) { return !a ? NULL : uop_new3(OP_WHERE, a->dt, c, a, b); }

double uop_const_value(const uop *u) { return u->arg.kind == ARG_FLOAT ? u->arg.f : (double)u->arg.i; }
int64_t uop_const_ivalue(const uop *u) { return u->arg.kind == ARG_FLOAT ? alu_float_to_int(DT_I64, u->arg.f) : u->arg.i; }

/* ---- DAG size ------------------------------------------------------------------------- */

#include "uopset.h"
static size_t dag_visit(uopset *seen, uop *u) {
  if (uopset_add(seen, u) <= 0) return 0;
  size_t n = 1;
  for (uint32_t i = 0; i < u->nsrc; i++) n += dag_visit(seen, u->src[i]);
  return n;
}
size_t uop_dag_size(uop *u) {
  uopset seen = {0};
  size_t n = dag_visit(&seen, u);
  uopset_free(&seen);
  return n;
}

bool uop_depends(uop *u, uop *r, uopset *memo) {
  if (u == r) return true;
  uintptr_t m = (uintptr_t)uopset_get(memo, u);
  if (m) return m == 2;
  bool d = false;
  if (u->op != OP_DEFINE_GLOBAL)
    for (uint32_t i = 0; i < u->nsrc && !d; i++) d = uop_depends(u->src[i], r, memo);
  uopset_put(memo, u, (void *)(uintptr_t)(1 + d));
  return d;
}
