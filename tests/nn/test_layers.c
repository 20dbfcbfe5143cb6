/* Modules against torch.nn with the same weights (torch's functional_call with our state
 * dict): outputs and the gradients of input and parameters; BatchNorm2d training over two
 * steps (outputs, grads, running stats, num_batches_tracked) and evaluation; Sequential's
 * state names and forward. Also initialization bounds, ownership across scopes, and
 * bad-argument messages. */
#include "test_functional_ref.h"

static const double RT = 1e-4, AT = 1e-5;

/* Register every state entry of m as the next inputs (parameters with grad). Returns the
 * index of the first. */
static int ref_state(cg_module *m) {
  const char *names[32];
  cg_tensor *ts[32];
  int n = cg_module_state(m, names, ts, 32), first = ref_cur()->nin;
  int np = cg_module_parameters(m, NULL, 0);
  cg_tensor *ps[32];
  cg_module_parameters(m, ps, 32);
  for (int i = 0; i < n; i++) {
    bool param = false;
    for (int j = 0; j < np; j++) param |= ps[j] == ts[i];
    ref_tensor(ts[i], param);
  }
  return first;
}

/* "{'weight': x[1], 'bias': x[2]}" for m's state registered from input `first`. */
static void sd_literal(cg_module *m, int first, char *buf, size_t cap) {
  const char *names[32];
  int n = cg_module_state(m, names, NULL, 32);
  size_t at = (size_t)snprintf(buf, cap, "{");
  for (int i = 0; i < n; i++) at += (size_t)snprintf(buf + at, cap - at, "%s'%s': x[%d]", i ? ", " : "", names[i], first + i);
  snprintf(buf + at, cap - at, "}");
}

/* One module on one input, compared with torch module `ctor`. */
static void module_case(const char *name, cg_module *m, const char *xshape, const char *ctor) {
  ref_case(name, RT, AT);
  CHECK(m != NULL, "%s: %s", name, cg_last_error());
  if (!m) return;
  cg_tensor *x = ref_float(xshape, -1, 1, true);
  int first = ref_state(m);
  char sd[512], code[1024];
  sd_literal(m, first, sd, sizeof sd);
  snprintf(code, sizeof code, "m = %s; out = fc(m, %s, (x[0],))", ctor, sd);
  ref_out(cg_module_forward(m, x), code);
  cg_module_free(m);
}

static void simple_modules(void) {
  module_case("Linear", cg_linear(5, 3, true), "2,5", "nn.Linear(5, 3)");
  module_case("Linear no bias", cg_linear(4, 2, false), "3,4", "nn.Linear(4, 2, bias=False)");
  module_case("Conv2d groups2 stride2 pad1", cg_conv2d_layer(4, 6, 3, 2, 1, 1, 2, true), "2,4,6,6", "nn.Conv2d(4, 6, 3, 2, 1, 1, 2)");
  module_case("Conv2d dilation2 no bias", cg_conv2d_layer(2, 3, 2, 1, 0, 2, 1, false), "1,2,5,5", "nn.Conv2d(2, 3, 2, dilation=2, bias=False)");
  module_case("ConvTranspose2d stride2 pad1 outpad1 groups2", cg_conv_transpose2d_layer(4, 6, 3, 2, 1, 1, 1, 2, true), "1,4,3,3",
              "nn.ConvTranspose2d(4, 6, 3, 2, 1, 1, 2)");
  module_case("LayerNorm", cg_layernorm((int64_t[]){4}, 1, 1e-5, true), "3,4", "nn.LayerNorm(4)");
  module_case("GroupNorm", cg_groupnorm(2, 4, 1e-5, true), "2,4,2,2", "nn.GroupNorm(2, 4)");
  module_case("MaxPool2d", cg_maxpool2d(3, 2, 1), "1,2,5,5", "nn.MaxPool2d(3, 2, 1)");
  module_case("AvgPool2d", cg_avgpool2d(2, 0, 0), "1,2,4,5", "nn.AvgPool2d(2)");
  module_case("ReLU", cg_relu_layer(), "3,4", "nn.ReLU()");
  module_case("Flatten", cg_flatten_layer(), "2,3,2", "nn.Flatten()");

  /* RMSNorm: torch 1.13 has no nn.RMSNorm; compare with its formula */
  ref_case("RMSNorm", RT, AT);
  cg_module *m = cg_rmsnorm((int64_t[]){2, 3}, 2, 1e-6);
  cg_tensor *x = ref_float("4,2,3", -1, 1, true);
  ref_state(m);
  ref_out(cg_module_forward(m, x), "out = x[0] * torch.rsqrt(x[0].pow(2).mean((-2, -1), keepdim=True) + 1e-6) * x[1]");
  cg_module_free(m);

  ref_case("Embedding", RT, AT);
  m = cg_embedding(6, 3);
  cg_tensor *idx = ref_int("2,2", 0, 6);
  ref_state(m);
  ref_out(cg_module_forward(m, idx), "m = nn.Embedding(6, 3); out = fc(m, {'weight': x[1]}, (x[0],))");
  cg_module_free(m);
}

