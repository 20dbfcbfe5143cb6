/* A graph: checked once, every name resolved to a value slot; run by walking the nodes.
 *
 * Slots: initializers first, then the inputs that are not initializers, then values
 * captured from enclosing graphs (subgraphs of If, Loop, Scan read outer names), then
 * every node output, so a run is array indexing. The checks at load time are what make
 * running safe on a hostile file: every node input names a value defined earlier (a later
 * one means a cycle or an unsorted graph), every output name is new, every op is known,
 * subgraphs nest at most ONNX_MAX_DEPTH deep, every initializer's data matches its shape. */
#include "onnx/onnx.h"
#include "onnx/graph.h"
#include "onnx/ops.h"
#include "core/error.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ONNX_MAX_DEPTH 16

/* ---- name -> slot (open addressing; keys borrowed from the proto) ---------------------- */

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull;
  while (*s) h = (h ^ (uint8_t)*s++) * 1099511628211ull;
  return h;
}
static int map_get(const onnx_graph *g, const char *k) {
  for (size_t i = hash_str(k) & (g->map_cap - 1);; i = (i + 1) & (g->map_cap - 1)) {
    if (!g->map_keys[i]) return -1;
    if (!strcmp(g->map_keys[i], k)) return g->map_vals[i];
  }
}
static void map_put(onnx_graph *g, const char *k, int v) {
  size_t i = hash_str(k) & (g->map_cap - 1);
  while (g->map_keys[i] && strcmp(g->map_keys[i], k)) i = (i + 1) & (g->map_cap - 1);
  g->map_keys[i] = k;
  g->map_vals[i] = v;
}

/* The slot of name in g, capturing it from the enclosing graphs if needed; -1 if none. */
static int lookup(onnx_graph *g, const char *name) {
  int s = map_get(g, name);
  if (s >= 0 || !g->parent) return s;
  int outer = lookup(g->parent, name);
  if (outer < 0) return -1;
  if (g->n_cap == g->cap_cap) {
    int nc = g->cap_cap ? 2 * g->cap_cap : 8;
    int *a = cg_realloc(g->cap_in, sizeof(int) * (size_t)nc), *b = a ? cg_realloc(g->cap_out, sizeof(int) * (size_t)nc) : NULL;
    if (a) g->cap_in = a;
    if (!a || !b) return -1;
    g->cap_out = b, g->cap_cap = nc;
  }
  s = g->n_slots++;
  g->cap_in[g->n_cap] = s, g->cap_out[g->n_cap++] = outer;
  map_put(g, name, s);
  return s;
}

void onnx_io_from_value_info(onnx_io *io, const Onnx__ValueInfoProto *vi) {
  io->name = vi->name ? vi->name : "";
  io->dtype = -1;
  io->ndim = -1;
  io->is_seq = false;
  const Onnx__TypeProto *tp = vi->type;
  if (tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE && tp->sequence_type && tp->sequence_type->elem_type &&
      tp->sequence_type->elem_type->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && tp->sequence_type->elem_type->tensor_type) {
    io->is_seq = true;
    io->dtype = onnx_dtype(tp->sequence_type->elem_type->tensor_type->elem_type);
    return;
  }
  if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type) return;
  io->dtype = onnx_dtype(tp->tensor_type->elem_type);
  const Onnx__TensorShapeProto *sh = tp->tensor_type->shape;
  if (!sh || sh->n_dim > CG_MAX_DIMS) return;
  io->ndim = (int)sh->n_dim;
  for (size_t d = 0; d < sh->n_dim; d++) {
    const Onnx__TensorShapeProto__Dimension *dim = sh->dim[d];
    io->shape[d] = dim && dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE && dim->dim_value >= 0
                       ? dim->dim_value
                       : -1;
  }
}

static const char *node_label(const Onnx__NodeProto *n, char *buf, size_t cap) {
  snprintf(buf, cap, "'%s' (%s)", n->name && *n->name ? n->name : "", n->op_type ? n->op_type : "?");
  return buf;
}

static bool is_tensor_or_seq_type(const Onnx__ValueInfoProto *vi) {
  const Onnx__TypeProto *tp = vi->type;
  return !tp || tp->value_case == ONNX__TYPE_PROTO__VALUE__NOT_SET || tp->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ||
         tp->value_case == ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE;
}

