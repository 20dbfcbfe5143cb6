/* The model: decoding (protobuf-c), the opset, the root graph (graph.c) and the public
 * cg_onnx_* API. */
#include "onnx/onnx.h"
#include "onnx/graph.h"
#include "onnx/ops.h"
#include "core/error.h"
#include "engine/capture.h"
#include "tensor/tensor.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cg_onnx_model {
  Onnx__ModelProto *proto;
  char *dir;
  int64_t opset;
  onnx_graph *graph;
  cg_jit *jit;  /* the runs, replayed (see cg_onnx_run_values) */
  int replay;   /* runs so far (the first is built: its outputs stay lazy), or -1 once a
                 * run read an input-dependent value on the host or returned an input:
                 * every run is built from then on */
};

cg_onnx_model *cg_onnx_load_memory(const void *data, size_t size, const char *base_dir) {
  if (!data && size) return cg_fail_null(CG_ERR_INVALID, "onnx_load_memory: data is NULL");
  cg_onnx_model *m = cg_calloc(1, sizeof *m);
  if (!m) return NULL;
  m->proto = onnx__model_proto__unpack(NULL, size, data);
  if (!m->proto) {
    cg_fail(CG_ERR_FORMAT, "onnx: not a valid ModelProto (protobuf decoding failed: truncated or wrong wire types)");
    goto fail;
  }
  if (base_dir && !(m->dir = cg_strdup(base_dir))) goto fail;
  const Onnx__GraphProto *g = m->proto->graph;
  if (!g) { cg_fail(CG_ERR_FORMAT, "onnx: the model has no graph"); goto fail; }
  m->opset = -1;
  bool training = false;
  for (size_t i = 0; i < m->proto->n_opset_import; i++) {
    const Onnx__OperatorSetIdProto *o = m->proto->opset_import[i];
    if (!o->domain || !*o->domain || !strcmp(o->domain, "ai.onnx")) m->opset = o->has_version ? o->version : -1;
    else if (!strcmp(o->domain, ONNX_TRAINING_DOMAIN)) training = true;
  }
  if (m->opset < 0 && m->proto->n_opset_import == 0) m->opset = 1; /* IR version 2 models: opset 1 */
  if (m->opset < 0 && training) m->opset = 18; /* only training ops: the default domain is unused */
  /* opsets 1-6 are taken too: their ops mean what opset 7 says unless an op checks */
  if (m->opset < 1 || m->opset > 18) {
    cg_fail(CG_ERR_FORMAT, "onnx: the model imports opset %lld of the default domain; supported are opsets 1 to 18",
            (long long)m->opset);
    goto fail;
  }
  if (!(m->graph = onnx_graph_new(g, m->opset, m->dir)) || onnx_graph_plan_replay(m->graph) != CG_OK) goto fail;
  return m;
fail:
  cg_onnx_free(m);
  return NULL;
}

cg_onnx_model *cg_onnx_load(const char *path) {
  if (!path) return cg_fail_null(CG_ERR_INVALID, "onnx_load: path is NULL");
  FILE *f = fopen(path, "rb");
  if (!f) return cg_fail_null(CG_ERR_IO, "onnx: could not open '%s': %s", path, strerror(errno));
  size_t cap = 1 << 16, n = 0;
  uint8_t *buf = cg_malloc(cap);
  while (buf) {
    n += fread(buf + n, 1, cap - n, f);
    if (n < cap) break;
    uint8_t *nb = cg_realloc(buf, cap *= 2);
    if (!nb) free(buf);
    buf = nb;
  }
  bool err = ferror(f);
  fclose(f);
  if (!buf) return NULL;
  if (err) {
    free(buf);
    return cg_fail_null(CG_ERR_IO, "onnx: could not read '%s'", path);
  }
  char *dir = cg_strdup(path), *slash = dir ? strrchr(dir, '/') : NULL;
  if (slash) *slash = 0;
  cg_onnx_model *m = dir ? cg_onnx_load_memory(buf, n, slash ? (*dir ? dir : "/") : ".") : NULL;
  if (!m) {
    /* prefix the path, keeping the message */
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", cg_last_error());
    cg_status st = cg_last_status();
    cg_fail(st ? st : CG_ERR_FORMAT, "%s: %s", path, msg);
  }
  free(dir);
  free(buf);
  return m;
}

