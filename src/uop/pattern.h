/* Compiled patterns (internal to the rewrite engine). */
#ifndef CG_UOP_PATTERN_H
#define CG_UOP_PATTERN_H
#include "rewrite.h"

typedef struct pat {
  uint64_t ops[2];  /* bit set of ops this node matches (OP_COUNT <= 128) */
  int dtc;          /* dtype class, DTC_* in pattern.c */
  dtype exact;
  bool has_value;   /* a literal: CONST with this value */
  double value;
  int bind;         /* slot to bind, or -1 */
  int nsrc;         /* -1: sources not looked at */
  bool ellipsis;    /* more sources allowed after nsrc */
  struct pat **src;
} pat;

_Static_assert(OP_COUNT <= 128, "pat.ops is a 128-bit set");

/* NULL and *err on a bad pattern; *err is "out of memory" when that was the reason. The
 * names it bound are in names[0..*nnames) (malloc'd). */
pat *pat_parse(const char *s, const char **names, int *nnames, const char **err);
/* Free a compiled pattern with its sources. */
void pat_free(pat *p);
bool pat_root_ops(const pat *p, int op);
/* Match u against p, filling bind[] (slots must start NULL); on failure bind is unchanged. */
bool pat_match(const pat *p, uop *u, uop **bind);

#endif
