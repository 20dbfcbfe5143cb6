/* cgrad.h — the public API of cgrad, a lazy tensor compiler in C11.
 *
 * Conventions (see ARCHITECTURE §10):
 *   - every public name starts with cg_; handles are opaque.
 *   - a failing call returns NULL (or a negative cg_status) and records a message that
 *     cg_last_error() returns; no call ever aborts the host program on bad input.
 *
 * Threads. Every function may be called from any thread. Per thread: the last error, the
 * scope stack (free a tensor on the thread that made it) and the random generator
 * (cg_manual_seed seeds the calling thread's; a thread that never seeds starts at seed 0).
 * Shared, and safe to use at once: the graph store, buffers, the kernel caches, knobs and
 * the counters of cg_get_stats. The contract: tensors, modules, optimizers and batchers
 * used by one thread at a time work on any number of threads, and a thread that seeds its
 * own generator gets the same bits on every run whatever the other threads do. Using one
 * tensor (or anything built on it) from two threads at once is not supported: hand it over
 * with your own synchronization. Kernels themselves run on CG_THREADS worker threads.
 */
#ifndef CGRAD_H
#define CGRAD_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CG_VERSION "0.1.0"

/* ---- errors ------------------------------------------------------------------------ */

typedef enum {
  CG_OK = 0,
  CG_ERR_INVALID = -1,  /* bad argument: shape, dtype, axis, NULL handle */
  CG_ERR_IO = -2,       /* a file could not be read or written */
  CG_ERR_FORMAT = -3,   /* a file's contents are not what its format requires */
  CG_ERR_NOMEM = -4,    /* an allocation failed */
  CG_ERR_RUNTIME = -5,  /* compiling or running a kernel failed */
} cg_status;

/* The message of the last failure on this thread ("" if none). Valid until the next call. */
const char *cg_last_error(void);
/* The status code of the last failure on this thread (CG_OK if none). */
cg_status cg_last_status(void);
/* Forget the last failure. */
void cg_clear_error(void);

/* ---- configuration ------------------------------------------------------------------ */

/* Knobs follow tinygrad's environment-variable habit: DEBUG, BEAM, NOOPT, CG_THREADS,
 * CG_CC ... Each is read from the environment unless set here; a value set here wins. */
cg_status cg_set_config(const char *name, const char *value);
/* The current value of a knob (set here or in the environment), or NULL if unset. */
const char *cg_get_config(const char *name);

/* ---- dtypes -------------------------------------------------------------------------- */

#define CG_DTYPES(X)                                   \
  X(BOOL, bool) X(INT8, int8) X(INT16, int16)          \
  X(INT32, int32) X(INT64, int64) X(UINT8, uint8)      \
  X(UINT16, uint16) X(UINT32, uint32) X(UINT64, uint64) \
  X(FLOAT16, float16) X(BFLOAT16, bfloat16)            \
  X(FLOAT32, float32) X(FLOAT64, float64)              \
  X(FP8E4M3, fp8e4m3) X(FP8E5M2, fp8e5m2)

typedef enum {
#define CG_DT_ENUM_(N, n) CG_##N,
  CG_DTYPES(CG_DT_ENUM_)
#undef CG_DT_ENUM_
  CG_NUM_DTYPES
} cg_dtype;

/* Bytes per element, e.g. 2 for CG_BFLOAT16. 0 for an invalid dtype. */
size_t cg_dtype_size(cg_dtype dt);
/* Lower-case name, e.g. "float32". "invalid" for an invalid dtype. */
const char *cg_dtype_name(cg_dtype dt);

/* Correctly rounded (round-to-nearest-even) conversions between float32 and the small
 * float formats. fp8 e4m3 saturates to ±448 and has no infinity; e5m2 overflows to ±inf. */
uint16_t cg_f32_to_f16(float x);
float cg_f16_to_f32(uint16_t h);
uint16_t cg_f32_to_bf16(float x);
float cg_bf16_to_f32(uint16_t h);
uint8_t cg_f32_to_fp8e4m3(float x);
float cg_fp8e4m3_to_f32(uint8_t b);
uint8_t cg_f32_to_fp8e5m2(float x);
float cg_fp8e5m2_to_f32(uint8_t b);

/* ---- tensors ------------------------------------------------------------------------
 * A cg_tensor is a lazy value: operations build a graph and return at once; nothing runs
 * until a value is needed (cg_realize, cg_item, cg_read). Every op returns a new tensor
 * or NULL on bad input (cg_last_error says why); an op given a NULL tensor returns NULL,
 * so a chain can be checked once at its end. Shapes are int64 arrays of up to
 * CG_MAX_DIMS dims; a 0-d tensor is a scalar. Broadcasting and type promotion follow
 * NumPy/PyTorch: bool < integers < floats, the wider of two kinds wins, and an integer
 * with a float gives the float (or float32 for a weak scalar, see cg_scalar). */

#define CG_MAX_DIMS 8
typedef struct cg_tensor cg_tensor;

/* Creation. Data is copied; shape has ndim entries. */
cg_tensor *cg_from_data(const void *data, cg_dtype dt, const int64_t *shape, int ndim);
cg_tensor *cg_empty(cg_dtype dt, const int64_t *shape, int ndim);
cg_tensor *cg_zeros(cg_dtype dt, const int64_t *shape, int ndim);
cg_tensor *cg_ones(cg_dtype dt, const int64_t *shape, int ndim);
cg_tensor *cg_full(double value, cg_dtype dt, const int64_t *shape, int ndim);
/* A 0-d "weak" scalar: in a binary op it takes the other operand's dtype (like a Python
 * number in PyTorch), except that a float scalar with an integer tensor gives float32. */
cg_tensor *cg_scalar(double value);
/* A kernel variable: a 0-d tensor of dtype dt (CG_FLOAT32, CG_FLOAT64, CG_INT32 or
 * CG_INT64) whose value kernels read when they run, never a constant compiled into them
 * (tinygrad's Variable). Graphs that differ only in a var's value are the same kernels, so
 * a learning rate or step counter that changes every step compiles nothing and fills no
 * buffer. A kernel reads the value the var has when the kernel runs (cg_realize, a JIT
 * replay), not when the graph was built. A float var holds its value rounded to dt, as a
 * constant of dt would be. name: 1 to 32 letters, digits, '_' or '.' (shown in kernels and
 * DEBUG output). Unlike cg_scalar it is not weak: it has dt in type promotion. */
cg_tensor *cg_variable(const char *name, double value, cg_dtype dt);
/* An int32 var with bounds min <= value <= max, which index math may use; setting it
 * outside them fails. */
cg_tensor *cg_variable_int(const char *name, int64_t value, int64_t min, int64_t max);
/* Set a var's value (an int var: an integer within its bounds): no kernel runs, nothing
 * compiles. CG_ERR_INVALID for a tensor that is not a var (a view of one included). */
cg_status cg_variable_set(cg_tensor *var, double value);
/* Its value now (NaN, with an error, for a tensor that is not a var). */
double cg_variable_get(const cg_tensor *var);
bool cg_is_variable(const cg_tensor *t);
cg_tensor *cg_arange(double start, double stop, double step, cg_dtype dt);
cg_tensor *cg_linspace(double start, double stop, int64_t steps, cg_dtype dt);
cg_tensor *cg_eye(int64_t n, cg_dtype dt);
/* Random tensors from a counter-based generator (Threefry-2x32): the same seed gives the
 * same bits on every run and device. Each call advances the generator's counter. The
 * generator belongs to the calling thread (see Threads above). */
void cg_manual_seed(uint64_t seed);
/* The calling thread's generator position, to save with a checkpoint and restore (so a
 * resumed run draws what the uninterrupted one would). */
void cg_rng_get(uint64_t *seed, uint64_t *counter);
void cg_rng_set(uint64_t seed, uint64_t counter);
cg_tensor *cg_rand(cg_dtype dt, const int64_t *shape, int ndim);                /* U[0, 1) */
cg_tensor *cg_randn(cg_dtype dt, const int64_t *shape, int ndim);               /* N(0, 1) */
cg_tensor *cg_uniform(double lo, double hi, cg_dtype dt, const int64_t *shape, int ndim);
cg_tensor *cg_randint(int64_t lo, int64_t hi, const int64_t *shape, int ndim);  /* int32 in [lo, hi) */
/* torch.multinomial: probs (C,) or (B, C) of non-negative weights (need not sum to 1);
 * gives int64 (num_samples,) or (B, num_samples) category indices. With replacement each
 * sample is an inverse-CDF draw; without, the first num_samples of the exponential race
 * (the same law as drawing one at a time and renormalizing; categories of weight 0 come
 * last, num_samples <= C). The uniforms come from Threefry keyed by seed alone, so the
 * same seed and probabilities give the same samples on every run and thread count, and
 * the global generator (cg_manual_seed) is not advanced. */
