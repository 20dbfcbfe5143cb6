/* Configuration knobs in tinygrad's style: each is an environment variable (DEBUG, BEAM,
 * NOOPT, CG_THREADS, CG_CC, ...) that the API can also set (cg_set_config). A value set
 * through the API wins over the environment. */
#ifndef CG_CORE_CONFIG_H
#define CG_CORE_CONFIG_H
#include <stdint.h>

/* The integer value of a knob, or dflt when unset or not a number. */
long cfg_int(const char *name, long dflt);
/* The string value of a knob, or dflt when unset. */
const char *cfg_str(const char *name, const char *dflt);
/* The DEBUG level (cached; refreshed by cg_set_config). */
int cfg_debug(void);
/* A counter bumped by every cg_set_config: caches of results that depend on knobs key on it. */
unsigned long cfg_generation(void);

#endif
