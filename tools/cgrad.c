/* The cgrad command line.
 *
 *   cgrad train [--steps N] [--batch B] [--seed S] [--lr LR] [--out FILE] [--data DIR]
 *       Train the Fashion-MNIST CNN (Conv 1-32-5, Conv 32-32-5, BatchNorm, MaxPool,
 *       Conv 32-64-3, Conv 64-64-3, BatchNorm, MaxPool, Linear 576-10; Adam), show
 *       progress, report test accuracy and write a safetensors checkpoint.
 *   cgrad help */
#include <cgrad.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Resident memory in kB (/proc/self/status), -1 if unknown. */
static long rss_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "VmRSS:", 6)) kb = atol(line + 6);
  if (f) fclose(f);
  return kb;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct {
  long steps, batch;
  uint64_t seed;
  double lr;
  const char *out, *data;
  long eval_every;
} train_opts;

static int usage(FILE *f) {
  fprintf(f, "usage: cgrad train [--steps N] [--batch B] [--seed S] [--lr LR] [--out FILE] [--data DIR]\n"
             "  --steps N   optimizer steps (default 700)\n"
             "  --batch B   examples per step (default 512)\n"
             "  --seed S    seed for initialization and shuffling (default 42)\n"
             "  --lr LR     Adam learning rate (default 0.001)\n"
             "  --out FILE  checkpoint to write (default fashion_cnn.safetensors)\n"
             "  --data DIR  Fashion-MNIST IDX files (default: Debian's dataset-fashion-mnist)\n");
  return f == stderr ? 2 : 0;
}

static cg_module *build_model(void) {
  cg_module *layers[] = {
      cg_conv2d_layer(1, 32, 5, 1, 0, 1, 1, true),  cg_relu_layer(), cg_conv2d_layer(32, 32, 5, 1, 0, 1, 1, true), cg_relu_layer(),
      cg_batchnorm2d(32),                             cg_maxpool2d(2, 2, 0),
      cg_conv2d_layer(32, 64, 3, 1, 0, 1, 1, true), cg_relu_layer(), cg_conv2d_layer(64, 64, 3, 1, 0, 1, 1, true), cg_relu_layer(),
      cg_batchnorm2d(64),                             cg_maxpool2d(2, 2, 0),
      cg_flatten_layer(),                             cg_linear(576, 10, true),
  };
  int n = (int)(sizeof layers / sizeof *layers);
  for (int i = 0; i < n; i++)
    if (!layers[i]) return NULL;
  return cg_sequential(layers, n);
}

/* Copy the rows idx of a (N, 784) uint8 image array into a float batch (B, 1, 28, 28),
 * normalized as is usual for Fashion-MNIST. */
static void make_batch(const uint8_t *img, const uint8_t *lab, const int32_t *idx, long b, float *x, int32_t *y) {
  for (long i = 0; i < b; i++) {
    const uint8_t *src = img + (size_t)idx[i] * 784;
    for (int j = 0; j < 784; j++) x[i * 784 + j] = ((float)src[j] / 255.0f - 0.2860f) / 0.3530f;
    y[i] = lab[idx[i]];
  }
}

static void progress(long step, long steps, double loss, double ex_s, double left, bool tty) {
  int width = 30, done = (int)((double)width * (double)step / (double)steps);
  char bar[64];
  for (int i = 0; i < width; i++) bar[i] = i < done ? '#' : '.';
  bar[width] = 0;
  fprintf(stderr, "%s[%s] step %ld/%ld  loss %.4f  %.0f ex/s  %ldm%02lds left%s", tty ? "\r" : "", bar, step, steps, loss, ex_s,
          (long)left / 60, (long)left % 60, tty ? "   " : "\n");
  fflush(stderr);
}

/* Accuracy on the test set, in eval mode, batches of 500. */
static double evaluate(cg_module *model, const uint8_t *img, const uint8_t *lab, long n) {
  enum { EB = 500 };
  static float x[EB * 784];
  static int32_t y[EB], idx[EB], pred[EB];
  long correct = 0;
  cg_module_train(model, false);
  for (long at = 0; at < n; at += EB) {
    long b = n - at < EB ? n - at : EB;
    for (long i = 0; i < b; i++) idx[i] = (int32_t)(at + i);
    make_batch(img, lab, idx, b, x, y);
    cg_scope_begin();
    cg_tensor *tx = cg_from_data(x, CG_FLOAT32, (int64_t[]){b, 1, 28, 28}, 4);
    cg_tensor *p = cg_argmax(cg_module_forward(model, tx), 1, false);
    if (p && cg_read(p, CG_INT32, pred, (size_t)b * sizeof(int32_t)) == CG_OK)
      for (long i = 0; i < b; i++) correct += pred[i] == y[i];
    else
      fprintf(stderr, "cgrad: evaluation failed: %s\n", cg_last_error());
    cg_scope_end();
  }
  cg_module_train(model, true);
  return (double)correct / (double)n;
}

