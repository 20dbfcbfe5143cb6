/* Modules: the generic part (state enumeration in torch's state_dict order, train/eval,
 * forward dispatch, freeing) and Sequential. The layer kinds live in layers.c. */
#include "module.h"
#include "core/error.h"
#include "tensor/tensor.h"
#include <stdio.h>
#include <string.h>

cg_module *mod_new(const mod_vt *vt) {
  cg_module *m = cg_calloc(1, sizeof *m);
  if (!m) return NULL;
  m->vt = vt;
  m->training = true;
  return m;
}

static bool push_entry(cg_module *m, char *name, cg_tensor *t, bool param, bool owned) {
  if (!name) return false;
  if (m->nstate == m->capstate) {
    int cap = m->capstate ? 2 * m->capstate : 8;
    mod_entry *s = cg_realloc(m->state, sizeof(mod_entry) * (size_t)cap);
    if (!s) {
      free(name);
      return false;
    }
    m->state = s, m->capstate = cap;
  }
  m->state[m->nstate++] = (mod_entry){name, t, param, owned};
  return true;
}

bool mod_add(cg_module *m, const char *name, cg_tensor *t, bool param) {
  if (!t) return false;
  /* the module owns it: no scope may free it */
  while (t->scope > 0) cg_keep(t);
  if (cg_realize(t) != CG_OK || (param && cg_set_requires_grad(t, true) != CG_OK) || !push_entry(m, cg_strdup(name), t, param, true)) {
    cg_free(t);
    return false;
  }
  return true;
}

cg_tensor *mod_get(cg_module *m, const char *name) {
  for (int i = 0; i < m->nstate; i++)
    if (strcmp(m->state[i].name, name) == 0) return m->state[i].t;
  return NULL;
}

void cg_module_free(cg_module *m) {
  if (!m) return;
  if (m->vt && m->vt->free) m->vt->free(m);
  for (int i = 0; i < m->nchildren; i++) cg_module_free(m->children[i]);
  free(m->children);
  for (int i = 0; i < m->nstate; i++) {
    if (m->state[i].owned) cg_free(m->state[i].t);
    free(m->state[i].name);
  }
  free(m->state);
  free(m);
}

cg_tensor *cg_module_forward(cg_module *m, cg_tensor *x) {
  if (!m) return cg_fail_null(CG_ERR_INVALID, "module_forward: module is NULL");
  if (!x) return cg_fail_null(CG_ERR_INVALID, "module_forward: %s: input is NULL", m->vt->kind);
  return m->vt->forward(m, x);
}

void cg_module_train(cg_module *m, bool on) {
  if (!m) return;
  m->training = on;
  for (int i = 0; i < m->nchildren; i++) cg_module_train(m->children[i], on);
  if (m->vt->train) m->vt->train(m, on);
}

bool cg_module_is_training(const cg_module *m) { return m && m->training; }

const char *cg_module_kind(const cg_module *m) { return m ? m->vt->kind : "(null)"; }

int cg_module_state(cg_module *m, const char **names, cg_tensor **tensors, int max) {
  if (!m) return cg_fail(CG_ERR_INVALID, "module_state: module is NULL");
  for (int i = 0; i < m->nstate && i < max; i++) {
    if (names) names[i] = m->state[i].name;
    if (tensors) tensors[i] = m->state[i].t;
  }
  return m->nstate;
}

int cg_module_parameters(cg_module *m, cg_tensor **out, int max) {
  if (!m) return cg_fail(CG_ERR_INVALID, "module_parameters: module is NULL");
  int n = 0;
  for (int i = 0; i < m->nstate; i++)
    if (m->state[i].param) {
      if (out && n < max) out[n] = m->state[i].t;
      n++;
    }
  return n;
}

int cg_module_named_parameters(cg_module *m, const char **names, cg_tensor **out, int max) {
  if (!m) return cg_fail(CG_ERR_INVALID, "module_named_parameters: module is NULL");
  int n = 0;
  for (int i = 0; i < m->nstate; i++)
    if (m->state[i].param) {
      if (n < max) {
        if (names) names[n] = m->state[i].name;
        if (out) out[n] = m->state[i].t;
      }
      n++;
    }
  return n;
}

/* ---- Sequential -------------------------------------------------------------------- */

static cg_tensor *seq_forward(cg_module *m, cg_tensor *x) {
  if (m->nchildren == 0) return cg_reshape(x, cg_shape(x), cg_ndim(x));
  cg_scope_begin();
  for (int i = 0; i < m->nchildren && x; i++) {
    x = cg_module_forward(m->children[i], x);
    if (!x) {
      char msg[512];
      snprintf(msg, sizeof msg, "%s", cg_last_error());
      cg_fail(cg_last_status(), "Sequential[%d] (%s): %s", i, m->children[i]->vt->kind, msg);
    }
  }
  x = cg_keep(x);
  cg_scope_end();
  return x;
}

static const mod_vt SEQ_VT = {"Sequential", seq_forward, NULL, NULL};

cg_module *cg_sequential(cg_module *const *modules, int n) {
  if (n < 0) return cg_fail_null(CG_ERR_INVALID, "sequential: expected n >= 0 modules, got %d", n);
  if (n > 0 && !modules) return cg_fail_null(CG_ERR_INVALID, "sequential: modules is NULL (with n = %d)", n);
  for (int i = 0; i < n; i++) {
    bool bad = !modules[i];
    for (int j = 0; j < i && !bad; j++) bad = modules[j] == modules[i];
    if (bad) {
      for (int j = 0; j < n; j++) {
        bool dup = false;
        for (int k = 0; k < j; k++) dup |= modules[k] == modules[j];
        if (!dup) cg_module_free(modules[j]);
      }
      return cg_fail_null(CG_ERR_INVALID, "sequential: module %d is %s", i, bad && modules[i] ? "given twice" : "NULL");
    }
  }
  cg_module *m = mod_new(&SEQ_VT);
  if (m && n) m->children = cg_calloc((size_t)n, sizeof(cg_module *));
  if (!m || (n && !m->children)) {
    if (m) free(m);
    for (int i = 0; i < n; i++) cg_module_free(modules[i]);
    return NULL;
  }
  m->nchildren = n;
  for (int i = 0; i < n; i++) m->children[i] = modules[i];
  for (int i = 0; i < n; i++) {
    cg_module *c = modules[i];
    for (int j = 0; j < c->nstate; j++) {
      size_t len = strlen(c->state[j].name) + 16;
      char *name = cg_malloc(len);
      if (name) snprintf(name, len, "%d.%s", i, c->state[j].name);
      if (!push_entry(m, name, c->state[j].t, c->state[j].param, false)) {
        cg_module_free(m);
        return NULL;
      }
    }
  }
  return m;
}
