/* Atomic file writing and whole-file reading.
 *
 *   fio_write_atomic(path):
 *     open  path.<pid>.<n>.tmp (O_EXCL, mode 0666 & ~umask)
 *     write through a counting stream  <- CG_FAULT_WRITE_BYTES cuts it short here
 *     fflush, fsync, close
 *     rename tmp -> path                 <- the only moment the target changes
 *     fsync the directory                (so the rename itself survives a crash)
 *   any failure before rename: unlink tmp, target untouched. */
#define _GNU_SOURCE /* fopencookie */
#include "fileio.h"
#include "config.h"
#include "error.h"
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#ifndef O_CLOEXEC
#define O_CLOEXEC 0
#endif

/* ---- the counting sink under the stdio stream ---------------------------------------- */

typedef struct {
  int fd;
  long long budget;  /* bytes allowed before an injected failure; -1 = unlimited */
  long long written; /* bytes that reached the file */
  int err;           /* errno of the first failure, 0 if none */
  int injected;      /* the failure was injected by CG_FAULT_WRITE_BYTES */
} sink;

/* Write all of buf to fd, retrying short writes and EINTR. Returns bytes written. */
static size_t write_fd(int fd, const char *buf, size_t n, int *err) {
  size_t done = 0;
  while (done < n) {
    ssize_t w = write(fd, buf + done, n - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      *err = errno;
      break;
    }
    done += (size_t)w;
  }
  return done;
}

static ssize_t sink_write(void *cookie, const char *buf, size_t n) {
  sink *s = cookie;
  if (s->err) {
    errno = s->err;
    return 0;
  }
  size_t allow = n;
  if (s->budget >= 0 && (long long)n > s->budget - s->written) allow = (size_t)(s->budget - s->written);
  size_t done = write_fd(s->fd, buf, allow, &s->err);
  s->written += (long long)done;
  if (!s->err && allow < n) {
    s->err = ENOSPC; /* a disk that filled up part-way */
    s->injected = 1;
  }
  if (s->err) {
    errno = s->err;
    return 0; /* fopencookie: 0 reports an error and sets the stream's error flag */
  }
  return (ssize_t)n;
}

static int sink_close(void *cookie) { return 0; } /* fio_write_atomic closes the fd itself */

static FILE *sink_open(sink *s) {
#if defined(__GLIBC__) || (defined(__linux__) && !defined(__ANDROID__)) /* glibc, musl */
  cookie_io_functions_t io = {.read = NULL, .write = sink_write, .seek = NULL, .close = sink_close};
  FILE *f = fopencookie(s, "w", io);
  if (f) setvbuf(f, NULL, _IOFBF, 1 << 16);
  return f;
#else
  (void)sink_write;
  (void)sink_close;
  return fdopen(dup(s->fd), "wb"); /* no fault injection without fopencookie */
#endif
}

/* ---- atomic write ------------------------------------------------------------------- */

/* Open a fresh temporary file beside path; its name goes to tmp (size cap). */
static int open_temp(const char *path, char *tmp, size_t cap) {
  static atomic_uint counter;
  for (int attempt = 0; attempt < 100; attempt++) {
    unsigned n = atomic_fetch_add(&counter, 1);
    int len = snprintf(tmp, cap, "%s.%ld.%u.tmp", path, (long)getpid(), n);
    if (len < 0 || (size_t)len >= cap) {
      errno = ENAMETOOLONG;
      return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0 || errno != EEXIST) return fd;
  }
  errno = EEXIST;
  return -1;
}

/* fsync the directory holding path, so the rename is durable. Filesystems that cannot
 * sync a directory (EINVAL, ENOTSUP) are not an error. */
static int sync_dir(const char *path) {
  char dir[4096];
  const char *slash = strrchr(path, '/');
  if (!slash) strcpy(dir, ".");
  else if (slash == path) strcpy(dir, "/");
  else {
    size_t n = (size_t)(slash - path);
    if (n >= sizeof dir) return 0;
    memcpy(dir, path, n);
    dir[n] = 0;
  }
  int fd = open(dir, O_RDONLY | O_CLOEXEC
#ifdef O_DIRECTORY
                         | O_DIRECTORY
#endif
  );
  if (fd < 0) return 0; /* no read permission on the directory: nothing we can do */
  int rc = fsync(fd);
  int e = errno;
  close(fd);
  if (rc < 0 && (e == EINVAL || e == ENOTSUP || e == EBADF)) rc = 0;
  errno = e;
  return rc;
}