static void batchnorm_cases(void) {
  /* training: two steps; backward through the second output */
  ref_case("BatchNorm2d train, 2 steps", RT, AT);
  cg_module *bn = cg_batchnorm2d(3);
  cg_tensor *x0 = ref_float("4,3,2,3", -2, 2, false);
  ref_state(bn); /* x[1..5] = weight, bias, running_mean, running_var, num_batches_tracked */
  cg_tensor *x1 = ref_float("4,3,2,3", -1, 3, true);
  cg_tensor *o1 = cg_module_forward(bn, x0), *o2 = cg_module_forward(bn, x1);
  const char *names[8];
  cg_tensor *st[8];
  CHECK(cg_module_state(bn, names, st, 8) == 5, "BatchNorm2d has 5 state entries");
  ref_out(o2, "m = nn.BatchNorm2d(3); sd = {'weight': x[1], 'bias': x[2], 'running_mean': x[3], 'running_var': x[4], "
              "'num_batches_tracked': x[5]}; o1 = fc(m, sd, (x[0],)); out = fc(m, sd, (x[6],)); extra = [o1, x[3], x[4], x[5]]");
  ref_extra(o1), ref_extra(st[2]), ref_extra(st[3]), ref_extra(st[4]);
  CHECK(cg_dtype_of(st[4]) == CG_INT64 && cg_ndim(st[4]) == 0 && cg_item(st[4]) == 2, "num_batches_tracked: %s %g", cg_dtype_name(cg_dtype_of(st[4])),
        cg_item(st[4]));
  cg_module_free(bn);

  /* evaluation after one training step: running stats normalize */
  ref_case("BatchNorm2d eval after a train step", RT, AT);
  bn = cg_batchnorm2d(2);
  x0 = ref_float("3,2,2,2", -2, 2, false);
  ref_state(bn);
  x1 = ref_float("2,2,3,2", -1, 3, true);
  cg_tensor *t = cg_module_forward(bn, x0);
  CHECK(t != NULL, "bn train: %s", cg_last_error());
  cg_module_train(bn, false);
  CHECK(!cg_module_is_training(bn), "eval mode");
  ref_out(cg_module_forward(bn, x1), "m = nn.BatchNorm2d(2); sd = {'weight': x[1], 'bias': x[2], 'running_mean': x[3], 'running_var': x[4], "
                                     "'num_batches_tracked': x[5]}; fc(m, sd, (x[0],)); m.eval(); out = fc(m, sd, (x[6],)); extra = [x[5]]");
  ref_extra(cg_module_state(bn, NULL, st, 8) == 5 ? st[4] : NULL);
  cg_module_free(bn);
}

