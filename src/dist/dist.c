/* Collectives across processes over MPI (cgrad.h, "distributed"). An optional part: built
 * with -DCG_MPI=ON (CG_HAVE_MPI); without it every call works on a world of one rank.
 *
 * Why MPI and not a transport of our own: every cluster has it, and it already picks the
 * fastest path (shared memory on one machine, the fabric between machines).
 *
 * Every collective is non-blocking (MPI_I...) and polled against a deadline
 * (CG_DIST_TIMEOUT_S, default 120 s): a blocking call on a dead or stuck peer would hang the
 * job forever, while a missed deadline becomes an error naming the collective, after which
 * the caller ends the job (cg_dist_abort). Tensors are reduced in place in their buffers
 * (host memory: CPU devices); gradients are packed into buckets whose reductions start as
 * soon as each is packed, so packing and unpacking overlap the transfers of other buckets.
 * This layer sits above tensor/ (it realizes tensors and reads their buffers). */
#include "tensor/tensor.h"
#include "core/config.h"
#include "runtime/alloc.h"
#include "engine/capture.h"
#include "engine/realize.h"
#include "runtime/var.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef CG_HAVE_MPI
#include <mpi.h>
#endif

static int dist_rank = 0, dist_size = 1, started;
#ifdef CG_HAVE_MPI
static void dist_progress(void);
#endif

bool cg_dist_available(void) {
#ifdef CG_HAVE_MPI
  return true;
#else
  return false;
#endif
}
int cg_dist_rank(void) { return dist_rank; }
int cg_dist_size(void) { return dist_size; }

cg_status cg_dist_init(int *argc, char ***argv) {
  if (started) return CG_OK;
#ifdef CG_HAVE_MPI
  int done = 0, provided;
  MPI_Initialized(&done);
  if (!done && MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
    return cg_fail(CG_ERR_RUNTIME, "dist: MPI_Init_thread failed");
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN); /* errors become statuses */
  MPI_Comm_rank(MPI_COMM_WORLD, &dist_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &dist_size);
  if (dist_size > 1) realize_set_progress(dist_progress); /* overlapped allreduces advance between kernels */
#else
  (void)argc, (void)argv;
  const char *launched = getenv("OMPI_COMM_WORLD_SIZE") ? getenv("OMPI_COMM_WORLD_SIZE") : getenv("PMI_SIZE");
  if (launched && atoi(launched) > 1)
    return cg_fail(CG_ERR_INVALID, "dist: started by mpirun with %s ranks, but cgrad was built without MPI (configure with -DCG_MPI=ON; "
                                   "Debian: apt-get install libopenmpi-dev)", launched);
#endif
  started = 1;
  return CG_OK;
}

void cg_dist_finalize(void) {
#ifdef CG_HAVE_MPI
  int done = 0, fin = 0;
  MPI_Initialized(&done);
  MPI_Finalized(&fin);
  if (done && !fin) MPI_Finalize();
#endif
  started = 0, dist_rank = 0, dist_size = 1;
}

void cg_dist_abort(int code) {
#ifdef CG_HAVE_MPI
  int done = 0;
  MPI_Initialized(&done);
  if (done) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  _exit(code);
}

