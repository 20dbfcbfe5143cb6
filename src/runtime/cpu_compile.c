/* Running the C compiler: argument lists from knobs, posix_spawn with captured output,
 * the compiler's identity for cache keys. */
#define _GNU_SOURCE
#include "cpu_compile.h"
#include "hash128.h"
#include "core/config.h"
#include "core/error.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define MAX_ARGS 128
#define MAX_OUTPUT (64 << 10) /* compiler output kept for messages; the rest is drained */

/* Split s on blanks into argv[*argc...]; the words point into buf (a copy of s). */
static int split_words(const char *s, char *buf, size_t bufsz, char **argv, int *argc) {
  if (snprintf(buf, bufsz, "%s", s) >= (int)bufsz) return -1;
  char *save = NULL;
  for (char *w = strtok_r(buf, " \t\n", &save); w; w = strtok_r(NULL, " \t\n", &save)) {
    if (*argc >= MAX_ARGS - 8) return -1;
    argv[(*argc)++] = w;
  }
  return 0;
}

static const char *cc_cmd(void) { return cfg_str("CG_CC", "cc"); }

/* Run argv with stdin from /dev/null and stdout+stderr captured into *out (malloc'ed,
 * NUL-terminated). Returns the wait status, or -1 (errno set) if it could not start. */
static int run_capture(char *const argv[], char **out) {
  *out = NULL;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC)) return -1;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
  pid_t pid;
  int err = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (err) {
    close(fds[0]);
    errno = err;
    return -1;
  }
  size_t len = 0;
  char *buf = cg_malloc(MAX_OUTPUT), chunk[4096]; /* NULL: the output is dropped, the status still counts */
  for (;;) {
    ssize_t r = read(fds[0], chunk, sizeof chunk);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    size_t keep = (size_t)r < MAX_OUTPUT - 1 - len ? (size_t)r : MAX_OUTPUT - 1 - len;
    if (buf) memcpy(buf + len, chunk, keep), len += keep;
  }
  close(fds[0]);
  if (buf) buf[len] = 0;
  *out = buf;
  int status;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno == EINTR) continue;
    return 0; /* SIGCHLD ignored by the host program: the status is gone; judge by the output file */
  }
  return status;
}

/* The compiler's --version output, asked once per compiler command. */
static pthread_mutex_t version_lock = PTHREAD_MUTEX_INITIALIZER;
static char *version_cc, *version_text;

static void cc_version_hash(const char *cc, uint64_t h[2]) {
  pthread_mutex_lock(&version_lock);
  if (!version_cc || strcmp(version_cc, cc)) {
    free(version_cc), free(version_text);
    version_cc = cg_strdup(cc), version_text = NULL;
    char buf[1024], *argv[MAX_ARGS];
    int argc = 0;
    if (version_cc && !split_words(cc, buf, sizeof buf, argv, &argc) && argc > 0) {
      argv[argc++] = "--version";
      argv[argc] = NULL;
      if (run_capture(argv, &version_text) < 0) version_text = NULL;
    }
  }
  rt_hash128_str(version_text, h);
  if (!version_text) free(version_cc), version_cc = NULL; /* not remembered: asked again next time */
  pthread_mutex_unlock(&version_lock);
}

/* "model name" and "flags" of the first CPU in /proc/cpuinfo ("" elsewhere). */
static char cpu_id[8192];
static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;
static void read_cpu_id(void) {
  FILE *f = fopen("/proc/cpuinfo", "re");
  if (!f) return;
  char line[4096];
  size_t n = 0;
  int got = 0;
  while (got < 2 && fgets(line, sizeof line, f)) {
    if (strncmp(line, "model name", 10) && strncmp(line, "flags", 5) && strncmp(line, "Features", 8)) continue;
    size_t l = strlen(line);
    if (n + l < sizeof cpu_id) memcpy(cpu_id + n, line, l), n += l;
    got++;
  }
  cpu_id[n] = 0;
  fclose(f);
}

static const char *cflags(char *buf, size_t bufsz) {
  snprintf(buf, bufsz, "%s %s", cfg_str("CG_CFLAGS", RT_CC_FLAGS), cfg_str("CG_CFLAGS_ADD", ""));
  return buf;
}

