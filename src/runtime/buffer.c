/* The registry of device buffers behind BUFFER UOps (see buffer.h). */
#include "buffer.h"
#include "uop/uopset.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t buf_lock = PTHREAD_MUTEX_INITIALIZER;
static uopset registry;
static int64_t next_id = 1;

static void on_free(uop *u) {
  pthread_mutex_lock(&buf_lock);
  cg_buffer *b = uopset_get(&registry, u);
  if (b) uopset_del(&registry, u);
  pthread_mutex_unlock(&buf_lock);
  if (!b) return;
  if (b->ptr && !b->borrowed) b->dev->free(b->ptr, b->nbytes);
  free(b);
}

uop *buffer_new(dtype dt, int64_t count) { return buffer_new_on(NULL, dt, count); }

uop *buffer_new_on(rt_device *dev, dtype dt, int64_t count) {
  if (!dev && !(dev = rt_default_device())) return NULL;
  cg_buffer *b = ir_calloc(1, sizeof *b); /* the scheduler makes buffers too: fails softly only in a checked pool */
  if (!b) return NULL;
  b->nbytes = (size_t)count * (size_t)dt_scalar_size(dt);
  b->dev = dev;
  pthread_mutex_lock(&buf_lock);
  int64_t arg[2] = {next_id++, count};
  uop_set_free_hook(OP_BUFFER, on_free);
  pthread_mutex_unlock(&buf_lock);
  uop *u = uop_new0(OP_BUFFER, dt, arg_ints(arg, 2));
  pthread_mutex_lock(&buf_lock);
  bool kept = u && uopset_put(&registry, u, b);
  pthread_mutex_unlock(&buf_lock);
  if (!kept) { /* out of memory: the node (if any) dies with its pool, unregistered */
    free(b);
    return NULL;
  }
  return u;
}

rt_device *graph_device(uop *u) {
  uop *stack_small[64], **stack = stack_small;
  size_t n = 0, cap = 64;
  uopset seen = {0};
  rt_device *dev = NULL;
  if (u) stack[n++] = u;
  while (n && !dev) {
    uop *x = stack[--n];
    if (x->op == OP_BUFFER) {
      dev = buffer_of(x)->dev;
      break;
    }
    if (x->op == OP_COPY) { /* its value lives on its target, whatever it reads */
      dev = rt_get_device(x->arg.s);
      break;
    }
    if (uopset_get(&seen, x)) continue;
    uopset_put(&seen, x, (void *)1);
    for (uint32_t i = x->nsrc; i-- > 0;) { /* src[0] popped first: a chain's own input */
      if (n == cap) {
        uop **bigger = ir_malloc(sizeof(uop *) * cap * 2); /* in a realize: counted, the schedule fails as a whole */
        if (!bigger) break; /* out of memory: an answer from what was seen (NULL: the default) */
        memcpy(bigger, stack, sizeof(uop *) * n);
        if (stack != stack_small) free(stack);
        stack = bigger, cap *= 2;
      }
      stack[n++] = x->src[i];
    }
  }
  if (stack != stack_small) free(stack);
  uopset_free(&seen);
  return dev;
}

cg_buffer *buffer_of(uop *u) {
  pthread_mutex_lock(&buf_lock);
  cg_buffer *b = uopset_get(&registry, u);
  pthread_mutex_unlock(&buf_lock);
  CG_ASSERT(b, "a BUFFER UOp without a registered buffer");
  return b;
}

cg_status buffer_alloc(uop *u) {
  cg_buffer *b = buffer_of(u);
  if (b->ptr) return CG_OK;
  b->ptr = b->dev->alloc(b->nbytes ? b->nbytes : 1);
  return b->ptr ? CG_OK : cg_last_status();
}

void buffer_release_memory(uop *u) {
  cg_buffer *b = buffer_of(u);
  if (b->ptr && !b->borrowed) b->dev->free(b->ptr, b->nbytes);
  b->ptr = NULL, b->borrowed = false;
}

void buffer_borrow(uop *u, void *ptr) {
  cg_buffer *b = buffer_of(u);
  buffer_release_memory(u);
  b->ptr = ptr, b->borrowed = ptr != NULL;
}
