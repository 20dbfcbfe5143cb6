/* What a test's call writes to stderr (DEBUG output, warnings), as a malloc'ed string (NULL
 * if no temporary file could be made). */
#ifndef CG_TEST_CAPTURE_H
#define CG_TEST_CAPTURE_H
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

static inline char *capture_stderr(void (*fn)(void *), void *arg) {
  char path[] = "/tmp/cg_test_stderr_XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return NULL;
  fflush(stderr);
  int saved = dup(2);
  dup2(fd, 2);
  fn(arg);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  off_t len = lseek(fd, 0, SEEK_END);
  char *s = calloc((size_t)len + 1, 1);
  if (s && pread(fd, s, (size_t)len, 0) < 0) s[0] = 0;
  close(fd);
  unlink(path);
  return s;
}
#endif