void cg_onnx_free(cg_onnx_model *m) {
  if (!m) return;
  cg_jit_free(m->jit);
  onnx_graph_free(m->graph);
  free(m->dir);
  if (m->proto) onnx__model_proto__free_unpacked(m->proto, NULL);
  free(m);
}

/* ---- information ---------------------------------------------------------------------- */

int cg_onnx_num_inputs(const cg_onnx_model *m) { return m ? m->graph->n_in : -1; }
int cg_onnx_num_outputs(const cg_onnx_model *m) { return m ? m->graph->n_out : -1; }
const char *cg_onnx_input_name(const cg_onnx_model *m, int i) {
  return m && i >= 0 && i < m->graph->n_in ? m->graph->in[i].name : NULL;
}
const char *cg_onnx_output_name(const cg_onnx_model *m, int i) {
  return m && i >= 0 && i < m->graph->n_out ? m->graph->out[i].name : NULL;
}
static int io_info(const onnx_io *io, cg_dtype *dt, int64_t *shape) {
  if (dt) *dt = (cg_dtype)io->dtype;
  if (shape)
    for (int d = 0; d < io->ndim; d++) shape[d] = io->shape[d];
  return io->ndim;
}
int cg_onnx_input_info(const cg_onnx_model *m, int i, cg_dtype *dt, int64_t *shape) {
  return m && i >= 0 && i < m->graph->n_in ? io_info(&m->graph->in[i], dt, shape) : -1;
}
int cg_onnx_output_info(const cg_onnx_model *m, int i, cg_dtype *dt, int64_t *shape) {
  return m && i >= 0 && i < m->graph->n_out ? io_info(&m->graph->out[i], dt, shape) : -1;
}
int64_t cg_onnx_opset(const cg_onnx_model *m) { return m ? m->opset : -1; }
int cg_onnx_num_nodes(const cg_onnx_model *m) { return m ? m->graph->n_nodes : -1; }
const char *cg_onnx_node_op(const cg_onnx_model *m, int i) {
  return m && i >= 0 && i < m->graph->n_nodes ? m->proto->graph->node[i]->op_type : NULL;
}

/* ---- running ---------------------------------------------------------------------------- */

static cg_status check_input(const onnx_io *io, cg_tensor *t, int i) {
  if (!t) return cg_fail(CG_ERR_INVALID, "onnx_run: input %d '%s' is NULL", i, io->name);
  if ((int)cg_dtype_of(t) != io->dtype)
    return cg_fail(CG_ERR_INVALID, "onnx_run: input %d '%s' must be %s, got %s", i, io->name, cg_dtype_name((cg_dtype)io->dtype),
                   cg_dtype_name(cg_dtype_of(t)));
  if (io->ndim < 0) return CG_OK;
  bool ok = cg_ndim(t) == io->ndim;
  for (int d = 0; ok && d < io->ndim; d++) ok = io->shape[d] < 0 || io->shape[d] == cg_shape(t)[d];
  if (!ok) {
    char want[200] = "", got[200] = "";
    for (int d = 0; d < io->ndim; d++)
      snprintf(want + strlen(want), sizeof want - strlen(want), "%s%s", d ? ", " : "",
               io->shape[d] < 0 ? "?" : (snprintf(got, sizeof got, "%lld", (long long)io->shape[d]), got));
    got[0] = 0;
    for (int d = 0; d < cg_ndim(t); d++)
      snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "", (long long)cg_shape(t)[d]);
    return cg_fail(CG_ERR_INVALID, "onnx_run: input %d '%s' must have shape (%s), got (%s)", i, io->name, want, got);
  }
  return CG_OK;
}

