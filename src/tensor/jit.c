/* cg_jit: a function of tensors captured once and replayed (ARCHITECTURE §8).
 *
 *   call 1 (per context)  run fn eagerly, record which programs it launched
 *   call 2                run fn again under capture; same programs as call 1 -> the
 *                         capture becomes the context's replay (else a DEBUG note, and the
 *                         next call captures again)
 *   call 3..              replay: bind the inputs' buffers, launch the list — no graph,
 *                         schedule, codegen or hashing; outputs are the captured buffers
 *
 * A context per distinct key (the number of inputs, each one's dtype and shape): a list
 * input of another length or a batch of another size gets its own; at most JIT_MAX_CONTEXTS
 * (default 8) are kept, the least recently used dropped. Intermediates live in one slab per
 * call, as large as the largest context's, taken from the device allocator and given back
 * when the call returns (so contexts share it, and the next call is a cache hit).
 *
 * Scalars that change per call compile nothing: a var input (cg_variable, or a view of one) is
 * bound at each replay to the value of the var passed; a constant input (cg_full,
 * cg_scalar: never realized) of an int32/int64/float32/float64 dtype becomes the context's
 * own var, set to the constant's value on each call (other dtypes are filled on the host).
 * Var and constant inputs are keyed apart from buffer inputs of the same shape. */
#include "tensor.h"
#include "core/config.h"
#include "engine/capture.h"
#include "runtime/var.h"
#include <string.h>

typedef struct jctx {
  int n_in;
  int64_t *key;       /* per input: dtype, ndim, dims */
  size_t nkey;
  int phase;          /* 0 new, 1 seen once, 2 replaying */
  capture *seen;      /* the launches of the last eager call */
  uop **cvars;        /* per input: the var a constant input becomes (retained), or NULL */
  replay *r;
  uop **outs;         /* the outputs' views (retained) */
  uint64_t used;
  struct jctx *next;
} jctx;

struct cg_jit {
  cg_jit_fn fn;
  void *user;
  int n_out;
  jctx *ctx;
  int nctx;
  uint64_t tick;
  size_t slab;        /* the largest context's */
  cg_jit_info info;
};

cg_jit *cg_jit_new(cg_jit_fn fn, int n_out, void *user) {
  if (!fn) return cg_fail_null(CG_NULL_INPUT, "jit_new: the function is NULL");
  if (n_out < 1) return cg_fail_null(CG_ERR_INVALID, "jit_new: expected at least one output, got %d", n_out);
  cg_jit *j = cg_calloc(1, sizeof *j);
  if (!j) return cg_fail_null(CG_ERR_NOMEM, "out of memory");
  j->fn = fn, j->user = user, j->n_out = n_out;
  return j;
}

static void ctx_free(jctx *c, int n_out) {
  free(c->key);
  for (int i = 0; c->cvars && i < c->n_in; i++) uop_release(c->cvars[i]);
  free(c->cvars);
  capture_discard(c->seen);
  replay_free(c->r);
  for (int i = 0; c->outs && i < n_out; i++)
    if (c->outs[i]) uop_release(c->outs[i]);
  free(c->outs);
  free(c);
}

void cg_jit_free(cg_jit *j) {
  if (!j) return;
  for (jctx *c = j->ctx, *n; c; c = n) n = c->next, ctx_free(c, j->n_out);
  free(j);
}

cg_jit_info cg_jit_stats(const cg_jit *j) {
  cg_jit_info i = {0};
  if (j) i = j->info, i.contexts = j->nctx, i.slab_bytes = j->slab;
  return i;
}

/* The value of a tensor that is a constant broadcast (cg_scalar, cg_full: never realized),
 * or false. */
