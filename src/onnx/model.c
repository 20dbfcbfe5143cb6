/* The model: decode, check, resolve names to value slots once; run by walking the nodes.
 *
 * Value slots: graph inputs first, then initializers, then every node output, so that a
 * run is array indexing. The checks at load time are what make running safe on a hostile
 * file: every node input names a value defined earlier (a later one means a cycle or an
 * unsorted graph), every output name is new, every op is known, every initializer's data
 * matches its shape. */
#include "onnx/onnx.h"
#include "core/error.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const char *name;
  int dtype; /* cg_dtype, or -1 */
  int ndim;
  int64_t shape[CG_MAX_DIMS];
  int slot;
} onnx_io;

struct cg_onnx_model {
  Onnx__ModelProto *proto;
  char *dir;
  int64_t opset;
  int n_in, n_out, n_init, n_slots, n_nodes;
  onnx_io *in, *out;
  cg_tensor **init;
  int *init_slot;
  int **node_in;  /* per node: slot of each input, -1 for "" */
  int **node_out; /* per node: slot of each output, -1 for "" */
  const onnx_op **ops;
};

/* ---- name -> slot (open addressing; keys borrowed from the proto) ------------------- */

typedef struct {
  const char **keys;
  int *vals;
  size_t cap;
} name_map;

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull;
  while (*s) h = (h ^ (uint8_t)*s++) * 1099511628211ull;
  return h;
}
static int map_get(const name_map *m, const char *k) {
  for (size_t i = hash_str(k) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
    if (!m->keys[i]) return -1;
    if (!strcmp(m->keys[i], k)) return m->vals[i];
  }
}
static void map_put(name_map *m, const char *k, int v) {
  size_t i = hash_str(k) & (m->cap - 1);
  while (m->keys[i] && strcmp(m->keys[i], k)) i = (i + 1) & (m->cap - 1);
  m->keys[i] = k;
  m->vals[i] = v;
}

/* ---- loading ---------------------------------------------------------------------------- */

