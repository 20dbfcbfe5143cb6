/* Running ONNX's backend test cases (Debian's libonnx-testdata): each case is a directory
 * with model.onnx and test_data_set_N/{input,output}_K.pb. Shared by the CTest test and
 * the bench program that runs the whole suite. */
#ifndef CG_TESTS_ONNX_BACKEND_H
#define CG_TESTS_ONNX_BACKEND_H

#include <cgrad.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ONNX_TESTDATA "/usr/share/libonnx-testdata/data"
/* paths are built in fixed buffers; a truncated one just fails to open */
#pragma GCC diagnostic ignored "-Wformat-truncation"

typedef enum { CASE_PASS, CASE_FAIL, CASE_UNSUPPORTED } case_result;
static const char *const case_result_name[] = {"pass", "FAIL", "unsupported"};

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted names of the entries of dir starting with prefix (malloc'd; *n of them). */
static char **list_dir(const char *dir, const char *prefix, int *n) {
  DIR *d = opendir(dir);
  char **v = NULL;
  int cnt = 0, cap = 0;
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (strncmp(e->d_name, prefix, strlen(prefix))) continue;
    if (cnt == cap) v = realloc(v, sizeof *v * (size_t)(cap = cap ? 2 * cap : 64));
    v[cnt++] = strdup(e->d_name);
  }
  if (d) closedir(d);
  if (cnt) qsort(v, (size_t)cnt, sizeof *v, cmp_str);
  *n = cnt;
  return v;
}
static void free_list(char **v, int n) {
  for (int i = 0; i < n; i++) free(v[i]);
  free(v);
}

/* got vs want: same dtype and shape, |got - want| <= atol + rtol |want| (NaN matches NaN). */
static bool outputs_match(cg_tensor *got, cg_tensor *want, double rtol, double atol, char *why, size_t cap) {
  if (cg_dtype_of(got) != cg_dtype_of(want)) {
    snprintf(why, cap, "dtype %s, expected %s", cg_dtype_name(cg_dtype_of(got)), cg_dtype_name(cg_dtype_of(want)));
    return false;
  }
  bool same = cg_ndim(got) == cg_ndim(want);
  for (int d = 0; same && d < cg_ndim(got); d++) same = cg_shape(got)[d] == cg_shape(want)[d];
  if (!same) {
    snprintf(why, cap, "shape differs (%d dims vs %d; numel %lld vs %lld)", cg_ndim(got), cg_ndim(want), (long long)cg_numel(got),
             (long long)cg_numel(want));
    return false;
  }
  int64_t n = cg_numel(got);
  bool is_float = cg_dtype_of(got) >= CG_FLOAT16 && cg_dtype_of(got) <= CG_FLOAT64;
  cg_dtype rd = is_float ? CG_FLOAT64 : CG_INT64;
  cg_tensor *g = cg_cast(got, rd), *w = cg_cast(want, rd);
  void *gb = malloc((size_t)n * 8 + 8), *wb = malloc((size_t)n * 8 + 8);
  bool ok = g && w && cg_realize(g) == CG_OK && cg_realize(w) == CG_OK && cg_read(g, rd, gb, (size_t)n * 8) == CG_OK &&
            cg_read(w, rd, wb, (size_t)n * 8) == CG_OK;
  if (!ok) snprintf(why, cap, "could not compute: %s", cg_last_error());
  for (int64_t i = 0; ok && i < n; i++) {
    if (is_float) {
      double a = ((double *)gb)[i], b = ((double *)wb)[i];
      if (isnan(a) && isnan(b)) continue;
      if (a == b) continue;
      if (!(fabs(a - b) <= atol + rtol * fabs(b))) {
        snprintf(why, cap, "element %lld: %.9g, expected %.9g", (long long)i, a, b);
        ok = false;
      }
    } else if (((int64_t *)gb)[i] != ((int64_t *)wb)[i]) {
      snprintf(why, cap, "element %lld: %lld, expected %lld", (long long)i, (long long)((int64_t *)gb)[i], (long long)((int64_t *)wb)[i]);
      ok = false;
    }
  }
  free(gb);
  free(wb);
  cg_free(g);
  cg_free(w);
  return ok;
}