static bool const_value(const uop *u, double *v) {
  while (u->op == OP_RESHAPE || u->op == OP_EXPAND) u = u->src[0];
  if (u->op != OP_CONST) return false;
  *v = uop_const_value(u);
  return true;
}
/* The var a tensor is a broadcast of, or NULL. */
static uop *var_under(uop *u) {
  while (u->op == OP_RESHAPE || u->op == OP_EXPAND) u = u->src[0];
  return var_is_tensor(u) ? u : NULL;
}
static bool var_dtype(dtype d) { return d.scalar == CG_INT32 || d.scalar == CG_INT64 || d.scalar == CG_FLOAT32 || d.scalar == CG_FLOAT64; }
/* Input kinds in the key: a buffer, or a var (a var input or a constant that becomes one). */
static int64_t input_kind(const cg_tensor *t) {
  double v;
  return var_under(t->u) || (var_dtype(t->u->dt) && const_value(t->u, &v)) ? 1 : 0;
}

/* the key of these inputs (malloc'd) */
static int64_t *make_key(cg_tensor *const *in, int n, size_t *len) {
  size_t k = 0;
  for (int i = 0; i < n; i++) k += 3 + (size_t)in[i]->u->ndim;
  int64_t *key = cg_malloc(sizeof(int64_t) * (k ? k : 1));
  if (!key) return NULL;
  k = 0;
  for (int i = 0; i < n; i++) {
    key[k++] = input_kind(in[i]), key[k++] = in[i]->u->dt.scalar, key[k++] = in[i]->u->ndim;
    for (int d = 0; d < in[i]->u->ndim; d++) key[k++] = in[i]->u->shape[d];
  }
  *len = k;
  return key;
}

/* The context's var for constant input i, set to v, as a tensor of the input's shape (weak
 * if the input was, so fn computes in the same dtypes as with the constant). */
static cg_tensor *const_as_var(jctx *c, int i, const cg_tensor *in, double v) {
  if (!c->cvars && !(c->cvars = cg_calloc((size_t)c->n_in, sizeof(uop *)))) return cg_fail_null(CG_ERR_NOMEM, "out of memory");
  dtype d = dt_base(in->u->dt);
  if (!c->cvars[i]) {
    char name[32];
    snprintf(name, sizeof name, "in%d", i);
    bool i32 = d.scalar == CG_INT32, i64 = d.scalar == CG_INT64;
    uop_pool_push_checked(); /* out of memory: NULL, reported (not an abort) */
    uop *u = var_new(name, d, i32 ? INT32_MIN : i64 ? INT64_MIN : 0, i32 ? INT32_MAX : i64 ? INT64_MAX : 0, 0);
    c->cvars[i] = u ? uop_retain(u) : NULL;
    uop_pool_pop();
    if (!c->cvars[i]) return NULL;
  }
  var_store(var_cell(c->cvars[i]), var_bits_of(d, v));
  uop_pool_push_checked();
  uop *u = c->cvars[i];
  if (in->u->ndim > 0) {
    int64_t ones[UOP_MAX_DIMS];
    for (int k = 0; k < in->u->ndim; k++) ones[k] = 1;
    u = view_expand(view_reshape(u, ones, in->u->ndim), in->u->shape, in->u->ndim);
  }
  cg_tensor *t = u ? tensor_new(u) : NULL;
  uop_pool_pop();
  if (t) t->weak = in->weak;
  return t;
}

/* A contiguous buffer for each input (realized here, outside any capture), or the var it
 * is bound as (see the top). A constant input of a dtype a var cannot have is filled on the
 * host: realizing it would bake its value into a fill kernel and compile a new one for
 * every new value. */