static void io_from_value_info(onnx_io *io, const Onnx__ValueInfoProto *vi) {
  io->name = vi->name ? vi->name : "";
  io->dtype = -1;
  io->ndim = -1;
  const Onnx__TypeProto *tp = vi->type;
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

static cg_status check_and_resolve(cg_onnx_model *m) {
  const Onnx__GraphProto *g = m->proto->graph;
  char lb[300];
  size_t total = g->n_input + g->n_initializer + 1;
  for (size_t i = 0; i < g->n_node; i++) total += g->node[i]->n_output;
  name_map map = {0};
  map.cap = 16;
  while (map.cap < 2 * total) map.cap *= 2;
  map.keys = cg_calloc(map.cap, sizeof *map.keys);
  map.vals = cg_calloc(map.cap, sizeof *map.vals);
  m->node_in = cg_calloc(g->n_node + 1, sizeof *m->node_in);
  m->node_out = cg_calloc(g->n_node + 1, sizeof *m->node_out);
  m->ops = cg_calloc(g->n_node + 1, sizeof *m->ops);
  if (!map.keys || !map.vals || !m->node_in || !m->node_out || !m->ops) goto fail;
  int slot = 0;
  /* initializers: the graph inputs that are initializers too (old IR) are not inputs */
  for (size_t i = 0; i < g->n_initializer; i++) {
    const char *nm = g->initializer[i]->name;
    if (!nm || !*nm) { cg_fail(CG_ERR_FORMAT, "onnx: initializer %zu has no name", i); goto fail; }
    if (map_get(&map, nm) >= 0) { cg_fail(CG_ERR_FORMAT, "onnx: initializer '%s' is defined twice", nm); goto fail; }
    map_put(&map, nm, slot);
    m->init_slot[i] = slot++;
  }
  m->n_in = 0;
  for (size_t i = 0; i < g->n_input; i++) {
    const char *nm = g->input[i]->name;
    if (!nm || !*nm) { cg_fail(CG_ERR_FORMAT, "onnx: graph input %zu has no name", i); goto fail; }
    if (map_get(&map, nm) >= 0) continue; /* an initializer gives its value */
    onnx_io *io = &m->in[m->n_in++];
    io_from_value_info(io, g->input[i]);
    if (io->dtype < 0) {
      cg_fail(CG_ERR_FORMAT, "onnx: graph input '%s' is not a tensor of a supported type (sequence, string, ...)", nm);
      goto fail;
    }
    map_put(&map, nm, slot);
    io->slot = slot++;
  }
  for (size_t i = 0; i < g->n_node; i++) {
    const Onnx__NodeProto *n = g->node[i];
    if (!n->op_type) { cg_fail(CG_ERR_FORMAT, "onnx: node %zu has no op_type", i); goto fail; }
    m->ops[i] = onnx_find_op(n->domain, n->op_type);
    if (!m->ops[i]) {
      if (n->domain && *n->domain && strcmp(n->domain, "ai.onnx") && strcmp(n->domain, ONNX_TRAINING_DOMAIN))
        cg_fail(CG_ERR_FORMAT, "onnx: node %zu %s: domain '%s' is not supported (the default ONNX domain and %s)", i,
                node_label(n, lb, sizeof lb), n->domain, ONNX_TRAINING_DOMAIN);
      else
        cg_fail(CG_ERR_FORMAT, "onnx: node %zu %s: op %s%s%s is not supported", i, node_label(n, lb, sizeof lb),
                n->domain && *n->domain ? n->domain : "", n->domain && *n->domain ? "." : "", n->op_type);
      goto fail;
    }
    for (size_t a = 0; a < n->n_attribute; a++)
      if (n->attribute[a]->g || n->attribute[a]->n_graphs) {
        cg_fail(CG_ERR_FORMAT, "onnx: node %zu %s: subgraph attributes (control flow) are not supported", i,
                node_label(n, lb, sizeof lb));
        goto fail;
      }
    m->node_in[i] = cg_calloc(n->n_input + 1, sizeof(int));
    m->node_out[i] = cg_calloc(n->n_output + 1, sizeof(int));
    if (!m->node_in[i] || !m->node_out[i]) goto fail;
    for (size_t k = 0; k < n->n_input; k++) {
      const char *nm = n->input[k];
      if (!nm || !*nm) { m->node_in[i][k] = -1; continue; }
      int s = map_get(&map, nm);
      if (s < 0) {
        bool later = false;
        for (size_t j = i; j < g->n_node && !later; j++)
          for (size_t o = 0; o < g->node[j]->n_output; o++)
            if (g->node[j]->output[o] && !strcmp(g->node[j]->output[o], nm)) later = true;
        cg_fail(CG_ERR_FORMAT, "onnx: node %zu %s: input %zu '%s' is %s", i, node_label(n, lb, sizeof lb), k, nm,
                later ? "produced by this or a later node (a cycle, or nodes not in topological order)"
                      : "not defined (no graph input, initializer or earlier node output has that name)");
        goto fail;
      }
      m->node_in[i][k] = s;
    }
    for (size_t k = 0; k < n->n_output; k++) {
      const char *nm = n->output[k];
      if (!nm || !*nm) { m->node_out[i][k] = -1; continue; }
      if (map_get(&map, nm) >= 0) {
        cg_fail(CG_ERR_FORMAT, "onnx: node %zu %s: output '%s' is already defined (values are assigned once)", i,
                node_label(n, lb, sizeof lb), nm);
        goto fail;
      }
      map_put(&map, nm, slot);
      m->node_out[i][k] = slot++;
    }
  }
  for (size_t i = 0; i < g->n_output; i++) {
    onnx_io *io = &m->out[i];
    io_from_value_info(io, g->output[i]);
    io->slot = map_get(&map, io->name);
    if (io->slot < 0) { cg_fail(CG_ERR_FORMAT, "onnx: graph output '%s' is not produced by any node", io->name); goto fail; }
  }
  m->n_out = (int)g->n_output;
  m->n_slots = slot;
  free(map.keys);
  free(map.vals);
  return CG_OK;
fail:
  free(map.keys);
  free(map.vals);
  return cg_last_status() ? cg_last_status() : CG_ERR_NOMEM;
}

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
  m->n_nodes = (int)g->n_node;
  if (g->n_node > (1u << 24) || g->n_initializer > (1u << 24)) { cg_fail(CG_ERR_FORMAT, "onnx: graph too large"); goto fail; }
  m->in = cg_calloc(g->n_input + 1, sizeof *m->in);
  m->out = cg_calloc(g->n_output + 1, sizeof *m->out);
  m->init = cg_calloc(g->n_initializer + 1, sizeof *m->init);
  m->init_slot = cg_calloc(g->n_initializer + 1, sizeof *m->init_slot);
  if (!m->in || !m->out || !m->init || !m->init_slot) goto fail;
  m->n_init = (int)g->n_initializer;
  if (check_and_resolve(m) != CG_OK) goto fail;
  for (size_t i = 0; i < g->n_initializer; i++) {
    m->init[i] = onnx_tensor_from_proto(g->initializer[i], m->dir, g->initializer[i]->name);
    if (!m->init[i] || cg_realize(m->init[i]) != CG_OK) goto fail;
  }
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
  for (int i = 0; i < m->n_init; i++) cg_free(m->init[i]);
  if (m->proto && m->proto->graph)
    for (size_t i = 0; i < m->proto->graph->n_node; i++) {
      if (m->node_in) free(m->node_in[i]);
      if (m->node_out) free(m->node_out[i]);
    }
  free(m->node_in);
  free(m->node_out);
  free(m->ops);
  free(m->init);
  free(m->init_slot);
  free(m->in);
  free(m->out);
  free(m->dir);
  if (m->proto) onnx__model_proto__free_unpacked(m->proto, NULL);
  free(m);
}

