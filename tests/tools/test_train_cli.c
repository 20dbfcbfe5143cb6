/* The main job's command line, `cgrad train`, as a new user meets it: --help on every
 * command and a usage text naming every option; numbers checked (--seed 0 is a seed,
 * out-of-range values are refused); an unwritable --out refused before training; a batch
 * larger than the training set refused; out of memory reported with its size; a sane
 * summary for --steps 1; a bit-identical loss sequence for one seed; --save-every and a
 * --resume that continues bit-identically (same losses, byte-identical final checkpoint);
 * temp files of a killed writer removed by the next save. Training runs are skipped (with
 * a note) when the dataset is not installed. */
#include "check.h"
#include "run_cli.h"
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char cgrad[4096], dir[] = "/tmp/cgrad-train-test-XXXXXX";

/* Run cgrad with args (through sh, stdout+stderr into out); returns the exit status. */
static int run(const char *env, const char *args, char *out, size_t n) {
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "cd '%s' && %s '%s' %s 2>&1", dir, env, cgrad, args);
  return run_command(cmd, out, n);
}

/* The "step N loss X" lines of a run, in order. */
static void loss_lines(const char *src, char *dst, size_t cap) {
  dst[0] = 0;
  for (const char *p = src; (p = strstr(p, "step ")); p++) {
    const char *e = strchr(p, '\n');
    if (!e) break;
    bool line_start = p == src || p[-1] == '\n';
    const char *l = strstr(p, " loss ");
    if (line_start && l && l < e && !memchr(p, '[', (size_t)(e - p)) && strlen(dst) + (size_t)(e - p) + 2 < cap)
      strncat(dst, p, (size_t)(e - p + 1));
  }
}

static bool same_file(const char *a, const char *b) {
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "cmp -s '%s/%s' '%s/%s'", dir, a, dir, b);
  return system(cmd) == 0;
}

static bool exists(const char *name) {
  char p[4200];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  return access(p, F_OK) == 0;
}

