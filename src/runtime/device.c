/* The device table and the runtime counters. Adding a backend = one line in `devices`. */
#include "device.h"
#include "core/config.h"
#include "core/error.h"
#include <pthread.h>
#include <strings.h>

static rt_device *const devices[] = {
    &rt_cpu_device,
    &rt_interp_device,
    /* &rt_cuda_device, */
};
#define NDEVICES ((int)(sizeof devices / sizeof devices[0]))

rt_device *rt_device_at(int i) { return i >= 0 && i < NDEVICES ? devices[i] : NULL; }

rt_device *rt_get_device(const char *name) {
  if (!name) return cg_fail_null(CG_ERR_INVALID, "rt_get_device: expected a device name, got NULL");
  for (int i = 0; i < NDEVICES; i++) {
    if (strcasecmp(devices[i]->name, name)) continue;
    if (devices[i]->open && devices[i]->open() != CG_OK) return NULL; /* open() set the message */
    return devices[i];
  }
  char list[256] = "";
  size_t n = 0;
  for (int i = 0; i < NDEVICES && n < sizeof list; i++)
    n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", devices[i]->name);
  return cg_fail_null(CG_ERR_INVALID, "unknown device '%s' (expected one of: %s)", name, list);
}

rt_device *rt_default_device(void) { return rt_get_device(cfg_str("DEVICE", "CPU")); }

static rt_stats stats;
static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;

const rt_stats *rt_get_stats(void) { return &stats; }
rt_stats *rt_stats_mut(void) { return &stats; }
void rt_stats_lock(void) { pthread_mutex_lock(&stats_lock); }
void rt_stats_unlock(void) { pthread_mutex_unlock(&stats_lock); }
