/* The device table, device instances and the runtime counters. Adding a backend = one line
 * in `devices`. */
#include "device.h"
#include "alloc.h"
#include "core/config.h"
#include "core/error.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static rt_device *const devices[] = {
    &rt_cpu_device,
    &rt_interp_device,
    &rt_x86_device,
    /* &rt_cuda_device, */
};
#define NDEVICES ((int)(sizeof devices / sizeof devices[0]))

/* Instances: "CPU:1" is rt_cpu_device's table of functions under another name with an
 * allocator of its own (over the base's raw allocation), so each instance's memory is
 * counted and cached apart, and launches of its own (launch_on: the CPU's own thread
 * pool). Device functions take no device argument, hence one alloc/free/launch trampoline
 * per instance slot. Slots are filled once, under inst_lock, and
 * published through ninst (read without the lock: a slot below ninst never changes). */
static rt_device inst[RT_MAX_INSTANCES];
static rt_allocator inst_alloc[RT_MAX_INSTANCES];
static char inst_name[RT_MAX_INSTANCES][24];
static int ninst;
static pthread_mutex_t inst_lock = PTHREAD_MUTEX_INITIALIZER;

#define TRAMPOLINE(i)                                                                   \
  static void *inst_alloc_##i(size_t n) { return rt_lru_alloc(&inst_alloc[i], n); } \
  static void inst_free_##i(void *p, size_t n) { rt_lru_free(&inst_alloc[i], p, n); } \
  static cg_status inst_launch_##i(rt_program *p, void **b, const int64_t *v, int64_t g) { return inst[i].base->launch_on(&inst[i], p, b, v, g); }
TRAMPOLINE(0) TRAMPOLINE(1) TRAMPOLINE(2) TRAMPOLINE(3) TRAMPOLINE(4) TRAMPOLINE(5) TRAMPOLINE(6) TRAMPOLINE(7)
TRAMPOLINE(8) TRAMPOLINE(9) TRAMPOLINE(10) TRAMPOLINE(11) TRAMPOLINE(12) TRAMPOLINE(13) TRAMPOLINE(14) TRAMPOLINE(15)
#define T(i) {inst_alloc_##i, inst_free_##i, inst_launch_##i}
static const struct {
  void *(*alloc)(size_t);
  void (*free)(void *, size_t);
  cg_status (*launch)(rt_program *, void **, const int64_t *, int64_t);
} trampolines[RT_MAX_INSTANCES] = {
    T(0), T(1), T(2), T(3), T(4), T(5), T(6), T(7), T(8), T(9), T(10), T(11), T(12), T(13), T(14), T(15)};
#undef T

static rt_device *instance(rt_device *base, int index) {
  int n = __atomic_load_n(&ninst, __ATOMIC_ACQUIRE);
  for (int i = 0; i < n; i++)
    if (inst[i].base == base && inst[i].index == index) return &inst[i];
  pthread_mutex_lock(&inst_lock);
  rt_device *d = NULL;
  for (int i = 0; i < ninst && !d; i++)
    if (inst[i].base == base && inst[i].index == index) d = &inst[i];
  if (!d && ninst == RT_MAX_INSTANCES) {
    pthread_mutex_unlock(&inst_lock);
    return cg_fail_null(CG_ERR_INVALID, "device %s:%d: at most %d device instances in all, and %d are in use", base->name, index,
                        RT_MAX_INSTANCES, RT_MAX_INSTANCES);
  }
  if (!d) {
    int i = ninst;
    snprintf(inst_name[i], sizeof inst_name[i], "%s:%d", base->name, index);
    rt_allocator *a = &inst_alloc[i];
    memset(a, 0, sizeof *a);
    a->name = inst_name[i];
    a->host_memory = base->allocator ? base->allocator->host_memory : 0;
    pthread_mutex_init(&a->lock, NULL);
    /* raw blocks come from the base's raw allocator: the same memory kind, cached apart (a
     * base without an allocator, INTERP, lends its alloc/free) */
    if (base->allocator) a->sys_alloc = base->allocator->sys_alloc, a->sys_free = base->allocator->sys_free;
    else a->sys_alloc = base->alloc, a->sys_free = base->free;
    d = &inst[i];
    *d = *base;
    d->name = inst_name[i], d->allocator = a, d->alloc = trampolines[i].alloc, d->free = trampolines[i].free;
    if (base->launch_on) d->launch = trampolines[i].launch;
    d->base = base, d->index = index;
    __atomic_store_n(&ninst, i + 1, __ATOMIC_RELEASE);
  }
  pthread_mutex_unlock(&inst_lock);
  return d;
}

static int copies_made; /* a copy between two table entries (CPU -> INTERP) was made */
bool rt_multi_device(void) { return __atomic_load_n(&ninst, __ATOMIC_ACQUIRE) > 0 || __atomic_load_n(&copies_made, __ATOMIC_ACQUIRE); }
void rt_note_copy(void) { __atomic_store_n(&copies_made, 1, __ATOMIC_RELEASE); }

rt_device *rt_device_at(int i) {
  if (i >= 0 && i < NDEVICES) return devices[i];
  return i >= NDEVICES && i < NDEVICES + __atomic_load_n(&ninst, __ATOMIC_ACQUIRE) ? &inst[i - NDEVICES] : NULL;
}

rt_device *rt_get_device(const char *name) {
  if (!name) return cg_fail_null(CG_ERR_INVALID, "rt_get_device: expected a device name, got NULL");
  const char *colon = strchr(name, ':');
  size_t len = colon ? (size_t)(colon - name) : strlen(name);
  long index = 0;
  if (colon) {
    char *end;
    index = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || index < 0 || index > 1000)
      return cg_fail_null(CG_ERR_INVALID, "device '%s': expected NAME or NAME:N with N a small integer >= 0 (e.g. CPU:1)", name);
  }
  for (int i = 0; i < NDEVICES; i++) {
    if (strlen(devices[i]->name) != len || strncasecmp(devices[i]->name, name, len)) continue;
    if (devices[i]->open && devices[i]->open() != CG_OK) return NULL; /* open() set the message */
    return index ? instance(devices[i], (int)index) : devices[i];
  }
  char list[256] = "";
  size_t n = 0;
  for (int i = 0; i < NDEVICES && n < sizeof list; i++)
    n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", devices[i]->name);
  return cg_fail_null(CG_ERR_INVALID, "unknown device '%s' (expected one of: %s, optionally with :N for instance N)", name, list);
}

static _Thread_local rt_device *thread_device;

rt_device *rt_set_thread_device(rt_device *d) {
  rt_device *old = thread_device;
  thread_device = d;
  return old;
}

rt_device *rt_default_device(void) { return thread_device ? thread_device : rt_get_device(cfg_str("DEVICE", "CPU")); }

static rt_stats stats;
static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;

const rt_stats *rt_get_stats(void) { return &stats; }
rt_stats *rt_stats_mut(void) { return &stats; }
void rt_stats_lock(void) { pthread_mutex_lock(&stats_lock); }
void rt_stats_unlock(void) { pthread_mutex_unlock(&stats_lock); }