static void sequential_case(void) {
  ref_case("Sequential conv-bn-relu-pool-flatten-linear", RT, AT);
  cg_module *mods[6] = {cg_conv2d_layer(3, 4, 3, 1, 1, 1, 1, true), cg_batchnorm2d(4), cg_relu_layer(), cg_maxpool2d(2, 0, 0), cg_flatten_layer(),
                        cg_linear(16, 5, true)};
  cg_module *seq = cg_sequential(mods, 6);
  CHECK(seq != NULL, "sequential: %s", cg_last_error());
  if (!seq) return;
  static const char *want[] = {"0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked", "5.weight", "5.bias"};
  const char *names[16];
  int n = cg_module_state(seq, names, NULL, 16);
  CHECK(n == 9, "Sequential state: %d entries", n);
  for (int i = 0; i < n && i < 9; i++) CHECK(strcmp(names[i], want[i]) == 0, "state %d: %s, expected %s", i, names[i], want[i]);
  CHECK(cg_module_parameters(seq, NULL, 0) == 6, "Sequential: %d parameters", cg_module_parameters(seq, NULL, 0));
  CHECK(strcmp(cg_module_kind(seq), "Sequential") == 0, "kind %s", cg_module_kind(seq));
  cg_tensor *x = ref_float("2,3,4,4", -1, 1, true);
  int first = ref_state(seq);
  char sd[1024], code[2048];
  sd_literal(seq, first, sd, sizeof sd);
  snprintf(code, sizeof code,
           "m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16, 5)); "
           "sd = %s; assert list(sd) == list(m.state_dict()), list(m.state_dict()); out = fc(m, sd, (x[0],))",
           sd);
  ref_out(cg_module_forward(seq, x), code);
  /* errors inside name the child */
  cg_tensor *bad = cg_module_forward(seq, cg_zeros(CG_FLOAT32, (int64_t[]){2, 3, 6, 6}, 4));
  CHECK(bad == NULL && strstr(cg_last_error(), "Sequential[5] (Linear)") && strstr(cg_last_error(), "(2, 36)"), "sequential error: %s",
        cg_last_error());
  cg_clear_error();
  cg_module_train(seq, false);
  CHECK(!cg_module_is_training(seq), "sequential eval");
  cg_module_free(seq);
}

/* Parameters: torch's bounds, realized, requiring grad, owned by the module (they survive
 * the scope they were made in; ASan's leak check sees cg_module_free release them). */
