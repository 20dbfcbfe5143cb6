/* Pointer-keyed hash map for passes over a graph (visited sets, memo tables). Header-only:
 * open addressing, linear probing, power-of-two capacity. */
#ifndef CG_UOPSET_H
#define CG_UOPSET_H
#include "core/error.h"
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct uopset {
  void **keys, **vals;
  size_t cap, n;
} uopset;

static inline size_t uopset_slot(const uopset *s, const void *k) {
  uint64_t h = (uint64_t)(uintptr_t)k * 0x9e3779b97f4a7c15ull;
  return (size_t)(h >> 17) & (s->cap - 1);
}
void *ir_calloc(size_t n, size_t size); /* uop.h: fails softly only in a checked pool */
static inline bool uopset_grow(uopset *s) {
  size_t cap = s->cap ? s->cap * 2 : 64;
  uopset t = {ir_calloc(cap, sizeof(void *)), NULL, cap, s->n};
  if (t.keys) t.vals = ir_calloc(cap, sizeof(void *));
  if (!t.vals) {
    free(t.keys);
    return false;
  }
  for (size_t i = 0; i < s->cap; i++)
    if (s->keys[i]) {
      size_t j = uopset_slot(&t, s->keys[i]);
      while (t.keys[j]) j = (j + 1) & (t.cap - 1);
      t.keys[j] = s->keys[i];
      t.vals[j] = s->vals[i];
    }
  free(s->keys);
  free(s->vals);
  *s = t;
  return true;
}
/* The value stored for k, or NULL. */
static inline void *uopset_get(const uopset *s, const void *k) {
  if (!s->cap) return NULL;
  for (size_t j = uopset_slot(s, k); s->keys[j]; j = (j + 1) & (s->cap - 1))
    if (s->keys[j] == k) return s->vals[j];
  return NULL;
}
/* Store k -> v (overwrites); false when out of memory (only in a checked pool). */
static inline bool uopset_put(uopset *s, const void *k, void *v) {
  if ((s->n + 1) * 2 > s->cap && !uopset_grow(s)) return false;
  size_t j = uopset_slot(s, k);
  while (s->keys[j] && s->keys[j] != k) j = (j + 1) & (s->cap - 1);
  if (!s->keys[j]) s->n++;
  s->keys[j] = (void *)k;
  s->vals[j] = v;
  return true;
}
/* Add k as a member: 1 if new, 0 if it was there already, -1 out of memory (checked pool). */
static inline int uopset_add(uopset *s, const void *k) {
  if (uopset_get(s, k)) return 0;
  return uopset_put(s, k, (void *)1) ? 1 : -1;
}
/* Remove k (backward-shift deletion keeps probe chains whole). */
static inline void uopset_del(uopset *s, const void *k) {
  if (!s->cap) return;
  size_t j = uopset_slot(s, k);
  while (s->keys[j] && s->keys[j] != k) j = (j + 1) & (s->cap - 1);
  if (!s->keys[j]) return;
  s->keys[j] = NULL;
  s->n--;
  for (size_t i = (j + 1) & (s->cap - 1); s->keys[i]; i = (i + 1) & (s->cap - 1)) {
    size_t home = uopset_slot(s, s->keys[i]);
    /* move keys[i] into the hole at j if its home is not in (j, i] */
    bool stays = j < i ? (home > j && home <= i) : (home > j || home <= i);
    if (stays) continue;
    s->keys[j] = s->keys[i], s->vals[j] = s->vals[i];
    s->keys[i] = NULL;
    j = i;
  }
}
static inline void uopset_free(uopset *s) {
  free(s->keys);
  free(s->vals);
  *s = (uopset){0};
}
#endif