static int train(train_opts o) {
  double t_start = now();
  cg_tensor *trx, *try_, *tex, *tey;
  if (cg_fashion_mnist(o.data, &trx, &try_, &tex, &tey) != CG_OK) {
    fprintf(stderr, "cgrad train: %s\n", cg_last_error());
    return 1;
  }
  long ntrain = (long)cg_shape(trx)[0], ntest = (long)cg_shape(tex)[0];
  uint8_t *img = malloc((size_t)ntrain * 784), *lab = malloc((size_t)ntrain), *timg = malloc((size_t)ntest * 784), *tlab = malloc((size_t)ntest);
  float *x = malloc(sizeof(float) * (size_t)o.batch * 784);
  int32_t *y = malloc(sizeof(int32_t) * (size_t)o.batch), *idx = malloc(sizeof(int32_t) * (size_t)o.batch);
  if (!img || !lab || !timg || !tlab || !x || !y || !idx) {
    fprintf(stderr, "cgrad train: out of memory\n");
    return 1;
  }
  if (cg_read(trx, CG_UINT8, img, (size_t)ntrain * 784) || cg_read(try_, CG_UINT8, lab, (size_t)ntrain) ||
      cg_read(tex, CG_UINT8, timg, (size_t)ntest * 784) || cg_read(tey, CG_UINT8, tlab, (size_t)ntest)) {
    fprintf(stderr, "cgrad train: reading the dataset: %s\n", cg_last_error());
    return 1;
  }
  cg_free(trx), cg_free(try_), cg_free(tex), cg_free(tey);

  cg_manual_seed(o.seed);
  cg_module *model = build_model();
  if (!model) {
    fprintf(stderr, "cgrad train: building the model: %s\n", cg_last_error());
    return 1;
  }
  cg_tensor *params[64], *state[64];
  const char *names[64];
  int np = cg_module_parameters(model, params, 64), ns = cg_module_state(model, names, state, 64);
  cg_optimizer *opt = cg_adam(params, np, o.lr, 0.9, 0.999, 1e-8, 0);
  cg_batcher *batches = cg_batcher_new(ntrain, o.batch, o.seed, true, true);
  if (!opt || !batches) {
    fprintf(stderr, "cgrad train: %s\n", cg_last_error());
    return 1;
  }
  fprintf(stderr, "cgrad train: Fashion-MNIST %ld train / %ld test images; CNN with %d parameter tensors; batch %ld, %ld steps, seed %llu\n",
          ntrain, ntest, np, o.batch, o.steps, (unsigned long long)o.seed);
  bool tty = isatty(2);
  double t_first = 0, t_loop = now(), last_loss = NAN;
  long rss_warm = -1, warm_step = o.steps < 10 ? 1 : o.steps / 10 < 50 ? o.steps / 10 : 50;
  for (long step = 1; step <= o.steps; step++) {
    cg_tensor *bi;
    if (cg_batcher_next(batches, &bi) <= 0) {
      cg_batcher_reset(batches, cg_batcher_epoch(batches) + 1);
      cg_batcher_next(batches, &bi);
    }
    cg_read(bi, CG_INT32, idx, sizeof(int32_t) * (size_t)o.batch);
    cg_free(bi);
    make_batch(img, lab, idx, o.batch, x, y);
    cg_scope_begin();
    cg_tensor *tx = cg_from_data(x, CG_FLOAT32, (int64_t[]){o.batch, 1, 28, 28}, 4);
    cg_tensor *ty = cg_from_data(y, CG_INT32, (int64_t[]){o.batch}, 1);
    cg_tensor *loss = cg_cross_entropy(cg_module_forward(model, tx), ty, 0.0);
    cg_status st = loss ? cg_backward(loss) : cg_last_status();
    if (st == CG_OK) {
      /* one realize for the loss, every gradient and the running statistics */
      cg_tensor *run[128];
      int nr = 0;
      run[nr++] = loss;
      for (int i = 0; i < np; i++) run[nr++] = cg_grad(params[i]);
      for (int i = 0; i < ns && nr < 128; i++) run[nr++] = state[i];
      st = cg_realize_many(run, nr);
    }
    if (st == CG_OK) st = cg_optimizer_step(opt);
    if (st != CG_OK) {
      fprintf(stderr, "\ncgrad train: step %ld failed: %s\n", step, cg_last_error());
      return 1;
    }
    last_loss = cg_item(loss);
    cg_optimizer_zero_grad(opt);
    cg_scope_end();
    if (step == 1) t_first = now() - t_start;
    if (step == warm_step) rss_warm = rss_kb();
    if (!isfinite(last_loss)) {
      fprintf(stderr, "\ncgrad train: the loss became %g at step %ld\n", last_loss, step);
      return 1;
    }
    if (getenv("CG_PRINT_LOSS")) printf("step %ld loss %.9g\n", step, last_loss);
    if (tty || step % 20 == 0 || step == o.steps) {
      double el = now() - t_loop, per = el / (double)step;
      progress(step, o.steps, last_loss, (double)step * (double)o.batch / el, per * (double)(o.steps - step), tty);
    }
    if (o.eval_every && step % o.eval_every == 0)
      fprintf(stderr, "%sstep %ld: test accuracy %.2f%%\n", tty ? "\n" : "", step, 100 * evaluate(model, timg, tlab, ntest));
  }
  double train_s = now() - t_loop;
  long rss_end = rss_kb(); /* before evaluation, which runs other shapes */
  double acc = evaluate(model, timg, tlab, ntest);
  fprintf(stderr, "%s", tty ? "\n" : "");
  printf("test accuracy %.2f%% after %ld steps (batch %ld) in %.1f s: first step %.2f s, then %.0f ms/step; final loss %.4f\n",
         100 * acc, o.steps, o.batch, train_s, t_first, 1e3 * (train_s - t_first) / (double)(o.steps > 1 ? o.steps - 1 : 1), last_loss);
  ns = cg_module_state(model, names, state, 64);
  if (cg_save_safetensors(o.out, names, state, ns) != CG_OK) {
    fprintf(stderr, "cgrad train: writing the checkpoint: %s\n", cg_last_error());
    return 1;
  }
  printf("checkpoint: %s (%d tensors)\n", o.out, ns);
  printf("resident memory while training: %.1f MB after warm-up (step %ld), %.1f MB after the last step (%+.2f%%)\n", rss_warm / 1024.0,
         warm_step, rss_end / 1024.0, rss_warm > 0 ? 100.0 * (double)(rss_end - rss_warm) / (double)rss_warm : 0.0);
  cg_batcher_free(batches);
  cg_optimizer_free(opt);
  cg_module_free(model);
  free(img), free(lab), free(timg), free(tlab), free(x), free(y), free(idx);
  return 0;
}

