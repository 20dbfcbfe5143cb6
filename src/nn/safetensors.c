/* safetensors reader and writer.
 *
 *   st_load:  fio_read_all -> header length (8 bytes LE) -> strict JSON header parse
 *             -> check every tensor (dtype, shape, offsets) -> check the offsets tile the
 *             byte buffer exactly -> tensors in offset order, names sorted for st_find
 *   st_save:  validate -> build the JSON header (metadata first, compact, like the
 *             reference writer) -> pad with spaces to 8 -> fio_write_atomic
 *
 * The JSON parser is the small strict one below: RFC 8259 syntax, UTF-8 checked, nesting
 * bounded; it walks the header's known shape and skips (but still checks) unknown fields
 * of a tensor entry, as the reference implementation ignores them. */
#include "safetensors.h"
#include "core/error.h"
#include "core/fileio.h"
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>

/* ---- dtypes ------------------------------------------------------------------------- */

static const char *const st_names[CG_NUM_DTYPES] = {
    [CG_BOOL] = "BOOL",     [CG_INT8] = "I8",      [CG_INT16] = "I16",     [CG_INT32] = "I32",
    [CG_INT64] = "I64",     [CG_UINT8] = "U8",     [CG_UINT16] = "U16",    [CG_UINT32] = "U32",
    [CG_UINT64] = "U64",    [CG_FLOAT16] = "F16",  [CG_BFLOAT16] = "BF16", [CG_FLOAT32] = "F32",
    [CG_FLOAT64] = "F64",   [CG_FP8E4M3] = "F8_E4M3", [CG_FP8E5M2] = "F8_E5M2",
};
_Static_assert(sizeof st_names / sizeof st_names[0] == CG_NUM_DTYPES, "one safetensors name per cg_dtype");
#define ST_DTYPE_LIST "BOOL, U8, I8, U16, I16, U32, I32, U64, I64, F16, BF16, F32, F64, F8_E4M3, F8_E5M2"

const char *st_dtype_name(cg_dtype dt) { return (unsigned)dt < CG_NUM_DTYPES ? st_names[dt] : NULL; }

int st_dtype_parse(const char *s, size_t len, cg_dtype *out) {
  for (int i = 0; i < CG_NUM_DTYPES; i++)
    if (st_names[i] && strlen(st_names[i]) == len && !memcmp(st_names[i], s, len)) {
      *out = (cg_dtype)i;
      return 1;
    }
  return 0;
}

/* ---- the loaded file ------------------------------------------------------------------ */

struct st_file {
  char *buf; /* the file image; tensor data points into it */
  st_tensor *ts;
  int n;
  int *by_name; /* indices of ts sorted by name, for st_find */
  char **meta;  /* 2*nmeta strings: key, value, ... */
  int nmeta;
};

void st_free(st_file *f) {
  if (!f) return;
  for (int i = 0; i < f->n; i++) free((char *)f->ts[i].name);
  for (int i = 0; i < 2 * f->nmeta; i++) free(f->meta[i]);
  free(f->ts);
  free(f->by_name);
  free(f->meta);
  free(f->buf);
  free(f);
}

int st_count(const st_file *f) { return f ? f->n : 0; }
const st_tensor *st_at(const st_file *f, int i) { return f && i >= 0 && i < f->n ? &f->ts[i] : NULL; }
int st_meta_count(const st_file *f) { return f ? f->nmeta : 0; }
const char *st_meta_key(const st_file *f, int i) { return f && i >= 0 && i < f->nmeta ? f->meta[2 * i] : NULL; }
const char *st_meta_value(const st_file *f, int i) {
  return f && i >= 0 && i < f->nmeta ? f->meta[2 * i + 1] : NULL;
}
const char *st_meta_get(const st_file *f, const char *key) {
  for (int i = 0; f && key && i < f->nmeta; i++)
    if (!strcmp(f->meta[2 * i], key)) return f->meta[2 * i + 1];
  return NULL;
}

const st_tensor *st_find(const st_file *f, const char *name) {
  if (!f || !name) return NULL;
  int lo = 0, hi = f->n - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2, c = strcmp(name, f->ts[f->by_name[mid]].name);
    if (!c) return &f->ts[f->by_name[mid]];
    if (c < 0) hi = mid - 1;
    else lo = mid + 1;
  }
  return NULL;
}

/* ---- UTF-8 ---------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  if (c < 0x80) return 1;
  size_t len;
  unsigned min;
  if ((c & 0xE0) == 0xC0) len = 2, min = 0x80, c &= 0x1F;
  else if ((c & 0xF0) == 0xE0) len = 3, min = 0x800, c &= 0x0F;
  else if ((c & 0xF8) == 0xF0) len = 4, min = 0x10000, c &= 0x07;
  else return 0;
  if (len > n) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    c = c << 6 | (s[i] & 0x3F);
  }
  if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0; /* overlong, range, surrogate */
  return len;
}

