/* IDX reader, raw and gzip. The first byte picks the path: even, the rest is a raw image
 * (idx_parse, and idx_load of the same bytes must agree); odd, the rest is gzip-compressed
 * here and idx_load must give exactly what idx_parse gives for the raw bytes. Inputs that
 * start with the gzip magic exercise zlib's error paths on corrupt streams. */
#include "fuzz.h"
#include "nn/idx.h"
#if __has_include(<zlib.h>)
#include <zlib.h>
#define FUZZ_ZLIB 1
#endif

static void same_result(const idx_array *a, const idx_array *b) {
  FUZZ_CHECK(!a == !b);
  if (!a) return;
  FUZZ_CHECK(a->dtype == b->dtype && a->ndim == b->ndim && a->nbytes == b->nbytes);
  FUZZ_CHECK(!memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim));
  FUZZ_CHECK(!a->nbytes || !memcmp(a->data, b->data, a->nbytes));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 1 << 16) return 0;
  bool gz = data[0] & 1;
  data++, size--;
  idx_array *a = idx_parse(data, size, "fuzz");
  if (!a) fuzz_failed_with_message();
  const char *path = fuzz_scratch("idx");
  if (!gz || !idx_have_gzip()) {
    fuzz_write(path, data, size);
    idx_array *b = idx_load(path);
    if (!(size >= 2 && data[0] == 0x1f && data[1] == 0x8b)) same_result(a, b); /* else: a gzip stream, judged by zlib */
    if (!b) fuzz_failed_with_message();
    idx_free(b);
  } else {
#ifdef FUZZ_ZLIB
    /* a gzip file of the bytes, by one deflate stream kept across inputs (deflateInit's
     * ~270 KiB of state per input was most of an execution under ASan) */
    static z_stream z;
    static bool init;
    static uint8_t gzbuf[(1 << 16) + 1024];
    if (!init) {
      FUZZ_CHECK(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
      init = true;
    }
    FUZZ_CHECK(deflateReset(&z) == Z_OK);
    z.next_in = (Bytef *)data, z.avail_in = (uInt)size, z.next_out = gzbuf, z.avail_out = sizeof gzbuf;
    FUZZ_CHECK(deflate(&z, Z_FINISH) == Z_STREAM_END);
    fuzz_write(path, gzbuf, sizeof gzbuf - z.avail_out);
    idx_array *b = idx_load(path);
    same_result(a, b);
    if (!b) fuzz_failed_with_message();
    idx_free(b);
#endif
  }
  idx_free(a);
  return 0;
}
