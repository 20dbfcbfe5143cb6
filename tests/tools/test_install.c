/* Installing: `cmake --install BUILD --prefix P` into a scratch prefix, then a small
 * external program (a reduction checked against plain C) is built against the installed
 * package twice, with pkg-config (static linking: --libs --static must bring -lm -lpthread
 * -ldl -lz) and with CMake's find_package(cgrad), and run. The .pc file must follow the
 * prefix it was installed to. Skipped (with a note) when pkg-config or cmake is missing. */
#include "check.h"
#include "run_cli.h"
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[] = "/tmp/cgrad-install-test-XXXXXX";

static int sh(const char *cmd, char *out, size_t n) {
  char full[16384];
  snprintf(full, sizeof full, "( %s ) 2>&1", cmd);
  return run_command(full, out, n);
}

static void write_text(const char *name, const char *text) {
  char p[4200];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "w");
  CHECK(f != NULL, "%s", p);
  if (f) fputs(text, f), fclose(f);
}

/* The external program: sum of squares of 1..100 in float64 through cgrad, vs C. */
static const char *MAIN_C =
    "#include <cgrad.h>\n"
    "#include <stdio.h>\n"
    "int main(void) {\n"
    "  double v[100], want = 0;\n"
    "  for (int i = 0; i < 100; i++) v[i] = i + 1, want += (double)(i + 1) * (i + 1);\n"
    "  cg_tensor *t = cg_from_data(v, CG_FLOAT64, (int64_t[]){100}, 1);\n"
    "  double got = cg_item(cg_sum(cg_mul(t, t), NULL, 0, false));\n"
    "  printf(\"sum %.1f want %.1f (cgrad %s)\\n\", got, want, CG_VERSION);\n"
    "  return got == want ? 0 : 1;\n"
    "}\n";

int main(void) {
  const char *bin = getenv("CG_BIN_DIR");
  static char out[1 << 16];
  char cmd[16384];
  if (!bin) bin = ".";
  if (sh("command -v cmake && command -v pkg-config", out, sizeof out) != 0) {
    printf("skipped: cmake or pkg-config is not installed (apt-get install cmake pkg-config)\n");
    return test_summary();
  }
  CHECK(mkdtemp(dir) != NULL);
  /* the test binaries are built with the same sanitizer flags as the library */
#if defined(__SANITIZE_ADDRESS__)
  const char *san = "-fsanitize=address,undefined";
#elif defined(__SANITIZE_THREAD__)
  const char *san = "-fsanitize=thread";
#else
  const char *san = "";
#endif
  snprintf(cmd, sizeof cmd, "cmake --install '%s' --prefix '%s/prefix'", bin, dir);
  CHECK(sh(cmd, out, sizeof out) == 0, "install:\n%s", out);
  write_text("main.c", MAIN_C);

  /* pkg-config, from the .pc file in the installed tree */
  snprintf(cmd, sizeof cmd, "cd '%s' && pc=$(ls -d prefix/lib*/pkgconfig prefix/lib/*/pkgconfig 2>/dev/null | head -1) && "
                            "PKG_CONFIG_PATH=\"$PWD/$pc\" pkg-config --variable=prefix cgrad", dir);
  CHECK(sh(cmd, out, sizeof out) == 0, "pkg-config finds cgrad:\n%s", out);
  char prefix[4200];
  snprintf(prefix, sizeof prefix, "%s/prefix", dir);
  char real_prefix[4200] = "", real_pc[4200] = "";
  out[strcspn(out, "\n")] = 0;
  CHECK(realpath(prefix, real_prefix) && realpath(out, real_pc) && !strcmp(real_prefix, real_pc),
        "the .pc file's prefix '%s' is the install prefix '%s'", out, prefix);
  snprintf(cmd, sizeof cmd, "cd '%s' && pc=$(ls -d prefix/lib*/pkgconfig prefix/lib/*/pkgconfig 2>/dev/null | head -1) && "
                            "PKG_CONFIG_PATH=\"$PWD/$pc\" pkg-config --libs --static cgrad", dir);
  CHECK(sh(cmd, out, sizeof out) == 0 && strstr(out, "-lcgrad") && strstr(out, "-lm") && strstr(out, "-lpthread") && strstr(out, "-ldl"),
        "static link flags:\n%s", out);
#ifdef CG_TEST_ZLIB
  CHECK(strstr(out, "-lz") != NULL, "-lz when built with zlib:\n%s", out);
#endif
  snprintf(cmd, sizeof cmd,
           "cd '%s' && pc=$(ls -d prefix/lib*/pkgconfig prefix/lib/*/pkgconfig 2>/dev/null | head -1) && export PKG_CONFIG_PATH=\"$PWD/$pc\" && "
           "cc %s main.c -o main_pc $(pkg-config --cflags cgrad) -Wl,-Bstatic $(pkg-config --libs-only-L cgrad) -lcgrad "
           "-Wl,-Bdynamic $(pkg-config --libs-only-l --static cgrad | sed 's/-lcgrad//') && ./main_pc",
           dir, san);
  CHECK(sh(cmd, out, sizeof out) == 0 && strstr(out, "sum 338350.0 want 338350.0"), "pkg-config build, static library:\n%s", out);
  snprintf(cmd, sizeof cmd,
           "cd '%s' && pc=$(ls -d prefix/lib*/pkgconfig prefix/lib/*/pkgconfig 2>/dev/null | head -1) && export PKG_CONFIG_PATH=\"$PWD/$pc\" && "
           "cc %s main.c -o main_so $(pkg-config --cflags --libs cgrad) && LD_LIBRARY_PATH=$(pkg-config --variable=libdir cgrad) ./main_so",
           dir, san);
  CHECK(sh(cmd, out, sizeof out) == 0 && strstr(out, "sum 338350.0 want 338350.0"), "pkg-config build, shared library:\n%s", out);

  /* CMake: find_package(cgrad), the shared library, run through its RPATH-less path */
  write_text("CMakeLists.txt", "cmake_minimum_required(VERSION 3.20)\n"
                               "project(uses_cgrad C)\n"
                               "find_package(cgrad 0.1 REQUIRED)\n"
                               "add_executable(main_cmake main.c)\n"
                               "target_link_libraries(main_cmake PRIVATE cgrad::cgrad)\n"
                               "add_executable(main_cmake_static main.c)\n"
                               "target_link_libraries(main_cmake_static PRIVATE cgrad::cgrad_static)\n");
  snprintf(cmd, sizeof cmd,
           "cd '%s' && cmake -S . -B b -DCMAKE_PREFIX_PATH=\"$PWD/prefix\" -DCMAKE_C_FLAGS='%s' -DCMAKE_EXE_LINKER_FLAGS='%s' >cfg.log && "
           "cmake --build b -j2 >build.log && ./b/main_cmake && ./b/main_cmake_static",
           dir, san, san);
  int rc = sh(cmd, out, sizeof out);
  if (rc != 0) {
    char more[8192];
    snprintf(cmd, sizeof cmd, "cat '%s/cfg.log' '%s/build.log'", dir, dir);
    sh(cmd, more, sizeof more);
    fprintf(stderr, "%s\n", more);
  }
  CHECK(rc == 0 && strstr(out, "sum 338350.0 want 338350.0"), "find_package build (shared and static):\n%s", out);

  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK(system(cmd) == 0);
  return test_summary();
}