cg_tensor *cg_multinomial(cg_tensor *probs, int64_t num_samples, bool replacement, uint64_t seed);

/* Properties. */
int cg_ndim(const cg_tensor *t);
const int64_t *cg_shape(const cg_tensor *t);
int64_t cg_numel(const cg_tensor *t);
cg_dtype cg_dtype_of(const cg_tensor *t);

/* Elementwise, unary. */
cg_tensor *cg_neg(cg_tensor *a);
cg_tensor *cg_abs(cg_tensor *a);
cg_tensor *cg_exp(cg_tensor *a);
cg_tensor *cg_log(cg_tensor *a);
cg_tensor *cg_exp2(cg_tensor *a);
cg_tensor *cg_log2(cg_tensor *a);
cg_tensor *cg_sqrt(cg_tensor *a);
cg_tensor *cg_rsqrt(cg_tensor *a);
cg_tensor *cg_reciprocal(cg_tensor *a);
cg_tensor *cg_sin(cg_tensor *a);
cg_tensor *cg_cos(cg_tensor *a);
cg_tensor *cg_tan(cg_tensor *a);
cg_tensor *cg_tanh(cg_tensor *a);
cg_tensor *cg_sigmoid(cg_tensor *a);
cg_tensor *cg_relu(cg_tensor *a);
/* GELU, exact: x/2 * (1 + erf(x/sqrt 2)), torch's default F.gelu. */
cg_tensor *cg_gelu(cg_tensor *a);
/* GELU, tanh approximation: F.gelu(x, approximate='tanh'). */
cg_tensor *cg_gelu_tanh(cg_tensor *a);
/* Error function: float32 to about 1 ulp (float16/bfloat16 computed in float32), float64
 * to < 2e-15 relative. */
cg_tensor *cg_erf(cg_tensor *a);
/* log(1 + x) and exp(x) - 1, accurate for small x. */
cg_tensor *cg_log1p(cg_tensor *a);
cg_tensor *cg_expm1(cg_tensor *a);
/* As F.softplus: log(1 + exp(beta*x)) / beta, and x where beta*x > threshold (typical:
 * beta 1, threshold 20). beta must be finite and nonzero. */
cg_tensor *cg_softplus(cg_tensor *a, double beta, double threshold);
cg_tensor *cg_silu(cg_tensor *a);
cg_tensor *cg_floor(cg_tensor *a);
cg_tensor *cg_ceil(cg_tensor *a);
cg_tensor *cg_round(cg_tensor *a);  /* half to even, as PyTorch */
cg_tensor *cg_sign(cg_tensor *a);
cg_tensor *cg_logical_not(cg_tensor *a);

/* Elementwise, binary (broadcasting). Comparisons and logical ops give bool. */
cg_tensor *cg_add(cg_tensor *a, cg_tensor *b);
cg_tensor *cg_sub(cg_tensor *a, cg_tensor *b);
cg_tensor *cg_mul(cg_tensor *a, cg_tensor *b);
cg_tensor *cg_div(cg_tensor *a, cg_tensor *b);    /* true division: integers give float32 */
cg_tensor *cg_idiv(cg_tensor *a, cg_tensor *b);   /* integer division truncating toward zero */
cg_tensor *cg_pow(cg_tensor *a, cg_tensor *b);
cg_tensor *cg_maximum(cg_tensor *a, cg_tensor *b);
cg_tensor *cg_minimum(cg_tensor *a, cg_tensor *b);
cg_tensor *cg_lt(cg_tensor *a, cg_tensor *b);
cg_tensor *cg_le(cg_tensor *a, cg_tensor *b);
cg_tensor *cg_gt(cg_tensor *a, cg_tensor *b);
cg_tensor *cg_ge(cg_tensor *a, cg_tensor *b);
cg_tensor *cg_eq(cg_tensor *a, cg_tensor *b);
cg_tensor *cg_ne(cg_tensor *a, cg_tensor *b);
cg_tensor *cg_logical_and(cg_tensor *a, cg_tensor *b);
cg_tensor *cg_logical_or(cg_tensor *a, cg_tensor *b);
cg_tensor *cg_logical_xor(cg_tensor *a, cg_tensor *b);
cg_tensor *cg_where(cg_tensor *cond, cg_tensor *a, cg_tensor *b);
cg_tensor *cg_clamp(cg_tensor *a, double lo, double hi);
/* torch.masked_fill: value where mask (bool, broadcast to a's shape) is true, a elsewhere. */
cg_tensor *cg_masked_fill(cg_tensor *a, cg_tensor *mask, double value);
cg_tensor *cg_cast(cg_tensor *a, cg_dtype dt);
cg_tensor *cg_bitcast(cg_tensor *a, cg_dtype dt); /* same element size */

/* Movement (views: no copy, no kernel). Negative dims count from the end. */
cg_tensor *cg_reshape(cg_tensor *a, const int64_t *shape, int ndim); /* one entry may be -1 */
cg_tensor *cg_permute(cg_tensor *a, const int *perm, int ndim);
cg_tensor *cg_transpose(cg_tensor *a, int dim0, int dim1);
cg_tensor *cg_expand(cg_tensor *a, const int64_t *shape, int ndim);  /* -1 keeps a dim */
/* pads: [before0, after0, before1, after1, ...] for every dim. */
cg_tensor *cg_pad(cg_tensor *a, const int64_t *pads, double value);
/* box: [begin0, end0, begin1, end1, ...] for every dim. */
cg_tensor *cg_shrink(cg_tensor *a, const int64_t *box);
/* Python-style slice a[start:stop:step] on one dim (negative indices count from the end). */
cg_tensor *cg_slice(cg_tensor *a, int dim, int64_t start, int64_t stop, int64_t step);
/* Views at a kernel-variable offset (var: a cg_variable_int), so one compiled kernel serves
 * every offset: cg_slice_var takes a[.., off : off + length, ..] on dim with off = mult *
 * var; cg_pad_var places a at that offset in `size` zeros along dim (its gradient is the
 * slice, and the slice's the pad). Every value in the var's [min, max] must keep the view in
 * bounds (checked here). */
cg_tensor *cg_slice_var(cg_tensor *a, int dim, cg_tensor *var, int64_t mult, int64_t length);
cg_tensor *cg_pad_var(cg_tensor *a, int dim, cg_tensor *var, int64_t mult, int64_t size);
cg_tensor *cg_flip(cg_tensor *a, const int *dims, int ndims);
cg_tensor *cg_squeeze(cg_tensor *a, int dim);
cg_tensor *cg_unsqueeze(cg_tensor *a, int dim);
cg_tensor *cg_flatten(cg_tensor *a, int start_dim, int end_dim);
cg_tensor *cg_cat(cg_tensor *const *ts, int n, int dim);
cg_tensor *cg_stack(cg_tensor *const *ts, int n, int dim);
/* Split into pieces of `size` along dim (the last may be smaller); writes up to max_out
 * tensors to out and returns how many pieces there are (-1 on error). */
int cg_split(cg_tensor *a, int64_t size, int dim, cg_tensor **out, int max_out);
int cg_chunk(cg_tensor *a, int chunks, int dim, cg_tensor **out, int max_out);
cg_tensor *cg_repeat(cg_tensor *a, const int64_t *repeats, int ndim);
/* torch.triu / torch.tril on the last two dims (>= 2 dims): keep the elements with
 * col - row >= diagonal (triu) or <= diagonal (tril), zeros elsewhere. */
cg_tensor *cg_triu(cg_tensor *a, int64_t diagonal);
cg_tensor *cg_tril(cg_tensor *a, int64_t diagonal);
cg_tensor *cg_contiguous(cg_tensor *a);
cg_tensor *cg_detach(cg_tensor *a);
/* In-place update: dst takes the value of src (broadcast to dst's shape, cast to its
 * dtype) in dst's own buffer, lazily: it is written when dst is next realized, by a kernel
 * that fuses src's computation (an optimizer step is one kernel per parameter). dst is
 * realized first if it is not a buffer yet. Lazy tensors that read dst's old value and
 * are realized after it see the new value: realize them first.
 * dst may also be a view of a realized buffer that maps its elements one to one (reshape,
 * slice with step 1, cg_slice_var at a kernel-variable offset, permute, flip): then only
 * that part of the buffer is written, in place, and every tensor over the buffer sees it
 * once dst is realized. src may read the part it overwrites (element for element: x[r] =
 * x[r] + y); other reads of that buffer are realized apart first, as the old value.
 * Assigns to several parts of one buffer realized together run in the order they were
 * built when they depend on one another, else in any order: parts that overlap should be
 * realized one at a time. */
