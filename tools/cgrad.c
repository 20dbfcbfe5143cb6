/* The cgrad command line.
 *
 *   cgrad train [options]   train the Fashion-MNIST CNN (Conv 1-32-5, Conv 32-32-5,
 *       BatchNorm, MaxPool, Conv 32-64-3, Conv 64-64-3, BatchNorm, MaxPool, Linear 576-10;
 *       Adam), show progress, report test accuracy, write a safetensors checkpoint that
 *       --resume continues from bit-identically (model, optimizer state, step, generator).
 *   cgrad help [COMMAND]   the usage text; every command also takes --help. */
#include <cgrad.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* Seconds since this process started (the kernel's start time, in clock ticks since boot,
 * against CLOCK_BOOTTIME: exec, loading and libc's start-up included), -1 if unknown. */
static double process_age(void) {
  FILE *f = fopen("/proc/self/stat", "r");
  char buf[1024];
  size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
  if (f) fclose(f);
  buf[n] = 0;
  const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
  unsigned long long start = 0;
  int field = 2;
  for (; p && *p && field < 22; p++)
    if (*p == ' ') field++;
  struct timespec t;
  long hz = sysconf(_SC_CLK_TCK);
  if (!p || sscanf(p, "%llu", &start) != 1 || hz <= 0 || clock_gettime(CLOCK_BOOTTIME, &t)) return -1;
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec - (double)start / (double)hz;
}

typedef struct {
  int64_t steps, batch, eval_every, save_every, eval_images;
  uint64_t seed;
  bool seed_given, batch_given, distributed;
  double lr;
  bool cosine;     /* --schedule cosine: warm-up, then cosine decay to lr / 100 */
  int64_t warmup;  /* -1: the default, 5% of the steps */
  const char *out, *data, *resume, *model;
} train_opts;

/* The learning rate of step (1-based): constant, or a linear warm-up then a cosine decay. */
static double lr_at(const train_opts *o, int64_t step) {
  if (!o->cosine) return o->lr;
  int64_t w = o->warmup >= 0 ? o->warmup : o->steps / 20;
  if (step <= w) return o->lr * (double)step / (double)(w + 1);
  double prog = o->steps > w ? (double)(step - w) / (double)(o->steps - w) : 1, lo = o->lr / 100;
  return lo + 0.5 * (o->lr - lo) * (1 + cos(M_PI * prog));
}

enum { MAX_STEPS = 1000000000, MAX_BATCH = 1000000, WARM_STEPS = 2 /* steps that compile kernels */ };

static int usage_main(FILE *f) {
  fprintf(f, "usage: cgrad COMMAND [options]\n"
             "commands:\n"
             "  train   train a CNN on Fashion-MNIST and write a checkpoint (cgrad train --help)\n"
             "  help    this text, or `cgrad help train`\n");
  return f == stderr ? 2 : 0;
}

static int usage_train(FILE *f) {
  fprintf(f, "usage: cgrad train [--steps N] [--batch B] [--seed S] [--lr LR] [--schedule S] [--warmup N]\n"
             "                   [--out FILE] [--data DIR] [--eval-every N] [--eval-images N] [--save-every N]\n"
             "                   [--resume FILE] [--model cnn|mlp] [--distributed] [--help]\n"
             "  --steps N        optimizer steps in all, 1 to %d (default 600)\n"
             "  --batch B        examples per step, 1 to the training set's size (default 512); with\n"
             "                   --distributed, per rank: a step's global batch is B times the ranks\n"
             "  --model M        cnn (default: the CNN above) or mlp (Linear 784-128, ReLU, Linear 128-10)\n"
             "  --distributed    data-parallel over MPI (run under mpirun -np N; needs -DCG_MPI=ON): every\n"
             "                   rank starts from rank 0's weights and takes its B examples of each global\n"
             "                   batch; gradients are averaged (allreduce in buckets); rank 0 prints,\n"
             "                   evaluates and writes the checkpoint. BatchNorm is synchronized (its batch\n"
             "                   statistics are the global batch's), so N ranks x B train as 1 x N*B.\n"
             "                   A rank that dies or hangs makes the others exit within CG_DIST_TIMEOUT_S\n"
             "  --seed S         seed for initialization and shuffling, 0 to 2^64-1 (default 42)\n"
             "  --lr LR          Adam learning rate (the peak of a schedule), > 0 (default 0.002)\n"
             "  --schedule S     cosine (default): a linear warm-up, then a cosine decay to lr/100\n"
             "                   at the last step; or constant\n"
             "  --warmup N       warm-up steps of the cosine schedule (default: 5%% of --steps)\n"
             "  --out FILE       checkpoint to write (default fashion_cnn.safetensors); its directory\n"
             "                   is checked for writing before training starts\n"
             "  --data DIR       Fashion-MNIST IDX files (default: Debian's dataset-fashion-mnist)\n"
             "  --eval-every N   report test accuracy every N steps (default 0: only at the end)\n"
             "  --eval-images N  test images the accuracy is measured on (default all 10000)\n"
             "  --save-every N   also write the checkpoint to --out every N steps (default 0: at the end)\n"
             "  --resume FILE    continue from a checkpoint of cgrad train (model, optimizer state,\n"
             "                   step and shuffling position): the run continues bit-identically;\n"
             "                   --steps is the total, the seed and batch are the checkpoint's (give the\n"
             "                   same --steps, --lr and --schedule: the rate is a function of them)\n"
             "  --help           this text\n"
             "CG_PRINT_LOSS=1 prints every step's loss on stdout.\n",
          MAX_STEPS);
  return f == stderr ? 2 : 0;
}

