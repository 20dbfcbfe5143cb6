/* Capturing kernel launches for the JIT (ARCHITECTURE §8): while a capture is open on
 * this thread, every kernel realize launches is recorded with its program and buffers;
 * the capture becomes a replay — the same launches over new input buffers, intermediates
 * carved from one slab, everything else (weights, optimizer state, outputs) the same
 * buffers, every kernel variable read at its value when the replay runs — that runs with
 * no graph, schedule, codegen or hashing. */
#ifndef CG_ENGINE_CAPTURE_H
#define CG_ENGINE_CAPTURE_H
#include "programs.h"
#include "runtime/device.h"
#include "uop/uop.h"

typedef struct capture capture;
typedef struct replay replay;

/* Start recording this thread's launches (false + error if one is open already: a JIT
 * inside a JIT). */
bool capture_begin(capture **c);
/* Stop recording; the capture is returned to the caller. */
void capture_end(void);
bool capture_active(void);
/* Called by realize for every launch while a capture is open (e: the program's cache
 * entry, which the capture and its replay keep a reference to; vars: the tensor-level
 * DEFINE_VAR behind each var slot). */
void capture_launch(rt_device *dev, prog_entry *e, int64_t global, uop *const *bufs, int nbufs, int nout, uop *const *vars, int nvars);
/* Called for a host update of a var's value (tensor_var_update) while a capture is open:
 * the replay repeats it at the same place among the launches. */
void capture_var_update(uop *var, int op, int64_t operand);
/* A host step among the launches (a collective over MPI): the replay calls
 * fn(ctx, ptrs, nbufs) at the same place, with ptrs the memory bufs have in that replay
 * (all of them may be read and written). ctx (ctx_bytes, copied) belongs to the capture.
 * Launches before it have finished when it runs. */
typedef cg_status (*capture_host_fn)(const void *ctx, void *const *ptrs, int nbufs);
void capture_host(capture_host_fn fn, const void *ctx, size_t ctx_bytes, uop *const *bufs, int nbufs);
/* The same when only bufs[0..nout) are written (a copy between devices: its destination),
 * so the others may be inputs of the JIT function. */
void capture_host_io(capture_host_fn fn, const void *ctx, size_t ctx_bytes, uop *const *bufs, int nbufs, int nout);
/* False when a launch could not be recorded (out of memory): the capture is not to be
 * replayed. */
bool capture_complete(const capture *c);
/* Number of launches recorded. */
int capture_count(const capture *c);

/* The replay of c: inputs[i] is the buffer input i had (or the var, for a var input: the
 * replay binds the value of the var given in its place); a buffer nothing but the capture
 * holds any more is an intermediate (its memory is released to the allocator now and
 * taken from the slab at each replay). Frees c. NULL + error if an input is also written
 * (an input that aliases an output or state). */
replay *replay_new(capture *c, uop *const *inputs, int n_in);
/* Run it with these input buffers (BUFFER UOps of the same sizes; vars where the capture
 * had vars), each var the kernels read bound to its value now, the intermediates in
 * one allocation of max(slab_bytes, replay_slab_bytes) from the device's allocator,
 * returned after (so replays of several sizes can share one cached block). */
cg_status replay_run(replay *r, uop *const *inputs, int n_in, size_t slab_bytes);
/* Whether two captures launched the same programs in the same order (vars the captured
 * calls made themselves, such as a per-call counter, compared up to renaming). */
bool capture_same(const capture *a, const capture *b);
void capture_discard(capture *c);
size_t replay_slab_bytes(const replay *r);
size_t replay_state_bytes(const replay *r);
int replay_launches(const replay *r);
/* Kernel launches that read vars, and host updates of vars, in the replay (host steps
 * count as neither). */
void replay_var_counts(const replay *r, int *reads, int *updates);
void replay_free(replay *r);

#endif
