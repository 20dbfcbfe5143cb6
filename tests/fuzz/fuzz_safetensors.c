/* safetensors reader: any bytes give a file or a message. A file that parses survives
 * serialize -> parse unchanged (names, dtypes, shapes, bytes, metadata), and the same
 * bytes loaded from disk (st_load) agree with st_parse. */
#include "fuzz.h"
#include "nn/safetensors.h"

static void same_files(const st_file *a, const st_file *b) {
  FUZZ_CHECK(st_count(a) == st_count(b) && st_meta_count(a) == st_meta_count(b));
  for (int i = 0; i < st_count(a); i++) {
    const st_tensor *x = st_at(a, i), *y = st_find(b, x->name);
    FUZZ_CHECK(y && x->dtype == y->dtype && x->ndim == y->ndim && x->nbytes == y->nbytes);
    FUZZ_CHECK(!memcmp(x->shape, y->shape, sizeof(int64_t) * (size_t)x->ndim));
    FUZZ_CHECK(!x->nbytes || !memcmp(x->data, y->data, x->nbytes));
  }
  for (int i = 0; i < st_meta_count(a); i++) {
    const char *v = st_meta_get(b, st_meta_key(a, i));
    FUZZ_CHECK(v && !strcmp(v, st_meta_value(a, i)));
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  st_file *f = st_parse(data, size, "fuzz");
  if (!f) {
    fuzz_failed_with_message();
  } else {
    int n = st_count(f), nm = st_meta_count(f);
    st_tensor *ts = malloc(sizeof *ts * (size_t)(n ? n : 1));
    const char **kv = malloc(sizeof(char *) * (size_t)(2 * nm + 1));
    for (int i = 0; i < n; i++) ts[i] = *st_at(f, i);
    for (int i = 0; i < nm; i++) kv[2 * i] = st_meta_key(f, i), kv[2 * i + 1] = st_meta_value(f, i);
    size_t len = 0;
    void *img = st_serialize(ts, n, kv, nm, &len);
    FUZZ_CHECK(img);
    st_file *g = st_parse(img, len, "fuzz (rewritten)");
    FUZZ_CHECK(g);
    same_files(f, g);
    st_free(g);
    free(img);
    free(ts);
    free(kv);
  }
  if (size < 4096) { /* the file path agrees with the memory path */
    const char *path = fuzz_scratch("st");
    fuzz_write(path, data, size);
    st_file *h = st_load(path);
    FUZZ_CHECK(!h == !f);
    if (h) same_files(f, h);
    else fuzz_failed_with_message();
    st_free(h);
  }
  st_free(f);
  return 0;
}
