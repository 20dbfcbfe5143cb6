/* Gradients of convolutions and pools (their own backward, tensor/composite.h) against
 * torch.nn.functional: input, weight and bias gradients for strides 1-3, padding (also
 * wider than the kernel's reach), dilation, groups and odd, non-square sizes; float32,
 * rtol 1e-4, atol 5e-5 (see AT). Inputs are fresh random values each run (seeded from the clock,
 * printed), the output gradient too. Then max pools over ties, and a conv and a
 * transposed conv sharing weights. */
#include "test_functional_ref.h"
#include <time.h>

#define A2(a, b) ((const int64_t[]){a, b})
#define A3(a, b, c) ((const int64_t[]){a, b, c})

/* atol: a gradient element here is a float32 sum of up to 800 products (32 channels x 5x5),
 * summed in another order than torch's; where they cancel, the two differ by up to ~K eps
 * times the products' size (measured: 1.2e-5 on a -0.0148 input gradient) */
static const double RT = 1e-4, AT = 5e-5;

typedef struct {
  const char *x, *w;
  int64_t s[2], p[2], d[2], g;
  bool bias;
} conv_c;

static void conv_cases(void) {
  static const conv_c cs[] = {
      {"2,3,7,9", "4,3,3,3", {1, 1}, {0, 0}, {1, 1}, 1, true},
      {"2,4,9,7", "6,4,3,2", {2, 2}, {1, 1}, {1, 1}, 1, true},
      {"1,4,11,10", "4,2,3,3", {3, 3}, {2, 2}, {2, 2}, 2, false},
      {"2,6,8,11", "6,2,2,3", {2, 2}, {2, 0}, {1, 3}, 3, true},
      {"1,2,13,9", "3,2,5,4", {3, 3}, {1, 1}, {1, 1}, 1, true},
      {"2,4,7,8", "8,1,3,3", {1, 3}, {1, 1}, {1, 1}, 4, true}, /* depthwise, multiplier 2 */
      {"1,2,5,5", "2,2,2,2", {2, 2}, {3, 3}, {1, 1}, 1, false}, /* padding beyond the kernel's reach */
      {"3,3,6,5", "5,3,1,1", {2, 1}, {0, 0}, {1, 1}, 1, true},  /* 1x1, stride > kernel */
      {"1,2,10,9", "2,1,3,2", {3, 2}, {0, 1}, {2, 1}, 2, true},
      /* 8+ output channels a group and 4096+ outputs: weights laid out channels-innermost,
       * vectors along the output channels, the output gradient channels-last */
      {"2,16,12,10", "32,16,3,3", {1, 1}, {1, 1}, {1, 1}, 1, true},
      {"2,32,9,13", "32,16,3,3", {1, 1}, {2, 1}, {2, 1}, 2, false},
      {"8,8,23,19", "16,8,3,3", {3, 2}, {1, 1}, {1, 1}, 1, true},
      {"6,8,9,9", "32,8,5,5", {1, 1}, {2, 2}, {1, 1}, 1, false}, /* weight gradient in chunks of 3 images */
  };
  for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
    const conv_c *c = &cs[i];
    char name[96], code[256];
    snprintf(name, sizeof name, "conv2d x %s w %s s(%lld,%lld) p(%lld,%lld) d(%lld,%lld) g%lld", c->x, c->w, (long long)c->s[0], (long long)c->s[1],
             (long long)c->p[0], (long long)c->p[1], (long long)c->d[0], (long long)c->d[1], (long long)c->g);
    ref_case(name, RT, AT);
    cg_tensor *x = ref_float(c->x, -1, 1, true), *w = ref_float(c->w, -1, 1, true);
    int64_t ws[4];
    ref_parse(c->w, ws);
    char bs[16];
    snprintf(bs, sizeof bs, "%lld", (long long)ws[0]);
    cg_tensor *b = c->bias ? ref_float(bs, -1, 1, true) : NULL;
    snprintf(code, sizeof code, "out = F.conv2d(x[0], x[1], %s, stride=(%lld,%lld), padding=(%lld,%lld), dilation=(%lld,%lld), groups=%lld)",
             c->bias ? "x[2]" : "None", (long long)c->s[0], (long long)c->s[1], (long long)c->p[0], (long long)c->p[1], (long long)c->d[0],
             (long long)c->d[1], (long long)c->g);
    ref_out(cg_conv2d(x, w, b, c->s, c->p, c->d, c->g), code);
  }
  ref_case("conv3d s(2,1,3) p(1,0,1) d(1,2,1) g2", RT, AT);
  cg_tensor *x = ref_float("2,4,5,7,6", -1, 1, true), *w = ref_float("4,2,2,3,2", -1, 1, true), *b = ref_float("4", -1, 1, true);
  ref_out(cg_conv3d(x, w, b, A3(2, 1, 3), A3(1, 0, 1), A3(1, 2, 1), 2),
          "out = F.conv3d(x[0], x[1], x[2], stride=(2,1,3), padding=(1,0,1), dilation=(1,2,1), groups=2)");
  ref_case("conv1d s3 p2 d2", RT, AT);
  x = ref_float("2,3,17", -1, 1, true), w = ref_float("2,3,4", -1, 1, true);
  ref_out(cg_conv1d(x, w, NULL, (const int64_t[]){3}, (const int64_t[]){2}, (const int64_t[]){2}, 1),
          "out = F.conv1d(x[0], x[1], stride=3, padding=2, dilation=2)");
}