/* A usage error: the message is printed already; point at --help. */
static int bad_usage(void) {
  fprintf(stderr, "(cgrad train --help lists the options)\n");
  return 2;
}

/* The layers as a sequential model, or NULL (and every layer freed) when one was not made. */
static cg_module *sequential_or_free(cg_module **layers, int n) {
  for (int i = 0; i < n; i++)
    if (!layers[i]) {
      for (int j = 0; j < n; j++) cg_module_free(layers[j]);
      return NULL;
    }
  return cg_sequential(layers, n);
}

static cg_module *build_mlp(void) {
  cg_module *layers[] = {cg_flatten_layer(), cg_linear(784, 128, true), cg_relu_layer(), cg_linear(128, 10, true)};
  return sequential_or_free(layers, (int)(sizeof layers / sizeof *layers));
}

static cg_module *build_model(const char *kind) {
  if (!strcmp(kind, "mlp")) return build_mlp();
  cg_module *layers[] = {
      cg_conv2d_layer(1, 32, 5, 1, 0, 1, 1, true),  cg_relu_layer(), cg_conv2d_layer(32, 32, 5, 1, 0, 1, 1, true), cg_relu_layer(),
      cg_batchnorm2d(32),                             cg_maxpool2d(2, 2, 0),
      cg_conv2d_layer(32, 64, 3, 1, 0, 1, 1, true), cg_relu_layer(), cg_conv2d_layer(64, 64, 3, 1, 0, 1, 1, true), cg_relu_layer(),
      cg_batchnorm2d(64),                             cg_maxpool2d(2, 2, 0),
      cg_flatten_layer(),                             cg_linear(576, 10, true),
  };
  return sequential_or_free(layers, (int)(sizeof layers / sizeof *layers));
}

/* Copy the rows idx of a (N, 784) uint8 image array into a float batch (B, 1, 28, 28),
 * normalized as is usual for Fashion-MNIST. */
static void make_batch(const uint8_t *img, const uint8_t *lab, const int32_t *idx, int64_t b, float *x, int32_t *y) {
  for (int64_t i = 0; i < b; i++) {
    const uint8_t *src = img + (size_t)idx[i] * 784;
    for (int j = 0; j < 784; j++) x[i * 784 + j] = ((float)src[j] / 255.0f - 0.2860f) / 0.3530f;
    y[i] = lab[idx[i]];
  }
}

static void progress(int64_t step, int64_t steps, double loss, double ex_s, double left, bool tty) {
  int width = 30, done = (int)((double)width * (double)step / (double)steps);
  char bar[64], eta[32];
  for (int i = 0; i < width; i++) bar[i] = i < done ? '#' : '.';
  bar[width] = 0;
  if (left < 0) snprintf(eta, sizeof eta, "compiling");
  else snprintf(eta, sizeof eta, "%ldm%02lds left", (long)left / 60, (long)left % 60);
  fprintf(stderr, "%s[%s] step %" PRId64 "/%" PRId64 "  loss %.4f  %.0f ex/s  %s%s", tty ? "\r" : "", bar, step, steps, loss, ex_s, eta,
          tty ? "   " : "\n");
  fflush(stderr);
}

/* One training step as a function of (images, labels) -> loss, run through a cg_jit: its
 * kernels are captured on the second step and replayed after (JIT=0: every step eager). */
typedef struct {
  cg_module *model;
  cg_optimizer *opt;
  cg_tensor **params, **state;
  int np, ns;
  size_t bucket_bytes; /* --distributed: the gradients' allreduce buckets */
  bool overlap;        /* --distributed: allreduce overlapped with the backward */
} step_ctx;

static cg_status train_step(cg_tensor *const *in, int n_in, cg_tensor **out, int n_out, void *user) {
  step_ctx *c = user;
  (void)n_in, (void)n_out;
  cg_tensor *loss = cg_cross_entropy(cg_module_forward(c->model, in[0]), in[1], 0.0);
  cg_status st = loss ? cg_backward(loss) : cg_last_status();
  cg_tensor *const *upd = NULL;
  int nupd = 0;
  if (st == CG_OK) st = cg_optimizer_step_lazy(c->opt, &upd, &nupd);
  cg_tensor **run = st == CG_OK ? malloc(sizeof(cg_tensor *) * (size_t)(1 + nupd + c->ns)) : NULL;
  if (st == CG_OK && !run) st = CG_ERR_NOMEM;
  if (st == CG_OK) {
    /* one realize per step: the loss, the optimizer's updates (the gradients inside them)
     * and the running statistics */
    int nr = 0;
    run[nr++] = loss;
    for (int i = 0; i < nupd; i++) run[nr++] = upd[i];
    for (int i = 0; i < c->ns; i++) run[nr++] = c->state[i];
    st = cg_realize_many(run, nr);
  }
  free(run);
  cg_optimizer_zero_grad(c->opt);
  out[0] = loss;
  return st;
}