bool cg_onnx_input_is_sequence(const cg_onnx_model *m, int i) { return m && i >= 0 && i < m->graph->n_in && m->graph->in[i].is_seq; }
bool cg_onnx_output_is_sequence(const cg_onnx_model *m, int i) {
  return m && i >= 0 && i < m->graph->n_out && m->graph->out[i].is_seq;
}

static cg_status check_seq_input(const onnx_io *io, const cg_onnx_value *v, int i) {
  if (v->tensor || (v->n_items && !v->items) || v->n_items < 0)
    return cg_fail(CG_ERR_INVALID, "onnx_run: input %d '%s' is a sequence: give items and n_items", i, io->name);
  for (int k = 0; k < v->n_items; k++) {
    if (!v->items[k]) return cg_fail(CG_ERR_INVALID, "onnx_run: input %d '%s': item %d is NULL", i, io->name, k);
    if (io->dtype >= 0 && (int)cg_dtype_of(v->items[k]) != io->dtype)
      return cg_fail(CG_ERR_INVALID, "onnx_run: input %d '%s': item %d must be %s, got %s", i, io->name, k,
                     cg_dtype_name((cg_dtype)io->dtype), cg_dtype_name(cg_dtype_of(v->items[k])));
  }
  return CG_OK;
}

/* One run of the graph on checked inputs: res[i] new handles in the caller's scope, or
 * nothing on failure. *value_read: a value depending on the inputs was read on the host. */
static cg_status run_once(cg_onnx_model *m, const cg_onnx_value *inputs, cg_onnx_value *outputs, bool *value_read) {
  onnx_graph *gr = m->graph;
  int n_outputs = gr->n_out;
  cg_tensor **vals = cg_calloc((size_t)gr->n_slots + 1, sizeof *vals);
  onnx_seq **svals = cg_calloc((size_t)gr->n_slots + 1, sizeof *svals);
  cg_onnx_value *res = cg_calloc((size_t)n_outputs + 1, sizeof *res);
  if (!vals || !svals || !res) {
    free(vals), free(svals), free(res);
    return CG_ERR_NOMEM;
  }
  onnx_run_state rs = {0};
  cg_status st = CG_OK;
  cg_scope_begin();
  for (int i = 0; i < gr->n_in && st == CG_OK; i++) {
    if (!gr->in[i].is_seq) {
      vals[gr->in[i].slot] = inputs[i].tensor;
      continue;
    }
    onnx_seq *q = onnx_seq_new(&rs, inputs[i].n_items, gr->in[i].dtype);
    if (!q) st = CG_ERR_NOMEM;
    else {
      for (int k = 0; k < q->n; k++) q->items[k] = inputs[i].items[k];
      svals[gr->in[i].slot] = q;
    }
  }
  if (st == CG_OK) st = onnx_graph_run(gr, vals, svals, &rs);
  /* new handles, so that an output which is an input or initializer is the caller's */
  for (int i = 0; i < gr->n_out && st == CG_OK; i++) {
    cg_tensor *v = vals[gr->out[i].slot];
    onnx_seq *q = svals[gr->out[i].slot];
    if (v) {
      if (!(res[i].tensor = cg_reshape(v, cg_shape(v), cg_ndim(v)))) st = cg_last_status();
      else cg_keep(res[i].tensor);
      continue;
    }
    if (!(res[i].items = cg_calloc((size_t)q->n + 1, sizeof(cg_tensor *)))) {
      st = CG_ERR_NOMEM;
      break;
    }
    for (int k = 0; k < q->n && st == CG_OK; k++) {
      cg_tensor *t = q->items[k];
      if (!(res[i].items[k] = cg_reshape(t, cg_shape(t), cg_ndim(t)))) st = cg_last_status();
      else cg_keep(res[i].items[k]), res[i].n_items = k + 1;
    }
  }
  cg_scope_end();
  onnx_seq_free_all(&rs);
  *value_read = rs.value_read;
  for (int i = 0; i < n_outputs; i++) {
    if (st == CG_OK) {
      outputs[i] = res[i];
      continue;
    }
    cg_free(res[i].tensor);
    for (int k = 0; k < res[i].n_items; k++) cg_free(res[i].items[k]);
    free(res[i].items);
  }
  free(vals), free(svals), free(res);
  return st;
}