static bool arg_long(const char *s, long *out) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*end || v <= 0) return false;
  *out = v;
  return true;
}

int cg_gpt_main(int argc, char **argv); /* tools/cgrad_gpt.c: train gpt, sample */
int main(int argc, char **argv) {
  if (argc > 1 && (!strcmp(argv[1], "sample") || (argc > 2 && !strcmp(argv[1], "train") && !strcmp(argv[2], "gpt")))) return cg_gpt_main(argc, argv);
  if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help")) return usage(argc < 2 ? stderr : stdout);
  if (strcmp(argv[1], "train")) {
    fprintf(stderr, "cgrad: unknown command '%s'\n", argv[1]);
    return usage(stderr);
  }
  train_opts o = {.steps = 700, .batch = 512, .seed = 42, .lr = 1e-3, .out = "fashion_cnn.safetensors", .data = NULL};
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    bool ok = v != NULL;
    long seed = 0;
    if (!strcmp(a, "--steps")) ok = ok && arg_long(v, &o.steps);
    else if (!strcmp(a, "--batch")) ok = ok && arg_long(v, &o.batch);
    else if (!strcmp(a, "--eval-every")) ok = ok && arg_long(v, &o.eval_every);
    else if (!strcmp(a, "--seed")) ok = ok && arg_long(v, &seed) && (o.seed = (uint64_t)seed, true);
    else if (!strcmp(a, "--lr")) ok = ok && (o.lr = atof(v)) > 0;
    else if (!strcmp(a, "--out")) o.out = v;
    else if (!strcmp(a, "--data")) o.data = v;
    else {
      fprintf(stderr, "cgrad train: unknown option '%s'\n", a);
      return usage(stderr);
    }
    if (!ok) {
      fprintf(stderr, "cgrad train: option %s needs a positive value\n", a);
      return usage(stderr);
    }
    i++;
  }
  return train(o);
}