/* Run one case directory; why gets the reason when it does not pass. */
static case_result run_case(const char *dir, char *why, size_t cap) {
  char path[4096];
  snprintf(path, sizeof path, "%s/model.onnx", dir);
  why[0] = 0;
  cg_onnx_model *m = cg_onnx_load(path);
  if (!m) {
    const char *e = cg_last_error(), *s = strstr(e, ": onnx: ");
    snprintf(why, cap, "%s", s ? s + 2 : e);
    return CASE_UNSUPPORTED;
  }
  int nsets;
  char **sets = list_dir(dir, "test_data_set_", &nsets);
  case_result res = nsets ? CASE_PASS : CASE_FAIL;
  if (!nsets) snprintf(why, cap, "no test_data_set_*");
  int nin = cg_onnx_num_inputs(m), nout = cg_onnx_num_outputs(m);
  for (int s = 0; s < nsets && res == CASE_PASS; s++) {
    cg_scope_begin();
    cg_onnx_value in[64], want[64], got[64];
    memset(in, 0, sizeof in), memset(want, 0, sizeof want), memset(got, 0, sizeof got);
    if (nin > 64 || nout > 64) {
      snprintf(why, cap, "too many inputs/outputs");
      res = CASE_FAIL;
    }
    for (int i = 0; i < nin + nout && res == CASE_PASS; i++) {
      bool is_in = i < nin;
      int k = is_in ? i : i - nin;
      cg_onnx_value *v = is_in ? &in[k] : &want[k];
      snprintf(path, sizeof path, "%s/%s/%s_%d.pb", dir, sets[s], is_in ? "input" : "output", k);
      bool seq = is_in ? cg_onnx_input_is_sequence(m, k) : cg_onnx_output_is_sequence(m, k);
      if (seq) v->items = cg_onnx_load_sequence(path, &v->n_items);
      else v->tensor = cg_onnx_load_tensor(path);
      if (!v->items && !v->tensor) {
        snprintf(why, cap, "%s %d: %s", is_in ? "input" : "output", k, cg_last_error());
        res = CASE_UNSUPPORTED;
        break;
      }
      /* ONNX 1.12's test data holds bfloat16 values as their uint16 bit patterns */
      cg_dtype dt;
      int64_t sh[CG_MAX_DIMS];
      if (is_in && v->tensor && cg_onnx_input_info(m, k, &dt, sh) >= 0 && dt == CG_BFLOAT16 && cg_dtype_of(v->tensor) == CG_UINT16)
        v->tensor = cg_bitcast(v->tensor, CG_BFLOAT16);
    }
    if (res == CASE_PASS && cg_onnx_run_values(m, in, nin, got, nout) != CG_OK) {
      snprintf(why, cap, "%s", cg_last_error());
      res = CASE_FAIL;
    }
    for (int i = 0; i < nout && res == CASE_PASS; i++) {
      char w[300];
      if (!got[i].tensor != !want[i].tensor || (!got[i].tensor && got[i].n_items != want[i].n_items)) {
        snprintf(why, cap, "%s output %d: a sequence of %d items, expected %d", sets[s], i, got[i].n_items, want[i].n_items);
        res = CASE_FAIL;
        break;
      }
      int n = got[i].tensor ? 1 : got[i].n_items;
      for (int k = 0; k < n && res == CASE_PASS; k++) {
        cg_tensor *g = got[i].tensor ? got[i].tensor : got[i].items[k], *wt = want[i].tensor ? want[i].tensor : want[i].items[k];
        if (cg_dtype_of(g) == CG_BFLOAT16 && cg_dtype_of(wt) == CG_UINT16) g = cg_bitcast(g, CG_UINT16);
        if (!outputs_match(g, wt, 1e-3, 1e-7, w, sizeof w)) {
          snprintf(why, cap, "%s output %d '%s' item %d: %s", sets[s], i, cg_onnx_output_name(m, i), k, w);
          res = CASE_FAIL;
        }
      }
    }
    cg_scope_end(); /* frees every tensor made here, sequence items included */
    for (int i = 0; i < nout; i++) free(got[i].items), free(want[i].items);
    for (int i = 0; i < nin; i++) free(in[i].items);
  }
  free_list(sets, nsets);
  cg_onnx_free(m);
  cg_clear_error();
  return res;
}

#endif
