/* cgrad onnx: look at and run ONNX models.
 *
 *   cgrad onnx info MODEL                  inputs, outputs (dtype, shape), opset, op counts
 *   cgrad onnx run MODEL --input NAME=FILE.npy ... [--output-dir DIR]
 *                                          run once, write each output as DIR/NAME.npy
 *   cgrad onnx bench MODEL [--iters N] [--batch B]
 *                                          latency and throughput on random inputs
 * Symbolic input dims are 1 for run/bench inputs made up here, except a leading symbolic
 * dim, which is the batch (--batch, default 1). */
#include <cgrad.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int cgrad_onnx_main(int argc, char **argv);

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int usage(FILE *f) {
  fprintf(f, "usage: cgrad onnx info MODEL\n"
             "       cgrad onnx run MODEL --input NAME=FILE.npy ... [--output-dir DIR]\n"
             "       cgrad onnx bench MODEL [--iters N] [--batch B]\n");
  return f == stderr ? 2 : 0;
}

static void print_io(const char *what, const char *name, int nd, cg_dtype dt, const int64_t *s) {
  printf("  %s %s: %s (", what, name, (int)dt < 0 ? "unsupported" : cg_dtype_name(dt));
  for (int d = 0; d < nd; d++) {
    if (s[d] < 0) printf("%s?", d ? ", " : "");
    else printf("%s%lld", d ? ", " : "", (long long)s[d]);
  }
  printf(")\n");
}

static int info(cg_onnx_model *m) {
  printf("opset %lld, %d nodes\n", (long long)cg_onnx_opset(m), cg_onnx_num_nodes(m));
  int64_t s[CG_MAX_DIMS];
  cg_dtype dt;
  for (int i = 0; i < cg_onnx_num_inputs(m); i++) {
    int nd = cg_onnx_input_info(m, i, &dt, s);
    print_io("input", cg_onnx_input_name(m, i), nd, dt, s);
  }
  for (int i = 0; i < cg_onnx_num_outputs(m); i++) {
    int nd = cg_onnx_output_info(m, i, &dt, s);
    print_io("output", cg_onnx_output_name(m, i), nd, dt, s);
  }
  /* op counts, in order of first use */
  int n = cg_onnx_num_nodes(m), nu = 0;
  const char **ops = calloc((size_t)n + 1, sizeof *ops);
  int *cnt = calloc((size_t)n + 1, sizeof *cnt);
  for (int i = 0; i < n && ops && cnt; i++) {
    const char *op = cg_onnx_node_op(m, i);
    int k = 0;
    while (k < nu && strcmp(ops[k], op)) k++;
    if (k == nu) ops[nu++] = op;
    cnt[k]++;
  }
  printf("ops:");
  for (int k = 0; k < nu; k++) printf(" %s %d%s", ops[k], cnt[k], k + 1 < nu ? "," : "\n");
  if (!nu) printf(" none\n");
  free(ops);
  free(cnt);
  return 0;
}

/* A random input for input i: symbolic dims are batch (leading) or 1. */
static cg_tensor *made_up_input(cg_onnx_model *m, int i, int64_t batch) {
  int64_t s[CG_MAX_DIMS];
  cg_dtype dt;
  int nd = cg_onnx_input_info(m, i, &dt, s);
  if (nd < 0) nd = 0;
  for (int d = 0; d < nd; d++)
    if (s[d] < 0) s[d] = d == 0 ? batch : 1;
  if (dt == CG_FLOAT32 || dt == CG_FLOAT64 || dt == CG_FLOAT16) return cg_randn(dt, s, nd);
  return cg_cast(cg_randint(0, 2, s, nd), dt);
}