/* The data-parallel step (--distributed) as a function of (images, labels) -> loss, run
 * through a cg_jit like the one-process step: forward and backward on this rank's part of
 * the batch (synchronized BatchNorms allreduce their statistics inside), one realize for
 * the loss, gradients and statistics, the gradients (and the loss, for printing) averaged
 * over the ranks in buckets, then the optimizer step on every rank alike. The capture
 * records the collectives among the kernels (engine/capture.h), so a replay repeats them
 * with the replay's buffers. The allreduce overlaps the backward (CG_DIST_OVERLAP=0: after
 * it): a bucket of gradients (CG_DIST_BUCKET_KB; default a quarter of all, at least
 * 16 KB) starts as soon as the kernels computing them have run. */
static cg_status dist_step(cg_tensor *const *in, int n_in, cg_tensor **out, int n_out, void *user) {
  step_ctx *c = user;
  (void)n_in, (void)n_out;
  cg_tensor *loss = cg_cross_entropy(cg_module_forward(c->model, in[0]), in[1], 0.0);
  cg_status st = loss ? cg_backward(loss) : cg_last_status();
  cg_tensor *run[128], *grads[64];
  int nr = 0, ng = 0;
  if (st == CG_OK) {
    run[nr++] = loss;
    for (int i = 0; i < c->np && ng < 64; i++)
      if (cg_grad(c->params[i])) grads[ng++] = cg_grad(c->params[i]);
    for (int i = 0; i < c->ns && nr < 128; i++) run[nr++] = c->state[i];
    if (c->overlap) st = cg_dist_realize_allreduce(grads, ng, run, nr, CG_DIST_MEAN, c->bucket_bytes);
    else {
      for (int i = 0; i < ng && nr < 128; i++) run[nr++] = grads[i];
      st = cg_realize_many(run, nr);
      if (st == CG_OK) st = cg_dist_allreduce(grads, ng, CG_DIST_MEAN, c->bucket_bytes);
    }
  }
  if (st == CG_OK) st = cg_dist_allreduce(&loss, 1, CG_DIST_MEAN, 0);
  if (st == CG_OK) st = cg_optimizer_step(c->opt);
  cg_optimizer_zero_grad(c->opt);
  out[0] = loss;
  return st;
}

/* The predicted classes of a batch (evaluation mode): a second cg_jit, one context per
 * batch size (the last batch is smaller). */
static cg_status predict(cg_tensor *const *in, int n_in, cg_tensor **out, int n_out, void *user) {
  (void)n_in, (void)n_out;
  out[0] = cg_argmax(cg_module_forward(user, in[0]), 1, false);
  return out[0] ? CG_OK : cg_last_status();
}
static cg_jit *eval_jit;

/* Accuracy on the test set, in eval mode, batches of 500. */
static double evaluate(cg_module *model, const uint8_t *img, const uint8_t *lab, int64_t n) {
  enum { EB = 500 };
  static float x[EB * 784];
  static int32_t y[EB], idx[EB], pred[EB];
  int64_t correct = 0;
  cg_module_train(model, false);
  for (int64_t at = 0; at < n; at += EB) {
    int64_t b = n - at < EB ? n - at : EB;
    for (int64_t i = 0; i < b; i++) idx[i] = (int32_t)(at + i);
    make_batch(img, lab, idx, b, x, y);
    cg_scope_begin();
    cg_tensor *tx = cg_from_data(x, CG_FLOAT32, (int64_t[]){b, 1, 28, 28}, 4), *p = NULL;
    if (!eval_jit) eval_jit = cg_jit_new(predict, 1, model);
    if (tx && eval_jit && cg_jit_call(eval_jit, &tx, 1, &p) == CG_OK && cg_read(p, CG_INT32, pred, (size_t)b * sizeof(int32_t)) == CG_OK)
      for (int64_t i = 0; i < b; i++) correct += pred[i] == y[i];
    else
      fprintf(stderr, "cgrad: evaluation failed: %s\n", cg_last_error());
    cg_scope_end();
  }
  cg_module_train(model, true);
  return (double)correct / (double)n;
}

/* Can a file be created beside path? (Checked before training, so a bad --out does not
 * cost a whole run.) A probe file is made and removed: that covers permissions, read-only
 * filesystems and missing directories alike. */
