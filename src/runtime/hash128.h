/* A 128-bit non-cryptographic hash (MurmurHash3 x64-128 with 64-bit seeds) for cache keys
 * and file checksums. The state is chainable: hash several parts in turn by passing the
 * previous result as the seed, so a key over (source, compiler, flags, ...) needs no copy. */
#ifndef CG_RUNTIME_HASH128_H
#define CG_RUNTIME_HASH128_H
#include <stddef.h>
#include <stdint.h>

/* Mix len bytes of data into h[2] (in: seed, out: hash). The length is mixed in, so
 * chaining parts ("ab","c") and ("a","bc") gives different results. */
void rt_hash128(const void *data, size_t len, uint64_t h[2]);
/* Same for a NUL-terminated string (the NUL is not hashed; NULL hashes as ""). */
void rt_hash128_str(const char *s, uint64_t h[2]);

#endif
