/* `cgrad train gpt` and `cgrad sample` on a tiny model: training is bit-reproducible for a
 * seed (the loss lines of two runs are identical) and writes a checkpoint; sampling with
 * a seed gives the same text twice, another seed other text, and the KV-cache path the
 * same text as recomputing the whole window (--no-cache) and as the eager step (JIT=0), and
 * each cached step's logits equal the whole window's within a stated tolerance; --amp bf16, fp16 and fp8 train and
 * sample (fp16's losses float32's within 1e-3); bad options and inputs give
 * clear errors. The default corpus (Debian's fortunes) is used when installed. */
#include "check.h"
#include "run_cli.h"
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int run(const char *cmd, char *out, size_t n) { return run_command(cmd, out, n); }

/* The lines of s that start with prefix, concatenated. */
static void lines(const char *s, const char *prefix, char *out, size_t n) {
  out[0] = 0;
  for (const char *p = s; p && *p;) {
    const char *e = strchr(p, '\n');
    size_t len = e ? (size_t)(e - p) + 1 : strlen(p);
    if (!strncmp(p, prefix, strlen(prefix)) && strlen(out) + len < n) strncat(out, p, len);
    p = e ? e + 1 : NULL;
  }
}

int main(void) {
  const char *bin = getenv("CG_BIN_DIR");
  char cgrad[1024], cmd[16384], dir[] = "/tmp/cgrad-gpt-test-XXXXXX";
  static char o1[1 << 16], o2[1 << 16], l1[1 << 14], l2[1 << 14];
  snprintf(cgrad, sizeof cgrad, "%s/cgrad", bin ? bin : ".");
  CHECK(access(cgrad, X_OK) == 0, "the cgrad program is at %s", cgrad);
  CHECK(mkdtemp(dir) != NULL);

  /* a small text with some structure */
  char path[256];
  snprintf(path, sizeof path, "%s/text.txt", dir);
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  for (int i = 0; f && i < 300; i++) fprintf(f, "%s %d: the quick brown fox jumps over the lazy dog\n", i % 3 ? "fox" : "dog", i % 17);
  if (f) fclose(f);

  snprintf(cmd, sizeof cmd, "'%s' train gpt --help 2>&1", cgrad);
  CHECK(run(cmd, o1, sizeof o1) == 0 && strstr(o1, "--eval-every"), "train gpt --help:\n%s", o1);
  snprintf(cmd, sizeof cmd, "'%s' sample --help 2>&1", cgrad);
  CHECK(run(cmd, o1, sizeof o1) == 0 && strstr(o1, "--temperature"), "sample --help:\n%s", o1);
  snprintf(cmd, sizeof cmd, "'%s' train gpt --steps zero 2>&1", cgrad);
  CHECK(run(cmd, o1, sizeof o1) == 2 && strstr(o1, "bad value 'zero' for --steps"), "bad value:\n%s", o1);
  snprintf(cmd, sizeof cmd, "'%s' train gpt --embd 30 --heads 4 --data %s 2>&1", cgrad, path);
  CHECK(run(cmd, o1, sizeof o1) == 2 && strstr(o1, "multiple of --heads"), "embd/heads:\n%s", o1);
  snprintf(cmd, sizeof cmd, "'%s' train gpt --data %s/missing.txt 2>&1", cgrad, dir);
  CHECK(run(cmd, o1, sizeof o1) == 1 && strstr(o1, "missing.txt"), "missing data:\n%s", o1);
  snprintf(cmd, sizeof cmd, "'%s' sample 2>&1", cgrad);
  CHECK(run(cmd, o1, sizeof o1) == 2 && strstr(o1, "--checkpoint FILE is required"), "sample without checkpoint:\n%s", o1);
  snprintf(cmd, sizeof cmd, "'%s' sample --checkpoint %s 2>&1", cgrad, path);
  CHECK(run(cmd, o1, sizeof o1) == 1 && strstr(o1, "not a cgrad GPT checkpoint"), "not a checkpoint:\n%s", o1);

  const char *model = "--block 16 --layers 2 --heads 2 --embd 16 --batch 4 --steps 3 --warmup 1 --eval-every 3 --eval-batches 1 --seed 5";
  for (int i = 0; i < 2; i++) {
    snprintf(cmd, sizeof cmd, "CG_PRINT_LOSS=1 '%s' train gpt --data %s %s --out %s/gpt%d.safetensors 2>&1", cgrad, path, model, dir, i);
    CHECK(run(cmd, i ? o2 : o1, sizeof o1) == 0, "training run %d:\n%s", i, i ? o2 : o1);
  }
  lines(o1, "step ", l1, sizeof l1), lines(o2, "step ", l2, sizeof l2);
  CHECK(strstr(l1, "step 3 loss") && strstr(l1, "val loss") && !strcmp(l1, l2), "the same seed must give the same losses:\n%s---\n%s", l1, l2);
  CHECK(strstr(o1, "trained 3 steps") && strstr(o1, "ms/step (median ") && strstr(o1, "tokens/s"), "the summary (mean and median step):\n%s", o1);
  snprintf(path, sizeof path, "%s/gpt0.safetensors", dir);
  struct stat sb;
  CHECK(stat(path, &sb) == 0 && sb.st_size > 1000, "checkpoint %s written", path);

  /* sampling: same seed, same text; cache == no cache; another seed, other text */
  static char s1[8192], s2[8192], s3[8192];
  snprintf(cmd, sizeof cmd, "'%s' sample --checkpoint %s --prompt 'the fox' --tokens 24 --seed 9 --temperature 1.5 2>/dev/null", cgrad, path);
  CHECK(run(cmd, s1, sizeof s1) == 0 && !strncmp(s1, "the fox", 7) && strlen(s1) >= 7 + 24, "sample:\n%s", s1);
  CHECK(run(cmd, s2, sizeof s2) == 0 && !strcmp(s1, s2), "the same seed must give the same text:\n%s\n%s", s1, s2);
  snprintf(cmd, sizeof cmd, "'%s' sample --checkpoint %s --prompt 'the fox' --tokens 24 --seed 9 --temperature 1.5 --no-cache 2>/dev/null", cgrad, path);
  CHECK(run(cmd, s2, sizeof s2) == 0 && !strcmp(s1, s2), "the KV cache must give what recomputing gives:\n%s\n%s", s1, s2);
  /* the decode step through the JIT and run eagerly (JIT=0) give the same text */
  snprintf(cmd, sizeof cmd, "JIT=0 '%s' sample --checkpoint %s --prompt 'the fox' --tokens 24 --seed 9 --temperature 1.5 2>/dev/null", cgrad, path);
  CHECK(run(cmd, s2, sizeof s2) == 0 && !strcmp(s1, s2), "JIT=0 must give the JIT's text:\n%s\n%s", s1, s2);
  /* each KV-cache step's logits equal the whole window's last position (float32, other
   * summation orders: within 1e-4 of the largest logit), past a full window (31 > 16) */
  snprintf(cmd, sizeof cmd, "CG_SAMPLE_CHECK=1 '%s' sample --checkpoint %s --prompt 'the fox' --tokens 24 --seed 3 2>&1 >/dev/null", cgrad, path);
  double diff = -1, big = -1;
  const char *at = run(cmd, s2, sizeof s2) == 0 ? strstr(s2, "max |diff|") : NULL;
  CHECK(at && sscanf(at, "max |diff| %lf, max |logit| %lf", &diff, &big) == 2 && big > 0 && diff >= 0 && diff <= 1e-4 * (big > 1 ? big : 1),
        "KV-cache logits vs the whole window's (diff %g, max %g):\n%s", diff, big, s2);
  snprintf(cmd, sizeof cmd, "'%s' sample --checkpoint %s --prompt 'the fox' --tokens 24 --seed 10 --temperature 1.5 2>/dev/null", cgrad, path);
  CHECK(run(cmd, s3, sizeof s3) == 0 && strcmp(s1, s3), "another seed should give other text:\n%s\n%s", s1, s3);
  snprintf(cmd, sizeof cmd, "'%s' sample --checkpoint %s --prompt 'the fox' --tokens 20 --seed 10 --top-k 3 --temperature 0.7 2>&1", cgrad, path);
  CHECK(run(cmd, s3, sizeof s3) == 0 && strstr(s3, "tokens/s"), "top-k sampling:\n%s", s3);
  snprintf(cmd, sizeof cmd, "'%s' sample --checkpoint %s --prompt 'QZ' 2>&1", cgrad, path);
  CHECK(run(cmd, s3, sizeof s3) == 2 && strstr(s3, "not in the model's vocabulary"), "unknown prompt character:\n%s", s3);

  /* mixed precision: bf16 and fp16 autocast and fp8 linears train (finite losses) and
   * sample; fp16's losses are float32's within 1e-3 relative (its operands are rounded to
   * 2^-11 relative; measured: 2e-6) */
  static const char *amps[] = {"bf16", "fp8", "fp16", ""}, *banner[] = {"bf16 autocast", "fp8 linears", "fp16 autocast", "float32"};
  double loss[4][3] = {{0}};
  for (int i = 3; i >= 0; i--) {
    const char *amp = amps[i];
    snprintf(path, sizeof path, "%s/text.txt", dir);
    snprintf(cmd, sizeof cmd, "CG_PRINT_LOSS=1 '%s' train gpt --data %s --block 8 --layers 1 --heads 2 --embd 8 --batch 2 --steps 3 --warmup 1 "
             "--eval-every 3 --eval-batches 1 %s%s --out %s/%s.safetensors 2>&1", cgrad, path, *amp ? "--amp " : "", amp, dir, *amp ? amp : "f32");
    CHECK(run(cmd, o1, sizeof o1) == 0 && strstr(o1, "step 3 loss") && !strstr(o1, "nan") && strstr(o1, banner[i]), "--amp %s:\n%s", amp, o1);
    for (int k = 0; k < 3; k++) {
      char key[32];
      snprintf(key, sizeof key, "step %d loss ", k + 1);
      const char *at = strstr(o1, key);
      loss[i][k] = at ? atof(at + strlen(key)) : 0;
    }
    if (!*amp) continue;
    if (i == 2)
      for (int k = 0; k < 3; k++)
        CHECK(loss[3][k] > 0 && fabs(loss[2][k] - loss[3][k]) <= 1e-3 * loss[3][k], "--amp fp16 step %d loss %.9g, float32's %.9g", k + 1, loss[2][k], loss[3][k]);
    snprintf(cmd, sizeof cmd, "'%s' sample --checkpoint %s/%s.safetensors --prompt fox --tokens 5 2>/dev/null", cgrad, dir, amp);
    CHECK(run(cmd, s3, sizeof s3) == 0 && !strncmp(s3, "fox", 3), "sampling the --amp %s checkpoint:\n%s", amp, s3);
  }

  /* fp16 with dynamic loss scaling, its overflows forced (an initial scale of 2^18 and
   * growth after 2 clean steps: the tiny model's float16 gradients overflow from 2^19 or
   * 2^18): some steps skipped, the printed final scale is GradScaler's rules replayed from
   * the skipped lines, and the JIT'd step gives the eager step's (JIT=0) lines bit for bit */
  {
    snprintf(cmd, sizeof cmd, "CG_PRINT_LOSS=1 '%s' train gpt --data %s --block 8 --layers 1 --heads 2 --embd 8 --batch 2 --steps 10 --warmup 1 "
             "--eval-every 10 --eval-batches 1 --amp fp16 --loss-scale 262144 --growth-interval 2 --out %s/fp16.safetensors 2>&1", cgrad, path, dir);
    CHECK(run(cmd, o1, sizeof o1) == 0 && strstr(o1, "fp16 autocast"), "--amp fp16:\n%s", o1);
    lines(o1, "step", l1, sizeof l1);
    char eager[16400];
    snprintf(eager, sizeof eager, "JIT=0 %s", cmd);
    CHECK(run(eager, o2, sizeof o2) == 0, "--amp fp16, JIT=0:\n%s", o2);
    lines(o2, "step", l2, sizeof l2);
    CHECK(!strcmp(l1, l2), "--amp fp16: JIT and JIT=0 differ:\n%s\n---\n%s", l1, l2);
    double want = 262144, got = 0;
    int good = 0, skipped = 0, taken = 0;
    for (int s = 1; s <= 10; s++) {
      char key[32];
      snprintf(key, sizeof key, "step %d loss", s);
      const char *p = strstr(l1, key), *e = p ? strchr(p, '\n') : NULL;
      CHECK(p && e, "no line for step %d:\n%s", s, l1);
      if (!p || !e) break;
      char line[256];
      snprintf(line, sizeof line, "%.*s", (int)(e - p), p);
      bool skip = strstr(line, "skipped") != NULL;
      if (skip) want *= 0.5, good = 0, skipped++;
      else if (taken++, ++good == 2) want *= 2, good = 0;
    }
    const char *fs = strstr(o1, "final scale ");
    CHECK(fs && sscanf(fs, "final scale %lf", &got) == 1 && got == want, "final scale %g, GradScaler's rules give %g:\n%s", got, want, o1);
    CHECK(skipped >= 1 && taken >= 5, "expected some steps skipped and most taken: %d skipped, %d taken:\n%s", skipped, taken, l1);
    snprintf(cmd, sizeof cmd, "'%s' train gpt --data %s --block 8 --layers 1 --heads 2 --embd 8 --steps 1 --amp fp16 --loss-scale 1000 --out %s/fp16.safetensors 2>&1",
             cgrad, path, dir);
    CHECK(run(cmd, o1, sizeof o1) == 1 && strstr(o1, "power of two"), "--loss-scale 1000:\n%s", o1);
  }

  if (stat("/usr/share/games/fortunes/fortunes", &sb) != 0) {
    printf("skipped the default corpus: Debian's fortunes package is not installed\n");
  } else {
    snprintf(cmd, sizeof cmd, "'%s' train gpt --block 8 --layers 1 --heads 1 --embd 8 --batch 2 --steps 1 --eval-batches 1 --out %s/f.safetensors 2>&1", cgrad, dir);
    CHECK(run(cmd, o1, sizeof o1) == 0 && strstr(o1, "bytes of text") && strstr(o1, "val loss"), "training on fortunes:\n%s", o1);
  }
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return test_summary();
}