/* Resolve gr->g (parent already resolved up to the node that owns it). */
static cg_status resolve(onnx_graph *gr, const char *base_dir) {
  const Onnx__GraphProto *g = gr->g;
  char lb[300];
  if (gr->depth > ONNX_MAX_DEPTH) return cg_fail(CG_ERR_FORMAT, "onnx: subgraphs nest more than %d deep", ONNX_MAX_DEPTH);
  if (g->n_node > (1u << 24) || g->n_initializer > (1u << 24) || g->n_input > (1u << 20) || g->n_output > (1u << 20))
    return cg_fail(CG_ERR_FORMAT, "onnx: graph '%s' too large", g->name ? g->name : "");
  size_t total = g->n_input + g->n_initializer + 1;
  for (size_t i = 0; i < g->n_node; i++) total += g->node[i]->n_output + g->node[i]->n_input;
  gr->map_cap = 16;
  while (gr->map_cap < 2 * total) gr->map_cap *= 2;
  gr->map_keys = cg_calloc(gr->map_cap, sizeof *gr->map_keys);
  gr->map_vals = cg_calloc(gr->map_cap, sizeof *gr->map_vals);
  gr->node_in = cg_calloc(g->n_node + 1, sizeof *gr->node_in);
  gr->node_out = cg_calloc(g->n_node + 1, sizeof *gr->node_out);
  gr->subs = cg_calloc(g->n_node + 1, sizeof *gr->subs);
  gr->ops = cg_calloc(g->n_node + 1, sizeof *gr->ops);
  gr->in = cg_calloc(g->n_input + 1, sizeof *gr->in);
  gr->out = cg_calloc(g->n_output + 1, sizeof *gr->out);
  gr->init = cg_calloc(g->n_initializer + 1, sizeof *gr->init);
  gr->init_slot = cg_calloc(g->n_initializer + 1, sizeof *gr->init_slot);
  gr->n_nodes = (int)g->n_node;
  if (!gr->map_keys || !gr->map_vals || !gr->node_in || !gr->node_out || !gr->subs || !gr->ops || !gr->in || !gr->out || !gr->init ||
      !gr->init_slot)
    return CG_ERR_NOMEM;
  for (size_t i = 0; i < g->n_initializer; i++) {
    const char *nm = g->initializer[i]->name;
    if (!nm || !*nm) return cg_fail(CG_ERR_FORMAT, "onnx: initializer %zu has no name", i);
    if (map_get(gr, nm) >= 0) return cg_fail(CG_ERR_FORMAT, "onnx: initializer '%s' is defined twice", nm);
    map_put(gr, nm, gr->n_slots);
    gr->init_slot[i] = gr->n_slots++;
    gr->n_init++;
    gr->init[i] = onnx_tensor_from_proto(g->initializer[i], base_dir, nm);
    if (!gr->init[i] || cg_realize(gr->init[i]) != CG_OK) return cg_last_status() ? cg_last_status() : CG_ERR_FORMAT;
  }
  for (size_t i = 0; i < g->n_input; i++) {
    const char *nm = g->input[i]->name;
    if (!nm || !*nm) return cg_fail(CG_ERR_FORMAT, "onnx: graph input %zu has no name", i);
    if (!gr->parent && map_get(gr, nm) >= 0) continue; /* an initializer gives its value */
    onnx_io *io = &gr->in[gr->n_in++];
    onnx_io_from_value_info(io, g->input[i]);
    if (!gr->parent && io->dtype < 0)
      return cg_fail(CG_ERR_FORMAT, "onnx: graph input '%s' is not a tensor or sequence of a supported type (optional, string, map ...)", nm);
    if (gr->parent && !is_tensor_or_seq_type(g->input[i]))
      return cg_fail(CG_ERR_FORMAT, "onnx: subgraph input '%s' is not a tensor or sequence (optionals are not supported)", nm);
    map_put(gr, nm, gr->n_slots);
    io->slot = gr->n_slots++;
  }
  for (size_t i = 0; i < g->n_node; i++) {
    const Onnx__NodeProto *n = g->node[i];
    if (!n->op_type) return cg_fail(CG_ERR_FORMAT, "onnx: node %zu has no op_type", i);
    gr->ops[i] = onnx_find_op(n->domain, n->op_type);
    if (!gr->ops[i]) {
      if (n->domain && *n->domain && strcmp(n->domain, "ai.onnx") && strcmp(n->domain, ONNX_TRAINING_DOMAIN))
        return cg_fail(CG_ERR_FORMAT, "onnx: node %zu %s: domain '%s' is not supported (the default ONNX domain and %s)", i,
                       node_label(n, lb, sizeof lb), n->domain, ONNX_TRAINING_DOMAIN);
      return cg_fail(CG_ERR_FORMAT, "onnx: node %zu %s: op %s%s%s is not supported", i, node_label(n, lb, sizeof lb),
                     n->domain && *n->domain ? n->domain : "", n->domain && *n->domain ? "." : "", n->op_type);
    }
    gr->node_in[i] = cg_calloc(n->n_input + 1, sizeof(int));
    gr->node_out[i] = cg_calloc(n->n_output + 1, sizeof(int));
    if (!gr->node_in[i] || !gr->node_out[i]) return CG_ERR_NOMEM;
    for (size_t k = 0; k < n->n_input; k++) {
      const char *nm = n->input[k];
      if (!nm || !*nm) {
        gr->node_in[i][k] = -1;
        continue;
      }
      int s = lookup(gr, nm);
      if (s < 0) {
        bool later = false;
        for (size_t j = i; j < g->n_node && !later; j++)
          for (size_t o = 0; o < g->node[j]->n_output; o++)
            if (g->node[j]->output[o] && !strcmp(g->node[j]->output[o], nm)) later = true;
        return cg_fail(CG_ERR_FORMAT, "onnx: node %zu %s: input %zu '%s' is %s", i, node_label(n, lb, sizeof lb), k, nm,
                       later ? "produced by this or a later node (a cycle, or nodes not in topological order)"
                             : "not defined (no graph input, initializer or earlier node output has that name)");
      }
      gr->node_in[i][k] = s;
    }
    /* subgraphs see the names defined so far */
    for (size_t a = 0; a < n->n_attribute; a++) {
      if (n->attribute[a]->n_graphs) return cg_fail(CG_ERR_FORMAT, "onnx: node %zu %s: graph-list attributes are not supported", i, node_label(n, lb, sizeof lb));
      if (!n->attribute[a]->g) continue;
      if (!gr->subs[i] && !(gr->subs[i] = cg_calloc(n->n_attribute, sizeof(onnx_graph *)))) return CG_ERR_NOMEM;
      onnx_graph *sg = cg_calloc(1, sizeof *sg);
      if (!sg) return CG_ERR_NOMEM;
      gr->subs[i][a] = sg;
      sg->g = n->attribute[a]->g, sg->parent = gr, sg->depth = gr->depth + 1, sg->opset = gr->opset;
      cg_status st = resolve(sg, base_dir);
      if (st != CG_OK) {
        char msg[900];
        snprintf(msg, sizeof msg, "%s", cg_last_error());
        return cg_fail(st, "onnx: node %zu %s: attribute %s: %s", i, node_label(n, lb, sizeof lb),
                       n->attribute[a]->name ? n->attribute[a]->name : "?", strncmp(msg, "onnx: ", 6) ? msg : msg + 6);
      }
    }
    for (size_t k = 0; k < n->n_output; k++) {
      const char *nm = n->output[k];
      if (!nm || !*nm) {
        gr->node_out[i][k] = -1;
        continue;
      }
      if (map_get(gr, nm) >= 0)
        return cg_fail(CG_ERR_FORMAT, "onnx: node %zu %s: output '%s' is already defined (values are assigned once)", i,
                       node_label(n, lb, sizeof lb), nm);
      map_put(gr, nm, gr->n_slots);
      gr->node_out[i][k] = gr->n_slots++;
    }
  }
  for (size_t i = 0; i < g->n_output; i++) {
    onnx_io *io = &gr->out[i];
    onnx_io_from_value_info(io, g->output[i]);
    io->slot = lookup(gr, io->name);
    if (io->slot < 0) return cg_fail(CG_ERR_FORMAT, "onnx: graph output '%s' is not produced by any node", io->name);
  }
  gr->n_out = (int)g->n_output;
  return CG_OK;
}

