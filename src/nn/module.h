/* Inside a cg_module: a vtable (what differs per layer kind) plus data every module has
 * the same way (its state entries in torch's state_dict order, children, train flag), so
 * enumeration, mode switching and freeing are written once (module.c). */
#ifndef CG_NN_MODULE_H
#define CG_NN_MODULE_H
#include "cgrad.h"

typedef struct {
  char *name;    /* "weight", or "0.weight" inside a Sequential */
  cg_tensor *t;
  bool param;    /* trainable parameter (else a buffer such as running_mean) */
  bool owned;    /* this module frees t (a Sequential only borrows its children's) */
} mod_entry;

typedef struct {
  const char *kind;                                  /* torch's class name, e.g. "Conv2d" */
  cg_tensor *(*forward)(cg_module *m, cg_tensor *x); /* a new tensor, or NULL + error */
  void (*train)(cg_module *m, bool on);              /* optional: after m->training is set */
  void (*free)(cg_module *m);                        /* optional: extra cleanup */
} mod_vt;

/* Per-kind numbers (spatial arrays hold 2 entries for the 2d layers). */
typedef struct {
  int64_t in, out, kernel[2], stride[2], padding[2], out_padding[2], dilation[2], groups;
  int64_t shape[CG_MAX_DIMS];
  int nshape;
  double eps, momentum, p;
  bool sync; /* BatchNorm: statistics over every rank's batch (cg_module_sync_batchnorm) */
} mod_cfg;

struct cg_module {
  const mod_vt *vt;
  bool training;
  mod_cfg cfg;
  mod_entry *state;
  int nstate, capstate;
  cg_module **children;
  int nchildren;
};

/* A new module of kind vt (training mode), or NULL + CG_ERR_NOMEM. */
cg_module *mod_new(const mod_vt *vt);
/* Add an owned state entry; t is moved out of every scope. false + error if t is NULL. A
 * parameter is realized and marked requires_grad; a buffer is realized. */
bool mod_add(cg_module *m, const char *name, cg_tensor *t, bool param);
/* The tensor of a state entry by local name (NULL if absent). */
cg_tensor *mod_get(cg_module *m, const char *name);

#endif