cg_status cg_assign(cg_tensor *dst, cg_tensor *src);

/* Reductions over `axes` (naxes == 0: all axes); keepdim keeps reduced dims as size 1. */
cg_tensor *cg_sum(cg_tensor *a, const int *axes, int naxes, bool keepdim);
cg_tensor *cg_prod(cg_tensor *a, const int *axes, int naxes, bool keepdim);
cg_tensor *cg_max(cg_tensor *a, const int *axes, int naxes, bool keepdim);
cg_tensor *cg_min(cg_tensor *a, const int *axes, int naxes, bool keepdim);
cg_tensor *cg_mean(cg_tensor *a, const int *axes, int naxes, bool keepdim);
cg_tensor *cg_var(cg_tensor *a, const int *axes, int naxes, int correction, bool keepdim);
cg_tensor *cg_std(cg_tensor *a, const int *axes, int naxes, int correction, bool keepdim);
cg_tensor *cg_any(cg_tensor *a, const int *axes, int naxes, bool keepdim);
cg_tensor *cg_all(cg_tensor *a, const int *axes, int naxes, bool keepdim);
cg_tensor *cg_logsumexp(cg_tensor *a, const int *axes, int naxes, bool keepdim);
/* Index (int32) of the first max / min along one axis. */
cg_tensor *cg_argmax(cg_tensor *a, int axis, bool keepdim);
cg_tensor *cg_argmin(cg_tensor *a, int axis, bool keepdim);
cg_tensor *cg_cumsum(cg_tensor *a, int axis);
cg_tensor *cg_softmax(cg_tensor *a, int axis);
cg_tensor *cg_log_softmax(cg_tensor *a, int axis);
/* torch.sort / torch.topk along dim: values (a's dtype, differentiable) and indices
 * (int64) in *values / *indices (either may be NULL, not both; new tensors). The order is
 * stable (ties keep their index order) and NaN counts as the largest value. topk takes
 * 0 <= k <= size of dim and is always sorted (the flag is accepted for torch's signature).
 * Work is O(n^2) per row of n (O(k n) for topk) in fused kernels, memory O(n): sized for
 * vocabulary-length rows, not for millions of keys. */
cg_status cg_sort(cg_tensor *a, int dim, bool descending, cg_tensor **values, cg_tensor **indices);
cg_status cg_topk(cg_tensor *a, int64_t k, int dim, bool largest, bool sorted, cg_tensor **values, cg_tensor **indices);

/* Linear algebra: matmul as numpy.matmul (batched, broadcasting, 1-d promoted). */
cg_tensor *cg_matmul(cg_tensor *a, cg_tensor *b);
cg_tensor *cg_dot(cg_tensor *a, cg_tensor *b); /* 1-d · 1-d */

/* Indexing: torch.gather and torch.index_select (index is an integer tensor). */
cg_tensor *cg_gather(cg_tensor *a, int dim, cg_tensor *index);
cg_tensor *cg_index_select(cg_tensor *a, int dim, cg_tensor *index);

/* Running and reading. */
cg_status cg_realize(cg_tensor *t);
/* Realize n tensors (any number) in one schedule. */
cg_status cg_realize_many(cg_tensor *const *ts, int n);
/* x computed now and stored: a new tensor whose value is the stored result (later graphs
 * read it instead of computing x again) and whose gradient flows to x's graph. For a value
 * that several eager realizes would otherwise each recompute (a transformer's residual
 * stream between blocks, when attention realizes per key block). NULL and an error if the
 * realize fails. */
cg_tensor *cg_realize_stored(cg_tensor *x);
/* The same with the value given: a tensor that reads `value` (x's value, computed by the
 * caller, e.g. in one cg_realize_many with other tensors; realized here if it is not) and
 * whose gradient flows to x's graph. An activation stored with its input: v = detach(h),
 * y = gelu(v) realized together, then cg_stored(y, cg_gelu(cg_stored(v, h))): the
 * backward reads v instead of computing h again. Same dtype and shape, else NULL. */
cg_tensor *cg_stored(cg_tensor *value, cg_tensor *x);
/* The value of a one-element tensor as double (NaN and an error if not one element). */
double cg_item(cg_tensor *t);
/* Copy the (realized) contents to dst, row-major. dt must be the tensor's dtype and
 * nbytes its size in bytes; otherwise an error naming both. */
cg_status cg_read(cg_tensor *t, cg_dtype dt, void *dst, size_t nbytes);

/* Memory. cg_free drops one tensor. A scope frees every tensor created inside it when it
 * ends, except those passed to cg_keep (which then belong to the enclosing scope, or to
 * the caller at top level). Scopes nest. A handle is dead once freed, by cg_free or by
 * the end of its scope: freeing it again (or using it) is a use-after-free, as with free();
 * cg_free(NULL) does nothing. */
void cg_free(cg_tensor *t);
void cg_scope_begin(void);
void cg_scope_end(void);
cg_tensor *cg_keep(cg_tensor *t);

/* Autograd (reverse mode, lazy). Mark the leaves to differentiate with
 * cg_set_requires_grad (floating-point tensors only; a still-lazy tensor is realized into
 * storage of its own, so that two equal constants are two parameters). cg_backward(loss)
 * adds d(loss)/d(leaf) to the gradient of every tensor that requires grad and is in loss's
 * graph (zeros when it is there but no gradient flows to it, e.g. only through a
 * comparison); gradients accumulate across calls until cg_zero_grad. Backward builds lazy
 * graphs and runs nothing: the gradient is computed when it is read or realized. Reading
 * the loss first is fine (loss.item(); loss.backward()): a realized one-element float tensor
 * computed from tensors that require grad keeps its graph until its first backward (as
 * torch without retain_graph) or until it is freed; any other realized tensor is a leaf.
 * Semantics at kinks are PyTorch's: relu'(0) = 0, |x|'(0) = 0, clamp passes the gradient at
 * its bounds, max/min reductions split it equally among ties (torch.amax), maximum splits
 * it in halves on a tie (torch.maximum), sqrt'(0) = log'(0) = inf. */
cg_status cg_set_requires_grad(cg_tensor *t, bool on);
/* loss must have one element and a floating-point dtype (else an error naming both). */
cg_status cg_backward(cg_tensor *loss);
/* Backward from any floating-point output given d(something)/d(out) (out's shape). */
cg_status cg_backward_with(cg_tensor *out, cg_tensor *grad_out);
/* The accumulated gradient of t (t's shape and dtype), or NULL before any backward reached
 * it. It belongs to t: the handle stays valid until t is freed (do not free it). */
cg_tensor *cg_grad(cg_tensor *t);
/* Reset t's gradient to zeros (the handle from cg_grad stays valid). */
void cg_zero_grad(cg_tensor *t);

/* ---- nn: layers and losses ---------------------------------------------------------- */
/* Functional ops. They are built from the tensor ops above, so autograd covers them, and
 * follow PyTorch (torch.nn.functional) in shapes and semantics: channels first, x is
 * (N, C, spatial...) or, for convs and pools, unbatched (C, spatial...). Array arguments
 * have one entry per spatial dim; NULL means the default (stride 1 for convs and the
 * kernel for pools, padding 0, dilation 1). Bad shapes fail with a message naming them. */

/* Convolution: x (N, Cin, *in), w (Cout, Cin/groups, *kernel), b (Cout,) or NULL; gives
 * (N, Cout, *out) with out = (in + 2*padding - dilation*(kernel-1) - 1) / stride + 1. */
cg_tensor *cg_conv1d(cg_tensor *x, cg_tensor *w, cg_tensor *b, const int64_t *stride, const int64_t *padding,
                     const int64_t *dilation, int64_t groups);
cg_tensor *cg_conv2d(cg_tensor *x, cg_tensor *w, cg_tensor *b, const int64_t *stride, const int64_t *padding,
                     const int64_t *dilation, int64_t groups);
cg_tensor *cg_conv3d(cg_tensor *x, cg_tensor *w, cg_tensor *b, const int64_t *stride, const int64_t *padding,
                     const int64_t *dilation, int64_t groups);