static void drop_map(onnx_graph *gr) {
  free(gr->map_keys);
  free(gr->map_vals);
  gr->map_keys = NULL, gr->map_vals = NULL;
  for (int i = 0; gr->subs && i < gr->n_nodes; i++)
    for (size_t a = 0; gr->subs[i] && a < gr->g->node[i]->n_attribute; a++)
      if (gr->subs[i][a]) drop_map(gr->subs[i][a]);
}

onnx_graph *onnx_graph_new(const Onnx__GraphProto *g, int64_t opset, const char *base_dir) {
  onnx_graph *gr = cg_calloc(1, sizeof *gr);
  if (!gr) return NULL;
  gr->g = g, gr->opset = opset;
  cg_status st = resolve(gr, base_dir);
  drop_map(gr);
  if (st != CG_OK) {
    if (!cg_last_status()) cg_fail(st, "onnx: out of memory");
    onnx_graph_free(gr);
    return NULL;
  }
  return gr;
}

void onnx_graph_free(onnx_graph *gr) {
  if (!gr) return;
  for (int i = 0; i < gr->n_nodes; i++) {
    if (gr->node_in) free(gr->node_in[i]);
    if (gr->node_out) free(gr->node_out[i]);
    if (gr->subs && gr->subs[i]) {
      for (size_t a = 0; a < gr->g->node[i]->n_attribute; a++) onnx_graph_free(gr->subs[i][a]);
      free(gr->subs[i]);
    }
  }
  if (gr->init)
    for (size_t i = 0; i < gr->g->n_initializer; i++) cg_free(gr->init[i]);
  free(gr->map_keys), free(gr->map_vals);
  free(gr->node_in), free(gr->node_out), free(gr->subs), free(gr->ops), free(gr->in), free(gr->out);
  free(gr->init), free(gr->init_slot), free(gr->cap_in), free(gr->cap_out), free(gr->value_dep);
  free(gr);
}

