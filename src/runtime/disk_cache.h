/* The on-disk cache of compiled kernels (ARCHITECTURE §7). Directory: knob CG_CACHE_DIR,
 * else $XDG_CACHE_HOME/cgrad, else ~/.cache/cgrad (created when missing); CG_NOCACHE=1
 * turns it off. An entry is one file, <name>-<32 hex digits of the key>.<ext>, whose
 * payload (e.g. a shared object) is followed by a trailer:
 *
 *     payload | "CGCACHE1" | u64 payload length | u64[2] hash of payload | u64[2] key
 *
 * Entries are written under a temporary name and renamed into place, so readers never see
 * a half-written one; a truncated or corrupted entry fails the trailer check and is
 * deleted, and the caller rebuilds it. (ELF loaders ignore bytes after the sections, so a
 * sealed shared object can be dlopen'ed as it is.) */
#ifndef CG_RUNTIME_DISK_CACHE_H
#define CG_RUNTIME_DISK_CACHE_H
#include "cgrad.h"
#include <stdint.h>

/* UNUSABLE: the entry is in the way (a directory, a file we cannot delete): compile in
 * memory, write nothing. */
enum { RT_CACHE_MISSING = 0, RT_CACHE_OK = 1, RT_CACHE_CORRUPT = -1, RT_CACHE_UNUSABLE = -2 };
/* No kernel library is this big: a larger entry is corrupt (and never read whole). */
#define RT_CACHE_MAX_BYTES ((size_t)64 << 20)

/* The cache directory (malloc'ed, created if missing), or NULL when the cache is off or
 * the directory cannot be made (DEBUG>=1 says why). */
char *rt_cache_dir(void);
/* dir/<name>-<key>.<ext> (malloc'ed; name is cut to 48 safe characters), NULL on OOM. */
char *rt_cache_entry_path(const char *dir, const char *name, const uint64_t key[2], const char *ext);
/* Check the entry at path against key: RT_CACHE_OK, RT_CACHE_MISSING, or RT_CACHE_CORRUPT
 * (the file has been deleted). */
int rt_cache_check(const char *path, const uint64_t key[2]);
/* Append the trailer for key to the payload file tmp_path, then rename it to path. On
 * failure the temporary file is removed and a CG_ERR_IO message set. */
cg_status rt_cache_publish(const char *tmp_path, const char *path, const uint64_t key[2]);

#endif