/* Transposed convolution (the gradient of a convolution w.r.t. its input): x (N, Cin, *in),
 * w (Cin, Cout/groups, *kernel), b (Cout,) or NULL; out = (in-1)*stride - 2*padding +
 * dilation*(kernel-1) + output_padding + 1, output_padding < stride or < dilation. */
cg_tensor *cg_conv_transpose1d(cg_tensor *x, cg_tensor *w, cg_tensor *b, const int64_t *stride, const int64_t *padding,
                               const int64_t *output_padding, const int64_t *dilation, int64_t groups);
cg_tensor *cg_conv_transpose2d(cg_tensor *x, cg_tensor *w, cg_tensor *b, const int64_t *stride, const int64_t *padding,
                               const int64_t *output_padding, const int64_t *dilation, int64_t groups);
cg_tensor *cg_conv_transpose3d(cg_tensor *x, cg_tensor *w, cg_tensor *b, const int64_t *stride, const int64_t *padding,
                               const int64_t *output_padding, const int64_t *dilation, int64_t groups);
/* Pooling over the last 2 dims of x (N, C, H, W) or (C, H, W); kernel[2] is required,
 * padding at most kernel/2. Max pads with -inf (its gradient splits equally among tied
 * maxima, as cg_max; torch picks one). Avg counts the zero padding (torch's default
 * count_include_pad=True). */
cg_tensor *cg_max_pool2d(cg_tensor *x, const int64_t *kernel, const int64_t *stride, const int64_t *padding);
cg_tensor *cg_avg_pool2d(cg_tensor *x, const int64_t *kernel, const int64_t *stride, const int64_t *padding);

/* Batch norm over x (N, C, ...): weight, bias, running_mean, running_var are (C,) or NULL.
 * Training normalizes with the batch mean and biased variance and, where running stats are
 * given, updates them in place lazily (cg_assign): r = (1-momentum)*r + momentum*batch_stat,
 * with the unbiased variance. Realize the running stats in the same cg_realize_many as the
 * step's loss and gradients (cg_module_state lists them): the batch statistics are then
 * computed once, fused with the forward; left pending, the next step's update realizes
 * them and runs that part of the previous forward again. Evaluation (training false)
 * normalizes with the running stats. */
cg_tensor *cg_batch_norm(cg_tensor *x, cg_tensor *running_mean, cg_tensor *running_var, cg_tensor *weight, cg_tensor *bias,
                         bool training, double momentum, double eps);
/* cg_batch_norm whose training statistics are those of every rank's batch together
 * (torch's SyncBatchNorm; collectives over MPI, see "distributed" below): N ranks with
 * batch B train as one process with batch N*B. Realizes x, then allreduces the
 * per-channel sums in the forward (two passes: mean, then squared deviations) and the
 * per-channel sums of g and g*xhat in the backward; so every rank must run it in the same
 * order. Its weight and bias gradients are this rank's share (average them over ranks
 * with the other gradients). Evaluation mode is cg_batch_norm's. float32/float64. */
cg_tensor *cg_sync_batch_norm(cg_tensor *x, cg_tensor *running_mean, cg_tensor *running_var, cg_tensor *weight, cg_tensor *bias,
                              bool training, double momentum, double eps);
/* Normalize over the last n dims, which must equal normalized_shape; weight and bias have
 * that shape or are NULL. rms_norm: x / sqrt(mean(x^2) + eps) * weight. */
cg_tensor *cg_layer_norm(cg_tensor *x, const int64_t *normalized_shape, int n, cg_tensor *weight, cg_tensor *bias, double eps);
cg_tensor *cg_rms_norm(cg_tensor *x, const int64_t *normalized_shape, int n, cg_tensor *weight, double eps);
/* x (N, C, ...) normalized within each of `groups` groups of channels; weight, bias (C,). */
cg_tensor *cg_group_norm(cg_tensor *x, int64_t groups, cg_tensor *weight, cg_tensor *bias, double eps);
/* Rows of weight (num, dim) picked by the integer tensor idx: (*idx.shape, dim). An index out
 * of range gives a row of zeros (no check: idx is lazy). */
cg_tensor *cg_embedding_fn(cg_tensor *idx, cg_tensor *weight);
/* Training: zero each element with probability p (a Bernoulli mask from cg_rand) and scale
 * the rest by 1/(1-p). Not training (or p == 0): x itself (a new handle). */
cg_tensor *cg_dropout_fn(cg_tensor *x, double p, bool training);
/* x (..., in) @ w(out, in)^T + b (out,) (b may be NULL). */
cg_tensor *cg_linear_fn(cg_tensor *x, cg_tensor *w, cg_tensor *b);

/* Attention, as torch.nn.functional.scaled_dot_product_attention (torch >= 2.0): q
 * (..., L, E), k (..., S, E), v (..., S, Ev) with broadcasting batch dims; gives
 * (..., L, Ev) = softmax(q k^T * scale + mask) v. attn_mask: NULL, bool (true = may
 * attend) or floating (added to the scores), broadcastable to (..., L, S). is_causal:
 * query i attends to keys j <= i (top-left aligned, as torch; not with attn_mask).
 * dropout_p: dropout on the attention weights (always applied when > 0, as torch).
 * scale 0 means 1/sqrt(E). A query whose every key is masked gets zeros (and a zero
 * gradient), not NaN. */
cg_tensor *cg_scaled_dot_product_attention(cg_tensor *q, cg_tensor *k, cg_tensor *v, cg_tensor *attn_mask, double dropout_p,
                                           bool is_causal, double scale);
/* Rotary position embedding of x (..., T, D), D even, for positions offset .. offset+T-1
 * (offset: tokens already in a KV cache), frequencies theta^(-2i/D) (theta typically
 * 10000). interleaved false rotates the pairs (i, i + D/2) (GPT-NeoX, Hugging Face Llama's
 * rotate_half), true the pairs (2i, 2i+1) (the RoFormer paper, Meta's Llama, ONNX
 * RotaryEmbedding interleaved=1). */
cg_tensor *cg_rope(cg_tensor *x, int64_t offset, double theta, bool interleaved);

/* fp8 linear layers with delayed scaling (NVIDIA Transformer Engine's recipe): x and w are
 * rounded to float8 e4m3 and the output's gradient to e5m2 (clamped to +-57344 first; e4m3
 * saturates at 448 by itself) after scaling each by fmax / amax / 2^margin (fmax 448 and
 * 57344), amax being the largest |value| of that tensor over the last `history` steps (the
 * first step uses scale 1). The 8-bit values are multiplied exactly on the bf16 unit (every
 * fp8 value is a bf16 value; cg_linear_bf16's layouts) with float32 sums, which the
 * epilogue multiplies by 1/(sx sw) (1/(sg sw), 1/(sg sx) for dx, dw).
 * A scaling object belongs to one layer and lives on the device: the amax history and the
 * scales are float32 buffers. The backward records the step's amaxes of x, w and the
 * gradient (lazy reductions; a forward alone records nothing); cg_fp8_scaling_update_lazy
 * then builds the new history and scales as assigns and lists in *pending (owned by s,
 * valid until its next update) the tensors to realize with the step (as
 * cg_optimizer_step_lazy), so a step is one realize and runs under a cg_jit. An amax that
 * is not finite is not recorded (the scale stays); a history of zeros keeps the scale.
 * cg_fp8_scaling_update realizes that at once. The forward realizes the bf16 copies of
 * the quantized x and w; the scaling object must outlive the backward.
 * cg_fp8_scale: the current scale of x (0), w (1), grad (2) (reads the device). */
/* bf16 autocast linear: x @ w^T + b with x and w rounded to bfloat16 and float32 sums;
 * the backward rounds the output gradient to bfloat16 too (torch.autocast's numerics) and
 * its matmuls are bf16 as well. Each matmul reads realized bf16 copies laid out for the
 * CPU's bf16 unit (the TC opt: AVX512-BF16 where CPUID has it, float32 FMAs elsewhere);
 * the forward realizes the copies of x and w. Float32 w stays the master copy. */
cg_tensor *cg_linear_bf16(cg_tensor *x, cg_tensor *w, cg_tensor *b);
/* The same with x's bfloat16 copy given: x16 is bf16(x) (x's shape), already stored, e.g.
 * written by the kernel that computes x (realize cast(x, bf16) with x's producer instead of
 * x itself); the forward reads x16 and never computes x, whose graph only the backward
 * differentiates through. Same values as cg_linear_bf16(x, w, b). */
