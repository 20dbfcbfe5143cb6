/* The UOp: cgrad's one IR node. Immutable, hash-consed (same structure => same pointer),
 * reference-counted; a node leaves the intern table when its last reference goes.
 *
 * References: uop_new() returns a reference owned by the innermost *pool* (see
 * uop_pool_push): code that builds graphs never counts references by hand. Whatever must
 * outlive the pool (a tensor's node, a cache entry) is kept with uop_retain() and given
 * back with uop_release(). */
#ifndef CG_UOP_H
#define CG_UOP_H

#include "core/dtype.h"
#include "core/error.h"
#include <stdbool.h>
#include <stdint.h>

typedef enum {
#define OP(name, group, nsrc, dr, flags, doc) OP_##name,
#include "ops.def"
#undef OP
  OP_COUNT
} uop_op;

enum { G_TENSOR, G_MOVE, G_UNARY, G_BINARY, G_TERNARY, G_KERNEL };
enum { F_COMM = 1, F_ASSOC = 2, F_CMP = 4, F_INT = 8, F_EW = 16 };
enum { DR_ANY, DR_SAME, DR_FLOAT, DR_INT, DR_CMP, DR_WHERE, DR_BITCAST, DR_REDUCE, DR_PTR, DR_VOID };

typedef struct {
  const char *name, *doc;
  int group, nsrc, dtype_rule, flags;
} uop_info;
extern const uop_info uop_table[OP_COUNT];

static inline const char *op_name(int op) { return uop_table[op].name; }
static inline bool op_has(int op, int flag) { return (uop_table[op].flags & flag) != 0; }
static inline bool op_is_alu(int op) { int g = uop_table[op].group; return g == G_UNARY || g == G_BINARY || g == G_TERNARY; }
static inline bool op_is_movement(int op) { return uop_table[op].group == G_MOVE; }

/* A typed argument. Ints and strings are copied into the node. */
typedef enum { ARG_NONE, ARG_INT, ARG_FLOAT, ARG_INTS, ARG_STR, ARG_VAR } arg_kind;
typedef struct {
  uint8_t kind;
  int32_t n;          /* ARG_INTS / ARG_VAR: number of ints */
  union {
    int64_t i;        /* ARG_INT */
    double f;         /* ARG_FLOAT */
  };
  const int64_t *v;   /* ARG_INTS (n of them); ARG_VAR: [min, max] */
  const char *s;      /* ARG_STR, ARG_VAR: the name */
} uarg;

static inline uarg arg_none(void) { return (uarg){.kind = ARG_NONE}; }
static inline uarg arg_int(int64_t i) { return (uarg){.kind = ARG_INT, .i = i}; }
static inline uarg arg_float(double f) { return (uarg){.kind = ARG_FLOAT, .f = f}; }
static inline uarg arg_ints(const int64_t *v, int n) { return (uarg){.kind = ARG_INTS, .n = n, .v = v}; }
static inline uarg arg_str(const char *s) { return (uarg){.kind = ARG_STR, .s = s}; }

#define UOP_MAX_DIMS 16

typedef struct uop uop;
struct uop {
  uint16_t op;
  dtype dt;
  uint32_t refcnt;
  uint32_t nsrc;
  uint32_t tsize;       /* size as a tree: 1 + sources' tsize (saturating); "never larger" */
  int32_t ndim;         /* tensor-level shape: number of dims, -1 when the node has none */
  uint64_t hash;
  uop *chain;           /* next node in the intern bucket */
  int64_t vmin, vmax;   /* value bounds of int/bool nodes (dtype range when unknown) */
  const int64_t *shape; /* ndim entries (tensor-level nodes) */
  uarg arg;
  uop *src[];
};

/* ---- building ---------------------------------------------------------------------- */

/* Open / close a pool of references. Nodes built while a pool is open are owned by it;
 * closing it gives them back. Pools nest. */
void uop_pool_push(void);
void uop_pool_pop(void);
/* Hand a reference the caller holds (from uop_retain) to the current pool. */
uop *uop_pool_keep(uop *u);

/* Out of memory in the IR. In a *checked* pool (the tensor layer, autograd) an IR
 * allocation may fail: uop_new returns NULL (CG_ERR_NOMEM recorded), every builder given a
 * NULL source returns NULL, and the failure is counted, so the public call that opened the
 * pool reports CG_ERR_NOMEM even where a NULL was absorbed (a rule that "did not match").
 * In an unchecked pool (the scheduler, codegen, renderer: not yet converted) an IR
 * allocation failure still aborts. */