/* The buffer t views without a kernel (itself, or a reshape of it), or NULL. */
static const uop *view_base_buffer(const cg_tensor *t) {
  const uop *u = t ? t->u : NULL;
  if (u && u->op == OP_RESHAPE) u = u->src[0];
  return u && u->op == OP_BUFFER ? u : NULL;
}

/* The graph as a cg_jit function. */
static cg_status jit_fn(cg_tensor *const *in, int n_in, cg_tensor **out, int n_out, void *user) {
  cg_onnx_model *m = user;
  cg_onnx_value *iv = cg_calloc((size_t)n_in + 1, sizeof *iv), *ov = cg_calloc((size_t)n_out + 1, sizeof *ov);
  cg_status st = iv && ov ? CG_OK : CG_ERR_NOMEM;
  for (int i = 0; i < n_in && st == CG_OK; i++) iv[i].tensor = in[i];
  bool value_read = false;
  if (st == CG_OK) st = run_once(m, iv, ov, &value_read);
  /* an output that is an input or a view of one needs no kernel, so a replay (which runs
   * kernels) would hand back the captured run's input: such graphs are built every run */
  for (int i = 0; i < n_out && st == CG_OK; i++)
    for (int k = 0; k < n_in; k++)
      if (view_base_buffer(ov[i].tensor) && view_base_buffer(ov[i].tensor) == view_base_buffer(in[k])) value_read = true;
  if (value_read) m->replay = -1;
  for (int i = 0; i < n_out; i++) out[i] = st == CG_OK ? ov[i].tensor : NULL;
  free(iv), free(ov);
  return st;
}

/* A copy of t that no later run writes (a replay's outputs view the same buffers). */
static cg_tensor *own_copy(cg_tensor *t) {
  size_t nb = (size_t)cg_numel(t) * cg_dtype_size(cg_dtype_of(t));
  void *buf = cg_malloc(nb + 1);
  cg_tensor *r = buf && cg_read(t, cg_dtype_of(t), buf, nb) == CG_OK ? cg_from_data(buf, cg_dtype_of(t), cg_shape(t), cg_ndim(t)) : NULL;
  free(buf);
  return r;
}

/* Runs after the first go through a cg_jit (ARCHITECTURE §8) where the graph allows
 * (onnx_graph_plan_replay: no subgraphs, sequences or randomness) and until a run reads an
 * input-dependent value on the host: the first runs for an input shape build the graph and
 * schedule it, later ones replay the kernels they launched, with no graph building or
 * scheduling. Outputs are realized and copied out of the replay's buffers (the first run's
 * stay lazy: a caller that only builds them, as the fuzzer does for huge outputs, pays
 * nothing). A graph with an output that is an input (or a view
 * of one, which no kernel computes) is built every run too, and so is every run inside
 * another JIT's function or with JIT=0. */
