/* The records of composite ops (see composite.h): a pointer map from value node to record,
 * plus the list of records for the sweep. Shared by all threads (graphs are). */
#include "composite.h"
#include "uop/uopset.h"
#include <pthread.h>
#include <string.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uopset by_out;        /* out -> composite * */
static composite **all;
static size_t n_all, cap_all;

/* Records whose value node only the record still holds: nothing can reach them again.
 * Returns them (unlinked) for release outside the lock. */
static size_t sweep_locked(uop **dead) {
  size_t nd = 0, keep = 0;
  for (size_t i = 0; i < n_all; i++) {
    composite *c = all[i];
    if (c->out->refcnt == 1) {
      uopset_del(&by_out, c->out);
      dead[nd++] = c->out;
      for (int j = 0; j < c->nin; j++) dead[nd++] = c->in[j];
      free(c);
    } else {
      all[keep++] = c;
    }
  }
  n_all = keep;
  return nd;
}

void composite_record(uop *out, uop *const *in, int nin, composite_grad_fn fn, const int64_t *p, int np) {
  CG_ASSERT(nin >= 1 && nin <= COMPOSITE_MAX_IN && np >= 0 && np <= COMPOSITE_MAX_PARAMS, "composite with %d inputs, %d params", nin, np);
  /* Out of memory anywhere here: no record (autograd then goes op by op: the same
   * gradient, with more memory), or no sweep this time. */
  composite *c = cg_calloc(1, sizeof *c);
  if (!c) return;
  c->out = uop_retain(out), c->nin = nin, c->np = np, c->grad = fn;
  for (int j = 0; j < nin; j++) c->in[j] = uop_retain(in[j]);
  if (np) memcpy(c->p, p, sizeof(int64_t) * (size_t)np);
  pthread_mutex_lock(&lock);
  uop **dead = cg_malloc(sizeof(uop *) * (n_all + 1) * (1 + COMPOSITE_MAX_IN));
  size_t nd = dead ? sweep_locked(dead) : 0;
  bool drop = uopset_get(&by_out, out) != NULL; /* recorded already (the same graph built again): keep that one */
  if (!drop && n_all == cap_all) {
    size_t cap = cap_all ? 2 * cap_all : 32;
    composite **a = cg_realloc(all, cap * sizeof *all);
    if (a) all = a, cap_all = cap;
    else drop = true;
  }
  if (!drop && !uopset_put(&by_out, out, c)) drop = true;
  if (!drop) all[n_all++] = c;
  pthread_mutex_unlock(&lock);
  for (size_t i = 0; i < nd; i++) uop_release(dead[i]);
  free(dead);
  if (drop) {
    uop_release(c->out);
    for (int j = 0; j < nin; j++) uop_release(c->in[j]);
    free(c);
  }
}

bool composite_get(const uop *u, composite *c) {
  pthread_mutex_lock(&lock);
  composite *r = uopset_get(&by_out, u);
  if (r) *c = *r;
  pthread_mutex_unlock(&lock);
  return r != NULL;
}
