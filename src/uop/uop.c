/* Interning, pools and reference counting of UOps.
 *
 * The intern table is a hash set of live nodes; it holds no references. A node is freed
 * (and leaves the table) when its count reaches zero; freeing drops its sources' counts
 * with an explicit stack, so long chains do not recurse. */
#include "uop.h"
#include "shape.h"
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

static void table_grow(void) {
  size_t n = nbuckets ? nbuckets * 2 : 4096;
  uop **nb = calloc(n, sizeof *nb);
  CG_ASSERT(nb, "out of memory growing the intern table");
  for (size_t i = 0; i < nbuckets; i++)
    for (uop *u = buckets[i], *next; u; u = next) {
      next = u->chain;
      u->chain = nb[u->hash & (n - 1)];
      nb[u->hash & (n - 1)] = u;
    }
  free(buckets);
  buckets = nb;
  nbuckets = n;
}

/* ---- pools ------------------------------------------------------------------------ */

typedef struct pool {
  uop **items;
  size_t n, cap;
  struct pool *up;
} pool;
static _Thread_local pool *top_pool;

void uop_pool_push(void) {
  pool *p = calloc(1, sizeof *p);
  CG_ASSERT(p, "out of memory");
  p->up = top_pool;
  top_pool = p;
}

void uop_pool_pop(void) {
  pool *p = top_pool;
  CG_ASSERT(p, "uop_pool_pop without a pool");
  top_pool = p->up;
  for (size_t i = 0; i < p->n; i++) uop_release(p->items[i]);
  free(p->items);
  free(p);
}

static uop *pool_own(uop *u) {
  pool *p = top_pool;
  CG_ASSERT(p, "a UOp was built outside any pool: wrap the code in uop_pool_push/pop");
  if (p->n == p->cap) {
    p->cap = p->cap ? p->cap * 2 : 256;
    p->items = realloc(p->items, p->cap * sizeof *p->items);
    CG_ASSERT(p->items, "out of memory");
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
  uop *u = malloc(size);
  CG_ASSERT(u, "out of memory creating a %s node", op_name(op));
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
  if (nlive * 2 >= nbuckets) table_grow();
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

void uop_release(uop *u) {
  if (!u) return;
  uop *stack_small[64], **stack = stack_small;
  size_t n = 0, cap = 64;
  pthread_mutex_lock(&intern_lock);
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
        uop **bigger = malloc(sizeof *bigger * cap * 2);
        CG_ASSERT(bigger, "out of memory");
        memcpy(bigger, stack, sizeof *bigger * n);
        if (stack != stack_small) free(stack);
        stack = bigger;
        cap *= 2;
      }
      stack[n++] = x->src[i];
    }
    free(x);
  }
  pthread_mutex_unlock(&intern_lock);
  if (stack != stack_small) free(stack);
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
uop *uop_replace_src(uop *u, uop *const *src, int nsrc) { return uop_new(u->op, u->dt, src, nsrc, u->arg); }

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
  dtype d = dt_base(like->dt);
  return uop_const_float(d, v);
}
uop *uop_var(const char *name, int64_t min, int64_t max) {
  int64_t b[2] = {min, max};
  uarg a = {.kind = ARG_VAR, .n = 2, .v = b, .s = name};
  return uop_new0(OP_DEFINE_VAR, DT_I32, a);
}
uop *uop_alu(int op, uop *a, uop *b) { return uop_new2(op, op_has(op, F_CMP) ? dt_vec(DT_BOOL, a->dt.count) : a->dt, a, b); }
uop *uop_alu1(int op, uop *a) { return uop_new1(op, a->dt, a, arg_none()); }
uop *uop_where(uop *c, uop *a, uop *b) { return uop_new3(OP_WHERE, a->dt, c, a, b); }

double uop_const_value(const uop *u) { return u->arg.kind == ARG_FLOAT ? u->arg.f : (double)u->arg.i; }
int64_t uop_const_ivalue(const uop *u) { return u->arg.kind == ARG_FLOAT ? alu_float_to_int(DT_I64, u->arg.f) : u->arg.i; }

/* ---- DAG size ------------------------------------------------------------------------- */

#include "uopset.h"
static size_t dag_visit(uopset *seen, uop *u) {
  if (!uopset_add(seen, u)) return 0;
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
