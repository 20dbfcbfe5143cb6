/* The on-disk kernel cache: directory, entry names, sealing and checking entries. */
#include "disk_cache.h"
#include "hash128.h"
#include "core/config.h"
#include "core/error.h"
#include "core/fileio.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "CGCACHE1"
typedef struct trailer {
  char magic[8];
  uint64_t length;
  uint64_t sum[2];
  uint64_t key[2];
} trailer;
_Static_assert(sizeof(trailer) == 48, "the trailer is part of the file format");

/* mkdir -p; 0 on success. */
static int make_dirs(char *path) {
  for (char *s = path + 1; *s; s++) {
    if (*s != '/') continue;
    *s = 0;
    int r = mkdir(path, 0755);
    *s = '/';
    if (r && errno != EEXIST) return -1;
  }
  if (mkdir(path, 0755) && errno != EEXIST) return -1;
  struct stat st;
  return stat(path, &st) || !S_ISDIR(st.st_mode) ? -1 : 0;
}

char *rt_cache_dir(void) {
  if (cfg_int("CG_NOCACHE", 0)) return NULL;
  const char *dir = cfg_str("CG_CACHE_DIR", NULL), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
  char buf[4096];
  if (dir) snprintf(buf, sizeof buf, "%s", dir);
  else if (xdg && xdg[0] == '/') snprintf(buf, sizeof buf, "%s/cgrad", xdg);
  else if (home && *home) snprintf(buf, sizeof buf, "%s/.cache/cgrad", home);
  else {
    if (cfg_debug() >= 1) fprintf(stderr, "cgrad: no HOME, CG_CACHE_DIR or XDG_CACHE_HOME: kernel disk cache off\n");
    return NULL;
  }
  size_t n = strlen(buf);
  while (n > 1 && buf[n - 1] == '/') buf[--n] = 0;
  if (make_dirs(buf)) {
    if (cfg_debug() >= 1) fprintf(stderr, "cgrad: cannot create cache directory %s: %s\n", buf, strerror(errno));
    return NULL;
  }
  return cg_strdup(buf);
}

char *rt_cache_entry_path(const char *dir, const char *name, const uint64_t key[2], const char *ext) {
  char safe[49];
  int n = 0;
  for (const char *s = name; *s && n < 48; s++)
    safe[n++] = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ? *s : '_';
  safe[n] = 0;
  size_t len = strlen(dir) + strlen(ext) + 48 + 40;
  char *p = cg_malloc(len);
  if (p) snprintf(p, len, "%s/%s-%016llx%016llx.%s", dir, safe, (unsigned long long)key[0], (unsigned long long)key[1], ext);
  return p;
}

int rt_cache_check(const char *path, const uint64_t key[2]) {
  struct stat sb;
  if (lstat(path, &sb)) return RT_CACHE_MISSING;
  if (!S_ISREG(sb.st_mode)) {
    /* a symlink (to /dev/zero, say) or a device is removed and rebuilt; a directory we did
     * not make is left alone, and the kernel is compiled in memory */
    const char *kind = S_ISDIR(sb.st_mode) ? "a directory" : S_ISLNK(sb.st_mode) ? "a symbolic link" : "not a regular file";
    bool gone = S_ISDIR(sb.st_mode) ? rmdir(path) == 0 : unlink(path) == 0;
    if (cfg_debug() >= 1)
      fprintf(stderr, "cgrad: cache entry %s is %s: %s\n", path, kind, gone ? "deleted, rebuilding" : "cannot delete it, compiling in memory");
    return gone ? RT_CACHE_CORRUPT : RT_CACHE_UNUSABLE;
  }
  size_t n = 0;
  char *buf = fio_read_file(path, &n, RT_CACHE_MAX_BYTES, true);
  int ok = 0;
  if (buf && n >= sizeof(trailer)) {
    trailer t;
    memcpy(&t, buf + n - sizeof t, sizeof t);
    uint64_t sum[2] = {0, 0};
    if (!memcmp(t.magic, MAGIC, 8) && t.length == n - sizeof t && t.key[0] == key[0] && t.key[1] == key[1]) {
      rt_hash128(buf, t.length, sum);
      ok = sum[0] == t.sum[0] && sum[1] == t.sum[1];
    }
  }
  free(buf);
  if (ok) return RT_CACHE_OK;
  bool gone = unlink(path) == 0 || errno == ENOENT;
  if (cfg_debug() >= 1)
    fprintf(stderr, "cgrad: corrupt cache entry %s: %s\n", path, gone ? "deleted, rebuilding" : "cannot delete it, compiling in memory");
  return gone ? RT_CACHE_CORRUPT : RT_CACHE_UNUSABLE;
}

cg_status rt_cache_publish(const char *tmp_path, const char *path, const uint64_t key[2]) {
  size_t n = 0;
  char *buf = fio_read_all(tmp_path, &n);
  cg_status st = CG_OK;
  if (!buf) st = cg_last_status();
  else {
    trailer t = {.length = n, .key = {key[0], key[1]}};
    memcpy(t.magic, MAGIC, 8);
    rt_hash128(buf, n, t.sum);
    free(buf);
    int fd = open(tmp_path, O_WRONLY | O_APPEND | O_CLOEXEC);
    int ok = fd >= 0 && write(fd, &t, sizeof t) == (ssize_t)sizeof t;
    if (fd >= 0 && close(fd)) ok = 0;
    if (!ok)
      st = cg_fail(CG_ERR_IO, "cannot write cache entry %s: %s", tmp_path, strerror(errno));
    else if (rename(tmp_path, path))
      st = cg_fail(CG_ERR_IO, "cannot rename %s to %s: %s", tmp_path, path, strerror(errno));
  }
  if (st != CG_OK) unlink(tmp_path);
  return st;
}
