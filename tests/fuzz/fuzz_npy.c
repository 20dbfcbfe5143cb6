/* .npy reader: any bytes give an array or a message. An array that parses survives
 * serialize -> parse unchanged, and npy_load of the same bytes agrees with npy_parse;
 * cg_load_npy gives a tensor holding the same bytes. */
#include "fuzz.h"
#include "nn/npy.h"

static void same_arrays(const npy_array *a, const npy_array *b) {
  FUZZ_CHECK(a->dtype == b->dtype && a->ndim == b->ndim && a->nbytes == b->nbytes);
  FUZZ_CHECK(!memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim));
  FUZZ_CHECK(!a->nbytes || !memcmp(a->data, b->data, a->nbytes));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  npy_array *a = npy_parse(data, size, "fuzz");
  if (!a) {
    fuzz_failed_with_message();
  } else {
    size_t len = 0;
    void *img = npy_serialize(a->dtype, a->ndim, a->shape, a->data, &len);
    FUZZ_CHECK(img);
    npy_array *b = npy_parse(img, len, "fuzz (rewritten)");
    FUZZ_CHECK(b);
    same_arrays(a, b);
    npy_free(b);
    free(img);
  }
  if (size < 4096) {
    const char *path = fuzz_scratch("npy");
    fuzz_write(path, data, size);
    npy_array *c = npy_load(path);
    FUZZ_CHECK(!c == !a);
    if (c) same_arrays(a, c);
    else fuzz_failed_with_message();
    npy_free(c);
    if (a && a->nbytes <= 4096) { /* through the public API too */
      cg_tensor *t = cg_load_npy(path);
      FUZZ_CHECK(t && cg_dtype_of(t) == a->dtype && cg_ndim(t) == a->ndim);
      void *buf = malloc(a->nbytes + 1);
      FUZZ_CHECK(cg_read(t, a->dtype, buf, a->nbytes) == CG_OK);
      FUZZ_CHECK(!a->nbytes || !memcmp(buf, a->data, a->nbytes));
      free(buf);
      cg_free(t);
    }
  }
  npy_free(a);
  return 0;
}
