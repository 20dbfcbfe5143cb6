/* fio_write_atomic and fio_read_all: round trips, the fault-injection knob
 * (CG_FAULT_WRITE_BYTES) leaving the previous file byte-identical with no temp file
 * behind, callback errors, and the error messages of bad paths. */
#include "check.h"
#include "tmpfiles.h"
#include <sys/wait.h>
#include <unistd.h>
#include "core/error.h"
#include "core/fileio.h"
#include <dirent.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


/* Entries in tmp_dir other than . and .. (the temp files would show up here). */
typedef struct {
  const unsigned char *p;
  size_t n;
  int chunks; /* write in this many pieces (exercises stdio buffering) */
} blob;

static cg_status write_blob(FILE *f, void *ctx) {
  blob *b = ctx;
  size_t step = b->n / (size_t)(b->chunks > 0 ? b->chunks : 1) + 1;
  for (size_t at = 0; at < b->n; at += step) {
    size_t k = b->n - at < step ? b->n - at : step;
    fwrite(b->p + at, 1, k, f); /* unchecked on purpose: fio_write_atomic checks the stream */
  }
  return CG_OK;
}

/* Uses fio_put and stops at the first error, as a careful callback would. */
static int put_calls;
static cg_status write_put(FILE *f, void *ctx) {
  blob *b = ctx;
  put_calls = 0;
  for (size_t at = 0; at < b->n; at += 1000) {
    put_calls++;
    cg_status st = fio_put(f, b->p + at, b->n - at < 1000 ? b->n - at : 1000);
    if (st != CG_OK) return st;
  }
  return CG_OK;
}

static cg_status write_then_fail(FILE *f, void *ctx) {
  fputs("partial content", f);
  return cg_fail(CG_ERR_INVALID, "boom: expected the callback to fail here");
}

static cg_status write_hello(FILE *f, void *ctx) {
  fprintf(f, "hello %s\n", (const char *)ctx);
  return CG_OK;
}

static bool file_equals(const char *path, const void *p, size_t n) {
  size_t size;
  char *got = fio_read_all(path, &size);
  bool eq = got && size == n && !memcmp(got, p, n);
  free(got);
  return eq;
}

static unsigned long long rng = 0x9E3779B97F4A7C15ull;
static unsigned char rand_byte(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (unsigned char)(rng >> 24);
}