typedef struct {
  const char *x, *w;
  int64_t s[2], p[2], op[2], d[2], g;
} convt_c;

static void transpose_cases(void) {
  static const convt_c cs[] = {
      {"2,3,5,4", "3,2,3,3", {1, 1}, {0, 0}, {0, 0}, {1, 1}, 1},
      {"1,4,4,5", "4,3,3,3", {2, 2}, {1, 1}, {1, 1}, {1, 1}, 2},
      {"1,2,3,4", "2,3,4,3", {3, 3}, {2, 2}, {2, 2}, {2, 2}, 1},
      {"2,2,4,3", "2,2,2,3", {3, 2}, {1, 0}, {0, 1}, {1, 2}, 1},
      {"1,6,3,5", "6,1,3,2", {2, 3}, {0, 1}, {1, 2}, {1, 1}, 3},
  };
  for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
    const convt_c *c = &cs[i];
    char name[96], code[256];
    snprintf(name, sizeof name, "convT2d x %s w %s s(%lld,%lld) p(%lld,%lld) op(%lld,%lld) d(%lld,%lld) g%lld", c->x, c->w,
             (long long)c->s[0], (long long)c->s[1], (long long)c->p[0], (long long)c->p[1], (long long)c->op[0], (long long)c->op[1],
             (long long)c->d[0], (long long)c->d[1], (long long)c->g);
    ref_case(name, RT, AT);
    cg_tensor *x = ref_float(c->x, -1, 1, true), *w = ref_float(c->w, -1, 1, true);
    int64_t ws[4];
    ref_parse(c->w, ws);
    char bs[16];
    snprintf(bs, sizeof bs, "%lld", (long long)(ws[1] * c->g));
    cg_tensor *b = ref_float(bs, -1, 1, true);
    snprintf(code, sizeof code,
             "out = F.conv_transpose2d(x[0], x[1], x[2], stride=(%lld,%lld), padding=(%lld,%lld), output_padding=(%lld,%lld), groups=%lld, "
             "dilation=(%lld,%lld))",
             (long long)c->s[0], (long long)c->s[1], (long long)c->p[0], (long long)c->p[1], (long long)c->op[0], (long long)c->op[1],
             (long long)c->g, (long long)c->d[0], (long long)c->d[1]);
    ref_out(cg_conv_transpose2d(x, w, b, c->s, c->p, c->op, c->d, c->g), code);
  }
}

typedef struct {
  const char *x;
  int64_t k[2], s[2], p[2];
} pool_c;