static bool check_out(const char *path) {
  struct stat sb;
  if (!stat(path, &sb) && S_ISDIR(sb.st_mode)) {
    fprintf(stderr, "cgrad train: --out '%s' is a directory; expected a file name\n", path);
    return false;
  }
  char dir[4096], probe[4200];
  const char *slash = strrchr(path, '/');
  if (!slash) snprintf(dir, sizeof dir, ".");
  else snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
  snprintf(probe, sizeof probe, "%s/.cgrad-probe-%ld", dir, (long)getpid());
  int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    fprintf(stderr, "cgrad train: cannot write the checkpoint '%s': directory '%s': %s\n", path, dir, strerror(errno));
    return false;
  }
  close(fd);
  unlink(probe);
  return true;
}

/* Everything a run needs to continue: the model's state, the optimizer's, and where the
 * run is (step, seed, batch, generator position). */
enum { MAX_CK = 256 };
typedef struct {
  const char *names[MAX_CK];
  cg_tensor *ts[MAX_CK];
  int n, nfixed; /* nfixed: model + optimizer (owned elsewhere); the rest are train.* here */
} ckpt;

static bool ckpt_init(ckpt *c, cg_module *model, cg_optimizer *opt) {
  int nm = cg_module_state(model, c->names, c->ts, MAX_CK);
  int no = nm >= 0 && nm < MAX_CK ? cg_optimizer_state(opt, NULL, NULL, 0) : -1;
  if (nm < 0 || no < 0 || nm + no + 4 > MAX_CK) return false;
  const char *onames[MAX_CK];
  cg_optimizer_state(opt, onames, c->ts + nm, no);
  static char prefixed[MAX_CK][32];
  for (int i = 0; i < no; i++) {
    snprintf(prefixed[i], sizeof prefixed[i], "optim.%s", onames[i]);
    c->names[nm + i] = prefixed[i];
  }
  c->nfixed = c->n = nm + no;
  return true;
}

/* The train.* tensors for (step, seed, batch, rng), appended after the fixed ones. */
static bool ckpt_meta(ckpt *c, int64_t step, uint64_t seed, int64_t batch) {
  uint64_t rs, rc;
  cg_rng_get(&rs, &rc);
  int64_t v[4][2] = {{step, 0}, {(int64_t)seed, 0}, {batch, 0}, {(int64_t)rs, (int64_t)rc}};
  static const char *const nm[4] = {"train.step", "train.seed", "train.batch", "train.rng"};
  c->n = c->nfixed;
  for (int i = 0; i < 4; i++) {
    c->names[c->n] = nm[i];
    c->ts[c->n] = cg_from_data(v[i], CG_INT64, (int64_t[]){i == 3 ? 2 : 1}, 1);
    if (!c->ts[c->n++]) return false;
  }
  return true;
}

static void ckpt_drop_meta(ckpt *c) {
  for (int i = c->nfixed; i < c->n; i++) cg_free(c->ts[i]);
  c->n = c->nfixed;
}

static bool ckpt_save(ckpt *c, const char *path, int64_t step, const train_opts *o) {
  bool ok = ckpt_meta(c, step, o->seed, o->batch) && cg_save_safetensors(path, c->names, c->ts, c->n) == CG_OK;
  if (!ok) fprintf(stderr, "\ncgrad train: writing the checkpoint '%s': %s\n", path, cg_last_error());
  ckpt_drop_meta(c);
  return ok;
}

/* Load a checkpoint into the model and optimizer; *step, seed, batch and the generator
 * come from it. */