cg_status onnx_graph_plan_replay(onnx_graph *gr) {
  static const char *const random_ops[] = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Bernoulli", "Multinomial", "Dropout"};
  if (!(gr->value_dep = cg_calloc((size_t)gr->n_slots + 1, sizeof(bool)))) return CG_ERR_NOMEM;
  gr->jit_ok = true;
  for (int i = 0; i < gr->n_in; i++) {
    gr->value_dep[gr->in[i].slot] = true;
    gr->jit_ok = gr->jit_ok && !gr->in[i].is_seq;
  }
  for (int i = 0; i < gr->n_out; i++) gr->jit_ok = gr->jit_ok && !gr->out[i].is_seq;
  for (int i = 0; i < gr->n_nodes; i++) {
    const Onnx__NodeProto *n = gr->g->node[i];
    if (gr->subs[i]) gr->jit_ok = false;
    for (size_t r = 0; r < sizeof random_ops / sizeof *random_ops; r++)
      if (!strcmp(n->op_type, random_ops[r])) gr->jit_ok = false;
    /* Shape and Size see only shapes (a replay is keyed by them); Constant nothing */
    bool dep = false;
    if (strcmp(n->op_type, "Shape") && strcmp(n->op_type, "Size") && strcmp(n->op_type, "Constant"))
      for (size_t k = 0; k < n->n_input; k++) dep = dep || (gr->node_in[i][k] >= 0 && gr->value_dep[gr->node_in[i][k]]);
    for (size_t k = 0; k < n->n_output; k++)
      if (gr->node_out[i][k] >= 0) gr->value_dep[gr->node_out[i][k]] = dep;
  }
  return CG_OK;
}

void onnx_host_read(onnx_ctx *c, int i) {
  onnx_graph *gr = c->graph;
  int sl = i < c->nin ? gr->node_in[c->idx][i] : -1;
  if (!gr->value_dep || sl < 0 || gr->value_dep[sl]) c->rs->value_read = true;
}

