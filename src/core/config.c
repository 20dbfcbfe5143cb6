/* Knobs: API-set values first, then the environment. A small fixed table is enough:
 * there are a handful of knobs and they are set rarely. */
#include "config.h"
#include "error.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MAX_KNOBS 64
static struct { char name[32]; char value[224]; } knobs[MAX_KNOBS];
static int nknobs;
static pthread_mutex_t knob_lock = PTHREAD_MUTEX_INITIALIZER;
static int debug_level = -1;
static unsigned long generation; /* bumped by every cg_set_config */

const char *cfg_str(const char *name, const char *dflt) {
  const char *r = NULL;
  pthread_mutex_lock(&knob_lock);
  for (int i = 0; i < nknobs; i++)
    if (!strcmp(knobs[i].name, name)) r = knobs[i].value;
  pthread_mutex_unlock(&knob_lock);
  if (!r) r = getenv(name);
  return r && *r ? r : dflt;
}

long cfg_int(const char *name, long dflt) {
  const char *s = cfg_str(name, NULL);
  if (!s) return dflt;
  char *end;
  long v = strtol(s, &end, 10);
  return end == s ? dflt : v;
}

/* Read on every realize from any thread: a relaxed atomic cache (-1: read it again). */
int cfg_debug(void) {
  int d = __atomic_load_n(&debug_level, __ATOMIC_RELAXED);
  if (d < 0) __atomic_store_n(&debug_level, d = (int)cfg_int("DEBUG", 0), __ATOMIC_RELAXED);
  return d;
}

cg_status cg_set_config(const char *name, const char *value) {
  if (!name || !value) return cg_fail(CG_ERR_INVALID, "cg_set_config: %s is NULL", name ? "value" : "name");
  if (strlen(name) >= sizeof knobs[0].name || strlen(value) >= sizeof knobs[0].value)
    return cg_fail(CG_ERR_INVALID, "cg_set_config: expected a name under 32 and a value under 224 characters");
  pthread_mutex_lock(&knob_lock);
  int i = 0;
  while (i < nknobs && strcmp(knobs[i].name, name)) i++;
  if (i == nknobs) {
    if (nknobs == MAX_KNOBS) {
      pthread_mutex_unlock(&knob_lock);
      return cg_fail(CG_ERR_INVALID, "cg_set_config: more than %d knobs set", MAX_KNOBS);
    }
    nknobs++;
  }
  strcpy(knobs[i].name, name);
  strcpy(knobs[i].value, value);
  pthread_mutex_unlock(&knob_lock);
  if (!strcmp(name, "DEBUG")) __atomic_store_n(&debug_level, -1, __ATOMIC_RELAXED);
  __atomic_fetch_add(&generation, 1, __ATOMIC_RELAXED);
  return CG_OK;
}

unsigned long cfg_generation(void) { return __atomic_load_n(&generation, __ATOMIC_RELAXED); }

const char *cg_get_config(const char *name) {
  if (!name) return cg_fail_null(CG_ERR_INVALID, "cg_get_config: name is NULL");
  return cfg_str(name, NULL);
}