static bool ckpt_load(ckpt *c, const char *path, int64_t *step, uint64_t *seed, int64_t *batch) {
  bool ok = ckpt_meta(c, 0, 0, 0) && cg_load_safetensors(path, c->names, c->ts, c->n) == CG_OK;
  if (ok) {
    int64_t v[4][2];
    for (int i = 0; i < 4 && ok; i++) ok = cg_read(c->ts[c->nfixed + i], CG_INT64, v[i], sizeof(int64_t) * (i == 3 ? 2 : 1)) == CG_OK;
    if (ok) *step = v[0][0], *seed = (uint64_t)v[1][0], *batch = v[2][0], cg_rng_set((uint64_t)v[3][0], (uint64_t)v[3][1]);
  }
  if (!ok) fprintf(stderr, "cgrad train: --resume '%s': %s\n", path, cg_last_error());
  ckpt_drop_meta(c);
  return ok;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The median of n > 0 values (sorts them): the middle pair's mean when n is even. Also
 * cgrad_gpt.c's. */
double cg_tool_median(double *v, long n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int train(train_opts o) {
  cg_jit *step_jit = NULL;
  double t_start = now(), *dur = NULL; /* dur: the steps' times after the first */
  int64_t ndur = 0;
  int rc = 1;
  uint8_t *img = NULL, *lab = NULL, *timg = NULL, *tlab = NULL;
  float *x = NULL;
  int32_t *y = NULL, *idx = NULL;
  cg_module *model = NULL;
  cg_optimizer *opt = NULL;
  cg_batcher *batches = NULL;
  int rank = 0, world = 1;
  if (o.distributed) {
    if (cg_dist_init(NULL, NULL) != CG_OK) {
      fprintf(stderr, "cgrad train: --distributed: %s\n", cg_last_error());
      return 1;
    }
    rank = cg_dist_rank(), world = cg_dist_size();
  }
  bool lead = rank == 0; /* prints, evaluates and writes the checkpoint */
  if (lead && !check_out(o.out)) {
    if (o.distributed) cg_dist_abort(1);
    return 1;
  }
  cg_tensor *trx, *try_, *tex, *tey;
  if (cg_fashion_mnist(o.data, &trx, &try_, &tex, &tey) != CG_OK) {
    fprintf(stderr, "cgrad train: %s\n", cg_last_error());
    return 1;
  }
  int64_t ntrain = cg_shape(trx)[0], ntest = cg_shape(tex)[0];
  int64_t neval = o.eval_images && o.eval_images < ntest ? o.eval_images : ntest; /* the first N */
  img = malloc((size_t)ntrain * 784), lab = malloc((size_t)ntrain), timg = malloc((size_t)ntest * 784), tlab = malloc((size_t)ntest);
  bool read_ok = img && lab && timg && tlab && !cg_read(trx, CG_UINT8, img, (size_t)ntrain * 784) && !cg_read(try_, CG_UINT8, lab, (size_t)ntrain) &&
                 !cg_read(tex, CG_UINT8, timg, (size_t)ntest * 784) && !cg_read(tey, CG_UINT8, tlab, (size_t)ntest);
  cg_free(trx), cg_free(try_), cg_free(tex), cg_free(tey);
  if (!read_ok) {
    fprintf(stderr, "cgrad train: reading the dataset: %s\n", img && lab && timg && tlab ? cg_last_error() : "out of memory");
    goto out;
  }

  cg_manual_seed(o.seed);
  model = build_model(o.model);
  if (!model) {
    fprintf(stderr, "cgrad train: building the model: %s\n", cg_last_error());
    goto out;
  }
  if (o.distributed) cg_module_sync_batchnorm(model, true);
  cg_tensor *params[64], *state[64];
  const char *names[64];
  int np = cg_module_parameters(model, params, 64), ns = cg_module_state(model, names, state, 64);
  opt = cg_adam(params, np, o.lr, 0.9, 0.999, 1e-8, 0);
  step_ctx sc = {model, opt, params, state, np, ns, 0, !cg_get_config("CG_DIST_OVERLAP") || atoi(cg_get_config("CG_DIST_OVERLAP")) != 0};
  if (o.distributed) {
    int64_t nparam = 0;
    for (int i = 0; i < np; i++) nparam += cg_numel(params[i]);
    long kb = cg_get_config("CG_DIST_BUCKET_KB") ? atol(cg_get_config("CG_DIST_BUCKET_KB")) : 0;
    sc.bucket_bytes = kb > 0 ? (size_t)kb << 10 : (size_t)nparam * 4 / 4 > (16 << 10) ? (size_t)nparam * 4 / 4 : (16 << 10);
  }
  ckpt ck;
  if (!opt || !ckpt_init(&ck, model, opt)) {
    fprintf(stderr, "cgrad train: %s\n", cg_last_error());
    goto out;
  }
  int64_t start = 0;
  if (o.resume) {
    uint64_t seed;
    int64_t batch;
    if (!ckpt_load(&ck, o.resume, &start, &seed, &batch)) goto out;
    if ((o.seed_given && seed != o.seed) || (o.batch_given && batch != o.batch)) {
      fprintf(stderr, "cgrad train: --resume '%s' was made with --seed %" PRIu64 " --batch %" PRId64 "; the options given differ\n", o.resume,
              seed, batch);
      rc = 2;
      goto out;
    }
    o.seed = seed, o.batch = batch;
    if (start >= o.steps) {
      fprintf(stderr, "cgrad train: --resume '%s' is at step %" PRId64 ", and --steps %" PRId64 " leaves nothing to do\n", o.resume, start,
              o.steps);
      rc = 2;
      goto out;
    }
    cg_optimizer_set_steps(opt, start);
  }
  int64_t gbatch = o.batch * world; /* the global batch: rank r takes its r-th part */
  if (gbatch > ntrain) {
    fprintf(stderr, "cgrad train: --batch %" PRId64 "%s is larger than the training set (%" PRId64 " images)\n", o.batch,
            world > 1 ? " times the ranks" : "", ntrain);
    rc = 2;
    goto out;
  }
  /* every rank starts from rank 0's weights and optimizer state */
  if (o.distributed && cg_dist_broadcast(ck.ts, ck.nfixed, 0) != CG_OK) {
    fprintf(stderr, "cgrad train: rank %d: %s\n", rank, cg_last_error());
    cg_dist_abort(1);
  }
  x = malloc(sizeof(float) * (size_t)o.batch * 784);
  y = malloc(sizeof(int32_t) * (size_t)o.batch), idx = malloc(sizeof(int32_t) * (size_t)gbatch);
  batches = cg_batcher_new(ntrain, gbatch, o.seed, true, true);
  if (!x || !y || !idx) {
    fprintf(stderr, "cgrad train: out of memory for a batch of %" PRId64 " (%.1f MB)\n", o.batch, (double)o.batch * 784 * 4 / 1e6);
    goto out;
  }
  if (!batches) {
    fprintf(stderr, "cgrad train: %s\n", cg_last_error());
    goto out;
  }
  /* the shuffling position of step `start`: epoch start / per_epoch, that many batches in */
  int64_t per_epoch = cg_batcher_count(batches);
  cg_batcher_reset(batches, start / per_epoch);
  for (int64_t i = 0; i < start % per_epoch; i++) {
    cg_tensor *bi = NULL;
    cg_batcher_next(batches, &bi);
    cg_free(bi);
  }
  if (lead)
    fprintf(stderr, "cgrad train: Fashion-MNIST %" PRId64 " train / %" PRId64 " test images; %s with %d parameter tensors; batch %" PRId64
                    ", %" PRId64 " steps, seed %" PRIu64 "%s\n",
            ntrain, ntest, !strcmp(o.model, "mlp") ? "MLP" : "CNN", np, gbatch, o.steps, o.seed, o.resume ? " (resumed)" : "");
  if (lead && o.distributed) {
    int64_t nparam = 0; /* what each step allreduces: the gradients, float32 */
    for (int i = 0; i < np; i++) nparam += cg_numel(params[i]);
    fprintf(stderr, "cgrad train: data-parallel over %d rank%s, %" PRId64 " examples each per step; %" PRId64 " gradient values (%.2f MB) allreduced per step "
                    "in buckets of %zu KB, %s the backward\n",
            world, world == 1 ? "" : "s", o.batch, nparam, 4e-6 * (double)nparam, sc.bucket_bytes >> 10, sc.overlap ? "overlapped with" : "after");
  }
  if (lead && o.resume) fprintf(stderr, "cgrad train: resuming at step %" PRId64 " from %s\n", start + 1, o.resume);
  bool tty = isatty(2);
  double t_first = 0, t_first_proc = -1, t_first_end = 0, t_warm = 0, t_loop = now(), last_loss = NAN, wait_first = 0;
  int64_t nrun = o.steps - start, warm_at = start + (nrun > WARM_STEPS ? WARM_STEPS : nrun);
  long rss_warm = -1;
  int64_t rss_step = start + (nrun < 10 ? 1 : nrun / 10 < 50 ? nrun / 10 : 50);
  /* each step's own time after the first (evaluation and saving excluded): the median is the
   * steady state, which the mean hides while the first steps compile or wait for compiles */
  dur = nrun > 1 ? malloc(sizeof(double) * (size_t)(nrun - 1)) : NULL;
  for (int64_t step = start + 1; step <= o.steps; step++) {
    double t_step = now();
    cg_tensor *bi = NULL;
    int got = cg_batcher_next(batches, &bi);
    if (got == 0) {
      cg_batcher_reset(batches, cg_batcher_epoch(batches) + 1);
      got = cg_batcher_next(batches, &bi);
    }
    if (got <= 0 || !bi || cg_read(bi, CG_INT32, idx, sizeof(int32_t) * (size_t)gbatch) != CG_OK) {
      fprintf(stderr, "\ncgrad train: step %" PRId64 ": no batch: %s\n", step, got < 0 || bi ? cg_last_error() : "the batcher gave none");
      cg_free(bi);
      goto out;
    }
    cg_free(bi);
    make_batch(img, lab, idx + (size_t)rank * (size_t)o.batch, o.batch, x, y);
    cg_scope_begin();
    cg_tensor *tx = cg_from_data(x, CG_FLOAT32, (int64_t[]){o.batch, 1, 28, 28}, 4);
    cg_tensor *ty = cg_from_data(y, CG_INT32, (int64_t[]){o.batch}, 1);
    cg_tensor *in[2] = {tx, ty}, *loss = NULL;
    if (o.cosine && cg_optimizer_set_lr(opt, lr_at(&o, step)) != CG_OK) {
      fprintf(stderr, "\ncgrad train: step %" PRId64 ": setting the learning rate: %s\n", step, cg_last_error());
      cg_scope_end();
      if (o.distributed) cg_dist_abort(1);
      goto out;
    }
    if (!step_jit) step_jit = cg_jit_new(o.distributed ? dist_step : train_step, 1, &sc);
    cg_status st = tx && ty && step_jit ? cg_jit_call(step_jit, in, 2, &loss) : cg_last_status();
    if (st != CG_OK) {
      char who[32] = "";
      if (o.distributed) snprintf(who, sizeof who, "rank %d: ", rank);
      fprintf(stderr, "\ncgrad train: %sstep %" PRId64 " failed: %s\n", who, step, cg_last_error());
      cg_scope_end();
      if (o.distributed) cg_dist_abort(1); /* the others would wait for this rank */
      goto out;
    }
    last_loss = cg_item(loss);
    cg_scope_end();
    double t = now();
    if (step == start + 1) t_first = t - t_start, t_first_proc = process_age(), t_first_end = t, cg_dist_stats(NULL, NULL, &wait_first);
    else if (dur) dur[ndur++] = t - t_step;
    if (step == warm_at) t_warm = t;
    if (step == rss_step) rss_warm = rss_kb();
    if (!isfinite(last_loss)) {
      fprintf(stderr, "\ncgrad train: the loss became %g at step %" PRId64 "\n", last_loss, step);
      goto out;
    }
    if (!lead) continue; /* the rest is the lead rank's: printing, evaluating, saving */
    if (getenv("CG_PRINT_LOSS")) printf("step %" PRId64 " loss %.9g\n", step, last_loss);
    if (tty || step % 20 == 0 || step == o.steps) {
      /* time left from the steady steps only: the first ones compile the kernels */
      double el = t - t_loop, left = step > warm_at ? (t - t_warm) / (double)(step - warm_at) * (double)(o.steps - step) : -1;
      progress(step, o.steps, last_loss, (double)(step - start) * (double)o.batch / el, step == o.steps ? 0 : left, tty);
    }
    if (o.eval_every && step % o.eval_every == 0)
      fprintf(stderr, "%sstep %" PRId64 ": test accuracy %.2f%%\n", tty ? "\n" : "", step, 100 * evaluate(model, timg, tlab, neval));
    if (o.save_every && step % o.save_every == 0 && step < o.steps) {
      if (!ckpt_save(&ck, o.out, step, &o)) goto out;
      fprintf(stderr, "%scheckpoint at step %" PRId64 ": %s\n", tty ? "\n" : "", step, o.out);
    }
  }
  double t_end = now(), train_s = t_end - t_loop;
  if (!lead) { /* wait for the lead's checkpoint, so the job ends together */
    if (cg_dist_barrier() != CG_OK) {
      fprintf(stderr, "cgrad train: rank %d: %s\n", rank, cg_last_error());
      cg_dist_abort(1);
    }
    rc = 0;
    goto out;
  }
  long rss_end = rss_kb(); /* before evaluation, which runs other shapes */
  double acc = evaluate(model, timg, tlab, neval);
  fprintf(stderr, "%s", tty ? "\n" : "");
  printf("test accuracy %.2f%% after %" PRId64 " steps (batch %" PRId64 ") in %.1f s: first step %.2f s", 100 * acc, o.steps, gbatch, train_s,
         t_first);
  if (t_first_proc >= 0) printf(" (%.2f s after the process started)", t_first_proc);
  if (nrun > 1) printf(", then %.0f ms/step", 1e3 * (t_end - t_first_end) / (double)(nrun - 1));
  if (ndur > 0) {
    printf(" (median %.1f ms)", 1e3 * cg_tool_median(dur, ndur));
  }
  printf("; final loss %.4f", last_loss);
  if (neval < ntest) printf(" (accuracy on the first %" PRId64 " of %" PRId64 " test images)", neval, ntest);
  printf("\n");
  if (!ckpt_save(&ck, o.out, o.steps, &o)) goto out;
  printf("checkpoint: %s (%d tensors: model, optimizer state and position; --resume continues from it)\n", o.out, ck.nfixed + 4);
  if (o.distributed && nrun > 1) {
    double waited;
    cg_dist_stats(NULL, NULL, &waited);
    printf("collectives: rank 0 waited %.1f ms per step for them (allreduce %s the backward)\n", 1e3 * (waited - wait_first) / (double)(nrun - 1),
           sc.overlap ? "overlapped with" : "after");
  }
  printf("resident memory while training: %.1f MB after warm-up (step %" PRId64 "), %.1f MB after the last step (%+.2f%%)\n", rss_warm / 1024.0,
         rss_step, rss_end / 1024.0, rss_warm > 0 ? 100.0 * (double)(rss_end - rss_warm) / (double)rss_warm : 0.0);
  fflush(stdout);
  if (o.distributed && cg_dist_barrier() != CG_OK) {
    fprintf(stderr, "cgrad train: rank 0: %s\n", cg_last_error());
    cg_dist_abort(1);
  }
  rc = 0;
out:
  cg_jit_free(step_jit);
  cg_jit_free(eval_jit), eval_jit = NULL;
  cg_batcher_free(batches);
  cg_optimizer_free(opt);
  cg_module_free(model);
  free(img), free(lab), free(timg), free(tlab), free(x), free(y), free(idx), free(dur);
  if (o.distributed) {
    if (rc) cg_dist_abort(rc); /* a failed rank ends the job rather than leave the others waiting */
    cg_dist_finalize();
  }
  return rc;
}

/* An integer option in [lo, hi]; false with a message naming the option and the range. */
static bool arg_int(const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (!*s || *end || errno == ERANGE || v < lo || v > hi) {
    fprintf(stderr, "cgrad train: %s expects an integer from %lld to %lld, got '%s'%s\n", opt, (long long)lo, (long long)hi, s,
            errno == ERANGE || ((*s && !*end) && (v < lo || v > hi)) ? " (out of range)" : "");
    return false;
  }
  *out = v;
  return true;
}

static bool arg_seed(const char *s, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (!*s || *end || errno == ERANGE || strchr(s, '-')) {
    fprintf(stderr, "cgrad train: --seed expects an integer from 0 to %llu, got '%s'\n", (unsigned long long)UINT64_MAX, s);
    return false;
  }
  *out = v;
  return true;
}

static bool arg_lr(const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (!*s || *end || errno == ERANGE || !isfinite(v) || !(v > 0)) {
    fprintf(stderr, "cgrad train: --lr expects a finite number > 0, got '%s'\n", s);
    return false;
  }
  *out = v;
  return true;
}

static int train_main(int argc, char **argv) {
  /* the defaults reach >= 90% test accuracy: 90.95 / 90.82 / 91.36% for seeds 1, 2, 3
   * (bench/RESULTS.md); 400 steps gave 89.99 / 90.60 / 90.49% */
  train_opts o = {.steps = 600, .batch = 512, .seed = 42, .lr = 2e-3, .cosine = true, .warmup = -1, .out = "fashion_cnn.safetensors", .model = "cnn"};
  for (int i = 0; i < argc; i++)
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage_train(stdout);
  for (int i = 0; i < argc; i += 2) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--distributed")) { /* a flag: no value */
      o.distributed = true, i--;
      continue;
    }
    bool known = !strcmp(a, "--steps") || !strcmp(a, "--batch") || !strcmp(a, "--eval-every") || !strcmp(a, "--save-every") || !strcmp(a, "--eval-images") ||
                 !strcmp(a, "--seed") || !strcmp(a, "--lr") || !strcmp(a, "--out") || !strcmp(a, "--data") || !strcmp(a, "--resume") ||
                 !strcmp(a, "--schedule") || !strcmp(a, "--warmup") || !strcmp(a, "--model");
    if (!known) {
      fprintf(stderr, "cgrad train: unknown option '%s'\n", a);
      return bad_usage();
    }
    if (!v || !*v) {
      fprintf(stderr, "cgrad train: %s needs a value\n", a);
      return bad_usage();
    }
    bool ok = true;
    if (!strcmp(a, "--steps")) ok = arg_int(a, v, 1, MAX_STEPS, &o.steps);
    else if (!strcmp(a, "--batch")) ok = arg_int(a, v, 1, MAX_BATCH, &o.batch), o.batch_given = true;
    else if (!strcmp(a, "--eval-every")) ok = arg_int(a, v, 0, MAX_STEPS, &o.eval_every);
    else if (!strcmp(a, "--save-every")) ok = arg_int(a, v, 0, MAX_STEPS, &o.save_every);
    else if (!strcmp(a, "--eval-images")) ok = arg_int(a, v, 1, MAX_STEPS, &o.eval_images);
    else if (!strcmp(a, "--seed")) ok = arg_seed(v, &o.seed), o.seed_given = true;
    else if (!strcmp(a, "--lr")) ok = arg_lr(v, &o.lr);
    else if (!strcmp(a, "--warmup")) ok = arg_int(a, v, 0, MAX_STEPS, &o.warmup);
    else if (!strcmp(a, "--schedule")) {
      ok = !strcmp(v, "constant") || !strcmp(v, "cosine");
      o.cosine = !strcmp(v, "cosine");
      if (!ok) fprintf(stderr, "cgrad train: --schedule expects constant or cosine, got '%s'\n", v);
    }
    else if (!strcmp(a, "--out")) o.out = v;
    else if (!strcmp(a, "--data")) o.data = v;
    else if (!strcmp(a, "--model")) {
      if (strcmp(v, "cnn") && strcmp(v, "mlp")) {
        fprintf(stderr, "cgrad train: --model expects cnn or mlp, got '%s'\n", v);
        ok = false;
      }
      o.model = v;
    }
    else o.resume = v;
    if (!ok) return bad_usage();
  }
  return train(o);
}