int main(void) {
  snprintf(tmp_dir, sizeof tmp_dir, "%s/cg_fileio_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(tmp_dir)) {
    perror("mkdtemp");
    return 1;
  }

  /* 1. a plain write and read back, NUL after the end, permissions from the umask */
  const char *p = in_dir("hello.txt");
  CHECK(fio_write_atomic(p, write_hello, "world") == CG_OK, "%s", cg_last_error());
  size_t size = 0;
  char *txt = fio_read_all(p, &size);
  CHECK(txt && size == 12 && !strcmp(txt, "hello world\n"), "got %zu bytes", size);
  free(txt);
  mode_t um = umask(022);
  umask(um);
  struct stat sb;
  CHECK(stat(p, &sb) == 0 && (sb.st_mode & 0777) == (0666 & ~um), "mode %o, umask %o", sb.st_mode & 0777, um);
  CHECK(count_entries(tmp_dir) == 1, "%d entries", count_entries(tmp_dir));

  /* 1b. temp files of a writer killed mid-way (a pid that has exited) are removed by the
   * next save to that path; a live process's, another file's and odd names stay */
  pid_t dead = fork();
  if (dead == 0) _exit(0);
  waitpid(dead, NULL, 0);
  char stale[700], live[700], other[700], odd[700];
  snprintf(stale, sizeof stale, "%s.%ld.3.tmp", p, (long)dead);
  snprintf(live, sizeof live, "%s.%ld.0.tmp", p, (long)getppid());
  snprintf(other, sizeof other, "%s.%ld.0.tmp", in_dir("other.txt"), (long)dead);
  snprintf(odd, sizeof odd, "%s.%ldx.0.tmp", p, (long)dead);
  const char *made[4] = {stale, live, other, odd};
  for (int i = 0; i < 4; i++) {
    FILE *f = fopen(made[i], "w");
    CHECK(f != NULL, "%s", made[i]);
    if (f) fclose(f);
  }
  CHECK(fio_write_atomic(p, write_hello, "again") == CG_OK, "%s", cg_last_error());
  CHECK(access(stale, F_OK) != 0, "the dead writer's temp file is removed");
  CHECK(access(live, F_OK) == 0 && access(other, F_OK) == 0 && access(odd, F_OK) == 0, "the others stay");
  for (int i = 1; i < 4; i++) unlink(made[i]);
  CHECK(count_entries(tmp_dir) == 1, "%d entries", count_entries(tmp_dir));

  /* 2. the previous file survives an injected disk-full at many points */
  size_t n1 = 10000, n2 = 300000;
  unsigned char *v1 = malloc(n1), *v2 = malloc(n2);
  for (size_t i = 0; i < n1; i++) v1[i] = rand_byte();
  for (size_t i = 0; i < n2; i++) v2[i] = rand_byte();
  const char *ck = in_dir("model.bin");
  blob b1 = {v1, n1, 7}, b2 = {v2, n2, 13};
  CHECK(fio_write_atomic(ck, write_blob, &b1) == CG_OK, "%s", cg_last_error());
  CHECK(file_equals(ck, v1, n1), "first version");

  /* through the environment first (an API-set value would hide it) */
  setenv("CG_FAULT_WRITE_BYTES", "5000", 1);
  cg_status st = fio_write_atomic(ck, write_blob, &b2);
  CHECK(st == CG_ERR_IO, "env fault: status %d", st);
  CHECK(strstr(cg_last_error(), "CG_FAULT_WRITE_BYTES") && strstr(cg_last_error(), "model.bin") &&
            strstr(cg_last_error(), "unchanged"),
        "message: %s", cg_last_error());
  CHECK(file_equals(ck, v1, n1), "previous file changed (env fault)");
  CHECK(count_entries(tmp_dir) == 2, "temp file left behind: %d entries", count_entries(tmp_dir));
  unsetenv("CG_FAULT_WRITE_BYTES");

  long cuts[] = {0, 1, 7, 4095, 65535, 65536, 65537, 200000, (long)n2 - 1};
  for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
    char v[32];
    snprintf(v, sizeof v, "%ld", cuts[k]);
    CHECK(cg_set_config("CG_FAULT_WRITE_BYTES", v) == CG_OK, "set");
    cg_clear_error();
    st = fio_write_atomic(ck, write_blob, &b2);
    CHECK(st == CG_ERR_IO, "cut at %ld: status %d", cuts[k], st);
    CHECK(strstr(cg_last_error(), "No space left") != NULL, "cut at %ld: %s", cuts[k], cg_last_error());
    CHECK(file_equals(ck, v1, n1), "cut at %ld: the previous file changed", cuts[k]);
    CHECK(count_entries(tmp_dir) == 2, "cut at %ld: %d entries (temp file left?)", cuts[k], count_entries(tmp_dir));
  }

  /* a careful callback using fio_put stops at the first failed write */
  cg_set_config("CG_FAULT_WRITE_BYTES", "150000");
  blob b3 = {v2, n2, 1};
  st = fio_write_atomic(ck, write_put, &b3);
  CHECK(st == CG_ERR_IO && strstr(cg_last_error(), "No space left") && strstr(cg_last_error(), "model.bin"),
        "fio_put: %d %s", st, cg_last_error());
  CHECK(put_calls < 300, "the callback went on after the failure: %d calls", put_calls);
  CHECK(file_equals(ck, v1, n1) && count_entries(tmp_dir) == 2, "fio_put cut");

  /* a budget at or past the size does not fire */
  char full[32];
  snprintf(full, sizeof full, "%zu", n2);
  cg_set_config("CG_FAULT_WRITE_BYTES", full);
  CHECK(fio_write_atomic(ck, write_blob, &b2) == CG_OK, "exact budget: %s", cg_last_error());
  CHECK(file_equals(ck, v2, n2), "second version written");
  cg_set_config("CG_FAULT_WRITE_BYTES", "");
  CHECK(fio_write_atomic(ck, write_blob, &b1) == CG_OK && file_equals(ck, v1, n1), "knob cleared");

  /* 3. a callback that fails keeps its message, the old file and no temp */
  cg_clear_error();
  st = fio_write_atomic(ck, write_then_fail, NULL);
  CHECK(st == CG_ERR_INVALID, "status %d", st);
  CHECK(strstr(cg_last_error(), "boom") && strstr(cg_last_error(), "model.bin"), "message: %s", cg_last_error());
  CHECK(file_equals(ck, v1, n1) && count_entries(tmp_dir) == 2, "callback failure changed things");

  /* 4. bad targets */
  const char *nodir = in_dir("no/such/dir/file.bin");
  st = fio_write_atomic(nodir, write_hello, "x");
  CHECK(st == CG_ERR_IO && strstr(cg_last_error(), "no/such/dir/file.bin"), "missing dir: %s", cg_last_error());
  const char *sub = in_dir("subdir");
  mkdir(sub, 0755);
  st = fio_write_atomic(sub, write_hello, "x");
  CHECK(st == CG_ERR_IO && strstr(cg_last_error(), "subdir"), "over a directory: %s", cg_last_error());
  CHECK(count_entries(tmp_dir) == 3 && count_entries(sub) == 0, "after writing over a dir: %d", count_entries(tmp_dir));
  CHECK(fio_write_atomic(NULL, write_hello, "x") == CG_ERR_INVALID, "NULL path");
  CHECK(fio_write_atomic(ck, NULL, NULL) == CG_ERR_INVALID, "NULL callback");

  /* 5. reading: missing file, a directory, an empty file, a file stat calls empty */
  const char *missing = in_dir("missing.bin");
  CHECK(fio_read_all(missing, &size) == NULL, "missing file");
  CHECK(strstr(cg_last_error(), "missing.bin") && strstr(cg_last_error(), "No such file"), "message: %s",
        cg_last_error());
  CHECK(cg_last_status() == CG_ERR_IO, "status %d", cg_last_status());
  CHECK(fio_read_all(sub, &size) == NULL && strstr(cg_last_error(), "directory"), "dir: %s", cg_last_error());
  const char *empty = in_dir("empty");
  fclose(fopen(empty, "wb"));
  char *e = fio_read_all(empty, &size);
  CHECK(e && size == 0 && e[0] == 0, "empty file");
  free(e);
  if (access("/proc/self/status", R_OK) == 0) { /* size 0 in stat, content when read */
    char *s = fio_read_all("/proc/self/status", &size);
    CHECK(s && size > 0 && strstr(s, "Name:") && strlen(s) == size, "/proc/self/status: %zu bytes", size);
    free(s);
  }

  free(v1);
  free(v2);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_dir);
  return test_summary();
}
