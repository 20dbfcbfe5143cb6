/* A resolved ONNX graph (see graph.c) and running one. */
#ifndef CG_ONNX_GRAPH_H
#define CG_ONNX_GRAPH_H
#include "onnx/onnx.h"

typedef struct {
  const char *name;
  int dtype; /* cg_dtype, or -1 */
  int ndim;  /* -1 if unknown */
  bool is_seq; /* a sequence of tensors of dtype */
  int64_t shape[CG_MAX_DIMS];
  int slot;
} onnx_io;

struct onnx_graph {
  const Onnx__GraphProto *g;
  struct onnx_graph *parent;
  int depth;
  int64_t opset;
  int n_slots, n_in, n_out, n_init, n_nodes;
  onnx_io *in, *out; /* in: the inputs that are not initializers */
  cg_tensor **init;
  int *init_slot;
  int **node_in, **node_out;  /* per node: slot of each input/output, -1 for "" */
  const onnx_op **ops;
  struct onnx_graph ***subs;  /* per node: per attribute, its subgraph or NULL */
  int n_cap, cap_cap, *cap_in, *cap_out; /* captured: this graph's slot <- the parent's slot */
  const char **map_keys;      /* name -> slot, while resolving */
  int *map_vals;
  size_t map_cap;
  bool packed;                /* onnx_pack_weights ran */
  /* Replay (cg_jit) is sound for the root graph when its kernels depend on the input
   * shapes alone: jit_ok says no node has a subgraph, a sequence or randomness;
   * value_dep[slot] says a slot's value depends on the input values (not only on their
   * shapes); a run that reads such a value on the host (onnx_host_read) is not
   * replayable. */
  bool jit_ok;
  bool *value_dep;
};

void onnx_io_from_value_info(onnx_io *io, const Onnx__ValueInfoProto *vi);
/* Check and resolve g (and its subgraphs), load its initializers. NULL + message. */
onnx_graph *onnx_graph_new(const Onnx__GraphProto *g, int64_t opset, const char *base_dir);
void onnx_graph_free(onnx_graph *gr);
/* The analysis above (root graph only). */
cg_status onnx_graph_plan_replay(onnx_graph *gr);
/* Run with vals/svals[n_slots] holding the inputs (and captures); fills the rest. */
cg_status onnx_graph_run(onnx_graph *gr, cg_tensor **vals, onnx_seq **svals, onnx_run_state *rs);
#endif
