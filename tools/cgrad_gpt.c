/* `cgrad train gpt` and `cgrad sample`: a character-level GPT (nanoGPT's architecture:
 * token + learned position embeddings, N pre-norm blocks of causal self-attention and a
 * GELU MLP, a final LayerNorm, the output projection tied to the token embedding),
 * trained with AdamW (decay on 2-d weights only), linear warm-up then cosine decay,
 * gradient clipping by global norm; validation loss and an atomic safetensors checkpoint
 * every --eval-every steps. Sampling runs the model one token at a time with a KV cache.
 *
 *   cgrad train gpt [--data FILE] [--steps N] [--batch B] [--block T] [--layers L]
 *                   [--heads H] [--embd C] [--lr LR] [--min-lr LR] [--warmup N]
 *                   [--wd WD] [--clip X] [--eval-every N] [--eval-batches N]
 *                   [--seed S] [--amp bf16|fp16|fp8] [--loss-scale S] [--growth-interval N]
 *                   [--out FILE]
 *   cgrad sample --checkpoint FILE [--prompt TEXT] [--tokens N] [--temperature T]
 *                [--top-k K] [--seed S]
 *
 * The data is read as bytes; the vocabulary is the set of bytes that occur (stored in the
 * checkpoint). The default corpus is Debian's `fortunes` package (every fortune file
 * under /usr/share/games/fortunes, concatenated). */
#include <cgrad.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int cg_gpt_main(int argc, char **argv);

#define FORTUNES_DIR "/usr/share/games/fortunes"

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* CPU time of the whole process (all threads): on a loaded machine the step's own cost,
 * where the wall clock also counts waiting for a core */
static double cpu_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

double cg_tool_median(double *v, long n); /* tools/cgrad.c */

