/* Files for tests: a scratch directory (made with mkdtemp into tmp_dir by main), paths
 * inside it, whole-file read and write, and a count of what the directory holds. */
#ifndef CG_TEST_TMPFILES_H
#define CG_TEST_TMPFILES_H
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char tmp_dir[256];

/* tmp_dir/name, in a ring of 8 buffers. */
static inline const char *in_dir(const char *name) {
  static char buf[8][512];
  static int at;
  char *b = buf[at++ & 7];
  snprintf(b, 512, "%s/%s", tmp_dir, name);
  return b;
}

/* The whole file (malloc'd, NUL-terminated past its size, so text can go to strstr), its
 * size in *size; NULL if it cannot be opened. */
static inline unsigned char *read_file(const char *path, size_t *size) {
  *size = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc((size_t)(n > 0 ? n : 0) + 1);
  if (b) *size = fread(b, 1, (size_t)(n > 0 ? n : 0), f), b[*size] = 0;
  fclose(f);
  return b;
}

static inline void write_file(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  if (f) fwrite(p, 1, n, f), fclose(f);
}

/* Entries in directory d other than . and .. (-1 if it cannot be opened). */
static inline int count_entries(const char *d) {
  DIR *dp = opendir(d);
  if (!dp) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(dp)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  closedir(dp);
  return n;
}
#endif