void rt_cc_key(const char *name, const char *source, uint64_t key[2]) {
  char fl[1024];
  const char *cc = cc_cmd();
  pthread_once(&cpu_once, read_cpu_id);
  uint64_t ver[2] = {0, 0};
  cc_version_hash(cc, ver);
  key[0] = 0x63677261642d7274ULL, key[1] = 2; /* "cgrad-rt", format version 2: symbols carry the key */
  rt_hash128_str(name, key);
  rt_hash128_str(source, key);
  rt_hash128_str(cc, key);
  rt_hash128_str(cflags(fl, sizeof fl), key);
  rt_hash128(ver, sizeof ver, key);
  rt_hash128_str(cpu_id, key);
}

/* The first lines of the compiler's output, with the temporary file's name replaced by
 * "<name>.c" so messages point at the kernel. */
static void excerpt(const char *out, const char *src_path, const char *name, char *buf, size_t bufsz) {
  size_t n = 0, plen = strlen(src_path);
  int lines = 0;
  for (const char *s = out ? out : ""; *s && lines < 8 && n + 1 < bufsz;) {
    if (!strncmp(s, src_path, plen)) {
      n += (size_t)snprintf(buf + n, bufsz - n, "%s.c", name);
      if (n >= bufsz) n = bufsz - 1;
      s += plen;
      continue;
    }
    if (*s == '\n') lines++;
    buf[n++] = *s++;
  }
  while (n > 0 && buf[n - 1] == '\n') n--;
  buf[n] = 0;
}

cg_status rt_cc_compile(const char *name, const char *source, const char *dir, char **so_path) {
  *so_path = NULL;
  size_t dl = strlen(dir) + 32;
  char *src = cg_malloc(dl), *so = cg_malloc(dl);
  if (!src || !so) {
    free(src), free(so);
    return CG_ERR_NOMEM;
  }
  snprintf(src, dl, "%s/tmp-XXXXXX.c", dir);
  int fd = mkstemps(src, 2);
  if (fd < 0) {
    cg_status st = cg_fail(CG_ERR_IO, "compile '%s': cannot create a source file in %s: %s", name, dir, strerror(errno));
    free(src), free(so);
    return st;
  }
  size_t len = strlen(source), done = 0;
  while (done < len) {
    ssize_t w = write(fd, source + done, len - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    done += (size_t)w;
  }
  close(fd);
  snprintf(so, dl, "%.*s.so", (int)(strlen(src) - 2), src);

  char words[2048], fl[1024], *argv[MAX_ARGS], *out = NULL;
  int argc = 0, status = -1;
  const char *cc = cc_cmd();
  cg_status st = CG_OK;
  if (done < len) st = cg_fail(CG_ERR_IO, "compile '%s': cannot write %s", name, src);
  else if (split_words(cc, words, sizeof words / 2, argv, &argc) || argc == 0 ||
           split_words(cflags(fl, sizeof fl), words + sizeof words / 2, sizeof words / 2, argv, &argc))
    st = cg_fail(CG_ERR_INVALID, "compile '%s': CG_CC '%s' / CG_CFLAGS give an empty or too long command", name, cc);
  else {
    char *tail[] = {"-fPIC", "-shared", "-o", so, src, NULL};
    memcpy(argv + argc, tail, sizeof tail);
    status = run_capture(argv, &out);
    if (status < 0)
      st = cg_fail(CG_ERR_RUNTIME, "compile '%s': cannot run the C compiler '%s' (knob CG_CC): %s", name, argv[0],
                   strerror(errno));
    else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || access(so, R_OK)) {
      char ex[768];
      excerpt(out, src, name, ex, sizeof ex);
      if (WIFSIGNALED(status))
        st = cg_fail(CG_ERR_RUNTIME, "compile '%s': %s was killed by signal %d:\n%s", name, argv[0], WTERMSIG(status), ex);
      else
        st = cg_fail(CG_ERR_RUNTIME, "compile '%s': %s exited with status %d:\n%s", name, argv[0],
                     WIFEXITED(status) ? WEXITSTATUS(status) : -1, ex);
    }
  }
  free(out);
  unlink(src);
  free(src);
  if (st != CG_OK) {
    unlink(so);
    free(so);
    return st;
  }
  *so_path = so;
  return CG_OK;
}