cg_tensor *cg_linear_bf16_x16(cg_tensor *x, cg_tensor *x16, cg_tensor *w, cg_tensor *b);
/* fp16 autocast linear: x @ w^T + b with x and w rounded to float16, products and sums
 * in float32 (the product of two float16 is exact in float32); the backward rounds the
 * output gradient to float16 and the products' results dx, dw too (torch.autocast's fp16
 * numerics: dx = f16(f16(g) @ f16(w)), dw = f16(f16(g)^T @ f16(x)), db the float32 sum
 * of g; y stays float32, the bias added in float32). The matmuls are float32 GEMMs of
 * the operands' float32 roundings to f16 (stored copies of x and g, w's rounded by the
 * GEMM's panel pack): float32's speed, and float32's values up to the roundings. */
cg_tensor *cg_linear_f16(cg_tensor *x, cg_tensor *w, cg_tensor *b);
/* The same with x's f16 rounding given (as cg_linear_bf16_x16): x16 of x's shape is the
 * float32 of f16(x), cast(cast(x, float16), float32), written e.g. by x's producer (what
 * the forward's GEMM reads: no copy), or f16(x) as float16 (copied to its float32 here).
 * A float32 x16 is not checked for being f16 values: it must be that rounding. Same
 * values as cg_linear_f16(x, w, b). */
cg_tensor *cg_linear_f16_x16(cg_tensor *x, cg_tensor *x16, cg_tensor *w, cg_tensor *b);

typedef struct cg_fp8_scaling cg_fp8_scaling;
cg_fp8_scaling *cg_fp8_scaling_new(int history, double margin);
cg_tensor *cg_linear_fp8(cg_fp8_scaling *s, cg_tensor *x, cg_tensor *w, cg_tensor *b);
cg_status cg_fp8_scaling_update_lazy(cg_fp8_scaling *s, cg_tensor *const **pending, int *npending);
cg_status cg_fp8_scaling_update(cg_fp8_scaling *s);
double cg_fp8_scale(const cg_fp8_scaling *s, int which);
void cg_fp8_scaling_free(cg_fp8_scaling *s);

/* Losses, mean-reduced (a 0-d tensor). Class targets are integer tensors. */
/* logits (N, C), (C,) or (N, C, d1, ...) with targets (N,), () or (N, d1, ...); as
 * torch.nn.functional.cross_entropy (ignore_index -100) with label_smoothing in [0, 1]. */
cg_tensor *cg_cross_entropy(cg_tensor *logits, cg_tensor *targets, double label_smoothing);
/* tinygrad's: logits (..., C), targets (...); targets equal to ignore_index do not count. */
cg_tensor *cg_sparse_categorical_crossentropy(cg_tensor *logits, cg_tensor *targets, int64_t ignore_index, double label_smoothing);
/* Input and target of the same shape. binary_cross_entropy takes probabilities (its logs
 * are clamped at -100 as torch's); the _with_logits form takes logits, stably. */
cg_tensor *cg_mse_loss(cg_tensor *input, cg_tensor *target);
cg_tensor *cg_binary_cross_entropy(cg_tensor *p, cg_tensor *target);
cg_tensor *cg_binary_cross_entropy_with_logits(cg_tensor *logits, cg_tensor *target);

/* Modules, as torch.nn: a module owns its parameters and buffers (realized float32
 * tensors outside every scope, freed by cg_module_free); parameters require grad.
 * Initialization is torch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for Linear and
 * conv weights and biases, N(0, 1) for Embedding, ones/zeros for norms. A new module is
 * in training mode. Constructors return NULL on bad arguments. */
typedef struct cg_module cg_module;

cg_module *cg_linear(int64_t in, int64_t out, bool bias);
/* Square kernel, stride, padding, dilation, as torch.nn.Conv2d(in, out, kernel, stride,
 * padding, dilation, groups, bias). */
cg_module *cg_conv2d_layer(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation,
                           int64_t groups, bool bias);
cg_module *cg_conv_transpose2d_layer(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding,
                                     int64_t output_padding, int64_t dilation, int64_t groups, bool bias);
/* State: weight, bias, running_mean, running_var, num_batches_tracked (int64, 0-d, counts
 * training forwards). cg_batchnorm2d(C) is cg_batchnorm(C, 1e-5, 0.1); one module serves
 * any (N, C, ...) input. */
cg_module *cg_batchnorm(int64_t channels, double eps, double momentum);
cg_module *cg_batchnorm2d(int64_t channels);
/* Switch every BatchNorm in m (and its children) to cg_sync_batch_norm (on) or back;
 * returns how many were switched. */
int cg_module_sync_batchnorm(cg_module *m, bool on);
cg_module *cg_layernorm(const int64_t *normalized_shape, int n, double eps, bool affine);
cg_module *cg_rmsnorm(const int64_t *normalized_shape, int n, double eps);
cg_module *cg_groupnorm(int64_t groups, int64_t channels, double eps, bool affine);
cg_module *cg_embedding(int64_t num, int64_t dim);
cg_module *cg_dropout(double p);
/* stride 0 means stride = kernel (torch's default). */
cg_module *cg_maxpool2d(int64_t kernel, int64_t stride, int64_t padding);
cg_module *cg_avgpool2d(int64_t kernel, int64_t stride, int64_t padding);
cg_module *cg_relu_layer(void);
cg_module *cg_flatten_layer(void); /* flatten dims 1.. as torch.nn.Flatten() */
/* Runs modules[0..n) in order and takes ownership of them (even when it fails); state names
 * get the child's index as prefix: "0.weight", "1.running_mean", ... */
cg_module *cg_sequential(cg_module *const *modules, int n);

/* The output of m on x (a new tensor in the current scope), or NULL + error. */
cg_tensor *cg_module_forward(cg_module *m, cg_tensor *x);
/* Training (true) or evaluation mode, for m and everything inside it. */
void cg_module_train(cg_module *m, bool on);
bool cg_module_is_training(const cg_module *m);
/* torch's class name: "Linear", "Conv2d", "Sequential", ... */
const char *cg_module_kind(const cg_module *m);
/* Parameters and buffers in torch's state_dict order: writes up to max names (valid while
 * m lives) and tensors (owned by m) and returns how many there are. Either array may be
 * NULL. */
int cg_module_state(cg_module *m, const char **names, cg_tensor **tensors, int max);
/* Trainable parameters only (same order); returns how many there are. */
int cg_module_parameters(cg_module *m, cg_tensor **out, int max);
int cg_module_named_parameters(cg_module *m, const char **names, cg_tensor **out, int max);
void cg_module_free(cg_module *m);

/* ---- optim -------------------------------------------------------------------------- */
/* Optimizers over an array of parameter tensors (floating-point, each at most once; the
 * array is copied, the tensors are borrowed and must outlive the optimizer). Semantics are
 * torch.optim's (1.13): SGD with momentum, dampening, Nesterov and L2 weight decay; Adam
 * with L2 weight decay added to the gradient; AdamW with decoupled decay (p *= 1 - lr·wd
 * before the Adam update); LAMB as tinygrad's (the paper's, φ = identity): Adam moments
 * with bias correction, u = m̂ / (sqrt(v̂) + eps) + wd·p, trust ratio ||p|| / ||u|| (1 where
 * either norm is 0), p -= lr·ratio·u. Typical values: adam(params, n, 1e-3, 0.9, 0.999,
 * 1e-8, 0), lamb(..., 1e-6, wd). NULL and a message on a bad argument (nesterov needs
 * momentum > 0 and dampening 0, as torch). */
typedef struct cg_optimizer cg_optimizer;
cg_optimizer *cg_sgd(cg_tensor *const *params, int n, double lr, double momentum, double dampening, double weight_decay,
                     bool nesterov);
cg_optimizer *cg_adam(cg_tensor *const *params, int n, double lr, double beta1, double beta2, double eps, double weight_decay);
cg_optimizer *cg_adamw(cg_tensor *const *params, int n, double lr, double beta1, double beta2, double eps, double weight_decay);
cg_optimizer *cg_lamb(cg_tensor *const *params, int n, double lr, double beta1, double beta2, double eps, double weight_decay);
/* One step from the current gradients (cg_grad; a parameter with none is skipped). The
 * updates are cg_assigns on the parameters and the state, realized in one
 * cg_realize_many; lazy gradients are computed in the same schedule (the scheduler runs
 * every kernel that reads a weight's old value before the assign that overwrites it).
 * Kernels per parameter: SGD 1, with momentum 2, Adam/AdamW 3, LAMB 5 (two norms). The
 * learning rate, the step count and beta^t (the bias corrections) are kernel variables
 * (cg_variable), so no step compiles anything new after the first two; under a cg_jit,
 * replays update the step count and beta^t as the eager step does. */