static cg_status input_buffers(jctx *c, cg_tensor *const *in, int n, cg_tensor **use, uop **bufs) {
  for (int i = 0; i < n; i++) {
    cg_tensor *t = in[i];
    double v = 0;
    uop *var = var_under(t->u);
    if (var) { /* passed to fn as it is; the replay binds its var */
      use[i] = t, bufs[i] = var;
      continue;
    }
    if (input_kind(t)) { /* a constant of a var's dtype */
      const_value(t->u, &v);
      if (!(use[i] = const_as_var(c, i, t, v))) return cg_last_status();
      bufs[i] = c->cvars[i];
      continue;
    }
    if (const_value(t->u, &v)) {
      int64_t count = shape_numel(t->u->shape, t->u->ndim);
      size_t esz = (size_t)dt_scalar_size(t->u->dt);
      void *host = cg_malloc(esz * (size_t)(count ? count : 1));
      if (!host) return cg_fail(CG_ERR_NOMEM, "out of memory");
      for (int64_t k = 0; k < count; k++) host_store(t->u->dt, host, k, v);
      t = cg_from_data(host, (cg_dtype)t->u->dt.scalar, t->u->shape, t->u->ndim);
      free(host);
      if (!t) return cg_last_status();
    }
    cg_status st = cg_realize(t);
    if (st != CG_OK) return st;
    uop *u = t->u;
    if (u->op == OP_RESHAPE) u = u->src[0];
    if (u->op != OP_BUFFER) { /* a strided view: a contiguous copy */
      if (!(t = cg_contiguous(in[i])) || (st = cg_realize(t)) != CG_OK) return t ? st : cg_last_status();
      u = t->u->op == OP_RESHAPE ? t->u->src[0] : t->u;
    }
    use[i] = t, bufs[i] = u;
  }
  return CG_OK;
}

/* fn, then its outputs realized; out[i] in the caller's scope. */
static cg_status run_fn(cg_jit *j, cg_tensor *const *in, int n_in, cg_tensor **out) {
  for (int i = 0; i < j->n_out; i++) out[i] = NULL;
  cg_scope_begin();
  cg_status st = j->fn(in, n_in, out, j->n_out, j->user);
  for (int i = 0; i < j->n_out && st == CG_OK; i++)
    if (!out[i]) st = cg_fail(CG_ERR_RUNTIME, "jit: the function returned CG_OK but no output %d", i);
  if (st == CG_OK) st = cg_realize_many(out, j->n_out);
  for (int i = 0; i < j->n_out; i++) cg_keep(out[i]);
  cg_scope_end();
  if (st != CG_OK)
    for (int i = 0; i < j->n_out; i++) cg_free(out[i]), out[i] = NULL;
  return st;
}