/* ---- information ---------------------------------------------------------------------- */

int cg_onnx_num_inputs(const cg_onnx_model *m) { return m ? m->n_in : -1; }
int cg_onnx_num_outputs(const cg_onnx_model *m) { return m ? m->n_out : -1; }
const char *cg_onnx_input_name(const cg_onnx_model *m, int i) { return m && i >= 0 && i < m->n_in ? m->in[i].name : NULL; }
const char *cg_onnx_output_name(const cg_onnx_model *m, int i) { return m && i >= 0 && i < m->n_out ? m->out[i].name : NULL; }
static int io_info(const onnx_io *io, cg_dtype *dt, int64_t *shape) {
  if (dt) *dt = (cg_dtype)io->dtype;
  if (shape)
    for (int d = 0; d < io->ndim; d++) shape[d] = io->shape[d];
  return io->ndim;
}
int cg_onnx_input_info(const cg_onnx_model *m, int i, cg_dtype *dt, int64_t *shape) {
  return m && i >= 0 && i < m->n_in ? io_info(&m->in[i], dt, shape) : -1;
}
int cg_onnx_output_info(const cg_onnx_model *m, int i, cg_dtype *dt, int64_t *shape) {
  return m && i >= 0 && i < m->n_out ? io_info(&m->out[i], dt, shape) : -1;
}
int64_t cg_onnx_opset(const cg_onnx_model *m) { return m ? m->opset : -1; }
int cg_onnx_num_nodes(const cg_onnx_model *m) { return m ? m->n_nodes : -1; }
const char *cg_onnx_node_op(const cg_onnx_model *m, int i) {
  return m && i >= 0 && i < m->n_nodes ? m->proto->graph->node[i]->op_type : NULL;
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

cg_status cg_onnx_run(cg_onnx_model *m, cg_tensor *const *inputs, int n_inputs, cg_tensor **outputs, int n_outputs) {
  if (!m) return cg_fail(CG_ERR_INVALID, "onnx_run: model is NULL");
  if (n_inputs != m->n_in || (n_inputs && !inputs))
    return cg_fail(CG_ERR_INVALID, "onnx_run: the model has %d inputs, got %d", m->n_in, n_inputs);
  if (n_outputs != m->n_out || (n_outputs && !outputs))
    return cg_fail(CG_ERR_INVALID, "onnx_run: the model has %d outputs, got room for %d", m->n_out, n_outputs);
  for (int i = 0; i < n_inputs; i++) {
    cg_status st = check_input(&m->in[i], inputs[i], i);
    if (st != CG_OK) return st;
  }
  cg_tensor **vals = cg_calloc((size_t)m->n_slots + 1, sizeof *vals);
  if (!vals) return CG_ERR_NOMEM;
  const Onnx__GraphProto *g = m->proto->graph;
  cg_status st = CG_OK;
  cg_scope_begin();
  for (int i = 0; i < m->n_in; i++) vals[m->in[i].slot] = inputs[i];
  for (int i = 0; i < m->n_init; i++) vals[m->init_slot[i]] = m->init[i];
  cg_tensor *in[64], *out[64];
  for (int i = 0; i < m->n_nodes && st == CG_OK; i++) {
    const Onnx__NodeProto *n = g->node[i];
    onnx_ctx c = {.node = n, .opset = m->opset, .idx = i, .in = in, .out = out};
    if (n->n_input > 64 || n->n_output > 64) { st = onnx_fail(&c, "more than 64 inputs or outputs"); break; }
    c.nin = (int)n->n_input;
    c.nout = (int)n->n_output;
    for (int k = 0; k < c.nin; k++) in[k] = m->node_in[i][k] >= 0 ? vals[m->node_in[i][k]] : NULL;
    for (int k = 0; k < c.nout; k++) out[k] = NULL;
    st = m->ops[i]->fn(&c);
    for (int k = 0; k < c.nout && st == CG_OK; k++) {
      if (m->node_out[i][k] < 0) continue;
      if (!out[k]) st = onnx_fail(&c, "output %d '%s' was not produced", k, n->output[k]);
      else vals[m->node_out[i][k]] = out[k];
    }
  }
  cg_tensor *res[64];
  int nres = 0;
  if (st == CG_OK)
    for (int i = 0; i < m->n_out; i++) {
      cg_tensor *v = vals[m->out[i].slot];
      /* a new handle, so that an output which is an input or initializer is the caller's */
      cg_tensor *r = cg_reshape(v, cg_shape(v), cg_ndim(v));
      if (!r) { st = cg_last_status(); break; }
      if (nres < 64) res[nres++] = r;
      outputs[i] = r;
      cg_keep(r);
    }
  cg_scope_end();
  if (st != CG_OK)
    for (int i = 0; i < nres; i++) cg_free(res[i]);
  free(vals);
  return st;
}
