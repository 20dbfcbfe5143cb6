/* A main() that feeds every file of a corpus directory to LLVMFuzzerTestOneInput: the
 * harness as a plain program (gcc, ASan+UBSan in test.sh), one CTest test per harness. The
 * corpus is tests/fuzz/corpus/<FUZZ_NAME>/ beside this file; extra paths on the command
 * line (files) are replayed too, e.g. a crash libFuzzer saved. */
#include <dirent.h>
#include <sys/stat.h>

static int replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *buf = malloc((size_t)(n > 0 ? n : 0) + 1);
  size_t got = buf ? fread(buf, 1, (size_t)(n > 0 ? n : 0), f) : 0;
  fclose(f);
  if (!buf) return 0;
  LLVMFuzzerTestOneInput(buf, got);
  free(buf);
  return 1;
}

int main(int argc, char **argv) {
  char dir[1024];
  snprintf(dir, sizeof dir, "%s", __FILE__);
  char *slash = strrchr(dir, '/');
  snprintf(slash ? slash + 1 : dir, sizeof dir - (size_t)(slash ? slash + 1 - dir : 0), "corpus/%s", FUZZ_NAME);
  int n = 0;
  DIR *d = opendir(dir);
  if (!d) {
    fprintf(stderr, "no corpus at %s\n", dir);
    return 1;
  }
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    n += replay_file(p);
  }
  closedir(d);
  for (int i = 1; i < argc; i++) n += replay_file(argv[i]);
  printf("%s: replayed %d inputs\n", FUZZ_NAME, n);
  printf("%d passed, 0 failed\n", n);
  return n > 0 ? 0 : 1;
}