static int run(cg_onnx_model *m, int argc, char **argv) {
  int nin = cg_onnx_num_inputs(m), nout = cg_onnx_num_outputs(m);
  cg_tensor **in = calloc((size_t)nin + 1, sizeof *in), **out = calloc((size_t)nout + 1, sizeof *out);
  const char *outdir = ".";
  int rc = 1;
  for (int a = 0; a < argc; a++) {
    if (!strcmp(argv[a], "--output-dir") && a + 1 < argc) outdir = argv[++a];
    else if (!strcmp(argv[a], "--input") && a + 1 < argc) {
      char *spec = argv[++a], *eq = strchr(spec, '=');
      if (!eq) {
        fprintf(stderr, "cgrad onnx run: --input wants NAME=FILE.npy, got '%s'\n", spec);
        goto done;
      }
      *eq = 0;
      int k = 0;
      while (k < nin && strcmp(cg_onnx_input_name(m, k), spec)) k++;
      if (k == nin) {
        fprintf(stderr, "cgrad onnx run: the model has no input '%s'\n", spec);
        goto done;
      }
      if (!(in[k] = cg_load_npy(eq + 1))) {
        fprintf(stderr, "cgrad onnx run: %s\n", cg_last_error());
        goto done;
      }
    } else {
      fprintf(stderr, "cgrad onnx run: unknown argument '%s'\n", argv[a]);
      goto done;
    }
  }
  for (int k = 0; k < nin; k++)
    if (!in[k]) {
      fprintf(stderr, "cgrad onnx run: input '%s' is missing (--input %s=FILE.npy)\n", cg_onnx_input_name(m, k), cg_onnx_input_name(m, k));
      goto done;
    }
  if (mkdir(outdir, 0777) && errno != EEXIST) {
    fprintf(stderr, "cgrad onnx run: cannot create '%s': %s\n", outdir, strerror(errno));
    goto done;
  }
  double t0 = now();
  if (cg_onnx_run(m, in, nin, out, nout) != CG_OK || cg_realize_many(out, nout) != CG_OK) {
    fprintf(stderr, "cgrad onnx run: %s\n", cg_last_error());
    goto done;
  }
  printf("ran in %.1f ms\n", 1e3 * (now() - t0));
  for (int k = 0; k < nout; k++) {
    char path[4096];
    const char *nm = cg_onnx_output_name(m, k);
    char safe[256];
    size_t j = 0;
    for (; nm[j] && j < sizeof safe - 1; j++) safe[j] = (nm[j] == '/' || nm[j] == '\\') ? '_' : nm[j];
    safe[j] = 0;
    snprintf(path, sizeof path, "%s/%s.npy", outdir, safe);
    if (cg_save_npy(path, out[k]) != CG_OK) {
      fprintf(stderr, "cgrad onnx run: %s\n", cg_last_error());
      goto done;
    }
    printf("  %s -> %s\n", nm, path);
  }
  rc = 0;
done:
  for (int k = 0; k < nin; k++) cg_free(in[k]);
  for (int k = 0; k < nout; k++) cg_free(out[k]);
  free(in);
  free(out);
  return rc;
}

static int bench(cg_onnx_model *m, int argc, char **argv) {
  long iters = 20, batch = 1;
  for (int a = 0; a < argc; a++) {
    char *end = NULL;
    if (!strcmp(argv[a], "--iters") && a + 1 < argc) iters = strtol(argv[++a], &end, 10);
    else if (!strcmp(argv[a], "--batch") && a + 1 < argc) batch = strtol(argv[++a], &end, 10);
    else {
      fprintf(stderr, "cgrad onnx bench: unknown argument '%s'\n", argv[a]);
      return 2;
    }
    if (*end || iters < 1 || batch < 1) {
      fprintf(stderr, "cgrad onnx bench: '%s' must be a positive integer\n", argv[a]);
      return 2;
    }
  }
  int nin = cg_onnx_num_inputs(m), nout = cg_onnx_num_outputs(m), rc = 1;
  cg_tensor **in = calloc((size_t)nin + 1, sizeof *in), **out = calloc((size_t)nout + 1, sizeof *out);
  cg_manual_seed(0);
  for (int k = 0; k < nin; k++)
    if (!(in[k] = made_up_input(m, k, batch)) || cg_realize(in[k]) != CG_OK) goto fail;
  double t0 = now(), first = 0, total = 0, best = 1e30;
  bool tty = isatty(fileno(stderr));
  for (long it = 0; it <= iters; it++) { /* iteration 0 compiles: timed apart */
    double t = now();
    cg_scope_begin();
    cg_status st = cg_onnx_run(m, in, nin, out, nout);
    if (st == CG_OK) st = cg_realize_many(out, nout);
    cg_scope_end(); /* frees the outputs too */
    if (st != CG_OK) goto fail;
    double dt = now() - t;
    if (it == 0) first = dt;
    else {
      total += dt;
      if (dt < best) best = dt;
    }
    fprintf(stderr, tty ? "\r  iteration %ld/%ld  %.2f ms" : "  iteration %ld/%ld  %.2f ms\n", it, iters, 1e3 * dt);
  }
  if (tty) fputc('\n', stderr);
  printf("first run (compiles) %.1f ms; then mean %.2f ms, best %.2f ms over %ld runs; batch %ld: %.1f items/s (%.1f s total)\n",
         1e3 * first, 1e3 * total / (double)iters, 1e3 * best, iters, batch, (double)batch * (double)iters / total, now() - t0);
  rc = 0;
  goto done;
fail:
  fprintf(stderr, "cgrad onnx bench: %s\n", cg_last_error());
done:
  for (int k = 0; k < nin; k++) cg_free(in[k]);
  free(in);
  free(out);
  return rc;
}

int cgrad_onnx_main(int argc, char **argv) {
  /* argv[0] is "onnx" */
  if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help")) return usage(argc < 2 ? stderr : stdout);
  const char *cmd = argv[1];
  if (strcmp(cmd, "info") && strcmp(cmd, "run") && strcmp(cmd, "bench")) {
    fprintf(stderr, "cgrad onnx: unknown command '%s'\n", cmd);
    return usage(stderr);
  }
  if (argc < 3) return usage(stderr);
  cg_onnx_model *m = cg_onnx_load(argv[2]);
  if (!m) {
    fprintf(stderr, "cgrad onnx %s: %s\n", cmd, cg_last_error());
    return 1;
  }
  int rc = !strcmp(cmd, "info") ? info(m) : !strcmp(cmd, "run") ? run(m, argc - 3, argv + 3) : bench(m, argc - 3, argv + 3);
  cg_onnx_free(m);
  return rc;
}