static uint64_t mix64(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* ---- the model ------------------------------------------------------------------------ */

enum { P_LN1W, P_LN1B, P_QKVW, P_QKVB, P_PROJW, P_PROJB, P_LN2W, P_LN2B, P_FCW, P_FCB, P_FC2W, P_FC2B, P_PER_LAYER };
static const char *PNAME[P_PER_LAYER] = {"ln_1.weight",      "ln_1.bias",        "attn.c_attn.weight", "attn.c_attn.bias",
                                         "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight",        "ln_2.bias",
                                         "mlp.c_fc.weight",  "mlp.c_fc.bias",    "mlp.c_proj.weight",  "mlp.c_proj.bias"};

typedef struct {
  int64_t V, T, L, H, C; /* vocabulary, context, layers, heads, width */
  uint8_t vocab[256];
  int amp;               /* 0: float32; CG_BFLOAT16 / CG_FLOAT16 / AMP_FP8 for the matmuls */
  cg_fp8_scaling **fp8;  /* AMP_FP8: one per linear (4 per block, then the output head) */
  int np;
  cg_tensor **p;         /* wte, wpe, per layer P_PER_LAYER, ln_f.weight, ln_f.bias */
  char **names;
} gpt;

#define AMP_FP8 100

static cg_tensor *P(gpt *m, int layer, int which) { return m->p[2 + layer * P_PER_LAYER + which]; }

static void gpt_free(gpt *m) {
  for (int i = 0; m->fp8 && i <= 4 * m->L; i++) cg_fp8_scaling_free(m->fp8[i]);
  free(m->fp8), m->fp8 = NULL;
  for (int i = 0; i < m->np; i++) cg_free(m->p[i]), free(m->names[i]);
  free(m->p), free(m->names);
  m->p = NULL, m->names = NULL, m->np = 0;
}

/* A parameter: N(0, std) (std > 0), ones (std == -1) or zeros (std == 0). */
static cg_tensor *param(const int64_t *s, int nd, double std) {
  cg_tensor *t = std > 0 ? cg_mul(cg_randn(CG_FLOAT32, s, nd), cg_scalar(std)) : std < 0 ? cg_ones(CG_FLOAT32, s, nd) : cg_zeros(CG_FLOAT32, s, nd);
  if (t && cg_set_requires_grad(t, true) != CG_OK) return NULL;
  return t;
}

/* random: the training's initialization; else zeros, for a checkpoint to overwrite (drawing
 * 10M normals took ~0.3 s of every `cgrad sample`) */
static bool gpt_init(gpt *m, bool random) {
  int64_t C = m->C, L = m->L;
  m->np = (int)(4 + L * P_PER_LAYER);
  m->p = calloc((size_t)m->np, sizeof *m->p), m->names = calloc((size_t)m->np, sizeof *m->names);
  if (!m->p || !m->names) return false;
  double std = 0.02, pstd = 0.02 / sqrt(2.0 * (double)L);
  int k = 0;
  if (!random) std = 0;
  m->p[k] = param((int64_t[]){m->V, C}, 2, std), m->names[k++] = strdup("transformer.wte.weight");
  m->p[k] = param((int64_t[]){m->T, C}, 2, std), m->names[k++] = strdup("transformer.wpe.weight");
  for (int64_t l = 0; l < L; l++)
    for (int w = 0; w < P_PER_LAYER; w++) {
      int64_t s[2];
      int nd = 1;
      double sd = 0;
      switch (w) {
      case P_LN1W: case P_LN2W: s[0] = C, sd = -1; break;
      case P_QKVW: s[0] = 3 * C, s[1] = C, nd = 2, sd = std; break;
      case P_QKVB: s[0] = 3 * C; break;
      case P_PROJW: s[0] = C, s[1] = C, nd = 2, sd = pstd; break;
      case P_FCW: s[0] = 4 * C, s[1] = C, nd = 2, sd = std; break;
      case P_FCB: s[0] = 4 * C; break;
      case P_FC2W: s[0] = C, s[1] = 4 * C, nd = 2, sd = pstd; break;
      default: s[0] = C; break;
      }
      char name[96];
      snprintf(name, sizeof name, "transformer.h.%lld.%s", (long long)l, PNAME[w]);
      m->p[k] = param(s, nd, random ? sd : 0), m->names[k++] = strdup(name);
    }
  m->p[k] = param((int64_t[]){C}, 1, -1), m->names[k++] = strdup("transformer.ln_f.weight");
  m->p[k] = param((int64_t[]){C}, 1, 0), m->names[k++] = strdup("transformer.ln_f.bias");
  for (int i = 0; i < m->np; i++)
    if (!m->p[i] || !m->names[i]) return false;
  return true;
}

/* x @ w^T + b. Autocast: x and w rounded to bfloat16 / float16, multiplied and summed in
 * float32 (the product of two 16-bit floats is exact in float32, so this is the numerics
 * of a bf16 matrix unit with float32 accumulation); the float32 weights stay the master
 * copy, and the gradients reaching x and w are rounded to the 16-bit type on the way, as
 * torch.autocast's are. */
/* id numbers the linears (4 per block, then the head) for their fp8 scaling state. */
static cg_tensor *linear(gpt *m, int id, cg_tensor *x, cg_tensor *w, cg_tensor *b) {
  if (!m->amp) return cg_linear_fn(x, w, b);
  if (m->amp == AMP_FP8) return cg_linear_fp8(m->fp8[id], x, w, b);
  if (m->amp == CG_BFLOAT16) return cg_linear_bf16(x, w, b); /* bf16 copies laid out for the bf16 unit (TC) */
  return cg_linear_f16(x, w, b); /* f16 copies read by vector loads on the float32 FMAs */
}

/* Self-attention of block l on h (B, t, C): the causal attention of the whole window. */
static cg_tensor *attention(gpt *m, int64_t l, cg_tensor *h) {
  int64_t B = cg_shape(h)[0], t = cg_shape(h)[1], C = m->C, H = m->H, D = C / H;
  cg_tensor *qkv = linear(m, (int)(4 * l), h, P(m, l, P_QKVW), P(m, l, P_QKVB)), *part[3];
  /* split as (B, t, 3, H, D): the backward's concatenation of dq, dk, dv is then a kernel
   * over those dims, each 16 of D one vector load, where a split of the flat 3C made each
   * lane's head and part a division (gathers: ~10 GB/s) */
  if (cg_split(cg_reshape(qkv, (int64_t[]){B, t, 3, H, D}, 5), 1, 2, part, 3) != 3) return NULL;
  for (int i = 0; i < 3; i++) part[i] = cg_transpose(cg_reshape(part[i], (int64_t[]){B, t, H, D}, 4), 1, 2);
  /* bf16 autocast: attention on bf16 q, k, v (torch's autocast SDPA): the fused path's
   * products take the bf16 unit, its softmax statistics stay float32 */
  if (m->amp == CG_BFLOAT16)
    for (int i = 0; i < 3; i++) part[i] = cg_cast(part[i], CG_BFLOAT16);
  cg_tensor *y = cg_scaled_dot_product_attention(part[0], part[1], part[2], NULL, 0, true, 0);
  y = cg_reshape(cg_transpose(cg_cast(y, CG_FLOAT32), 1, 2), (int64_t[]){B, t, C}, 3);
  return linear(m, (int)(4 * l + 1), y, P(m, l, P_PROJW), P(m, l, P_PROJB));
}

/* Logits (B, t, V) for tokens idx (B, t) at positions pos (t,) (int32). */
static cg_tensor *gpt_forward(gpt *m, cg_tensor *idx, cg_tensor *pos) {
  int64_t C = m->C;
  cg_tensor *x = cg_add(cg_embedding_fn(idx, m->p[0]), cg_embedding_fn(pos, m->p[1]));
  for (int64_t l = 0; l < m->L; l++) {
    cg_tensor *h = cg_layer_norm(x, &C, 1, P(m, l, P_LN1W), P(m, l, P_LN1B), 1e-5);
    x = cg_add(x, attention(m, l, h));
    h = cg_layer_norm(x, &C, 1, P(m, l, P_LN2W), P(m, l, P_LN2B), 1e-5);
    h = linear(m, (int)(4 * l + 2), h, P(m, l, P_FCW), P(m, l, P_FCB));
    /* the GELU's input stored with its output by the same kernel: its backward reads it
     * instead of computing the c_fc product again (twice, as it was). Under bf16 autocast
     * the output is stored as the bf16 copy the next product reads (the same rounding of
     * the same floats): no float32 GELU output and no cast kernel (6 MB of writes a layer).
     * fp16 the same with the float32 of the f16 rounding (what its GEMM reads). (fp8's
     * quantized copy written here was slower: its amax then computes the GELU again.) */
    cg_tensor *v = cg_detach(h), *g = cg_gelu(v);
    int id = (int)(4 * l + 3);
    if (g && m->amp == CG_BFLOAT16) g = cg_cast(g, CG_BFLOAT16);
    if (g && m->amp == CG_FLOAT16) g = cg_cast(cg_cast(g, CG_FLOAT16), CG_FLOAT32);
    cg_tensor *both[2] = {v, g};
    cg_tensor *fc2w = P(m, l, P_FC2W), *fc2b = P(m, l, P_FC2B);
    if (!v || !g || cg_realize_many(both, 2) != CG_OK) h = NULL;
    else if (m->amp == CG_BFLOAT16) h = cg_linear_bf16_x16(cg_gelu(cg_stored(v, h)), g, fc2w, fc2b);
    else if (m->amp == CG_FLOAT16) h = cg_linear_f16_x16(cg_gelu(cg_stored(v, h)), g, fc2w, fc2b);
    else h = linear(m, id, cg_stored(g, cg_gelu(cg_stored(v, h))), fc2w, fc2b);
    x = cg_add(x, h);
    /* the residual stream stored between blocks: attention realizes (per key block, and in
     * the backward), and each realize would otherwise compute every block below again */
    if (l + 1 < m->L) x = cg_realize_stored(x);
  }
  x = cg_layer_norm(x, &C, 1, m->p[m->np - 2], m->p[m->np - 1], 1e-5);
  return linear(m, (int)(4 * m->L), x, m->p[0], NULL);
}

/* Decoding with a KV cache: per layer, keys and values (1, H, T, D) for the T positions
 * of the context. One step takes a token and its position pos, a kernel variable: the
 * new key and value are assigned into the cache's row pos (an assign into the row's view
 * at the var: one row written, realized per layer), the query attends to rows 0..pos (a
 * mask from pos), so every step is the same graph and the same kernels, and a cg_jit
 * replays them: no graph is built, nothing is scheduled per token (JIT=0 builds it and
 * hits the schedule cache). */
typedef struct {
  gpt *m;
  cg_tensor **k, **v; /* the cache, per layer */
  cg_tensor *rows;    /* 0 .. T-1, int32 */
} decoder;

/* in[0]: the token (1, 1) int32; in[1]: its position (a cg_variable_int in [0, T)).
 * out[0]: the logits (1, 1, V). */
static cg_status decode_step(cg_tensor *const *in, int n_in, cg_tensor **out, int n_out, void *user) {
  (void)n_in, (void)n_out;
  decoder *d = user;
  gpt *m = d->m;
  int64_t C = m->C, H = m->H, D = C / H, T = m->T;
  cg_tensor *pos = in[1];
  cg_tensor *x = cg_add(cg_embedding_fn(in[0], m->p[0]), cg_reshape(cg_slice_var(m->p[1], 0, pos, 1, 1), (int64_t[]){1, 1, C}, 3));
  cg_tensor *seen = cg_reshape(cg_le(d->rows, pos), (int64_t[]){1, 1, 1, T}, 4); /* the rows attended to */
  for (int64_t l = 0; l < m->L; l++) {
    cg_tensor *h = cg_layer_norm(x, &C, 1, P(m, l, P_LN1W), P(m, l, P_LN1B), 1e-5);
    cg_tensor *qkv = linear(m, (int)(4 * l), h, P(m, l, P_QKVW), P(m, l, P_QKVB)), *part[3];
    if (cg_split(qkv, C, 2, part, 3) != 3) return cg_last_status();
    for (int i = 0; i < 3; i++) part[i] = cg_transpose(cg_reshape(part[i], (int64_t[]){1, 1, H, D}, 4), 1, 2); /* (1, H, 1, D) */
    /* the new key and value go into row pos of the cache alone (an assign into a view at
     * the var), realized before this layer's attention reads the cache, with the
     * residual stream and qkv (stored, so that nothing below is computed again; a replay
     * runs the realizes as the kernels they launched: no host work) */
    cg_tensor *row[2] = {cg_slice_var(d->k[l], 2, pos, 1, 1), cg_slice_var(d->v[l], 2, pos, 1, 1)};
    cg_status st = cg_assign(row[0], part[1]);
    if (st == CG_OK) st = cg_assign(row[1], part[2]);
    cg_tensor *now[5] = {row[0], row[1], qkv, x, seen}; /* the mask of rows seen once, with layer 0 */
    if (st == CG_OK) st = cg_realize_many(now, l ? 4 : 5);
    cg_free(row[0]), cg_free(row[1]);
    if (st != CG_OK) return st;
    if (cg_split(qkv, C, 2, part, 1) < 1) return cg_last_status(); /* q, from the stored qkv */
    part[0] = cg_transpose(cg_reshape(part[0], (int64_t[]){1, 1, H, D}, 4), 1, 2);
    /* softmax(q k^T / sqrt(D)) v over rows 0..pos: one query, so no T x T scores */
    cg_tensor *s = cg_mul(cg_matmul(part[0], cg_transpose(d->k[l], 2, 3)), cg_scalar(1 / sqrt((double)D))); /* (1, H, 1, T) */
    s = cg_softmax(cg_where(seen, s, cg_scalar(-INFINITY)), 3);
    cg_tensor *y = cg_reshape(cg_transpose(cg_matmul(s, d->v[l]), 1, 2), (int64_t[]){1, 1, C}, 3);
    x = cg_add(x, linear(m, (int)(4 * l + 1), y, P(m, l, P_PROJW), P(m, l, P_PROJB)));
    h = cg_layer_norm(x, &C, 1, P(m, l, P_LN2W), P(m, l, P_LN2B), 1e-5);
    h = cg_gelu(linear(m, (int)(4 * l + 2), h, P(m, l, P_FCW), P(m, l, P_FCB)));
    /* the residual stream stored per block: else each LayerNorm sums every block's
     * outputs again, a kernel of its own per layer (L more programs to compile) */
    x = cg_contiguous(cg_add(x, linear(m, (int)(4 * l + 3), h, P(m, l, P_FC2W), P(m, l, P_FC2B))));
  }
  x = cg_layer_norm(x, &C, 1, m->p[m->np - 2], m->p[m->np - 1], 1e-5);
  cg_tensor *lg = linear(m, (int)(4 * m->L), x, m->p[0], NULL);
  if (!lg) return cg_last_status();
  out[0] = lg;
  return cg_realize(lg);
}

/* Positions 0 .. t-1 as an int32 (t,) tensor. */
static cg_tensor *positions(int64_t t) {
  int32_t *p = malloc(sizeof(int32_t) * (size_t)t);
  for (int64_t i = 0; i < t; i++) p[i] = (int32_t)i;
  cg_tensor *r = cg_from_data(p, CG_INT32, (int64_t[]){t}, 1);
  free(p);
  return r;
}

/* ---- data ------------------------------------------------------------------------------ */

typedef struct {
  uint8_t *tok;
  int64_t n;
} corpus;

static bool append_file(const char *path, uint8_t **buf, int64_t *n, int64_t *cap) {
  FILE *f = fopen(path, "rb");
  if (!f) return false;
  for (;;) {
    if (*cap - *n < 65536) {
      *cap = *cap * 2 + 65536;
      uint8_t *nb = realloc(*buf, (size_t)*cap);
      if (!nb) {
        fclose(f);
        return false;
      }
      *buf = nb;
    }
    size_t r = fread(*buf + *n, 1, 65536, f);
    *n += (int64_t)r;
    if (r < 65536) break;
  }
  fclose(f);
  return true;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The text: FILE, or every fortune file (regular, no extension) of the fortunes package. */
static uint8_t *read_text(const char *path, int64_t *n) {
  uint8_t *buf = NULL;
  int64_t cap = 0;
  *n = 0;
  if (path) {
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
      fprintf(stderr, "cgrad train gpt: --data %s is not a readable regular file\n", path);
      return NULL;
    }
    if (!append_file(path, &buf, n, &cap)) {
      fprintf(stderr, "cgrad train gpt: cannot read %s\n", path);
      free(buf);
      return NULL;
    }
    return buf;
  }
  DIR *d = opendir(FORTUNES_DIR);
  if (!d) {
    fprintf(stderr, "cgrad train gpt: no --data FILE given and %s is missing: install Debian's package 'fortunes' "
                    "(apt-get install fortunes) or pass a text file\n", FORTUNES_DIR);
    return NULL;
  }
  char *names[512];
  int nn = 0;
  for (struct dirent *e; (e = readdir(d)) && nn < 512;) {
    char p[1024];
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s", FORTUNES_DIR, e->d_name);
    if (e->d_name[0] == '.' || strchr(e->d_name, '.') || lstat(p, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
    names[nn++] = strdup(p);
  }
  closedir(d);
  qsort(names, (size_t)nn, sizeof *names, cmp_str);
  for (int i = 0; i < nn; i++) {
    if (!append_file(names[i], &buf, n, &cap)) fprintf(stderr, "cgrad train gpt: skipping unreadable %s\n", names[i]);
    free(names[i]);
  }
  if (*n == 0) {
    fprintf(stderr, "cgrad train gpt: %s holds no fortune files: install Debian's package 'fortunes'\n", FORTUNES_DIR);
    free(buf);
    return NULL;
  }
  return buf;
}

/* B windows of T+1 tokens at random offsets: x = window[:T], y = window[1:]. */
static void get_batch(const corpus *c, int64_t B, int64_t T, uint64_t *rng, int32_t *x, int32_t *y) {
  for (int64_t b = 0; b < B; b++) {
    int64_t o = (int64_t)(mix64(rng) % (uint64_t)(c->n - T - 1));
    for (int64_t t = 0; t < T; t++) x[b * T + t] = c->tok[o + t], y[b * T + t] = c->tok[o + t + 1];
  }
}

/* ---- checkpoints ----------------------------------------------------------------------- */

static cg_status gpt_save(gpt *m, const char *path) {
  int64_t cfg[6] = {m->V, m->T, m->L, m->H, m->C, m->amp};
  cg_tensor *tc = cg_from_data(cfg, CG_INT64, (int64_t[]){6}, 1), *tv = cg_from_data(m->vocab, CG_UINT8, (int64_t[]){256}, 1);
  int n = m->np + 2;
  const char **names = malloc(sizeof(char *) * (size_t)n);
  cg_tensor **ts = malloc(sizeof(cg_tensor *) * (size_t)n);
  for (int i = 0; i < m->np; i++) names[i] = m->names[i], ts[i] = m->p[i];
  names[m->np] = "gpt.config", ts[m->np] = tc, names[m->np + 1] = "gpt.vocab", ts[m->np + 1] = tv;
  cg_status st = tc && tv ? cg_save_safetensors(path, names, ts, n) : cg_last_status();
  free(names), free(ts);
  cg_free(tc), cg_free(tv);
  return st;
}

static bool gpt_load(gpt *m, const char *path) {
  /* host buffers to load into (zeros from cg_zeros would be a fill kernel: a uint8 one goes
   * to the C compiler, ~0.1 s of a cold start) */
  int64_t cfg[6] = {0};
  uint8_t vz[256] = {0};
  cg_tensor *tc = cg_from_data(cfg, CG_INT64, (int64_t[]){6}, 1), *tv = cg_from_data(vz, CG_UINT8, (int64_t[]){256}, 1);
  bool ok = cg_load_safetensors(path, (const char *[]){"gpt.config", "gpt.vocab"}, (cg_tensor *[]){tc, tv}, 2) == CG_OK &&
            cg_read(tc, CG_INT64, cfg, sizeof cfg) == CG_OK && cg_read(tv, CG_UINT8, m->vocab, 256) == CG_OK;
  cg_free(tc), cg_free(tv);
  if (!ok) {
    fprintf(stderr, "cgrad sample: %s is not a cgrad GPT checkpoint: %s\n", path, cg_last_error());
    return false;
  }
  m->V = cfg[0], m->T = cfg[1], m->L = cfg[2], m->H = cfg[3], m->C = cfg[4], m->amp = (int)cfg[5];
  /* sampling runs float32 linears whatever the training's autocast (the master weights are
   * float32): fp8 is a training recipe, and the bf16 / fp16 linears would round every
   * weight again for each token (a matrix-vector product is bound by reading the weights) */
  m->amp = 0;
  if (m->V < 1 || m->V > 256 || m->T < 1 || m->L < 1 || m->H < 1 || m->C < 1 || m->C % m->H) {
    fprintf(stderr, "cgrad sample: %s holds an invalid GPT configuration\n", path);
    return false;
  }
  if (!gpt_init(m, false) || cg_load_safetensors(path, (const char *const *)m->names, m->p, m->np) != CG_OK) {
    fprintf(stderr, "cgrad sample: loading %s: %s\n", path, cg_last_error());
    return false;
  }
  return true;
}

/* ---- training ---------------------------------------------------------------------------- */

typedef struct {
  const char *data, *out;
  long steps, batch, block, layers, heads, embd, warmup, eval_every, eval_batches;
  double lr, min_lr, wd, clip, loss_scale; /* loss_scale, growth_interval: fp16's initial scale, clean steps to double it */
  long growth_interval;
  uint64_t seed;
  int amp;
} train_opts;

static double lr_at(const train_opts *o, long step) { /* step counts from 1 */
  if (step <= o->warmup) return o->lr * (double)step / (double)o->warmup;
  double prog = (double)(step - o->warmup) / (double)(o->steps > o->warmup ? o->steps - o->warmup : 1);
  return o->min_lr + 0.5 * (o->lr - o->min_lr) * (1 + cos(M_PI * (prog > 1 ? 1 : prog)));
}

static double eval_loss(gpt *m, const corpus *c, const train_opts *o, int32_t *x, int32_t *y) {
  uint64_t rng = o->seed ^ 0xE7A1u; /* the same validation batches every time */
  double tot = 0;
  for (long i = 0; i < o->eval_batches; i++) {
    get_batch(c, o->batch, o->block, &rng, x, y);
    cg_scope_begin();
    cg_tensor *tx = cg_from_data(x, CG_INT32, (int64_t[]){o->batch, o->block}, 2), *ty = cg_from_data(y, CG_INT32, (int64_t[]){o->batch * o->block}, 1);
    cg_tensor *lg = gpt_forward(m, tx, positions(o->block));
    double l = cg_item(cg_cross_entropy(cg_reshape(lg, (int64_t[]){o->batch * o->block, m->V}, 2), ty, 0));
    cg_scope_end();
    tot += l;
  }
  return tot / (double)o->eval_batches;
}

/* One training step: (tokens, targets) -> (loss, gradient norm before clipping). Loss,
 * gradients, clipping (lazily: the norm is never read on the host inside the step) and
 * both optimizers' updates are one cg_realize_many. fp16 (scaler): the loss is scaled so
 * that small gradients survive float16, the gradients unscaled (the scale a kernel
 * variable), and the updates are kept only where the norm is finite; the host reads the
 * norm after the step and updates the scale (cg_grad_scaler_update), so the step still
 * replays whole under the JIT. */
typedef struct {
  gpt *m;
  cg_optimizer *od, *on;
  double clip;
  cg_grad_scaler *scaler; /* fp16 */
} step_ctx;
static cg_status gpt_step(cg_tensor *const *in, int n_in, cg_tensor **out, int n_out, void *user) {
  step_ctx *c = user;
  gpt *m = c->m;
  (void)n_in, (void)n_out;
  int64_t B = cg_shape(in[0])[0], T = cg_shape(in[0])[1];
  cg_tensor *lg = gpt_forward(m, in[0], positions(T));
  cg_tensor *loss = cg_cross_entropy(cg_reshape(lg, (int64_t[]){B * T, m->V}, 2), in[1], 0), *gn = NULL, *skip = NULL;
  cg_status st = loss ? cg_backward(c->scaler ? cg_grad_scaler_scale(c->scaler, loss) : loss) : cg_last_status();
  if (st == CG_OK && c->scaler && !(skip = cg_grad_scaler_unscale(c->scaler, m->p, m->np))) st = cg_last_status();
  if (st == CG_OK && !(gn = c->clip > 0 ? cg_clip_grad_norm(m->p, m->np, c->clip) : cg_grad_norm(m->p, m->np))) st = cg_last_status();
  cg_tensor *const *ud = NULL, *const *un = NULL;
  int nd = 0, nn = 0;
  if (st == CG_OK) st = skip ? cg_optimizer_step_lazy_unless(c->od, skip, &ud, &nd) : cg_optimizer_step_lazy(c->od, &ud, &nd);
  if (st == CG_OK) st = skip ? cg_optimizer_step_lazy_unless(c->on, skip, &un, &nn) : cg_optimizer_step_lazy(c->on, &un, &nn);
  int nf = m->fp8 ? 4 * (int)m->L + 1 : 0; /* fp8: each linear's next scales (2 tensors), in the same realize */
  cg_tensor **run = st == CG_OK ? malloc(sizeof(cg_tensor *) * (size_t)(2 + nd + nn + 2 * nf)) : NULL;
  if (st == CG_OK && !run) st = CG_ERR_NOMEM;
  if (st == CG_OK) {
    int nr = 0;
    run[nr++] = loss, run[nr++] = gn;
    for (int i = 0; i < nd; i++) run[nr++] = ud[i];
    for (int i = 0; i < nn; i++) run[nr++] = un[i];
    for (int i = 0; i < nf && st == CG_OK; i++) {
      cg_tensor *const *uf = NULL;
      int n8 = 0;
      st = cg_fp8_scaling_update_lazy(m->fp8[i], &uf, &n8);
      for (int k = 0; k < n8; k++) run[nr++] = uf[k];
    }
    if (st == CG_OK) st = cg_realize_many(run, nr);
  }
  free(run);
  cg_optimizer_zero_grad(c->od), cg_optimizer_zero_grad(c->on);
  out[0] = loss, out[1] = gn;
  return st;
}

static int train_gpt(train_opts o) {
  int64_t n = 0;
  uint8_t *text = read_text(o.data, &n);
  if (!text) return 1;
  if (n < 2 * (o.block + 2)) {
    fprintf(stderr, "cgrad train gpt: the text has %lld bytes, too few for --block %ld\n", (long long)n, o.block);
    free(text);
    return 1;
  }
  gpt m = {.T = o.block, .L = o.layers, .H = o.heads, .C = o.embd, .amp = o.amp};
  int map[256];
  bool seen[256] = {0};
  for (int64_t i = 0; i < n; i++) seen[text[i]] = true;
  for (int b = 0; b < 256; b++)
    if (seen[b]) map[b] = (int)m.V, m.vocab[m.V++] = (uint8_t)b;
  for (int64_t i = 0; i < n; i++) text[i] = (uint8_t)map[text[i]];
  int64_t ntrain = n * 9 / 10;
  corpus tr = {text, ntrain}, va = {text + ntrain, n - ntrain};
  if (va.n < o.block + 2) va = tr;
  /* check that the checkpoint can be written before spending the time */
  char probe[4096];
  snprintf(probe, sizeof probe, "%s.probe.%d", o.out, (int)getpid());
  FILE *pf = fopen(probe, "w");
  if (!pf) {
    fprintf(stderr, "cgrad train gpt: cannot write next to --out %s\n", o.out);
    free(text);
    return 1;
  }
  fclose(pf), remove(probe);

  cg_manual_seed(o.seed);
  if (o.amp == AMP_FP8) {
    m.fp8 = calloc((size_t)(4 * m.L + 1), sizeof *m.fp8);
    for (int i = 0; m.fp8 && i <= 4 * m.L; i++) m.fp8[i] = cg_fp8_scaling_new(16, 0);
  }
  if (!gpt_init(&m, true)) {
    fprintf(stderr, "cgrad train gpt: building the model: %s\n", cg_last_error());
    free(text);
    return 1;
  }
  /* decay the matrices (and the embeddings), not the biases and norms, as nanoGPT */
  cg_tensor **dec = malloc(sizeof(cg_tensor *) * (size_t)m.np), **nodec = malloc(sizeof(cg_tensor *) * (size_t)m.np);
  int nd = 0, nnd = 0;
  long long nparams = 0;
  for (int i = 0; i < m.np; i++) {
    nparams += cg_numel(m.p[i]);
    if (cg_ndim(m.p[i]) == 2) dec[nd++] = m.p[i];
    else nodec[nnd++] = m.p[i];
  }
  cg_optimizer *od = cg_adamw(dec, nd, o.lr, 0.9, 0.95, 1e-8, o.wd), *on = cg_adamw(nodec, nnd, o.lr, 0.9, 0.95, 1e-8, 0);
  if (!od || !on) {
    fprintf(stderr, "cgrad train gpt: %s\n", cg_last_error());
    return 1;
  }
  fprintf(stderr, "cgrad train gpt: %lld bytes of text, vocabulary %lld; GPT %ld layers, %ld heads, width %ld, context %ld: %.2fM parameters; "
                  "batch %ld, %ld steps, %s\n",
          (long long)n, (long long)m.V, o.layers, o.heads, o.embd, o.block, (double)nparams / 1e6, o.batch, o.steps,
          o.amp == CG_BFLOAT16 ? "bf16 autocast" : o.amp == CG_FLOAT16 ? "fp16 autocast" : o.amp == AMP_FP8 ? "fp8 linears (delayed scaling)" : "float32");
  int32_t *x = malloc(sizeof(int32_t) * (size_t)(o.batch * o.block)), *y = malloc(sizeof(int32_t) * (size_t)(o.batch * o.block));
  uint64_t rng = o.seed;
  bool tty = isatty(2);
  double c_first = 0, c_eval = 0;
  double t0 = now_s(), t_first = 0, last = NAN, best_val = INFINITY;
  long skipped = 0;
  step_ctx sc = {&m, od, on, o.clip, NULL};
  /* fp16: torch.cuda.amp.GradScaler's rules (halve on overflow, double after
   * --growth-interval clean steps) */
  if (o.amp == CG_FLOAT16 && !(sc.scaler = cg_grad_scaler_new(o.loss_scale, 2, 0.5, o.growth_interval))) {
    fprintf(stderr, "cgrad train gpt: %s\n", cg_last_error());
    cg_optimizer_free(od), cg_optimizer_free(on), gpt_free(&m);
    free(dec), free(nodec), free(text);
    return 1;
  }
  cg_jit *jit = NULL;
  int rc = 0;
  /* each step's own time after the first (evaluation and saving excluded): the median is the
   * steady state, which the mean hides (the JIT's capture step, the last step's checkpoint) */
  double *dur = o.steps > 1 ? malloc(sizeof(double) * (size_t)(o.steps - 1)) : NULL;
  long ndur = 0;
  for (long step = 1; step <= o.steps && rc == 0; step++) {
    double t_step = now_s();
    double lr = lr_at(&o, step);
    cg_optimizer_set_lr(od, lr), cg_optimizer_set_lr(on, lr);
    get_batch(&tr, o.batch, o.block, &rng, x, y);
    cg_scope_begin();
    cg_tensor *tx = cg_from_data(x, CG_INT32, (int64_t[]){o.batch, o.block}, 2), *ty = cg_from_data(y, CG_INT32, (int64_t[]){o.batch * o.block}, 1);
    cg_tensor *in[2] = {tx, ty}, *res[2] = {NULL, NULL}, *loss = NULL;
    cg_status st = tx && ty ? CG_OK : cg_last_status();
    double gnorm = 0;
    bool skip = false;
    if (st == CG_OK) {
      /* one realize per step (gpt_step: fp8's scale updates and fp16's overflow check
       * included), through a cg_jit */
      if (!jit && !(jit = cg_jit_new(gpt_step, 2, &sc))) st = cg_last_status();
      if (st == CG_OK) st = jit ? cg_jit_call(jit, in, 2, res) : gpt_step(in, 2, res, 2, &sc);
      loss = res[0];
      gnorm = st == CG_OK ? cg_item(res[1]) : NAN;
      if (st == CG_OK && sc.scaler) { /* fp16: a norm that is not finite skipped the step */
        skip = !isfinite(gnorm), skipped += skip;
        st = cg_grad_scaler_update(sc.scaler, skip, (cg_optimizer *[]){od, on}, 2);
      }
    }
    if (st != CG_OK) {
      fprintf(stderr, "\ncgrad train gpt: step %ld failed: %s\n", step, cg_last_error());
      rc = 1;
    }
    last = rc ? NAN : cg_item(loss) + 0.0; /* + 0.0: a one-symbol text's loss -0 prints as 0 */
    cg_optimizer_zero_grad(od), cg_optimizer_zero_grad(on);
    cg_scope_end();
    if (rc) break;
    if (step == 1) t_first = now_s() - t0, c_first = cpu_s();
    else if (dur) dur[ndur++] = now_s() - t_step;
    if (!isfinite(last)) {
      fprintf(stderr, "\ncgrad train gpt: the loss became %g at step %ld\n", last, step);
      rc = 1;
      break;
    }
    if (getenv("CG_PRINT_LOSS")) printf("step %ld loss %.9g gnorm %.6g%s\n", step, last, gnorm, skip ? " (skipped: fp16 overflow)" : "");
    if (tty || step % 10 == 0 || step == o.steps) {
      double el = now_s() - t0, steady = step > 1 ? (el - t_first) / (double)(step - 1) : el;
      double left = steady * (double)(o.steps - step), tps = (double)(o.batch * o.block) / (steady > 0 ? steady : 1);
      int width = 24, done = (int)((double)width * (double)step / (double)o.steps);
      char bar[32];
      for (int i = 0; i < width; i++) bar[i] = i < done ? '#' : '.';
      bar[width] = 0;
      fprintf(stderr, "%s[%s] step %ld/%ld  loss %.4f  lr %.2e  %.0f tok/s  %ldm%02lds left%s", tty ? "\r" : "", bar, step, o.steps, last, lr,
              tps, (long)left / 60, (long)left % 60, tty ? "  " : "\n");
    }
    if ((o.eval_every && step % o.eval_every == 0) || step == o.steps) {
      double ce = cpu_s();
      double vl = eval_loss(&m, &va, &o, x, y);
      c_eval += cpu_s() - ce;
      if (vl < best_val) best_val = vl;
      fprintf(stderr, "%sstep %ld: train loss %.4f, val loss %.4f\n", tty ? "\n" : "", step, last, vl);
      printf("step %ld val loss %.4f\n", step, vl);
      if (gpt_save(&m, o.out) != CG_OK) {
        fprintf(stderr, "cgrad train gpt: writing the checkpoint: %s\n", cg_last_error());
        rc = 1;
      }
    }
  }
  if (rc == 0) {
    double el = now_s() - t0;
    char med[48] = "";
    if (ndur > 0) {
      snprintf(med, sizeof med, " (median %.1f ms)", 1e3 * cg_tool_median(dur, ndur));
    }
    printf("trained %ld steps in %.1f s (first step %.2f s, then %.0f ms/step%s, %.0f tokens/s); final train loss %.4f, best val loss %.4f\n"
           "checkpoint: %s\n",
           o.steps, el, t_first, 1e3 * (el - t_first) / (double)(o.steps > 1 ? o.steps - 1 : 1), med,
           (double)(o.batch * o.block) * (double)(o.steps > 1 ? o.steps - 1 : 1) / (el - t_first > 0 ? el - t_first : 1), last, best_val, o.out);
    if (o.steps > 1) /* after the first step (compiles), less the evaluations */
      printf("cpu: %.0f ms/step (process CPU time, all threads, after the first step)\n", 1e3 * (cpu_s() - c_first - c_eval) / (double)(o.steps - 1));
  }
  if (o.amp == CG_FLOAT16) printf("fp16 loss scaling: %ld steps skipped on overflow, final scale %g\n", skipped, cg_grad_scaler_get_scale(sc.scaler));
  cg_jit_free(jit);
  cg_grad_scaler_free(sc.scaler);
  cg_optimizer_free(od), cg_optimizer_free(on);
  gpt_free(&m);
  free(dec), free(nodec), free(x), free(y), free(text), free(dur);
  return rc;
}

/* ---- sampling ---------------------------------------------------------------------------- */

typedef struct {
  const char *ckpt, *prompt;
  long tokens, top_k;
  double temperature;
  uint64_t seed;
  bool no_cache;
} sample_opts;

/* The next token from the last position's logits (1, 1, V). */
static int next_token(gpt *m, cg_tensor *logits, const sample_opts *o, long step) {
  cg_tensor *lg = cg_reshape(logits, (int64_t[]){m->V}, 1);
  int64_t tok = 0;
  if (o->temperature <= 0) {
    int32_t a = 0;
    if (cg_read(cg_argmax(lg, 0, false), CG_INT32, &a, sizeof a) != CG_OK) return -1;
    return a;
  }
  lg = cg_div(lg, cg_scalar(o->temperature));
  cg_tensor *idx = NULL;
  if (o->top_k > 0 && o->top_k < m->V) {
    cg_tensor *vals;
    if (cg_topk(lg, o->top_k, 0, true, true, &vals, &idx) != CG_OK) return -1;
    lg = vals;
  }
  uint64_t s = o->seed + (uint64_t)step * 0x9E3779B97F4A7C15ull;
  cg_tensor *pick = cg_multinomial(cg_softmax(lg, 0), 1, true, mix64(&s));
  if (idx) pick = cg_gather(idx, 0, pick);
  if (!pick || cg_read(pick, CG_INT64, &tok, sizeof tok) != CG_OK) return -1;
  return (int)tok;
}

static int sample(sample_opts o) {
  gpt m = {0};
  if (!gpt_load(&m, o.ckpt)) return 1;
  int map[256];
  for (int b = 0; b < 256; b++) map[b] = -1;
  for (int64_t i = 0; i < m.V; i++) map[m.vocab[i]] = (int)i;
  size_t pl = strlen(o.prompt);
  int32_t *ctx = malloc(sizeof(int32_t) * (size_t)(pl + (size_t)o.tokens + 1));
  int64_t n = 0;
  for (size_t i = 0; i < pl; i++) {
    int t = map[(uint8_t)o.prompt[i]];
    if (t < 0) {
      fprintf(stderr, "cgrad sample: the prompt's character '%c' (byte %d) is not in the model's vocabulary\n", o.prompt[i], (uint8_t)o.prompt[i]);
      free(ctx), gpt_free(&m);
      return 2;
    }
    ctx[n++] = t;
  }
  if (n == 0) ctx[n++] = map['\n'] >= 0 ? map['\n'] : 0; /* an empty prompt starts a line */
  fwrite(o.prompt, 1, pl, stdout);
  /* the decoder: the cache, zeros; the position a kernel variable; the step through a JIT */
  int64_t D = m.C / m.H, len = 0; /* len: the window's tokens in the cache */
  decoder dec = {&m, calloc((size_t)m.L, sizeof(cg_tensor *)), calloc((size_t)m.L, sizeof(cg_tensor *)), cg_arange(0, (double)m.T, 1, CG_INT32)};
  cg_tensor *pos = cg_variable_int("pos", 0, 0, m.T - 1);
  cg_jit *jit = o.no_cache ? NULL : cg_jit_new(decode_step, 1, &dec);
  int rc = 0;
  for (int64_t l = 0; l < m.L && dec.k && dec.v; l++)
    dec.k[l] = cg_zeros(CG_FLOAT32, (int64_t[]){1, m.H, m.T, D}, 4), dec.v[l] = cg_zeros(CG_FLOAT32, (int64_t[]){1, m.H, m.T, D}, 4);
  for (int64_t l = 0; l < m.L && dec.k && dec.v && rc == 0; l++)
    if (!dec.k[l] || !dec.v[l] || cg_realize(dec.k[l]) != CG_OK || cg_realize(dec.v[l]) != CG_OK) rc = 1;
  if (!dec.k || !dec.v || !dec.rows || !pos || (!o.no_cache && !jit)) rc = 1;
  if (rc) fprintf(stderr, "cgrad sample: %s\n", cg_last_error());
  /* CG_SAMPLE_CHECK=1 (tests): compare each step's logits with the whole window's */
  bool check = getenv("CG_SAMPLE_CHECK") && atoi(getenv("CG_SAMPLE_CHECK")) > 0;
  double check_diff = 0, check_max = 0;
  double t0 = now_s();
  int64_t start = n > m.T ? n - m.T : 0; /* the context window is ctx[start, n) */
  for (long step = 0; step < o.tokens && rc == 0; step++) {
    if (n - start > m.T) { /* the window is full: keep its second half (the cache is refilled) */
      start = n - m.T / 2;
      len = 0;
    }
    cg_scope_begin();
    cg_tensor *lg = NULL;
    if (o.no_cache) { /* the whole window, causally, padded to T (one compiled shape) */
      int32_t *w = calloc((size_t)m.T, sizeof(int32_t));
      int64_t t = n - start;
      memcpy(w, ctx + start, sizeof(int32_t) * (size_t)t);
      lg = gpt_forward(&m, cg_from_data(w, CG_INT32, (int64_t[]){1, m.T}, 2), positions(m.T));
      free(w);
      lg = lg ? cg_slice(lg, 1, t - 1, t, 1) : NULL;
    } else { /* every token of the window not yet in the cache, one at a time */
      while (len < n - start) {
        cg_tensor *in[2] = {cg_from_data(ctx + start + len, CG_INT32, (int64_t[]){1, 1}, 2), pos};
        if (!in[0] || cg_variable_set(pos, (double)len) != CG_OK || cg_jit_call(jit, in, 2, &lg) != CG_OK) {
          lg = NULL;
          break;
        }
        len++;
      }
    }
    if (lg && check && !o.no_cache) { /* the whole window's last-position logits beside the cache's */
      int32_t *w = calloc((size_t)m.T, sizeof(int32_t));
      float *a = malloc(sizeof(float) * (size_t)m.V), *b = malloc(sizeof(float) * (size_t)m.V);
      int64_t t = n - start;
      memcpy(w, ctx + start, sizeof(int32_t) * (size_t)t);
      cg_tensor *full = gpt_forward(&m, cg_from_data(w, CG_INT32, (int64_t[]){1, m.T}, 2), positions(m.T));
      full = full ? cg_slice(full, 1, t - 1, t, 1) : NULL;
      if (full && a && b && cg_read(lg, CG_FLOAT32, a, sizeof(float) * (size_t)m.V) == CG_OK &&
          cg_read(full, CG_FLOAT32, b, sizeof(float) * (size_t)m.V) == CG_OK)
        for (int64_t i = 0; i < m.V; i++) {
          double dd = fabs((double)a[i] - (double)b[i]);
          check_diff = dd > check_diff || dd != dd ? dd : check_diff;
          check_max = fabs((double)b[i]) > check_max ? fabs((double)b[i]) : check_max;
        }
      else lg = NULL;
      free(w), free(a), free(b);
    }
    int tok = lg ? next_token(&m, lg, &o, step) : -1;
    cg_scope_end();
    if (tok < 0) {
      fprintf(stderr, "\ncgrad sample: %s\n", cg_last_error());
      rc = 1;
      break;
    }
    ctx[n++] = tok;
    fputc(m.vocab[tok], stdout);
    fflush(stdout);
  }
  double el = now_s() - t0;
  printf("\n");
  if (rc == 0)
    fprintf(stderr, "cgrad sample: %ld tokens in %.2f s (%.1f tokens/s, %s)\n", o.tokens, el, (double)o.tokens / (el > 0 ? el : 1),
            o.no_cache ? "no cache" : "KV cache");
  if (rc == 0 && check && !o.no_cache)
    fprintf(stderr, "cgrad sample: KV-cache logits vs the whole window's: max |diff| %.3g, max |logit| %.3g\n", check_diff, check_max);
  cg_jit_free(jit);
  for (int64_t l = 0; l < m.L && dec.k && dec.v; l++) cg_free(dec.k[l]), cg_free(dec.v[l]);
  free(dec.k), free(dec.v), free(ctx);
  cg_free(dec.rows), cg_free(pos);
  gpt_free(&m);
  return rc;
}

/* ---- the command line ---------------------------------------------------------------------- */

static int usage_train(FILE *f) {
  fprintf(f, "usage: cgrad train gpt [options]\n"
             "  --data FILE         text to train on, as bytes (default: Debian's fortunes, %s)\n"
             "  --steps N           optimizer steps (default 2000)\n"
             "  --batch B           sequences per step (default 16)\n"
             "  --block T           context length (default 128)\n"
             "  --layers L          transformer blocks (default 4)\n"
             "  --heads H           attention heads (default 4)\n"
             "  --embd C            width, a multiple of heads (default 128)\n"
             "  --lr LR             peak learning rate (default 0.001)\n"
             "  --min-lr LR         learning rate at the end of the cosine decay (default lr/10)\n"
             "  --warmup N          linear warm-up steps (default 100)\n"
             "  --wd WD             AdamW weight decay of the matrices (default 0.1)\n"
             "  --clip X            clip the gradients' global norm to X, 0: off (default 1)\n"
             "  --eval-every N      validation loss and checkpoint every N steps (default 200)\n"
             "  --eval-batches N    validation batches (default 8)\n"
             "  --seed S            initialization and batches (default 1337)\n"
             "  --amp bf16|fp16|fp8 matmuls in bfloat16 / float16 (float32 master weights), or fp8\n"
             "                      linears with delayed scaling (e4m3 forward, e5m2 gradients)\n"
             "  --loss-scale S      fp16: the initial loss scale, a power of two (default 65536); a step\n"
             "                      whose gradients overflow is skipped and halves it\n"
             "  --growth-interval N fp16: clean steps in a row that double the scale (default 200)\n"
             "  --out FILE          checkpoint (default gpt.safetensors)\n",
          FORTUNES_DIR);
  return f == stderr ? 2 : 0;
}

static int usage_sample(FILE *f) {
  fprintf(f, "usage: cgrad sample --checkpoint FILE [--prompt TEXT] [--tokens N] [--temperature T] [--top-k K] [--seed S]\n"
             "  --checkpoint FILE   from cgrad train gpt\n"
             "  --prompt TEXT       text to continue (default: a new line)\n"
             "  --tokens N          characters to generate (default 200)\n"
             "  --temperature T     softmax temperature; 0 picks the most likely (default 0.8)\n"
             "  --top-k K           sample among the K most likely only, 0: all (default 0)\n"
             "  --seed S            the same seed gives the same text (default 42)\n"
             "  --no-cache          recompute the whole context for every token (slow; a check of the KV cache)\n");
  return f == stderr ? 2 : 0;
}

static bool num(const char *s, double *out) {
  char *end;
  if (!s || !*s) return false;
  double v = strtod(s, &end);
  if (*end || !isfinite(v)) return false;
  *out = v;
  return true;
}
static bool count(const char *s, long *out, long lo) {
  double v;
  if (!num(s, &v) || v != floor(v) || v < (double)lo || v > 1e12) return false;
  *out = (long)v;
  return true;
}

int cg_gpt_main(int argc, char **argv) {
  bool is_sample = !strcmp(argv[1], "sample");
  int first = is_sample ? 2 : 3;
  const char *who = is_sample ? "cgrad sample" : "cgrad train gpt";
  train_opts t = {.out = "gpt.safetensors", .steps = 2000, .batch = 16, .block = 128, .layers = 4, .heads = 4, .embd = 128,
                  .warmup = 100, .eval_every = 200, .eval_batches = 8, .lr = 1e-3, .min_lr = -1, .wd = 0.1, .clip = 1, .seed = 1337,
                  .loss_scale = 65536, .growth_interval = 200};
  sample_opts s = {.prompt = "", .tokens = 200, .temperature = 0.8, .seed = 42};
  for (int i = first; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) return is_sample ? usage_sample(stdout) : usage_train(stdout);
    long l = 0;
    bool ok = true;
    if (is_sample) {
      if (!strcmp(a, "--checkpoint")) ok = v, s.ckpt = v;
      else if (!strcmp(a, "--prompt")) ok = v, s.prompt = v;
      else if (!strcmp(a, "--tokens")) ok = count(v, &s.tokens, 1);
      else if (!strcmp(a, "--temperature")) ok = num(v, &s.temperature) && s.temperature >= 0;
      else if (!strcmp(a, "--top-k")) ok = count(v, &s.top_k, 0);
      else if (!strcmp(a, "--seed")) ok = count(v, &l, 0), s.seed = (uint64_t)l;
      else if (!strcmp(a, "--no-cache")) s.no_cache = true, i--;
      else ok = false, v = NULL;
    } else {
      if (!strcmp(a, "--data")) ok = v, t.data = v;
      else if (!strcmp(a, "--out")) ok = v, t.out = v;
      else if (!strcmp(a, "--steps")) ok = count(v, &t.steps, 1);
      else if (!strcmp(a, "--batch")) ok = count(v, &t.batch, 1);
      else if (!strcmp(a, "--block")) ok = count(v, &t.block, 2);
      else if (!strcmp(a, "--layers")) ok = count(v, &t.layers, 1);
      else if (!strcmp(a, "--heads")) ok = count(v, &t.heads, 1);
      else if (!strcmp(a, "--embd")) ok = count(v, &t.embd, 1);
      else if (!strcmp(a, "--warmup")) ok = count(v, &t.warmup, 0);
      else if (!strcmp(a, "--eval-every")) ok = count(v, &t.eval_every, 0);
      else if (!strcmp(a, "--eval-batches")) ok = count(v, &t.eval_batches, 1);
      else if (!strcmp(a, "--seed")) ok = count(v, &l, 0), t.seed = (uint64_t)l;
      else if (!strcmp(a, "--lr")) ok = num(v, &t.lr) && t.lr > 0;
      else if (!strcmp(a, "--min-lr")) ok = num(v, &t.min_lr) && t.min_lr >= 0;
      else if (!strcmp(a, "--wd")) ok = num(v, &t.wd) && t.wd >= 0;
      else if (!strcmp(a, "--clip")) ok = num(v, &t.clip) && t.clip >= 0;
      else if (!strcmp(a, "--loss-scale")) ok = num(v, &t.loss_scale) && t.loss_scale > 0;
      else if (!strcmp(a, "--growth-interval")) ok = count(v, &t.growth_interval, 1);
      else if (!strcmp(a, "--amp")) {
        ok = v && (!strcmp(v, "bf16") || !strcmp(v, "fp16") || !strcmp(v, "fp8"));
        t.amp = ok ? (!strcmp(v, "bf16") ? CG_BFLOAT16 : !strcmp(v, "fp16") ? CG_FLOAT16 : AMP_FP8) : 0;
      } else ok = false, v = NULL;
    }
    if (!ok) {
      if (!v && strncmp(a, "--", 2) == 0 && i + 1 >= argc) fprintf(stderr, "%s: option %s needs a value\n", who, a);
      else if (!v) fprintf(stderr, "%s: unknown option '%s'\n", who, a);
      else fprintf(stderr, "%s: bad value '%s' for %s\n", who, v, a);
      return is_sample ? usage_sample(stderr) : usage_train(stderr);
    }
    i++;
  }
  if (is_sample) {
    if (!s.ckpt) {
      fprintf(stderr, "cgrad sample: --checkpoint FILE is required\n");
      return usage_sample(stderr);
    }
    return sample(s);
  }
  if (t.embd % t.heads) {
    fprintf(stderr, "cgrad train gpt: --embd %ld must be a multiple of --heads %ld\n", t.embd, t.heads);
    return 2;
  }
  if (t.min_lr < 0) t.min_lr = t.lr / 10;
  if (t.warmup > t.steps) t.warmup = t.steps;
  return train_gpt(t);
}