cg_status cg_optimizer_step(cg_optimizer *opt);
/* The same step, built but not run: the assigns are made and *pending (owned by the
 * optimizer, valid until its next step) lists the *npending tensors to realize, so that a
 * training step is one cg_realize_many of the loss, these and any other state (BatchNorm
 * statistics): one schedule per step. Counts as a step (cg_optimizer_steps) once built. */
cg_status cg_optimizer_step_lazy(cg_optimizer *opt, cg_tensor *const **pending, int *npending);
/* The same lazy step, taken only where skip (a 0-d bool tensor, computed in the same
 * schedule: cg_grad_scaler_unscale's) is false: where it is true every assign (parameters,
 * moments, momentum buffers) keeps the old value, bit for bit, even if the update is NaN.
 * The step count and beta^t advance on the host when the step is built, whatever skip
 * turns out to be: after a skipped step, cg_grad_scaler_update (or cg_optimizer_set_steps
 * with one step fewer) takes them back. So a step with an overflow check stays one realize,
 * and one cg_jit replay. */
cg_status cg_optimizer_step_lazy_unless(cg_optimizer *opt, cg_tensor *skip, cg_tensor *const **pending, int *npending);
/* Gradient clipping, lazily (nothing runs; realize with the step): cg_grad_norm is the 2-norm
 * of all the parameters' gradients together (a 0-d float32 tensor; parameters without a
 * gradient are skipped); cg_scale_grads multiplies every gradient by a 0-d tensor (the
 * cg_grad handles stay valid); cg_clip_grad_norm is torch's clip_grad_norm_: the gradients
 * are scaled by min(1, max_norm / (norm + 1e-6)) and the norm before clipping is returned. */
cg_tensor *cg_grad_norm(cg_tensor *const *params, int n);
cg_status cg_scale_grads(cg_tensor *const *params, int n, cg_tensor *factor);
cg_tensor *cg_clip_grad_norm(cg_tensor *const *params, int n, double max_norm);
/* Dynamic loss scaling for float16 training, torch.cuda.amp.GradScaler's semantics with
 * nothing read on the host inside the step (a step is one realize, and replays whole under
 * a cg_jit): backward(cg_grad_scaler_scale(s, loss)); skip = cg_grad_scaler_unscale(s,
 * params, n) multiplies the gradients by 1/scale (lazily) and is true unless every
 * gradient is finite (read off their 2-norm, the graph cg_grad_norm / cg_clip_grad_norm
 * build, so clipping after it costs no second reduction; a norm past float32's range counts
 * as an overflow); cg_optimizer_step_lazy_unless(opt, skip, ...); realize; then, with
 * skip's value read on the host, cg_grad_scaler_update(s, skipped, opts, nopt): a skipped
 * step multiplies the scale by backoff_factor and takes back each optimizer's step count;
 * growth_interval clean steps in a row multiply it by growth_factor. torch's defaults:
 * (65536, 2, 0.5, 200). The scale and its inverse are float32 kernel variables (the
 * factors are powers of two, so unscaling is exact): a new scale compiles nothing. */
typedef struct cg_grad_scaler cg_grad_scaler;
cg_grad_scaler *cg_grad_scaler_new(double init_scale, double growth_factor, double backoff_factor, int64_t growth_interval);
cg_tensor *cg_grad_scaler_scale(cg_grad_scaler *s, cg_tensor *loss);
cg_tensor *cg_grad_scaler_unscale(cg_grad_scaler *s, cg_tensor *const *params, int n);
cg_status cg_grad_scaler_update(cg_grad_scaler *s, bool skipped, cg_optimizer *const *opts, int nopt);
double cg_grad_scaler_get_scale(const cg_grad_scaler *s);
void cg_grad_scaler_free(cg_grad_scaler *s);
/* cg_zero_grad on every parameter. */
void cg_optimizer_zero_grad(cg_optimizer *opt);
/* Set the learning rate (finite, >= 0) for the next steps: the float32 kernel variable the
 * kernels read (no kernel runs, nothing compiles; a JIT'd step's replays read it too). */
cg_status cg_optimizer_set_lr(cg_optimizer *opt, double lr);
double cg_optimizer_get_lr(const cg_optimizer *opt);
/* Steps taken (-1 for NULL). */
int64_t cg_optimizer_steps(const cg_optimizer *opt);
/* For resuming from a checkpoint: the step count, and the state tensors (owned by the
 * optimizer; loading values into them with cg_load_safetensors restores them). Names are
 * "m.<i>", "v.<i>" for parameter i (SGD's momentum buffer is m); beta^t (Adam family) is
 * made from the step count by cg_optimizer_set_steps, as that many steps make it (older
 * checkpoints' "b1_t", "b2_t" are not read). Writes up to max names (valid while opt lives) and tensors (either array
 * may be NULL) and returns how many there are, -1 on error. Saving the parameters, this
 * state and the step count, then restoring all three, continues a run bit-identically. */
cg_status cg_optimizer_set_steps(cg_optimizer *opt, int64_t steps);
int cg_optimizer_state(cg_optimizer *opt, const char **names, cg_tensor **ts, int max);
/* Free the optimizer and its state (not the parameters). */
void cg_optimizer_free(cg_optimizer *opt);

/* ---- state and data ------------------------------------------------------------------ */
/* safetensors checkpoints (the Hugging Face format; every cgrad dtype). Save realizes the
 * n tensors and writes them under their names (unique), atomically: on failure an existing
 * file at path is left byte-identical. Load reads the tensors named names[i] INTO ts[i]
 * (in place: other handles on the same buffer see the new values); every name, dtype and
 * shape is checked before anything is written, so on any error (a missing name, a dtype or
 * shape that differs, a corrupt or truncated file) the tensors keep their values and the
 * message names the tensor, what was expected and what was found. Extra tensors in the
 * file are ignored. */
cg_status cg_save_safetensors(const char *path, const char *const *names, cg_tensor *const *ts, int n);
cg_status cg_load_safetensors(const char *path, const char *const *names, cg_tensor *const *ts, int n);
/* NumPy .npy (bool, integers, float16/32/64; bfloat16 and fp8 have no .npy form). */
cg_tensor *cg_load_npy(const char *path);
cg_status cg_save_npy(const char *path, cg_tensor *t);

/* IDX files (MNIST / Fashion-MNIST; raw or gzip): e.g. uint8 images (N, 28, 28) or
 * labels (N,). NULL and a message on a missing, corrupt or truncated file. */
cg_tensor *cg_load_idx(const char *path);
/* Fashion-MNIST from dir (NULL: /usr/share/datasets/fashion-mnist, the Debian package
 * dataset-fashion-mnist): uint8 train (60000, 28, 28) / (60000,), test (10000, 28, 28) /
 * (10000,). The outputs are set only on success; a missing file's error says which
 * package to install. */
cg_status cg_fashion_mnist(const char *dir, cg_tensor **train_x, cg_tensor **train_y, cg_tensor **test_x, cg_tensor **test_y);

/* Seeded shuffling into batches of sample indices. Epoch e's order depends only on (seed,
 * e), on every run. Typical loop:
 *     for (int64_t e = 0; e < epochs; e++) {
 *       cg_batcher_reset(b, e);
 *       cg_tensor *idx;
 *       while (cg_batcher_next(b, &idx) > 0) { x = cg_index_select(train_x, 0, idx); ... }
 *     }
 * Every index in [0, n) appears exactly once per epoch; the last batch is smaller unless
 * drop_last drops it. n <= INT32_MAX, batch >= 1. */
typedef struct cg_batcher cg_batcher;
cg_batcher *cg_batcher_new(int64_t n, int64_t batch, uint64_t seed, bool shuffle, bool drop_last);
/* The next batch as a new int32 (B,) tensor in *idx (1), the end of the epoch (0, *idx
 * NULL), or a negative cg_status. */
int cg_batcher_next(cg_batcher *b, cg_tensor **idx);
/* Start epoch `epoch` (>= 0) from its first batch. A new batcher is at epoch 0. */
cg_status cg_batcher_reset(cg_batcher *b, int64_t epoch);
int64_t cg_batcher_epoch(const cg_batcher *b);
/* Batches per epoch. */
int64_t cg_batcher_count(const cg_batcher *b);
void cg_batcher_free(cg_batcher *b);