#ifdef CG_HAVE_MPI
static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Wait for reqs against the deadline. Polling drives MPI's progress: it spins for the
 * first CG_DIST_SPIN_US (default 200 us: a small message's whole round trip, which a sleep
 * would stretch to the timer's slack), then sleeps between polls, up to 1 ms, keeping a
 * waiting rank off the cores the others compute on. */
static double waited; /* seconds spent in wait_reqs (cg_dist_stats) */
static cg_status wait_reqs_(MPI_Request *reqs, int n, const char *what);
static cg_status wait_reqs(MPI_Request *reqs, int n, const char *what) {
  double t0 = now_s();
  cg_status st = wait_reqs_(reqs, n, what);
  waited += now_s() - t0;
  return st;
}
static cg_status wait_reqs_(MPI_Request *reqs, int n, const char *what) {
  double t0 = now_s(), spin = 1e-6 * (double)cfg_int("CG_DIST_SPIN_US", 200);
  long timeout = cfg_int("CG_DIST_TIMEOUT_S", 120);
  long sleep_ns = 2000;
  for (;;) {
    int flag = 0;
    if (MPI_Testall(n, reqs, &flag, MPI_STATUSES_IGNORE) != MPI_SUCCESS)
      return cg_fail(CG_ERR_RUNTIME, "dist: rank %d of %d: %s failed in MPI (a peer died?)", dist_rank, dist_size, what);
    if (flag) return CG_OK;
    double t = now_s() - t0;
    if (t > (double)timeout)
      return cg_fail(CG_ERR_RUNTIME, "dist: rank %d of %d: %s did not finish within %ld s (CG_DIST_TIMEOUT_S): another rank died or hangs",
                     dist_rank, dist_size, what, timeout);
    if (t < spin) continue;
    nanosleep(&(struct timespec){0, sleep_ns}, NULL);
    if (sleep_ns < 1000000) sleep_ns *= 2;
  }
}

static MPI_Datatype mpi_type(dtype dt) {
  if (dt_eq(dt, DT_F32)) return MPI_FLOAT;
  if (dt_eq(dt, DT_F64)) return MPI_DOUBLE;
  if (dt_eq(dt, DT_I32)) return MPI_INT32_T;
  if (dt_eq(dt, DT_I64)) return MPI_INT64_T;
  return MPI_DATATYPE_NULL;
}

/* The host memory of a realized tensor (its whole buffer, in order), or NULL + error. */
static void *host_ptr(const char *who, cg_tensor *t) {
  uop *b = t->u->op == OP_RESHAPE ? t->u->src[0] : t->u;
  if (b->op != OP_BUFFER) return cg_fail_null(CG_ERR_INVALID, "%s: the tensor is not a realized buffer", who);
  cg_buffer *buf = buffer_of(b);
  if (buf->dev->allocator && !buf->dev->allocator->host_memory)
    return cg_fail_null(CG_ERR_INVALID, "%s: the tensor is on %s, whose memory MPI cannot read (copy it to CPU first)", who, buf->dev->name);
  if (buffer_alloc(b) != CG_OK) return NULL;
  return buf->ptr;
}

#endif

/* Realize ts and check they share one dtype MPI knows. */
static bool prepare(const char *who, cg_tensor *const *ts, int n, dtype *dt) {
  if (n < 0 || (n && !ts)) return !cg_fail(CG_ERR_INVALID, "%s: expected an array of n >= 0 tensors", who);
  for (int i = 0; i < n; i++) {
    if (!ts[i]) return !cg_fail(CG_NULL_INPUT, "%s: tensor %d is NULL", who, i);
    if (!dt_eq(ts[i]->u->dt, ts[0]->u->dt))
      return !cg_fail(CG_ERR_INVALID, "%s: tensors %d and 0 differ in dtype (%s, %s): one dtype per call", who, i, dt_name(ts[i]->u->dt),
                      dt_name(ts[0]->u->dt));
  }
  if (!n) return true;
  *dt = ts[0]->u->dt;
  if (!(dt_eq(*dt, DT_F32) || dt_eq(*dt, DT_F64) || dt_eq(*dt, DT_I32) || dt_eq(*dt, DT_I64)))
    return !cg_fail(CG_ERR_INVALID, "%s: expected float32, float64, int32 or int64 tensors, got %s", who, dt_name(*dt));
  bool all_buffers = true; /* the usual case (gradients just realized): no realize at all */
  for (int i = 0; i < n && all_buffers; i++) {
    uop *b = ts[i]->u->op == OP_RESHAPE ? ts[i]->u->src[0] : ts[i]->u;
    all_buffers = b->op == OP_BUFFER;
  }
  return all_buffers || cg_realize_many(ts, n) == CG_OK;
}

#ifdef CG_HAVE_MPI
/* The allreduce of n host arrays (ptrs[i]: cnt[i] elements of dt), in buckets. Buckets
 * hold whole arrays, in order. An array of bucket_bytes or more (or the only one) is its
 * own bucket, reduced in place; smaller ones are packed into a host buffer until a bucket
 * is full. Each bucket's reduction starts as soon as it is formed; buckets are then waited
 * for in order and unpacked while later ones are still in flight. */
static cg_status allreduce_ptrs(void *const *ptrs, const int64_t *cnts, int n, dtype dt, cg_dist_op op, size_t bucket_bytes) {
  typedef struct { int t0, t1; size_t off, cnt; void *inplace; } bucket;
  size_t esz = (size_t)dt_scalar_size(dt), total = 0;
  if (!bucket_bytes) bucket_bytes = (size_t)4 << 20;
  for (int i = 0; i < n; i++) total += (size_t)cnts[i];
  char *flat = cg_malloc(total ? total * esz : 1);
  MPI_Request *reqs = cg_malloc(sizeof(MPI_Request) * (size_t)n);
  bucket *bk = cg_malloc(sizeof(bucket) * (size_t)n);
  if (!flat || !reqs || !bk) {
    free(flat), free(reqs), free(bk);
    return CG_ERR_NOMEM;
  }
  MPI_Op mop = op == CG_DIST_MAX ? MPI_MAX : MPI_SUM;
  MPI_Datatype mt = mpi_type(dt);
  cg_status st = CG_OK;
  int nb = 0;
  size_t at = 0; /* elements packed into flat */
  bucket cur = {0, 0, 0, 0, NULL};
  for (int i = 0; i < n && st == CG_OK; i++) {
    size_t cnt = (size_t)cnts[i];
    char *p = ptrs[i];
    bool alone = cur.t1 == cur.t0 && (cnt * esz >= bucket_bytes || n == 1);
    if (alone) cur = (bucket){i, i + 1, 0, cnt, p};
    else {
      if (cur.t1 == cur.t0) cur = (bucket){i, i, at, 0, NULL};
      if (cnt) memcpy(flat + at * esz, p, cnt * esz);
      at += cnt, cur.t1 = i + 1, cur.cnt += cnt;
    }
    if (alone || cur.cnt * esz >= bucket_bytes || i == n - 1) {
      void *buf = cur.inplace ? cur.inplace : flat + cur.off * esz;
      if (cur.cnt > (size_t)INT32_MAX)
        st = cg_fail(CG_ERR_INVALID, "dist_allreduce: a bucket of %zu elements (at most 2^31-1)", cur.cnt);
      else if (MPI_Iallreduce(MPI_IN_PLACE, buf, (int)cur.cnt, mt, mop, MPI_COMM_WORLD, &reqs[nb]) != MPI_SUCCESS)
        st = cg_fail(CG_ERR_RUNTIME, "dist_allreduce: rank %d: MPI_Iallreduce failed", dist_rank);
      else bk[nb++] = cur;
      cur.t0 = cur.t1 = i + 1;
    }
  }
  for (int b = 0; b < nb && st == CG_OK; b++) {
    char what[64];
    snprintf(what, sizeof what, "allreduce of bucket %d/%d", b + 1, nb);
    if ((st = wait_reqs(&reqs[b], 1, what)) != CG_OK) break;
    char *buf = bk[b].inplace ? bk[b].inplace : flat + bk[b].off * esz;
    if (op == CG_DIST_MEAN) {
      size_t c = bk[b].cnt;
      if (dt_eq(dt, DT_F32)) for (size_t k = 0; k < c; k++) ((float *)buf)[k] /= (float)dist_size;
      else if (dt_eq(dt, DT_F64)) for (size_t k = 0; k < c; k++) ((double *)buf)[k] /= dist_size;
      else if (dt_eq(dt, DT_I32)) for (size_t k = 0; k < c; k++) ((int32_t *)buf)[k] /= dist_size;
      else for (size_t k = 0; k < c; k++) ((int64_t *)buf)[k] /= dist_size;
    }
    if (bk[b].inplace) continue;
    for (int i = bk[b].t0; i < bk[b].t1; i++) {
      size_t cnt = (size_t)cnts[i];
      if (cnt) memcpy(ptrs[i], buf, cnt * esz);
      buf += cnt * esz;
    }
  }
  /* After a failure, requests may still be in flight (MPI forbids freeing those of
   * collectives), writing into flat: it is left allocated; the caller ends the job. */
  if (st == CG_OK) free(flat);
  free(reqs), free(bk);
  return st;
}

/* A JIT capture's record of an allreduce (engine/capture.h): the same call on the
 * replay's buffers. The element counts follow the header. */
typedef struct {
  dtype dt;
  cg_dist_op op;
  size_t bucket_bytes;
  int n;
  int64_t cnt[];
} allreduce_rec;

static cg_status allreduce_replay(const void *ctx, void *const *ptrs, int nbufs) {
  const allreduce_rec *r = ctx;
  if (nbufs != r->n) return cg_fail(CG_ERR_RUNTIME, "dist_allreduce (JIT replay): %d buffers for %d tensors", nbufs, r->n);
  return dist_size == 1 ? CG_OK : allreduce_ptrs(ptrs, r->cnt, r->n, r->dt, r->op, r->bucket_bytes);
}
#endif

cg_status cg_dist_allreduce(cg_tensor *const *ts, int n, cg_dist_op op, size_t bucket_bytes) {
  dtype dt;
  if (op != CG_DIST_SUM && op != CG_DIST_MAX && op != CG_DIST_MEAN) return cg_fail(CG_ERR_INVALID, "dist_allreduce: unknown op %d", (int)op);
  if (!prepare("dist_allreduce", ts, n, &dt)) return cg_last_status();
  if (!n) return CG_OK;
#ifdef CG_HAVE_MPI
  bool rec = capture_active(); /* a JIT replay repeats the collective */
  if (dist_size == 1 && !rec) return CG_OK;
  void **ptrs = cg_malloc(sizeof(void *) * (size_t)n);
  uop **bufs = cg_malloc(sizeof(uop *) * (size_t)n);
  allreduce_rec *r = cg_calloc(1, sizeof *r + sizeof(int64_t) * (size_t)n); /* zeroed: captures compare records bytewise */
  cg_status st = ptrs && bufs && r ? CG_OK : CG_ERR_NOMEM;
  for (int i = 0; i < n && st == CG_OK; i++) {
    if (!(ptrs[i] = host_ptr("dist_allreduce", ts[i]))) st = cg_last_status();
    bufs[i] = ts[i]->u->op == OP_RESHAPE ? ts[i]->u->src[0] : ts[i]->u;
    r->cnt[i] = cg_numel(ts[i]);
  }
  if (st == CG_OK && dist_size > 1) st = allreduce_ptrs(ptrs, r->cnt, n, dt, op, bucket_bytes);
  if (st == CG_OK && rec) {
    r->dt = dt, r->op = op, r->bucket_bytes = bucket_bytes, r->n = n;
    capture_host(allreduce_replay, r, sizeof *r + sizeof(int64_t) * (size_t)n, bufs, n);
  }
  free(ptrs), free(bufs), free(r);
  return st;
#else
  return CG_OK;
#endif
}

cg_status cg_dist_broadcast(cg_tensor *const *ts, int n, int root) {
  if (root < 0 || root >= dist_size) return cg_fail(CG_ERR_INVALID, "dist_broadcast: root %d is not a rank (0..%d)", root, dist_size - 1);
  /* broadcast moves bytes, whatever they mean: any dtype, so state of all kinds goes */
  if (n < 0 || (n && !ts)) return cg_fail(CG_ERR_INVALID, "dist_broadcast: expected an array of n >= 0 tensors");
  for (int i = 0; i < n; i++)
    if (!ts[i]) return cg_fail(CG_NULL_INPUT, "dist_broadcast: tensor %d is NULL", i);
  if (n && cg_realize_many(ts, n) != CG_OK) return cg_last_status();
  if (!n || dist_size == 1) return CG_OK;
#ifdef CG_HAVE_MPI
  MPI_Request *reqs = cg_malloc(sizeof(MPI_Request) * (size_t)n);
  if (!reqs) return CG_ERR_NOMEM;
  cg_status st = CG_OK;
  int nr = 0;
  for (int i = 0; i < n && st == CG_OK; i++) {
    void *p = host_ptr("dist_broadcast", ts[i]);
    size_t bytes = (size_t)cg_numel(ts[i]) * (size_t)dt_scalar_size(ts[i]->u->dt);
    if (!p) st = cg_last_status();
    else if (bytes > (size_t)1 << 30) st = cg_fail(CG_ERR_INVALID, "dist_broadcast: tensor %d has %zu bytes (at most 1 GiB per tensor)", i, bytes);
    else if (MPI_Ibcast(p, (int)bytes, MPI_BYTE, root, MPI_COMM_WORLD, &reqs[nr++]) != MPI_SUCCESS)
      st = cg_fail(CG_ERR_RUNTIME, "dist_broadcast: rank %d: MPI_Ibcast failed", dist_rank);
  }
  if (st == CG_OK) st = wait_reqs(reqs, nr, "broadcast");
  free(reqs);
  return st;
#else
  return CG_OK;
#endif
}

cg_tensor *cg_dist_alltoall(cg_tensor *t, int axis) {
  if (!t) return cg_fail_null(CG_NULL_INPUT, "dist_alltoall: tensor is NULL");
  int nd = t->u->ndim;
  if (axis < -nd || axis >= nd) return cg_fail_null(CG_ERR_INVALID, "dist_alltoall: axis %d is out of range for shape %s", axis, shape_str(t->u->shape, nd));
  if (axis < 0) axis += nd;
  if (t->u->shape[axis] % dist_size)
    return cg_fail_null(CG_ERR_INVALID, "dist_alltoall: axis %d of shape %s has %lld elements, not divisible by %d ranks", axis,
                        shape_str(t->u->shape, nd), (long long)t->u->shape[axis], dist_size);
  if (dist_size == 1) return tensor_new(t->u);
#ifdef CG_HAVE_MPI
  /* the slices are contiguous ranges when every axis before `axis` has size 1; else move
   * axis to the front (a contiguous copy) and back after */
  bool leading = true;
  for (int i = 0; i < axis; i++) leading = leading && t->u->shape[i] == 1;
  int perm[UOP_MAX_DIMS], inv[UOP_MAX_DIMS];
  perm[0] = axis;
  for (int i = 0, k = 1; i < nd; i++)
    if (i != axis) perm[k++] = i;
  for (int i = 0; i < nd; i++) inv[perm[i]] = i;
  cg_tensor *src = leading ? tensor_new(t->u) : cg_contiguous(cg_permute(t, perm, nd));
  if (!src || cg_realize(src) != CG_OK) return NULL;
  cg_tensor *dst = cg_empty(cg_dtype_of(src), src->u->shape, nd);
  void *sp = host_ptr("dist_alltoall", src), *dp = dst && cg_realize(dst) == CG_OK ? host_ptr("dist_alltoall", dst) : NULL;
  size_t bytes = (size_t)cg_numel(src) * (size_t)dt_scalar_size(src->u->dt) / (size_t)dist_size;
  cg_tensor *out = NULL;
  MPI_Request req;
  if (sp && dp && bytes > (size_t)1 << 30) cg_fail(CG_ERR_INVALID, "dist_alltoall: %zu bytes per rank (at most 1 GiB)", bytes);
  else if (sp && dp && MPI_Ialltoall(sp, (int)bytes, MPI_BYTE, dp, (int)bytes, MPI_BYTE, MPI_COMM_WORLD, &req) != MPI_SUCCESS)
    cg_fail(CG_ERR_RUNTIME, "dist_alltoall: rank %d: MPI_Ialltoall failed", dist_rank);
  else if (sp && dp && wait_reqs(&req, 1, "all-to-all") == CG_OK)
    out = leading ? tensor_new(dst->u) : cg_permute(dst, inv, nd);
  cg_free(src), cg_free(dst);
  return out;
#else
  return NULL;
#endif
}

cg_status cg_dist_barrier(void) {
  if (dist_size == 1) return CG_OK;
#ifdef CG_HAVE_MPI
  MPI_Request req;
  if (MPI_Ibarrier(MPI_COMM_WORLD, &req) != MPI_SUCCESS) return cg_fail(CG_ERR_RUNTIME, "dist_barrier: rank %d: MPI_Ibarrier failed", dist_rank);
  return wait_reqs(&req, 1, "barrier");
#else
  return CG_OK;
#endif
}

/* ---- allreduce overlapped with the realize that computes the tensors --------------------
 * The tensors are outputs of one realize; the engine says when each is complete (no later
 * kernel touches its buffer: realize_observe_next), and that tensor joins the bucket being
 * formed. A full bucket starts its MPI_Iallreduce at once, while the rest of the realize
 * (the rest of the backward) runs; between kernels the engine's progress hook tests the
 * requests in flight, which is what moves a non-blocking collective forward. After the
 * realize, the last bucket starts, and all are waited for and unpacked in order.
 *
 * Buckets in flight live in a table (slots), so a JIT capture can record "start bucket k"
 * among the launches and "finish buckets" at the end, and its replays do the same. */
#ifdef CG_HAVE_MPI
typedef struct {
  MPI_Request req;
  bool active;
  char *flat; /* the packed bucket (NULL: reduced in place in its only buffer) */
  size_t cnt;
} slot;
static slot *slots;
static int nslots, capslots, inflight;

static void dist_progress(void) {
  if (!inflight) return;
  for (int i = 0; i < nslots; i++)
    if (slots[i].active) {
      int flag = 0;
      MPI_Test(&slots[i].req, &flag, MPI_STATUS_IGNORE); /* a completed request becomes MPI_REQUEST_NULL */
    }
}

/* Start bucket k: ptrs[0..n) of cnts elements, packed (or in place when inplace). */
static cg_status bucket_start(int k, dtype dt, cg_dist_op op, bool inplace, void *const *ptrs, const int64_t *cnts, int n) {
  if (k >= capslots) {
    int cap = capslots ? 2 * capslots : 16;
    while (cap <= k) cap *= 2;
    slot *s = cg_realloc(slots, sizeof *s * (size_t)cap);
    if (!s) return CG_ERR_NOMEM;
    memset(s + capslots, 0, sizeof *s * (size_t)(cap - capslots));
    slots = s, capslots = cap;
  }
  if (k >= nslots) nslots = k + 1;
  size_t esz = (size_t)dt_scalar_size(dt), total = 0;
  for (int i = 0; i < n; i++) total += (size_t)cnts[i];
  slot *s = &slots[k];
  s->cnt = total, s->flat = NULL;
  if (total > (size_t)INT32_MAX) return cg_fail(CG_ERR_INVALID, "dist_allreduce: a bucket of %zu elements (at most 2^31-1)", total);
  void *buf = ptrs[0];
  if (!inplace) {
    if (!(s->flat = cg_malloc(total ? total * esz : 1))) return CG_ERR_NOMEM;
    size_t at = 0;
    for (int i = 0; i < n; i++) memcpy(s->flat + at * esz, ptrs[i], (size_t)cnts[i] * esz), at += (size_t)cnts[i];
    buf = s->flat;
  }
  if (MPI_Iallreduce(MPI_IN_PLACE, buf, (int)total, mpi_type(dt), op == CG_DIST_MAX ? MPI_MAX : MPI_SUM, MPI_COMM_WORLD, &s->req) != MPI_SUCCESS)
    return cg_fail(CG_ERR_RUNTIME, "dist_allreduce: rank %d: MPI_Iallreduce failed", dist_rank);
  s->active = true, inflight++;
  return CG_OK;
}

/* Wait for buckets 0..nb-1 in order and unpack them: bucket b holds members[b] of the
 * arrays ptrs/cnts, in order. */
static cg_status buckets_finish(int nb, dtype dt, cg_dist_op op, const int *members, void *const *ptrs, const int64_t *cnts) {
  size_t esz = (size_t)dt_scalar_size(dt);
  cg_status st = CG_OK;
  int at = 0;
  for (int b = 0; b < nb; b++) {
    slot *s = &slots[b];
    char what[64];
    snprintf(what, sizeof what, "allreduce of bucket %d/%d", b + 1, nb);
    if (st == CG_OK && s->active) st = wait_reqs(&s->req, 1, what);
    if (st != CG_OK) break; /* requests in flight keep their buffers (MPI may still write them): the caller ends the job */
    s->active = false, inflight--;
    char *buf = s->flat ? s->flat : ptrs[at];
    if (op == CG_DIST_MEAN) {
      if (dt_eq(dt, DT_F32)) for (size_t k = 0; k < s->cnt; k++) ((float *)buf)[k] /= (float)dist_size;
      else if (dt_eq(dt, DT_F64)) for (size_t k = 0; k < s->cnt; k++) ((double *)buf)[k] /= dist_size;
      else if (dt_eq(dt, DT_I32)) for (size_t k = 0; k < s->cnt; k++) ((int32_t *)buf)[k] /= dist_size;
      else for (size_t k = 0; k < s->cnt; k++) ((int64_t *)buf)[k] /= dist_size;
    }
    if (s->flat) {
      for (int i = at; i < at + members[b]; i++) memcpy(ptrs[i], buf, (size_t)cnts[i] * esz), buf += (size_t)cnts[i] * esz;
      free(s->flat), s->flat = NULL;
    }
    at += members[b];
  }
  return st;
}

/* The capture's records (zeroed: captures compare them bytewise). */
typedef struct {
  int k, inplace, n;
  dtype dt;
  cg_dist_op op;
  int64_t cnt[];
} start_rec;
typedef struct {
  int nb, nall;
  dtype dt;
  cg_dist_op op;
  int64_t data[]; /* members[nb], then cnt[nall] */
} finish_rec;

static cg_status start_replay(const void *ctx, void *const *ptrs, int nbufs) {
  const start_rec *r = ctx;
  if (nbufs != r->n) return cg_fail(CG_ERR_RUNTIME, "dist_allreduce (JIT replay): %d buffers for %d tensors", nbufs, r->n);
  return dist_size == 1 ? CG_OK : bucket_start(r->k, r->dt, r->op, r->inplace, ptrs, r->cnt, r->n);
}

static cg_status finish_replay(const void *ctx, void *const *ptrs, int nbufs) {
  const finish_rec *r = ctx;
  if (nbufs != r->nall) return cg_fail(CG_ERR_RUNTIME, "dist_allreduce (JIT replay): %d buffers for %d tensors", nbufs, r->nall);
  if (dist_size == 1) return CG_OK;
  int *members = cg_malloc(sizeof(int) * (size_t)(r->nb ? r->nb : 1));
  if (!members) return CG_ERR_NOMEM;
  for (int b = 0; b < r->nb; b++) members[b] = (int)r->data[b];
  cg_status st = buckets_finish(r->nb, r->dt, r->op, members, ptrs, r->data + r->nb);
  free(members);
  return st;
}

typedef struct {
  dtype dt;
  cg_dist_op op;
  size_t bucket_bytes, esz;
  int nred;
  bool rec;            /* a JIT capture is open: record the starts */
  cg_status st;
  /* the tensors in bucket order: ready[0..nready), each bucket a run of them */
  uop **bufs;
  void **ptrs;
  int64_t *cnts;
  int nready, nb, cur0; /* cur0: the first tensor of the bucket being formed */
  size_t cur_bytes;
  int *members;
  bool *seen;          /* per tensor: reported */
  bool early;          /* kernels of the realize are still to run */
} overlap;
static int64_t stat_buckets, stat_early;

static void start_current(overlap *o) {
  int n = o->nready - o->cur0;
  if (!n || o->st != CG_OK) return;
  bool inplace = n == 1 && o->cur_bytes >= o->bucket_bytes;
  if (o->rec) {
    start_rec *r = cg_calloc(1, sizeof *r + sizeof(int64_t) * (size_t)n);
    if (!r) {
      o->st = CG_ERR_NOMEM;
      return;
    }
    r->k = o->nb, r->inplace = inplace, r->n = n, r->dt = o->dt, r->op = o->op;
    memcpy(r->cnt, o->cnts + o->cur0, sizeof(int64_t) * (size_t)n);
    capture_host(start_replay, r, sizeof *r + sizeof(int64_t) * (size_t)n, o->bufs + o->cur0, n);
    free(r);
  }
  if (dist_size > 1) o->st = bucket_start(o->nb, o->dt, o->op, inplace, o->ptrs + o->cur0, o->cnts + o->cur0, n);
  o->members[o->nb++] = n;
  o->cur0 = o->nready, o->cur_bytes = 0;
  stat_buckets++, stat_early += o->early;
}

static void on_ready(void *ctx, int out, uop *buf, int left) {
  overlap *o = ctx;
  o->early = left > 0;
  if (out >= o->nred || o->st != CG_OK || o->seen[out]) return;
  o->seen[out] = true;
  if (buffer_alloc(buf) != CG_OK) {
    o->st = cg_last_status();
    return;
  }
  int64_t cnt = buf->arg.v[1];
  size_t bytes = (size_t)cnt * o->esz;
  /* a tensor of a bucket's size goes alone (in place): close the bucket being formed */
  if (bytes >= o->bucket_bytes && o->nready > o->cur0) start_current(o);
  o->bufs[o->nready] = buf, o->ptrs[o->nready] = buffer_of(buf)->ptr, o->cnts[o->nready] = cnt, o->nready++;
  o->cur_bytes += bytes;
  if (o->cur_bytes >= o->bucket_bytes) start_current(o);
}
#endif

void cg_dist_stats(int64_t *buckets, int64_t *early, double *wait_seconds) {
#ifdef CG_HAVE_MPI
  if (buckets) *buckets = stat_buckets;
  if (early) *early = stat_early;
  if (wait_seconds) *wait_seconds = waited;
#else
  if (buckets) *buckets = 0;
  if (early) *early = 0;
  if (wait_seconds) *wait_seconds = 0;
#endif
}

cg_status cg_dist_realize_allreduce(cg_tensor *const *ts, int n, cg_tensor *const *also, int nalso, cg_dist_op op, size_t bucket_bytes) {
  const char *who = "dist_realize_allreduce";
  if (op != CG_DIST_SUM && op != CG_DIST_MAX && op != CG_DIST_MEAN) return cg_fail(CG_ERR_INVALID, "%s: unknown op %d", who, (int)op);
  if (n < 0 || nalso < 0 || (n && !ts) || (nalso && !also)) return cg_fail(CG_ERR_INVALID, "%s: expected arrays of n >= 0 tensors", who);
  for (int i = 0; i < n; i++) {
    if (!ts[i]) return cg_fail(CG_NULL_INPUT, "%s: tensor %d is NULL", who, i);
    if (!dt_eq(ts[i]->u->dt, ts[0]->u->dt))
      return cg_fail(CG_ERR_INVALID, "%s: tensors %d and 0 differ in dtype (%s, %s): one dtype per call", who, i, dt_name(ts[i]->u->dt),
                     dt_name(ts[0]->u->dt));
  }
  for (int i = 0; i < n; i++) /* (a var is no buffer, and realize leaves it out: the output numbers would shift) */
    if (var_is_tensor(ts[i]->u)) return cg_fail(CG_ERR_INVALID, "%s: tensor %d is a kernel variable, not a buffer to reduce", who, i);
  for (int i = 0; i < nalso; i++)
    if (!also[i]) return cg_fail(CG_NULL_INPUT, "%s: tensor %d of the others is NULL", who, i);
  dtype dt = n ? ts[0]->u->dt : DT_F32;
  if (n && !(dt_eq(dt, DT_F32) || dt_eq(dt, DT_F64) || dt_eq(dt, DT_I32) || dt_eq(dt, DT_I64)))
    return cg_fail(CG_ERR_INVALID, "%s: expected float32, float64, int32 or int64 tensors, got %s", who, dt_name(dt));
  cg_tensor **all = cg_malloc(sizeof(cg_tensor *) * (size_t)(n + nalso ? n + nalso : 1));
  if (!all) return CG_ERR_NOMEM;
  memcpy(all, ts, sizeof(cg_tensor *) * (size_t)n);
  if (nalso) memcpy(all + n, also, sizeof(cg_tensor *) * (size_t)nalso);
#ifdef CG_HAVE_MPI
  bool rec = capture_active();
  if (dist_size == 1 && !rec) {
    cg_status st = cg_realize_many(all, n + nalso);
    free(all);
    return st;
  }
  overlap o = {.dt = dt, .op = op, .bucket_bytes = bucket_bytes ? bucket_bytes : (size_t)4 << 20, .esz = (size_t)dt_scalar_size(dt), .nred = n, .rec = rec};
  o.bufs = cg_malloc(sizeof(uop *) * (size_t)(n ? n : 1));
  o.ptrs = cg_malloc(sizeof(void *) * (size_t)(n ? n : 1));
  o.cnts = cg_malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
  o.members = cg_malloc(sizeof(int) * (size_t)(n ? n : 1));
  o.seen = cg_calloc((size_t)(n ? n : 1), sizeof(bool));
  cg_status st = o.bufs && o.ptrs && o.cnts && o.members && o.seen ? CG_OK : CG_ERR_NOMEM;
  if (st == CG_OK) {
    realize_observe_next(&(realize_observer){on_ready, &o});
    st = cg_realize_many(all, n + nalso);
    o.early = false;
    realize_observe_next(NULL);
    if (st == CG_OK) st = o.st;
  }
  /* a tensor the realize made without kernels (filled on the host): complete now */
  for (int i = 0; i < n && st == CG_OK; i++) {
    uop *b = ts[i]->u->op == OP_RESHAPE ? ts[i]->u->src[0] : ts[i]->u;
    if (!o.seen[i] && b->op != OP_BUFFER) st = cg_fail(CG_ERR_RUNTIME, "%s: tensor %d is not a buffer after the realize", who, i);
    else if (!o.seen[i]) on_ready(&o, i, b, 0), st = o.st;
  }
  if (st == CG_OK) start_current(&o), st = o.st;
  if (st == CG_OK && rec) {
    finish_rec *r = cg_calloc(1, sizeof *r + sizeof(int64_t) * (size_t)(o.nb + n));
    if (!r) st = CG_ERR_NOMEM;
    else {
      r->nb = o.nb, r->nall = n, r->dt = dt, r->op = op;
      for (int b = 0; b < o.nb; b++) r->data[b] = o.members[b];
      memcpy(r->data + o.nb, o.cnts, sizeof(int64_t) * (size_t)n);
      capture_host(finish_replay, r, sizeof *r + sizeof(int64_t) * (size_t)(o.nb + n), o.bufs, n);
      free(r);
    }
  }
  if (st == CG_OK && dist_size > 1) st = buckets_finish(o.nb, dt, op, o.members, o.ptrs, o.cnts);
  free(o.bufs), free(o.ptrs), free(o.cnts), free(o.members), free(o.seen);
  free(all);
  return st;
#else
  (void)op, (void)bucket_bytes;
  cg_status st = cg_realize_many(all, n + nalso);
  free(all);
  return st;
#endif
}