static void usage_and_options(void) {
  static char out[1 << 14];
  const char *opts[] = {"--steps", "--batch", "--seed", "--lr", "--out", "--data", "--eval-every", "--eval-images", "--save-every", "--resume",
                        "--schedule", "--warmup", "--model", "--distributed", "--help"};
  CHECK(run("", "train --help", out, sizeof out) == 0, "train --help exits 0:\n%s", out);
  char first[1024] = "";
  sscanf(out, "%1023[^\n]", first);
  const char *usage_end = strstr(out, "\n  --"); /* the usage lines, before the option list */
  for (size_t i = 0; i < sizeof opts / sizeof *opts; i++) {
    const char *at = strstr(out, opts[i]);
    CHECK(at && usage_end && at < usage_end, "the usage line lists %s:\n%s", opts[i], out);
    char line[64];
    snprintf(line, sizeof line, "\n  %s ", opts[i]);
    CHECK(strstr(out, line) != NULL, "and the list explains %s", opts[i]);
  }
  CHECK(run("", "help train", out, sizeof out) == 0 && strstr(out, "--resume"), "help train:\n%s", out);
  CHECK(run("", "--help", out, sizeof out) == 0 && strstr(out, "train"), "--help:\n%s", out);
  CHECK(run("", "help", out, sizeof out) == 0 && strstr(out, "train"), "help:\n%s", out);
  CHECK(run("", "help --help", out, sizeof out) == 0, "help --help:\n%s", out);
  CHECK(run("", "train --steps 3 --help", out, sizeof out) == 0 && strstr(out, "usage"), "--help after other options");
  CHECK(run("", "", out, sizeof out) == 2 && strstr(out, "usage"), "no command is a usage error");
  CHECK(run("", "train --model resnet", out, sizeof out) == 2 && strstr(out, "--model expects cnn or mlp, got 'resnet'"), "bad --model:\n%s", out);
  CHECK(run("", "fly", out, sizeof out) == 2 && strstr(out, "unknown command"), "an unknown command:\n%s", out);
  CHECK(run("", "train --fly 1", out, sizeof out) == 2 && strstr(out, "unknown option '--fly'"), "an unknown option:\n%s", out);

  /* numbers: refused with the option, the range and what was given */
  struct { const char *args, *want; } bad[] = {
      {"train --steps 99999999999999999999", "out of range"}, {"train --steps 0", "from 1 to"},
      {"train --steps zero", "got 'zero'"},                    {"train --steps 5x", "got '5x'"},
      {"train --batch 2000000", "--batch expects"},           {"train --batch -3", "--batch expects"},
      {"train --seed -1", "--seed expects"},                  {"train --seed 18446744073709551616", "--seed expects"},
      {"train --lr nan", "--lr expects"},                     {"train --lr 0", "--lr expects"},
      {"train --eval-every -1", "--eval-every expects"},      {"train --save-every x", "--save-every expects"},
      {"train --steps", "--steps needs a value"},              {"train --schedule linear", "--schedule expects constant or cosine"},
      {"train --warmup -2", "--warmup expects"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    CHECK(run("", bad[i].args, out, sizeof out) == 2 && strstr(out, bad[i].want), "'%s' is refused saying '%s':\n%s", bad[i].args,
          bad[i].want, out);

  /* a missing dataset says which package to install */
  CHECK(run("", "train --data ./none --steps 1", out, sizeof out) == 1 && strstr(out, "dataset-fashion-mnist"), "missing dataset:\n%s", out);
  /* an unwritable --out is refused before anything else happens */
  CHECK(run("", "train --out /nonexistent-cgrad-dir/ck.safetensors", out, sizeof out) == 1 && strstr(out, "cannot write the checkpoint") &&
            strstr(out, "/nonexistent-cgrad-dir") && !strstr(out, "Fashion-MNIST"),
        "unwritable --out:\n%s", out);
  CHECK(run("", "train --out .", out, sizeof out) == 1 && strstr(out, "is a directory"), "--out a directory:\n%s", out);
}

/* The runs: one seed twice, then the same run split in two by --resume. */
static void training(void) {
  static char a0[1 << 16], a1[1 << 16], b[1 << 16], c[1 << 16], out[1 << 16];
  char l0[4096], l1[4096], lc[4096];
  const char *quick = "--batch 16 --eval-images 500 --schedule constant";
  char args[1024];

  /* temp files of a writer killed mid-save (a pid that no longer exists) go on the next save */
  pid_t dead = fork();
  if (dead == 0) _exit(0);
  waitpid(dead, NULL, 0);
  char stale[4300], live[4300];
  snprintf(stale, sizeof stale, "%s/a0.safetensors.%ld.0.tmp", dir, (long)dead);
  snprintf(live, sizeof live, "%s/a0.safetensors.%ld.0.tmp", dir, (long)getpid());
  FILE *f1 = fopen(stale, "w"), *f2 = fopen(live, "w");
  CHECK(f1 && f2);
  if (f1) fclose(f1);
  if (f2) fclose(f2);

  snprintf(args, sizeof args, "train --steps 4 --seed 7 %s --out a0.safetensors", quick);
  CHECK(run("CG_PRINT_LOSS=1", args, a0, sizeof a0) == 0, "run a0:\n%s", a0);
  snprintf(args, sizeof args, "train --steps 4 --seed 7 %s --out a1.safetensors", quick);
  CHECK(run("CG_PRINT_LOSS=1", args, a1, sizeof a1) == 0, "run a1:\n%s", a1);
  { /* the JIT (steps 3 and 4 are replays) changes nothing: JIT=0 runs every step eagerly */
    static char e[1 << 16];
    char le[4096], la[4096];
    snprintf(args, sizeof args, "train --steps 4 --seed 7 %s --out e0.safetensors", quick);
    CHECK(run("CG_PRINT_LOSS=1 JIT=0", args, e, sizeof e) == 0, "run with JIT=0:\n%s", e);
    loss_lines(e, le, sizeof le), loss_lines(a1, la, sizeof la);
    CHECK(le[0] && !strcmp(le, la), "JIT=0 and the JIT give the same losses:\n%s---\n%s", le, la);
    CHECK(same_file("e0.safetensors", "a1.safetensors"), "JIT=0 and the JIT write the same checkpoint bytes");
  }
  loss_lines(a0, l0, sizeof l0), loss_lines(a1, l1, sizeof l1);
  CHECK(strstr(l0, "step 1 loss") && strstr(l0, "step 4 loss"), "the loss of every step is printed:\n%s", a0);
  CHECK(!strcmp(l0, l1), "the same seed gives the same losses, bit for bit:\n%s---\n%s", l0, l1);
  CHECK(same_file("a0.safetensors", "a1.safetensors"), "and the same checkpoint, byte for byte");
  CHECK(strstr(a0, "test accuracy") && strstr(a0, "then ") && strstr(a0, "ms/step") && strstr(a0, "(median "), "the summary:\n%s", a0);
  CHECK(access(stale, F_OK) != 0 && access(live, F_OK) == 0, "the dead writer's temp file is gone, a live one stays");
  unlink(live);
  struct stat sb;
  char p[4200];
  snprintf(p, sizeof p, "%s/a0.safetensors", dir);
  CHECK(stat(p, &sb) == 0 && sb.st_size > 100000, "the checkpoint is written (%lld bytes)", (long long)sb.st_size);

  /* a cosine schedule: the first step's loss is the constant run's (computed before any
   * update), the next ones differ (the rate changes every step), and it is deterministic */
  {
    static char k0[1 << 16], k1[1 << 16];
    char lk0[4096], lk1[4096];
    snprintf(args, sizeof args, "train --steps 4 --seed 7 %s --schedule cosine --lr 0.003 --out k0.safetensors", quick);
    CHECK(run("CG_PRINT_LOSS=1", args, k0, sizeof k0) == 0, "cosine run:\n%s", k0);
    snprintf(args, sizeof args, "train --steps 4 --seed 7 %s --schedule cosine --lr 0.003 --out k1.safetensors", quick);
    CHECK(run("CG_PRINT_LOSS=1", args, k1, sizeof k1) == 0, "cosine run again:\n%s", k1);
    loss_lines(k0, lk0, sizeof lk0), loss_lines(k1, lk1, sizeof lk1);
    const char *s2c = strstr(lk0, "step 2 loss"), *s2 = strstr(l0, "step 2 loss");
    CHECK(s2c && s2 && !strncmp(lk0, l0, (size_t)(s2c - lk0)) && strcmp(s2c, s2), "cosine: step 1 as the constant run, then different:\n%s---\n%s", lk0, l0);
    CHECK(!strcmp(lk0, lk1) && same_file("k0.safetensors", "k1.safetensors"), "cosine: the same losses and checkpoint twice");
  }

  /* steps 1-2, then --resume for 3-4: the same losses and the same final checkpoint */
  snprintf(args, sizeof args, "train --steps 2 --seed 7 %s --out b.safetensors", quick);
  CHECK(run("CG_PRINT_LOSS=1", args, b, sizeof b) == 0 && exists("b.safetensors"), "run b:\n%s", b);
  snprintf(args, sizeof args, "train --steps 4 --resume b.safetensors --eval-images 500 --schedule constant --out c.safetensors");
  CHECK(run("CG_PRINT_LOSS=1", args, c, sizeof c) == 0 && strstr(c, "resuming at step 3"), "run c:\n%s", c);
  loss_lines(c, lc, sizeof lc);
  const char *tail = strstr(l0, "step 3 loss");
  CHECK(tail && !strcmp(lc, tail), "the resumed run's losses equal steps 3-4 of the whole run, bit for bit:\n%s---\n%s", lc, tail ? tail : l0);
  CHECK(same_file("a0.safetensors", "c.safetensors"), "and its checkpoint equals the whole run's, byte for byte");
  CHECK(run("", "train --steps 4 --seed 8 --resume b.safetensors", out, sizeof out) == 2 && strstr(out, "--seed 7"),
        "a --seed that differs from the checkpoint's is refused:\n%s", out);
  CHECK(run("", "train --steps 2 --resume b.safetensors", out, sizeof out) == 2 && strstr(out, "nothing to do"), "resume at the end:\n%s", out);
  CHECK(run("", "train --steps 4 --resume missing.safetensors", out, sizeof out) == 1 && strstr(out, "missing.safetensors"),
        "a missing checkpoint:\n%s", out);

  /* --seed 0, --steps 1 (a summary without a per-step time), --save-every */
  snprintf(args, sizeof args, "train --steps 1 --seed 0 %s --out one.safetensors", quick);
  CHECK(run("", args, out, sizeof out) == 0 && strstr(out, "seed 0"), "--seed 0 trains:\n%s", out);
  char summary[1024] = "";
  const char *sl = strstr(out, "test accuracy");
  if (sl) sscanf(sl, "%1023[^\n]", summary);
  CHECK(strstr(summary, "first step") && !strstr(summary, "then") && !strchr(summary, '-'), "a sane --steps 1 summary:\n%s", out);
  snprintf(args, sizeof args, "train --steps 3 --seed 7 --save-every 2 %s --out every.safetensors", quick);
  CHECK(run("", args, out, sizeof out) == 0 && strstr(out, "checkpoint at step 2: every.safetensors"), "--save-every 2:\n%s", out);
  CHECK(!strstr(out, "checkpoint at step 3"), "the last step's checkpoint is the final one:\n%s", out);
  CHECK(strstr(out, "0m00s left") != NULL, "the last progress line has no time left:\n%s", out);

  /* a batch larger than the training set; out of memory names the allocation */
  CHECK(run("", "train --steps 1 --batch 60001", out, sizeof out) == 2 && strstr(out, "larger than the training set (60000 images)"),
        "a batch larger than the training set:\n%s", out);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  printf("skipped the out-of-memory run: sanitizers reserve more address space than the limit\n");
#else
  CHECK(run("ulimit -v 1500000;", "train --steps 1 --batch 60000 --eval-images 500 --out oom.safetensors", out, sizeof out) == 1 &&
            strstr(out, "out of memory") && strstr(out, "bytes") && !exists("oom.safetensors"),
        "out of memory says so, with the size:\n%s", out);
#endif
  snprintf(p, sizeof p, "ls -a '%s' | grep -c tmp", dir);
  FILE *ls = popen(p, "r");
  int ntmp = -1;
  if (ls) {
    if (fscanf(ls, "%d", &ntmp) != 1) ntmp = -1;
    pclose(ls);
  }
  CHECK(ntmp == 0, "no temporary file is left (%d)", ntmp);
}

int main(void) {
  const char *bin = getenv("CG_BIN_DIR");
  snprintf(cgrad, sizeof cgrad, "%s/cgrad", bin ? bin : ".");
  if (cgrad[0] != '/') { /* the runs cd into the scratch directory */
    char *abs = realpath(cgrad, NULL);
    if (abs && strlen(abs) < sizeof cgrad) strcpy(cgrad, abs);
    free(abs);
  }
  CHECK(access(cgrad, X_OK) == 0, "the cgrad program is at %s", cgrad);
  CHECK(mkdtemp(dir) != NULL);
  usage_and_options();
  struct stat sb;
  if (stat("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", &sb) != 0)
    printf("skipped the training runs: Debian's dataset-fashion-mnist is not installed\n");
  else
    training();
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK(system(cmd) == 0);
  return test_summary();
}