cg_status cg_jit_call(cg_jit *j, cg_tensor *const *in, int n_in, cg_tensor **out) {
  if (!j) return cg_fail(CG_NULL_INPUT, "jit_call: the jit is NULL");
  if (!out) return cg_fail(CG_NULL_INPUT, "jit_call: the output array is NULL");
  if (n_in < 0 || (n_in > 0 && !in)) return cg_fail(CG_ERR_INVALID, "jit_call: expected an array of n_in >= 0 inputs, got %s with n_in = %d", in ? "one" : "NULL", n_in);
  for (int i = 0; i < n_in; i++)
    if (!in[i]) return cg_fail(CG_NULL_INPUT, "jit_call: input %d is NULL", i);
  if (capture_active()) return cg_fail(CG_ERR_INVALID, "jit_call: a JIT function called from inside a JIT function (not supported: call the inner function directly)");
  if (cfg_int("JIT", 1) == 0) {
    j->info.eager++;
    return run_fn(j, in, n_in, out);
  }
  size_t nkey = 0;
  int64_t *key = make_key(in, n_in, &nkey);
  cg_tensor **use = cg_malloc(sizeof(cg_tensor *) * (size_t)(n_in ? n_in : 1));
  uop **bufs = cg_malloc(sizeof(uop *) * (size_t)(n_in ? n_in : 1));
  cg_status st = key && use && bufs ? CG_OK : cg_fail(CG_ERR_NOMEM, "out of memory");
  cg_scope_begin(); /* contiguous copies of strided inputs live for this call */
  /* the context */
  jctx *c = NULL, **lru = NULL;
  for (jctx **p = &j->ctx; *p && st == CG_OK; p = &(*p)->next) {
    if ((*p)->n_in == n_in && (*p)->nkey == nkey && !memcmp((*p)->key, key, sizeof(int64_t) * nkey)) c = *p;
    if (!lru || (*p)->used < (*lru)->used) lru = p;
  }
  if (!c && st == CG_OK) {
    if (j->nctx >= cfg_int("JIT_MAX_CONTEXTS", 8) && lru) { /* drop the least recently used */
      jctx *old = *lru;
      *lru = old->next;
      ctx_free(old, j->n_out);
      j->nctx--;
    }
    c = cg_calloc(1, sizeof *c);
    if (!c || !(c->outs = cg_calloc((size_t)j->n_out, sizeof(uop *)))) {
      free(c);
      c = NULL;
      st = cg_fail(CG_ERR_NOMEM, "out of memory");
    } else {
      c->n_in = n_in, c->key = key, c->nkey = nkey, key = NULL;
      c->next = j->ctx, j->ctx = c, j->nctx++;
    }
  }
  if (st == CG_OK) c->used = ++j->tick;
  if (st == CG_OK) st = input_buffers(c, in, n_in, use, bufs);
  if (st == CG_OK && c->phase == 2) { /* replay */
    st = replay_run(c->r, bufs, n_in, j->slab);
    for (int i = 0; i < j->n_out; i++) out[i] = st == CG_OK ? cg_keep(tensor_new(c->outs[i])) : NULL;
    if (st == CG_OK) j->info.replays++;
  } else if (st == CG_OK) { /* eager, under a capture: the first call to compare, the second to keep */
    capture *cap = NULL;
    if (!capture_begin(&cap)) st = cg_last_status();
    else {
      st = run_fn(j, use, n_in, out);
      capture_end();
      for (int i = 0; i < j->n_out && st == CG_OK; i++) cg_keep(out[i]);
    }
    if (st != CG_OK || !capture_complete(cap)) {
      /* an incomplete capture (out of memory recording a launch): the call ran and its
       * outputs are right; the next call captures again */
      capture_discard(cap);
      if (st == CG_OK) j->info.eager++;
    } else if (c->phase == 0 || !capture_same(c->seen, cap)) {
      if (c->phase == 1 && cfg_debug() >= 1)
        fprintf(stderr, "*** jit: the function launched other kernels than on its last call with these inputs: capturing again\n");
      capture_discard(c->seen);
      c->seen = cap, c->phase = 1;
      j->info.eager++;
    } else {
      int nl = capture_count(cap);
      capture_discard(c->seen);
      c->seen = NULL;
      if (!(c->r = replay_new(cap, bufs, n_in))) {
        /* the call itself ran (its outputs are right, its updates applied): out of memory
         * making the replay is not this call's failure; the next call captures again */
        if (cg_last_status() == CG_ERR_NOMEM) c->phase = 0, j->info.eager++;
        else st = cg_last_status();
      } else {
        for (int i = 0; i < j->n_out; i++) c->outs[i] = uop_retain(out[i]->u);
        c->phase = 2;
        if (replay_slab_bytes(c->r) > j->slab) j->slab = replay_slab_bytes(c->r);
        j->info.captures++;
        if (cfg_debug() >= 2) {
          int vr, vu;
          replay_var_counts(c->r, &vr, &vu);
          fprintf(stderr, "*** jit: captured %d launches for context %d (%d kernels read vars, %d var updates): intermediates in a slab of %.2f MB, state and outputs %.2f MB\n",
                  nl, j->nctx, vr, vu, (double)replay_slab_bytes(c->r) / 1e6, (double)replay_state_bytes(c->r) / 1e6);
        }
      }
    }
  }
  cg_scope_end();
  free(key), free(use), free(bufs);
  return st;
}