/* ---- ONNX ---------------------------------------------------------------------------
 * Models exported to ONNX (opsets 1 to 18 of the default domain; ops with the semantics of
 * their version) run as lazy cgrad graphs.
 * cg_onnx_load decodes and checks the whole file (every node's inputs defined before use,
 * no cycles, known ops at the model's opset, initializer sizes, external data inside the
 * model's directory) and fails with a message naming the node and the problem. Needs
 * protobuf-c at build time; without it cg_onnx_load fails saying so. */
typedef struct cg_onnx_model cg_onnx_model;
cg_onnx_model *cg_onnx_load(const char *path);
/* The same from a file image in memory; external data is looked up under base_dir (NULL:
 * external data is refused). */
cg_onnx_model *cg_onnx_load_memory(const void *data, size_t size, const char *base_dir);
void cg_onnx_free(cg_onnx_model *m);
/* Graph inputs (initializers excluded) and outputs: name, dtype and shape. Dims that the
 * file leaves symbolic or unknown are -1. dtype is -1 where it is not a tensor type cgrad
 * has (strings, sequences, ...). Returns -1 on a bad index. */
int cg_onnx_num_inputs(const cg_onnx_model *m);
int cg_onnx_num_outputs(const cg_onnx_model *m);
const char *cg_onnx_input_name(const cg_onnx_model *m, int i);
const char *cg_onnx_output_name(const cg_onnx_model *m, int i);
int cg_onnx_input_info(const cg_onnx_model *m, int i, cg_dtype *dt, int64_t *shape); /* ndim; shape: CG_MAX_DIMS room */
int cg_onnx_output_info(const cg_onnx_model *m, int i, cg_dtype *dt, int64_t *shape);
/* The default domain's opset the model imports, its node count and node i's op type. */
int64_t cg_onnx_opset(const cg_onnx_model *m);
int cg_onnx_num_nodes(const cg_onnx_model *m);
const char *cg_onnx_node_op(const cg_onnx_model *m, int i);
/* Run the graph on inputs (one per graph input, in order, dtype as declared, shapes
 * matching the declared fixed dims): writes one new tensor per output to outputs (the
 * caller frees them or lets a scope do it). Values the graph needs as shapes (Reshape
 * targets, Slice bounds ...) are computed on the way. On error no outputs are written and
 * the message names the node. Runs replay through a JIT (cg_jit) where that is sound: the
 * first run builds the graph (its outputs lazy), the next ones for an input shape build,
 * schedule and record it, later ones launch the same kernels on the new inputs (outputs
 * are then realized copies); not for graphs with
 * subgraphs (If, Loop, Scan), random ops, sequences, an output that is an input, or that
 * read an input-dependent value on the host (NonZero, Reshape to an input's values ...),
 * nor inside another JIT's function or with JIT=0. */
cg_status cg_onnx_run(cg_onnx_model *m, cg_tensor *const *inputs, int n_inputs, cg_tensor **outputs, int n_outputs);
/* A serialized onnx.TensorProto (the .pb files of ONNX's test data) as a tensor. */
cg_tensor *cg_onnx_load_tensor(const char *path);
/* Models with sequence-typed (ONNX seq(tensor)) inputs or outputs run through
 * cg_onnx_run_values: a value is a tensor, or items[0..n_items) with tensor NULL for a
 * sequence. A sequence output's items array is malloc'd (free() it; its tensors are the
 * caller's, as tensor outputs are). cg_onnx_run refuses such models, saying so. */
typedef struct {
  cg_tensor *tensor;
  cg_tensor **items;
  int n_items;
} cg_onnx_value;
bool cg_onnx_input_is_sequence(const cg_onnx_model *m, int i);
bool cg_onnx_output_is_sequence(const cg_onnx_model *m, int i);
cg_status cg_onnx_run_values(cg_onnx_model *m, const cg_onnx_value *inputs, int n_inputs, cg_onnx_value *outputs, int n_outputs);
/* A serialized onnx.SequenceProto of tensors: a malloc'd array of *n new tensors. */
cg_tensor **cg_onnx_load_sequence(const char *path, int *n);

/* ---- devices and sharding ------------------------------------------------------------
 * Devices are named by strings: "CPU", "INTERP", and instances of them, "CPU:1", "CPU:2",
 * ... ("CPU:0" is "CPU"). An instance is the same backend with its own allocator (memory
 * counted and cached apart), made on first use; 16 instances at most in all. Every tensor
 * knows its device: that of the buffers it reads (a result is computed where its inputs
 * are), or the default device (cg_set_device, else the DEVICE knob) for tensors that read
 * none. An op whose operands are on two
 * devices is refused with a message naming both; the scheduler never puts two devices in
 * one kernel. Each CPU instance owns its thread pool (CG_THREADS split evenly over
 * CG_DEVICES instances), and a realize whose kernels are on several devices runs each
 * device's kernels (and the copies between them) on a host thread of its own, at the same
 * time, in the schedule's order per device (results identical to running them one after
 * another: CG_CONCURRENT=0). */
/* The canonical name of a device ("cpu:1" -> "CPU:1", "CPU:0" -> "CPU"), making an
 * instance if needed; NULL + an error naming the devices there are. */
const char *cg_device(const char *name);
/* Make name (NULL: the DEVICE knob's device again) this thread's default device: where
 * tensors that read no buffer are made and computed (cg_from_data, cg_zeros, and the small
 * buffers ops make for themselves, such as the class indices of a cross entropy). Run a
 * replica's work with its device set (one thread per device, or switching). Returns the
 * canonical name now in effect, or NULL + an error for a bad name (nothing changes). */
const char *cg_set_device(const char *name);
/* The device t is on (or will be computed on). */
const char *cg_device_of(cg_tensor *t);
/* CG_DEVICES (default 1, at most 16): how many instances of the default device a program
 * that shards "over all devices" uses ("CPU", "CPU:1", ... "CPU:n-1"). */
int cg_device_count(void);
/* The names of those devices into names[0..max) ("CPU", "CPU:1", ...); returns how many
 * there are (-1 + an error if one cannot be made). */
int cg_devices(const char **names, int max);
/* A copy of t on device, lazy like every op: a COPY node, run when a result needing it is
 * realized, in the same realize as the kernels on both sides (cg_to(a, "CPU:1") + b, b on
 * CPU:1, is one realize: a's kernels on CPU, the copy, the sum on CPU:1). Same device: a
 * second handle, no copy. A contiguous range of a buffer (the buffer, a reshape, a slice
 * along the leading axis) is copied straight from it; another view is first made
 * contiguous on its own device ("staging" bytes). Differentiable: the gradient is a copy
 * back to t's device. */
cg_tensor *cg_to(cg_tensor *t, const char *device);
/* Bytes copied between devices (by realized cg_to copies, JIT replays included), and
 * bytes made contiguous before a copy, since the start of the process (either pointer may
 * be NULL). */
void cg_copy_stats(int64_t *transfer_bytes, int64_t *staging_bytes);

/* A tensor split over devices (tinygrad's MultiLazyBuffer): one lazy tensor per device and
 * the axis they split. axis >= 0: shard i holds the i-th of n equal slices along axis;
 * CG_REPLICATED: every shard holds the whole tensor; CG_PARTIAL: the value is the sum of
 * the shards (what a reduction across the sharded axis gives before its allreduce).
 * Ops run per shard; where layouts differ they are matched first: a replicated operand is
 * sliced in place (a view, no copy), operands sharded on different axes are resharded
 * (all-to-all), a partial one is allreduced. Results are new cg_multis (cg_multi_free);
 * shards read with cg_multi_shard are new tensors in the current scope. */
#define CG_REPLICATED (-1)
#define CG_PARTIAL (-2)
typedef struct cg_multi cg_multi;
/* Split t over n distinct devices along axis (negative counts from the end; CG_REPLICATED:
 * copies). Refused: shape[axis] not divisible by n, a device twice, bad names. */
cg_multi *cg_shard(cg_tensor *t, const char *const *devices, int n, int axis);
/* A cg_multi of existing per-device tensors (same dtype; shapes equal, or for axis >= 0
 * equal except along axis, where they must be equal too). */