static void pool_cases(void) {
  static const pool_c cs[] = {
      {"2,3,7,9", {3, 3}, {1, 1}, {1, 1}},
      {"2,2,7,9", {2, 2}, {2, 2}, {0, 0}},
      {"1,3,11,10", {3, 3}, {3, 3}, {1, 1}},
      {"2,2,9,8", {3, 2}, {2, 3}, {1, 0}},
      {"3,5,6", {2, 3}, {1, 2}, {1, 1}}, /* unbatched */
      {"1,2,8,7", {4, 4}, {3, 2}, {2, 1}},
      /* windows apart (k < s): positions in no window get 0 (the backward spreads the
       * gradient by movement ops, no reduction) */
      {"2,3,10,11", {2, 3}, {3, 3}, {1, 1}},
      {"1,2,9,9", {1, 2}, {2, 3}, {0, 1}},
  };
  for (int avg = 0; avg < 2; avg++)
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
      const pool_c *c = &cs[i];
      char name[96], code[256];
      const char *f = avg ? "avg_pool2d" : "max_pool2d";
      snprintf(name, sizeof name, "%s x %s k(%lld,%lld) s(%lld,%lld) p(%lld,%lld)", f, c->x, (long long)c->k[0], (long long)c->k[1],
               (long long)c->s[0], (long long)c->s[1], (long long)c->p[0], (long long)c->p[1]);
      ref_case(name, RT, AT);
      cg_tensor *x = ref_float(c->x, -1, 1, true);
      snprintf(code, sizeof code, "out = F.%s(x[0], (%lld,%lld), (%lld,%lld), (%lld,%lld))", f, (long long)c->k[0], (long long)c->k[1],
               (long long)c->s[0], (long long)c->s[1], (long long)c->p[0], (long long)c->p[1]);
      ref_out(avg ? cg_avg_pool2d(x, c->k, c->s, c->p) : cg_max_pool2d(x, c->k, c->s, c->p), code);
    }
}

/* Max pools on inputs full of ties (three values, as after ReLU and BatchNorm): the whole
 * gradient of a window goes to its first max in row-major order, as in torch. */
static void pool_ties(void) {
  static const pool_c cs[] = {{"2,3,8,9", {2, 2}, {2, 2}, {0, 0}}, {"1,2,9,7", {3, 3}, {2, 1}, {1, 1}}, {"2,2,7,7", {3, 2}, {1, 3}, {1, 0}}};
  for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
    const pool_c *c = &cs[i];
    char name[96], code[256];
    snprintf(name, sizeof name, "max_pool2d ties x %s k(%lld,%lld) s(%lld,%lld)", c->x, (long long)c->k[0], (long long)c->k[1], (long long)c->s[0],
             (long long)c->s[1]);
    ref_case(name, RT, AT);
    int64_t shp[CG_MAX_DIMS], nel = 1;
    int nd = ref_parse(c->x, shp);
    for (int j = 0; j < nd; j++) nel *= shp[j];
    float *v = malloc(sizeof(float) * (size_t)nel);
    for (int64_t j = 0; j < nel; j++) v[j] = (float)floor(ref_unif(0, 3)) - 1;
    cg_tensor *x = ref_tensor(cg_from_data(v, CG_FLOAT32, shp, nd), true);
    free(v);
    snprintf(code, sizeof code, "out = F.max_pool2d(x[0], (%lld,%lld), (%lld,%lld), (%lld,%lld))", (long long)c->k[0], (long long)c->k[1],
             (long long)c->s[0], (long long)c->s[1], (long long)c->p[0], (long long)c->p[1]);
    ref_out(cg_max_pool2d(x, c->k, c->s, c->p), code);
  }
}

/* A conv and a transposed conv sharing the weight (what the input gradient of a conv is
 * built from): the weight's gradient flows through both composites, one nested in the
 * other (conv_transpose2d is a conv over views), and the input's through the first. */
static void nested(void) {
  ref_case("conv2d then conv_transpose2d, shared weight", 1e-4, 1e-4);
  cg_tensor *x = ref_float("1,2,6,5", -1, 1, true), *w = ref_float("3,2,3,3", -1, 1, true), *v = ref_float("1,2,6,5", -1, 1, false);
  cg_tensor *y = cg_conv2d(x, w, NULL, A2(2, 2), A2(1, 1), NULL, 1);
  cg_tensor *gx = cg_conv_transpose2d(y, w, NULL, A2(2, 2), A2(1, 1), A2(1, 0), NULL, 1);
  ref_out(cg_sum(cg_mul(gx, v), NULL, 0, false),
          "y = F.conv2d(x[0], x[1], stride=2, padding=1); out = (F.conv_transpose2d(y, x[1], stride=2, padding=1, output_padding=(1,0)) * x[2]).sum()");
}

int main(void) {
  ref_init_seeded();
  cg_scope_begin();
  conv_cases();
  transpose_cases();
  pool_cases();
  pool_ties();
  nested();
  cg_scope_end();
  ref_finish();
  return test_summary();
}