static void init_and_ownership(void) {
  cg_manual_seed(7);
  cg_module *lin, *conv, *convt, *emb, *drop;
  cg_scope_begin();
  lin = cg_linear(20, 30, true);
  conv = cg_conv2d_layer(4, 6, 3, 1, 0, 1, 2, true);
  convt = cg_conv_transpose2d_layer(4, 6, 3, 1, 0, 0, 1, 2, true);
  emb = cg_embedding(50, 8);
  drop = cg_dropout(0.5);
  cg_scope_end();
  struct {
    cg_module *m;
    double bound;
    int64_t wshape0, wshape1;
  } want[] = {{lin, 1 / sqrt(20.0), 30, 20}, {conv, 1 / sqrt(2 * 9.0), 6, 2}, {convt, 1 / sqrt(3 * 9.0), 4, 3}};
  for (int k = 0; k < 3; k++) {
    cg_tensor *ts[2];
    const char *names[2];
    CHECK(cg_module_state(want[k].m, names, ts, 2) == 2 && strcmp(names[0], "weight") == 0 && strcmp(names[1], "bias") == 0, "%s state names",
          cg_module_kind(want[k].m));
    CHECK(cg_shape(ts[0])[0] == want[k].wshape0 && cg_shape(ts[0])[1] == want[k].wshape1, "%s weight shape %s", cg_module_kind(want[k].m), "");
    for (int j = 0; j < 2; j++) {
      int64_t n = cg_numel(ts[j]);
      float *v = malloc(sizeof(float) * (size_t)n);
      CHECK(cg_read(ts[j], CG_FLOAT32, v, sizeof(float) * (size_t)n) == CG_OK, "read: %s", cg_last_error());
      float lo = 1e9f, hi = -1e9f;
      for (int64_t i = 0; i < n; i++) lo = fminf(lo, v[i]), hi = fmaxf(hi, v[i]);
      CHECK(lo >= -want[k].bound && hi <= want[k].bound && hi - lo > want[k].bound * (n > 50 ? 1.5 : 0.5), "%s %s in [%g, %g], bound %g",
            cg_module_kind(want[k].m), names[j], lo, hi, want[k].bound);
      free(v);
    }
  }
  cg_tensor *ew;
  CHECK(cg_module_state(emb, NULL, &ew, 1) == 1, "embedding state");
  double m = cg_item(cg_mean(ew, NULL, 0, false)), s = cg_item(cg_std(ew, NULL, 0, 1, false));
  CHECK(fabs(m) < 0.15 && fabs(s - 1) < 0.15, "embedding init N(0,1): mean %g std %g", m, s);
  /* training from a parameter after its scope ended */
  cg_scope_begin();
  cg_tensor *p[2];
  CHECK(cg_module_parameters(lin, p, 2) == 2, "linear params");
  cg_tensor *y = cg_module_forward(lin, cg_ones(CG_FLOAT32, (int64_t[]){1, 20}, 2));
  CHECK(y && cg_backward(cg_sum(y, NULL, 0, false)) == CG_OK, "linear backward: %s", cg_last_error());
  CHECK(cg_grad(p[1]) && cg_item(cg_sum(cg_grad(p[1]), NULL, 0, false)) == 30, "bias grad sums to 30");
  /* dropout: eval is identity */
  cg_tensor *x = cg_ones(CG_FLOAT32, (int64_t[]){100}, 1);
  cg_module_train(drop, false);
  CHECK(cg_item(cg_sum(cg_module_forward(drop, x), NULL, 0, false)) == 100, "dropout eval is identity");
  cg_module_train(drop, true);
  double kept = cg_item(cg_sum(cg_module_forward(drop, x), NULL, 0, false));
  CHECK(kept != 100 && fmod(kept, 2.0) == 0, "dropout train: sum %g (a multiple of 1/(1-p) = 2)", kept);
  cg_scope_end();
  cg_module_free(lin), cg_module_free(conv), cg_module_free(convt), cg_module_free(emb), cg_module_free(drop);
}

static void bad_args(void) {
  CHECK(cg_conv2d_layer(3, 4, 3, 1, 1, 1, 2, true) == NULL && strstr(cg_last_error(), "groups 2"), "conv groups: %s", cg_last_error());
  CHECK(cg_linear(0, 4, true) == NULL && strstr(cg_last_error(), "in_features"), "linear: %s", cg_last_error());
  CHECK(cg_groupnorm(3, 4, 1e-5, true) == NULL && strstr(cg_last_error(), "4"), "groupnorm: %s", cg_last_error());
  CHECK(cg_maxpool2d(2, 2, 2) == NULL && strstr(cg_last_error(), "padding"), "maxpool: %s", cg_last_error());
  CHECK(cg_dropout(-0.1) == NULL, "dropout p");
  cg_module *two[2] = {cg_relu_layer(), NULL};
  CHECK(cg_sequential(two, 2) == NULL && strstr(cg_last_error(), "module 1 is NULL"), "sequential NULL: %s", cg_last_error());
  cg_scope_begin();
  cg_module *lin = cg_linear(3, 2, true);
  CHECK(cg_module_forward(lin, cg_zeros(CG_FLOAT32, (int64_t[]){2, 4}, 2)) == NULL && strstr(cg_last_error(), "(2, 4)") &&
            strstr(cg_last_error(), "(2, 3)"),
        "linear forward: %s", cg_last_error());
  cg_module_free(lin);
  cg_scope_end();
  cg_clear_error();
}

int main(void) {
  cg_manual_seed(3);
  ref_init();
  cg_scope_begin();
  simple_modules();
  batchnorm_cases();
  sequential_case();
  cg_scope_end();
  ref_finish();
  init_and_ownership();
  bad_args();
  return test_summary();
}