cg_status cg_onnx_run_values(cg_onnx_model *m, const cg_onnx_value *inputs, int n_inputs, cg_onnx_value *outputs, int n_outputs) {
  if (!m) return cg_fail(CG_ERR_INVALID, "onnx_run: model is NULL");
  onnx_graph *gr = m->graph;
  if (n_inputs != gr->n_in || (n_inputs && !inputs))
    return cg_fail(CG_ERR_INVALID, "onnx_run: the model has %d inputs, got %d", gr->n_in, n_inputs);
  if (n_outputs != gr->n_out || (n_outputs && !outputs))
    return cg_fail(CG_ERR_INVALID, "onnx_run: the model has %d outputs, got room for %d", gr->n_out, n_outputs);
  for (int i = 0; i < n_inputs; i++) {
    cg_status st = gr->in[i].is_seq ? check_seq_input(&gr->in[i], &inputs[i], i) : check_input(&gr->in[i], inputs[i].tensor, i);
    if (st != CG_OK) return st;
  }
  if (!gr->packed) gr->packed = true, onnx_pack_weights(gr); /* before a JIT records the runs */
  const char *jit_cfg = cg_get_config("JIT");
  bool value_read = false;
  if (!gr->jit_ok || m->replay < 0 || (jit_cfg && !strcmp(jit_cfg, "0")) || capture_active() || !n_outputs)
    return run_once(m, inputs, outputs, &value_read);
  if (m->replay == 0) { /* the first run: built, its outputs lazy (a caller may not realize them) */
    cg_status st = run_once(m, inputs, outputs, &value_read);
    for (int i = 0; i < n_outputs && st == CG_OK; i++)
      for (int k = 0; k < n_inputs; k++)
        if (view_base_buffer(outputs[i].tensor) && view_base_buffer(outputs[i].tensor) == view_base_buffer(inputs[k].tensor)) value_read = true;
    m->replay = value_read ? -1 : 1;
    return st;
  }
  if (!m->jit && !(m->jit = cg_jit_new(jit_fn, n_outputs, m))) return cg_last_status();
  cg_tensor **in = cg_calloc((size_t)n_inputs + 1, sizeof *in), **out = cg_calloc((size_t)n_outputs + 1, sizeof *out);
  cg_status st = in && out ? CG_OK : CG_ERR_NOMEM;
  for (int i = 0; i < n_inputs && st == CG_OK; i++) in[i] = inputs[i].tensor;
  if (st == CG_OK) st = cg_jit_call(m->jit, in, n_inputs, out);
  for (int i = 0; i < n_outputs && st == CG_OK; i++)
    if (!(outputs[i].tensor = own_copy(out[i]))) {
      st = cg_last_status() ? cg_last_status() : CG_ERR_NOMEM;
      for (int k = 0; k < i; k++) cg_free(outputs[k].tensor), outputs[k].tensor = NULL;
    }
  for (int i = 0; i < n_outputs && out; i++) cg_free(out[i]);
  free(in), free(out);
  if (m->replay < 0) { /* this run read a value on the host: build every run from now */
    cg_jit_free(m->jit);
    m->jit = NULL;
  }
  return st;
}

cg_status cg_onnx_run(cg_onnx_model *m, cg_tensor *const *inputs, int n_inputs, cg_tensor **outputs, int n_outputs) {
  if (!m) return cg_fail(CG_ERR_INVALID, "onnx_run: model is NULL");
  for (int i = 0; i < m->graph->n_in; i++)
    if (m->graph->in[i].is_seq) return cg_fail(CG_ERR_INVALID, "onnx_run: input %d '%s' is a sequence: use cg_onnx_run_values", i, m->graph->in[i].name);
  for (int i = 0; i < m->graph->n_out; i++)
    if (m->graph->out[i].is_seq) return cg_fail(CG_ERR_INVALID, "onnx_run: output %d '%s' is a sequence: use cg_onnx_run_values", i, m->graph->out[i].name);
  if (n_inputs < 0 || n_outputs < 0 || n_inputs > (1 << 20) || n_outputs > (1 << 20)) return cg_fail(CG_ERR_INVALID, "onnx_run: bad counts");
  cg_onnx_value *in = cg_calloc((size_t)n_inputs + 1, sizeof *in), *out = cg_calloc((size_t)n_outputs + 1, sizeof *out);
  if (!in || !out) {
    free(in), free(out);
    return CG_ERR_NOMEM;
  }
  for (int i = 0; i < n_inputs && inputs; i++) in[i].tensor = inputs[i];
  cg_status st = cg_onnx_run_values(m, inputs ? in : NULL, n_inputs, outputs ? out : NULL, n_outputs);
  for (int i = 0; i < n_outputs && st == CG_OK; i++) {
    if (!out[i].tensor) { /* a sequence output where the graph said tensor: not reachable after the checks */
      for (int k = 0; k < out[i].n_items; k++) cg_free(out[i].items[k]);
      free(out[i].items);
      st = cg_fail(CG_ERR_INVALID, "onnx_run: output %d is a sequence: use cg_onnx_run_values", i);
    }
  }
  for (int i = 0; i < n_outputs && st == CG_OK; i++) outputs[i] = out[i].tensor;
  free(in), free(out);
  return st;
}
