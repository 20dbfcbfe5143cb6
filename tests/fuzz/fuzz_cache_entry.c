/* The kernel disk cache's entry reader (rt_cache_check). Any bytes at an entry's path:
 * RT_CACHE_OK only when the trailer is sound (magic, length, key, hash of the payload),
 * and then the file is untouched; otherwise RT_CACHE_CORRUPT and the file is gone. And any
 * bytes published as a payload (rt_cache_publish) read back as RT_CACHE_OK with the
 * payload intact in front of the trailer. */
#include "fuzz.h"
#include "runtime/disk_cache.h"
#include "runtime/hash128.h"
#include <sys/stat.h>

static const uint64_t KEY[2] = {0x0123456789abcdefull, 0xfedcba9876543210ull};

static size_t file_size(const char *p) {
  struct stat s;
  return stat(p, &s) ? (size_t)-1 : (size_t)s.st_size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 1 << 16) return 0;
  const char *path = fuzz_scratch("entry.so");
  fuzz_write(path, data, size);
  /* the trailer as the reader must judge it: 8 magic, u64 length, u64[2] hash, u64[2] key */
  bool sound = false;
  if (size >= 48 && !memcmp(data + size - 48, "CGCACHE1", 8)) {
    uint64_t len, sum[2], key[2], h[2] = {0, 0};
    memcpy(&len, data + size - 40, 8);
    memcpy(sum, data + size - 32, 16);
    memcpy(key, data + size - 16, 16);
    if (len == size - 48 && key[0] == KEY[0] && key[1] == KEY[1]) {
      rt_hash128(data, len, h);
      sound = h[0] == sum[0] && h[1] == sum[1];
    }
  }
  int r = rt_cache_check(path, KEY);
  FUZZ_CHECK(r == (sound ? RT_CACHE_OK : RT_CACHE_CORRUPT));
  FUZZ_CHECK(sound ? file_size(path) == size : access(path, F_OK) != 0);
  cg_clear_error();
  /* publish the bytes as a payload: a sound entry */
  const char *tmp = fuzz_scratch("payload.tmp");
  fuzz_write(tmp, data, size);
  FUZZ_CHECK(rt_cache_publish(tmp, path, KEY) == CG_OK);
  FUZZ_CHECK(access(tmp, F_OK) != 0 && file_size(path) == size + 48);
  FUZZ_CHECK(rt_cache_check(path, KEY) == RT_CACHE_OK);
  uint64_t other[2] = {KEY[0], KEY[1] ^ 1};
  FUZZ_CHECK(rt_cache_check(path, other) == RT_CACHE_CORRUPT); /* another key's entry is not this one */
  cg_clear_error();
  return 0;
}