static const char *fault_note(const sink *s, char *buf, size_t cap) {
  if (!s->injected) return "";
  snprintf(buf, cap, " (injected by CG_FAULT_WRITE_BYTES=%lld)", s->budget);
  return buf;
}

/* A writer killed mid-way (SIGKILL, power) leaves path.<pid>.<n>.tmp behind: remove those
 * of processes that no longer exist, so they do not pile up beside a checkpoint that is
 * saved again and again. (A pid of another machine on a shared filesystem could look dead
 * here; such setups should not share checkpoint paths between writers anyway.) */
static void remove_stale_temps(const char *path) {
  const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
  char dir[4096];
  size_t dn = slash ? (size_t)(slash - path) : 0, bn = strlen(base);
  if (dn >= sizeof dir || !bn) return;
  if (!slash) strcpy(dir, ".");
  else if (!dn) strcpy(dir, "/");
  else memcpy(dir, path, dn), dir[dn] = 0;
  DIR *d = opendir(dir);
  if (!d) return;
  for (struct dirent *e; (e = readdir(d));) {
    const char *n = e->d_name;
    if (strncmp(n, base, bn) || n[bn] != '.') continue;
    char *end;
    long pid = strtol(n + bn + 1, &end, 10);
    if (end == n + bn + 1 || *end != '.' || pid <= 0) continue;
    const char *cnt = end + 1;
    strtoul(cnt, &end, 10);
    if (end == cnt || strcmp(end, ".tmp")) continue;
    if (pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive, or not ours to judge */
    char full[8192];
    if (snprintf(full, sizeof full, "%s/%s", dir, n) < (int)sizeof full) unlink(full);
  }
  closedir(d);
}

cg_status fio_write_atomic(const char *path, fio_writer fn, void *ctx) {
  if (!path || !*path || !fn)
    return cg_fail(CG_ERR_INVALID, "fio_write_atomic: expected a file path and a writer callback, got %s",
                   !path || !*path ? "an empty path" : "no callback");
  remove_stale_temps(path);
  char tmp[4096];
  int fd = open_temp(path, tmp, sizeof tmp);
  if (fd < 0)
    return cg_fail(CG_ERR_IO, "could not create a temporary file to write '%s': %s", path, strerror(errno));

  sink s = {.fd = fd, .budget = cfg_int("CG_FAULT_WRITE_BYTES", -1)};
  if (s.budget < -1) s.budget = -1;
  cg_status st = CG_OK;
  char note[80];
  FILE *f = sink_open(&s);
  if (!f) {
    st = cg_fail(CG_ERR_IO, "could not open a stream to write '%s': %s", path, strerror(errno));
    goto fail;
  }
  st = fn(f, ctx);
  int flush_failed = fflush(f) != 0 || ferror(f);
  if (fclose(f) != 0) flush_failed = 1;
  if (st != CG_OK) {
    /* keep the callback's message, say which file it was writing */
    char msg[768];
    snprintf(msg, sizeof msg, "%s", cg_last_error());
    st = cg_fail(st, "writing '%s' failed (any previous file is left unchanged): %s", path, msg);
    goto fail;
  }
  if (flush_failed) {
    int e = s.err ? s.err : EIO;
    st = cg_fail(CG_ERR_IO, "could not write '%s': %s after %lld bytes%s; any previous file is left unchanged", path,
                 strerror(e), s.written, fault_note(&s, note, sizeof note));
    goto fail;
  }
  if (fsync(fd) != 0) {
    st = cg_fail(CG_ERR_IO, "could not write '%s': fsync failed: %s; any previous file is left unchanged", path,
                 strerror(errno));
    goto fail;
  }
  if (close(fd) != 0) {
    fd = -1;
    st = cg_fail(CG_ERR_IO, "could not write '%s': close failed: %s; any previous file is left unchanged", path,
                 strerror(errno));
    goto fail;
  }
  fd = -1;
  if (rename(tmp, path) != 0) {
    st = cg_fail(CG_ERR_IO, "could not replace '%s' with the new file: %s; any previous file is left unchanged", path,
                 strerror(errno));
    goto fail;
  }
  if (sync_dir(path) != 0)
    return cg_fail(CG_ERR_IO, "'%s' was written, but syncing its directory failed (%s): it may not survive a crash",
                   path, strerror(errno));
  return CG_OK;

fail:
  if (fd >= 0) close(fd);
  unlink(tmp);
  return st;
}

cg_status fio_put(FILE *f, const void *p, size_t n) {
  if (n && fwrite(p, 1, n, f) != n)
    return cg_fail(CG_ERR_IO, "could not write %zu bytes: %s", n, strerror(errno ? errno : EIO));
  return CG_OK;
}

/* ---- whole-file read ------------------------------------------------------------------ */

void *fio_read_all(const char *path, size_t *size) { return fio_read_file(path, size, SIZE_MAX - 1, false); }

void *fio_read_file(const char *path, size_t *size, size_t max, bool nofollow) {
  if (size) *size = 0;
  if (!path || !*path) return cg_fail_null(CG_ERR_INVALID, "fio_read_all: expected a file path, got an empty one");
  /* O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below) */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | (nofollow ? O_NOFOLLOW : 0));
  if (fd < 0) return cg_fail_null(CG_ERR_IO, "could not open '%s': %s", path, errno == ELOOP && nofollow ? "it is a symbolic link" : strerror(errno));
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    int e = errno;
    close(fd);
    return cg_fail_null(CG_ERR_IO, "could not stat '%s': %s", path, strerror(e));
  }
  if (!S_ISREG(sb.st_mode)) { /* /dev/zero, a FIFO, a directory: no size to trust */
    close(fd);
    return cg_fail_null(CG_ERR_IO, "could not read '%s': expected a regular file, found %s", path,
                        S_ISDIR(sb.st_mode) ? "a directory" : S_ISCHR(sb.st_mode) ? "a character device" : S_ISFIFO(sb.st_mode) ? "a FIFO" : "a special file");
  }
  if ((uint64_t)sb.st_size > (uint64_t)max) {
    close(fd);
    return cg_fail_null(CG_ERR_FORMAT, "could not read '%s': %lld bytes, more than the %zu this file may have", path, (long long)sb.st_size, max);
  }
  size_t cap = (size_t)sb.st_size + 1; /* grows only if the file grows while being read */
  char *buf = cg_malloc(cap);
  if (!buf) {
    close(fd);
    return NULL;
  }
  size_t n = 0;
  for (;;) {
    if (n + 1 >= cap) { /* full (one byte kept for the NUL): at the end, or did the file grow? */
      char probe;
      ssize_t r = read(fd, &probe, 1);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        if (r < 0) {
          int e = errno;
          free(buf);
          close(fd);
          return cg_fail_null(CG_ERR_IO, "could not read '%s': %s", path, strerror(e));
        }
        break;
      }
      if (cap - 1 >= max) { /* it grew past the limit while being read */
        free(buf);
        close(fd);
        return cg_fail_null(CG_ERR_FORMAT, "could not read '%s': more than the %zu bytes this file may have", path, max);
      }
      char *nb = cg_realloc(buf, cap * 2);
      if (!nb) {
        free(buf);
        close(fd);
        return NULL;
      }
      buf = nb;
      cap *= 2;
      buf[n++] = probe;
      continue;
    }
    ssize_t r = read(fd, buf + n, cap - 1 - n);
    if (r < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      free(buf);
      close(fd);
      return cg_fail_null(CG_ERR_IO, "could not read '%s': %s", path, strerror(e));
    }
    if (r == 0) break;
    n += (size_t)r;
  }
  close(fd);
  buf[n] = 0;
  if (size) *size = n;
  return buf;
}
