/* Kernel variables: the values behind tensor-level DEFINE_VAR UOps (ARCHITECTURE §8).
 *
 * A var is a scalar a kernel reads when it runs, never a constant compiled into it: the
 * tensor graph holds DEFINE_VAR(name, [min, max, -id]) (ids never reused, so two vars never
 * intern to one node), the scheduler turns it into a numbered var slot of the kernel, and
 * the engine passes the value in the launch's `vars` array. The value lives here, one
 * 64-bit cell per var (ints as int64, floats as the bits of a double), until the UOp dies. */
#ifndef CG_RUNTIME_VAR_H
#define CG_RUNTIME_VAR_H
#include "uop/uop.h"

/* A new tensor-level var of dtype dt (an int dtype, float32 or float64) holding the
 * value whose 64 bits are `bits` (var_bits_of); ints have bounds [min, max] (floats: 0, 0).
 * NULL + error when out of memory. */
uop *var_new(const char *name, dtype dt, int64_t min, int64_t max, int64_t bits);
/* The id of the last var made (0: none yet): a var u was made after that call when
 * -u->arg.v[2] is larger (the JIT tells the vars a captured call made itself). */
int64_t var_last_id(void);
/* Whether u is a tensor-level var (one made by var_new). */
static inline bool var_is_tensor(const uop *u) { return u && u->op == OP_DEFINE_VAR && u->arg.n == 3 && u->arg.v[2] < 0; }
/* Its value cell (stable while the UOp lives); read and written with the two below. */
int64_t *var_cell(uop *v);
static inline int64_t var_load(const int64_t *cell) { return __atomic_load_n(cell, __ATOMIC_RELAXED); }
static inline void var_store(int64_t *cell, int64_t bits) { __atomic_store_n(cell, bits, __ATOMIC_RELAXED); }
/* The 64 bits a value of dt is held as (a float rounded to its dtype first, as a CONST is
 * read by kernels; an int converted as CAST converts), and back. */
int64_t var_bits_of(dtype dt, double value);
double var_value_of(dtype dt, int64_t bits);
/* A host update of a var's value, as the JIT records and replays it (engine/capture.h):
 * bits' value OP operand (OP_ADD or OP_MUL; operand held as var_bits_of), with the ALU's
 * meaning (ints wrap at dt's width, floats round to dt). */
int64_t var_apply(dtype dt, int64_t bits, int op, int64_t operand);

#endif