cg_status onnx_graph_run(onnx_graph *gr, cg_tensor **vals, onnx_seq **svals, onnx_run_state *rs) {
  const Onnx__GraphProto *g = gr->g;
  if (!gr->packed) gr->packed = true, onnx_pack_weights(gr);
  for (int i = 0; i < gr->n_init; i++) vals[gr->init_slot[i]] = gr->init[i];
  cg_tensor *in[64], *out[64];
  onnx_seq *sin[64], *sout[64];
  cg_status st = CG_OK;
  for (int i = 0; i < gr->n_nodes && st == CG_OK; i++) {
    const Onnx__NodeProto *n = g->node[i];
    onnx_ctx c = {.node = n, .opset = gr->opset, .idx = i, .in = in, .out = out, .graph = gr, .vals = vals, .svals = svals,
                  .sin = sin, .sout = sout, .rs = rs};
    if (n->n_input > 64 || n->n_output > 64) {
      st = onnx_fail(&c, "more than 64 inputs or outputs");
      break;
    }
    c.nin = (int)n->n_input;
    c.nout = (int)n->n_output;
    for (int k = 0; k < c.nin; k++) {
      int sl = gr->node_in[i][k];
      in[k] = sl >= 0 ? vals[sl] : NULL;
      sin[k] = sl >= 0 ? svals[sl] : NULL;
      if (sin[k] && !gr->ops[i]->seq_ok) st = onnx_fail(&c, "input %d is a sequence; this op takes tensors", k);
    }
    for (int k = 0; k < c.nout; k++) out[k] = NULL, sout[k] = NULL;
    if (st == CG_OK) st = gr->ops[i]->fn(&c);
    for (int k = 0; k < c.nout && st == CG_OK; k++) {
      int sl = gr->node_out[i][k];
      if (sl < 0) continue;
      if (!out[k] && !sout[k]) st = onnx_fail(&c, "output %d '%s' was not produced", k, n->output[k]);
      vals[sl] = out[k], svals[sl] = sout[k];
    }
  }
  return st;
}

cg_status onnx_run_sub_v(onnx_ctx *c, const char *attr, cg_tensor *const *in, onnx_seq *const *sin, int nin, cg_tensor **out,
                         onnx_seq **sout, int nout) {
  onnx_graph *sg = NULL;
  for (size_t a = 0; a < c->node->n_attribute && !sg; a++)
    if (c->node->attribute[a]->name && !strcmp(c->node->attribute[a]->name, attr) && c->graph->subs[c->idx])
      sg = c->graph->subs[c->idx][a];
  if (!sg) return onnx_fail(c, "graph attribute %s is missing", attr);
  if (sg->n_in != nin) return onnx_fail(c, "%s takes %d inputs, given %d", attr, sg->n_in, nin);
  if (sg->n_out != nout) return onnx_fail(c, "%s has %d outputs, expected %d", attr, sg->n_out, nout);
  cg_tensor **vals = cg_calloc((size_t)sg->n_slots + 1, sizeof *vals);
  onnx_seq **svals = cg_calloc((size_t)sg->n_slots + 1, sizeof *svals);
  if (!vals || !svals) {
    free(vals), free(svals);
    return CG_ERR_NOMEM;
  }
  for (int i = 0; i < nin; i++) vals[sg->in[i].slot] = in ? in[i] : NULL, svals[sg->in[i].slot] = sin ? sin[i] : NULL;
  for (int k = 0; k < sg->n_cap; k++) vals[sg->cap_in[k]] = c->vals[sg->cap_out[k]], svals[sg->cap_in[k]] = c->svals[sg->cap_out[k]];
  cg_status st = onnx_graph_run(sg, vals, svals, c->rs);
  for (int i = 0; i < nout && st == CG_OK; i++) {
    out[i] = vals[sg->out[i].slot];
    if (sout) sout[i] = svals[sg->out[i].slot];
    else if (svals[sg->out[i].slot]) st = onnx_fail(c, "%s: output %d is a sequence where a tensor is needed", attr, i);
    if (st == CG_OK && !out[i] && !(sout && sout[i])) st = onnx_fail(c, "%s: output %d was not produced", attr, i);
  }
  free(vals);
  free(svals);
  return st;
}

cg_status onnx_run_sub(onnx_ctx *c, const char *attr, cg_tensor *const *in, int nin, cg_tensor **out, int nout) {
  return onnx_run_sub_v(c, attr, in, NULL, nin, out, NULL, nout);
}

onnx_seq *onnx_seq_new(onnx_run_state *rs, int n, int dtype) {
  onnx_seq *q = cg_calloc(1, sizeof *q);
  if (!q) return NULL;
  if (!(q->items = cg_calloc((size_t)n + 1, sizeof *q->items))) {
    free(q);
    return NULL;
  }
  q->n = n, q->dtype = dtype, q->next = rs->seqs, rs->seqs = q;
  return q;
}

void onnx_seq_free_all(onnx_run_state *rs) {
  while (rs->seqs) {
    onnx_seq *q = rs->seqs;
    rs->seqs = q->next;
    free(q->items);
    free(q);
  }
}