void uop_pool_push_checked(void);
void uop_pool_push_inherit(void); /* checked when the enclosing pool is */
bool uop_pool_checked(void);
/* An IR allocation failed since the innermost pool was opened. */
bool uop_pool_failed(void);
uint64_t uop_nomem_events(void);
/* Allocation for IR passes: in a checked pool a failure records CG_ERR_NOMEM and returns
 * NULL (ir_realloc leaves the old block alone); elsewhere it aborts. */
void *ir_malloc(size_t n);
void *ir_calloc(size_t n, size_t size);
void *ir_realloc(void *p, size_t n);
/* Whether to fail this IR allocation on purpose (allocation-failure tests, core/fault.h). */
bool uop_inject_fault(void);

/* The node (op, dtype, sources, arg), shared if it exists. Owned by the current pool. */
uop *uop_new(int op, dtype dt, uop *const *src, int nsrc, uarg arg);
uop *uop_new0(int op, dtype dt, uarg arg);
uop *uop_new1(int op, dtype dt, uop *a, uarg arg);
uop *uop_new2(int op, dtype dt, uop *a, uop *b);
uop *uop_new3(int op, dtype dt, uop *a, uop *b, uop *c);
/* The same node with other sources (same op, dtype, arg). */
uop *uop_replace_src(uop *u, uop *const *src, int nsrc);

/* Shorthands for ALU graphs: dtype taken from the first operand. */
uop *uop_const_int(dtype dt, int64_t v);
uop *uop_const_float(dtype dt, double v);
uop *uop_const_like(uop *like, double v); /* int or float by like's dtype */
uop *uop_var(const char *name, int64_t min, int64_t max);  /* an int32 DEFINE_VAR */
uop *uop_alu(int op, uop *a, uop *b);      /* binary; CMP ops give bool */
uop *uop_alu1(int op, uop *a);
uop *uop_where(uop *c, uop *a, uop *b);

/* ---- references --------------------------------------------------------------------- */
uop *uop_retain(uop *u);
void uop_release(uop *u);

/* Call fn(u) when a node of this op is freed (e.g. BUFFER: give its memory back). fn runs
 * with the intern table locked: it must not build or release UOps. */
void uop_set_free_hook(int op, void (*fn)(uop *u));

/* ---- inspection --------------------------------------------------------------------- */
static inline bool uop_is_const(const uop *u) { return u->op == OP_CONST; }
/* Value of a CONST as double / int64 (converted as C converts). */
double uop_const_value(const uop *u);
int64_t uop_const_ivalue(const uop *u);
/* Number of live interned nodes (for tests and leak checks). */
size_t uop_live_count(void);
/* Number of distinct nodes reachable from u (its DAG size). */
size_t uop_dag_size(uop *u);
bool uarg_eq(const uarg *a, const uarg *b);

/* ---- printing and checking ---------------------------------------------------------- */
/* Print u as an indented tree; a node used more than once is printed in full the first
 * time as `nK = ...` and afterwards as `^nK`. */
void uop_print(FILE *f, uop *u);
/* Same into a malloc'd string (caller frees). */
char *uop_to_string(uop *u);
/* One line: "ADD int32 (2 src) arg". */
void uop_print_node(FILE *f, const uop *u);
/* Check one node against the op table (source count, dtype rules). Returns NULL if fine,
 * else a static message. Debug builds run it on every new node. */
const char *uop_check(int op, dtype dt, uop *const *src, int nsrc, const uarg *arg);

/* bounds.c: vmin/vmax of a new node from its sources (ints and bools). */
void uop_compute_bounds(uop *u);
/* Whether the node's exact integer range fits its dtype (no wrap-around possible). */
bool uop_fits(const uop *u);
/* Whether u reads r (u is r, or r is below it; not through a DEFINE_GLOBAL). memo (a
 * uopset kept across calls with the same r): 1 no, 2 yes. */
struct uopset;
bool uop_depends(uop *u, uop *r, struct uopset *memo);

/* alu.c: evaluate an ALU op on constant operands. Ints wrap at the dtype's width, IDIV
 * and MOD truncate (division by zero gives 0). Returns false for non-ALU ops. */
bool alu_eval_int(int op, dtype dt, const int64_t *x, int n, int64_t *out);
bool alu_eval_float(int op, dtype dt, const double *x, int n, double *out);
/* Round a double to the nearest value a float dtype holds (ties to even). */
double alu_round(dtype dt, double v);
/* Wrap an int64 into the dtype's range (two's complement). */
int64_t alu_wrap(dtype dt, int64_t v);
/* CAST float -> int (or bool): saturating, NaN gives 0 (bool: v != 0). */
int64_t alu_float_to_int(dtype to, double v);
/* CAST int (held as in alu_eval_int) -> float: one rounding to float64 or float32, then
 * to the format. */
double alu_int_to_float(dtype to, dtype from, int64_t v);

#endif
