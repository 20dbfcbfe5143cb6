/* ONNX import, internal: the decoded model, the op table and the helpers ops use.
 *
 *   decode.c   file bytes -> Onnx__ModelProto (protobuf-c, generated at build time) and
 *              TensorProto -> cg_tensor (typed fields, raw data, external data)
 *   model.c    checks the graph (defined-before-use, known ops, shapes) and resolves
 *              every node input to a value slot; the public cg_onnx_* API; running
 *   ops_*.c    one function per ONNX op, building lazy tensors through the public API */
#ifndef CG_ONNX_ONNX_H
#define CG_ONNX_ONNX_H

#include "cgrad.h"
#include "onnx.pb-c.h"
#include <stdbool.h>
#include <stdint.h>

/* ---- decoding -------------------------------------------------------------------------- */

/* ONNX TensorProto.DataType -> cgrad dtype, -1 if cgrad has none (string, complex). */
int onnx_dtype(int32_t onnx_type);
const char *onnx_dtype_name(int32_t onnx_type);
/* A TensorProto as a new realized tensor (outside every scope's reach only if the caller
 * keeps it). base_dir: where external data may be read from (NULL: refused). what names
 * the tensor in messages. */
cg_tensor *onnx_tensor_from_proto(const Onnx__TensorProto *tp, const char *base_dir, const char *what);

/* ---- running a node ---------------------------------------------------------------------- */

typedef struct onnx_graph onnx_graph;

/* A sequence value (ONNX seq(tensor)): items are tensors of one dtype. Sequences live
 * until the end of the run that made them (onnx_run_state). */
typedef struct onnx_seq {
  int n;
  cg_tensor **items;
  int dtype; /* cg_dtype of the items, -1 if unknown */
  struct onnx_seq *next; /* the run's list of sequences */
} onnx_seq;
typedef struct {
  onnx_seq *seqs;
  bool value_read; /* a value that depends on the input values was read on the host */
} onnx_run_state;

typedef struct {
  const Onnx__NodeProto *node;
  int64_t opset;
  int idx;          /* the node's index, for messages */
  cg_tensor **in;   /* NULL where an optional input is absent ("") or beyond n_input */
  int nin;
  cg_tensor **out;  /* the op writes nout tensors */
  int nout;
  onnx_graph *graph; /* the graph the node is in, and its values (for subgraphs) */
  cg_tensor **vals;
  onnx_seq **svals;
  onnx_seq **sin;   /* sequence-valued inputs (NULL where the input is a tensor) */
  onnx_seq **sout;  /* an op producing a sequence sets sout[i] instead of out[i] */
  onnx_run_state *rs;
} onnx_ctx;

typedef cg_status (*onnx_op_fn)(onnx_ctx *c);

typedef struct {
  const char *name;
  onnx_op_fn fn;
  bool seq_ok; /* takes sequence inputs */
} onnx_op;

/* The op named op_type in domain ("" or "ai.onnx": the default domain), or NULL. */
const onnx_op *onnx_find_op(const char *domain, const char *op_type);
#define ONNX_TRAINING_DOMAIN "ai.onnx.preview.training"

/* Run the node's graph attribute attr on inputs in; its outputs into out. */
cg_status onnx_run_sub(onnx_ctx *c, const char *attr, cg_tensor *const *in, int nin, cg_tensor **out, int nout);
/* The same with sequence values: sin/sout may be NULL (tensors only); where sin[i] is set
 * input i is that sequence; an output that is a sequence goes to sout[i]. */
cg_status onnx_run_sub_v(onnx_ctx *c, const char *attr, cg_tensor *const *in, onnx_seq *const *sin, int nin, cg_tensor **out,
                         onnx_seq **sout, int nout);
/* A new sequence of n items (set by the caller), freed at the end of the run. */
onnx_seq *onnx_seq_new(onnx_run_state *rs, int n, int dtype);
void onnx_seq_free_all(onnx_run_state *rs);

/* Fail naming the node: "node 3 'conv1' (Conv): <message>". */
cg_status onnx_fail(onnx_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Attributes. Absent attributes give the default. */
const Onnx__AttributeProto *onnx_attr(onnx_ctx *c, const char *name);
int64_t onnx_attr_i(onnx_ctx *c, const char *name, int64_t dflt);
double onnx_attr_f(onnx_ctx *c, const char *name, double dflt);
/* The string attribute copied into buf (truncated), or dflt. */
const char *onnx_attr_s(onnx_ctx *c, const char *name, const char *dflt, char *buf, size_t cap);
/* Up to max ints into out; the count, or -1 if absent (-2 and an error if more than max). */
int onnx_attr_ints(onnx_ctx *c, const char *name, int64_t *out, int max);
int onnx_attr_floats(onnx_ctx *c, const char *name, double *out, int max);

/* Input i's values are about to be read on the host (for a shape, a count, a branch):
 * noted where they depend on the model's input values, so runs are not replayed. */
void onnx_host_read(onnx_ctx *c, int i);
/* Input i, or NULL with an error if it is required and absent. */
cg_tensor *onnx_in(onnx_ctx *c, int i);
/* The values of a (small) integer input, realized now: count, or -1 with an error. */
int onnx_in_ints(onnx_ctx *c, int i, int64_t *out, int max);
/* A float input's values (Clip bounds and the like). */
int onnx_in_doubles(onnx_ctx *c, int i, double *out, int max);
/* A normalized axis in [0, ndim), or -1 with an error. */
int onnx_axis(onnx_ctx *c, int64_t axis, int ndim);

/* Set output i (NULL means the op failed; the error is already recorded). */
cg_status onnx_set(onnx_ctx *c, int i, cg_tensor *t);

bool onnx_is_float(cg_dtype dt);
bool onnx_is_int(cg_dtype dt);
bool onnx_is_signed(cg_dtype dt);

/* An n-element int64 vector (or 0-d when ndim 0). */
cg_tensor *onnx_i64(const int64_t *v, int64_t n, int ndim);
/* A 0-d constant of dtype dt (integers saturate: -inf gives the lowest value). */
cg_tensor *onnx_const(double v, cg_dtype dt);
/* v clamped to what dt holds (NaN: 0 for integers). */
double onnx_saturate(double v, cg_dtype dt);

#endif