int cgrad_onnx_main(int argc, char **argv); /* tools/cgrad_onnx.c */
int cg_gpt_main(int argc, char **argv); /* tools/cgrad_gpt.c: train gpt, sample */

int main(int argc, char **argv) {
  if (argc > 1 && (!strcmp(argv[1], "sample") || (argc > 2 && !strcmp(argv[1], "train") && !strcmp(argv[2], "gpt")))) return cg_gpt_main(argc, argv);
  if (argc < 2) return usage_main(stderr);
  const char *cmd = argv[1];
  if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) return usage_main(stdout);
  if (!strcmp(cmd, "help")) {
    if (argc > 2 && !strcmp(argv[2], "train")) return usage_train(stdout);
    if (argc > 2 && strcmp(argv[2], "--help") && strcmp(argv[2], "-h") && strcmp(argv[2], "help")) {
      fprintf(stderr, "cgrad help: unknown command '%s'\n", argv[2]);
      return usage_main(stderr);
    }
    return usage_main(stdout);
  }
  if (!strcmp(cmd, "train")) return train_main(argc - 2, argv + 2);
  if (!strcmp(cmd, "onnx")) return cgrad_onnx_main(argc - 1, argv + 1);
  fprintf(stderr, "cgrad: unknown command '%s'\n", cmd);
  return usage_main(stderr);
}