cg_multi *cg_multi_from(cg_tensor *const *shards, int n, int axis);
void cg_multi_free(cg_multi *m);
int cg_multi_count(const cg_multi *m);
int cg_multi_axis(const cg_multi *m);
/* The whole (logical) shape; returns ndim. */
int cg_multi_shape(const cg_multi *m, int64_t *shape);
const char *cg_multi_device(const cg_multi *m, int i);
cg_tensor *cg_multi_shard(const cg_multi *m, int i);
/* The whole tensor on one device (shards copied and concatenated; partial: summed). */
cg_tensor *cg_multi_gather(const cg_multi *m, const char *device);
cg_status cg_multi_realize(cg_multi *m);
/* Elementwise (broadcasting as cg_add), unary maps, matmul, reductions. */
cg_multi *cg_multi_add(cg_multi *a, cg_multi *b);
cg_multi *cg_multi_sub(cg_multi *a, cg_multi *b);
cg_multi *cg_multi_mul(cg_multi *a, cg_multi *b);
cg_multi *cg_multi_map(cg_multi *a, cg_tensor *(*fn)(cg_tensor *));
cg_multi *cg_multi_matmul(cg_multi *a, cg_multi *b);
cg_multi *cg_multi_sum(cg_multi *a, const int *axes, int naxes, bool keepdim);
cg_multi *cg_multi_max(cg_multi *a, const int *axes, int naxes, bool keepdim);
/* A partial (or any) cg_multi summed over its shards onto every device: a replicated
 * result. Reduce-scatter then all-gather over chunks of the flattened tensor, so each
 * device sends and receives 2(n-1)/n of it (cg_copy_stats counts it). */
cg_multi *cg_multi_allreduce(cg_multi *a);
/* The same value laid out along another axis (all-to-all: shard j gets slice j of every
 * shard; CG_REPLICATED: all-gather). Pieces are views of the shards: a piece that is a
 * contiguous range is copied straight, others are made contiguous first (staging). */
cg_multi *cg_multi_reshard(cg_multi *a, int axis);

/* ---- distributed (MPI) --------------------------------------------------------------
 * An optional build part (-DCG_MPI=ON, Debian libopenmpi-dev): collectives over the ranks of
 * MPI_COMM_WORLD, on realized tensors, in place. Without it (or outside mpirun, where the
 * world has one rank) every call works on a world of one rank, except that
 * cg_dist_available() says false. Collectives are non-blocking MPI calls polled against a
 * deadline (CG_DIST_TIMEOUT_S, default 120): a rank that died or hangs makes the others
 * fail with a message naming the collective and the timeout (then cg_dist_abort). */
typedef enum { CG_DIST_SUM, CG_DIST_MAX, CG_DIST_MEAN } cg_dist_op;
bool cg_dist_available(void);
/* MPI_Init (threads: funneled) unless already done; idempotent. */
cg_status cg_dist_init(int *argc, char ***argv);
int cg_dist_rank(void);
int cg_dist_size(void);
/* Reduce every tensor in place across ranks (float32/float64/int32/int64; one dtype per
 * call). Small tensors are packed into buckets of about bucket_bytes (0: 4 MB), a tensor of
 * that size or more is reduced in place in its buffer; each bucket's reduction starts as
 * soon as it is formed, so packing and unpacking overlap the transfers of other buckets. */
cg_status cg_dist_allreduce(cg_tensor *const *ts, int n, cg_dist_op op, size_t bucket_bytes);
/* Realize ts[0..n) and also[0..nalso) in one realize, and reduce ts in place across ranks
 * as cg_dist_allreduce does, overlapped with that realize (as PyTorch's DDP overlaps the
 * gradients' allreduce with the backward): each tensor joins a bucket as soon as the
 * kernels that compute it have run, and a full bucket's reduction starts while the rest
 * of the realize runs. Buckets are formed in the order the tensors are completed, so
 * bucket_bytes (0: 4 MB) should be a fraction of the total for the overlap to help. */
cg_status cg_dist_realize_allreduce(cg_tensor *const *ts, int n, cg_tensor *const *also, int nalso, cg_dist_op op, size_t bucket_bytes);
/* Since the process began: buckets cg_dist_realize_allreduce started (eagerly or while a
 * JIT captured), how many of them while kernels of their realize were still to run (the
 * overlap), and the seconds this rank spent waiting for collectives to finish (replays
 * too). Any pointer may be NULL. */
void cg_dist_stats(int64_t *buckets, int64_t *early, double *wait_seconds);
/* Rank root's values into every rank's tensors (same shapes and dtypes everywhere). */
cg_status cg_dist_broadcast(cg_tensor *const *ts, int n, int root);
/* All-to-all along axis: t's slice j (of size shape[axis]/size) goes to rank j; the result
 * holds the slices received, from rank 0 first, along axis. Slices that are contiguous
 * ranges are sent straight from the buffer. */
cg_tensor *cg_dist_alltoall(cg_tensor *t, int axis);
cg_status cg_dist_barrier(void);
/* End the whole job now (MPI_Abort): after a failed collective, a clean exit would wait
 * for the dead rank. */
void cg_dist_abort(int code);
void cg_dist_finalize(void);

/* ---- JIT ----------------------------------------------------------------------------
 * cg_jit captures the kernels a function launches and replays them (ARCHITECTURE §8).
 * fn(in, n_in, out, n_out, user) builds its n_out outputs from the inputs with any cgrad
 * calls — realizes, backward, optimizer steps included — and returns CG_OK. cg_jit_call
 * runs it eagerly the first time for a given key (the number of inputs and each one's
 * dtype and shape), captures it the second time (if it launched the same kernels as the
 * first: else it captures again next time, with a note at DEBUG=1), and from the third on
 * replays the captured launches with the new inputs' buffers: fn is not called at all.
 * So fn must not depend on anything but its inputs' values and the state it updates
 * (weights, optimizer moments, BatchNorm statistics, which stay the same buffers): host
 * writes inside fn (cg_from_data, reading a value and branching on it) are not replayed.
 * A scalar that changes per call (a learning rate) is a kernel variable: pass a var
 * (cg_variable, or a view of one) as the input, and each replay binds the value of the var
 * passed; or pass a constant (cg_full, cg_scalar: never realized, dtype int32, int64,
 * float32 or float64), which becomes the context's own var, set to it at each call; either
 * way a new value compiles nothing and fills no buffer (constants of other dtypes are
 * filled into a buffer on the host). Var and constant inputs are keyed apart from buffer
 * inputs of the same shape. A var fn reads without it being an input (an optimizer's
 * learning rate) is read at its current value by every replay; cg_variable_set inside fn
 * is not replayed (the optimizer's own step-count updates are). Collectives inside fn
 * (cg_dist_allreduce, and so cg_sync_batch_norm) are recorded among the launches and
 * repeated by each replay on its buffers: a data-parallel step replays whole.
 * Outputs are realized tensors in the caller's scope; after a replay they view the same
 * buffers as the captured call's, so the next call overwrites them (copy to keep).
 * Refused with a message: a JIT called from inside a JIT function; a function that writes
 * into one of its inputs. JIT=0 runs fn eagerly every call. Not thread safe per cg_jit. */
typedef struct cg_jit cg_jit;
typedef cg_status (*cg_jit_fn)(cg_tensor *const *in, int n_in, cg_tensor **out, int n_out, void *user);
cg_jit *cg_jit_new(cg_jit_fn fn, int n_out, void *user);
cg_status cg_jit_call(cg_jit *j, cg_tensor *const *in, int n_in, cg_tensor **out);
void cg_jit_free(cg_jit *j);
typedef struct {
  int contexts;          /* contexts held now (JIT_MAX_CONTEXTS at most, default 8) */
  int64_t eager, captures, replays; /* calls of each kind */
  size_t slab_bytes;     /* the intermediates' slab: the largest context's */
} cg_jit_info;
cg_jit_info cg_jit_stats(const cg_jit *j);

/* Counters, for tests and tools. */
typedef struct {
  uint64_t kernels_run;      /* kernels launched */
  uint64_t kernels_compiled; /* compiled by the C compiler in this process (tiered: counted when made, built in the background) */
  uint64_t kernels_cached;   /* loaded from the disk cache */
  uint64_t schedules;        /* schedules run: built, or taken from the schedule cache */
  uint64_t schedule_hits;    /* of those, taken from the schedule cache (CG_SCHED_CACHE) */
  uint64_t last_threads;     /* most threads any kernel of this thread's last realize ran on */
  uint64_t last_max_buffer;  /* bytes of the largest buffer a kernel of this thread's last realize wrote */
} cg_stats;
cg_stats cg_get_stats(void);

#ifdef __cplusplus
}
#endif
#endif