static bool utf8_valid(const char *s) {
  size_t n = strlen(s);
  for (size_t i = 0; i < n;) {
    size_t l = utf8_len((const unsigned char *)s + i, n - i);
    if (!l) return false;
    i += l;
  }
  return true;
}

/* ---- the strict JSON reader ----------------------------------------------------------- */

#define JSON_MAX_DEPTH 64

typedef struct {
  const char *s;
  size_t n, i;
  const char *what; /* the file, for messages */
  bool failed;
} jp;

static bool jfail(jp *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool jfail(jp *p, const char *fmt, ...) {
  if (p->failed) return false; /* keep the first, most specific message */
  char msg[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  cg_fail(CG_ERR_FORMAT, "safetensors '%s': %s", p->what, msg);
  p->failed = true;
  return false;
}

/* Out of memory while reading the header: CG_ERR_NOMEM, not a format error. */
static bool jnomem(jp *p) {
  if (!p->failed) cg_fail(CG_ERR_NOMEM, "safetensors '%s': out of memory reading the header", p->what);
  p->failed = true;
  return false;
}

/* What sits at the cursor, for "expected X but found Y". */
static const char *jfound(jp *p, char *buf, size_t cap) {
  if (p->i >= p->n) return "the end of the header";
  unsigned char c = (unsigned char)p->s[p->i];
  if (c >= 0x20 && c < 0x7F) snprintf(buf, cap, "'%c'", c);
  else snprintf(buf, cap, "byte 0x%02X", c);
  return buf;
}

static bool jexpect_fail(jp *p, const char *expected) {
  char b[16];
  return jfail(p, "invalid JSON header at byte %zu: expected %s but found %s", p->i, expected, jfound(p, b, sizeof b));
}

static void jws(jp *p) {
  while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r')) p->i++;
}

static bool jpeek(jp *p, char c) {
  jws(p);
  return p->i < p->n && p->s[p->i] == c;
}

static bool jeat(jp *p, char c, const char *expected) {
  if (!jpeek(p, c)) return jexpect_fail(p, expected);
  p->i++;
  return true;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static bool jhex4(jp *p, unsigned *out) {
  if (p->n - p->i < 4) return jfail(p, "invalid JSON header at byte %zu: \\u needs 4 hex digits", p->i);
  unsigned v = 0;
  for (int k = 0; k < 4; k++) {
    int h = hexval(p->s[p->i + k]);
    if (h < 0) return jfail(p, "invalid JSON header at byte %zu: \\u needs 4 hex digits", p->i);
    v = v << 4 | (unsigned)h;
  }
  p->i += 4;
  *out = v;
  return true;
}

static void put_utf8(char *o, size_t *k, unsigned c) {
  if (c < 0x80) o[(*k)++] = (char)c;
  else if (c < 0x800) {
    o[(*k)++] = (char)(0xC0 | c >> 6);
    o[(*k)++] = (char)(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    o[(*k)++] = (char)(0xE0 | c >> 12);
    o[(*k)++] = (char)(0x80 | (c >> 6 & 0x3F));
    o[(*k)++] = (char)(0x80 | (c & 0x3F));
  } else {
    o[(*k)++] = (char)(0xF0 | c >> 18);
    o[(*k)++] = (char)(0x80 | (c >> 12 & 0x3F));
    o[(*k)++] = (char)(0x80 | (c >> 6 & 0x3F));
    o[(*k)++] = (char)(0x80 | (c & 0x3F));
  }
}

/* A string at the cursor. With out, its unescaped text goes to a malloc'd *out (no NUL
 * characters allowed inside, since callers get C strings); without, it is only checked. */
static bool jstring(jp *p, char **out) {
  if (!jpeek(p, '"')) return jexpect_fail(p, "a string");
  size_t start = ++p->i;
  char *o = NULL;
  size_t k = 0;
  if (out) {
    /* unescaping never grows the text: \uXXXX (6 bytes) -> at most 3, a pair (12) -> 4 */
    size_t end = start;
    while (end < p->n && p->s[end] != '"') end += p->s[end] == '\\' ? 2 : 1;
    o = cg_malloc((end > p->n ? p->n : end) - start + 1);
    if (!o) return jnomem(p);
  }
  for (;;) {
    if (p->i >= p->n) {
      free(o);
      return jfail(p, "invalid JSON header: the string starting at byte %zu is not closed", start - 1);
    }
    unsigned char c = (unsigned char)p->s[p->i];
    if (c == '"') {
      p->i++;
      break;
    }
    if (c < 0x20) {
      free(o);
      return jfail(p, "invalid JSON header at byte %zu: control character 0x%02X inside a string (must be escaped)",
                   p->i, c);
    }
    if (c != '\\') {
      size_t l = utf8_len((const unsigned char *)p->s + p->i, p->n - p->i);
      if (!l) {
        free(o);
        return jfail(p, "invalid JSON header at byte %zu: the string is not valid UTF-8", p->i);
      }
      if (o) memcpy(o + k, p->s + p->i, l), k += l;
      p->i += l;
      continue;
    }
    if (++p->i >= p->n) continue; /* reported as unclosed above */
    char e = p->s[p->i++];
    const char *simple = strchr("\"\\/bfnrt", e);
    if (e && simple) {
      static const char repl[] = "\"\\/\b\f\n\r\t";
      if (o) o[k++] = repl[simple - "\"\\/bfnrt"];
      continue;
    }
    if (e != 'u') {
      p->i--;
      free(o);
      return jfail(p, "invalid JSON header at byte %zu: unknown escape '\\%c' (expected one of \\\" \\\\ \\/ \\b "
                      "\\f \\n \\r \\t \\uXXXX)", p->i - 1, e >= 0x20 && e < 0x7F ? e : '?');
    }
    unsigned cp;
    if (!jhex4(p, &cp)) return free(o), false;
    if (cp >= 0xD800 && cp <= 0xDBFF) { /* a surrogate pair */
      unsigned lo;
      if (p->n - p->i < 2 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u') {
        free(o);
        return jfail(p, "invalid JSON header at byte %zu: a \\u high surrogate must be followed by a low one", p->i);
      }
      p->i += 2;
      if (!jhex4(p, &lo)) return free(o), false;
      if (lo < 0xDC00 || lo > 0xDFFF) {
        free(o);
        return jfail(p, "invalid JSON header at byte %zu: expected a \\u low surrogate (DC00-DFFF), found %04X",
                     p->i - 6, lo);
      }
      cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
      free(o);
      return jfail(p, "invalid JSON header at byte %zu: lone \\u low surrogate %04X", p->i - 6, cp);
    }
    if (cp == 0 && out) {
      free(o);
      return jfail(p, "invalid header at byte %zu: \\u0000 (a NUL character) is not allowed in a name or metadata",
                   p->i - 6);
    }
    if (o) put_utf8(o, &k, cp);
  }
  if (out) {
    o[k] = 0;
    *out = o;
  }
  return true;
}

/* A JSON number at the cursor that must be a non-negative integer fitting in 64 bits. */
static bool juint(jp *p, const char *field, uint64_t *out) {
  jws(p);
  size_t at = p->i;
  if (at >= p->n || p->s[at] < '0' || p->s[at] > '9') {
    char b[16];
    return jfail(p, "%s: expected a non-negative integer at byte %zu but found %s", field, at, jfound(p, b, sizeof b));
  }
  if (p->s[at] == '0' && at + 1 < p->n && p->s[at + 1] >= '0' && p->s[at + 1] <= '9')
    return jfail(p, "invalid JSON header at byte %zu: a number may not have leading zeros", at);
  uint64_t v = 0;
  while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
    unsigned d = (unsigned)(p->s[p->i] - '0');
    if (v > (UINT64_MAX - d) / 10) return jfail(p, "%s: the integer at byte %zu does not fit in 64 bits", field, at);
    v = v * 10 + d;
    p->i++;
  }
  if (p->i < p->n && (p->s[p->i] == '.' || p->s[p->i] == 'e' || p->s[p->i] == 'E'))
    return jfail(p, "%s: expected a non-negative integer at byte %zu but found a fraction or exponent", field, at);
  *out = v;
  return true;
}

static bool jnumber_skip(jp *p) {
  size_t at = p->i;
#define DIGITS(min)                                                                        \
  do {                                                                                     \
    size_t d0 = p->i;                                                                      \
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;                  \
    if (p->i - d0 < (min)) return jfail(p, "invalid JSON header at byte %zu: malformed number", at); \
  } while (0)
  if (p->s[p->i] == '-') p->i++;
  if (p->i < p->n && p->s[p->i] == '0') p->i++;
  else DIGITS(1);
  if (p->i < p->n && p->s[p->i] == '.') {
    p->i++;
    DIGITS(1);
  }
  if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
    p->i++;
    if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
    DIGITS(1);
  }
#undef DIGITS
  return true;
}

/* Check and skip any JSON value. */
static bool jskip(jp *p, int depth) {
  if (depth > JSON_MAX_DEPTH) return jfail(p, "invalid header at byte %zu: nested deeper than %d", p->i, JSON_MAX_DEPTH);
  jws(p);
  if (p->i >= p->n) return jexpect_fail(p, "a value");
  char c = p->s[p->i];
  if (c == '"') return jstring(p, NULL);
  if (c == '-' || (c >= '0' && c <= '9')) return jnumber_skip(p);
  static const char *const lits[] = {"true", "false", "null"};
  for (int k = 0; k < 3; k++) {
    size_t l = strlen(lits[k]);
    if (p->n - p->i >= l && !memcmp(p->s + p->i, lits[k], l)) {
      p->i += l;
      return true;
    }
  }
  if (c == '[' || c == '{') {
    char close = c == '[' ? ']' : '}';
    p->i++;
    if (jpeek(p, close)) return p->i++, true;
    for (;;) {
      if (c == '{') {
        if (!jstring(p, NULL) || !jeat(p, ':', "':'")) return false;
      }
      if (!jskip(p, depth + 1)) return false;
      if (jpeek(p, ',')) {
        p->i++;
        continue;
      }
      return jeat(p, close, c == '[' ? "',' or ']'" : "',' or '}'");
    }
  }
  return jexpect_fail(p, "a value");
}

/* ---- the header's schema -------------------------------------------------------------- */

typedef struct {
  st_tensor t;
  uint64_t begin, end;
  int order; /* position in the header, to keep ties stable */
} entry;

static bool parse_meta(jp *p, st_file *f) {
  if (!jeat(p, '{', "an object of string values after \"__metadata__\"")) return false;
  if (jpeek(p, '}')) return p->i++, true;
  for (;;) {
    char *k = NULL, *v = NULL;
    if (!jstring(p, &k)) return false;
    if (!jeat(p, ':', "':'")) return free(k), false;
    if (!jpeek(p, '"')) {
      free(k);
      return jexpect_fail(p, "a string value in __metadata__ (values must be strings)");
    }
    if (!jstring(p, &v)) return free(k), false;
    if (st_meta_get(f, k)) {
      jfail(p, "__metadata__ has the key \"%s\" twice", k);
      return free(k), free(v), false;
    }
    char **m = cg_realloc(f->meta, sizeof(char *) * 2 * (size_t)(f->nmeta + 1));
    if (!m) return free(k), free(v), jnomem(p);
    f->meta = m;
    m[2 * f->nmeta] = k;
    m[2 * f->nmeta + 1] = v;
    f->nmeta++;
    if (jpeek(p, ',')) {
      p->i++;
      continue;
    }
    return jeat(p, '}', "',' or '}' in __metadata__");
  }
}

static bool parse_entry(jp *p, entry *e) {
  const char *name = e->t.name;
  if (!jpeek(p, '{')) {
    char what[300];
    snprintf(what, sizeof what, "an object {\"dtype\", \"shape\", \"data_offsets\"} for tensor '%s'", name);
    return jexpect_fail(p, what);
  }
  p->i++;
  bool have_dtype = false, have_shape = false, have_offsets = false;
  if (!jpeek(p, '}'))
    for (;;) {
      char *key = NULL;
      if (!jstring(p, &key)) return false;
      if (!jeat(p, ':', "':'")) return free(key), false;
      bool ok = true;
      if (!strcmp(key, "dtype")) {
        char *dt = NULL;
        if (have_dtype) ok = jfail(p, "tensor '%s' has the field \"dtype\" twice", name);
        else if (!jpeek(p, '"')) ok = jexpect_fail(p, "a dtype string");
        else if ((ok = jstring(p, &dt)) && !st_dtype_parse(dt, strlen(dt), &e->t.dtype))
          ok = jfail(p, "tensor '%s' has unknown dtype \"%s\" (expected one of " ST_DTYPE_LIST ")", name, dt);
        free(dt);
        have_dtype = true;
      } else if (!strcmp(key, "shape")) {
        if (have_shape) ok = jfail(p, "tensor '%s' has the field \"shape\" twice", name);
        else if ((ok = jeat(p, '[', "'[' starting the shape")) && !jpeek(p, ']'))
          for (;;) {
            uint64_t d;
            if (!(ok = juint(p, "shape", &d))) break;
            if (e->t.ndim == ST_MAX_DIMS) {
              ok = jfail(p, "tensor '%s' has more than %d dimensions, the most cgrad supports", name, ST_MAX_DIMS);
              break;
            }
            if (d > (uint64_t)INT64_MAX) {
              ok = jfail(p, "tensor '%s' has dimension %llu, larger than 2^63-1", name, (unsigned long long)d);
              break;
            }
            e->t.shape[e->t.ndim++] = (int64_t)d;
            if (!jpeek(p, ',')) break;
            p->i++;
          }
        if (ok) ok = jeat(p, ']', "',' or ']' in the shape");
        have_shape = true;
      } else if (!strcmp(key, "data_offsets")) {
        if (have_offsets) ok = jfail(p, "tensor '%s' has the field \"data_offsets\" twice", name);
        else
          ok = jeat(p, '[', "'[' starting data_offsets") && juint(p, "data_offsets", &e->begin) &&
               jeat(p, ',', "',' (data_offsets holds exactly two numbers [begin, end])") &&
               juint(p, "data_offsets", &e->end) &&
               jeat(p, ']', "']' (data_offsets holds exactly two numbers [begin, end])");
        have_offsets = true;
      } else {
        ok = jskip(p, 2); /* unknown fields are ignored, as the reference reader does */
      }
      free(key);
      if (!ok) return false;
      if (jpeek(p, ',')) {
        p->i++;
        continue;
      }
      if (!jeat(p, '}', "',' or '}' closing a tensor entry")) return false;
      break;
    }
  else
    p->i++;
  const char *missing = !have_dtype ? "dtype" : !have_shape ? "shape" : !have_offsets ? "data_offsets" : NULL;
  if (missing) return jfail(p, "tensor '%s' is missing the field \"%s\" (each tensor needs dtype, shape and data_offsets)",
                            name, missing);
  return true;
}

/* Parse the header text into f->meta and *entries. */
static bool parse_header(jp *p, st_file *f, entry **entries, int *n) {
  int cap = 0;
  bool seen_meta = false;
  if (!jeat(p, '{', "'{' starting the JSON header")) return false;
  if (jpeek(p, '}')) p->i++;
  else
    for (;;) {
      char *key = NULL;
      if (!jpeek(p, '"')) return jexpect_fail(p, "a tensor name (a string)");
      if (!jstring(p, &key)) return false;
      if (!jeat(p, ':', "':'")) return free(key), false;
      if (!strcmp(key, "__metadata__")) {
        free(key);
        if (seen_meta) return jfail(p, "the header has \"__metadata__\" twice");
        seen_meta = true;
        jws(p);
        if (p->n - p->i >= 4 && !memcmp(p->s + p->i, "null", 4)) p->i += 4; /* no metadata */
        else if (!parse_meta(p, f)) return false;
      } else {
        if (*n == cap) {
          cap = cap ? 2 * cap : 16;
          entry *ne = cg_realloc(*entries, sizeof(entry) * (size_t)cap);
          if (!ne) return free(key), jnomem(p);
          *entries = ne;
        }
        entry *e = &(*entries)[*n];
        memset(e, 0, sizeof *e);
        e->t.name = key;
        e->order = (*n)++;
        if (!parse_entry(p, e)) return false;
      }
      if (jpeek(p, ',')) {
        p->i++;
        continue;
      }
      if (!jeat(p, '}', "',' or '}' after a tensor entry")) return false;
      break;
    }
  jws(p);
  if (p->i != p->n) {
    char b[16];
    return jfail(p, "invalid JSON header: expected only space padding after the closing '}' at byte %zu, found %s",
                 p->i, jfound(p, b, sizeof b));
  }
  return true;
}

/* ---- validation after parsing ---------------------------------------------------------- */

static int by_offset(const void *a, const void *b) {
  const entry *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return x->order - y->order;
}

/* Sort idx[0..n) by ts[idx].name with a merge sort (no global context needed). */
static void sort_names(const st_tensor *ts, int *idx, int *tmp, int n) {
  if (n < 2) return;
  int h = n / 2;
  sort_names(ts, idx, tmp, h);
  sort_names(ts, idx + h, tmp, n - h);
  int i = 0, j = h, k = 0;
  while (i < h && j < n) tmp[k++] = strcmp(ts[idx[i]].name, ts[idx[j]].name) <= 0 ? idx[i++] : idx[j++];
  while (i < h) tmp[k++] = idx[i++];
  while (j < n) tmp[k++] = idx[j++];
  memcpy(idx, tmp, sizeof(int) * (size_t)n);
}

/* product(shape) * itemsize, or false on overflow. */
static bool tensor_bytes(const st_tensor *t, uint64_t *out) {
  uint64_t b = cg_dtype_size(t->dtype);
  for (int d = 0; d < t->ndim; d++) {
    uint64_t s = (uint64_t)t->shape[d];
    if (s && b > UINT64_MAX / s) {
      /* a zero later in the shape still makes the product 0 */
      for (int z = d + 1; z < t->ndim; z++)
        if (!t->shape[z]) return *out = 0, true;
      return false;
    }
    b *= s;
  }
  *out = b;
  return true;
}

static void shape_str(const st_tensor *t, char *buf, size_t cap) {
  size_t k = (size_t)snprintf(buf, cap, "[");
  for (int d = 0; d < t->ndim && k < cap; d++)
    k += (size_t)snprintf(buf + k, cap - k, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
  if (k < cap) snprintf(buf + k, cap - k, "]");
}

static bool check_entries(jp *p, entry *es, int n, uint64_t data_len) {
  for (int i = 0; i < n; i++) {
    entry *e = &es[i];
    uint64_t nb = 0;
    char sh[200];
    shape_str(&e->t, sh, sizeof sh);
    if (!tensor_bytes(&e->t, &nb))
      return jfail(p, "tensor '%s' has shape %s whose size overflows 64 bits", e->t.name, sh);
    if (e->begin > e->end)
      return jfail(p, "tensor '%s' has data_offsets [%llu, %llu]: expected begin <= end", e->t.name,
                   (unsigned long long)e->begin, (unsigned long long)e->end);
    if (e->end > data_len)
      return jfail(p, "tensor '%s' has data_offsets [%llu, %llu] past the end of the %llu-byte data buffer "
                      "(truncated file?)", e->t.name, (unsigned long long)e->begin, (unsigned long long)e->end,
                   (unsigned long long)data_len);
    if (e->end - e->begin != nb)
      return jfail(p, "tensor '%s' is %s %s = %llu bytes, but its data_offsets [%llu, %llu] span %llu bytes",
                   e->t.name, st_names[e->t.dtype], sh, (unsigned long long)nb, (unsigned long long)e->begin,
                   (unsigned long long)e->end, (unsigned long long)(e->end - e->begin));
    e->t.nbytes = (size_t)nb;
  }
  /* The tensors must tile the buffer: sorted by offset, each starts where the last ended. */
  if (n > 1) qsort(es, (size_t)n, sizeof *es, by_offset);
  uint64_t pos = 0;
  for (int i = 0; i < n; i++) {
    if (es[i].begin < pos)
      return jfail(p, "tensors '%s' and '%s' overlap in the data buffer (data_offsets begin at %llu, before %llu)",
                   es[i - 1].t.name, es[i].t.name, (unsigned long long)es[i].begin, (unsigned long long)pos);
    if (es[i].begin > pos)
      return jfail(p, "bytes [%llu, %llu) of the data buffer belong to no tensor (before '%s'): expected the "
                      "tensors to cover it without holes", (unsigned long long)pos, (unsigned long long)es[i].begin,
                   es[i].t.name);
    pos = es[i].end;
  }
  if (pos != data_len)
    return jfail(p, "the data buffer is %llu bytes but the tensors cover %llu: expected them to cover it exactly",
                 (unsigned long long)data_len, (unsigned long long)pos);
  return true;
}

/* Parse an image we own (buf has size bytes plus one spare). Frees buf on failure. */
static st_file *parse_owned(char *buf, size_t size, const char *what) {
  if (size < 8) {
    free(buf);
    return cg_fail_null(CG_ERR_FORMAT, "safetensors '%s': the file is %zu bytes, expected at least 8 (the header "
                                       "length) and a JSON header", what, size);
  }
  uint64_t hlen = 0;
  for (int k = 7; k >= 0; k--) hlen = hlen << 8 | (unsigned char)buf[k];
  if (hlen > ST_MAX_HEADER) {
    free(buf);
    return cg_fail_null(CG_ERR_FORMAT, "safetensors '%s': header length %llu exceeds the %d-byte limit (not a "
                                       "safetensors file, or a corrupt one)", what, (unsigned long long)hlen, ST_MAX_HEADER);
  }
  if (hlen > size - 8) {
    free(buf);
    return cg_fail_null(CG_ERR_FORMAT, "safetensors '%s': header length %llu is larger than the %zu bytes after it "
                                       "(truncated file?)", what, (unsigned long long)hlen, size - 8);
  }
  st_file *f = cg_calloc(1, sizeof *f);
  if (!f) return free(buf), NULL;
  f->buf = buf;
  jp p = {.s = buf + 8, .n = (size_t)hlen, .what = what};
  entry *es = NULL;
  int n = 0;
  bool ok = parse_header(&p, f, &es, &n);
  size_t data_at = 8 + (size_t)hlen;
  if (ok) ok = check_entries(&p, es, n, (uint64_t)(size - data_at));
  if (ok) {
    f->ts = cg_malloc(sizeof(st_tensor) * (size_t)(n ? n : 1));
    f->by_name = cg_malloc(sizeof(int) * (size_t)(n ? n : 1));
    int *tmp = cg_malloc(sizeof(int) * (size_t)(n ? n : 1));
    ok = f->ts && f->by_name && tmp;
    if (ok) {
      /* The data section is 8-aligned when the writer padded the header (the reference
       * writer and ours do); otherwise move it to the start of the block so it is. */
      char *data = buf + data_at;
      if (data_at % 8) {
        memmove(buf, data, size - data_at);
        data = buf;
      }
      for (int i = 0; i < n; i++) {
        f->ts[i] = es[i].t;
        f->ts[i].data = data + es[i].begin;
        f->by_name[i] = i;
      }
      f->n = n;
      sort_names(f->ts, f->by_name, tmp, n);
      for (int i = 1; i < n && ok; i++)
        if (!strcmp(f->ts[f->by_name[i]].name, f->ts[f->by_name[i - 1]].name))
          ok = jfail(&p, "the tensor name '%s' appears twice: expected unique names", f->ts[f->by_name[i]].name);
    } else
      cg_fail(CG_ERR_NOMEM, "safetensors '%s': out of memory", what);
    free(tmp);
  }
  if (!ok) {
    if (!f->n) /* names still belong to the entries */
      for (int i = 0; i < n; i++) free((char *)es[i].t.name);
    free(es);
    st_free(f);
    return NULL;
  }
  free(es);
  return f;
}

st_file *st_load(const char *path) {
  size_t size;
  char *buf = fio_read_all(path, &size);
  if (!buf) return NULL;
  return parse_owned(buf, size, path);
}

st_file *st_parse(const void *bytes, size_t size, const char *what) {
  if (!bytes && size) return cg_fail_null(CG_ERR_INVALID, "st_parse: expected bytes, got NULL");
  char *buf = cg_malloc(size + 1);
  if (!buf) return NULL;
  if (size) memcpy(buf, bytes, size);
  return parse_owned(buf, size, what ? what : "<memory>");
}

/* ---- writing -------------------------------------------------------------------------- */

typedef struct {
  char *p;
  size_t n, cap;
  bool oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (b->n + n + 1 > cap) cap *= 2;
    char *np = cg_realloc(b->p, cap);
    if (!np) {
      b->oom = true;
      return;
    }
    b->p = np;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
}
static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }
static void sb_u64(sbuf *b, uint64_t v) {
  char t[24];
  sb_put(b, t, (size_t)snprintf(t, sizeof t, "%llu", (unsigned long long)v));
}

/* A JSON string as serde_json writes it: short escapes, \u00xx for other controls. */
static void sb_json(sbuf *b, const char *s) {
  sb_put(b, "\"", 1);
  for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
    const char *esc = NULL;
    char u[8];
    switch (*c) {
    case '"': esc = "\\\""; break;
    case '\\': esc = "\\\\"; break;
    case '\b': esc = "\\b"; break;
    case '\f': esc = "\\f"; break;
    case '\n': esc = "\\n"; break;
    case '\r': esc = "\\r"; break;
    case '\t': esc = "\\t"; break;
    default:
      if (*c < 0x20) snprintf(u, sizeof u, "\\u%04x", *c), esc = u;
    }
    if (esc) sb_str(b, esc);
    else sb_put(b, (const char *)c, 1);
  }
  sb_put(b, "\"", 1);
}

/* Validate the arguments and build the padded header; the 8-byte length goes first. */
static cg_status build_header(const st_tensor *ts, int n, const char *const *kv, int nmeta, sbuf *h,
                              uint64_t *data_len) {
  if (n < 0 || nmeta < 0 || (n && !ts) || (nmeta && !kv))
    return cg_fail(CG_ERR_INVALID, "st_save: expected n >= 0 tensors and nmeta >= 0 metadata pairs with arrays, "
                                   "got n=%d (%s), nmeta=%d (%s)", n, ts ? "array" : "NULL", nmeta, kv ? "array" : "NULL");
  for (int i = 0; i < 2 * nmeta; i++) {
    if (!kv[i]) return cg_fail(CG_NULL_INPUT, "st_save: metadata %s %d is NULL, expected a string", i % 2 ? "value" : "key", i / 2);
    if (!utf8_valid(kv[i])) return cg_fail(CG_ERR_INVALID, "st_save: metadata string '%s' is not valid UTF-8", kv[i]);
    if (i % 2 == 0)
      for (int j = 0; j < i; j += 2)
        if (!strcmp(kv[i], kv[j])) return cg_fail(CG_ERR_INVALID, "st_save: metadata key '%s' appears twice", kv[i]);
  }
  uint64_t off = 0;
  for (int i = 0; i < n; i++) {
    const st_tensor *t = &ts[i];
    if (!t->name) return cg_fail(CG_ERR_INVALID, "st_save: tensor %d has no name", i);
    if (!strcmp(t->name, "__metadata__"))
      return cg_fail(CG_ERR_INVALID, "st_save: tensor %d is named \"__metadata__\", which the format reserves", i);
    if (!utf8_valid(t->name)) return cg_fail(CG_ERR_INVALID, "st_save: tensor %d's name is not valid UTF-8", i);
    if ((unsigned)t->dtype >= CG_NUM_DTYPES)
      return cg_fail(CG_ERR_INVALID, "st_save: tensor '%s' has invalid dtype %d", t->name, (int)t->dtype);
    if (t->ndim < 0 || t->ndim > ST_MAX_DIMS)
      return cg_fail(CG_ERR_INVALID, "st_save: tensor '%s' has ndim %d, expected 0..%d", t->name, t->ndim, ST_MAX_DIMS);
    for (int d = 0; d < t->ndim; d++)
      if (t->shape[d] < 0)
        return cg_fail(CG_ERR_INVALID, "st_save: tensor '%s' has shape[%d] = %lld, expected >= 0", t->name, d,
                       (long long)t->shape[d]);
    uint64_t nb = 0;
    char sh[200];
    shape_str(t, sh, sizeof sh);
    if (!tensor_bytes(t, &nb))
      return cg_fail(CG_ERR_INVALID, "st_save: tensor '%s' has shape %s whose size overflows 64 bits", t->name, sh);
    if (nb != t->nbytes)
      return cg_fail(CG_ERR_INVALID, "st_save: tensor '%s' is %s %s, expected nbytes = %llu, found %zu", t->name,
                     cg_dtype_name(t->dtype), sh, (unsigned long long)nb, t->nbytes);
    if (nb && !t->data) return cg_fail(CG_NULL_INPUT, "st_save: tensor '%s' has %zu bytes but data is NULL", t->name, t->nbytes);
    for (int j = 0; j < i; j++)
      if (!strcmp(ts[j].name, t->name)) return cg_fail(CG_ERR_INVALID, "st_save: the tensor name '%s' appears twice", t->name);
  }
  sb_put(h, "\0\0\0\0\0\0\0\0", 8); /* the length, filled in below */
  sb_put(h, "{", 1);
  if (nmeta) {
    sb_str(h, "\"__metadata__\":{");
    for (int i = 0; i < nmeta; i++) {
      if (i) sb_put(h, ",", 1);
      sb_json(h, kv[2 * i]);
      sb_put(h, ":", 1);
      sb_json(h, kv[2 * i + 1]);
    }
    sb_put(h, "}", 1);
  }
  for (int i = 0; i < n; i++) {
    const st_tensor *t = &ts[i];
    if (i || nmeta) sb_put(h, ",", 1);
    sb_json(h, t->name);
    sb_str(h, ":{\"dtype\":\"");
    sb_str(h, st_names[t->dtype]);
    sb_str(h, "\",\"shape\":[");
    for (int d = 0; d < t->ndim; d++) {
      if (d) sb_put(h, ",", 1);
      sb_u64(h, (uint64_t)t->shape[d]);
    }
    sb_str(h, "],\"data_offsets\":[");
    sb_u64(h, off);
    sb_put(h, ",", 1);
    off += t->nbytes;
    sb_u64(h, off);
    sb_str(h, "]}");
  }
  sb_put(h, "}", 1);
  while (h->n % 8) sb_put(h, " ", 1);
  if (h->oom) return CG_ERR_NOMEM;
  uint64_t hlen = h->n - 8;
  if (hlen > ST_MAX_HEADER)
    return cg_fail(CG_ERR_INVALID, "st_save: the header would be %llu bytes, over the format's %d-byte limit",
                   (unsigned long long)hlen, ST_MAX_HEADER);
  for (int k = 0; k < 8; k++) h->p[k] = (char)(hlen >> (8 * k) & 0xFF);
  *data_len = off;
  return CG_OK;
}

typedef struct {
  const sbuf *h;
  const st_tensor *ts;
  int n;
} save_ctx;

static cg_status save_write(FILE *f, void *ctx) {
  save_ctx *c = ctx;
  cg_status st = fio_put(f, c->h->p, c->h->n);
  for (int i = 0; i < c->n && st == CG_OK; i++) st = fio_put(f, c->ts[i].data, c->ts[i].nbytes);
  return st;
}

cg_status st_save(const char *path, const st_tensor *ts, int n, const char *const *meta_kv, int nmeta) {
  sbuf h = {0};
  uint64_t data_len;
  cg_status st = build_header(ts, n, meta_kv, nmeta, &h, &data_len);
  if (st == CG_OK) {
    save_ctx c = {&h, ts, n};
    st = fio_write_atomic(path, save_write, &c);
  }
  free(h.p);
  return st;
}

void *st_serialize(const st_tensor *ts, int n, const char *const *meta_kv, int nmeta, size_t *size) {
  sbuf h = {0};
  uint64_t data_len;
  if (size) *size = 0;
  if (build_header(ts, n, meta_kv, nmeta, &h, &data_len) != CG_OK) return free(h.p), NULL;
  size_t total = h.n + (size_t)data_len;
  char *out = cg_realloc(h.p, total + 1);
  if (!out) return free(h.p), NULL;
  size_t at = h.n;
  for (int i = 0; i < n; i++) {
    if (ts[i].nbytes) memcpy(out + at, ts[i].data, ts[i].nbytes);
    at += ts[i].nbytes;
  }
  if (size) *size = total;
  return out;
}
